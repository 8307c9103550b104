//! The home page after login: one tile per service that exists and that the person may use.
//! Tiles are chosen by `policy`; the portal never shows a service the person would be refused.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::app::{AppState, Routes};
use crate::auth::CurrentUser;
use crate::auth::store::hex;
use crate::policy::{self, Capability, Role};
use crate::web::{AppError, Page, render};

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
    let (children, taught) = state
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                crate::people::children_of(c, &me)?,
                crate::people::classes_taught(c, &me)?,
            ))
        })
        .await?;
    let mut tiles = vec![Tile {
        href: format!("/personnes/{}", hex(&user.person_id)),
        title: tr.t("tile.profile").into(),
        detail: tr.t("tile.profile.detail").into(),
        icon: "👤",
    }];
    if principal.has(Role::Parent) {
        for child in children {
            tiles.push(Tile {
                href: format!("/personnes/{}", child.id),
                title: child.name,
                detail: tr.t("tile.child.detail").into(),
                icon: "🧒",
            });
        }
    }
    if policy::allows(&principal, Capability::ListAllClasses) {
        tiles.push(Tile {
            href: "/classes".into(),
            title: tr.t("tile.classes").into(),
            detail: tr.t("tile.classes.detail").into(),
            icon: "🏫",
        });
    } else if principal.has(Role::Enseignant) {
        for class in taught {
            tiles.push(Tile {
                href: format!("/classes/{}", class.id),
                title: class.name,
                detail: tr
                    .t("tile.class.detail")
                    .replace("{n}", &class.pupils.to_string()),
                icon: "🏫",
            });
        }
    }
    if policy::allows(&principal, Capability::ManageAccounts) {
        tiles.push(Tile {
            href: "/admin/comptes".into(),
            title: tr.t("tile.accounts").into(),
            detail: tr.t("tile.accounts.detail").into(),
            icon: "🔑",
        });
    }
    if policy::allows(&principal, Capability::ViewSystem) {
        tiles.push(Tile {
            href: "/admin".into(),
            title: tr.t("tile.system").into(),
            detail: tr.t("tile.system.detail").into(),
            icon: "🖥",
        });
    }
    tiles.push(Tile {
        href: "/mot-de-passe".into(),
        title: tr.t("tile.password").into(),
        detail: tr.t("tile.password.detail").into(),
        icon: "🔒",
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
    })
}
