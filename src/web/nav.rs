//! The navigation bar: a person's home and the four places their roles open most, on every
//! page — in the header on laptops, fixed at the bottom of the screen on phones — and, for a
//! parent of several children on a child's page, one link per child to the same page.
//!
//! It shows only places `policy` lets this person open (it asks the same questions the portal's
//! tiles ask); it never decides access itself — the pages do, whatever the bar shows.

use crate::auth::CurrentUser;
use crate::people::PersonRef;
use crate::policy::{self, Capability, Role};

use super::i18n::Tr;
use super::icons;

/// One entry of the bar.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: String,
    pub label: String,
    pub icon: &'static str,
    /// The page shown is this entry's (or under it): `aria-current="page"`.
    pub current: bool,
}

/// The places a bar can hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Timetable,
    Homework,
    Marks,
    Absences,
    RollCall,
    Journal,
    Discipline,
    Classes,
    Accounts,
    Imports,
    System,
    Backups,
    Sync,
    Agenda,
}

/// What each role opens most, first first.
fn wanted(role: Role) -> &'static [Place] {
    use Place::*;
    match role {
        Role::Eleve | Role::Parent => &[Timetable, Homework, Marks, Absences],
        Role::Enseignant => &[RollCall, Timetable, Journal, Marks],
        Role::VieScolaire => &[RollCall, Absences, Discipline, Timetable],
        Role::Direction => &[Absences, Journal, Marks, Classes],
        Role::Secretariat => &[Classes, Accounts, Imports, Timetable],
        Role::Technicien => &[System, Accounts, Backups, Sync],
        Role::Invite => &[Agenda],
    }
}

/// The order in which a person's roles choose the bar's places: the daily work first.
const ROLE_ORDER: [Role; 8] = [
    Role::Enseignant,
    Role::VieScolaire,
    Role::Direction,
    Role::Secretariat,
    Role::Technicien,
    Role::Eleve,
    Role::Parent,
    Role::Invite,
];

/// How many places follow *Accueil*: five entries fit a 360 px screen with their labels.
const PLACES: usize = 4;

/// The bar for `user` on the page at `path`; `children` are a parent's children (empty for
/// anyone else). An anonymous visitor has no bar.
pub fn bar(user: &CurrentUser, children: &[PersonRef], path: &str, tr: Tr) -> Vec<NavItem> {
    let who = user.principal();
    let me = crate::id::hex(&user.person_id);
    // A pupil's pages are their own; a parent's go to their first child's (the child's page
    // then offers the others, see [`children_switch`]).
    let family_id = if who.has(Role::Eleve) {
        Some(me.as_str())
    } else {
        children.first().map(|c| c.id.as_str())
    };
    let mut places: Vec<Place> = Vec::new();
    for role in ROLE_ORDER.iter().filter(|r| who.has(**r)) {
        for p in wanted(*role) {
            if !places.contains(p) && places.len() < PLACES {
                places.push(*p);
            }
        }
    }
    let mut items = vec![NavItem {
        href: "/".into(),
        label: tr.t("nav.bar.home").to_string(),
        icon: icons::HOME,
        current: path == "/",
    }];
    for place in places {
        if let Some((href, key, icon)) = entry(place, &who, family_id) {
            items.push(NavItem {
                href,
                label: tr.t(key).to_string(),
                icon,
                current: false,
            });
        }
    }
    // The entry the page belongs to: the longest href the path starts with, as a path.
    if path != "/" {
        let best = items
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, i)| under(path, section(&i.href)))
            .max_by_key(|(_, i)| section(&i.href).len())
            .map(|(n, _)| n);
        if let Some(n) = best {
            items[n].current = true;
        }
    }
    items
}

