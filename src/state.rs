//! The one shared state of the server and the way a feature declares its routes. A leaf for
//! the features: they import it, it imports no feature's handlers (the router's assembly is
//! `app`, which imports them all). Holds no logic.

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
    /// The school's directory for the messages (whom each person may write to).
    pub messages_directory: crate::messages::DirectoryCache,
    /// The whole-school bulletin job, if one ran since start (see `bulletins`).
    pub bulletin_job: crate::bulletins::SchoolJob,
    /// The backup the server is running, if any (see `backup::watch`).
    pub backups: crate::backup::watch::Jobs,
    /// The sync this server runs (the technician's button), if any (see `sync::web`).
    pub sync: crate::sync::web::Jobs,
    /// Forms sent after their session ended, waiting for their owner's next login.
    pub unsent: crate::web::unsent::Unsent,
    /// Signed-in requests per service, day and role, until the next write (see `usage`).
    pub usage: crate::usage::Counter,
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
    pub(crate) router: Router<AppState>,
    pub(crate) specs: Vec<RouteSpec>,
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
