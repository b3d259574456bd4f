//! Accounts: register, sign in, who am I, Supabase sign-in, and every way a token can be bad.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};

const KEY: &str = "k1:0123456789abcdef0123456789abcdef-test-key";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-key";
const SUPABASE_SECRET: &str = "supabase-secret-supabase-secret-supabase";

async fn app() -> TestApp {
    TestApp::spawn_with(&[
        ("JWT_KEYS", KEY),
        ("JWT_ISSUER", "stolentee-test"),
        ("JWT_AUDIENCE", "storefront"),
        ("SUPABASE_JWT_SECRET", SUPABASE_SECRET),
    ])
    .await
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(kid: Option<&str>, secret: &str, claims: Value) -> String {
    let header = Header { kid: kid.map(str::to_owned), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims(sub: &str, exp: u64, aud: &str, iss: &str) -> Value {
    json!({"sub": sub, "role": "admin", "email": "x@example.com", "iss": iss, "aud": aud, "iat": now(), "exp": exp})
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn register_then_sign_in_then_me() {
    let app = app().await;
    let (id, token) = app.register("Ann@Example.com").await;
    let me = app.get_as("/api/auth/me", &token).await;
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["user"]["id"], id.as_str());
    assert_eq!(body["user"]["email"], "ann@example.com", "stored lower-case");
    assert_eq!(body["user"]["role"], "customer");

    let login = app
        .post_json("/api/auth/login", &json!({"email": "ANN@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["token"]["expires_in"], 900);
    let hash: String = app.scalar("SELECT password_hash FROM users").await;
    assert!(hash.starts_with("$argon2id$"), "argon2id PHC string");
    app.stop().await;
}

#[tokio::test]
async fn registration_refuses_weak_passwords_bad_emails_and_duplicates() {
    let app = app().await;
    let cases = [
        (json!({"email": "a@example.com", "password": "short"}), "weak_password"),
        (json!({"email": "not-an-email", "password": "correct horse battery"}), "invalid_email"),
    ];
    for (body, code) in cases {
        let r = app.post_json("/api/auth/register", &body).await;
        assert_eq!(r.status(), 422);
        assert_eq!(error_parts(r).await.0, code);
    }
    let evil = "Robert'); DROP TABLE users;-- \"Zoë\" 🐍 漢字";
    let r = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "o'brien@example.com", "password": "correct horse battery", "name": evil}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["user"]["name"].as_str(), body["user"]["email"].as_str()),
        (Some(evil), Some("o'brien@example.com"))
    );
    app.register("dup@example.com").await;
    let r = app
        .post_json("/api/auth/register", &json!({"email": "DUP@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(r.status(), 409);
    let r = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "r@example.com", "password": "correct horse battery", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status(), 400, "a client cannot choose its role");
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = app().await;
    let (id, good) = app.register("t@example.com").await;
    assert_eq!(app.get_as("/api/auth/me", &good).await.status(), 200);

    let in_an_hour = now() + 3600;
    let forged_signature = token(
        Some("k1"),
        "another-secret-another-secret-another-secret",
        claims(&id, in_an_hour, "storefront", "stolentee-test"),
    );
    let expired = token(Some("k1"), SECRET, claims(&id, now() - 120, "storefront", "stolentee-test"));
    let wrong_kid = token(Some("k2"), SECRET, claims(&id, in_an_hour, "storefront", "stolentee-test"));
    let no_kid = token(None, SECRET, claims(&id, in_an_hour, "storefront", "stolentee-test"));
    let wrong_audience = token(Some("k1"), SECRET, claims(&id, in_an_hour, "someone-else", "stolentee-test"));
    let wrong_issuer = token(Some("k1"), SECRET, claims(&id, in_an_hour, "storefront", "evil"));
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        b64(claims(&id, in_an_hour, "storefront", "stolentee-test").to_string().as_bytes())
    );
    // A valid signature over a body with its role edited afterwards.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims(&id, in_an_hour, "storefront", "stolentee-test").to_string().as_bytes());
    let tampered = parts.join(".");

    for (what, bad) in [
        ("forged signature", forged_signature.as_str()),
        ("expired", &expired),
        ("unknown kid", &wrong_kid),
        ("no kid", &no_kid),
        ("wrong audience", &wrong_audience),
        ("wrong issuer", &wrong_issuer),
        ("alg none", &unsigned),
        ("tampered claims", &tampered),
        ("garbage", "abc.def.ghi"),
    ] {
        let r = app.get_as("/api/auth/me", bad).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(error_parts(r).await.0, "unauthorized", "{what}");
    }
    let r = app.http.get(app.url("/api/auth/me")).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.get("/api/auth/me").await.status(), 401, "no token at all");
    app.stop().await;
}

fn supabase_token(secret: &str, sub: &str, email: &str, aud: &str, exp: u64, provider: &str) -> String {
    let claims = json!({"sub": sub, "email": email, "aud": aud, "exp": exp, "role": "authenticated",
                        "app_metadata": {"provider": provider}, "user_metadata": {"full_name": "Zoë O'Brien"}});
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn supabase_sign_in_needs_a_verified_token() {
    let app = app().await;
    let sub = uuid::Uuid::new_v4().to_string();
    let exp = now() + 600;
    let good = supabase_token(SUPABASE_SECRET, &sub, "google@example.com", "authenticated", exp, "google");
    let r = app.post_json("/api/auth/supabase", &json!({"access_token": good})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], "google@example.com");
    assert_eq!(body["user"]["name"], "Zoë O'Brien");
    let ours = body["token"]["token"].as_str().unwrap();
    assert_eq!(app.get_as("/api/auth/me", ours).await.status(), 200);
    // Signing in again finds the same account.
    let again: Value = app.post_json("/api/auth/supabase", &json!({"access_token": good})).await.json().await.unwrap();
    assert_eq!(again["user"]["id"], body["user"]["id"]);

    // The old system's fault: a token for whatever e-mail the request named.
    for (what, bad) in [
        (
            "forged",
            supabase_token(
                "not-the-supabase-secret-not-the-secret",
                &sub,
                "ceo@example.com",
                "authenticated",
                exp,
                "google",
            ),
        ),
        (
            "expired",
            supabase_token(SUPABASE_SECRET, &sub, "google@example.com", "authenticated", now() - 300, "google"),
        ),
        ("wrong audience", supabase_token(SUPABASE_SECRET, &sub, "google@example.com", "anon", exp, "google")),
    ] {
        let r = app.post_json("/api/auth/supabase", &json!({"access_token": bad})).await;
        assert_eq!(r.status(), 401, "{what}");
    }
    let users: i64 = app.scalar("SELECT count(*) FROM users").await;
    assert_eq!(users, 1);
    app.stop().await;
}
