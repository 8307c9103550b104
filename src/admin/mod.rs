//! The local admin pages for the technician (and the secrétariat for accounts): system health,
//! accounts (create, disable, new activation code), printable activation sheets. No marks here.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::store::{self, AccountFilter, AccountRow, NewPerson};
use crate::auth::{Can, ManageAccounts, ViewSystem};
use crate::id::{Id, id_from_hex};
use crate::people::ClassRef;
use crate::policy::{self, Role};
use crate::state::{AppState, Routes};
use crate::web::{AppError, ClientIp, CsrfForm, Msg, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/admin", system_page)
        .get("/admin/comptes", accounts_page)
        .get("/admin/comptes/nouveau", new_account_page)
        .post("/admin/comptes", create_account)
        .get("/admin/comptes/{id}", account_page)
        .post("/admin/comptes/{id}/desactiver", disable_account)
        .post("/admin/comptes/{id}/reactiver", enable_account)
        .post("/admin/comptes/{id}/code", reset_code)
        .post("/admin/fiches", print_sheets)
}

#[derive(Template)]
#[template(path = "admin/system.html")]
struct SystemPage {
    page: Page,
    version: &'static str,
    uptime: String,
    disk_free: String,
    disk_total: String,
    db_size: String,
    sessions: i64,
    accounts: i64,
    urls: Vec<String>,
    fingerprint: String,
    /// The last verified backup, as the school reads its date; empty when there is none.
    backup_last: String,
    backup_overdue: bool,
    /// The last successful sync with the national hub; empty when there is none.
    sync_last: String,
    /// The last seven closed days' use, by service and by role: (name, requests, person-days).
    usage_services: Vec<(&'static str, i64, i64)>,
    usage_roles: Vec<(&'static str, i64, i64)>,
}

/// "1,2 Go" style sizes.
pub fn human_bytes(n: u64) -> String {
    let units = ["o", "Kio", "Mio", "Gio", "Tio"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} o")
    } else {
        format!("{v:.1} {}", units[i]).replace('.', ",")
    }
}

fn human_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} j {h} h {m} min")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min {} s", secs % 60)
    }
}

async fn system_page(
    State(state): State<AppState>,
    Can(..): Can<ViewSystem>,
    page: Page,
) -> Result<Response, AppError> {
    let now = crate::db::now();
    let week_ago = crate::school::calendar::iso(state.clock.today() - time::Duration::days(7));
    let (sessions, accounts, backups, sync_last, (services, roles)) = state
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                crate::auth::session::count(c)?,
                store::count_accounts(c)?,
                crate::backup::web::health(c, now)?,
                crate::sync::last_success(c)?,
                crate::usage::summary(c, &week_ago)?,
            ))
        })
        .await?;
    let label = |prefix: &str, lines: Vec<crate::usage::Line>| {
        lines
            .into_iter()
            .map(|l| {
                (
                    page.tr.t(&format!("{prefix}.{}", l.key)),
                    l.visits,
                    l.people,
                )
            })
            .collect::<Vec<_>>()
    };
    let usage_services = label("usage.service", services);
    let usage_roles = label("role", roles);
    let (free, total) = crate::backup::disk_space(&state.config.data_dir).unwrap_or((0, 0));
    render(&SystemPage {
        page,
        version: env!("CARGO_PKG_VERSION"),
        uptime: human_duration(state.started.elapsed().as_secs()),
        disk_free: human_bytes(free),
        disk_total: human_bytes(total),
        db_size: human_bytes(state.db.size_bytes()),
        sessions,
        accounts,
        urls: state.urls.clone(),
        fingerprint: crate::system::ca_fingerprint(&state.ca_pem),
        backup_last: backups
            .last_good
            .and_then(|r| r.finished)
            .map(|t| crate::backup::web::when(t, state.config.utc_offset_minutes))
            .unwrap_or_default(),
        backup_overdue: backups.overdue,
        sync_last: sync_last
            .map(|t| crate::backup::web::when(t, state.config.utc_offset_minutes))
            .unwrap_or_default(),
        usage_services,
        usage_roles,
    })
}

#[derive(Deserialize, Default)]
struct AccountsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    classe: String,
    #[serde(default)]
    page: Option<i64>,
}

