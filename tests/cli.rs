//! The `kekeli` command line, run as a real process: init, user, serve --demo, healthcheck,
//! configuration errors and a graceful SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kekeli(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kekeli"));
    let config = data.with_extension("toml");
    if !config.exists() {
        std::fs::write(&config, "[mdns]\nenabled = false\n").expect("config");
    }
    c.arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(args);
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

fn run(data: &Path, args: &[&str]) -> Output {
    kekeli(data, args).output().expect("run kekeli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_creates_everything_once_and_prints_a_one_time_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let first = run(&data, &["init"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("Identifiant : technicien.tic"), "{out}");
    assert!(out.contains("Code d'activation"), "{out}");
    for file in [
        "kekeli.db",
        "secret.key",
        "tls/ca.crt",
        "tls/ca.key",
        "tls/leaf.crt",
    ] {
        assert!(data.join(file).exists(), "{file}");
    }
    let again = run(&data, &["init"]);
    assert!(again.status.success());
    assert!(
        !stdout(&again).contains("Code d'activation"),
        "no second account on a second start"
    );
}

#[test]
fn user_commands_manage_accounts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let add = run(
        &data,
        &[
            "user",
            "add",
            "--role",
            "enseignant",
            "--surname",
            "Amegah",
            "--first-names",
            "Kodjo Mawuli",
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(stdout(&add).contains("Identifiant : kodjo.amegah"));
    let bad = run(
        &data,
        &[
            "user",
            "add",
            "--role",
            "roi",
            "--surname",
            "X",
            "--first-names",
            "Y",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("rôle inconnu « roi »"),
        "{}",
        stderr(&bad)
    );

    let list = run(&data, &["user", "list", "--role", "enseignant"]);
    assert!(
        stdout(&list).contains("kodjo.amegah\tAMEGAH Kodjo Mawuli\tenseignant\tcode en attente"),
        "{}",
        stdout(&list)
    );
    let reset = run(&data, &["user", "reset-code", "kodjo.amegah"]);
    assert!(stdout(&reset).contains("Nouveau code d'activation pour kodjo.amegah"));
    let disable = run(&data, &["user", "disable", "kodjo.amegah"]);
    assert!(disable.status.success());
    assert!(
        stdout(&run(&data, &["user", "list"]))
            .contains("kodjo.amegah\tAMEGAH Kodjo Mawuli\tenseignant\tdésactivé")
    );
    let missing = run(&data, &["user", "disable", "personne"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("aucun compte"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn configuration_errors_are_clear() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::write(data.with_extension("toml"), "[http]\nhttps_prot = 443\n").expect("config");
    let o = run(&data, &["init"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("https_prot"), "{err}");
    let o = kekeli(&tmp.path().join("other"), &["init"])
        .env("KEKELI_HTTP__HTTPS_PORT", "huit")
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("KEKELI_HTTP__HTTPS_PORT"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_demo_never_fills_a_non_empty_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("notes.txt"), "à garder").expect("write");
    let o = run(
        &data,
        &["serve", "--demo", "--https-port", "0", "--http-port", "0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("n'est pas vide"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(&data).expect("dir").count(),
        1,
        "nothing written"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Start `kekeli serve ARGS` on a free port, stop it with SIGTERM as soon as the port answers,
/// and return how it ended.
fn serve_then_stop(data: &Path, args: &[&str]) -> Output {
    let port = free_port();
    let ps = port.to_string();
    let mut all = vec!["serve", "--https-port", &ps, "--http-port", "0"];
    all.extend_from_slice(args);
    let child = kekeli(data, &all)
        .env("KEKELI_HTTP__BIND", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "server never listened"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait_with_output().expect("wait")
}

#[test]
fn serve_demo_answers_healthcheck_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (https, http) = (free_port(), free_port());
    let (hs, ht) = (https.to_string(), http.to_string());
    // Stand in for systemd: a notify socket that must receive READY=1 and then STOPPING=1.
    let notify_path = tmp.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let child = kekeli(
        &data,
        &["serve", "--demo", "--https-port", &hs, "--http-port", &ht],
    )
    .env("KEKELI_HTTP__BIND", "127.0.0.1")
    .env("NOTIFY_SOCKET", &notify_path)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let health = |data: &Path| {
        kekeli(data, &["healthcheck"])
            .env("KEKELI_HTTP__HTTPS_PORT", &hs)
            .env("KEKELI_HTTP__HTTP_PORT", &ht)
            .output()
            .expect("healthcheck")
    };
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let start = Instant::now();
    loop {
        if health(&data).status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "server never became healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The HTTPS port alone, verified against the box's own CA.
    let tls_only = kekeli(&data, &["healthcheck"])
        .env("KEKELI_HTTP__HTTPS_PORT", &hs)
        .env("KEKELI_HTTP__HTTP_PORT", "0")
        .output()
        .expect("healthcheck");
    assert!(tls_only.status.success(), "{}", stderr(&tls_only));

    let logins = std::fs::read_to_string(data.join("demo-logins.txt")).expect("demo logins");
    for role in [
        "eleve",
        "parent",
        "enseignant",
        "vie_scolaire",
        "secretariat",
        "direction",
        "technicien",
        "invite",
    ] {
        assert!(
            logins
                .lines()
                .any(|l| l.split('\t').next() == Some(role) && l.split('\t').count() == 3),
            "{role}"
        );
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let n = notify.recv(&mut buf).expect("STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "exit after SIGTERM: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("Comptes de démonstration"), "{text}");
    // Logs go to standard error.
    assert!(stderr(&out).contains("stopped cleanly"), "{}", stderr(&out));
    assert!(
        !health(&data).status.success(),
        "healthcheck fails once stopped"
    );

    let conn = rusqlite::Connection::open(data.join("kekeli.db")).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let pupils: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM person_roles WHERE role = 'eleve'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!((350..=460).contains(&pupils), "{pupils} pupils");
}

#[test]
fn sigterm_lets_logins_in_flight_finish() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let port = free_port();
    let ps = port.to_string();
    let mut child = kekeli(
        &data,
        &["serve", "--demo", "--https-port", &ps, "--http-port", "0"],
    )
    .env("KEKELI_HTTP__BIND", "127.0.0.1")
    // One hash at a time: the demo's eight logins queue behind each other.
    .env("KEKELI_SECURITY__HASH_CONCURRENCY", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ca = std::fs::read(data.join("tls/ca.crt")).expect("ca");
    let logins = std::fs::read_to_string(data.join("demo-logins.txt")).expect("logins");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pid = child.id().to_string();
    let statuses = rt.block_on(async move {
        let mut pending = Vec::new();
        for line in logins.lines() {
            let mut f = line.split('\t');
            let (_, login, password) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
                .tls_built_in_root_certs(false)
                .resolve("kekeli.local", ([127, 0, 0, 1], port).into())
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client");
            let base = format!("https://kekeli.local:{port}");
            let page = client
                .get(format!("{base}/connexion"))
                .send()
                .await
                .expect("page");
            let csrf = page
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("__Host-kekeli-csrf="))
                .and_then(|v| v.split(';').next())
                .expect("csrf")
                .to_string();
            let (login, password) = (login.to_string(), password.to_string());
            pending.push(tokio::spawn(async move {
                client
                    .post(format!("{base}/connexion"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("login", &login),
                        ("password", &password),
                    ])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            }));
        }
        // SIGTERM once the first login is answered: the other seven are then in the server
        // (queued behind the one hash allowed at a time), not still on their way to it.
        while !pending.iter().any(|p| p.is_finished()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.expect("join"));
        }
        out
    });
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(statuses.len(), 8);
    for s in statuses {
        assert_eq!(
            s,
            Ok(303),
            "a login in flight when SIGTERM arrived was answered"
        );
    }
}

/// A training session in the holidays needs a school day with lessons: `--date` sets the demo's
/// day, builds the school year around it and keeps it for restarts; a wrong date is refused.
#[test]
fn the_demo_can_live_on_a_chosen_school_day() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let o = run(&data, &["serve", "--demo", "--date", "12/03/2030"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("date de démonstration invalide"),
        "{}",
        stderr(&o)
    );
    let o = run(&data, &["serve", "--date", "2030-03-12"]);
    assert!(!o.status.success(), "--date needs --demo");
    assert!(!data.join("kekeli.db").exists(), "nothing created");

    let serve_once = |args: &[&str]| {
        let mut all = vec!["--demo"];
        all.extend_from_slice(args);
        let out = serve_then_stop(&data, &all);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let text = serve_once(&["--date", "2030-03-12"]);
    assert!(text.contains("Démo datée du 12/03/2030"), "{text}");
    let conn = rusqlite::Connection::open(data.join("kekeli.db")).expect("open");
    let year: String = conn
        .query_row("SELECT name FROM school_years", [], |r| r.get(0))
        .expect("year");
    assert_eq!(year, "2029-2030");
    // The demo's fortnight of absences ends on its day, not on the real one.
    let last: String = conn
        .query_row(
            "SELECT MAX(on_date) FROM absences WHERE on_date <= '2030-03-12'",
            [],
            |r| r.get(0),
        )
        .expect("absences");
    assert!(last.as_str() >= "2030-03-02", "{last}");
    drop(conn);
    // Restarted without --date, it stays on its day.
    let text = serve_once(&[]);
    assert!(text.contains("Démo datée du 12/03/2030"), "{text}");
    assert!(text.contains("Démo existante réutilisée"), "{text}");
}

/// systemd may stop the box as soon as it answers (a quick restart): the stop must already be
/// a clean one then, not a kill. (The signal was listened for only once serving began: every
/// such stop killed the process.)
#[test]
fn a_stop_as_soon_as_the_port_answers_is_clean() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let o = run(&data, &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for _ in 0..5 {
        let out = serve_then_stop(&data, &[]);
        assert!(
            out.status.success(),
            "stopped by SIGTERM right after start: {:?}\n{}",
            out.status,
            stderr(&out)
        );
    }
}

/// The systemd watchdog is fed only while the writer answers: with the database's write lock
/// held by another process, the pings stop (systemd would restart the box); once it is
/// released they come back.
#[test]
fn the_watchdog_is_fed_only_while_the_writer_answers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let init = run(&data, &["init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let notify_path = tmp.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    let port = free_port().to_string();
    // systemd names the process the watchdog is for (WATCHDOG_PID): a shell that sets it to its
    // own pid, then becomes the server (`exec` keeps the pid).
    let config = data.with_extension("toml");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kekeli"))
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--https-port", &port, "--http-port", "0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .env("KEKELI_HTTP__BIND", "127.0.0.1")
        .env("NOTIFY_SOCKET", &notify_path)
        // Every 0.5 s.
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let recv_ping = |within: Duration| -> bool {
        notify.set_read_timeout(Some(within)).expect("timeout");
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            match notify.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") => {
                    return true;
                }
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
        false
    };
    assert!(
        recv_ping(Duration::from_secs(120)),
        "the watchdog is never fed"
    );
    // Another process takes the write lock: the writer cannot write any more.
    let conn = rusqlite::Connection::open(data.join("kekeli.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(60)).expect("busy");
    conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
    // A ping already on its way when the lock was taken may still come: let it.
    notify
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    while notify.recv(&mut buf).is_ok() {}
    assert!(
        !recv_ping(Duration::from_secs(4)),
        "the watchdog is fed while nothing can be written"
    );
    conn.execute_batch("ROLLBACK").expect("unlock");
    assert!(
        recv_ping(Duration::from_secs(60)),
        "the watchdog is not fed again once the writer answers"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
