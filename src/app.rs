//! Application state and router assembly: every feature's routes, in one place, with the layer
//! order written down. Features own their handlers; nothing here decides access.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{get, post};

use crate::auth::password::Hasher;
use crate::auth::ratelimit::LoginLimits;
use crate::auth::session::Timeouts;
use crate::auth::store::Secret;
use crate::config::Config;
use crate::db::Db;
use crate::web::assets::Assets;
use crate::web::metrics::Metrics;

pub struct Inner {
    pub config: Config,
    /// The school's clock: what "today" is for every page (see `school::calendar::Clock`).
    pub clock: crate::school::calendar::Clock,
    pub db: Db,
    pub hasher: Hasher,
    pub secret: Secret,
    pub login_limits: LoginLimits,
    pub timeouts: Timeouts,
    pub metrics: Metrics,
    pub assets: Assets,
    pub started: Instant,
    /// The local CA certificate (PEM) offered at `/ca.crt`.
    pub ca_pem: String,
    /// The port the main listener actually bound (may differ from the configuration in tests).
    pub main_port: u16,
    /// Addresses announced at start (for the CA page and the admin page).
    pub urls: Vec<String>,
    /// Sessions already looked up (see `auth::session::SessionCache`).
    pub sessions: crate::auth::session::SessionCache,
    /// Computed timetable weeks (see `timetable::cache`).
    pub weeks: crate::timetable::cache::WeekCache,
    /// Pupils' marks pages as computed for each viewer (see `grades::cache`).
    pub marks_pages: crate::grades::cache::MarksPages,
    /// The whole-school bulletin job, if one ran since start (see `bulletins`).
    pub bulletin_job: crate::bulletins::SchoolJob,
    /// Forms sent after their session ended, waiting for their owner's next login.
    pub unsent: crate::web::unsent::Unsent,
    /// Messages waiting for the page a redirect leads to (see `web::flash`).
    pub flash: crate::web::flash::Flashes,
    /// Open connections, for their bounds and `/metrics` (see `net::server`).
    pub connections: std::sync::Arc<crate::net::server::Connections>,
}

/// The one shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A route as declared, for the authorization matrix test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
}

/// A feature's routes: the axum router plus the list of what it declares.
pub struct Routes {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

impl Routes {
    pub fn new() -> Routes {
        Routes {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    pub fn get<H, T>(mut self, path: &'static str, h: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, get(h));
        self.specs.push(RouteSpec {
            method: "GET",
            path,
        });
        self
    }

    pub fn post<H, T>(mut self, path: &'static str, h: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, post(h));
        self.specs.push(RouteSpec {
            method: "POST",
            path,
        });
        self
    }

    /// A POST route accepting bodies up to `limit` bytes (uploads); others keep the global limit.
    pub fn post_with_limit<H, T>(mut self, path: &'static str, h: H, limit: usize) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(
            path,
            post(h).layer(axum::extract::DefaultBodyLimit::max(limit)),
        );
        self.specs.push(RouteSpec {
            method: "POST",
            path,
        });
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self
    }
}

/// Every feature's routes.
fn all_routes() -> Routes {
    Routes::new()
        .merge(crate::system::routes())
        .merge(crate::auth::routes())
        .merge(crate::portal::routes())
        .merge(crate::people::routes())
        .merge(crate::admin::routes())
        .merge(crate::school::routes())
        .merge(crate::timetable::routes())
        .merge(crate::attendance::routes())
        .merge(crate::imports::routes())
        .merge(crate::journal::routes())
        .merge(crate::discipline::routes())
        .merge(crate::agenda::routes())
        .merge(crate::booking::routes())
        .merge(crate::grades::routes())
        .merge(crate::bulletins::routes())
        .merge(crate::competences::routes())
}

/// Every declared route (method, path), for tests.
pub fn route_table() -> Vec<RouteSpec> {
    all_routes().specs
}

/// The HTTPS application.
///
/// Layer order, outermost first (a request passes them top to bottom):
/// 1. `security_headers` — every response, errors included, gets CSP, HSTS, nosniff…
/// 2. `dress_errors` — bare 4xx/5xx from the router or rejections become French pages;
/// 3. `csrf_cookie` — every browser gets a CSRF cookie; cross-origin POSTs are refused here;
/// 4. `keep_unsent` — a form refused because its session ended is kept for after the login;
///    body limit — larger bodies are refused (413) before any handler reads them;
/// 5. catch panic — a handler that panics fails its own request with a 500 page (dressed by
///    2), never the connection or the server;
/// 6. `metrics::track` (route layer) — timing and counts by matched route.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.http.max_body_kib * 1024;
    let routes = all_routes()
        .router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::metrics::track,
        ));
    layered(routes, max_body)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::unsent::keep_unsent,
        ))
        .layer(axum::middleware::from_fn(crate::web::csrf_cookie))
        .layer(axum::middleware::from_fn(crate::web::dress_errors))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .with_state(state)
}

/// Layers 4 (body limit) and 5 of [`router`] around `routes`.
fn layered<S: Clone + Send + Sync + 'static>(routes: Router<S>, max_body: usize) -> Router<S> {
    routes
        .fallback(crate::web::not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::web::panicked,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A handler that panics fails its request alone, with the French 500 page and the
    /// security headers; the same router goes on answering.
    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_page_and_the_router_carries_on() {
        async fn boom() -> &'static str {
            let v: Vec<u8> = Vec::new();
            if v.is_empty() {
                panic!("bogue dans une page");
            }
            "jamais"
        }
        let app = layered(
            Router::new()
                .route("/boom", get(boom))
                .route("/ok", get(|| async { "ok" })),
            1024,
        )
        .layer(axum::middleware::from_fn(crate::web::dress_errors))
        .layer(axum::middleware::from_fn(crate::web::security_headers));
        let req = |path: &str| {
            axum::http::Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let r = app.clone().oneshot(req("/boom")).await.expect("answer");
        assert_eq!(r.status(), 500);
        assert!(r.headers().contains_key("content-security-policy"));
        let body = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("<html"), "{text}");
        assert!(!text.contains("bogue"), "the panic stays in the log");
        let r = app.oneshot(req("/ok")).await.expect("answer");
        assert_eq!(r.status(), 200);
    }
}
