//! The `kekeli-hub` command line: serve the hub, declare schools and print their enrollment
//! tokens, revoke them, manage the console's ministry accounts, and publish national
//! announcements and calendar dates.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kekeli_hub::console::{self, accounts};
use kekeli_hub::{api, store};

#[derive(Parser)]
#[command(
    name = "kekeli-hub",
    version,
    about = "Portail national Kekeli : synchronisation des établissements et console du ministère"
)]
struct Cli {
    /// Fichier de configuration (défaut : /etc/kekeli-hub/hub.toml s'il existe). Ordre : valeurs
    /// par défaut, ce fichier, les variables KEKELI_HUB_*, les options de la commande.
    #[arg(long, global = true, env = "KEKELI_HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Dossier des données du portail (base, segments, clés) ; défaut /var/lib/kekeli-hub.
    #[arg(long, global = true, env = "KEKELI_HUB_DATA")]
    data: Option<PathBuf>,
    /// Base nationale sur PostgreSQL (postgres://utilisateur:mot-de-passe@hôte/base) ; sans
    /// elle, la base SQLite du dossier des données (essais, pilotes).
    #[arg(long, global = true, env = "KEKELI_HUB_DATABASE")]
    database: Option<String>,
    /// Stockage des segments : vide, le dossier « objets » des données ; s3://SEAU, un seau
    /// compatible S3 (adresse, région et clés dans les variables AWS_ENDPOINT, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[arg(long, global = true, env = "KEKELI_HUB_SEGMENTS")]
    segments: Option<String>,
    /// Mégaoctets de fichiers gardés au plus pour un établissement (défaut 20000) ; au-delà,
    /// ses fichiers suivants attendent.
    #[arg(long, global = true, env = "KEKELI_HUB_FILE_QUOTA_MB")]
    file_quota_mb: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

/// `hub.toml`: what the command line and KEKELI_HUB_* may also say. Unknown keys are refused.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    database: Option<String>,
    segments: Option<String>,
    file_quota_mb: Option<u64>,
    listen: Option<String>,
    names: Option<Vec<String>>,
}

const DEFAULT_CONFIG: &str = "/etc/kekeli-hub/hub.toml";

