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
use crate::web::{AppError, Page, icons, render};

mod today;

pub fn routes() -> Routes {
    Routes::new().get("/", home)
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
    /// What waits for the direction or the technician (`None`: not their home).
    attention: Option<Vec<today::Attention>>,
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
    let attention = if policy::has_things_to_see_to(&principal) {
        let now = state.clock.now();
        let (free, total) = crate::backup::disk_space(&state.config.data_dir).unwrap_or((0, 0));
        let facts = today::BoxFacts {
            disk_free: free,
            disk_total: total,
            enrolled: matches!(crate::sync::Enrollment::load(&state.config), Ok(Some(_))),
            now_secs: crate::db::now(),
            utc_offset_minutes: state.config.utc_offset_minutes,
            certificate_expires: state
                .config
                .http
                .tls
                .then(|| crate::net::tls::leaf_expiry(&state.config.tls_dir()))
                .flatten(),
        };
        let who = principal.clone();
        Some(
            state
                .db
                .read(move |c| today::of_staff(c, &who, now, facts, tr).map_err(AppError::from))
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
    if policy::may_use_messages(&principal) {
        let me = user.person_id;
        let now = crate::db::now();
        let unread = state
            .db
            .read(move |c| crate::messages::store::unread_count(c, &me, now))
            .await?;
        tiles.push(Tile {
            href: "/messages".into(),
            title: tr.t("tile.messages").into(),
            detail: if unread > 0 {
                tr.n("tile.messages.unread", usize::try_from(unread).unwrap_or(0))
            } else {
                tr.t("tile.messages.detail").into()
            },
            icon: icons::MAIL,
        });
    }
    // School life: what people open every day.
    if principal.any_of(&[Role::Eleve, Role::Parent, Role::Enseignant])
        || policy::allows(&principal, Capability::ViewTimetables)
    {
        tiles.push(Tile {
            href: "/emploi-du-temps".into(),
            title: tr.t("tile.timetable").into(),
            detail: tr.t("tile.timetable.detail").into(),
            icon: icons::GRID,
        });
    }
    if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/cahier-de-textes/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.homework").into(),
            detail: tr.t("tile.homework.detail").into(),
            icon: icons::PENCIL,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/cahier-de-textes/eleve/{}", child.id),
                title: crate::text::with_name(tr.t("tile.child_homework"), &child.name),
                detail: tr.t("tile.homework.detail").into(),
                icon: icons::PENCIL,
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
                title: crate::text::with_name(tr.t("tile.child_discipline"), &child.name),
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
            icon: icons::CHART,
        });
    } else if principal.has(Role::Eleve) {
        tiles.push(Tile {
            href: format!("/notes/eleve/{}", hex(&user.person_id)),
            title: tr.t("tile.grades").into(),
            detail: tr.t("tile.grades.family").into(),
            icon: icons::CHART,
        });
    }
    if principal.has(Role::Parent) {
        for child in &children {
            tiles.push(Tile {
                href: format!("/notes/eleve/{}", child.id),
                title: crate::text::with_name(tr.t("tile.child_grades"), &child.name),
                detail: tr.t("tile.grades.family").into(),
                icon: icons::CHART,
            });
        }
    }
    if principal.any_of(&[Role::Enseignant, Role::Eleve, Role::Parent, Role::Direction]) {
        tiles.push(Tile {
            href: "/competences".into(),
            title: tr.t("tile.competences").into(),
            detail: tr.t("tile.competences.detail").into(),
            icon: icons::STAR,
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
            icon: icons::LIST,
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
                title: crate::text::with_name(tr.t("tile.child_absences"), &child.name),
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
            icon: icons::PEOPLE,
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
            icon: icons::DISK,
        });
    }
    if policy::allows(&principal, Capability::RunSync) {
        tiles.push(Tile {
            href: "/admin/synchronisation".into(),
            title: tr.t("tile.sync").into(),
            detail: tr.t("tile.sync.detail").into(),
            icon: icons::SYNC,
        });
    }
    if policy::allows(&principal, Capability::PrintRecoverySheet) {
        tiles.push(Tile {
            href: "/sauvegardes/fiche".into(),
            title: tr.t("tile.recovery").into(),
            detail: tr.t("tile.recovery.detail").into(),
            icon: icons::PRINTER,
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
        attention,
    })
}