const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "admin/accounts.html")]
struct AccountsPage {
    page: Page,
    rows: Vec<AccountRow>,
    total: i64,
    q: String,
    role: String,
    classe: String,
    classes: Vec<ClassRef>,
    roles: Vec<Role>,
    /// The roles whose sheets the asker may print (`policy::grantable_roles`).
    grantable: Vec<Role>,
    page_no: i64,
    pages: i64,
}

impl AccountsPage {
    fn query_for(&self, page_no: i64) -> String {
        format!(
            "?q={}&role={}&classe={}&page={page_no}",
            crate::web::error::urlencode(&self.q),
            crate::web::error::urlencode(&self.role),
            crate::web::error::urlencode(&self.classe)
        )
    }
}

async fn accounts_page(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
    Query(q): Query<AccountsQuery>,
) -> Result<Response, AppError> {
    let page_no = q.page.unwrap_or(1).max(1);
    let class = id_from_hex(&q.classe);
    let mut filter = AccountFilter {
        search: q.q.clone(),
        role: Role::parse(&q.role),
        limit: PAGE_SIZE,
        offset: (page_no - 1) * PAGE_SIZE,
        ..Default::default()
    };
    let (rows, total, classes) = state
        .db
        .read(move |c| {
            if let Some(class) = class {
                filter.people = Some(crate::people::class_family(c, &class)?);
            }
            let (mut rows, total) = store::list_accounts(c, &filter)?;
            with_classes(c, &mut rows)?;
            Ok::<_, AppError>((rows, total, crate::people::all_classes(c)?))
        })
        .await?;
    render(&AccountsPage {
        page,
        rows,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        total,
        q: q.q,
        role: q.role,
        classe: q.classe,
        classes,
        roles: Role::ALL.to_vec(),
        grantable: policy::grantable_roles(&user.principal()),
        page_no,
    })
}

#[derive(Template)]
#[template(path = "admin/new_account.html")]
struct NewAccountPage {
    page: Page,
    roles: Vec<Role>,
    error: String,
    form: NewAccountForm,
}

#[derive(Deserialize, Default, Clone)]
struct NewAccountForm {
    #[serde(default)]
    surname: String,
    #[serde(default)]
    first_names: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    matricule: String,
}

async fn new_account_page(
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
) -> Result<Response, AppError> {
    render(&NewAccountPage {
        page,
        roles: policy::grantable_roles(&user.principal()),
        error: String::new(),
        form: NewAccountForm::default(),
    })
}

#[derive(Template)]
#[template(path = "admin/code.html")]
struct CodePage {
    page: Page,
    slips: Vec<Slip>,
    back: String,
}

/// One activation slip: who, where to go, the code.
#[derive(Debug, Clone)]
pub struct Slip {
    pub name: String,
    pub class_name: String,
    /// For a parent's slip: whose parent, one child a line (empty otherwise).
    pub parent_of: Vec<String>,
    pub login: String,
    pub code: String,
    pub url: String,
    pub qr_svg: String,
}

fn login_url(state: &AppState, login: &str) -> String {
    let base = state.urls.first().cloned().unwrap_or_default();
    format!(
        "{base}/connexion?login={}",
        crate::web::error::urlencode(login)
    )
}

pub(crate) fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(96, 96)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

fn slip(state: &AppState, row: &AccountRow, code: String) -> Slip {
    let url = login_url(state, &row.login);
    Slip {
        name: row.display_name(),
        class_name: row.class_name.clone().unwrap_or_default(),
        parent_of: row.children.clone(),
        login: row.login.clone(),
        code,
        qr_svg: qr_svg(&url),
        url,
    }
}

fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s[..4].parse::<u16>().is_ok()
        && s[5..7].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        && s[8..].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
}

