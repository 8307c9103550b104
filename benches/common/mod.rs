//! Helpers shared by the benchmarks: the server as a separate release process pinned to CPU 0,
//! HTTPS clients that log in like a browser, percentiles and /proc figures.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("could not pin the load generator to CPU {cpu}: {e}");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// (user+system CPU seconds, RSS in MiB) of a process, from /proc.
pub fn proc_stats(pid: u32) -> (f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let cpu = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu / ticks, rss_kib / 1024.0)
}

/// The password every benchmark account gets.
pub const PASSWORD: &str = "Mesure-du-cout-1";

/// The demo school on a fresh data directory (kept while the `TempDir` lives), and the PHC
/// string of [`PASSWORD`] (hashed once) for the caller to give its accounts.
pub fn demo_school() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    kekeli::Prepared,
    String,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = kekeli::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    let prepared = kekeli::init(&config).expect("init");
    let year = kekeli::demo::school_year_of(time::OffsetDateTime::now_utc());
    kekeli::demo::populate(&prepared.db, &data, year).expect("demo");
    let phc = kekeli::auth::password::hash_blocking(PASSWORD).expect("hash");
    (tmp, data, prepared, phc)
}

/// Time the hypervisor gave CPU `cpu` to someone else (steal), in ms since boot (Linux
/// `/proc/stat`). A slow spell of the benchmark with steal is the VM's, not the server's.
pub fn steal_ms(cpu: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    stat.lines()
        .find(|l| l.starts_with(&name))
        .and_then(|l| l.split_whitespace().nth(8)?.parse::<f64>().ok())
        .map(|ticks| ticks * 10.0)
        .unwrap_or(0.0)
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub ca: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub fn start_server(data: &std::path::Path) -> (Server, Duration) {
    let port = free_port();
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[mdns]\nenabled = false\n[http]\nbind = \"127.0.0.1\"\nhttp_port = 0\n",
    )
    .expect("config");
    let started = Instant::now();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        // BENCH_SERVER_BIN: another build of the server (to compare two versions run by turns).
        .arg(
            std::env::var_os("BENCH_SERVER_BIN")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_kekeli").into()),
        )
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(["--https-port", &port.to_string()])
        // BENCH_SERVER_LOG (e.g. `kekeli::db=debug`) to see the server's own timings.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("BENCH_STORM_USERS")
        .env_remove("BENCH_STORM_SECS")
        .env_remove("BENCH_SESSIONS")
        .env_remove("BENCH_PORTAL_SECS")
        .env_remove("BENCH_OPEN_RATE")
        .env_remove("BENCH_WEEK_SECS")
        .env_remove("BENCH_ROLLCALL_ROUNDS")
        .env_remove("BENCH_READ_RATE")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server (is taskset installed?)");
    // Cold start: until the first answered request.
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
    }
    let ca = std::fs::read_to_string(data.join("tls/ca.crt")).expect("ca");
    (Server { child, port, ca }, started.elapsed())
}

pub fn client(server: &Server, source: Option<IpAddr>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca.as_bytes()).expect("ca"))
        .tls_built_in_root_certs(false)
        .resolve("kekeli.local", ([127, 0, 0, 1], server.port).into())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4);
    if let Some(ip) = source {
        b = b.local_address(ip);
    }
    b.build().expect("client")
}

pub async fn login(
    c: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
) -> Result<(), String> {
    login_csrf(c, base, login, password).await.map(|_| ())
}

