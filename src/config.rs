//! Configuration: built-in defaults, then a TOML file, then `KEKELI_*` environment variables
//! (`__` nests: `KEKELI_HTTP__HTTPS_PORT`). Unknown keys are refused, never silently ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The system-wide file read when no `--config` is given and it exists.
pub const SYSTEM_CONFIG: &str = "/etc/kekeli/kekeli.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, certificates and files live.
    pub data_dir: PathBuf,
    /// Host name of the box on the school network; announced as `<name>.local`.
    pub name: String,
    /// The school's code (scope of the rows this box writes), e.g. `LTLOME`.
    pub school_code: String,
    /// The school's name as printed on pages.
    pub school_name: String,
    /// The school's offset from UTC in minutes (Togo: 0, no summer time). Decides "today" and
    /// the current timetable slot.
    pub utc_offset_minutes: i32,
    /// Country calling code added to 8-digit local phone numbers in imports (Togo: `228`).
    pub phone_country_code: String,
    /// `tracing` filter when `RUST_LOG` is not set.
    pub log: String,
    pub http: HttpConfig,
    pub mdns: MdnsConfig,
    pub security: SecurityConfig,
    pub bulletin: BulletinConfig,
    pub backup: BackupConfig,
    pub sync: SyncConfig,
    /// The file this configuration was read from, if any (backups carry a copy).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Where and how long backups are kept (`kekeli backup`, docs/OPERATIONS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Folder the nightly backup writes to (a USB disk's folder or a second disk); empty: none
    /// configured, only disks plugged in (below) and `kekeli backup --to DIR`.
    pub to: PathBuf,
    /// Daily backups kept: the newest of each of the last `keep_daily` days that have one.
    pub keep_daily: u32,
    /// Weekly backups kept: the newest of each of the last `keep_weekly` weeks.
    pub keep_weekly: u32,
    /// Share of the destination disk, in percent, that backups always leave free (at most
    /// 1 GiB: a large disk is not held back).
    pub margin_percent: u8,
    /// Folder where USB disks are mounted; a disk appearing there whose folder is named
    /// `label`, or that holds a folder `kekeli-sauvegardes`, gets a backup at once. Empty: off.
    pub watch: PathBuf,
    /// The name that marks a disk for backups (its label, hence its mount folder's name).
    pub label: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            to: PathBuf::new(),
            keep_daily: 7,
            keep_weekly: 4,
            margin_percent: 5,
            watch: PathBuf::from("/media"),
            label: "KEKELI-SAUVEGARDE".into(),
        }
    }
}

/// The sync with the national hub (`kekeli sync`, docs/SYNC.md). The hub's address and keys
/// come from enrollment (`kekeli sync enroll`), not from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Bytes a night's sync may send and receive at most, in MB (0: no limit). What is left
    /// waits for the next night, records first, indicators next, files last. Decimals allowed
    /// (`0.5` for a prepaid SIM's half megabyte).
    pub budget_mb: f64,
    /// Seconds one request to the hub may take before the link is deemed cut.
    pub timeout_secs: u64,
    /// Seconds without a byte crossing the link, either way, after which a request to the hub
    /// is given up as cut (a link that drops without closing anything), long before
    /// `timeout_secs`. Longer than the hub takes to apply a night's changes.
    pub stall_secs: u64,
    /// Attempts of one run while the link is down (with a growing pause between them).
    pub attempts: u32,
    /// Where USB bundles from the hub are dropped (where sticks are mounted, e.g.
    /// `/media/usb0`); empty: `DATA/usb`. Watched while the server runs.
    pub drop_folder: String,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            budget_mb: 0.0,
            timeout_secs: 60,
            stall_secs: 30,
            attempts: 5,
            drop_folder: String::new(),
        }
    }
}

/// The school's identity printed at the top of bulletins (DOMAIN.md, *The bulletin*).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulletinConfig {
    /// The ministry, as the school prints it.
    pub ministry: String,
    /// Direction régionale de l'éducation (DRE).
    pub directorate: String,
    /// Inspection.
    pub inspection: String,
    /// Postal address and telephone of the school.
    pub address: String,
    /// The school's logo (PNG or JPEG, at most 256 KiB). Empty: the file `logo` in the data
    /// directory, where the direction's bulletins page puts an uploaded one; else no logo.
    pub logo: PathBuf,
}

