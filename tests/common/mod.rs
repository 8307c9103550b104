//! Test harness: the real server in-process on 127.0.0.1:0 over real TLS, with a temporary
//! data directory, and a small cookie-keeping HTTPS client that speaks to it as a browser would.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use kekeli::config::Config;
use kekeli::demo::DemoLogin;
use kekeli::policy::Role;
use reqwest::cookie::CookieStore;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ca_pem: String,
    pub logins: Vec<DemoLogin>,
    pub first_login: Option<(String, String)>,
    pub db: kekeli::db::Db,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), kekeli::ServeError>>>,
}

pub struct Options {
    pub demo: bool,
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            demo: true,
            tweak: Box::new(|_| {}),
        }
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        pin_clock();
        log_if_asked();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            school_code: "TEST".into(),
            school_name: "Lycée de test".into(),
            ..Config::default()
        };
        config.mdns.enabled = false;
        (opts.tweak)(&mut config);
        let data = config.data_dir.clone();
        let cfg = config.clone();
        let demo = opts.demo;
        let (prepared, logins) = tokio::task::spawn_blocking(move || {
            let prepared = kekeli::init(&cfg).expect("init");
            let logins = if demo {
                let logins =
                    kekeli::demo::populate(&prepared.db, &data, school_year()).expect("demo");
                kekeli::demo::issue_bulletins(&prepared.db, &cfg).expect("demo bulletins");
                logins
            } else {
                Vec::new()
            };
            (prepared, logins)
        })
        .await
        .expect("join");
        let first_login = prepared.first_login.clone();
        let db = prepared.db.clone();
        let ca_pem = prepared
            .pki
            .as_ref()
            .map(|p| p.ca_pem.clone())
            .unwrap_or_default();
        let main = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = main.local_addr().expect("addr");
        let http_addr = http.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(kekeli::serve(
            config.clone(),
            prepared,
            kekeli::Listeners {
                main,
                http: Some(http),
            },
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            dir,
            config,
            addr,
            http_addr,
            ca_pem,
            logins,
            first_login,
            db,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// The base URL, by the box's mDNS name (resolved to the test address by the client).
    pub fn base(&self) -> String {
        format!("https://kekeli.local:{}", self.addr.port())
    }

    pub fn http_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_addr.port())
    }

    pub fn browser(&self) -> Browser {
        self.browser_from(None)
    }

    /// A browser whose connections come from `source` (another loopback address).
    pub fn browser_from(&self, source: Option<IpAddr>) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca"),
            )
            .tls_built_in_root_certs(false)
            .resolve("kekeli.local", self.addr)
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ip) = source {
            builder = builder.local_address(ip);
        }
        Browser {
            client: builder.build().expect("client"),
            jar,
            base: self.base(),
        }
    }

    pub fn login_of(&self, role: Role) -> &DemoLogin {
        self.logins
            .iter()
            .find(|l| l.role == role)
            .expect("demo login for role")
    }

    /// A browser logged in as the demo account of `role`.
    pub async fn logged_in(&self, role: Role) -> Browser {
        let l = self.login_of(role).clone();
        let b = self.browser();
        let r = b.login(&l.login, &l.password).await;
        assert_eq!(r.status(), 303, "login as {role:?}");
        b
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("serve ended cleanly");
        }
        self.dir
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let url: reqwest::Url = self.base.parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    /// The CSRF token, fetching a page first if the browser has none yet.
    pub async fn csrf(&self) -> String {
        if let Some(t) = self.cookie("__Host-kekeli-csrf") {
            return t;
        }
        self.get("/connexion").await;
        self.cookie("__Host-kekeli-csrf").expect("csrf cookie")
    }

    /// POST a form with the CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.client
            .post(self.url(path))
            .form(&all)
            .send()
            .await
            .expect("POST")
    }

    /// POST a multipart form (text fields, and optionally one file) with the CSRF token added.
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, Vec<u8>)>,
    ) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut form = reqwest::multipart::Form::new().text("csrf", csrf);
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some((field, name, bytes)) = file {
            form = form.part(
                field.to_string(),
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("POST multipart")
    }

    /// POST a form exactly as given (no CSRF added).
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn login(&self, login: &str, password: &str) -> reqwest::Response {
        self.post("/connexion", &[("login", login), ("password", password)])
            .await
    }
}

/// The tests' school day: Tuesday 24 November 2026, from 10:00 UTC on, a day of the demo's
/// first semester with lessons, no holiday near. CI runs on any day, at any hour (a Saturday, in
/// August, at 23:59); the school's clock is set here once per test process so that the tests
/// do not depend on it. Only school dates move; sessions and certificates keep the real clock.
pub const SCHOOL_DAY: time::OffsetDateTime = time::macros::datetime!(2026-11-24 10:00 UTC);

/// With `RUST_LOG` set (`RUST_LOG=kekeli=debug cargo nextest run … --no-capture`), the
/// server's log goes to the test's output.
fn log_if_asked() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// Every role the demo school has a login for, families first.
pub const DEMO_ROLES: [Role; 7] = [
    Role::Eleve,
    Role::Parent,
    Role::Enseignant,
    Role::VieScolaire,
    Role::Direction,
    Role::Secretariat,
    Role::Technicien,
];

