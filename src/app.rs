//! Router assembly: every feature's routes, in one place, with the layer order written down.
//! Features own their handlers; nothing here decides access, and no feature imports this module
//! (they use `state::{AppState, Routes}`).

use axum::Router;

pub use crate::state::{AppState, Inner, RouteSpec, Routes};

/// Every feature's routes.
fn all_routes() -> Routes {
    Routes::new()
        .merge(crate::system::routes())
        .merge(crate::auth::routes())
        .merge(crate::portal::routes())
        .merge(crate::people::routes())
        .merge(crate::admin::routes())
        .merge(crate::backup::web::routes())
        .merge(crate::sync::web::routes())
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
        .merge(crate::messages::routes())
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
    use axum::routing::get;
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
