//! Building the application once, the same way for Lambda, the local server and tests.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use db::accounts::Accounts;
use db::admin::CatalogAdmin;
use db::designs::Designs;
use db::jobs::Media;
use db::orders::Orders;
use db::{Catalog, Database};
use objects::{LocalStore, ObjectStore};
use queue::{JobQueue, MemoryQueue, MemoryReceiver, QueueConfig, SqsQueue};
use runtime::Metrics;
use runtime::metrics::Service;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::AuthConfig;
use crate::cache::CatalogCache;
use crate::config::ApiConfig;
use crate::middleware;
use crate::origin::{self, OriginAuth};
use crate::purge::EdgePurge;
use crate::routes::{local_objects, table};

/// What handlers share. Cheap to clone (pools and caches are reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub cache: CatalogCache,
    pub media: Media,
    pub objects: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn JobQueue>,
    pub instance_id: Arc<str>,
    pub accounts: Accounts,
    pub orders: Orders,
    pub designs: Designs,
    pub catalog_admin: CatalogAdmin,
    /// Stripe, or the local stand-in (`make dev`, tests).
    pub payments: payments::Payments,
    /// Order token lifetime and the limits on calls to Stripe (`checkout_config`).
    pub checkout: Arc<crate::checkout_config::CheckoutConfig>,
    /// Call limits and reused tax answers in front of Stripe.
    pub stripe_guard: crate::services::stripe_guard::StripeGuard,
    pub auth: Arc<AuthConfig>,
    /// The edge's secrets and client-IP header (see `origin`).
    pub origin: Arc<OriginAuth>,
    /// Where admin catalog writes purge the edge, when configured.
    pub edge_purge: Option<EdgePurge>,
    /// CloudWatch EMF lines (`METRICS`): the pool gauges, once a minute.
    pub metrics: Metrics,
    /// Password checks under the sign-in limits (login, Supabase link, registration).
    pub sign_in: crate::services::sign_in::SignIn,
    /// Cut-out job bounds (`CUTOUT_JOB_DEADLINE_SECS`).
    pub media_config: crate::services::media::MediaConfig,
}

/// The whole HTTP surface. `local_objects` mounts the local object store's signed-URL
/// routes (dev and tests only; in production the browser talks to S3/R2 directly).
pub fn router(state: AppState, config: &ApiConfig, local_objects: Option<Arc<LocalStore>>) -> Router {
    // The dev-only payment confirmation exists only in development with the local provider:
    // with Stripe configured there is nothing to confirm locally, and production never has it
    // (whatever the host; production refuses the local provider at start-up as well).
    let development = !config.mode.is_production() && state.payments.local().is_some();
    let mut routes = Router::new();
    for route in table::table(development) {
        routes = routes.route(route.path, route.handler);
    }
    let pools = (state.metrics.clone(), state.db.clone());
    let mut routes = routes.with_state(state);
    if let Some(store) = local_objects {
        routes = routes.merge(local_objects::routes(store));
    }
    with_layers(routes, config).layer(axum::middleware::from_fn_with_state(pools, report_pools))
}

/// After a request, this instance's pool gauges, if it has not reported them yet this
/// minute (see `runtime::metrics`). Outermost, so every request counts, whatever its route
/// or outcome.
async fn report_pools(
    State((metrics, db)): State<(Metrics, Database)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    metrics.pool_gauges(|| db.gauges());
    response
}

/// The cross-cutting behaviour every route gets: JSON 404/405, body limit, panic capture,
/// and [`middleware::around_request`] outermost, so every response — errors included —
/// has a request id, a span and an access-log line.
pub fn with_layers(routes: Router, config: &ApiConfig) -> Router {
    routes
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CatchPanicLayer::custom(middleware::panic_to_response))
        .layer(axum::middleware::from_fn_with_state(Arc::new(config.origin.clone()), origin::guard))
        .layer(axum::middleware::from_fn_with_state(config.request_timeout, middleware::around_request))
}