fn file_config(path: Option<&std::path::Path>) -> anyhow::Result<FileConfig> {
    let (path, must) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("configuration {} invalide", path.display())),
        Err(e) if !must && e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("configuration {}", path.display())),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Servir le portail en HTTPS.
    Serve {
        /// Adresse d'écoute (défaut 0.0.0.0:8443).
        #[arg(long, env = "KEKELI_HUB_LISTEN")]
        listen: Option<String>,
        /// Noms (ou adresses) du portail dans son certificat ; le premier est son nom (défaut
        /// localhost,127.0.0.1).
        #[arg(long = "name", env = "KEKELI_HUB_NAMES", value_delimiter = ',')]
        names: Option<Vec<String>>,
    },
    /// Les établissements.
    School {
        #[command(subcommand)]
        command: SchoolCommand,
    },
    /// Les comptes de la console du ministère.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Lire les paquets des établissements apportés sur une clé USB (fichiers .kkb du dossier).
    Import {
        /// Le dossier (la clé USB montée).
        dir: PathBuf,
    },
    /// Écrire sur une clé USB le paquet du portail pour un établissement sans connexion.
    Export {
        /// Le code de l'établissement.
        #[arg(long)]
        school: String,
        /// Le dossier (la clé USB montée).
        dir: PathBuf,
    },
    /// Publier une annonce nationale sur les portails des établissements.
    Announce {
        #[arg(long)]
        title: String,
        #[arg(long)]
        body: String,
        /// tous, personnels, eleves, familles, direction
        #[arg(long, default_value = "tous")]
        audience: String,
        /// Premier jour affiché (AAAA-MM-JJ).
        #[arg(long)]
        from: String,
        /// Dernier jour affiché (AAAA-MM-JJ).
        #[arg(long)]
        to: Option<String>,
    },
    /// Ajouter une date au calendrier national (vacances, jour férié, examen).
    Calendar {
        /// rentree, vacances, ferie, examen
        #[arg(long)]
        kind: String,
        #[arg(long)]
        name: String,
        /// BEPC, BAC I, BAC II, CAP, BT (pour un examen)
        #[arg(long)]
        exam: Option<String>,
        /// Année scolaire, par exemple 2026-2027.
        #[arg(long)]
        year: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum SchoolCommand {
    /// Déclarer un établissement et afficher son jeton d'inscription.
    Add { code: String, name: String },
    /// Un nouveau jeton (le précédent a expiré, ou un serveur remplace l'ancien).
    Token {
        code: String,
        /// Le serveur qui s'inscrira remplace celui de l'établissement (mort, volé) : l'ancien
        /// est révoqué à l'inscription du nouveau, qui récupère les données de l'établissement.
        #[arg(long)]
        replace: bool,
    },
    /// La liste des établissements.
    List,
    /// Révoquer le serveur d'un établissement (il ne peut plus se synchroniser).
    Revoke { code: String },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Créer un compte et afficher son mot de passe (une seule fois). Le mot de passe peut
    /// aussi être lu dans la variable KEKELI_HUB_PASSWORD (scripts).
    Add { login: String, name: String },
    /// Donner un nouveau mot de passe (oublié, compte verrouillé) : ses sessions sont closes.
    Password { login: String },
    /// La liste des comptes.
    List,
    /// Désactiver un compte : ses sessions sont closes.
    Disable { login: String },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEKELI_HUB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let file = file_config(cli.config.as_deref())?;
    let data = cli
        .data
        .clone()
        .or(file.data.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/kekeli-hub"));
    let database = cli
        .database
        .clone()
        .or(file.database.clone())
        .unwrap_or_default();
    let segments = cli
        .segments
        .clone()
        .or(file.segments.clone())
        .unwrap_or_default();
    let file_quota_mb = cli
        .file_quota_mb
        .or(file.file_quota_mb)
        .unwrap_or(kekeli_hub::DEFAULT_FILE_QUOTA_MB);
    let cli = Resolved {
        data,
        database,
        segments,
        command: cli.command,
    };
    let open = |names: &[String]| {
        kekeli_hub::open(&cli.data, &cli.database, &cli.segments, names).map(|mut hub| {
            hub.file_quota_mb = file_quota_mb;
            hub
        })
    };
    match cli.command {
        Command::Serve { listen, names } => {
            let listen = listen
                .or(file.listen)
                .unwrap_or_else(|| "0.0.0.0:8443".into());
            let names = names.or(file.names).unwrap_or_else(default_names);
            let hub = open(&names)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(hub, &listen))
        }
        Command::School { command } => {
            let hub = open(&default_names())?;
            school(&hub, command)
        }
        Command::Import { dir } => {
            let hub = open(&default_names())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let outcomes = rt
                .block_on(kekeli_hub::usb::import_dir(&hub, &dir))
                .with_context(|| format!("dossier {}", dir.display()))?;
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
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                if o.ok {
                    println!("{name} : {}", o.message);
                } else {
                    failed += 1;
                    println!("{name} : REFUSÉ — {}", o.message);
                }
            }
            anyhow::ensure!(
                failed == 0,
                "{failed} paquet(s) refusé(s) sur {}",
                outcomes.len()
            );
            Ok(())
        }
        Command::Export { school, dir } => {
            let hub = open(&default_names())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let code = school.trim().to_uppercase();
            let (path, x) = rt
                .block_on(kekeli_hub::usb::export_school(&hub, &code, &dir))
                .map_err(anyhow::Error::msg)?;
            let files = match (x.files, x.files_left) {
                (0, 0) => String::new(),
                (n, 0) => format!(", {n} fichier(s) ({} Ko)", x.file_bytes.div_ceil(1024)),
                (n, left) => format!(
                    ", {n} fichier(s) ({} Ko) ; {left} autre(s) dans le paquet suivant",
                    x.file_bytes.div_ceil(1024)
                ),
            };
            println!(
                "Paquet écrit : {} ({} modification(s){files}). Sur le serveur de l'établissement : kekeli sync import DOSSIER-DE-LA-CLÉ",
                path.display(),
                x.changes
            );
            Ok(())
        }
        Command::Account { command } => {
            let hub = open(&default_names())?;
            account(&hub, command)
        }
        Command::Announce {
            title,
            body,
            audience,
            from,
            to,
        } => {
            let hub = open(&default_names())?;
            let id: [u8; 16] = rand::random();
            let now = api::now();
            let mut row = serde_json::Map::new();
            for (k, v) in [
                ("id", serde_json::Value::from(kekeli_sync::hex(&id))),
                ("scope", "national".into()),
                ("title", title.into()),
                ("body", body.into()),
                ("audience", audience.into()),
                ("starts_on", from.into()),
                (
                    "ends_on",
                    to.map(Into::into).unwrap_or(serde_json::Value::Null),
                ),
                ("published_at", now.into()),
                ("updated_at", now.into()),
            ] {
                row.insert(k.into(), v);
            }
            let seq = hub.db.tx(|c| {
                store::national_write(c, "national_announcements", &id, Some(&row), api::now_ms())
            })?;
            println!(
                "Annonce publiée (n°{seq} du journal national) : les établissements la recevront à leur prochaine synchronisation."
            );
            Ok(())
        }
        Command::Calendar {
            kind,
            name,
            exam,
            year,
            from,
            to,
        } => {
            let hub = open(&default_names())?;
            let id: [u8; 16] = rand::random();
            let mut row = serde_json::Map::new();
            for (k, v) in [
                ("id", serde_json::Value::from(kekeli_sync::hex(&id))),
                ("scope", "national".into()),
                ("school_year", year.into()),
                ("kind", kind.into()),
                ("name", name.into()),
                (
                    "exam",
                    exam.map(Into::into).unwrap_or(serde_json::Value::Null),
                ),
                ("starts_on", from.into()),
                ("ends_on", to.into()),
                ("updated_at", api::now().into()),
            ] {
                row.insert(k.into(), v);
            }
            hub.db.tx(|c| {
                store::national_write(c, "national_calendar", &id, Some(&row), api::now_ms())
            })?;
            println!("Date ajoutée au calendrier national.");
            Ok(())
        }
    }
}

