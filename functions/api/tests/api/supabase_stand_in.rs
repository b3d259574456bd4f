//! A small stand-in for Supabase Auth (GoTrue) and its access tokens.
//!
//! It keeps its own users and answers `GET /auth/v1/user` the way Supabase does: the gateway
//! wants the project's `apikey`, the bearer token must be a valid HS256 token of the project
//! (audience `authenticated`), and the answer is the user's current record — `email`,
//! `email_confirmed_at` (null until the address is confirmed), `app_metadata`,
//! `user_metadata`, `is_anonymous` — or 403 `user_not_found` for a user that no longer exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

pub const SUPABASE_SECRET: &str = "supabase-secret-supabase-secret-supabase";
pub const ANON_KEY: &str = "stand-in-anon-key";

/// A Supabase user as the stand-in stores it.
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub email: String,
    pub confirmed: bool,
    pub provider: &'static str,
}

#[derive(Clone)]
struct Project {
    users: Arc<Mutex<HashMap<String, StoredUser>>>,
}

pub struct StandIn {
    pub url: String,
    project: Project,
    task: tokio::task::JoinHandle<()>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An access token as Supabase signs it, with whatever `app_metadata` and `user_metadata` the
/// test says (a real user can put anything in `user_metadata`; `app_metadata` only the server).
pub fn access_token(sub: &str, email: &str, provider: &str, user_metadata: Value) -> String {
    let claims = json!({
        "sub": sub, "email": email, "aud": "authenticated", "role": "authenticated",
        "iat": now(), "exp": now() + 600, "is_anonymous": false,
        "app_metadata": {"provider": provider, "providers": [provider]},
        "user_metadata": user_metadata,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SUPABASE_SECRET.as_bytes()))
        .unwrap()
}

async fn user(State(project): State<Project>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if headers.get("apikey").and_then(|v| v.to_str().ok()) != Some(ANON_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "No API key found in request"})));
    }
    let Some(token) =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": "no_authorization"})));
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    let Ok(data) =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SUPABASE_SECRET.as_bytes()), &validation)
    else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": "bad_jwt"})));
    };
    let sub = data.claims["sub"].as_str().unwrap_or_default().to_owned();
    let Some(stored) = project.users.lock().unwrap().get(&sub).cloned() else {
        return (StatusCode::FORBIDDEN, Json(json!({"code": "user_not_found"})));
    };
    let confirmed_at = stored.confirmed.then_some("2024-05-01T10:00:00.000000Z");
    (
        StatusCode::OK,
        Json(json!({
            "id": sub, "aud": "authenticated", "role": "authenticated",
            "email": stored.email, "email_confirmed_at": confirmed_at, "confirmed_at": confirmed_at,
            "app_metadata": {"provider": stored.provider, "providers": [stored.provider]},
            "user_metadata": data.claims["user_metadata"], "is_anonymous": false,
        })),
    )
}

impl StandIn {
    pub async fn start() -> Self {
        let project = Project { users: Arc::new(Mutex::new(HashMap::new())) };
        let router = axum::Router::new().route("/auth/v1/user", get(user)).with_state(project.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, project, task }
    }

    /// Adds or replaces a user.
    pub fn put(&self, sub: &str, user: StoredUser) {
        self.project.users.lock().unwrap().insert(sub.to_owned(), user);
    }

    /// Deletes a user: their tokens still verify, but Supabase no longer knows them.
    pub fn delete(&self, sub: &str) {
        self.project.users.lock().unwrap().remove(sub);
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