/// Where `place` leads for `who`, or `None` where policy would refuse it (or, for a family
/// place, there is no child to show).
fn entry(
    place: Place,
    who: &policy::Principal,
    family_id: Option<&str>,
) -> Option<(String, &'static str, &'static str)> {
    let staff = |cap: Capability| policy::allows(who, cap);
    let family = || family_id.filter(|_| policy::has_family_day(who));
    let teacher = who.has(Role::Enseignant);
    Some(match place {
        Place::Timetable => {
            if !(teacher || staff(Capability::ViewTimetables) || family().is_some()) {
                return None;
            }
            ("/emploi-du-temps".into(), "nav.bar.timetable", icons::GRID)
        }
        Place::Homework => (
            format!("/cahier-de-textes/eleve/{}", family()?),
            "nav.bar.homework",
            icons::PENCIL,
        ),
        Place::Marks if teacher || staff(Capability::DirectAssessment) => {
            ("/notes".into(), "nav.bar.marks", icons::CHART)
        }
        Place::Marks => (
            format!("/notes/eleve/{}", family()?),
            "nav.bar.marks",
            icons::CHART,
        ),
        Place::Absences if staff(Capability::ViewSchoolAttendance) => {
            ("/absences".into(), "nav.bar.absences", icons::CLOCK)
        }
        Place::Absences => (
            format!("/absences/eleve/{}", family()?),
            "nav.bar.absences",
            icons::CLOCK,
        ),
        Place::RollCall if teacher || staff(Capability::ManageAttendance) => {
            ("/appel".into(), "nav.bar.roll_call", icons::LIST)
        }
        Place::Journal if teacher || staff(Capability::VisaLessonLog) => {
            ("/cahier-de-textes".into(), "nav.bar.journal", icons::BOOK)
        }
        Place::Discipline if staff(Capability::ReportIncidents) => {
            ("/discipline".into(), "nav.bar.discipline", icons::FLAG)
        }
        Place::Classes if staff(Capability::ListAllClasses) => {
            ("/classes".into(), "nav.bar.classes", icons::CLASS)
        }
        Place::Accounts if staff(Capability::ManageAccounts) => {
            ("/admin/comptes".into(), "nav.bar.accounts", icons::PEOPLE)
        }
        Place::Imports
            if staff(Capability::ManageAccounts) || staff(Capability::ManageStructure) =>
        {
            ("/imports".into(), "nav.bar.imports", icons::UPLOAD)
        }
        Place::System if staff(Capability::ViewSystem) => {
            ("/admin".into(), "nav.bar.system", icons::SYSTEM)
        }
        Place::Backups if staff(Capability::RunBackups) => {
            ("/admin/sauvegardes".into(), "nav.bar.backups", icons::DISK)
        }
        Place::Sync if staff(Capability::RunSync) => {
            ("/admin/synchronisation".into(), "nav.bar.sync", icons::SYNC)
        }
        Place::Agenda => ("/agenda".into(), "nav.bar.agenda", icons::CALENDAR),
        _ => return None,
    })
}

/// The part of an entry's address its pages live under: a pupil's pages are one section
/// (`/notes/eleve/…` is *Notes*), whichever pupil they show.
fn section(href: &str) -> &str {
    match href.find("/eleve/") {
        Some(i) => &href[..i],
        None => href,
    }
}

/// Is `path` the page `base` or one under it (`/notes/…`, not `/notesxyz`)?
fn under(path: &str, base: &str) -> bool {
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/') || base.ends_with('/'))
}

/// The family pages that show one pupil and exist for each child alike.
const CHILD_PAGES: [&str; 4] = [
    "/notes/eleve/",
    "/absences/eleve/",
    "/cahier-de-textes/eleve/",
    "/discipline/eleve/",
];

/// On a child's page, for a parent of several children: the same page for each child, the
/// one shown marked current. Empty elsewhere.
pub fn children_switch(children: &[PersonRef], path: &str) -> Vec<NavItem> {
    if children.len() < 2 {
        return Vec::new();
    }
    let Some((base, id)) = CHILD_PAGES
        .iter()
        .find_map(|b| path.strip_prefix(b).map(|id| (*b, id)))
    else {
        return Vec::new();
    };
    if !children.iter().any(|c| c.id == id) {
        return Vec::new();
    }
    children
        .iter()
        .map(|c| NavItem {
            href: format!("{base}{}", c.id),
            label: c.name.clone(),
            icon: "",
            current: c.id == id,
        })
        .collect()
}
