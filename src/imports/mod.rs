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
            format!(", {departures} départ(s)")
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
    let sheet = sheet::read(bytes)?;
    finish(db.write_blocking(|tx| in_transaction(tx, kind, &sheet, opts)))
}

/// Read and import a file from a request handler.
pub async fn import(
    db: &crate::db::Db,
    kind: Kind,
    bytes: Vec<u8>,
    opts: Options,
) -> Result<Report, ImportError> {
    let sheet = tokio::task::spawn_blocking(move || sheet::read(&bytes))
        .await
        .map_err(|e| ImportError::Db(DbError::Join(e)))??;
    finish(
        db.write(move |tx| in_transaction(tx, kind, &sheet, &opts))
            .await,
    )
}