pub fn pin_clock() {
    static PIN: std::sync::Once = std::sync::Once::new();
    PIN.call_once(|| kekeli::school::calendar::set_clock(SCHOOL_DAY));
}

/// The school year the demo is built for: the one under way on the tests' school day.
pub fn school_year() -> i32 {
    pin_clock();
    kekeli::demo::school_year_of(kekeli::school::calendar::utc_now())
}

/// `MM-DD` of the school year's first calendar year when the month is August or later, of the
/// second otherwise, as ISO `YYYY-MM-DD`.
pub fn in_year(month_day: &str) -> String {
    let y = school_year();
    let month: u32 = month_day.get(..2).and_then(|m| m.parse().ok()).unwrap_or(1);
    format!("{}-{month_day}", if month >= 8 { y } else { y + 1 })
}

/// Bytes as lowercase hexadecimal (how ids appear in URLs and forms).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The value of `name` in the query string of `loc` (a redirect's location), decoded.
pub fn query_param(loc: &str, name: &str) -> String {
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    let q = q.split_once('#').map(|(q, _)| q).unwrap_or(q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Count audit rows with `action`.
pub fn audit_count(server: &TestServer, action: &str) -> i64 {
    let action = action.to_string();
    server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = ?1",
                [&action],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("audit count")
}

/// Create `n` accounts with a known password directly in the database.
pub fn make_accounts(server: &TestServer, n: usize, password: &str) -> Vec<String> {
    let phc = kekeli::auth::password::hash_blocking(password).expect("hash");
    server
        .db
        .write_blocking(|tx| {
            let mut logins = Vec::new();
            for i in 0..n {
                let (_, account, login) = kekeli::auth::store::create_person(
                    tx,
                    "school:TEST",
                    &kekeli::auth::store::NewPerson {
                        surname: format!("CLASSE{i}"),
                        first_names: "Eleve".into(),
                        roles: vec![kekeli::policy::Role::Eleve],
                        ..Default::default()
                    },
                )?;
                kekeli::auth::store::set_password(tx, &account, &phc, None)?;
                logins.push(login);
            }
            Ok::<_, kekeli::db::DbError>(logins)
        })
        .expect("accounts")
}

/// An extra session yesterday for `class`, taught by `teacher`: a session that exists whatever
/// the date the test runs (holidays included).
pub fn extra_session(server: &TestServer, teacher: &[u8], class: &[u8]) -> String {
    use kekeli::timetable::store::{NewChange, OccKey, create_change};
    let yesterday = kekeli::school::calendar::now(0).date - time::Duration::days(1);
    let teacher: [u8; 16] = teacher.try_into().expect("id");
    let class: [u8; 16] = class.try_into().expect("id");
    let id = server
        .db
        .write_blocking(|tx| {
            let subject: [u8; 16] =
                tx.query_row("SELECT id FROM subjects LIMIT 1", [], |r| r.get(0))?;
            create_change(
                tx,
                "school:TEST",
                &NewChange {
                    kind: "supplementaire".into(),
                    on_date: kekeli::school::calendar::iso(yesterday),
                    starts: Some(14 * 60),
                    ends: Some(15 * 60),
                    teacher_id: Some(teacher),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &teacher,
            )
        })
        .expect("extra session");
    OccKey::Change(id).encode()
}

/// What a redirect tells the person: the page at its `Location`, as `b` sees it, and the text
/// of that page's error box (`name` = "erreur") or confirmation (`name` = "ok"). Messages are
/// kept by the server for the browser that caused them; the URL carries only their id.
pub async fn flash(b: &Browser, r: &reqwest::Response, name: &str) -> String {
    let loc = location(r);
    assert!(
        !query_param(&loc, name).is_empty(),
        "no {name} in the redirect {loc}"
    );
    let html = b.text(&loc).await;
    // The paragraph's class may carry more than its kind (`notice held`).
    let (class, role) = if name == "erreur" {
        ("<p class=\"error", "role=\"alert\">")
    } else {
        ("<p class=\"notice", "role=\"status\">")
    };
    html.split_once(class)
        .and_then(|(_, rest)| rest.split_once(role))
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(text, _)| unescape(text))
        .unwrap_or_default()
}

/// The few HTML escapes the templates write.
pub fn unescape(s: &str) -> String {
    s.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// [`flash`] for whichever of `ok` and `erreur` the redirect carries.
pub async fn message(b: &Browser, r: &reqwest::Response) -> String {
    let loc = location(r);
    let name = if query_param(&loc, "erreur").is_empty() {
        "ok"
    } else {
        "erreur"
    };
    flash(b, r, name).await
}

/// The tests' school date, `YYYY-MM-DD` (the school clock of a box at UTC, as the tests' is).
pub fn today() -> String {
    pin_clock();
    kekeli::school::calendar::Clock {
        utc_offset_minutes: 0,
    }
    .today_iso()
}
