//! Kekeli: an offline-first school digital workspace (ENT) appliance. `init` prepares a data
//! directory; `serve` runs the server until told to stop — tests run it in-process on port 0.

pub mod admin;
pub mod agenda;
pub mod app;
pub mod attendance;
pub mod auth;
pub mod backup;
pub mod booking;
pub mod bulletins;
pub mod competences;
pub mod config;
pub mod db;
pub mod demo;
pub mod discipline;
pub mod files;
pub mod grades;
pub mod id;
pub mod imports;
pub mod journal;
pub mod messages;
pub mod national;
pub mod net;
pub mod pdf;
pub mod people;
pub mod policy;
pub mod portal;
pub mod school;
pub mod state;
pub mod sync;
pub mod system;
pub mod text;
pub mod timetable;
pub mod usage;
pub mod web;

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use auth::store::{self, NewPerson, Secret};
use config::Config;
use db::{Db, DbError};
use net::tls::{Names, Pki, TlsError};
use policy::Role;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("dossier de données {path} : {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Everything `serve` needs, made by [`init`].
pub struct Prepared {
    pub db: Db,
    pub secret: Secret,
    pub pki: Option<Pki>,
    /// Set when this start created the first technician account: (login, one-time code).
    pub first_login: Option<(String, String)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Load the box's secret key, creating it (mode 0600) at first start.
fn load_secret(path: &Path) -> Result<Secret, InitError> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(Secret(key));
    }
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(&key).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(Secret(key))
}

/// Files the box creates — the database, uploaded documents, keys — are never readable by
/// other users of the machine, whoever started it (the packaged unit sets the same umask; a
/// technician running `kekeli serve` by hand from a shell with umask 022 would not).
pub fn restrict_umask() {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o027));
    // Keep a stricter mask if one was set.
    rustix::process::umask(old | Mode::from_raw_mode(0o027));
}

/// Prepare the data directory: folders, secret key, database and migrations, CA and certificate,
/// and the first technician account (with a one-time activation code) when there is none.
pub fn init(config: &Config) -> Result<Prepared, InitError> {
    restrict_umask();
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .map_err(io_err(dir))?;
    }
    let secret = load_secret(&dir.join("secret.key"))?;
    let db = Db::open(&config.db_path(), &config.school_code, 4)?;
    let pki = if config.http.tls {
        Some(Pki::load_or_create(
            &config.tls_dir(),
            &Names::of_this_box(&config.name),
        )?)
    } else {
        None
    };
    // A replacement box waiting for its school from the hub seeds nothing and makes no first
    // account: the school's own (and its technician's) come back with the first sync.
    let awaiting = matches!(sync::Enrollment::load(config), Ok(Some(e)) if e.awaiting_school());
    db.write_blocking(|tx| {
        if !awaiting {
            let scope = db::registry::school_scope(tx)?;
            school::seed_reference(tx, &scope)?;
            competences::seed(tx, &scope)?;
        }
        backup::key::ensure(tx, dir, db::now())
    })?;
    let days = config.security.activation_days;
    let first_login = db.write_blocking(|tx| {
        if awaiting || people::anyone_holds(tx, Role::Technicien)? {
            return Ok::<_, DbError>(None);
        }
        let issued = store::create_account_with_code(
            tx,
            &secret,
            &NewPerson {
                surname: "TIC".into(),
                first_names: "Technicien".into(),
                roles: vec![Role::Technicien],
                ..Default::default()
            },
            days,
            None,
            None,
        )?;
        Ok(Some((issued.login, issued.code)))
    })?;
    Ok(Prepared {
        db,
        secret,
        pki,
        first_login,
    })
}

/// The listening sockets; tests bind `127.0.0.1:0`.
pub struct Listeners {
    pub main: TcpListener,
    pub http: Option<TcpListener>,
}

