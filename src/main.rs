//! The `kekeli` command: serve, init, user, healthcheck. A thin layer over the library; the only
//! place where `anyhow` is used. Output for people is in French.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use kekeli::auth::store::{self, AccountFilter, NewPerson};
use kekeli::config::Config;
use kekeli::policy::Role;

#[derive(Parser)]
#[command(
    name = "kekeli",
    version,
    about = "Kekeli — espace numérique de travail hors ligne pour les lycées"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Fichier de configuration (défaut : /etc/kekeli/kekeli.toml s'il existe)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Dossier de données (défaut : ./kekeli-data ou KEKELI_DATA)
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Démarrer le serveur
    Serve {
        /// Remplir un dossier vide avec un lycée de démonstration
        #[arg(long)]
        demo: bool,
        /// Avec --demo : faire vivre la démo à cette date (AAAA-MM-JJ), par exemple un jour de
        /// classe pour une formation pendant les vacances. L'heure reste celle de l'horloge.
        #[arg(long, value_name = "AAAA-MM-JJ", requires = "demo")]
        date: Option<String>,
        /// Port HTTPS (défaut 8443)
        #[arg(long)]
        https_port: Option<u16>,
        /// Port HTTP de redirection et de la page /ca (défaut 8080, 0 pour aucun)
        #[arg(long)]
        http_port: Option<u16>,
    },
    /// Préparer le dossier de données, l'autorité de certification et le premier compte, sans servir
    Init,
    /// Gérer les comptes
    #[command(subcommand)]
    User(UserCommand),
    /// Vérifier que le serveur en marche répond (code de sortie 0 si oui)
    Healthcheck,
    /// Exporter des résultats (procès-verbal d'une classe pour une période)
    #[command(subcommand)]
    Export(ExportCommand),
    /// Importer un fichier CSV ou XLSX : tout ou rien, avec un rapport par ligne
    Import {
        /// pupils, parents, staff, classes, coefficients, timetable ou marks
        kind: String,
        /// Le fichier (.csv ou .xlsx)
        file: PathBuf,
        /// Montrer ce qui serait fait, sans rien enregistrer
        #[arg(long)]
        dry_run: bool,
        /// Enregistrer aussi les départs (élèves des classes du fichier qui n'y sont plus)
        #[arg(long)]
        confirm_departures: bool,
    },
    /// Synchroniser avec le portail national (inscription, synchronisation, état)
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Sauvegarder la box (base, fichiers, configuration, certificats), chiffré pour la clé de
    /// la fiche de récupération, pendant qu'elle sert
    Backup {
        /// Dossier de destination (défaut : backup.to de la configuration, sinon un disque
        /// branché qui contient un dossier « kekeli-sauvegardes »)
        #[arg(long)]
        to: Option<PathBuf>,
        /// Lancé par le minuteur kekeli-backup.timer (noté comme tel dans l'historique)
        #[arg(long, hide = true)]
        timer: bool,
    },
    /// Vérifier une sauvegarde : avec la clé, tout (déchiffrement, base, fichiers) ; sans, les
    /// octets sur le disque
    Verify {
        /// Le fichier .kbk de la sauvegarde
        backup: PathBuf,
        /// Fichier contenant la clé de la fiche de récupération (« - » : la taper)
        #[arg(long)]
        recovery_key: Option<PathBuf>,
    },
    /// Restaurer une sauvegarde dans un dossier de données vide (--data), par exemple sur une
    /// nouvelle box
    Restore {
        /// Le fichier .kbk de la sauvegarde
        backup: PathBuf,
        /// Fichier contenant la clé de la fiche de récupération (sans lui : la taper)
        #[arg(long)]
        recovery_key: Option<PathBuf>,
        /// Restaurer même si le dossier n'est pas vide (son contenu est mis de côté)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Le tableau des résultats d'une classe : une ligne par élève, puis les statistiques
    Results {
        /// Nom de la classe, par exemple « 1ère D 1 »
        #[arg(long)]
        class: String,
        /// Période : son nom (« 1er semestre ») ou son numéro (1, 2, 3)
        #[arg(long)]
        period: String,
        /// csv ou pdf
        #[arg(long, default_value = "csv")]
        format: String,
        /// Fichier à écrire (défaut : la sortie standard)
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Créer une personne et son compte ; affiche l'identifiant et le code d'activation
    Add {
        #[arg(long)]
        role: String,
        #[arg(long)]
        surname: String,
        #[arg(long)]
        first_names: String,
        #[arg(long)]
        birth_date: Option<String>,
        #[arg(long)]
        matricule: Option<String>,
    },
    /// Lister les comptes
    List {
        #[arg(long)]
        role: Option<String>,
        #[arg(long, default_value = "")]
        search: String,
    },
    /// Désactiver un compte (ferme ses sessions)
    Disable { login: String },
    /// Réactiver un compte
    Enable { login: String },
    /// Donner un nouveau code d'activation (l'ancien ne marche plus)
    ResetCode { login: String },
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref(), std::env::vars())?;
    if let Some(d) = &common.data {
        config.data_dir = d.clone();
    }
    Ok(config)
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    // Logs go to standard error: standard output carries what a command produces (an export).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Inscrire la box au portail national avec le jeton donné par le ministère
    Enroll {
        /// Adresse du portail, par exemple https://portail.education.tg:8443
        url: String,
        /// Le jeton d'inscription (25 caractères)
        token: String,
    },
    /// Synchroniser maintenant (envoi des données de l'établissement, réception du national)
    Run {
        /// Lancé par le minuteur kekeli-sync.timer (noté comme tel dans l'historique)
        #[arg(long, hide = true)]
        timer: bool,
    },
    /// L'état de la synchronisation
    Status,
    /// Sans connexion : écrire sur une clé USB tout ce que le portail n'a pas encore reçu
    Export {
        /// Le dossier de la clé USB montée (par exemple /media/usb)
        dir: PathBuf,
    },
    /// Sans connexion : lire les paquets du portail apportés sur une clé USB
    Import {
        /// Le dossier de la clé USB montée
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    kekeli::restrict_umask();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kekeli : {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let mut config = load_config(&cli.common)?;
    init_tracing(&config);
    match cli.command {
        Command::Serve {
            demo,
            date,
            https_port,
            http_port,
        } => {
            if let Some(p) = https_port {
                config.http.https_port = p;
            }
            if let Some(p) = http_port {
                config.http.http_port = p;
            }
            serve(config, demo, date.as_deref())?;
        }
        Command::Init => {
            let prepared = kekeli::init(&config)?;
            report_first_login(&prepared);
            println!("Dossier de données prêt : {}", config.data_dir.display());
        }
        Command::User(cmd) => user(&config, cmd)?,
        Command::Healthcheck => return healthcheck(&config),
        Command::Export(ExportCommand::Results {
            class,
            period,
            format,
            output,
        }) => export_results(&config, &class, &period, &format, output.as_deref())?,
        Command::Import {
            kind,
            file,
            dry_run,
            confirm_departures,
        } => return import(&config, &kind, &file, dry_run, confirm_departures),
        Command::Backup { to, timer } => return backup(&config, to, timer),
        Command::Sync { command } => return sync(&config, command),
        Command::Verify {
            backup,
            recovery_key,
        } => return verify(&config, &backup, recovery_key.as_deref()),
        Command::Restore {
            backup,
            recovery_key,
            force,
        } => return restore(&config, &backup, recovery_key.as_deref(), force),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The demo's day: `--date`, else the one a previous `--date` left in the demo folder. Without
/// one, say how to get lessons when today falls outside the school year (a training session in
/// August would otherwise find an empty school).
fn demo_clock(dir: &std::path::Path, date: Option<&str>) -> anyhow::Result<Option<String>> {
    use kekeli::school::calendar;
    let saved = dir.join(kekeli::demo::DATE_FILE);
    let chosen = match date {
        Some(d) => Some(d.to_string()),
        None => std::fs::read_to_string(&saved)
            .ok()
            .map(|s| s.trim().to_string()),
    };
    let Some(chosen) = chosen else {
        let today = calendar::utc_now().date();
        let year = kekeli::demo::school_year_of(calendar::utc_now());
        if !kekeli::demo::in_school_year(year, today) {
            println!(
                "Aujourd'hui ({}) est hors de l'année scolaire : la démo n'aura pas de cours cette semaine. \
                 Pour une formation, lancez-la sur un dossier vide avec --date {}-11-24 (un jour de classe).",
                calendar::french(today),
                kekeli::demo::school_year_of(calendar::utc_now() + time::Duration::days(60)),
            );
        }
        return Ok(None);
    };
    let Some(day) = calendar::parse_date(&chosen) else {
        bail!(
            "date de démonstration invalide : « {chosen} » (attendu AAAA-MM-JJ, par exemple 2026-11-24)"
        );
    };
    let now = time::OffsetDateTime::now_utc();
    calendar::set_clock(day.with_time(now.time()).assume_utc());
    println!(
        "Démo datée du {} (horloge des dates scolaires décalée).",
        calendar::french(day)
    );
    Ok(Some(chosen))
}

fn report_first_login(prepared: &kekeli::Prepared) {
    if let Some((login, code)) = &prepared.first_login {
        println!();
        println!("  Premier compte technicien créé.");
        println!("  Identifiant : {login}");
        println!("  Code d'activation (à usage unique) : {code}");
        println!(
            "  Connectez-vous avec ce code à la place du mot de passe, puis choisissez votre mot de passe."
        );
        println!();
    }
}

fn serve(mut config: Config, demo: bool, date: Option<&str>) -> anyhow::Result<()> {
    let dir = config.data_dir.clone();
    let demo_date = if demo { demo_clock(&dir, date)? } else { None };
    if demo && config.school_name == Config::default().school_name {
        config.school_name = kekeli::demo::SCHOOL_NAME.to_string();
    }
    let demo_logins = if demo {
        if kekeli::demo::dir_is_empty(&dir) {
            None
        } else if let Some(existing) = kekeli::demo::read_logins(&dir) {
            println!("Démo existante réutilisée : {}", dir.display());
            Some(existing)
        } else {
            bail!(kekeli::demo::DemoError::NotEmpty(dir.display().to_string()));
        }
    } else {
        None
    };
    let prepared = kekeli::init(&config)?;
    report_first_login(&prepared);
    let demo_logins = match (demo, demo_logins) {
        (true, None) => {
            println!("Création du lycée de démonstration…");
            let year = kekeli::demo::school_year_of(kekeli::school::calendar::utc_now());
            let logins = kekeli::demo::populate(&prepared.db, &dir, year)?;
            kekeli::demo::issue_bulletins(&prepared.db, &config)?;
            Some(logins)
        }
        (_, existing) => existing,
    };
    if let Some(d) = demo_date {
        // Kept with the demo, so that a restart without --date stays on its day.
        let saved = dir.join(kekeli::demo::DATE_FILE);
        std::fs::write(&saved, format!("{d}\n"))
            .with_context(|| format!("écriture de {}", saved.display()))?;
    }
    if let Some(logins) = &demo_logins {
        println!(
            "Comptes de démonstration (aussi dans {}) :",
            dir.join(kekeli::demo::LOGINS_FILE).display()
        );
        for l in logins {
            println!("  {:<13} {:<28} {}", l.role.code(), l.login, l.password);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("démarrage du moteur asynchrone")?;
    runtime.block_on(async move {
        let stop = shutdown_signal()?;
        let bind: std::net::IpAddr = config
            .http
            .bind
            .parse()
            .with_context(|| format!("adresse d'écoute invalide : {}", config.http.bind))?;
        let main_addr = SocketAddr::new(bind, config.http.https_port);
        let main = tokio::net::TcpListener::bind(main_addr)
            .await
            .with_context(|| format!("impossible d'écouter sur {main_addr} (port déjà pris ?)"))?;
        let http =
            if config.http.http_port != 0 && config.http.tls {
                let addr = SocketAddr::new(bind, config.http.http_port);
                Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!("impossible d'écouter sur {addr} (port déjà pris ?)")
                })?)
            } else {
                None
            };
        let port = main.local_addr()?.port();
        println!("Kekeli est prêt. Ouvrez l'une de ces adresses :");
        for url in kekeli::urls(&config, port) {
            println!("  {url}");
        }
        if let Some(h) = &http {
            println!(
                "Certificat à installer sur les appareils : http://{}:{}/ca",
                config.local_name(),
                h.local_addr()?.port()
            );
        }
        kekeli::serve(config, prepared, kekeli::Listeners { main, http }, stop).await?;
        Ok::<_, anyhow::Error>(())
    })
}

/// SIGTERM (systemd) or Ctrl+C, listened for from the call on: made before the ports are bound,
/// so that a stop sent as soon as the port answers is already a clean one.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("écoute de SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("écoute de SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn export_results(
    config: &Config,
    class: &str,
    period: &str,
    format: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use kekeli::grades::{council, store as gs};
    use kekeli::imports::sheet::fold;
    if format != "csv" && format != "pdf" {
        anyhow::bail!("format inconnu « {format} » : csv ou pdf");
    }
    let prepared = kekeli::init(config)?;
    let today = kekeli::school::calendar::iso(kekeli::school::calendar::Clock::of(config).today());
    let (class, period) = (class.to_string(), period.to_string());
    let results = prepared.db.read_blocking(move |c| {
        let classes = kekeli::school::classes(c)?;
        let Some(found) = classes.iter().find(|k| fold(&k.name) == fold(&class)) else {
            return Ok::<_, kekeli::db::DbError>(Err(format!(
                "classe inconnue « {class} » ; classes : {}",
                classes
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let Some(year) = kekeli::school::current_year(c, &today)? else {
            return Ok(Err("aucune année scolaire".into()));
        };
        let cycle = gs::class_cycle(c, &found.id)?;
        let periods = gs::periods(c, &year.id, &cycle)?;
        let Some(p) = periods
            .iter()
            .find(|p| fold(&p.name) == fold(&period) || p.number.to_string() == period.trim())
        else {
            return Ok(Err(format!(
                "période inconnue « {period} » ; périodes : {}",
                periods
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        Ok(council::results(c, &found.id, p)?.ok_or_else(|| "classe vide".to_string()))
    })?;
    let r = results.map_err(|e| anyhow::anyhow!(e))?;
    let bytes = if format == "pdf" {
        council::results_pdf(&r, &config.school_name).map_err(|e| anyhow::anyhow!(e))?
    } else {
        council::results_csv_bytes(&r)
    };
    match output {
        Some(path) => {
            std::fs::write(path, &bytes)
                .with_context(|| format!("écriture de {}", path.display()))?;
            eprintln!(
                "{} élève(s), {} : {}",
                r.data.pupils.len(),
                r.data.period.name,
                path.display()
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}

fn import(
    config: &Config,
    kind: &str,
    file: &std::path::Path,
    dry_run: bool,
    confirm_departures: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use kekeli::imports::{self, Action, Kind, Options};
    let kind = Kind::parse(kind).with_context(|| {
        format!(
            "type d'import inconnu « {kind} » ; types possibles : {}",
            Kind::ALL.map(|k| k.cli()).join(", ")
        )
    })?;
    let bytes = std::fs::read(file).with_context(|| format!("lecture de {}", file.display()))?;
    let prepared = kekeli::init(config)?;
    let today = kekeli::school::calendar::iso(kekeli::school::calendar::Clock::of(config).today());
    let opts = Options {
        dry_run,
        confirm_departures,
        today,
        country_code: config.phone_country_code.clone(),
        actor: None,
        grantor: None,
        origin: "cli".into(),
        file_name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let report = imports::import_blocking(&prepared.db, kind, &bytes, &opts)?;
    for l in report
        .lines
        .iter()
        .filter(|l| l.action != Action::Unchanged)
    {
        println!(
            "ligne {:>4}  {:<12}  {}{}",
            l.line,
            kekeli::web::i18n::Tr::default().t(l.action.label()),
            l.what,
            if l.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", l.detail)
            }
        );
    }
    if !report.ignored_columns.is_empty() {
        println!("Colonnes ignorées : {}", report.ignored_columns.join(", "));
    }
    if !report.errors.is_empty() {
        for e in &report.errors {
            eprintln!("{e}");
        }
        eprintln!(
            "{} erreur(s) : rien n'a été modifié. Corrigez le fichier et relancez.",
            report.errors.len()
        );
        return Ok(std::process::ExitCode::from(2));
    }
    if !report.departures.is_empty() {
        println!("Élèves absents du fichier ({}) :", report.departures.len());
        for d in &report.departures {
            println!("  {} — {} ({})", d.matricule, d.name, d.class);
        }
        if !report.departures_applied {
            println!(
                "  (départs non enregistrés ; relancez avec --confirm-departures pour les enregistrer)"
            );
        }
    }
    if report.applied {
        println!(
            "Import appliqué : {}.",
            report.summary().render(Default::default())
        );
        for (_, class, n) in &report.new_accounts {
            println!(
                "  {class} : {n} nouveau(x) compte(s) — imprimez les fiches d'activation depuis Comptes."
            );
        }
    } else {
        println!(
            "Essai (--dry-run) : {}. Rien n'a été enregistré.",
            report.summary().render(Default::default())
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let prepared = kekeli::init(config)?;
    let db = prepared.db;
    let secret = prepared.secret;
    let days = config.security.activation_days;
    let find = |login: &str| -> anyhow::Result<kekeli::id::Id> {
        let login = login.to_string();
        let row = db.read_blocking(|c| store::find_login(c, &login))?;
        row.map(|r| r.account_id)
            .with_context(|| format!("aucun compte avec l'identifiant « {login} »"))
    };
    match cmd {
        UserCommand::Add {
            role,
            surname,
            first_names,
            birth_date,
            matricule,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "rôle inconnu « {role} » ; rôles possibles : {}",
                    Role::ALL.map(|r| r.code()).join(", ")
                )
            })?;
            if surname.trim().is_empty() || first_names.trim().is_empty() {
                bail!("le nom et le prénom sont obligatoires");
            }
            let person = NewPerson {
                surname: surname.trim().to_uppercase(),
                first_names: first_names.trim().to_string(),
                birth_date,
                matricule,
                roles: vec![role],
                ..Default::default()
            };
            let issued = db.write_blocking(|tx| {
                store::create_account_with_code(tx, &secret, &person, days, None, Some("cli"))
            })?;
            let (login, code) = (issued.login, issued.code);
            println!("Compte créé.\nIdentifiant : {login}\nCode d'activation : {code}");
        }
        UserCommand::List { role, search } => {
            let role = match role {
                Some(r) => Some(Role::parse(&r).with_context(|| format!("rôle inconnu « {r} »"))?),
                None => None,
            };
            let (rows, total) = db.read_blocking(|c| {
                store::list_accounts(
                    c,
                    &AccountFilter {
                        search,
                        role,
                        limit: 100_000,
                        ..Default::default()
                    },
                )
            })?;
            for r in rows {
                let state = if r.disabled {
                    "désactivé"
                } else if r.activated {
                    "activé"
                } else if r.code_pending {
                    "code en attente"
                } else {
                    "sans code"
                };
                let roles: Vec<&str> = r.roles.iter().map(|r| r.code()).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    r.login,
                    r.display_name(),
                    roles.join(","),
                    state
                );
            }
            eprintln!("{total} compte(s)");
        }
        UserCommand::Disable { login } => {
            let id = find(&login)?;
            db.write_blocking(|tx| {
                store::set_disabled(tx, &id, true)?;
                store::audit_account(tx, None, "account.disable", Some(&id), None, Some("cli"))
            })?;
            println!("Compte {login} désactivé ; ses sessions sont fermées.");
        }
        UserCommand::Enable { login } => {
            let id = find(&login)?;
            db.write_blocking(|tx| {
                store::set_disabled(tx, &id, false)?;
                store::audit_account(tx, None, "account.enable", Some(&id), None, Some("cli"))
            })?;
            println!("Compte {login} réactivé.");
        }
        UserCommand::ResetCode { login } => {
            let id = find(&login)?;
            let code = db.write_blocking(|tx| {
                store::reset_code(tx, &secret, &id, days, None, Some("cli"))
            })?;
            println!(
                "Nouveau code d'activation pour {login} : {code}\n(valable {days} jours, à usage unique)"
            );
        }
    }
    Ok(())
}

/// Ask the running server's `/healthz` on this machine: the HTTP port when there is one,
/// else the main port (HTTPS verified against the box's own CA).
fn backup(
    config: &Config,
    to: Option<PathBuf>,
    timer: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use kekeli::backup::{self, Origin, human_bytes};
    if !config.db_path().exists() {
        bail!(
            "aucune base dans {} : est-ce le bon dossier de données (--data) ?",
            config.data_dir.display()
        );
    }
    let Some(dest) = to.or_else(|| backup::make::default_destination(config)) else {
        bail!("{}", backup::make::BackupError::NoDestination);
    };
    let prepared = kekeli::init(config)?;
    let origin = if timer {
        Origin::Timer
    } else {
        Origin::Command
    };
    let progress = backup::Progress::default();
    match backup::run(&prepared.db, config, &dest, origin, &progress) {
        Ok(o) => {
            println!("Sauvegarde écrite et relue : {}", o.archive.display());
            println!(
                "  {} écrits en {} s ; {} en tout ({} fichier(s) nouveau(x), {} déjà sur la destination)",
                human_bytes(o.bytes_written),
                format!("{:.1}", o.elapsed.as_secs_f64()).replace('.', ","),
                human_bytes(o.total_bytes),
                o.files_new,
                o.files_reused
            );
            if !o.removed.is_empty() {
                println!("  Retirées par la rotation : {}", o.removed.join(", "));
            }
            if !o.missing_on_box.is_empty() {
                println!(
                    "  Attention : {} fichier(s) cité(s) par la base manquent sur la box : {}",
                    o.missing_on_box.len(),
                    o.missing_on_box.join(", ")
                );
            }
            if !o.damaged_on_box.is_empty() {
                println!(
                    "  Attention : {} fichier(s) abîmé(s) sur la box, non copiés : {}",
                    o.damaged_on_box.len(),
                    o.damaged_on_box.join(", ")
                );
            }
            if o.sheet_pending {
                println!(
                    "  La fiche de récupération n'est pas encore imprimée : sans elle, personne ne peut \
                     ouvrir cette sauvegarde. La direction l'imprime depuis son portail (Fiche de récupération)."
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("kekeli : sauvegarde impossible : {e}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

/// The recovery key from a file, from standard input (`-`), or typed at the terminal.
fn recovery_key(path: Option<&std::path::Path>) -> anyhow::Result<Option<age::x25519::Identity>> {
    use kekeli::backup::key;
    use std::io::{BufRead, IsTerminal};
    match path {
        Some(p) if p.as_os_str() != "-" => Ok(Some(key::read_file(p)?)),
        Some(_) => {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(std::io::stdin(), 4097),
                &mut text,
            )?;
            Ok(Some(key::parse(&text)?))
        }
        None if std::io::stdin().is_terminal() => {
            eprintln!(
                "Tapez la clé de la fiche de récupération (AGE-SECRET-KEY-1…, les espaces ne comptent pas), puis Entrée :"
            );
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(Some(key::parse(&line)?))
        }
        None => Ok(None),
    }
}

fn verify(
    config: &Config,
    backup: &std::path::Path,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<std::process::ExitCode> {
    let identity = recovery_key(key_file)?;
    let data = config
        .data_dir
        .is_dir()
        .then_some(config.data_dir.as_path());
    let verdict = kekeli::backup::verify(backup, identity.as_ref(), data);
    print!("{}", verdict.render());
    Ok(if verdict.ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

fn restore(
    config: &Config,
    backup: &std::path::Path,
    key_file: Option<&std::path::Path>,
    force: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let identity = recovery_key(key_file)?;
    match kekeli::backup::restore(backup, identity.as_ref(), &config.data_dir, force) {
        Ok(r) => {
            print!("{}", r.verdict.render());
            println!("Restaurée dans {}.", config.data_dir.display());
            if let Some(uid) = r.owner {
                println!(
                    "Les fichiers restaurés appartiennent à l'utilisateur du service (uid {uid})."
                );
            }
            if let Some(a) = &r.put_aside {
                println!(
                    "Ce que contenait le dossier a été mis de côté dans {}.",
                    a.display()
                );
            }
            if let Some(c) = &r.config_copy {
                println!(
                    "La configuration de la box d'origine est dans {} : comparez-la à /etc/kekeli/kekeli.toml.",
                    c.display()
                );
            }
            println!(
                "Démarrez la box (systemctl start kekeli, ou kekeli serve --data {}) : les comptes, \
                 les certificats et les fichiers sont ceux de la sauvegarde.",
                config.data_dir.display()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("kekeli : {e}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

fn healthcheck(config: &Config) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), probe(config)).await
    });
    match result {
        Ok(Ok(body)) if body.contains("\"status\":\"ok\"") => {
            println!("{body}");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Ok(Ok(body)) => {
            eprintln!("le serveur répond mais n'est pas en bonne santé : {body}");
            Ok(std::process::ExitCode::from(1))
        }
        Ok(Err(e)) => {
            eprintln!("le serveur ne répond pas : {e:#}");
            Ok(std::process::ExitCode::from(1))
        }
        Err(_) => {
            eprintln!("le serveur ne répond pas (délai dépassé)");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

async fn probe(config: &Config) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut response = Vec::new();
    if config.http.tls && config.http.http_port == 0 {
        use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
        let ca = std::fs::read(config.tls_dir().join("ca.crt"))
            .context("certificat de l'autorité locale introuvable")?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(&ca).context("certificat illisible")?)?;
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", config.http.https_port)).await?;
        let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        stream.write_all(request).await?;
        stream.read_to_end(&mut response).await?;
    } else {
        let port = if config.http.tls {
            config.http.http_port
        } else {
            config.http.https_port
        };
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.write_all(request).await?;
        tcp.read_to_end(&mut response).await?;
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or("réponse vide"));
    }
    Ok(body.trim().to_string())
}

fn sync(config: &Config, command: SyncCommand) -> anyhow::Result<std::process::ExitCode> {
    use kekeli::sync;
    if !config.db_path().exists() {
        bail!(
            "aucune base dans {} : est-ce le bon dossier de données (--data) ?",
            config.data_dir.display()
        );
    }
    let prepared = kekeli::init(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        SyncCommand::Enroll { url, token } => {
            let e = rt.block_on(sync::enroll(&prepared.db, config, &url, &token))?;
            println!(
                "Box inscrite au portail national {} pour l'établissement {}.",
                e.url, e.school
            );
            println!("Lancez « kekeli sync run » pour une première synchronisation.");
            if e.replaced {
                println!(
                    "Cette box remplace celle de l'établissement : la première synchronisation ramène toutes ses données. \
                     Les mots de passe ne voyagent jamais : donnez de nouveaux codes d'activation (kekeli user reset-code IDENTIFIANT)."
                );
            }
        }
        SyncCommand::Run { timer } => {
            let origin = if timer { "minuteur" } else { "commande" };
            match rt.block_on(sync::run(&prepared.db, config, origin)) {
                Ok(r) => {
                    println!(
                        "Synchronisation faite : {} changement(s) envoyé(s), {} reçu(s) ; {} octets envoyés, {} reçus.",
                        r.changes_up, r.changes_down, r.bytes_up, r.bytes_down
                    );
                    if r.refused_up > 0 {
                        println!(
                            "  {} changement(s) refusé(s) par le portail :",
                            r.refused_up
                        );
                        for line in &r.refusals {
                            println!("    {line}");
                        }
                    }
                    if r.left_over > r.arrived {
                        println!(
                            "  {} changement(s) attendent la prochaine synchronisation (budget de la nuit atteint).",
                            r.left_over - r.arrived
                        );
                    }
                    if r.arrived > 0 {
                        println!(
                            "  {} changement(s) saisi(s) pendant la synchronisation partiront avec la prochaine.",
                            r.arrived
                        );
                    }
                    if r.files.up + r.files.down > 0 {
                        println!(
                            "  Fichiers : {} envoyé(s), {} repris du portail.",
                            r.files.up, r.files.down
                        );
                    }
                    if let Some(said) = &r.files.refused {
                        println!("  Fichiers refusés par le portail : {said}");
                    }
                    if r.files.left > 0 && r.files.refused.is_none() {
                        println!(
                            "  {} fichier(s) attendent la prochaine synchronisation (budget de la nuit atteint ; les fiches passent d'abord).",
                            r.files.left
                        );
                    }
                    if r.files.missing > 0 {
                        println!(
                            "  {} fichier(s) cité(s) par les fiches sont introuvables, ici comme au portail.",
                            r.files.missing
                        );
                    }
                    if r.clock_offset_ms.abs() > 5 * 60 * 1000 {
                        println!(
                            "  Attention : l'horloge de la box diffère de {} min de celle du portail ; réglez-la.",
                            r.clock_offset_ms / 60_000
                        );
                    }
                    for line in &r.relayed {
                        println!("  {line}");
                    }
                    if r.clone_seen {
                        println!(
                            "  Attention : un autre serveur écrit sous l'identité de celui-ci (un disque copié ?). Rien n'est perdu : les saisies d'ici continuent sous une nouvelle incarnation. Arrêtez l'autre, ou faites-le inscrire comme serveur neuf."
                        );
                    } else if r.reincarnated {
                        println!(
                            "  La box avait été remise d'une copie : son journal continue sous une nouvelle incarnation."
                        );
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(std::process::ExitCode::FAILURE);
                }
            }
        }
        SyncCommand::Export { dir } => {
            let _lock = sync::RunLock::take(config)?;
            let o = rt.block_on(sync::usb::export(&prepared.db, config, &dir))?;
            println!("Paquet écrit : {}", o.file.display());
            println!("  {}", o.message);
        }
        SyncCommand::Import { dir } => {
            let _lock = sync::RunLock::take(config)?;
            let outcomes = rt.block_on(sync::usb::import(&prepared.db, config, &dir))?;
            if outcomes.is_empty() {
                println!(
                    "Aucun paquet (.kkb) dans {} : vérifiez que la clé est montée et que la copie est finie.",
                    dir.display()
                );
            }
            let mut failed = 0;
            for o in &outcomes {
                let name = o
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                if o.ok {
                    println!("{name} : {}", o.message);
                } else {
                    failed += 1;
                    println!("{name} : non lu — {}", o.message);
                }
            }
            if failed > 0 && failed == outcomes.len() {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        SyncCommand::Status => {
            match sync::Enrollment::load(config)? {
                None => println!("{}", sync::SyncError::NotEnrolled),
                Some(e) => println!("Inscrite au portail {} pour {}.", e.url, e.school),
            }
            let runs = prepared.db.read_blocking(|c| sync::runs(c, 5))?;
            for r in runs {
                println!(
                    "  {} — {} : {} envoyé(s), {} reçu(s){}",
                    r.started,
                    r.origin,
                    r.changes_up,
                    r.changes_down,
                    r.error
                        .map(|e| format!(" ; erreur : {e}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