/// Log in; returns the browser's CSRF token for the forms that follow.
pub async fn login_csrf(
    c: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
) -> Result<String, String> {
    let page = c
        .get(format!("{base}/connexion"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-kekeli-csrf="))
        .and_then(|v| v.split(';').next())
        .ok_or("no csrf cookie")?
        .to_string();
    let _ = page.bytes().await;
    let r = c
        .post(format!("{base}/connexion"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", login),
            ("password", password),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 303 {
        return Err(format!("login status {}", r.status()));
    }
    // Login hands out a fresh CSRF token; the forms that follow need that one.
    let fresh = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-kekeli-csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    Ok(fresh.unwrap_or(csrf))
}

/// One portal page, read to the end; false on any error or non-200 answer.
pub async fn portal_ok(c: &reqwest::Client, base: &str) -> bool {
    match c.get(format!("{base}/")).send().await {
        // A logged-in page (its logout form), not a login page served with 200.
        Ok(r) if r.status() == 200 => r
            .bytes()
            .await
            .is_ok_and(|b| b.windows(13).any(|w| w == b"/deconnexion\"")),
        _ => false,
    }
}

/// One page read to the end; false on any error or non-200 answer.
pub async fn page_ok(c: &reqwest::Client, url: &str) -> bool {
    match c.get(url).send().await {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// Logged-in clients each reading their page (`paths[i]` for client i) until `stop` is set:
/// in a closed loop (`rate` = None: as fast as the server answers) or together at `rate`
/// pages/s (people read between clicks). Each task returns its latencies and errors.
pub fn readers(
    clients: &[reqwest::Client],
    base: &str,
    paths: &[String],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    rate: Option<u64>,
) -> Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>> {
    let n = clients.len().max(1);
    let every = rate.map(|r| Duration::from_secs_f64(n as f64 / r.max(1) as f64));
    let start = Instant::now();
    clients
        .iter()
        .cloned()
        .zip(paths.iter())
        .enumerate()
        .map(|(i, (c, path))| {
            let url = format!("{base}{path}");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                let mut due = every.map(|e| start + e.mul_f64(i as f64 / n as f64));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let (Some(d), Some(e)) = (due.as_mut(), every) {
                        // In slices: at a slow pace (one page every few minutes per session)
                        // the run still ends as soon as it is told to.
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let left = d.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break;
                            }
                            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
                        }
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        *d += e;
                    }
                    let t = Instant::now();
                    if !page_ok(&c, &url).await {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            })
        })
        .collect()
}

/// Join the per-session tasks: (requests made, errors, every latency).
pub async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
) -> (usize, usize, Vec<Duration>) {
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("join");
        all.extend(l);
        errors += e;
    }
    (all.len(), errors, all)
}

/// A memory figure of this process from /proc/self/status (`VmHWM`, `VmRSS`…), in MiB.
fn own_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// Peak resident memory of this process since the last [`reset_peak`], in MiB (Linux VmHWM).
pub fn peak_mib() -> f64 {
    own_status_mib("VmHWM:")
}

/// Reset the peak (Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM to the current RSS).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Resident memory of this process now, in MiB (Linux VmRSS).
pub fn rss_mib() -> f64 {
    own_status_mib("VmRSS:")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A teacher's login, the key of a lesson of theirs today, and its pupils' ids (hex).
pub type Sheet = (String, String, Vec<String>);

/// Every account gets the password whose PHC string is `phc`; `teachers` teachers each get a
/// lesson `today` in one of their classes (an extra session, so a benchmark runs any day).
/// Returns the pupils' logins and the teachers' roll-call sheets.
pub fn roll_call_sheets(
    db: &kekeli::db::Db,
    phc: &str,
    today: time::Date,
    teachers: usize,
) -> (Vec<String>, Vec<Sheet>) {
    use kekeli::school::calendar;
    let phc = phc.to_string();
    db.write_blocking(move |tx| {
        tx.execute("UPDATE accounts SET password_hash = ?1", [&phc])?;
        let pupils: Vec<String> = tx
            .prepare(
                "SELECT a.login FROM accounts a JOIN person_roles r ON r.person_id = a.person_id \
                 WHERE r.role = 'eleve' ORDER BY a.login",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let teams: Vec<(String, [u8; 16], [u8; 16])> = tx
            .prepare(
                "SELECT a.login, m.person_id, m.class_id FROM class_members m JOIN accounts a ON a.person_id = m.person_id \
                 WHERE m.role = 'enseignant' GROUP BY m.person_id ORDER BY a.login",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let subject: [u8; 16] = tx.query_row("SELECT id FROM subjects LIMIT 1", [], |r| r.get(0))?;
        let mut sheets = Vec::new();
        for (login, teacher, class) in teams.into_iter().take(teachers) {
            let change = kekeli::timetable::store::create_change(
                tx,
                "school:ECOLE",
                &kekeli::timetable::store::NewChange {
                    kind: "supplementaire".into(),
                    on_date: calendar::iso(today),
                    starts: Some(420),
                    ends: Some(540),
                    teacher_id: Some(teacher),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &teacher,
            )?;
            let ids: Vec<[u8; 16]> = tx
                .prepare("SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve'")?
                .query_map([&class[..]], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sheets.push((
                login,
                kekeli::timetable::store::OccKey::Change(change).encode(),
                ids.iter().map(|i| hex(i)).collect(),
            ));
        }
        Ok::<_, kekeli::db::DbError>((pupils, sheets))
    })
    .expect("setup")
}

/// Teachers saving roll calls every `every` until `stop`: the latency of each save.
pub fn roll_call_probes(
    rt: &tokio::runtime::Runtime,
    teachers: &[(reqwest::Client, String, String, Vec<String>)],
    base: &str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>> {
    teachers
        .iter()
        .cloned()
        .map(|(c, csrf, key, ids)| {
            let (base, stop) = (base.to_string(), stop.clone());
            rt.spawn(async move {
                let (mut lat, mut errors, mut round) = (Vec::new(), 0, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let mut form = vec![("csrf".to_string(), csrf.clone())];
                    for (i, id) in ids.iter().enumerate() {
                        let mark = if (i + round) % 11 == 0 {
                            "absent"
                        } else {
                            "present"
                        };
                        form.push((format!("p_{id}"), mark.to_string()));
                    }
                    let t = Instant::now();
                    let ok = matches!(
                        c.post(format!("{base}/appel/{key}")).form(&form).send().await,
                        Ok(r) if r.status() == 303
                    );
                    lat.push(t.elapsed());
                    if !ok {
                        errors += 1;
                    }
                    round += 1;
                    tokio::time::sleep(every).await;
                }
                (lat, errors)
            })
        })
        .collect()
}

pub fn probe_summary(
    rt: &tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
) -> String {
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = rt.block_on(t).expect("probe");
        all.extend(l);
        errors += e;
    }
    all.sort();
    format!(
        "{} saves, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {errors}",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    )
}
