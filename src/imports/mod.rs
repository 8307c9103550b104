//! Imports of the secrétariat's spreadsheets: pupils, parents, staff, classes, coefficients and
//! the timetable. The command line (`kekeli import`) and the admin page run the same code.
//!
//! Every import runs inside one write transaction: each line is checked and applied in turn, so
//! a line sees what earlier lines did (two siblings share a parent, a slot conflicts with the one
//! above it). A dry run, or any error, rolls the whole transaction back: what the preview says
//! is exactly what applying does, and one bad line changes nothing. Unchanged rows are not
//! written, so re-importing a file writes nothing and sends nothing to the national portal.

pub mod run;
pub mod sheet;
mod views;

use rusqlite::{Connection, Transaction};

use crate::db::{self, DbError, audit};
use crate::policy::Capability;
use crate::web::Msg;
pub use run::{Action, Ctx, Departure, LineReport, Options, Problem, Report};
pub use sheet::{LineError, ReadError, Sheet};
pub use views::routes;

/// Largest file accepted by the admin page (a 3,000-pupil school's list is about 300 KB).
pub const MAX_FILE: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Classes,
    Pupils,
    Parents,
    Staff,
    Coefficients,
    Timetable,
    Marks,
}

impl Kind {
    /// In the order a new school imports them.
    pub const ALL: [Kind; 7] = [
        Kind::Staff,
        Kind::Classes,
        Kind::Pupils,
        Kind::Parents,
        Kind::Coefficients,
        Kind::Timetable,
        Kind::Marks,
    ];

    /// The command-line name (`kekeli import pupils …`).
    pub fn cli(self) -> &'static str {
        match self {
            Kind::Classes => "classes",
            Kind::Pupils => "pupils",
            Kind::Parents => "parents",
            Kind::Staff => "staff",
            Kind::Coefficients => "coefficients",
            Kind::Timetable => "timetable",
            Kind::Marks => "marks",
        }
    }

    /// The name in addresses and sample files (`/imports/modele/eleves`).
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Classes => "classes",
            Kind::Pupils => "eleves",
            Kind::Parents => "parents",
            Kind::Staff => "personnels",
            Kind::Coefficients => "coefficients",
            Kind::Timetable => "emploi-du-temps",
            Kind::Marks => "notes",
        }
    }

    /// Either name, as typed on the command line or sent by the page.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.cli() == s || k.slug() == s)
    }

    /// The catalog key of the kind's title.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Classes => "imports.kind.classes",
            Kind::Pupils => "imports.kind.pupils",
            Kind::Parents => "imports.kind.parents",
            Kind::Staff => "imports.kind.staff",
            Kind::Coefficients => "imports.kind.coefficients",
            Kind::Timetable => "imports.kind.timetable",
            Kind::Marks => "imports.kind.marks",
        }
    }

    /// Who may run it: people imports create accounts; the others change the structure.
    pub fn capability(self) -> Capability {
        match self {
            Kind::Pupils | Kind::Parents | Kind::Staff => Capability::ManageAccounts,
            Kind::Classes | Kind::Coefficients | Kind::Timetable => Capability::ManageStructure,
            Kind::Marks => Capability::DirectAssessment,
        }
    }

    /// The sample file shipped in `docs/imports/` (also offered for download on the page).
    pub fn sample(self) -> &'static str {
        match self {
            Kind::Classes => include_str!("../../docs/imports/classes.csv"),
            Kind::Pupils => include_str!("../../docs/imports/eleves.csv"),
            Kind::Parents => include_str!("../../docs/imports/parents.csv"),
            Kind::Staff => include_str!("../../docs/imports/personnels.csv"),
            Kind::Coefficients => include_str!("../../docs/imports/coefficients.csv"),
            Kind::Timetable => include_str!("../../docs/imports/emploi-du-temps.csv"),
            Kind::Marks => include_str!("../../docs/imports/notes.csv"),
        }
    }

    fn fields(self) -> &'static [sheet::Field] {
        match self {
            Kind::Classes => crate::school::import::CLASS_FIELDS,
            Kind::Pupils => crate::people::import::PUPIL_FIELDS,
            Kind::Parents => crate::people::import::PARENT_FIELDS,
            Kind::Staff => crate::people::import::STAFF_FIELDS,
            Kind::Coefficients => crate::school::import::COEFFICIENT_FIELDS,
            Kind::Timetable => crate::timetable::import::SLOT_FIELDS,
            Kind::Marks => crate::grades::import::MARK_FIELDS,
        }
    }

    /// The expected columns, for the page and the error messages.
    pub fn columns(self) -> Vec<(&'static str, bool)> {
        self.fields()
            .iter()
            .map(|f| (f.label, f.required))
            .collect()
    }
}

