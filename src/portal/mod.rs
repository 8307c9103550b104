//! The home page after login: one tile per service that exists and that the person may use.
//! Tiles are chosen by `policy`; the portal never shows a service the person would be refused.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::id::hex;
use crate::policy::{self, Capability, Role};
use crate::state::{AppState, Routes};
use crate::web::{AppError, Page, render};

mod today;

pub fn routes() -> Routes {
    Routes::new().get("/", home)
}

/// Tile icons as inline SVG (no emoji: old laptops and phones often lack the fonts).
pub mod icons {
    macro_rules! icon {
        ($name:ident, $body:literal) => {
            pub const $name: &str = concat!(
                r#"<svg viewBox="0 0 24 24" width="28" height="28" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">"#,
                $body,
                "</svg>"
            );
        };
    }
    icon!(
        PERSON,
        r#"<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-6 8-6s8 2 8 6"/>"#
    );
    icon!(
        CHILD,
        r#"<circle cx="12" cy="7" r="3"/><path d="M7 21v-5l-2-3h14l-2 3v5"/>"#
    );
    icon!(
        CLASS,
        r#"<path d="M3 10l9-6 9 6"/><path d="M5 10v10h14V10"/><path d="M10 20v-5h4v5"/>"#
    );
    icon!(
        KEY,
        r#"<circle cx="8" cy="14" r="4"/><path d="M11 11l9-9"/><path d="M17 5l2 2"/>"#
    );
    icon!(
        SYSTEM,
        r#"<rect x="3" y="4" width="18" height="12" rx="1"/><path d="M8 20h8"/><path d="M12 16v4"/>"#
    );
    icon!(
        CALENDAR,
        r#"<rect x="3" y="5" width="18" height="16" rx="1"/><path d="M3 10h18"/><path d="M8 3v4"/><path d="M16 3v4"/>"#
    );
    icon!(
        CHECK,
        r#"<path d="M9 11l3 3 8-8"/><path d="M20 12v7a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h9"/>"#
    );
    icon!(
        BOOK,
        r#"<path d="M4 5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2z"/><path d="M4 19V5"/><path d="M8 7h7"/>"#
    );
    icon!(FLAG, r#"<path d="M5 21V4"/><path d="M5 4h11l-2 4 2 4H5"/>"#);
    icon!(
        UPLOAD,
        r#"<path d="M12 16V4"/><path d="M7 9l5-5 5 5"/><path d="M4 16v4h16v-4"/>"#
    );
    icon!(
        CLOCK,
        r#"<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 3"/>"#
    );
    icon!(
        BUILDING,
        r#"<path d="M4 21V5l8-3 8 3v16"/><path d="M9 21v-4h6v4"/><path d="M8 8h2M14 8h2M8 12h2M14 12h2"/>"#
    );
    icon!(
        LOCK,
        r#"<rect x="5" y="11" width="14" height="10" rx="1"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>"#
    );
}

#[derive(Debug, Clone)]
pub struct Tile {
    pub href: String,
    pub title: String,
    pub detail: String,
    pub icon: &'static str,
}

#[derive(Template)]
#[template(path = "portal/home.html")]
struct Home {
    page: Page,
    greeting: String,
    tiles: Vec<Tile>,
    notice: String,
    /// National announcements for this person's audiences, from the hub.
    national: Vec<crate::national::Announcement>,
    /// A teacher's day, above the services.
    day: Option<today::Day>,
    /// A pupil's day, or each child's for a parent, above the services.
    family: Vec<today::PupilDay>,
    /// The vie scolaire desk's day, above the services.
    desk: Option<today::Desk>,
}

#[derive(Deserialize, Default)]
struct HomeQuery {
    #[serde(default)]
    ok: String,
}

async fn home(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<HomeQuery>,
) -> Result<Response, AppError> {
    let tr = page.tr;
    let principal = user.principal();
    let me = user.person_id;
    // Only parents have children tiles and only teachers class tiles: the others' portal needs
    // no second trip to the database.
    let (wants_children, wants_classes) = (
        principal.has(Role::Parent),
        principal.has(Role::Enseignant) && !policy::allows(&principal, Capability::ListAllClasses),
    );
    let audiences = policy::announcement_audiences(&principal);
    let today = state.clock.today_iso();
    let national = state
        .db
        .read(move |c| {
            crate::national::announcements(c, &audiences, &today).map_err(AppError::from)
        })
        .await?;
    let (children, taught) = if wants_children || wants_classes {
        state
            .db
            .read(move |c| {
                Ok::<_, AppError>((
                    if wants_children {
                        crate::people::children_of(c, &me)?
                    } else {
                        Vec::new()
                    },
                    if wants_classes {
                        crate::people::classes_taught(c, &me)?
                    } else {
                        Vec::new()
                    },
                ))
            })
            .await?
    } else {
        (Vec::new(), Vec::new())
    };
    let day = if policy::has_teaching_day(&principal) {
        let now = state.clock.now();
        Some(
            state
                .db
                .read(move |c| today::of_teacher(c, &me, now, tr).map_err(AppError::from))
                .await?,
        )
    } else {
        None
    };
    let family = if policy::has_family_day(&principal) {
        let now = state.clock.now();
        let (who, kids) = (principal.clone(), children.clone());
        state
            .db
            .read(move |c| today::of_family(c, &who, &kids, now, tr).map_err(AppError::from))
            .await?
    } else {
        Vec::new()
    };
    let desk = if policy::has_attendance_desk(&principal) {
        let now = state.clock.now();
        Some(
            state
                .db
                .read(move |c| today::of_desk(c, now).map_err(AppError::from))
                .await?,
        )
    } else {
        None
    };
    let mut tiles = vec![Tile {
        href: format!("/personnes/{}", hex(&user.person_id)),
        title: tr.t("tile.profile").into(),
        detail: tr.t("tile.profile.detail").into(),
        icon: icons::PERSON,
    }];
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/personnes/{}", child.id),
                title: child.name.clone(),
                detail: tr.t("tile.child.detail").into(),
                icon: icons::CHILD,
            });
        }
    }
    // School life: what people open every day.
    if principal.any_of(&[Role::Eleve, Role::Parent, Role::Enseignant])
        || policy::allows(&principal, Capability::ViewTimetables)
    {
        tiles.push(Tile {
            href: "/emploi-du-temps".into(),
            title: tr.t("tile.timetable").into(),
            detail: tr.t("tile.timetable.detail").into(),
            icon: icons::CALENDAR,
        });
    }
    if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/cahier-de-textes/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.homework").into(),
            detail: tr.t("tile.homework.detail").into(),
            icon: icons::BOOK,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/cahier-de-textes/eleve/{}", child.id),
                title: tr.t("tile.child_homework").replace("{name}", &child.name),
                detail: tr.t("tile.homework.detail").into(),
                icon: icons::BOOK,
            });
        }
    }
    tiles.push(Tile {
        href: "/agenda".into(),
        title: tr.t("tile.agenda").into(),
        detail: tr.t("tile.agenda.detail").into(),
        icon: icons::CALENDAR,
    });
    if policy::allows(&principal, Capability::BookResources) {
        tiles.push(Tile {
            href: "/reservations".into(),
            title: tr.t("tile.booking").into(),
            detail: tr.t("tile.booking.detail").into(),
            icon: icons::KEY,
        });
    }
    if policy::allows(&principal, Capability::ReportIncidents) {
        tiles.push(Tile {
            href: "/discipline".into(),
            title: tr.t("tile.discipline").into(),
            detail: tr.t("tile.discipline.detail").into(),
            icon: icons::FLAG,
        });
    } else if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/discipline/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.discipline").into(),
            detail: tr.t("tile.discipline.family").into(),
            icon: icons::FLAG,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/discipline/eleve/{}", child.id),
                title: tr.t("tile.child_discipline").replace("{name}", &child.name),
                detail: tr.t("tile.discipline.family").into(),
                icon: icons::FLAG,
            });
        }
    }
    if principal.has(Role::Enseignant) || policy::allows(&principal, Capability::DirectAssessment) {
        tiles.push(Tile {
            href: "/notes".into(),
            title: tr.t("tile.grades").into(),
            detail: tr.t("tile.grades.detail").into(),
            icon: icons::BOOK,
        });
    } else if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/notes/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.grades").into(),
            detail: tr.t("tile.grades.family").into(),
            icon: icons::BOOK,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/notes/eleve/{}", child.id),
                title: tr.t("tile.child_grades").replace("{name}", &child.name),
                detail: tr.t("tile.grades.family").into(),
                icon: icons::BOOK,
            });
        }
    }
    if principal.any_of(&[Role::Enseignant, Role::Eleve, Role::Parent, Role::Direction]) {
        tiles.push(Tile {
            href: "/competences".into(),
            title: tr.t("tile.competences").into(),
            detail: tr.t("tile.competences.detail").into(),
            icon: icons::CHECK,
        });
    }
    if principal.has(Role::Enseignant) || policy::allows(&principal, Capability::VisaLessonLog) {
        tiles.push(Tile {
            href: "/cahier-de-textes".into(),
            title: tr.t("tile.journal").into(),
            detail: tr.t("tile.journal.detail").into(),
            icon: icons::BOOK,
        });
    }
    if principal.has(Role::Enseignant) || policy::allows(&principal, Capability::ManageAttendance) {
        tiles.push(Tile {
            href: "/appel".into(),
            title: tr.t("tile.rollcall").into(),
            detail: tr.t("tile.rollcall.detail").into(),
            icon: icons::CHECK,
        });
    }
    if policy::allows(&principal, Capability::ViewSchoolAttendance) {
        tiles.push(Tile {
            href: "/absences".into(),
            title: tr.t("tile.absences").into(),
            detail: tr.t("tile.absences.detail").into(),
            icon: icons::CLOCK,
        });
    } else if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/absences/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.absences").into(),
            detail: tr.t("tile.absences.detail").into(),
            icon: icons::CLOCK,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/absences/eleve/{}", child.id),
                title: tr.t("tile.child_absences").replace("{name}", &child.name),
                detail: tr.t("tile.absences.detail").into(),
                icon: icons::CLOCK,
            });
        }
    }
    if policy::allows(&principal, Capability::ManageStructure) {
        tiles.push(Tile {
            href: "/etablissement".into(),
            title: tr.t("tile.structure").into(),
            detail: tr.t("tile.structure.detail").into(),
            icon: icons::BUILDING,
        });
    }
    if policy::allows(&principal, Capability::ListAllClasses) {
        tiles.push(Tile {
            href: "/classes".into(),
            title: tr.t("tile.classes").into(),
            detail: tr.t("tile.classes.detail").into(),
            icon: icons::CLASS,
        });
    } else if principal.has(Role::Enseignant) {
        for class in taught {
            tiles.push(Tile {
                href: format!("/classes/{}", class.id),
                title: class.name,
                detail: tr
                    .t("tile.class.detail")
                    .replace("{n}", &class.pupils.to_string()),
                icon: icons::CLASS,
            });
        }
    }
    if policy::allows(&principal, Capability::ManageAccounts) {
        tiles.push(Tile {
            href: "/admin/comptes".into(),
            title: tr.t("tile.accounts").into(),
            detail: tr.t("tile.accounts.detail").into(),
            icon: icons::KEY,
        });
    }
    if policy::allows(&principal, Capability::ManageAccounts)
        || policy::allows(&principal, Capability::ManageStructure)
    {
        tiles.push(Tile {
            href: "/imports".into(),
            title: tr.t("tile.imports").into(),
            detail: tr.t("tile.imports.detail").into(),
            icon: icons::UPLOAD,
        });
    }
    if policy::allows(&principal, Capability::ViewSystem) {
        tiles.push(Tile {
            href: "/admin".into(),
            title: tr.t("tile.system").into(),
            detail: tr.t("tile.system.detail").into(),
            icon: icons::SYSTEM,
        });
    }
    if policy::allows(&principal, Capability::RunBackups) {
        tiles.push(Tile {
            href: "/admin/sauvegardes".into(),
            title: tr.t("tile.backups").into(),
            detail: tr.t("tile.backups.detail").into(),
            icon: icons::SYSTEM,
        });
    }
    if policy::allows(&principal, Capability::RunSync) {
        tiles.push(Tile {
            href: "/admin/synchronisation".into(),
            title: tr.t("tile.sync").into(),
            detail: tr.t("tile.sync.detail").into(),
            icon: icons::SYSTEM,
        });
    }
    if policy::allows(&principal, Capability::PrintRecoverySheet) {
        tiles.push(Tile {
            href: "/sauvegardes/fiche".into(),
            title: tr.t("tile.recovery").into(),
            detail: tr.t("tile.recovery.detail").into(),
            icon: icons::LOCK,
        });
    }
    tiles.push(Tile {
        href: "/mot-de-passe".into(),
        title: tr.t("tile.password").into(),
        detail: tr.t("tile.password.detail").into(),
        icon: icons::LOCK,
    });
    let notice = if q.ok == "password" {
        tr.t("password.saved").to_string()
    } else {
        String::new()
    };
    render(&Home {
        greeting: tr
            .t("portal.greeting")
            .replace("{name}", &user.display_name),
        page,
        tiles,
        notice,
        national,
        day,
        family,
        desk,
    })
}
