//! With `SUPABASE_URL` set, Supabase itself says whether an address is confirmed (and
//! whether the session still stands), against the stand-in in `supabase_stand_in`.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};
use crate::supabase_stand_in::{ANON_KEY, SUPABASE_SECRET, StandIn, StoredUser, access_token};

async fn app(supabase_url: &str) -> TestApp {
    TestApp::spawn_with(&[
        ("SUPABASE_JWT_SECRET", SUPABASE_SECRET),
        ("SUPABASE_URL", supabase_url),
        ("SUPABASE_ANON_KEY", ANON_KEY),
    ])
    .await
}

async fn sign_in(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.post_json("/api/auth/supabase", &json!({"access_token": token})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

fn user(email: &str, confirmed: bool, provider: &'static str) -> StoredUser {
    StoredUser { email: email.into(), confirmed, provider }
}

#[tokio::test]
async fn only_an_address_supabase_confirmed_opens_an_account() {
    let supabase = StandIn::start().await;
    let app = app(&supabase.url).await;

    supabase.put("confirmed", user("zoe@example.com", true, "email"));
    let (status, body) = sign_in(&app, &access_token("confirmed", "zoe@example.com", "email", json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "zoe@example.com");

    // Unconfirmed, whatever the token's metadata or provider claim.
    supabase.put("unconfirmed", user("max@example.com", false, "google"));
    for (provider, metadata) in [("email", json!({"email_verified": true})), ("google", json!({}))] {
        let (status, body) = sign_in(&app, &access_token("unconfirmed", "max@example.com", provider, metadata)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("email_not_verified")), "{provider}");
    }
    // The token still names an address the user has since changed.
    supabase.put("moved", user("new@example.com", true, "email"));
    let (status, _) = sign_in(&app, &access_token("moved", "old@example.com", "email", json!({}))).await;
    assert_eq!(status, 403);

    let users: i64 = app.scalar("SELECT count(*) FROM users").await;
    assert_eq!(users, 1, "only the confirmed user got an account");
    supabase.stop();
    app.stop().await;
}

#[tokio::test]
async fn a_user_supabase_no_longer_knows_cannot_sign_in() {
    let supabase = StandIn::start().await;
    let app = app(&supabase.url).await;
    supabase.put("u1", user("zoe@example.com", true, "google"));
    let token = access_token("u1", "zoe@example.com", "google", json!({}));
    assert_eq!(sign_in(&app, &token).await.0, 200);
    // Deleted in Supabase: the token still verifies for its hour, the API no longer accepts it.
    supabase.delete("u1");
    let r = app.post_json("/api/auth/supabase", &json!({"access_token": token})).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_parts(r).await.0, "unauthorized");
    supabase.stop();
    app.stop().await;
}

#[tokio::test]
async fn supabase_out_of_reach_is_a_503_to_retry() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let app = app(&closed).await;
    let r = app
        .post_json(
            "/api/auth/supabase",
            &json!({"access_token": access_token("u1", "zoe@example.com", "google", json!({}))}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_parts(r).await.0, "supabase_unavailable");
    app.stop().await;
}