/// Check and apply every line of `sheet` in `tx` (the caller commits or rolls back).
pub fn run(tx: &Connection, kind: Kind, sheet: &Sheet, opts: &Options) -> Result<Report, DbError> {
    let mut report = Report::new(kind);
    let (cols, errors) = sheet::Columns::locate(sheet, kind.fields());
    report.ignored_columns = cols.ignored.clone();
    if !errors.is_empty() {
        report.errors = errors;
        return Ok(report);
    }
    if sheet.rows.is_empty() {
        report.errors.push(LineError {
            line: sheet.header_line,
            column: String::new(),
            message: Msg::new("imports.msg.no_rows"),
        });
        return Ok(report);
    }
    let ctx = Ctx {
        tx,
        scope: db::registry::school_scope(tx)?,
        opts,
    };
    match kind {
        Kind::Pupils => crate::people::import::pupils(&ctx, &cols, sheet, &mut report)?,
        Kind::Parents => crate::people::import::parents(&ctx, &cols, sheet, &mut report)?,
        Kind::Staff => crate::people::import::staff(&ctx, &cols, sheet, &mut report)?,
        Kind::Classes => crate::school::import::classes(&ctx, &cols, sheet, &mut report)?,
        Kind::Coefficients => crate::school::import::coefficients(&ctx, &cols, sheet, &mut report)?,
        Kind::Timetable => crate::timetable::import::timetable(&ctx, &cols, sheet, &mut report)?,
        Kind::Marks => crate::grades::import::marks(&ctx, &cols, sheet, &mut report)?,
    }
    Ok(report)
}

/// Why an import could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Rolls the transaction back while carrying the report out.
enum Abort {
    Rollback(Box<Report>),
    Db(DbError),
}

impl From<DbError> for Abort {
    fn from(e: DbError) -> Abort {
        Abort::Db(e)
    }
}

fn in_transaction(
    tx: &Transaction<'_>,
    kind: Kind,
    sheet: &Sheet,
    opts: &Options,
) -> Result<Report, Abort> {
    let mut report = run(tx, kind, sheet, opts)?;
    if !report.errors.is_empty() || opts.dry_run {
        return Err(Abort::Rollback(Box::new(report)));
    }
    let departures = report.departures.len();
    if opts.confirm_departures && departures > 0 {
        crate::people::import::record_departures(tx, &report.departures, opts)?;
        report.departures_applied = true;
    }
    let what = format!(
        "{} « {} » : {}{}",
        kind.cli(),
        opts.file_name,
        report.summary().render(Default::default()),
        if report.departures_applied {
            format!(
                ", {departures} {}",
                if departures > 1 {
                    "départs"
                } else {
                    "départ"
                }
            )
        } else {
            String::new()
        }
    );
    audit::record(
        tx,
        &audit::Entry {
            actor: opts.actor.as_ref().map(|a| &a[..]),
            action: "import.apply",
            object_type: Some("import"),
            new: Some(&what),
            ip: Some(&opts.origin),
            ..Default::default()
        },
    )?;
    report.applied = true;
    Ok(report)
}

fn finish(result: Result<Report, Abort>) -> Result<Report, ImportError> {
    match result {
        Ok(r) => Ok(r),
        Err(Abort::Rollback(r)) => Ok(*r),
        Err(Abort::Db(e)) => Err(e.into()),
    }
}