/// The command line with the file's and the defaults' values filled in.
struct Resolved {
    data: PathBuf,
    database: String,
    segments: String,
    command: Command,
}

fn default_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

fn school(hub: &api::Hub, command: SchoolCommand) -> anyhow::Result<()> {
    let now = api::now();
    match command {
        SchoolCommand::Add { code, name } => {
            let code = code.trim().to_uppercase();
            let token = kekeli_sync::enroll::Token::from_random(&rand::random());
            let expires = hub.db.tx(|c| -> Result<i64, store::StoreError> {
                store::add_school(c, &code, &name, now)?;
                store::new_token(c, &code, &token, false, now)
            })?;
            print_token(&code, &token, expires);
        }
        SchoolCommand::Token { code, replace } => {
            let code = code.trim().to_uppercase();
            let token = kekeli_sync::enroll::Token::from_random(&rand::random());
            let expires = hub
                .db
                .tx(|c| store::new_token(c, &code, &token, replace, now))?;
            print_token(&code, &token, expires);
        }
        SchoolCommand::List => {
            let schools = hub.db.tx(store::schools)?;
            if schools.is_empty() {
                println!("Aucun établissement déclaré : « kekeli-hub school add CODE \"NOM\" ».");
            }
            for s in schools {
                println!(
                    "{:<10} {:<10} {:<40} dernier contact : {}",
                    s.code,
                    s.status,
                    s.name,
                    s.last_contact
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "jamais".into())
                );
            }
        }
        SchoolCommand::Revoke { code } => {
            let code = code.trim().to_uppercase();
            hub.db.tx(|c| store::revoke(c, &code))?;
            println!(
                "Serveur de {code} révoqué : il ne peut plus se synchroniser. Un nouveau jeton (« school token {code} --replace ») permet d'en inscrire un autre."
            );
        }
    }
    Ok(())
}