impl Default for BulletinConfig {
    fn default() -> Self {
        BulletinConfig {
            ministry:
                "Ministère de l'Enseignement primaire, secondaire, technique et de l'Artisanat"
                    .into(),
            directorate: String::new(),
            inspection: String::new(),
            address: String::new(),
            logo: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (`0.0.0.0` or `::` for every interface).
    pub bind: String,
    /// Main port (HTTPS unless `tls = false`).
    pub https_port: u16,
    /// Plain-HTTP port that redirects to HTTPS and serves the CA page; 0 disables it.
    pub http_port: u16,
    /// `false` only behind a TLS terminator: the main port then speaks plain HTTP.
    pub tls: bool,
    /// Largest accepted request body, in KiB.
    pub max_body_kib: usize,
    /// Prometheus `/metrics` answers other addresses than loopback only if true.
    pub metrics_remote: bool,
    /// Seconds a client has to send a request's headers; also how long an HTTP/1.1
    /// connection may wait, idle, for its next request.
    pub header_timeout_secs: u64,
    /// Seconds without a byte either way, and no request being answered, after which a
    /// connection (HTTP/1.1 or HTTP/2) is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once from one address (a classroom behind one NAT opens a few per
    /// laptop); 0 for no bound — behind a TLS terminator every connection comes from it.
    pub max_connections_per_address: usize,
    /// Connections open at once in all; past it new ones are closed at once. Keep it well
    /// under the process's file limit (`LimitNOFILE` in the systemd unit).
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdnsConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Idle session timeout for staff, in minutes.
    pub staff_idle_minutes: i64,
    /// Idle session timeout for pupils, parents and guests, in minutes.
    pub family_idle_minutes: i64,
    /// Absolute session lifetime, in hours.
    pub session_hours: i64,
    /// Days an activation code stays valid.
    pub activation_days: i64,
    /// Password hashes computed at once; bounds memory and keeps the runtime responsive.
    pub hash_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./kekeli-data"),
            name: "kekeli".into(),
            school_code: "ECOLE".into(),
            school_name: "Lycée".into(),
            utc_offset_minutes: 0,
            phone_country_code: "228".into(),
            log: "info".into(),
            http: HttpConfig::default(),
            mdns: MdnsConfig::default(),
            security: SecurityConfig::default(),
            bulletin: BulletinConfig::default(),
            backup: BackupConfig::default(),
            sync: SyncConfig::default(),
            source: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: "0.0.0.0".into(),
            https_port: 8443,
            http_port: 8080,
            tls: true,
            max_body_kib: 1024,
            metrics_remote: false,
            header_timeout_secs: 20,
            idle_timeout_secs: 120,
            max_connections_per_address: 256,
            max_connections: 8192,
        }
    }
}

impl Default for MdnsConfig {
    fn default() -> Self {
        MdnsConfig { enabled: true }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            staff_idle_minutes: 30,
            family_idle_minutes: 120,
            session_hours: 12,
            activation_days: 30,
            hash_concurrency: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("impossible de lire {path} : {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} : {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    /// Load defaults → `file` (or the system file if present) → environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table =
            toml::Table::try_from(Config::default()).map_err(|e| invalid("défauts", e))?;
        let defaults = table.clone();
        let file = file.map(Path::to_path_buf).or_else(|| {
            Path::new(SYSTEM_CONFIG)
                .exists()
                .then(|| PathBuf::from(SYSTEM_CONFIG))
        });
        let mut origin = "configuration".to_string();
        let mut source = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let from_file: toml::Table =
                toml::from_str(&text).map_err(|e| invalid(&path.display().to_string(), e))?;
            // Deserialize the file alone first so an unknown key names the file.
            toml::Value::Table(from_file.clone())
                .try_into::<Config>()
                .map_err(|e| invalid(&path.display().to_string(), e))?;
            merge(&mut table, from_file);
            origin = path.display().to_string();
            source = Some(path.clone());
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("KEKELI_") else {
                continue;
            };
            let path: Vec<String> = if rest == "DATA" {
                vec!["data_dir".into()]
            } else {
                rest.split("__").map(|s| s.to_ascii_lowercase()).collect()
            };
            let typed = typed_env_value(&defaults, &path, &value).map_err(|message| {
                ConfigError::Invalid {
                    origin: format!("variable {key}"),
                    message,
                }
            })?;
            set_path(&mut table, &path, typed);
        }
        let mut config = toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| invalid(&origin, e))?;
        if !(config.sync.budget_mb.is_finite() && config.sync.budget_mb >= 0.0) {
            return Err(invalid(
                &origin,
                "[sync] budget_mb : un nombre de Mo positif ou nul est attendu (0 : sans limite)",
            ));
        }
        config.source = source;
        Ok(config)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("kekeli.db")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// Host name with the mDNS domain.
    pub fn local_name(&self) -> String {
        format!("{}.local", self.name)
    }
}

