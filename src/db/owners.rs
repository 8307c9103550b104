//! Which feature folder owns each table: only the owner's SQL writes it or reads it directly;
//! every other folder calls the owner's functions (`people::add_person`, `school::set_period_closed`,
//! `attendance::store::minutes_missed` …) or reads the views the owner publishes for that
//! (`person_names`, `enrolments`, `class_list` … — migration V13; a view is read-only, so no
//! other folder can write through it). A test reads every SQL statement of every folder and
//! fails when one touches a table its folder does not own — asked of SQLite itself (its
//! authorizer names the tables a statement reads and writes).
//! This module decides nothing at run time: it is the map, and the check that the code follows it.

/// Table → the folder of `src/` whose SQL alone touches it.
pub const OWNERS: &[(&str, &str)] = &[
    // The database's own machinery: change capture, audit trail (db::audit::record and
    // db::audit::of_object are the other folders' way in).
    ("sync_state", "db"),
    ("sync_log", "db"),
    // What the sync keeps of the other side (its vector, acknowledgements, changes not yet
    // understood, per-field clocks, conflicts): written by db's apply alone.
    ("sync_received", "db"),
    ("sync_acked", "db"),
    ("sync_pending", "db"),
    ("sync_field_clock", "db"),
    ("sync_conflict", "db"),
    ("sync_refused", "db"),
    // The box's sync runs with the hub.
    ("sync_runs", "sync"),
    // The stored files the hub holds for this school.
    ("sync_files_sent", "sync"),
    // The stored files carried on USB bundles, and when.
    ("sync_files_carried", "sync"),
    // Daily usage indicators, and the running day's per-person counts behind them.
    ("usage_daily", "usage"),
    ("usage_today", "usage"),
    // What the national hub publishes (written only by the sync's apply, read through
    // `national`'s functions).
    ("national_announcements", "national"),
    ("national_calendar", "national"),
    ("reference_series", "national"),
    ("reference_subjects", "national"),
    ("reference_coefficients", "national"),
    ("audit_log", "db"),
    // Backup runs and the recovery keys backups are encrypted to.
    ("backup_runs", "backup"),
    ("backup_keys", "backup"),
    // Accounts, their sessions.
    ("accounts", "auth"),
    ("sessions", "auth"),
    // People and how they belong: roles, families, classes and groups.
    ("people", "people"),
    ("person_roles", "people"),
    ("guardianships", "people"),
    ("class_members", "people"),
    ("group_members", "people"),
    // The school's structure, and the periods' state.
    ("school_years", "school"),
    ("periods", "school"),
    ("class_period_closures", "school"),
    ("levels", "school"),
    ("series", "school"),
    ("classes", "school"),
    ("rooms", "school"),
    ("equipment", "school"),
    ("pupil_groups", "school"),
    ("subjects", "school"),
    ("coefficients", "school"),
    ("teachings", "school"),
    // The week.
    ("timetable_slots", "timetable"),
    ("timetable_changes", "timetable"),
    ("calendar_feeds", "timetable"),
    // Roll calls, absences and the messages to families they cause.
    ("roll_calls", "attendance"),
    ("absences", "attendance"),
    ("outbox", "attendance"),
    // The cahier de textes.
    ("lesson_entries", "journal"),
    ("homework_done", "journal"),
    ("import_runs", "imports"),
    ("messaging_rules", "messages"),
    ("messaging_settings", "messages"),
    ("conversations", "messages"),
    ("conversation_members", "messages"),
    ("messages", "messages"),
    ("message_reports", "messages"),
    ("lesson_entry_versions", "journal"),
    ("lesson_attachments", "journal"),
    // Discipline.
    ("incidents", "discipline"),
    ("incident_people", "discipline"),
    ("punishments", "discipline"),
    ("sanctions", "discipline"),
    ("agenda_events", "agenda"),
    ("bookings", "booking"),
    // Marks and councils.
    ("assessment_settings", "grades"),
    ("assessments", "grades"),
    ("marks", "grades"),
    ("subject_appreciations", "grades"),
    ("council_records", "grades"),
    ("bulletins", "bulletins"),
    ("competence_frameworks", "competences"),
    ("competence_domains", "competences"),
    ("competences", "competences"),
    ("competence_records", "competences"),
    // The views each owner publishes for the others to read (V13__read_interfaces.sql).
    ("person_names", "people"),
    ("person_details", "people"),
    ("enrolments", "people"),
    ("audience_pupils", "people"),
    ("group_enrolments", "people"),
    ("class_staff", "people"),
    ("guardians", "people"),
    ("role_holders", "people"),
    ("class_list", "school"),
    ("group_list", "school"),
    ("subject_list", "school"),
    ("room_list", "school"),
    ("equipment_list", "school"),
    ("year_list", "school"),
    ("period_list", "school"),
    ("class_closures", "school"),
    ("teaching_list", "school"),
    ("coefficient_list", "school"),
    ("account_states", "auth"),
];

