//! Browser tests in Debian's headless Chromium, driven through ChromeDriver (W3C WebDriver over
//! plain HTTP). The browser reaches the box as `kekeli.local` over real TLS; only the box's own
//! leaf key is accepted (pinned by SPKI), no certificate check is switched off wholesale.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Options, TestServer, hex};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Child,
    _profile: tempfile::TempDir,
}

fn find_chromedriver() -> Option<String> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the box's current leaf certificate.
fn leaf_spki_pin(server: &TestServer) -> String {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use sha2::Digest;
    let pem = std::fs::read(server.config.tls_dir().join("leaf.crt")).expect("leaf");
    let der = CertificateDer::from_pem_slice(&pem).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    base64(&sha2::Sha256::digest(cert.public_key().raw))
}

impl Driver {
    async fn start(server: &TestServer, width: u32, height: u32) -> Option<Driver> {
        let Some(path) = find_chromedriver() else {
            assert!(
                std::env::var("CI").is_err(),
                "chromedriver missing: .ci/run must install chromium chromium-driver"
            );
            eprintln!(
                "skipped: chromedriver not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        // Its own process group, so that Drop can stop chromedriver and every Chromium process
        // it started even when a test fails half-way.
        use std::os::unix::process::CommandExt;
        let child = Command::new(path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile");
        let mut caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--host-resolver-rules=MAP kekeli.local 127.0.0.1"),
                    format!("--ignore-certificate-errors-spki-list={}", leaf_spki_pin(server)),
                    format!("--window-size={width},{height}"),
                    "--lang=fr-FR",
                ],
                "prefs": {"intl.accept_languages": "fr-FR,fr"}
            }
        }}});
        if width < 500 {
            // Headless windows are at least 500 px wide: emulate the phone's screen instead.
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}});
        }
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Some(Driver {
            http,
            base,
            session,
            child,
            _profile: profile,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.http.request(method, url);
        let req = if body.is_null() { req } else { req.json(&body) };
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        if let Some(err) = v["value"].get("error") {
            panic!("webdriver {path}: {err} {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    async fn type_in(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        // As a person would: bring it to the middle of the screen first (sticky bars at the
        // bottom cover what WebDriver scrolls only to the edge).
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "arguments[0].scrollIntoView({block: 'center'})", "args": [{ ELEMENT: id }]}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn path(&self) -> String {
        self.js("return location.pathname + location.search")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The path once it equals `want` (navigation may still be under way right after a click),
    /// or whatever it is after 15 s — with the page text, for the assertion message.
    async fn wait_path(&self, want: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let path = self.path().await;
            if path == want || Instant::now() > deadline {
                return (path, self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page text once it contains `needle`, or as it is after 15 s.
    async fn wait_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text().await;
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self) -> String {
        self.js("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Save a screenshot under target/screenshots for people to look at.
    async fn screenshot(&self, name: &str) {
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        let _ = std::fs::create_dir_all(&dir);
        if let Some(b64) = v.as_str()
            && let Some(bytes) = decode64(b64)
        {
            let _ = std::fs::write(dir.join(format!("{name}.png")), bytes);
        }
    }

    async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn decode64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[tokio::test]
async fn activation_code_then_password_then_portal_then_logout() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let Some(d) = Driver::start(&server, 1280, 900).await else {
        return;
    };
    let (login, code) = server.first_login.clone().expect("first login");
    let base = server.base();

    d.goto(&format!("{base}/connexion")).await;
    let first = d.text().await;
    assert!(first.contains("Connexion"), "{first}");
    d.type_in("#login", &login).await;
    d.type_in("#password", &code).await;
    d.click("main button[type=submit]").await;
    let (path, page) = d.wait_path("/mot-de-passe").await;
    assert_eq!(path, "/mot-de-passe", "{page}");
    assert!(
        d.text()
            .await
            .contains("Choisissez maintenant votre mot de passe")
    );

    // A mismatch is explained in French and nothing changes.
    d.type_in("#new", "Ecole-de-Lome-1").await;
    d.type_in("#confirm", "Ecole-de-Lome-2").await;
    d.click("main button[type=submit]").await;
    let t = d.wait_text("ne sont pas identiques").await;
    assert!(t.contains("ne sont pas identiques"), "{t}");

    d.type_in("#new", "Ecole-de-Lome-1").await;
    d.type_in("#confirm", "Ecole-de-Lome-1").await;
    d.click("main button[type=submit]").await;
    let (path, page) = d.wait_path("/?ok=password").await;
    assert_eq!(path, "/?ok=password", "{page}");
    let home = d.text().await;
    assert!(home.contains("Bonjour Technicien TIC"), "{home}");
    assert!(home.contains("Votre mot de passe est enregistré"));
    d.screenshot("portal-desktop").await;

    d.click("form[action='/deconnexion'] button").await;
    let (path, page) = d.wait_path("/connexion?deconnecte=1").await;
    assert_eq!(path, "/connexion?deconnecte=1", "{page}");
    assert!(
        d.wait_text("Vous êtes déconnecté")
            .await
            .contains("Vous êtes déconnecté")
    );
    // The old session is gone: the portal asks for a login again.
    d.goto(&format!("{base}/")).await;
    let (path, page) = d.wait_path("/connexion").await;
    assert_eq!(path, "/connexion", "{page}");
    d.quit().await;
    server.stop().await;
}

#[tokio::test]
async fn a_parent_on_a_phone_sized_screen() {
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 740).await else {
        return;
    };
    let parent = server.login_of(kekeli::policy::Role::Parent).clone();
    let base = server.base();
    d.goto(&format!("{base}/connexion")).await;
    let width = d.js("return window.innerWidth").await;
    assert!(
        width.as_i64().unwrap_or(9999) <= 360,
        "phone viewport: {width}"
    );
    d.type_in("#login", &parent.login).await;
    d.type_in("#password", &parent.password).await;
    d.click("main button[type=submit]").await;
    let (path, page) = d.wait_path("/").await;
    assert_eq!(path, "/", "{page}");
    // Nothing wider than the screen: no sideways scrolling on a cheap phone.
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "horizontal overflow: {overflow}"
    );
    let text = d.text().await;
    assert!(text.contains("Fiche de votre enfant"), "{text}");
    d.screenshot("portal-phone-parent").await;
    // The child's file opens from the tile.
    d.click("ul.tiles li:nth-child(2) a").await;
    let child = d.wait_text("Responsables légaux").await;
    assert!(d.path().await.starts_with("/personnes/"));
    assert!(
        child.contains("Responsables légaux") && child.contains("LTP-2026-"),
        "{child}"
    );
    d.screenshot("child-file-phone").await;
    d.quit().await;
    server.stop().await;
}

#[tokio::test]
async fn the_technician_creates_an_account_and_prints_slips_from_the_admin_pages() {
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 1280, 900).await else {
        return;
    };
    let tech = server.login_of(kekeli::policy::Role::Technicien).clone();
    let base = server.base();
    d.goto(&format!("{base}/connexion")).await;
    d.type_in("#login", &tech.login).await;
    d.type_in("#password", &tech.password).await;
    d.click("main button[type=submit]").await;
    d.wait_text("Bonjour").await;

    // System page from its tile.
    d.click("a.tile[href='/admin']").await;
    let system = d.wait_text("Disque libre").await;
    assert!(system.contains("Taille de la base"), "{system}");
    d.screenshot("admin-system").await;

    // Accounts: search, then create one through the form.
    d.goto(&format!("{base}/admin/comptes")).await;
    d.type_in("#q", "LTP-2026-0001").await;
    d.click("form.filters button[type=submit]").await;
    let found = d.wait_text("1 comptes").await;
    assert!(found.contains("1 comptes"), "{found}");
    d.screenshot("admin-accounts").await;
    d.goto(&format!("{base}/admin/comptes/nouveau")).await;
    d.type_in("#surname", "Kpodar").await;
    d.type_in("#first_names", "Delali").await;
    d.click("main button[type=submit]").await;
    let slip = d.wait_text("Code d'activation").await;
    assert!(slip.contains("delali.kpodar"), "{slip}");
    let code = d
        .js("return document.querySelector('.slip .code').textContent")
        .await
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(code.len(), 14, "code on the slip: {code}");
    d.screenshot("admin-slip").await;

    // A class sheet: one slip per pupil, ready for the printer.
    d.goto(&format!("{base}/admin/comptes")).await;
    d.js("document.querySelector('#s-classe').selectedIndex = 1; return 0")
        .await;
    d.click("form[action='/admin/fiches'] button[type=submit]")
        .await;
    d.wait_text("Ces codes ne sont affichés qu'une fois").await;
    let slips = d
        .js("return document.querySelectorAll('article.slip').length")
        .await
        .as_i64()
        .unwrap_or(0);
    assert!(slips >= 29, "{slips} slips on the class sheet");
    d.screenshot("admin-class-sheet").await;
    // Printed on A4: eight slips a page, none cut across two pages.
    let pdf = d
        .cmd(
            reqwest::Method::POST,
            "/print",
            json!({"page": {"width": 21.0, "height": 29.7}, "background": false}),
        )
        .await;
    let pdf = pdf.as_str().and_then(decode64).expect("a PDF");
    let pages = pdf_pages(&pdf);
    let wanted = (slips as usize).div_ceil(8);
    assert_eq!(pages, wanted, "{slips} slips on {pages} A4 pages");
    // A class's week prints on one A4 landscape page.
    let class: Vec<u8> = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT class_id FROM timetable_slots WHERE class_id IS NOT NULL GROUP BY class_id ORDER BY COUNT(*) DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("a class with a timetable");
    d.goto(&format!("{base}/emploi-du-temps/classe/{}", hex(&class)))
        .await;
    d.wait_text("Semaine").await;
    let pdf = d
        .cmd(
            reqwest::Method::POST,
            "/print",
            json!({"orientation": "landscape", "page": {"width": 21.0, "height": 29.7}, "margin": {"top": 0.8, "bottom": 0.8, "left": 0.8, "right": 0.8}}),
        )
        .await;
    let pdf = pdf.as_str().and_then(decode64).expect("a PDF");
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/screenshots/week-print.pdf"
        ),
        &pdf,
    );
    assert_eq!(pdf_pages(&pdf), 1, "the week on one landscape page");

    // The new account works with its code.
    let b = server.browser();
    assert_eq!(
        common::location(&b.login("delali.kpodar", &code).await),
        "/mot-de-passe"
    );
    d.quit().await;
    server.stop().await;
}

impl Driver {
    async fn log_in(&self, base: &str, login: &str, password: &str) {
        self.goto(&format!("{base}/connexion")).await;
        self.type_in("#login", login).await;
        self.type_in("#password", password).await;
        self.click("main button[type=submit]").await;
        let (path, page) = self.wait_path("/").await;
        assert_eq!(path, "/", "login as {login}: {page}");
    }

    async fn log_out(&self) {
        self.click("form[action='/deconnexion'] button").await;
        let text = self.wait_text("Vous êtes déconnecté").await;
        assert!(text.contains("Vous êtes déconnecté"), "{text}");
    }
}

/// The school day's roll call end to end, on a phone: the teacher marks an absence and a
/// lateness for the lesson under way; the parent sees the absence and justifies it with a photo;
/// vie scolaire accepts; the hours add up.
#[tokio::test]
async fn a_teacher_goes_from_the_home_page_to_a_saved_roll_call_in_three_taps_on_a_phone() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 800).await else {
        return;
    };
    let base = server.base();
    let teacher = server.login_of(Role::Enseignant).clone();
    let today = kekeli::school::calendar::iso(
        kekeli::school::calendar::now(server.config.utc_offset_minutes).date,
    );
    // A lesson from 00:35 to 23:59: under way whatever the hour the test runs.
    let (lesson, pupil) = server
        .db
        .write_blocking(|tx| {
            let t: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&teacher.login],
                |r| r.get(0),
            )?;
            let (class, subject): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT class_id, subject_id FROM timetable_slots WHERE teacher_id = ?1 AND class_id IS NOT NULL LIMIT 1",
                [&t],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let pupil: [u8; 16] = tx.query_row(
                "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
                [&class],
                |r| r.get(0),
            )?;
            let lesson = kekeli::timetable::store::create_change(
                tx,
                "school:TEST",
                &kekeli::timetable::store::NewChange {
                    kind: "supplementaire".into(),
                    on_date: today.clone(),
                    starts: Some(35),
                    ends: Some(1439),
                    teacher_id: Some(t),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &t,
            )?;
            Ok::<_, kekeli::db::DbError>((lesson, pupil))
        })
        .expect("lesson");
    d.log_in(&base, &teacher.login, &teacher.password).await;
    let home = d.wait_text("Aujourd'hui").await;
    assert!(home.contains("Faire l'appel"), "{home}");
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the home page overflows 360 px: {overflow}"
    );
    d.screenshot("teacher-home-phone").await;
    // 1. Faire l'appel; 2. one pupil absent; 3. save.
    d.click(".today .focus a.button").await;
    d.wait_text("Enregistrer l'appel").await;
    let path = d.js("return location.pathname").await;
    assert_eq!(
        path.as_str(),
        Some(format!("/appel/x{}", hex(&lesson)).as_str())
    );
    d.click(&format!(
        "input[name='p_{}'][value=absent] + label",
        hex(&pupil)
    ))
    .await;
    d.click("form.rollcall button[type=submit]").await;
    let saved = d.wait_text("Appel enregistré").await;
    assert!(saved.contains("1 absent,"), "{saved}");
    // Back home, the lesson says its roll call is taken.
    d.goto(&format!("{base}/")).await;
    let home = d.wait_text("Aujourd'hui").await;
    assert!(home.contains("Appel fait — le revoir"), "{home}");
}