/// The password for `account add` / `account password`: from KEKELI_HUB_PASSWORD (checked),
/// else a generated one, shown once.
fn new_password() -> anyhow::Result<(String, bool)> {
    match std::env::var("KEKELI_HUB_PASSWORD") {
        Ok(p) if !p.is_empty() => {
            anyhow::ensure!(
                p.chars().count() >= accounts::MIN_PASSWORD,
                "KEKELI_HUB_PASSWORD : {} caractères au moins",
                accounts::MIN_PASSWORD
            );
            Ok((p, false))
        }
        _ => Ok((accounts::generate_password(), true)),
    }
}

fn account(hub: &api::Hub, command: AccountCommand) -> anyhow::Result<()> {
    let now = api::now();
    match command {
        AccountCommand::Add { login, name } => {
            let login = login.trim().to_lowercase();
            let (password, shown) = new_password()?;
            let hash = accounts::hash_password(&password)?;
            hub.db.tx(|c| accounts::add(c, &login, &name, &hash, now))?;
            println!("Compte {login} créé pour {}.", name.trim());
            if shown {
                println!("Mot de passe (affiché une seule fois) :\n\n    {password}\n");
            }
            println!("Console : https://ADRESSE-DU-PORTAIL:8443/console");
        }
        AccountCommand::Password { login } => {
            let login = login.trim().to_lowercase();
            let (password, shown) = new_password()?;
            let hash = accounts::hash_password(&password)?;
            let found = hub
                .db
                .tx(|c| accounts::set_password(c, &login, &hash, now))?;
            anyhow::ensure!(found, "aucun compte {login}");
            println!("Nouveau mot de passe pour {login} ; ses sessions sont closes.");
            if shown {
                println!("\n    {password}\n");
            }
        }
        AccountCommand::List => {
            let list = hub.db.tx(accounts::list)?;
            if list.is_empty() {
                println!("Aucun compte : « kekeli-hub account add IDENTIFIANT \"Nom Prénom\" ».");
            }
            for a in list {
                println!(
                    "{:<20} {:<30} {}{}",
                    a.login,
                    a.name,
                    a.last_login
                        .map(|t| format!("dernière connexion {}", console::when(t)))
                        .unwrap_or_else(|| "jamais connecté".into()),
                    if a.disabled { " (désactivé)" } else { "" }
                );
            }
        }
        AccountCommand::Disable { login } => {
            let login = login.trim().to_lowercase();
            let found = hub.db.tx(|c| accounts::disable(c, &login, now))?;
            anyhow::ensure!(found, "aucun compte {login}");
            println!("Compte {login} désactivé ; ses sessions sont closes.");
        }
    }
    Ok(())
}

fn print_token(code: &str, token: &kekeli_sync::enroll::Token, expires: i64) {
    let days = (expires - api::now()) / 86_400;
    println!("Jeton d'inscription de {code} (valable {days} jours, une seule fois) :");
    println!();
    println!("    {}", token.as_str());
    println!();
    println!(
        "Sur le serveur de l'établissement : kekeli sync enroll https://ADRESSE-DU-PORTAIL:8443 {}",
        token.as_str()
    );
}

async fn serve(hub: api::Hub, listen: &str) -> anyhow::Result<()> {
    let tls = std::sync::Arc::new(hub.pki.server_config()?);
    let app = api::router(hub.clone()).layer(tower_http::catch_panic::CatchPanicLayer::new());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("écoute sur {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, site = %hub.site, "portail national en service");
    // Tests and scripts read the port from here.
    println!("kekeli-hub écoute sur {}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    kekeli_hub::server::run(listener, app, tls, rx).await;
    Ok(())
}