/// Is `name` a view an owner publishes for the other features to read?
pub fn is_published(name: &str) -> bool {
    PUBLISHED.contains(&name)
}

/// The published views (read by anyone, written by no one: views are read-only).
const PUBLISHED: &[&str] = &[
    "person_names",
    "person_details",
    "enrolments",
    "audience_pupils",
    "group_enrolments",
    "class_staff",
    "guardians",
    "role_holders",
    "class_list",
    "group_list",
    "subject_list",
    "room_list",
    "equipment_list",
    "year_list",
    "period_list",
    "class_closures",
    "teaching_list",
    "coefficient_list",
    "account_states",
];

/// The folder that owns `table`.
pub fn owner(table: &str) -> Option<&'static str> {
    OWNERS.iter().find(|(t, _)| *t == table).map(|(_, f)| *f)
}

/// The one file whose SQL names its table at run time, and why: the sync's apply writes
/// whichever registered table a received change names (on the sender's behalf, after
/// `kekeli_sync::registry::accepts` said that sender owns it), and nothing else does.
pub const APPLIES_ANY_SYNCED_TABLE: &str = "db/replica.rs";

/// Folders whose SQL may touch every table, and why.
pub const EVERYWHERE: &[(&str, &str)] = &[(
    "demo",
    "builds a whole training school in one go; it is seed data, not a feature, and no user \
     action reaches it",
)];