#[tokio::test]
async fn roll_call_then_justification_then_acceptance_on_a_phone() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 740).await else {
        return;
    };
    let base = server.base();
    let teacher = server.login_of(Role::Enseignant).clone();
    let parent = server.login_of(Role::Parent).clone();
    let cpe = server.login_of(Role::VieScolaire).clone();

    // A lesson under way right now, one hour long, for the teacher's class: an extra session,
    // so the test does not depend on the day or the hour it runs.
    let now = kekeli::school::calendar::now(server.config.utc_offset_minutes);
    let starts = (now.minute - 5).clamp(0, 1440 - 60);
    let (lesson_id, child_id, other_id, child_name, child_class) = server
        .db
        .write_blocking(|tx| {
            let t: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&teacher.login],
                |r| r.get(0),
            )?;
            let p: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&parent.login],
                |r| r.get(0),
            )?;
            let (child, class, name): ([u8; 16], [u8; 16], String) = tx.query_row(
                "SELECT g.child_id, m.class_id, pe.surname || ' ' || pe.first_names FROM guardianships g \
                 JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' \
                 JOIN people pe ON pe.id = g.child_id WHERE g.parent_id = ?1 LIMIT 1",
                [&p],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let other: [u8; 16] = tx.query_row(
                "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' AND person_id <> ?2 LIMIT 1",
                (&class, &child),
                |r| r.get(0),
            )?;
            // The demo's fortnight of absences would blur the counts checked below.
            tx.execute("DELETE FROM absences WHERE pupil_id IN (?1, ?2)", (&child, &other))?;
            let subject: [u8; 16] = tx.query_row("SELECT id FROM subjects ORDER BY rank LIMIT 1", [], |r| r.get(0))?;
            let lesson = kekeli::timetable::store::create_change(
                tx,
                "school:TEST",
                &kekeli::timetable::store::NewChange {
                    kind: "supplementaire".into(),
                    on_date: kekeli::school::calendar::iso(now.date),
                    starts: Some(starts),
                    ends: Some(starts + 60),
                    teacher_id: Some(t),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &t,
            )?;
            Ok::<_, kekeli::db::DbError>((lesson, child, other, name, class))
        })
        .expect("lesson now");

    // 1. The teacher opens the roll call from the portal; the lesson under way comes first.
    d.log_in(&base, &teacher.login, &teacher.password).await;
    d.click("a.tile[href='/appel']").await;
    let list = d.wait_text("En cours").await;
    assert!(list.contains("En cours"), "{list}");
    // The teacher may also have a lesson of the demo timetable under way at this hour (CI ran
    // at 08:00 on a Tuesday once): take the extra session's own line.
    d.click(&format!(
        "ul.sessions li.current a[href='/appel/x{}']",
        hex(&lesson_id)
    ))
    .await;
    let sheet = d.wait_text("Enregistrer l'appel").await;
    assert!(sheet.contains(&child_name), "{sheet}");
    d.screenshot("roll-call-phone").await;
    // One tap per pupil: the child absent, another pupil 10 minutes late.
    d.click(&format!(
        "input[name='p_{}'][value=absent] + label",
        hex(&child_id)
    ))
    .await;
    d.click(&format!(
        "input[name='p_{}'][value=retard] + label",
        hex(&other_id)
    ))
    .await;
    d.type_in(&format!("input[name='m_{}']", hex(&other_id)), "10")
        .await;
    let button = d
        .js("return document.querySelector('form.rollcall button[type=submit]').textContent")
        .await;
    assert!(
        button
            .as_str()
            .unwrap_or("")
            .ends_with("(1 absent, 1 retard)"),
        "the running count in words: {button}"
    );
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "horizontal overflow: {overflow}"
    );
    d.click("form.rollcall button[type=submit]").await;
    let saved = d.wait_text("Appel enregistré").await;
    assert!(saved.contains("1 absent, 1 retard."), "{saved}");
    // The family's SMS is queued, with the child's name and the lesson's times.
    let queued: Vec<String> = server
        .db
        .read_blocking(|c| {
            let mut s = c.prepare(
                "SELECT body FROM outbox o JOIN absences a ON a.id = o.ref_id WHERE a.pupil_id = ?1 AND o.state = 'en_attente'",
            )?;
            let v = s.query_map([&child_id[..]], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok::<_, kekeli::db::DbError>(v)
        })
        .expect("outbox");
    assert!(
        queued
            .iter()
            .any(|b| b.contains("absent(e)") && b.contains(&kekeli::school::calendar::hm(starts))),
        "{queued:?}"
    );
    d.log_out().await;

    // 2. The parent's home page opens on the child's day, the absence to justify at the top;
    // the absences page says it is 1 h, not justified; the parent justifies it with a photo.
    d.log_in(&base, &parent.login, &parent.password).await;
    let home = d.wait_text("Absences et retards à justifier").await;
    let card = d
        .js("return document.querySelector('.today.family .to-justify').innerText")
        .await;
    assert!(
        card.as_str().unwrap_or("").contains("Absence (1 h)"),
        "{card} / {home}"
    );
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the parent's home page overflows 360 px: {overflow}"
    );
    d.screenshot("parent-home-phone").await;
    d.click(&format!(
        "a.tile[href='/absences/eleve/{}']",
        hex(&child_id)
    ))
    .await;
    let page = d.wait_text("Absences non justifiées").await;
    assert!(
        page.contains("Absence (1 h)") && page.contains("Non justifiée"),
        "{page}"
    );
    let unjustified = d
        .js("return document.getElementById('absence-unjustified').innerText")
        .await;
    assert_eq!(unjustified.as_str(), Some("1 h"));
    d.click("ul.absences a.button").await;
    d.wait_text("Motif").await;
    d.type_in(
        "#reason",
        "Malade : fièvre, consultation au CHU Sylvanus Olympio.",
    )
    .await;
    // A phone camera's photo of the certificate: 8 MB or so, well over the 5 MB limit (made by
    // this Chromium, as a camera would: a 12-megapixel JPEG of a grainy page).
    let made = d
        .js(
            "var c = document.createElement('canvas'); c.width = 4000; c.height = 3000; \
             var x = c.getContext('2d'), im = x.createImageData(4000, 3000), p = im.data, s = 7; \
             for (var i = 0; i < p.length; i += 4) { s = (s * 1103515245 + 12345) & 0x7fffffff; \
               var v = 140 + ((i >> 2) % 4000 >> 4) % 50 + (s >> 23) % 70; \
               p[i] = v; p[i + 1] = v - 10; p[i + 2] = v - 30; p[i + 3] = 255; } \
             x.putImageData(im, 0, 0); return c.toDataURL('image/jpeg', 0.95);",
        )
        .await;
    let jpeg = made
        .as_str()
        .and_then(|u| u.strip_prefix("data:image/jpeg;base64,"))
        .and_then(decode64)
        .expect("a JPEG from the browser");
    assert!(
        (5_500_000..13_000_000).contains(&jpeg.len()),
        "a camera-sized photo: {} bytes",
        jpeg.len()
    );
    let photo = server.dir.path().join("IMG_20261104_0812.jpg");
    std::fs::write(&photo, &jpeg).expect("jpeg");
    d.type_in("#document", &photo.display().to_string()).await;
    // Made smaller in the page before it goes; the person is told.
    let shrunk = d.wait_text("Photo réduite pour l'envoi").await;
    assert!(shrunk.contains(" Mo → "), "{shrunk}");
    d.click("main form button[type=submit]").await;
    let sent = d.wait_text("Justificatif envoyé").await;
    let stored: Vec<u8> = {
        let c = child_id;
        let hash: String = server
            .db
            .read_blocking(move |db| {
                db.query_row(
                    "SELECT document FROM absences WHERE pupil_id = ?1 AND document IS NOT NULL",
                    [&c[..]],
                    |r| r.get(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("document");
        kekeli::files::Store::new(server.config.data_dir.join("store"))
            .get(&hash)
            .expect("stored")
    };
    assert!(
        stored.starts_with(&[0xff, 0xd8])
            && stored.len() < 5 * 1024 * 1024
            && stored.len() < jpeg.len() / 2,
        "a JPEG under the limit: {} bytes from {}",
        stored.len(),
        jpeg.len()
    );
    eprintln!(
        "photo: {} bytes chosen, {} bytes sent",
        jpeg.len(),
        stored.len()
    );
    assert!(sent.contains("Justificatif en attente"), "{sent}");
    d.screenshot("justification-sent-phone").await;
    d.log_out().await;

    // 3. Vie scolaire reads the reason, opens the document and accepts.
    d.log_in(&base, &cpe.login, &cpe.password).await;
    let home = d.wait_text("à examiner").await;
    let pending = d
        .js("return document.querySelector('.desk .counts a.due strong').innerText")
        .await;
    assert!(
        pending
            .as_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1),
        "{pending} / {home}"
    );
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the desk's home page overflows 360 px: {overflow}"
    );
    d.screenshot("vie-scolaire-home-phone").await;
    // The desk's justifications tab: three accepted one after the other, each time the page
    // comes back at the next card, in view — no scrolling back from the top.
    d.click("a.tile[href='/absences']").await;
    d.wait_text("Absences répétées").await;
    d.click(".tabs a[href*='vue=justificatifs']").await;
    d.wait_text("Accepter les justificatifs cochés").await;
    for round in 0..3 {
        let ids = d
            .js("return Array.from(document.querySelectorAll('.card.justification')).slice(0, 2).map(c => c.id)")
            .await;
        let ids: Vec<String> = ids
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids.len(), 2, "round {round}: {ids:?}");
        d.js(&format!(
            "document.querySelector('#{} button[value=accepter]').click()",
            ids[0]
        ))
        .await;
        d.wait_text("Justificatif accepté").await;
        let at = d
            .js(&format!(
                "var r = document.getElementById('{}').getBoundingClientRect(); \
                 return [location.hash, r.top >= 0 && r.top < window.innerHeight, !document.getElementById('{}')]",
                ids[1], ids[0]
            ))
            .await;
        assert_eq!(
            at,
            serde_json::json!([format!("#{}", ids[1]), true, true]),
            "round {round}"
        );
    }
    let overflow = d
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the desk overflows 360 px: {overflow}"
    );
    d.screenshot("vie-scolaire-desk-phone").await;
    // The child's class: the parent's justification among its cards.
    d.goto(&format!(
        "{base}/absences?vue=justificatifs&classe={}",
        hex(&child_class)
    ))
    .await;
    let desk = d.wait_text("CHU Sylvanus Olympio").await;
    assert!(desk.contains(&child_name), "{desk}");
    let card = "Array.from(document.querySelectorAll('div.card')).find(c => c.innerText.includes('CHU Sylvanus Olympio'))";
    let doc_href = d
        .js(&format!(
            "return {card}.querySelector('a[href$=\"/document\"]').getAttribute('href')"
        ))
        .await;
    let doc_href = doc_href.as_str().expect("document link").to_string();
    d.js(&format!(
        "{card}.querySelector('button[value=accepter]').click()"
    ))
    .await;
    let accepted = d.wait_text("Justificatif accepté").await;
    assert!(accepted.contains("Justificatif accepté"), "{accepted}");
    d.log_out().await;
    // The document is served as an attachment of the right type to vie scolaire, and to no one else.
    let cpe_b = server.logged_in(Role::VieScolaire).await;
    let r = cpe_b.get(&doc_href).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap_or("")
            .starts_with("attachment")
    );
    let teacher_b = server.logged_in(Role::Enseignant).await;
    assert_eq!(teacher_b.get(&doc_href).await.status(), 403);

    // 4. The parent sees it justified; the hours moved from one count to the other.
    d.log_in(&base, &parent.login, &parent.password).await;
    d.goto(&format!("{base}/absences/eleve/{}", hex(&child_id)))
        .await;
    let after = d.wait_text("Justifiée").await;
    assert!(after.contains("Justifiée"), "{after}");
    let justified = d
        .js("return document.getElementById('absence-justified').innerText")
        .await;
    let unjustified = d
        .js("return document.getElementById('absence-unjustified').innerText")
        .await;
    assert_eq!(
        (justified.as_str(), unjustified.as_str()),
        (Some("1 h"), Some("0 h"))
    );
    // Each step is in the audit trail.
    for action in ["absence.create", "absence.justify", "absence.decide"] {
        assert!(
            common::audit_count(&server, action) >= 1,
            "{action} audited"
        );
    }
    d.screenshot("absence-justified-phone").await;
    d.quit().await;
    server.stop().await;
}

