//! The HTTP admin API, Prometheus metrics and the dashboard of a running
//! gateway.
//!
//! Everything here reads the [`Handles`] of the gateway (snapshots taken at
//! request time: there is no second set of counters) or acts through them
//! (reload, disable and enable a plugin, test the connector). The server is
//! bound to loopback by default and, with a token, wants
//! `Authorization: Bearer <token>` on every route but the orchestrators'
//! probes (`/healthz`, `/readyz`) and the dashboard's static page, which a
//! browser loads without headers and which asks for the token itself.
//!
//! The one task of its own is the [`history`] sampler, which the server
//! starts with itself and stops when it stops.
//!
//! Routes: see [`api`] for the JSON API and the probes, [`rules`] for the
//! rules, [`history`] for the rates' history, [`metrics`] for `/metrics`,
//! `dashboard.html` for `/`. docs/admin.md documents them all.

mod api;
pub(crate) mod check;
mod history;
mod metrics;
mod process;
mod rules;

use crate::config::AdminConfig;
use crate::pipeline::Handles;
use crate::secret::Secret;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the admin server stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("the admin API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// What every request handler shares.
struct AppState {
    /// Taken away when the server shuts down, so the gateway can shut down
    /// its stages without waiting for slow admin connections to close.
    handles: RwLock<Option<Handles>>,
    /// The bearer token, compared in time that says nothing of it.
    token: Option<Secret>,
    /// The engine rules are tried on (`POST /api/v1/rules/{name}/test`),
    /// started on first use.
    trial: Mutex<Option<Arc<crate::rules::RuleTrial>>>,
    /// The last minutes of rates, filled by the sampler.
    history: Mutex<history::History>,
}

impl AppState {
    /// The gateway's handles, or 503 once shutdown began.
    fn handles(&self) -> Result<Handles, api::ApiError> {
        self.handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                api::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "weir is shutting down")
            })
    }
}

/// Serves the admin API on `listener` until `shutdown` completes, then
/// stops taking requests and lets the ones in progress finish; the history
/// sampler runs as long as this does.
/// With `config.token`, every request but `/healthz`, `/readyz` and the
/// dashboard page must carry `Authorization: Bearer <token>`.
pub(crate) async fn serve(
    listener: TcpListener,
    handles: Handles,
    config: AdminConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    let interval = Duration::from_millis(config.history_interval_ms);
    let state = Arc::new(AppState {
        handles: RwLock::new(Some(handles)),
        token: config.token.map(|t| Secret::new(t.as_bytes())),
        trial: Mutex::default(),
        history: Mutex::new(history::History::new(interval)),
    });
    let _sampler = history::Sampler::start(state.clone(), interval);
    let app = router(state.clone());
    let release = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            release
                .handles
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        })
        .await
        .map_err(AdminError::Serve)
}

fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(rules::routes())
        .merge(history::routes())
        .merge(metrics::routes())
        .route("/", axum::routing::get(dashboard))
        .fallback(api::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// The dashboard: one static page that polls the JSON API.
async fn dashboard() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
}

/// The largest request body taken (a rule file and its sample events are a
/// few KiB); a larger one is refused with 413 before it is read further.
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024;

/// Routes that need no token: probes an orchestrator calls without
/// credentials, and the dashboard page (static; its API calls carry the
/// token).
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/"];

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return next.run(request).await;
    };
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim());
    match presented {
        Some(presented) if expected.matches(presented.as_bytes()) => next.run(request).await,
        _ => {
            let mut response = api::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this admin API wants `Authorization: Bearer <token>` with the token of admin.token",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weir\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests;