/// Read and import a file, off the async runtime (command line, benchmarks).
pub fn import_blocking(
    db: &crate::db::Db,
    kind: Kind,
    bytes: &[u8],
    opts: &Options,
) -> Result<Report, ImportError> {
    let result = sheet::read(bytes)
        .map_err(ImportError::from)
        .and_then(|sheet| finish(db.write_blocking(|tx| in_transaction(tx, kind, &sheet, opts))));
    if let Some(run) = Run::of(kind, opts, &result) {
        db.write_blocking(|tx| record_run(tx, &run))?;
    }
    result
}

/// Read and import a file from a request handler.
pub async fn import(
    db: &crate::db::Db,
    kind: Kind,
    bytes: Vec<u8>,
    opts: Options,
) -> Result<Report, ImportError> {
    let read = tokio::task::spawn_blocking(move || sheet::read(&bytes))
        .await
        .map_err(|e| ImportError::Db(DbError::Join(e)))?;
    let result = match read {
        Ok(sheet) => {
            let o = opts.clone();
            finish(
                db.write(move |tx| in_transaction(tx, kind, &sheet, &o))
                    .await,
            )
        }
        Err(e) => Err(e.into()),
    };
    if let Some(run) = Run::of(kind, &opts, &result) {
        db.write(move |tx| record_run(tx, &run)).await?;
    }
    result
}

/// One import tried, as the home pages report it.
struct Run {
    kind: Kind,
    file_name: String,
    actor: Option<crate::id::Id>,
    dry_run: bool,
    applied: bool,
    errors: usize,
}

impl Run {
    /// What to record of an import's outcome; nothing for a database failure (the file was not
    /// at fault).
    fn of(kind: Kind, opts: &Options, result: &Result<Report, ImportError>) -> Option<Run> {
        let (applied, errors) = match result {
            Ok(r) => (r.applied, r.errors.len()),
            Err(ImportError::Read(_)) => (false, 1),
            Err(ImportError::Db(_)) => return None,
        };
        Some(Run {
            kind,
            file_name: opts.file_name.clone(),
            actor: opts.actor,
            dry_run: opts.dry_run,
            applied,
            errors,
        })
    }
}

/// Runs are kept this long.
const RUNS_KEPT_SECS: i64 = 90 * 86_400;

fn record_run(tx: &Transaction<'_>, run: &Run) -> Result<(), DbError> {
    let now = db::now();
    tx.execute(
        "DELETE FROM import_runs WHERE at < ?1",
        [now - RUNS_KEPT_SECS],
    )?;
    tx.execute(
        "INSERT INTO import_runs (kind, file_name, at, actor, dry_run, applied, errors) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            run.kind.cli(),
            run.file_name,
            now,
            run.actor.as_ref().map(|a| &a[..]),
            run.dry_run,
            run.applied,
            i64::try_from(run.errors).unwrap_or(i64::MAX),
        ],
    )?;
    Ok(())
}

/// The latest import of a kind, when it left work to do: a file with errors, or one checked
/// without error and not applied since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub kind: Kind,
    pub file_name: String,
    /// Unix seconds.
    pub at: i64,
    /// 0 for a file checked without error, waiting for its confirmation.
    pub errors: i64,
}

/// Per kind, the latest import since `since` (unix seconds) when it was not applied.
pub fn unfinished(conn: &Connection, since: i64) -> Result<Vec<Unfinished>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT kind, file_name, at, errors FROM import_runs r \
         WHERE at >= ?1 AND applied = 0 AND id = (SELECT MAX(id) FROM import_runs x WHERE x.kind = r.kind) \
         ORDER BY at DESC",
    )?;
    let rows = st
        .query_map([since], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<Vec<(String, String, i64, i64)>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, file_name, at, errors)| {
            Some(Unfinished {
                kind: Kind::parse(&kind)?,
                file_name,
                at,
                errors,
            })
        })
        .collect())
}
