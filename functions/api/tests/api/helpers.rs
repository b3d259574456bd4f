use std::collections::HashMap;
use std::net::SocketAddr;

use api::{ApiConfig, App};
use db::testing::TestDb;

/// A running API on a random local port over its own seeded database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub http: reqwest::Client,
    pub app_state: api::AppState,
    /// The in-process queue's consumer end: tests drain it or run a worker on it.
    pub queue: Option<queue::MemoryReceiver>,
    server: tokio::task::JoinHandle<()>,
}

/// The edge's secret in tests: [`TestApp`]'s client sends it on every request, as the edge
/// does, so the client-IP header tests send is believed.
pub const EDGE_SECRET: &str = "test-edge-origin-secret-0123456789abcdef";

/// A test configuration: the given database, a local object store in a fresh temporary
/// directory whose signed URLs point at `public`, the in-process queue.
pub fn config(database_url: &str, extra: &[(&str, &str)]) -> ApiConfig {
    config_at(database_url, "http://127.0.0.1:9", extra)
}

pub fn config_at(database_url: &str, public: &str, extra: &[(&str, &str)]) -> ApiConfig {
    let objects = std::env::temp_dir().join(format!("stolentee-test-objects-{}", uuid::Uuid::new_v4().simple()));
    let mut map: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.entry("DATABASE_URL".into()).or_insert_with(|| database_url.into());
    map.insert("API_BIND".into(), "127.0.0.1:0".into());
    map.entry("LOCAL_OBJECTS_DIR".into()).or_insert_with(|| objects.display().to_string());
    map.entry("LOCAL_OBJECTS_PUBLIC_URL".into()).or_insert_with(|| public.to_owned());
    // Tests name the client IP in a header and authenticate as the edge, as it does in
    // production.
    map.entry("CLIENT_IP_HEADER".into()).or_insert_with(|| "x-client-ip".into());
    map.entry("EDGE_ORIGIN_SECRETS".into()).or_insert_with(|| EDGE_SECRET.into());
    ApiConfig::from_env(&config::Env::from_pairs(map)).expect("test configuration is valid")
}

/// An HTTP client that calls the API the way the edge does (with its secret).
pub fn edge_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-edge-auth", reqwest::header::HeaderValue::from_static(EDGE_SECRET));
    reqwest::Client::builder().default_headers(headers).build().expect("an HTTP client")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns with extra environment settings (e.g. a short cache TTL).
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_metered(TestDb::seeded().await, extra, None).await
    }

    /// Spawns with extra settings, writing its EMF metric lines (`METRICS=emf`) into `sink`.
    pub async fn spawn_with_metrics(
        extra: &[(&str, &str)],
        sink: std::sync::Arc<runtime::metrics::MemorySink>,
    ) -> Self {
        Self::spawn_metered(TestDb::seeded().await, extra, Some(sink)).await
    }

    /// Spawns on a database of the test's choosing: a second instance on another's database
    /// (`app.db.clone()`), or one whose replica is a frozen copy. `stop` drops `db`.
    pub async fn spawn_on(db: TestDb, extra: &[(&str, &str)]) -> Self {
        Self::spawn_metered(db, extra, None).await
    }

    async fn spawn_metered(
        db: TestDb,
        extra: &[(&str, &str)],
        sink: Option<std::sync::Arc<runtime::metrics::MemorySink>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = config_at(&db.url, &format!("http://{addr}"), extra);
        let built = match sink {
            None => App::build(&config).await,
            Some(sink) => {
                use runtime::metrics::{Metrics, MetricsConfig, Service, SystemClock};
                let emf = MetricsConfig::emf("test").expect("a valid stage");
                let metrics = Metrics::with_output(&emf, Service::Api, sink, std::sync::Arc::new(SystemClock));
                App::build_with_metrics(&config, metrics).await
            }
        };
        let mut app = built.expect("the app starts");
        let app_state = app.state.clone();
        let queue = app.memory_queue.take();
        let server = tokio::spawn(async move {
            let service = app.router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service).await.unwrap();
        });
        Self { addr, db, http: edge_client(), app_state, queue, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn sql(&self, statement: &str) {
        self.db.client().await.batch_execute(statement).await.expect("test SQL runs");
    }

    /// The id of a seeded variant, by SKU.
    pub async fn variant_id(&self, sku: &str) -> String {
        let row =
            self.db.client().await.query_one("SELECT id::text FROM variants WHERE sku = $1", &[&sku]).await.unwrap();
        row.get(0)
    }

    /// Registers a customer and returns (user id, bearer token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let response = self
            .post_json("/api/auth/register", &serde_json::json!({"email": email, "password": "correct horse battery"}))
            .await;
        assert_eq!(response.status(), 201, "registering {email}");
        let body: serde_json::Value = response.json().await.unwrap();
        (body["user"]["id"].as_str().unwrap().to_owned(), body["token"]["token"].as_str().unwrap().to_owned())
    }

    /// Registers an account with `role` (set in SQL: no route grants roles) and signs it in.
    pub async fn staff(&self, email: &str, role: &str) -> String {
        let (id, _) = self.register(email).await;
        self.sql(&format!("UPDATE users SET role = '{role}' WHERE id = '{id}'")).await;
        let response = self
            .post_json("/api/auth/login", &serde_json::json!({"email": email, "password": "correct horse battery"}))
            .await;
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()["token"]["token"].as_str().unwrap().to_owned()
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    pub async fn send_json_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http.request(method, self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    /// One value from the test database.
    pub async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, query: &str) -> T {
        self.db.client().await.query_one(query, &[]).await.unwrap_or_else(|e| panic!("{query}: {e}")).get(0)
    }

    pub async fn stop(self) {
        self.server.abort();
        self.db.drop_db().await;
    }
}

/// Reads an error response and checks the common shape; returns (code, field).
pub async fn error_parts(response: reqwest::Response) -> (String, Option<String>) {
    let header_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        response.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "errors are JSON"
    );
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(error["request_id"].as_str(), header_id.as_deref(), "body and header carry the same request id");
    (error["code"].as_str().expect("code").to_owned(), error["field"].as_str().map(str::to_owned))
}

/// A checkout body: `quantity` of `variant` with a two-colour front print, shipped to Austin.
pub fn cart(variant: &str, quantity: serde_json::Value, email: &str) -> serde_json::Value {
    serde_json::json!({
        "email": email,
        "name": "Ann Buyer",
        "items": [{
            "variant_id": variant,
            "quantity": quantity,
            "decoration": {"method": "screen_print", "placements": [{"location": "front", "colors": 2}]}
        }],
        "shipping_address": {"name": "Ann Buyer", "line1": "1 Congress Ave", "city": "Austin", "state": "TX",
                             "postal_code": "78701", "country": "US"}
    })
}

impl TestApp {
    /// Places an order; returns the response body.
    pub async fn place_order(
        &self,
        body: &serde_json::Value,
        key: Option<&str>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.http.post(self.url("/api/orders")).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }
}

/// `request` as sent by a client at `ip`: the address reaches the API the way `ClientIp`
/// reads it (the `CLIENT_IP_HEADER` the test configuration names). Sign-in tests name their
/// clients through this one function.
pub fn from_client(request: reqwest::RequestBuilder, ip: &str) -> reqwest::RequestBuilder {
    request.header("x-client-ip", ip)
}