async fn create_account(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<NewAccountForm>,
) -> Result<Response, AppError> {
    let tr = page.tr;
    let role = Role::parse(&form.role);
    let who = user.principal();
    // A role the form never offered to this person (a forged request): refused outright.
    if role.is_some_and(|r| !policy::may_grant(&who, r)) {
        return Err(AppError::Forbidden);
    }
    let error = if form.surname.trim().is_empty() || form.first_names.trim().is_empty() {
        Some(tr.t("admin.new.error.names"))
    } else if role.is_none() {
        Some(tr.t("admin.new.error.role"))
    } else if !form.birth_date.trim().is_empty() && !valid_date(form.birth_date.trim()) {
        Some(tr.t("admin.new.error.date"))
    } else {
        None
    };
    let role = match (error, role) {
        (None, Some(role)) => role,
        (error, _) => {
            let mut r = render(&NewAccountPage {
                page,
                roles: policy::grantable_roles(&who),
                error: error.unwrap_or_default().to_string(),
                form,
            })?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(r);
        }
    };
    let person = NewPerson {
        surname: form.surname.trim().to_uppercase(),
        first_names: form.first_names.trim().to_string(),
        birth_date: Some(form.birth_date.trim().to_string()).filter(|s| !s.is_empty()),
        matricule: Some(form.matricule.trim().to_string()).filter(|s| !s.is_empty()),
        roles: vec![role],
        ..Default::default()
    };
    let secret = state.secret.clone();
    let days = state.config.security.activation_days;
    let actor = user.account_id;
    let (row, code) = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            if let Some(m) = &person.matricule
                && crate::people::matricule_taken(tx, &scope, m)?
            {
                return Err(AppError::Conflict(
                    Msg::new("person.msg.matricule_taken").arg("matricule", m),
                ));
            }
            let issued = store::create_account_with_code(
                tx,
                &secret,
                &person,
                days,
                Some(&actor),
                Some(&ip.to_string()),
            )?;
            let (account, code) = (issued.account, issued.code);
            let mut row = store::get_account(tx, &account)?.ok_or(AppError::NotFound)?;
            with_classes(tx, std::slice::from_mut(&mut row))?;
            Ok::<_, AppError>((row, code))
        })
        .await?;
    let slip = slip(&state, &row, code);
    render(&CodePage {
        page,
        slips: vec![slip],
        back: format!("/admin/comptes/{}", row.id_hex()),
    })
}

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage {
    page: Page,
    a: AccountRow,
    /// The asker may issue a code for this account, disable or enable it.
    manage: bool,
    notice: String,
    /// The person's file, for those who may correct it (the secrétariat, not the technician).
    file: Option<String>,
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    #[serde(default)]
    ok: String,
}

async fn load_account(state: &AppState, id: &str) -> Result<AccountRow, AppError> {
    let account = id_from_hex(id).ok_or(AppError::NotFound)?;
    state
        .db
        .read(move |c| {
            let mut row = store::get_account(c, &account)?.ok_or(AppError::NotFound)?;
            with_classes(c, std::slice::from_mut(&mut row))?;
            Ok(row)
        })
        .await
}

/// Put each person's class (or their children's classes) beside their account.
fn with_classes(c: &rusqlite::Connection, rows: &mut [AccountRow]) -> Result<(), AppError> {
    let ids: Vec<Id> = rows.iter().map(|r| r.person_id).collect();
    let labels = crate::people::class_labels(c, &ids)?;
    let parents: Vec<Id> = rows
        .iter()
        .filter(|r| r.roles.contains(&Role::Parent))
        .map(|r| r.person_id)
        .collect();
    let children = crate::people::children_names(c, &parents)?;
    for r in rows {
        r.class_name = labels.get(&r.person_id).cloned();
        r.children = children.get(&r.person_id).cloned().unwrap_or_default();
    }
    Ok(())
}

async fn account_page(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let a = load_account(&state, &id).await?;
    let who = user.principal();
    let file = policy::allows(&who, policy::Capability::EditPeople)
        .then(|| format!("/personnes/{}", crate::id::hex(&a.person_id)));
    let manage = policy::may_manage_account(&who, &a.roles);
    let notice = match q.ok.as_str() {
        "disabled" => page.tr.t("admin.account.disabled_ok"),
        "enabled" => page.tr.t("admin.account.enabled_ok"),
        _ => "",
    }
    .to_string();
    render(&AccountPage {
        page,
        a,
        manage,
        notice,
        file,
    })
}

#[derive(Deserialize)]
struct Empty {}

async fn set_disabled(
    state: AppState,
    user: crate::auth::CurrentUser,
    id: String,
    ip: String,
    disabled: bool,
) -> Result<Response, AppError> {
    let a = load_account(&state, &id).await?;
    if !policy::may_manage_account(&user.principal(), &a.roles) {
        return Err(AppError::Forbidden);
    }
    let actor = user.account_id;
    if a.account_id == actor && disabled {
        return Err(AppError::bad("admin.msg.disable_self"));
    }
    let account = a.account_id;
    state
        .db
        .write(move |tx| {
            if store::set_disabled(tx, &account, disabled)? {
                store::audit_account(
                    tx,
                    Some(&actor),
                    if disabled {
                        "account.disable"
                    } else {
                        "account.enable"
                    },
                    Some(&account),
                    None,
                    Some(&ip),
                )?;
            }
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/comptes/{id}?ok={}",
        if disabled { "disabled" } else { "enabled" }
    ))
    .into_response())
}