impl Driver {
    /// Press keys in the focused element (WebDriver key codes: "\u{E007}" Enter, "\u{E004}" Tab).
    async fn keys(&self, text: &str) {
        let active = self
            .cmd(reqwest::Method::GET, "/element/active", Value::Null)
            .await;
        let id = active[ELEMENT]
            .as_str()
            .expect("focused element")
            .to_string();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Fetch `path` from the page (with its session) and return the bytes.
    async fn fetch_bytes(&self, path: &str) -> Vec<u8> {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             fetch('{path}').then(r => r.arrayBuffer()).then(b => {{
               let s = ''; const a = new Uint8Array(b);
               for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
               done(btoa(s));
             }}).catch(e => done('ERR ' + e));"
        );
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/async",
                json!({"script": script, "args": []}),
            )
            .await;
        let b64 = v.as_str().unwrap_or("");
        assert!(!b64.starts_with("ERR"), "fetch {path}: {b64}");
        decode64(b64).expect("base64")
    }
}

/// Assessment end to end: a teacher types a class's marks with the keyboard (Enter goes to the
/// next pupil); as professeur principal they write the council's remark; the direction closes
/// the semester for the class and re-issues its bulletins; the parent downloads the child's
/// bulletin, whose text shows the general average and rank of the class table.
#[tokio::test]
async fn marks_by_keyboard_then_council_then_bulletins_then_the_parent_downloads() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 1280, 900).await else {
        return;
    };
    let base = server.base();
    let teacher = server.login_of(Role::Enseignant).clone();
    let parent = server.login_of(Role::Parent).clone();
    let direction = server.login_of(Role::Direction).clone();
    // The parent's child's class: the teacher teaches it EPS and is its professeur principal;
    // the demo closed its semester, reopened here.
    let (class, child, child_name, period) = server
        .db
        .write_blocking(|tx| {
            let t: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&teacher.login],
                |r| r.get(0),
            )?;
            let (child, class, name): ([u8; 16], [u8; 16], String) = tx.query_row(
                "SELECT g.child_id, m.class_id, pe.surname || ' ' || pe.first_names FROM guardianships g \
                 JOIN accounts a ON a.person_id = g.parent_id \
                 JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' \
                 JOIN people pe ON pe.id = g.child_id WHERE a.login = ?1 LIMIT 1",
                [&parent.login],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO teachings (id, scope, school_year_id, teacher_id, class_id, subject_id, hours_per_week) \
                 SELECT ?1, 'school:TEST', id, ?2, ?3, (SELECT id FROM subjects WHERE code = 'EPS'), 2 FROM school_years LIMIT 1",
                (&kekeli::db::new_id()[..], &t, &class),
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'principal')",
                (&kekeli::db::new_id()[..], &class, &t),
            )?;
            let period: [u8; 16] = tx.query_row(
                "SELECT period_id FROM class_period_closures WHERE class_id = ?1",
                [&class],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM class_period_closures WHERE class_id = ?1", [&class])?;
            Ok::<_, kekeli::db::DbError>((class, child, name, period))
        })
        .expect("setup");
    let starts: String = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT starts_on FROM periods WHERE id = ?1",
                [&period],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("period");

    // 1. The teacher creates a devoir and types the grid from the keyboard.
    d.log_in(&base, &teacher.login, &teacher.password).await;
    d.click("a.tile[href='/notes']").await;
    d.wait_text("Mes évaluations").await;
    let eps = d
        .js(&format!(
            "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href')).find(h => h && h.startsWith('/notes/nouvelle?cours={}-'))",
            hex(&class)
        ))
        .await;
    let new_url = eps
        .as_str()
        .expect("new-assessment link for the class")
        .to_string();
    d.goto(&format!("{base}{new_url}")).await;
    d.wait_text("Nouvelle évaluation").await;
    d.type_in("#titre", "Devoir au clavier").await;
    d.js(&format!(
        "document.getElementById('date').value = '{starts}'; return 1"
    ))
    .await;
    d.click("form[action='/notes/evaluations'] button[type=submit]")
        .await;
    let grid = d.wait_text("Devoir au clavier").await;
    assert!(grid.contains(&child_name), "{grid}");
    // The pupils in page order; the child's row.
    let names = d
        .js("return [...document.querySelectorAll('table.grid tbody tr td:nth-child(2)')].map(td => td.innerText)")
        .await;
    let names: Vec<String> = names
        .as_array()
        .expect("names")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    let child_row = names
        .iter()
        .position(|n| *n == child_name)
        .expect("child row");
    d.click("#n1").await;
    // Every pupil from the keyboard: a mark then Enter; the child gets 17, one pupil "abs".
    for i in 0..names.len() {
        let value = if i == child_row {
            "17".to_string()
        } else if i == (child_row + 1) % names.len() {
            "abs".to_string()
        } else {
            format!("{},5", 8 + i % 10)
        };
        d.keys(&format!("{value}\u{E007}")).await;
    }
    let focused = d.js("return document.activeElement.tagName").await;
    assert_eq!(
        focused,
        json!("BUTTON"),
        "Enter after the last pupil reaches Enregistrer"
    );
    d.click("form.marks button[type=submit]").await;
    let saved = d.wait_text("Notes enregistrées").await;
    assert!(
        saved.contains(&format!("{} nouvelle", names.len())),
        "{saved}"
    );
    d.screenshot("marks-grid").await;

    // 2. As professeur principal: the council's remark on the child.
    d.goto(&format!("{base}/conseil/{}", hex(&class))).await;
    d.wait_text("Remarques et décisions du conseil").await;
    d.type_in(
        &format!("input[name='r_{}']", hex(&child)),
        " Félicitations pour l'EPS.",
    )
    .await;
    d.click("form[action^='/conseil/'] button.sticky").await;
    let council = d.wait_text("Conseil de classe enregistré").await;
    assert!(
        council.contains("Conseil de classe enregistré"),
        "{council}"
    );
    d.log_out().await;

    // 3. The direction closes the semester for the class and re-issues its bulletins.
    d.log_in(&base, &direction.login, &direction.password).await;
    d.goto(&format!("{base}/conseil/{}", hex(&class))).await;
    d.wait_text("Clôturer").await;
    // The close button first shows what is missing in the class, then asks to confirm.
    d.click("form[action$='/cloturer'] button").await;
    let checklist = d.wait_text("Avant de clôturer").await;
    assert!(
        checklist.contains("prête sur 1") || checklist.contains("prêtes sur 1"),
        "{checklist}"
    );
    d.screenshot("closing-checklist").await;
    d.click("form.confirm button").await;
    let closed = d.wait_text("clôturé pour cette classe").await;
    assert!(closed.contains("clôturé pour cette classe"), "{closed}");
    d.goto(&format!(
        "{base}/bulletins/classe/{}?periode={}",
        hex(&class),
        hex(&period)
    ))
    .await;
    d.wait_text("Réémettre").await;
    d.click("form[action$='/emettre'] button").await;
    d.wait_text("Avant d'émettre").await;
    d.click("form.confirm button").await;
    let issued = d.wait_text("inchangé").await;
    assert!(
        issued.contains("nouvelle version") || issued.contains("nouvelles versions"),
        "{issued}"
    );
    d.log_out().await;

    // 4. The parent downloads the child's newest bulletin; its text shows the class table's
    // general average and rank.
    let expected = server
        .db
        .read_blocking(|c| {
            let p = kekeli::grades::store::period(c, &period)?.expect("period");
            let r = kekeli::grades::council::results(c, &class, &p)?.expect("results");
            let i = r
                .data
                .pupils
                .iter()
                .position(|p| p.id == child)
                .expect("child");
            let feminine = r.data.pupils[i].sex.as_deref() == Some("F");
            let res = &r.result.pupils[i];
            Ok::<_, kekeli::db::DbError>((
                kekeli::grades::show(res.average, 2),
                res.rank.map(|k| k.french(feminine)).unwrap_or_default(),
            ))
        })
        .expect("expected");
    d.log_in(&base, &parent.login, &parent.password).await;
    d.goto(&format!("{base}/notes/eleve/{}", hex(&child))).await;
    d.wait_text("Bulletins").await;
    let href = d
        .js("return document.querySelector('a[href^=\"/bulletins/\"]').getAttribute('href')")
        .await;
    let pdf = d.fetch_bytes(href.as_str().expect("bulletin link")).await;
    assert!(pdf.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bulletin.pdf");
    std::fs::write(&path, &pdf).expect("write");
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&child_name), "{text}");
    assert!(text.contains("Félicitations pour l'EPS."), "{text}");
    let (average, rank) = expected;
    let summary = text
        .lines()
        .find(|l| l.contains("Moyenne de la période"))
        .unwrap_or("");
    assert!(
        summary.contains(&average) && summary.contains(&rank),
        "expected {average} and {rank} in: {summary}\n{text}"
    );
    d.quit().await;
    server.stop().await;
}