#[cfg(test)]
/// A Rust source file's string literals (outside comments and `#[cfg(test)]` items), with
/// the line each starts on.
pub(crate) fn rust_literals(src: &str) -> Vec<(usize, String)> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
        }
        // Comments.
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                if b[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        // `#[cfg(test)]`: skip the item it marks (to its closing brace or semicolon).
        if c == '#' && b[i..].iter().take(12).collect::<String>() == "#[cfg(test)]" {
            i += 12;
            while i < b.len() && b[i] != '{' && b[i] != ';' {
                if b[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            if b.get(i) == Some(&'{') {
                skip_depth = Some(depth);
                depth += 1;
            }
            i += 1;
            continue;
        }
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth = depth.saturating_sub(1);
            if skip_depth == Some(depth) {
                skip_depth = None;
            }
        }
        // Char literals and lifetimes.
        if c == '\'' {
            if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            if b.get(i + 2) == Some(&'\'') {
                i += 3;
                continue;
            }
            i += 1;
            continue;
        }
        // Raw strings r"…", r#"…"#.
        if c == 'r'
            && (b.get(i + 1) == Some(&'"') || b.get(i + 1) == Some(&'#'))
            && (i == 0 || !b[i - 1].is_alphanumeric() && b[i - 1] != '_')
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&'"') {
                let start_line = line;
                let mut s = String::new();
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    if b[j] == '\n' {
                        line += 1;
                    }
                    s.push(b[j]);
                    j += 1;
                }
                if skip_depth.is_none() {
                    out.push((start_line, s));
                }
                i = j;
                continue;
            }
        }
        if c == '"' {
            let start_line = line;
            let mut s = String::new();
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' {
                    match b.get(j + 1) {
                        Some('\n') => {
                            // A line continuation: the newline and the indentation vanish.
                            line += 1;
                            j += 2;
                            while j < b.len() && b[j].is_whitespace() {
                                if b[j] == '\n' {
                                    line += 1;
                                }
                                j += 1;
                            }
                            continue;
                        }
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(*other),
                        None => {}
                    }
                    j += 2;
                    continue;
                }
                if b[j] == '\n' {
                    line += 1;
                }
                s.push(b[j]);
                j += 1;
            }
            if skip_depth.is_none() {
                out.push((start_line, s));
            }
            i = j + 1;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    #[test]
    fn every_table_has_an_owner_and_every_owner_a_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("k.db"), "T", 1).expect("open");
        let tables: Vec<String> = db
            .read_blocking(|c| {
                c.prepare(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' \
                     AND name <> 'refinery_schema_history'",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::db::DbError::from)
            })
            .expect("tables");
        for t in &tables {
            assert!(
                owner(t).is_some(),
                "table or view {t} has no owner in db::owners"
            );
        }
        for (t, f) in OWNERS {
            assert!(
                tables.iter().any(|x| x == t),
                "owner listed for unknown {t}"
            );
            let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(f);
            assert!(folder.is_dir(), "{t}'s owner {f} is not a folder of src/");
        }
    }

    /// The SQL pieces a file names — `const COLUMNS: &str = "…"`, `let filter = "…"` — that its
    /// `format!` statements put together.
    fn named_pieces(src: &str) -> BTreeMap<String, String> {
        let lits = super::rust_literals(src);
        let lines: Vec<&str> = src.lines().collect();
        let mut out = BTreeMap::new();
        for (line, lit) in &lits {
            // The name is on the literal's line or the one before (`const X: &str =` then the
            // literal on the next line).
            for l in [*line, line.saturating_sub(1)] {
                let Some(text) = lines.get(l.wrapping_sub(1)) else {
                    continue;
                };
                let name = text
                    .split_once("const ")
                    .or_else(|| text.split_once("let "))
                    .map(|(_, rest)| rest)
                    .and_then(|rest| rest.split([':', '=', ' ']).next())
                    .filter(|n| {
                        !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_')
                    });
                if let Some(name) = name {
                    out.entry(name.to_string()).or_insert_with(|| lit.clone());
                    break;
                }
            }
        }
        out
    }

    /// `sql` with its `{NAME}` pieces put in; a piece only known at run time (a filter, an
    /// order) becomes `1`, so that the statement still prepares and names its tables.
    fn fill(sql: &str, pieces: &BTreeMap<String, String>) -> String {
        let mut out = sql.to_string();
        for _ in 0..4 {
            let mut next = String::new();
            let mut rest = out.as_str();
            while let Some(i) = rest.find('{') {
                next.push_str(&rest[..i]);
                let Some(j) = rest[i..].find('}') else {
                    next.push_str(&rest[i..]);
                    rest = "";
                    break;
                };
                let name = &rest[i + 1..i + j];
                match pieces.get(name) {
                    Some(piece) => next.push_str(piece),
                    None if name.is_empty()
                        || name.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                    {
                        next.push('1')
                    }
                    None => next.push_str(&rest[i..i + j + 1]),
                }
                rest = &rest[i + j + 1..];
            }
            next.push_str(rest);
            if next == out {
                break;
            }
            out = next;
        }
        out
    }

    /// Is this literal a statement (or the tail of one, joined by `format!`)?
    fn sql_of(text: &str) -> Option<String> {
        let t = text.trim_start();
        let head: String = t.chars().take(8).collect::<String>().to_ascii_uppercase();
        let statement = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE"]
            .iter()
            .any(|k| {
                head.starts_with(k) && t[k.len()..].chars().next().is_some_and(char::is_whitespace)
            });
        if statement {
            Some(t.to_string())
        } else if head.starts_with("FROM ") {
            Some(format!("SELECT 1 {t}"))
        } else {
            None
        }
    }

    fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                rs_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The tables a statement reads and writes, as SQLite prepares it on the real schema.
    fn touched(c: &rusqlite::Connection, sql: &str) -> Result<BTreeSet<String>, String> {
        use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let s = seen.clone();
        c.authorizer(Some(move |ctx: AuthContext<'_>| {
            // What the statement's own text touches: not what the change-capture triggers
            // write on its behalf.
            if ctx.accessor.is_some() {
                return Authorization::Allow;
            }
            let table = match ctx.action {
                AuthAction::Read { table_name, .. }
                | AuthAction::Insert { table_name }
                | AuthAction::Update { table_name, .. }
                | AuthAction::Delete { table_name } => Some(table_name),
                _ => None,
            };
            if let Some(t) = table
                && !t.starts_with("sqlite_")
                && let Ok(mut s) = s.lock()
            {
                s.insert(t.to_string());
            }
            Authorization::Allow
        }))
        .map_err(|e| e.to_string())?;
        let prepared = c.prepare(sql).map(|_| ()).map_err(|e| e.to_string());
        c.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
            .map_err(|e| e.to_string())?;
        prepared?;
        // Foreign-key checks read the tables that refer to a row too (an insert into
        // `people` looks at every table pointing at people): only the tables the statement
        // names are its own.
        let words: BTreeSet<String> = sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|w| w.to_ascii_lowercase())
            .collect();
        Ok(seen
            .lock()
            .map(|s| s.iter().filter(|t| words.contains(*t)).cloned().collect())
            .unwrap_or_default())
    }

    /// Statements whose tables cannot be read from their text (built from pieces at run time),
    /// each named by its file and its beginning, with the tables it touches, checked by hand.
    const BUILT: &[(&str, &str, &[&str])] = &[
        // Domains and competences, inserted, renamed, counted and removed alike.
        (
            "competences/mod.rs",
            "INSERT INTO {table} (id, scope, {column}",
            &["competences", "competence_domains", "competence_frameworks"],
        ),
        (
            "competences/mod.rs",
            "SELECT COUNT(*) FROM {uses}",
            &["competences", "competence_domains", "competence_records"],
        ),
        (
            "people/mod.rs",
            "FROM class_list c {filter}",
            &["class_members", "class_list"],
        ),
        (
            "timetable/store.rs",
            "SELECT {SLOT_COLUMNS} {SLOT_JOINS} WHERE ({own}",
            &[
                "timetable_slots",
                "timetable_changes",
                "subject_list",
                "person_names",
                "room_list",
                "class_list",
                "group_list",
                "year_list",
            ],
        ),
        (
            "timetable/store.rs",
            "SELECT {CHANGE_COLUMNS} WHERE (x.slot_id",
            &[
                "timetable_changes",
                "room_list",
                "person_names",
                "class_list",
                "group_list",
                "subject_list",
            ],
        ),
    ];

    /// Every SQL statement of every folder touches only tables that folder owns.
    #[test]
    fn every_folder_touches_only_the_tables_it_owns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        drop(crate::db::Db::open(&path, "T", 1).expect("open"));
        let c = crate::db::connect(&path).expect("connect");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rs_files(&src, &mut files);
        files.sort();
        let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unreadable = Vec::new();
        let mut statements = 0;
        for file in &files {
            let rel = file.strip_prefix(&src).expect("under src");
            let folder = match rel.components().next() {
                Some(first) if rel.components().count() > 1 => {
                    first.as_os_str().to_string_lossy().into_owned()
                }
                _ => rel
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            if EVERYWHERE.iter().any(|(f, _)| *f == folder) {
                continue;
            }
            let text = std::fs::read_to_string(file).expect("read");
            let pieces = named_pieces(&text);
            for (line, lit) in super::rust_literals(&text) {
                let Some(sql) = sql_of(&lit) else { continue };
                let built = BUILT
                    .iter()
                    .find(|(f, start, _)| rel.ends_with(f) && sql.contains(start));
                let sql = fill(&sql, &pieces);
                statements += 1;
                let place = format!("{}:{line}", rel.display());
                // What SQLite reads in the statement when it can (runtime pieces filled with
                // `1`); the hand-written list only for a statement that cannot stand alone.
                let tables = match (touched(&c, &sql), built) {
                    (Ok(t), _) => t,
                    // The list, and every table or view the text names besides (so a list
                    // left behind by a change to the statement still sees what it names).
                    (Err(_), Some((_, _, t))) => {
                        let words: BTreeSet<String> = sql
                            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .map(|w| w.to_ascii_lowercase())
                            .collect();
                        t.iter()
                            .map(|s| s.to_string())
                            .chain(
                                OWNERS
                                    .iter()
                                    .map(|(n, _)| n.to_string())
                                    .filter(|n| words.contains(n)),
                            )
                            .collect()
                    }
                    // The sync's apply: `"{table}"` is a registered table named by a change.
                    (Err(_), None)
                        if rel.ends_with(APPLIES_ANY_SYNCED_TABLE) && sql.contains("\"1\"") =>
                    {
                        continue;
                    }
                    (Err(e), None) => {
                        unreadable.push(format!(
                            "{place}: {e}: {}",
                            sql.chars().take(80).collect::<String>()
                        ));
                        continue;
                    }
                };
                for t in tables {
                    let Some(own) = owner(&t) else { continue };
                    if own != folder && !is_published(&t) {
                        violations
                            .entry(format!("{folder} → {t} (owned by {own})"))
                            .or_default()
                            .push(place.clone());
                    }
                }
            }
        }
        assert!(statements > 200, "only {statements} statements found");
        let report: Vec<String> = violations
            .iter()
            .map(|(what, places)| format!("{what}: {}", places.join(", ")))
            .collect();
        assert!(
            unreadable.is_empty() && violations.is_empty(),
            "{} statements read; cannot read {}:\n{}\n\n{} cross-folder uses:\n{}",
            statements,
            unreadable.len(),
            unreadable.join("\n"),
            violations.len(),
            report.join("\n")
        );
    }
}
