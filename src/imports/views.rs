//! The imports page: choose a kind, upload a file, read the preview (what each line would do,
//! every error with its line and column), then confirm. The uploaded file waits in the content
//! store between preview and confirmation, so the confirmation applies exactly what was shown.

use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Action, Kind, Options, Report};
use crate::auth::CurrentUser;
use crate::policy::{self, Capability};
use crate::school::calendar;
use crate::state::{AppState, Routes};
use crate::web::{AppError, ClientIp, CsrfForm, CsrfToken, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/imports", imports_page)
        .get("/imports/{kind}/modele", sample)
        .post_with_limit(
            "/imports/{kind}/apercu",
            preview,
            super::MAX_FILE + 64 * 1024,
        )
        .post("/imports/{kind}/appliquer", apply)
}

/// The kind in the address, if this user may import it (rights before anything else).
fn allowed(user: &CurrentUser, kind: &str) -> Result<Kind, AppError> {
    let kind = Kind::parse(kind).ok_or(AppError::NotFound)?;
    if policy::allows(&user.principal(), kind.capability()) {
        Ok(kind)
    } else {
        Err(AppError::Forbidden)
    }
}

struct KindView {
    slug: &'static str,
    title: &'static str,
    columns: Vec<(&'static str, bool)>,
}

#[derive(Template)]
#[template(path = "imports/index.html")]
struct ImportsPage {
    page: Page,
    kinds: Vec<KindView>,
}

async fn imports_page(user: CurrentUser, page: Page) -> Result<Response, AppError> {
    let principal = user.principal();
    let kinds: Vec<KindView> = Kind::ALL
        .into_iter()
        .filter(|k| policy::allows(&principal, k.capability()))
        .map(|k| KindView {
            slug: k.slug(),
            title: page.tr.t(k.title()),
            columns: k.columns(),
        })
        .collect();
    if kinds.is_empty() {
        return Err(AppError::Forbidden);
    }
    render(&ImportsPage { page, kinds })
}

/// The sample file of a kind, to fill in with a spreadsheet.
async fn sample(user: CurrentUser, Path(kind): Path<String>) -> Result<Response, AppError> {
    let kind = allowed(&user, &kind)?;
    let mut response = kind.sample().to_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"modele-{}.csv\"",
        kind.slug()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

struct LineView {
    line: usize,
    action: &'static str,
    class: &'static str,
    what: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "imports/report.html")]
struct ReportPage {
    page: Page,
    kind_slug: &'static str,
    kind_title: &'static str,
    file_name: String,
    file_hash: String,
    applied: bool,
    summary: String,
    errors: Vec<String>,
    ignored: String,
    changed: Vec<LineView>,
    unchanged: Vec<LineView>,
    departures: Vec<String>,
    departures_applied: bool,
    new_accounts: Vec<(String, String, usize)>,
    can_print: bool,
}

fn report_page(
    page: Page,
    user: &CurrentUser,
    report: Report,
    file_name: String,
    file_hash: String,
) -> ReportPage {
    let tr = page.tr;
    let view = |l: &super::LineReport| LineView {
        line: l.line,
        action: tr.t(l.action.label()),
        class: match l.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Unchanged => "unchanged",
        },
        what: l.what.clone(),
        detail: l.detail.clone(),
    };
    let (unchanged, changed): (Vec<_>, Vec<_>) = report
        .lines
        .iter()
        .partition(|l| l.action == Action::Unchanged);
    ReportPage {
        page,
        kind_slug: report.kind.slug(),
        kind_title: tr.t(report.kind.title()),
        file_name,
        file_hash,
        applied: report.applied,
        summary: tr.msg(&report.summary()),
        errors: report.errors.iter().map(|e| e.render(tr)).collect(),
        ignored: report.ignored_columns.join(", "),
        changed: changed.into_iter().map(view).collect(),
        unchanged: unchanged.into_iter().map(view).collect(),
        departures: report
            .departures
            .iter()
            .map(|d| format!("{} — {} ({})", d.matricule, d.name, d.class))
            .collect(),
        departures_applied: report.departures_applied,
        new_accounts: report.new_accounts,
        can_print: policy::allows(&user.principal(), Capability::ManageAccounts),
    }
}

fn options(state: &AppState, user: &CurrentUser, ip: String, file_name: String) -> Options {
    Options {
        dry_run: true,
        confirm_departures: false,
        today: calendar::iso(state.clock.now().date),
        country_code: state.config.phone_country_code.clone(),
        actor: Some(user.account_id),
        grantor: Some(user.principal()),
        origin: ip,
        file_name,
    }
}

/// Upload → dry run. The file is kept in the content store for the confirmation.
async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(kind): Path<String>,
    csrf: Option<axum::Extension<CsrfToken>>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let kind = allowed(&user, &kind)?;
    let upload = crate::web::upload::read(multipart, csrf, "fichier", &[]).await?;
    let Some((name, bytes)) = upload.file else {
        return Err(AppError::bad("imports.msg.choose_file"));
    };
    if bytes.len() > super::MAX_FILE {
        return Err(AppError::TooLarge);
    }
    let name = safe_name(&name);
    let store = crate::files::Store::new(state.config.data_dir.join("store"));
    let kept = bytes.clone();
    let hash = tokio::task::spawn_blocking(move || store.put(&kept))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let opts = options(&state, &user, ip.to_string(), name.clone());
    let report = run(&state, kind, bytes, opts).await?;
    render(&report_page(page, &user, report, name, hash))
}

async fn run(
    state: &AppState,
    kind: Kind,
    bytes: Vec<u8>,
    opts: Options,
) -> Result<Report, AppError> {
    super::import(&state.db, kind, bytes, opts)
        .await
        .map_err(|e| match e {
            super::ImportError::Read(e) => AppError::BadRequest(e.msg()),
            super::ImportError::Db(e) => e.into(),
        })
}

fn safe_name(name: &str) -> String {
    crate::files::safe_name(name, "fichier")
}

#[derive(Deserialize)]
struct ApplyForm {
    #[serde(default)]
    fichier: String,
    #[serde(default)]
    nom: String,
    #[serde(default)]
    departs: String,
}

/// Confirmation: apply the previewed file for real (all or nothing).
async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(kind): Path<String>,
    CsrfForm(form): CsrfForm<ApplyForm>,
) -> Result<Response, AppError> {
    let kind = allowed(&user, &kind)?;
    let valid = form.fichier.len() == 64 && form.fichier.bytes().all(|b| b.is_ascii_hexdigit());
    let gone = || AppError::bad("imports.msg.preview_gone");
    if !valid {
        return Err(gone());
    }
    let store = crate::files::Store::new(state.config.data_dir.join("store"));
    let hash = form.fichier.clone();
    let bytes = tokio::task::spawn_blocking(move || store.get(&hash))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|_| gone())?;
    let name = safe_name(&form.nom);
    let mut opts = options(&state, &user, ip.to_string(), name.clone());
    opts.dry_run = false;
    opts.confirm_departures = form.departs == "on";
    let report = run(&state, kind, bytes, opts).await?;
    render(&report_page(page, &user, report, name, form.fichier))
}