async fn disable_account(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    set_disabled(state, user, id, ip.to_string(), true).await
}

async fn enable_account(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    set_disabled(state, user, id, ip.to_string(), false).await
}

async fn reset_code(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let a = load_account(&state, &id).await?;
    let who = user.principal();
    if !policy::may_manage_account(&who, &a.roles) {
        return Err(AppError::Forbidden);
    }
    let account = a.account_id;
    let actor = user.account_id;
    let secret = state.secret.clone();
    let days = state.config.security.activation_days;
    let code = state
        .db
        .write(move |tx| {
            // Decided again on the writer: the roles cannot have changed in between.
            let roles = store::roles_of_account(tx, &account)?;
            if !policy::may_manage_account(&who, &roles) {
                return Err(AppError::Forbidden);
            }
            Ok(store::reset_code(
                tx,
                &secret,
                &account,
                days,
                Some(&actor),
                Some(&ip.to_string()),
            )?)
        })
        .await?;
    let slip = slip(&state, &a, code);
    render(&CodePage {
        page,
        slips: vec![slip],
        back: format!("/admin/comptes/{id}"),
    })
}

#[derive(Deserialize)]
struct SheetsForm {
    #[serde(default)]
    classe: String,
    #[serde(default)]
    role: String,
    /// "pending": only accounts never activated; "all": everyone in the selection.
    #[serde(default)]
    which: String,
}

/// Print one A4 sheet of activation slips for a class (or a role): new codes are issued for the
/// selected accounts, in one transaction, and shown once.
async fn print_sheets(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAccounts>,
    page: Page,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<SheetsForm>,
) -> Result<Response, AppError> {
    let class_id = id_from_hex(&form.classe);
    let role = Role::parse(&form.role);
    if class_id.is_none() && role.is_none() {
        return Err(AppError::bad("admin.msg.slips_choose"));
    }
    let who = user.principal();
    if role.is_some_and(|r| !policy::may_grant(&who, r)) {
        return Err(AppError::Forbidden);
    }
    let only_pending = form.which != "all";
    let secret = state.secret.clone();
    let days = state.config.security.activation_days;
    let actor = user.account_id;
    let issued = state
        .db
        .write(move |tx| {
            let people = match class_id {
                Some(class) => Some(crate::people::class_family(tx, &class)?),
                None => None,
            };
            let (mut rows, _) = store::list_accounts(
                tx,
                &AccountFilter {
                    people,
                    role,
                    limit: 2000,
                    ..Default::default()
                },
            )?;
            with_classes(tx, &mut rows)?;
            let mut out = Vec::new();
            // A class's sheet lists its pupils and their parents: an account the asker may
            // not open (a parent who is also of the direction) is left out of it.
            for row in rows.into_iter().filter(|r| {
                !r.disabled
                    && (!only_pending || !r.activated)
                    && policy::may_manage_account(&who, &r.roles)
            }) {
                let code = store::reset_code(
                    tx,
                    &secret,
                    &row.account_id,
                    days,
                    Some(&actor),
                    Some(&ip.to_string()),
                )?;
                out.push((row, code));
            }
            Ok::<_, AppError>(out)
        })
        .await?;
    if issued.is_empty() {
        return Err(AppError::bad("admin.msg.slips_none"));
    }
    let slips = issued
        .into_iter()
        .map(|(row, code)| slip(&state, &row, code))
        .collect();
    render(&CodePage {
        page,
        slips,
        back: "/admin/comptes".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates() {
        assert_eq!(human_bytes(512), "512 o");
        assert_eq!(human_bytes(1536), "1,5 Kio");
        assert!(valid_date("2008-02-29"));
        assert!(!valid_date("2008-13-01"));
        assert!(!valid_date("01/02/2008"));
        assert!(qr_svg("https://kekeli.local:8443/connexion?login=a").starts_with("<?xml"));
    }
}