/// A built application: state and router, ready to be served by either host.
pub struct App {
    pub state: AppState,
    pub router: Router,
    /// The local object store, when `OBJECT_STORE=local`.
    pub local_objects: Option<Arc<LocalStore>>,
    /// The consumer end of the in-process queue (`QUEUE=memory`): whoever runs the app must
    /// run a worker on it (`stolentee-dev` does), or jobs wait forever.
    pub memory_queue: Option<MemoryReceiver>,
}

impl App {
    /// Opens the pools (lazily), checks the schema and builds the router; metrics go to
    /// stdout as `METRICS` says.
    ///
    /// The API refuses to start on a database whose migrations are behind this build or
    /// were edited after being applied, and starts on one a newer build migrated (deploys
    /// migrate first, then shift traffic). A database that cannot be reached at all does
    /// not stop start-up: requests get 503s and readiness says why, until it comes back.
    pub async fn build(config: &ApiConfig) -> anyhow::Result<Self> {
        Self::build_with_metrics(config, Metrics::new(&config.metrics, Service::Api)).await
    }

    /// [`App::build`] with the metrics given (tests capture them).
    pub async fn build_with_metrics(config: &ApiConfig, metrics: Metrics) -> anyhow::Result<Self> {
        let instance_id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        tracing::info!(
            instance = %instance_id,
            version = env!("CARGO_PKG_VERSION"),
            in_lambda = config.in_lambda,
            mode = %config.mode,
            origin = ?config.origin,
            bind = %config.bind,
            db = ?config.db,
            catalog_ttl_secs = config.catalog_ttl.as_secs(),
            catalog_version_check_ms = config.catalog_version_check.as_millis() as u64,
            request_timeout_ms = config.request_timeout.as_millis() as u64,
            max_body_bytes = config.max_body_bytes,
            metrics = %config.metrics,
            "starting api"
        );
        tracing::info!(plan = %config.db.plan, mode = ?config.db.pool_mode, "database connection budget");

        let db = Database::new(&config.db).context("building the database pools")?;
        db::migrate::check_at_start(&db).await?;
        metrics.pool_gauges(|| db.gauges());
        let opened = config.objects.open().context("opening the object store")?;
        let local_objects = opened.local().cloned();
        let (queue, memory_queue): (Arc<dyn JobQueue>, _) = match &config.queue {
            QueueConfig::Sqs(sqs) => (Arc::new(SqsQueue::new(sqs)), None),
            QueueConfig::Memory => {
                let (queue, receiver) = MemoryQueue::new();
                (Arc::new(queue), Some(receiver))
            }
        };
        let cache = CatalogCache::new(Catalog::new(db.clone()), config.catalog_ttl, config.catalog_version_check);
        let payments = config.payments.build().context("building the payments provider")?;
        let checkout = Arc::new(config.checkout.clone());
        let stripe_guard =
            crate::services::stripe_guard::StripeGuard::for_provider(db.clone(), checkout.clone(), &payments);
        tracing::info!(provider = payments.name(), guard = stripe_guard.is_enabled(), checkout = ?checkout, "payments");
        let edge_purge =
            config.edge_purge.as_ref().map(EdgePurge::new).transpose().context("building the edge purge client")?;
        let state = AppState {
            media: Media::new(db.clone()),
            accounts: Accounts::new(db.clone()),
            sign_in: crate::services::sign_in::SignIn::new(db.clone()),
            orders: Orders::new(db.clone()),
            designs: Designs::new(db.clone()),
            catalog_admin: CatalogAdmin::new(db.clone()),
            payments,
            checkout,
            stripe_guard,
            auth: Arc::new(config.auth.clone()),
            origin: Arc::new(config.origin.clone()),
            edge_purge,
            db,
            cache,
            objects: opened.store(),
            queue,
            instance_id,
            metrics,
            media_config: config.media,
        };
        let router = router(state.clone(), config, local_objects.clone());
        Ok(Self { state, router, local_objects, memory_queue })
    }
}
