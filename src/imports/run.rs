//! What every kind of import shares, whichever feature's code runs it: the run's context (the
//! transaction, the school's scope, the options), the line-by-line report, and the way a line's
//! problem is told apart from a database failure. A leaf: it knows no feature.

use rusqlite::Connection;

use super::Kind;
use super::sheet::{self, LineError, Sheet};
use crate::db::DbError;
use crate::id::{Id, hex};
use crate::web::Msg;

/// What happens to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

impl Action {
    /// The catalog key of what happens.
    pub fn label(self) -> &'static str {
        match self {
            Action::Create => "imports.did.create",
            Action::Update => "imports.did.update",
            Action::Unchanged => "imports.did.unchanged",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineReport {
    pub line: usize,
    pub action: Action,
    /// Who or what the line is about ("KOFFI Ama (2nde A)").
    pub what: String,
    /// What changes ("classe 2nde A → 2nde B"), or notes ("compte créé").
    pub detail: String,
}

/// A pupil of the school missing from a new pupils file.
#[derive(Debug, Clone)]
pub struct Departure {
    pub person: Id,
    pub matricule: String,
    pub name: String,
    pub class: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub kind: Kind,
    pub lines: Vec<LineReport>,
    pub errors: Vec<LineError>,
    pub ignored_columns: Vec<String>,
    pub departures: Vec<Departure>,
    /// The departures were recorded (asked for, and the import applied).
    pub departures_applied: bool,
    /// Classes that received new accounts, with how many: their activation slips are to print.
    pub new_accounts: Vec<(String, String, usize)>,
    pub applied: bool,
}

impl Report {
    pub(crate) fn new(kind: Kind) -> Report {
        Report {
            kind,
            lines: Vec::new(),
            errors: Vec::new(),
            ignored_columns: Vec::new(),
            departures: Vec::new(),
            departures_applied: false,
            new_accounts: Vec::new(),
            applied: false,
        }
    }

    pub fn count(&self, action: Action) -> usize {
        self.lines.iter().filter(|l| l.action == action).count()
    }

    /// "12 création(s), 3 modification(s), 40 inchangé(s)".
    pub fn summary(&self) -> Msg {
        Msg::new("imports.summary")
            .arg("created", self.count(Action::Create))
            .arg("updated", self.count(Action::Update))
            .arg("unchanged", self.count(Action::Unchanged))
    }

    pub fn new_account(&mut self, class_id: &Id, class_name: &str) {
        let key = hex(class_id);
        match self.new_accounts.iter_mut().find(|(k, _, _)| *k == key) {
            Some(entry) => entry.2 += 1,
            None => self.new_accounts.push((key, class_name.to_string(), 1)),
        }
    }
}

/// How to run an import.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// Record the departures the pupils file implies (left today, account disabled).
    pub confirm_departures: bool,
    /// Today in the school's time zone, `YYYY-MM-DD`.
    pub today: String,
    /// Country calling code added to 8-digit local phone numbers ("228" for Togo).
    pub country_code: String,
    pub actor: Option<Id>,
    /// Who hands out the roles a staff file names (`policy::may_grant` decides); `None` on the
    /// box's command line, which may grant any role.
    pub grantor: Option<crate::policy::Principal>,
    /// Address of the browser, or "cli".
    pub origin: String,
    pub file_name: String,
}

/// A line's problem, or a database failure that stops the import.
#[derive(Debug)]
pub enum Problem {
    Line(LineError),
    Db(DbError),
}

impl From<DbError> for Problem {
    fn from(e: DbError) -> Problem {
        Problem::Db(e)
    }
}

impl From<rusqlite::Error> for Problem {
    fn from(e: rusqlite::Error) -> Problem {
        Problem::Db(e.into())
    }
}

impl From<LineError> for Problem {
    fn from(e: LineError) -> Problem {
        Problem::Line(e)
    }
}

/// Shared by every kind: the transaction and the facts of this run.
pub struct Ctx<'a> {
    pub tx: &'a Connection,
    pub scope: String,
    pub opts: &'a Options,
}

impl Ctx<'_> {
    /// Run `f` for each data row, collecting its line report or its error.
    pub fn each(
        &self,
        sheet: &Sheet,
        report: &mut Report,
        mut f: impl FnMut(&sheet::Record, &mut Report) -> Result<LineReport, Problem>,
    ) -> Result<(), DbError> {
        for rec in &sheet.rows {
            match f(rec, report) {
                Ok(line) => report.lines.push(line),
                Err(Problem::Line(e)) => report.errors.push(e),
                Err(Problem::Db(e)) => return Err(e),
            }
        }
        Ok(())
    }
}