/// The addresses people type to reach the box.
pub fn urls(config: &Config, main_port: u16) -> Vec<String> {
    let scheme = if config.http.tls { "https" } else { "http" };
    let port = match (scheme, main_port) {
        ("https", 443) | ("http", 80) => String::new(),
        (_, p) => format!(":{p}"),
    };
    let mut out = vec![format!("{scheme}://{}{port}", config.local_name())];
    let names = Names::of_this_box(&config.name);
    for ip in names.ips.iter().filter(|ip| !ip.is_loopback()) {
        match ip {
            IpAddr::V4(v4) => out.push(format!("{scheme}://{v4}{port}")),
            IpAddr::V6(v6) => out.push(format!("{scheme}://[{v6}]{port}")),
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("adresse d'écoute : {0}")]
    Io(#[from] std::io::Error),
}

/// Run the server until `shutdown` completes; in-flight requests finish, then the database is
/// checkpointed and closed.
pub async fn serve(
    config: Config,
    prepared: Prepared,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let main_port = listeners.main.local_addr()?.port();
    let urls = urls(&config, main_port);
    let pki = prepared.pki.map(Arc::new);
    let ca_pem = pki.as_ref().map(|p| p.ca_pem.clone()).unwrap_or_default();
    let tls_config = match &pki {
        Some(pki) => Some(Arc::new(pki.server_config()?)),
        None => None,
    };
    let timeouts = auth::session::Timeouts {
        staff_idle_secs: config.security.staff_idle_minutes * 60,
        family_idle_secs: config.security.family_idle_minutes * 60,
        absolute_secs: config.security.session_hours * 3600,
    };
    let state = app::AppState(Arc::new(app::Inner {
        db: prepared.db.clone(),
        hasher: auth::password::Hasher::new(config.security.hash_concurrency),
        secret: prepared.secret.clone(),
        login_limits: Default::default(),
        timeouts,
        metrics: Default::default(),
        assets: web::assets::Assets::new(&config.data_dir.join("branding"), true),
        started: Instant::now(),
        ca_pem,
        urls: urls.clone(),
        sessions: Default::default(),
        weeks: Default::default(),
        marks_pages: crate::grades::cache::marks_pages(),
        messages_directory: Default::default(),
        bulletin_job: Default::default(),
        backups: Default::default(),
        sync: Default::default(),
        connections: Default::default(),
        flash: Default::default(),
        unsent: Default::default(),
        usage: Default::default(),
        main_port,
        clock: school::calendar::Clock::of(&config),
        config: config.clone(),
    }));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let limits = net::server::Limits::of(&config.http);
    servers.push(tokio::spawn(net::server::run(
        listeners.main,
        app::router(state.clone()),
        tls_config,
        limits,
        state.connections.clone(),
        stop_rx.clone(),
    )));
    if let Some(http) = listeners.http {
        servers.push(tokio::spawn(net::server::run(
            http,
            system::http_router(state.clone()),
            None,
            limits,
            state.connections.clone(),
            stop_rx.clone(),
        )));
    }

    let _usb = sync::usb::watch(state.db.clone(), config.clone());

    let _mdns = if config.mdns.enabled {
        let addrs = Names::of_this_box(&config.name).ips;
        match net::mdns::announce(&config.name, main_port, &addrs) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS announcement failed; the box stays reachable by address");
                None
            }
        }
    } else {
        None
    };

    // Housekeeping: expired sessions, certificate renewal.
    let housekeeping = {
        let state = state.clone();
        let mut stop = stop_rx.clone();
        let pki = pki.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            let mut cert_check = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = net::server::stopped(&mut stop) => break,
                }
                let t = state.timeouts;
                if let Err(e) = state
                    .db
                    .write(move |tx| auth::session::purge_expired(tx, &t))
                    .await
                {
                    tracing::warn!(error = %e, "session purge failed");
                }
                write_usage(&state).await;
                if cert_check.elapsed() > Duration::from_secs(12 * 3600) {
                    cert_check = Instant::now();
                    if let Some(pki) = &pki {
                        renew_certificate(pki.clone(), state.config.name.clone()).await;
                    }
                }
            }
        })
    };

    // Every second, off the async workers: look for writes by another process (`kekeli
    // import`, `kekeli user disable` while serving), which do not pass through this server's
    // writer, so the session and timetable caches drop what they may have changed; and copy
    // the WAL into the main file, so no request's commit pays for it.
    if let Err(e) = state.db.checkpoint_in_background() {
        tracing::warn!(error = %e, "background checkpoints unavailable; commits will run them");
    }
    let other_writers = {
        let db = state.db.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = net::server::stopped(&mut stop) => break,
                }
                let db = db.clone();
                let seen = tokio::task::spawn_blocking(move || {
                    if let Err(e) = db.checkpoint_passive() {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                    db.notice_other_writers()
                });
                match seen.await {
                    Ok(Ok(true)) => tracing::debug!("another process wrote to the database"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "database version check failed"),
                    Err(e) => tracing::warn!(error = %e, "database version check interrupted"),
                }
            }
        })
    };

    // A disk marked for backups plugged in gets a backup at once.
    let disks = tokio::spawn(backup::watch::watch_disks(state.clone(), stop_rx.clone()));

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = {
        let mut usec = 0u64;
        let mut stop = stop_rx.clone();
        let db = state.db.clone();
        sd_notify::watchdog_enabled(false, &mut usec).then(|| {
            tokio::spawn(async move {
                // Fed only while the writer answers: a server whose writes are stuck keeps
                // serving pages, and only systemd restarting it gets the school saving again.
                let period = Duration::from_micros(usec / 2);
                let probe = (period / 2).min(system::WRITER_PROBE);
                let mut tick = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = net::server::stopped(&mut stop) => break,
                    }
                    match db.probe_writer(probe).await {
                        Ok(()) => {
                            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "writer not answering; watchdog not fed")
                        }
                    }
                }
            })
        })
    };
    for url in &urls {
        tracing::info!(%url, "serving");
    }

    shutdown.await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let _ = housekeeping.await;
    write_usage(&state).await;
    let _ = other_writers.await;
    let _ = disks.await;
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    let db = prepared.db;
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = db.checkpoint() {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
    })
    .await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Write what the usage counter holds, and close the days before today (`usage`).
async fn write_usage(state: &app::AppState) {
    let seen = state.usage.take();
    let today = state.clock.today_iso();
    if let Err(e) = state
        .db
        .write(move |tx| {
            usage::write(tx, &seen)?;
            usage::close_days(tx, &today)
        })
        .await
    {
        tracing::warn!(error = %e, "usage indicators not written");
    }
}

/// Renew the HTTPS leaf if it nears expiry or the box's addresses changed; new connections get
/// the new leaf at once (the resolver is swapped in place).
async fn renew_certificate(pki: Arc<Pki>, name: String) {
    let _ = tokio::task::spawn_blocking(move || {
        match pki.renew_if_needed(&Names::of_this_box(&name), time::OffsetDateTime::now_utc()) {
            Ok(true) => tracing::info!("HTTPS certificate renewed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
        }
    })
    .await;
}