/// Links a crawl must not follow: leaving the session, files rather than pages.
fn not_a_page(href: &str) -> bool {
    let lower = href.to_ascii_lowercase();
    lower.starts_with("/deconnexion")
        || lower.starts_with("/static/")
        || [
            ".pdf", ".csv", ".ics", ".xlsx", ".zip", ".png", ".jpg", ".svg",
        ]
        .iter()
        .any(|e| lower.split('?').next().unwrap_or("").ends_with(e))
        || [
            "/pdf",
            "/document",
            "/piece/",
            "/export",
            "/logo",
            "/ical",
            "/telecharger",
        ]
        .iter()
        .any(|p| lower.contains(p))
}

/// The shape of an address: every 32-hex id (or long number) as `{}`, so one page per kind.
fn shape(href: &str) -> String {
    let path = href.split(['?', '#']).next().unwrap_or(href);
    path.split('/')
        .map(|seg| {
            if seg.len() >= 16
                && seg
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '-' || c == '.')
            {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every kind of page a person reaches from their home page, two taps deep, fits a 360 px
/// phone: nothing wider than the screen (wide tables scroll inside their own box). Each role
/// of the demo is walked; the overflowing pages are named with the elements that stick out.
#[tokio::test]
async fn no_page_a_person_reaches_overflows_a_360_px_phone() {
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 800).await else {
        return;
    };
    let base = server.base();
    // The measure sees an overflow when there is one.
    d.goto(&format!("{base}/connexion")).await;
    let wide = d
        .js("var e = document.createElement('div'); e.style.width = '500px'; e.style.height = '1px'; \
             document.body.appendChild(e); return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        .await;
    assert!(wide.as_i64().unwrap_or(0) > 0, "the measure: {wide}");
    let mut overflowing: Vec<String> = Vec::new();
    let mut visited_total = 0;
    for role in common::DEMO_ROLES {
        let l = server.login_of(role).clone();
        d.log_in(&base, &l.login, &l.password).await;
        let mut seen = std::collections::HashSet::new();
        let mut queue: std::collections::VecDeque<(String, u32)> =
            std::collections::VecDeque::from([("/".to_string(), 0)]);
        seen.insert(shape("/"));
        let mut visited = 0;
        while let Some((href, depth)) = queue.pop_front() {
            if visited >= 45 {
                break;
            }
            d.goto(&format!("{base}{href}")).await;
            let facts = d
                .js("var w = document.documentElement.clientWidth; \
                     var wide = Array.from(document.querySelectorAll('body *')).filter(function (e) { \
                       var r = e.getBoundingClientRect(); return r.right > w + 1 && r.width > 0 && getComputedStyle(e).position !== 'fixed' && !e.closest('.bar'); }) \
                       .filter(function (e) { for (var p = e.parentElement; p; p = p.parentElement) { \
                         var s = getComputedStyle(p); if (s.overflowX === 'auto' || s.overflowX === 'scroll' || s.overflowX === 'hidden') return false; } return true; }) \
                       .slice(-3).map(function (e) { return e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' «' + (e.textContent || '').slice(0, 40) + '»'; }); \
                     return [document.contentType, document.documentElement.scrollWidth - w, wide, \
                       Array.from(document.querySelectorAll('a[href^=\"/\"]')).map(function (a) { return a.getAttribute('href'); })];")
                .await;
            if facts[0].as_str() != Some("text/html") {
                continue;
            }
            visited += 1;
            let over = facts[1].as_i64().unwrap_or(0);
            if over > 0 {
                overflowing.push(format!(
                    "{role:?} {href}: {over} px too wide ({})",
                    facts[2]
                ));
            }
            if depth < 2
                && let Some(links) = facts[3].as_array()
            {
                for link in links.iter().filter_map(|v| v.as_str()) {
                    if not_a_page(link) || !seen.insert(shape(link)) {
                        continue;
                    }
                    queue.push_back((link.to_string(), depth + 1));
                }
            }
        }
        assert!(visited >= 5, "{role:?}: only {visited} pages reached");
        visited_total += visited;
        d.goto(&format!("{base}/")).await;
        d.log_out().await;
    }
    assert!(
        overflowing.is_empty(),
        "{} of {visited_total} pages overflow 360 px:\n{}",
        overflowing.len(),
        overflowing.join("\n")
    );
    d.quit().await;
    server.stop().await;
}

/// A teacher types marks on a phone: the mark column is on the screen (the matricule gives way
/// under 480 px), a wrong mark is marked as soon as the cursor leaves it, and abs / exc / nn
/// are buttons above the decimal keypad.
#[tokio::test]
async fn a_teacher_types_marks_on_a_phone() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 800).await else {
        return;
    };
    let teacher = server.login_of(Role::Enseignant).clone();
    let grid = server
        .db
        .write_blocking(|tx| {
            let me: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&teacher.login],
                |r| r.get(0),
            )?;
            let (class, subject): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT class_id, subject_id FROM teachings WHERE teacher_id = ?1 AND class_id IS NOT NULL LIMIT 1",
                [&me[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let today = common::today();
            let (period, starts): ([u8; 16], String) = tx.query_row(
                "SELECT id, starts_on FROM periods WHERE cycle = 'lycee' AND starts_on <= ?1 ORDER BY starts_on DESC LIMIT 1",
                [&today],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.execute("UPDATE periods SET closed_at = NULL WHERE id = ?1", [&period[..]])?;
            tx.execute("DELETE FROM class_period_closures WHERE period_id = ?1", [&period[..]])?;
            let id = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5, 'interrogation', 'Interrogation sur téléphone', ?6, 20, 0, 0)",
                (&id[..], &period[..], &class[..], &subject[..], &me[..], starts),
            )?;
            Ok::<_, kekeli::db::DbError>(format!("/notes/evaluation/{}", hex(&id)))
        })
        .expect("a grid to fill");
    let base = server.base();
    d.log_in(&base, &teacher.login, &teacher.password).await;
    d.goto(&format!("{base}{grid}")).await;
    d.wait_text("Interrogation sur téléphone").await;
    let layout = d
        .js("var i = document.getElementById('n1').getBoundingClientRect(), w = document.documentElement.clientWidth; \
             return [i.right <= w, getComputedStyle(document.querySelector('th.mat')).display, \
                     document.querySelector('.codes').hidden, document.getElementById('n1').getAttribute('inputmode'), \
                     document.documentElement.scrollWidth - w];")
        .await;
    assert_eq!(
        layout,
        json!([true, "none", false, "decimal", 0]),
        "{layout}"
    );
    d.click("#n1").await;
    d.keys("25").await;
    d.click("#n2").await;
    let first = d
        .js("return [document.getElementById('n1').getAttribute('aria-invalid'), document.getElementById('n1').closest('tr').className]")
        .await;
    assert_eq!(
        first,
        json!(["true", "invalid"]),
        "25 on 20 is marked at once"
    );
    d.click(".codes button[data-code=abs]").await;
    let after = d
        .js("return [document.getElementById('n2').value, document.activeElement.id]")
        .await;
    assert_eq!(
        after,
        json!(["abs", "n3"]),
        "the code fills the cell and moves on"
    );
    d.click("#n1").await;
    d.js("var i = document.getElementById('n1'); i.value = '';")
        .await;
    d.keys("12,5").await;
    d.click("#n3").await;
    let fixed = d
        .js("return document.getElementById('n1').hasAttribute('aria-invalid')")
        .await;
    assert_eq!(fixed, json!(false), "a corrected mark loses its mark");
    d.screenshot("marks-grid-phone").await;
    d.click(".grid-actions button[type=submit]").await;
    d.wait_text("enregistr").await;
    let saved = server
        .db
        .read_blocking(|c| {
            let mut st = c.prepare(
                "SELECT m.status, m.value FROM marks m JOIN assessments a ON a.id = m.assessment_id \
                 WHERE a.title = 'Interrogation sur téléphone' ORDER BY m.status",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<f64>>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, kekeli::db::DbError>(rows)
        })
        .expect("marks");
    assert_eq!(
        saved,
        vec![
            ("absent".to_string(), None),
            ("note".to_string(), Some(12.5))
        ]
    );
    d.quit().await;
    server.stop().await;
}

/// The pages of a PDF: its `/Type /Page` objects (not the `/Pages` tree).
fn pdf_pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf).replace("/Type /", "/Type/");
    text.match_indices("/Type/Page")
        .filter(|(i, m)| !text[i + m.len()..].starts_with('s'))
        .count()
}

