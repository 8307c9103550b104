//! The systemd unit: the hardening the issue asks for is there, and systemd itself accepts the
//! file (`systemd-analyze verify`) and rates its exposure (`systemd-analyze security`).

use std::process::Command;

const UNIT: &str = include_str!("../systemd/kekeli.service");

#[test]
fn the_unit_is_notify_hardened_and_binds_low_ports_only() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ProtectSystem=strict",
        "StateDirectory=kekeli",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "User=kekeli",
        // Room for the connections the server admits (the default 1,024 is not).
        "LimitNOFILE=65536",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(line)), "missing {line}");
    }
}

/// Whether `systemd-analyze` is here; it must be on CI.
fn systemd_analyze() -> bool {
    let here = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok();
    if !here {
        assert!(
            std::env::var("CI").is_err(),
            "systemd-analyze missing on CI"
        );
        eprintln!("skipped: no systemd-analyze");
    }
    here
}

/// Write `units` (named, with the installed binary's path made this build's) into `dir` and
/// have `systemd-analyze verify` accept them without a complaint naming one; their paths.
fn verify(dir: &std::path::Path, units: &[(&str, &str)]) -> Vec<std::path::PathBuf> {
    let paths: Vec<_> = units
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(
                &path,
                text.replace("/usr/bin/kekeli", env!("CARGO_BIN_EXE_kekeli")),
            )
            .expect("write");
            path
        })
        .collect();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("verify");
    let complaints = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success()
            && !units
                .iter()
                .any(|(n, _)| complaints.contains(&format!("{n}:"))),
        "systemd-analyze verify: {complaints}"
    );
    paths
}

#[test]
fn systemd_accepts_the_unit() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = verify(dir.path(), &[("kekeli.service", UNIT)]).remove(0);
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .expect("security");
    let text = String::from_utf8_lossy(&security.stdout).to_string()
        + &String::from_utf8_lossy(&security.stderr);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for kekeli.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(level <= 2.5, "exposure {level}: {text}");
}

const BACKUP_SERVICE: &str = include_str!("../systemd/kekeli-backup.service");
const BACKUP_TIMER: &str = include_str!("../systemd/kekeli-backup.timer");

#[test]
fn the_nightly_backup_is_a_persistent_timer_and_a_quiet_hardened_service() {
    for line in [
        "OnCalendar=",
        "Persistent=true",
        "Unit=kekeli-backup.service",
        "WantedBy=timers.target",
    ] {
        assert!(
            BACKUP_TIMER.lines().any(|l| l.starts_with(line)),
            "timer misses {line}"
        );
    }
    for line in [
        "Type=oneshot",
        "ExecStart=/usr/bin/kekeli backup --timer",
        "User=kekeli",
        "IOSchedulingClass=idle",
        "ProtectSystem=strict",
        "PrivateNetwork=yes",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            BACKUP_SERVICE.lines().any(|l| l.starts_with(line)),
            "service misses {line}"
        );
    }
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    verify(
        dir.path(),
        &[
            ("kekeli-backup.service", BACKUP_SERVICE),
            ("kekeli-backup.timer", BACKUP_TIMER),
        ],
    );
}

const SYNC_SERVICE: &str = include_str!("../systemd/kekeli-sync.service");
const SYNC_TIMER: &str = include_str!("../systemd/kekeli-sync.timer");
const HUB_SERVICE: &str = include_str!("../systemd/kekeli-hub.service");

#[test]
fn the_nightly_sync_and_the_hub_are_valid_hardened_units() {
    for line in [
        "OnCalendar=",
        "Persistent=true",
        "RandomizedDelaySec=",
        "Unit=kekeli-sync.service",
    ] {
        assert!(
            SYNC_TIMER.lines().any(|l| l.starts_with(line)),
            "timer misses {line}"
        );
    }
    for (unit, lines) in [
        (
            SYNC_SERVICE,
            &[
                "Type=oneshot",
                "ExecStart=/usr/bin/kekeli sync run --timer",
                "User=kekeli",
                "ProtectSystem=strict",
                "NoNewPrivileges=yes",
            ][..],
        ),
        (
            HUB_SERVICE,
            &[
                "ExecStart=/usr/bin/kekeli-hub serve",
                "StateDirectory=kekeli-hub",
                "ProtectSystem=strict",
                "NoNewPrivileges=yes",
            ][..],
        ),
    ] {
        for line in lines {
            assert!(unit.lines().any(|l| l.starts_with(line)), "misses {line}");
        }
    }
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    verify(
        dir.path(),
        &[
            ("kekeli-sync.service", SYNC_SERVICE),
            ("kekeli-sync.timer", SYNC_TIMER),
            ("kekeli-hub.service", HUB_SERVICE),
        ],
    );
}