fn invalid(origin: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: e.to_string().trim().to_string(),
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

/// Parse an environment value with the type of the default at the same path.
fn typed_env_value(
    defaults: &toml::Table,
    path: &[String],
    raw: &str,
) -> Result<toml::Value, String> {
    let mut current = defaults;
    for (i, part) in path.iter().enumerate() {
        match current.get(part) {
            Some(toml::Value::Table(t)) if i + 1 < path.len() => current = t,
            Some(v) if i + 1 == path.len() => {
                return match v {
                    toml::Value::Integer(_) => raw
                        .trim()
                        .parse::<i64>()
                        .map(toml::Value::Integer)
                        .map_err(|_| format!("nombre entier attendu, reçu « {raw} »")),
                    toml::Value::Float(_) => raw
                        .trim()
                        .replace(',', ".")
                        .parse::<f64>()
                        .map(toml::Value::Float)
                        .map_err(|_| format!("nombre attendu, reçu « {raw} »")),
                    toml::Value::Boolean(_) => match raw.trim() {
                        "true" | "1" | "yes" | "oui" => Ok(toml::Value::Boolean(true)),
                        "false" | "0" | "no" | "non" => Ok(toml::Value::Boolean(false)),
                        _ => Err(format!("true ou false attendu, reçu « {raw} »")),
                    },
                    _ => Ok(toml::Value::String(raw.to_string())),
                };
            }
            _ => break,
        }
    }
    Err("clé de configuration inconnue".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            "name = \"lycee-be\"\n[http]\nhttps_port = 443\nhttp_port = 80\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("KEKELI_HTTP__HTTP_PORT", "8081"),
                ("KEKELI_DATA", "/srv/k"),
                ("KEKELI_MDNS__ENABLED", "false"),
                ("KEKELI_SCHOOL_CODE", "1234"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("load");
        assert_eq!(c.name, "lycee-be");
        assert_eq!(c.http.https_port, 443);
        assert_eq!(c.http.http_port, 8081);
        assert_eq!(c.data_dir, PathBuf::from("/srv/k"));
        assert!(!c.mdns.enabled);
        assert_eq!(c.school_code, "1234");
        assert_eq!(c.security.staff_idle_minutes, 30);
    }

    #[test]
    fn a_nights_budget_takes_whole_or_decimal_megabytes_and_refuses_a_negative_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("k.toml");
        for (text, mb) in [("2", 2.0), ("0.5", 0.5), ("0", 0.0)] {
            std::fs::write(&file, format!("[sync]\nbudget_mb = {text}\n")).expect("write");
            let c = Config::load(Some(&file), env(&[])).expect("load");
            assert_eq!(c.sync.budget_mb, mb, "{text}");
        }
        // The technician may write a French decimal in the environment.
        let c =
            Config::load(None::<&Path>, env(&[("KEKELI_SYNC__BUDGET_MB", "0,25")])).expect("env");
        assert_eq!(c.sync.budget_mb, 0.25);
        std::fs::write(&file, "[sync]\nbudget_mb = -1\n").expect("write");
        let e = Config::load(Some(&file), env(&[])).expect_err("negative refused");
        assert!(e.to_string().contains("budget_mb"), "{e}");
        let e = Config::load(
            None::<&Path>,
            env(&[("KEKELI_SYNC__BUDGET_MB", "beaucoup")]),
        )
        .expect_err("not a number");
        assert!(e.to_string().contains("KEKELI_SYNC__BUDGET_MB"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[http]\nhttps_prot = 443\n").expect("write");
        let e = Config::load(Some(&file), env(&[])).expect_err("typo refused");
        let msg = e.to_string();
        assert!(
            msg.contains("https_prot") && msg.contains("k.toml"),
            "{msg}"
        );

        let e = Config::load(None::<&Path>, env(&[("KEKELI_HTTP__PORTT", "1")]))
            .expect_err("unknown env refused");
        assert!(e.to_string().contains("KEKELI_HTTP__PORTT"), "{e}");

        let e = Config::load(None::<&Path>, env(&[("KEKELI_HTTP__HTTPS_PORT", "huit")]))
            .expect_err("bad type refused");
        assert!(e.to_string().contains("entier"), "{e}");
    }

    #[test]
    fn the_packaged_example_is_valid_and_complete() {
        let example = include_str!("../packaging/kekeli.toml.example");
        let table: toml::Table = toml::from_str(example).expect("example parses");
        let parsed: Config = toml::Value::Table(table.clone()).try_into().expect("valid");
        assert_eq!(parsed.http.https_port, 443);
        // Every key of the configuration appears in the example, so it stays a full reference.
        let defaults = toml::Table::try_from(Config::default()).expect("defaults");
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let name = format!("{prefix}{k}");
                if let toml::Value::Table(inner) = v {
                    keys(inner, &format!("{name}."), out);
                } else {
                    out.push(name);
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(&defaults, "", &mut want);
        keys(&table, "", &mut have);
        want.retain(|k| !have.contains(k));
        assert!(want.is_empty(), "keys missing from the example: {want:?}");
    }
}