/// The conseil de classe's table prints whole on A4 landscape: under print media at the
/// page's width nothing sticks out of it, the remarks form is left out, and the printed PDF
/// holds every pupil, the last column and the class statistics.
#[tokio::test]
async fn the_council_table_prints_whole_on_a4_landscape() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 1280, 900).await else {
        return;
    };
    let base = server.base();
    let direction = server.login_of(Role::Direction).clone();
    // The largest class: the longest table.
    let (class, names): (Vec<u8>, Vec<String>) = server
        .db
        .read_blocking(|c| {
            let class: Vec<u8> = c.query_row(
                "SELECT class_id FROM class_members WHERE role = 'eleve' GROUP BY class_id \
                 ORDER BY COUNT(*) DESC LIMIT 1",
                [],
                |r| r.get(0),
            )?;
            let mut st = c.prepare(
                "SELECT p.surname FROM class_members m JOIN people p ON p.id = m.person_id \
                 WHERE m.class_id = ?1 AND m.role = 'eleve' AND p.left_on IS NULL",
            )?;
            let names = st
                .query_map([&class], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok::<_, kekeli::db::DbError>((class, names))
        })
        .expect("class");
    assert!(names.len() >= 30, "{} pupils", names.len());
    d.log_in(&base, &direction.login, &direction.password).await;
    d.goto(&format!("{base}/conseil/{}", hex(&class))).await;
    d.wait_text("Remarques et décisions du conseil").await;

    // A4 landscape less 8 mm margins: 281 mm = 1062 CSS px wide.
    let cdp = |cmd: &'static str, params: Value| {
        let d = &d;
        async move {
            d.cmd(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                json!({ "cmd": cmd, "params": params }),
            )
            .await
        }
    };
    cdp("Emulation.setEmulatedMedia", json!({ "media": "print" })).await;
    cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1062, "height": 750, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    let measured = d
        .js("const t = document.querySelector('table.results'); \
             const form = document.querySelector(\"form[action^='/conseil/']\"); \
             return { table: Math.ceil(t.getBoundingClientRect().right), \
                      scroll: document.documentElement.scrollWidth, \
                      width: document.documentElement.clientWidth, \
                      rows: t.tBodies[0].rows.length, \
                      form: getComputedStyle(form.closest('.noprint') || form).display };")
        .await;
    let width = measured["width"].as_i64().expect("width");
    assert!(
        (1000..=1062).contains(&width),
        "the emulated page is the paper's width: {measured}"
    );
    assert!(
        measured["table"].as_i64().expect("table") <= width
            && measured["scroll"].as_i64().expect("scroll") <= width,
        "the table sticks out of the page: {measured}"
    );
    assert_eq!(measured["rows"].as_u64(), Some(names.len() as u64));
    assert_eq!(measured["form"], "none", "the remarks form is not printed");
    cdp("Emulation.setEmulatedMedia", json!({ "media": "" })).await;
    cdp("Emulation.clearDeviceMetricsOverride", json!({})).await;

    // Printed as the browser does, without shrinking to fit.
    let pdf = d
        .cmd(
            reqwest::Method::POST,
            "/print",
            json!({"orientation": "landscape", "shrinkToFit": false,
                   "page": {"width": 21.0, "height": 29.7},
                   "margin": {"top": 0.8, "bottom": 0.8, "left": 0.8, "right": 0.8}}),
        )
        .await;
    let pdf = pdf.as_str().and_then(decode64).expect("a PDF");
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/screenshots/council-print.pdf"
        ),
        &pdf,
    );
    let pages = pdf_pages(&pdf);
    assert!((1..=3).contains(&pages), "{pages} pages");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("conseil.pdf");
    std::fs::write(&path, &pdf).expect("write");
    let out = Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in &names {
        assert!(text.contains(name.as_str()), "{name} not printed:\n{text}");
    }
    for expected in ["Distinction", "Plus haute", "Plus basse"] {
        assert!(text.contains(expected), "{expected} not printed:\n{text}");
    }
    assert!(
        !text.contains("Remarques et décisions du conseil"),
        "the form is printed:\n{text}"
    );
    d.quit().await;
    server.stop().await;
}

/// On a phone: a parent writes to their child's professeur principal from the messages page,
/// the teacher finds it unread on the portal and answers, the parent reads the answer.
#[tokio::test]
async fn a_parent_writes_to_the_professeur_principal_who_answers_on_a_phone() {
    use kekeli::policy::Role;
    let server = TestServer::start().await;
    let Some(d) = Driver::start(&server, 360, 800).await else {
        return;
    };
    let base = server.base();
    let teacher = server.login_of(Role::Enseignant).clone();
    let parent = server.login_of(Role::Parent).clone();
    // The demo teacher is the professeur principal of the parent's child's class.
    let teacher_id: [u8; 16] = server
        .db
        .write_blocking(|tx| {
            let t: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&teacher.login],
                |r| r.get(0),
            )?;
            let class: [u8; 16] = tx.query_row(
                "SELECT m.class_id FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id \
                 JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' WHERE a.login = ?1 LIMIT 1",
                [&parent.login],
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM class_members WHERE class_id = ?1 AND role = 'principal'",
                [&class[..]],
            )?;
            tx.execute(
                "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'principal')",
                (&kekeli::db::new_id()[..], &class[..], &t[..]),
            )?;
            // No quiet hours: the answer reaches the parent whatever the hour of the test.
            tx.execute(
                "INSERT INTO messaging_settings (id, scope, quiet_from, quiet_to, updated_at) VALUES (?1, 'school:TEST', 0, 0, 0)",
                [&kekeli::db::new_id()[..]],
            )?;
            Ok::<_, kekeli::db::DbError>(t)
        })
        .expect("principal");

    d.log_in(&base, &parent.login, &parent.password).await;
    d.click("a[href='/messages']").await;
    d.wait_text("Nouveau message").await;
    d.click("a[href='/messages/nouveau']").await;
    d.wait_text("Destinataires").await;
    d.click(&format!("input[value='p:{}']", hex(&teacher_id)))
        .await;
    d.type_in("#m-sujet", "Absence de jeudi").await;
    d.type_in(
        "#m-texte",
        "Bonjour Monsieur, mon fils avait de la fièvre jeudi.",
    )
    .await;
    d.screenshot("message-compose-phone").await;
    d.click("button[value='envoyer']").await;
    let sent = d.wait_text("Message envoyé").await;
    assert!(sent.contains("mon fils avait de la fièvre"), "{sent}");
    d.log_out().await;

    d.log_in(&base, &teacher.login, &teacher.password).await;
    let home = d.text().await;
    assert!(home.contains("1 message non lu"), "{home}");
    d.click("a[href='/messages']").await;
    d.wait_text("Absence de jeudi").await;
    d.click("li.unread a").await;
    d.wait_text("mon fils avait de la fièvre").await;
    d.type_in("#m-texte", "Bien noté, bon rétablissement à lui.")
        .await;
    d.click("button[value='tous']").await;
    let answered = d.wait_text("Message envoyé").await;
    assert!(answered.contains("bon rétablissement"), "{answered}");
    d.log_out().await;

    d.log_in(&base, &parent.login, &parent.password).await;
    assert!(d.text().await.contains("1 message non lu"));
    d.click("a[href='/messages']").await;
    d.wait_text("Absence de jeudi").await;
    d.click("li.unread a").await;
    let read = d.wait_text("bon rétablissement").await;
    assert!(read.contains("Bien noté"), "{read}");
    let width = d
        .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        .await;
    assert!(
        width[0].as_i64() <= width[1].as_i64(),
        "the conversation overflows 360 px: {width}"
    );
    d.screenshot("message-thread-phone").await;
    d.quit().await;
    server.stop().await;
}
