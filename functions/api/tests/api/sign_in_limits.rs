//! Sign-in limits: every password check is counted before its Argon2 work; the guessing
//! client is throttled hard, the account's owner is never locked out (`api::auth::limits`).

use api::auth::limits::{CLIENT_IP, EMAIL, PAIR};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts, from_client};

const PASSWORD: &str = "correct horse battery";
const WRONG: &str = "wrong password!";

async fn login(app: &TestApp, ip: &str, email: &str, password: &str, device: Option<&str>) -> reqwest::Response {
    let mut body = json!({"email": email, "password": password});
    if let Some(device) = device {
        body["device_token"] = json!(device);
    }
    from_client(app.http.post(app.url("/api/auth/login")), ip).json(&body).send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

/// Moves every recorded attempt `secs` into the past: the tests' clock.
async fn age_attempts(app: &TestApp, secs: u64) {
    app.sql(&format!("UPDATE login_attempts SET created_at = created_at - interval '{secs} seconds'")).await;
}

async fn expect_throttled(response: reqwest::Response, max_wait: u64) -> u64 {
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    assert!((1..=max_wait).contains(&wait), "Retry-After {wait} not in 1..={max_wait}");
    assert_eq!(error_parts(response).await.0, "too_many_attempts");
    wait
}

#[tokio::test]
async fn a_guessing_client_is_throttled_on_its_own_address_only() {
    let app = TestApp::spawn().await;
    app.register("victim@example.com").await;
    for i in 0..PAIR.free {
        let r = login(&app, "10.0.0.1", "victim@example.com", WRONG, None).await;
        assert_eq!(r.status(), 401, "guess {i}");
        assert_eq!(error_parts(r).await.0, "invalid_credentials");
    }
    // The guessing client must wait, even with the right password…
    expect_throttled(login(&app, "10.0.0.1", "victim@example.com", PASSWORD, None).await, 30).await;
    // …while the owner, anywhere else, signs in as usual: five bad guesses lock nobody out.
    assert_eq!(login(&app, "10.0.0.2", "victim@example.com", PASSWORD, None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_existing_addresses_answer_alike() {
    let app = TestApp::spawn().await;
    app.register("victim@example.com").await;
    let mut answers = Vec::new();
    for (ip, email) in [("10.0.1.1", "victim@example.com"), ("10.0.2.1", "nobody@example.com")] {
        let mut seen = Vec::new();
        for _ in 0..=PAIR.free {
            let r = login(&app, ip, email, WRONG, None).await;
            let status = r.status().as_u16();
            let wait = r.headers().get("retry-after").is_some();
            seen.push((status, wait, error_parts(r).await.0));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].last().unwrap().0, 429);
    app.stop().await;
}

#[tokio::test]
async fn the_back_off_doubles_and_then_lets_the_client_try_again() {
    let app = TestApp::spawn().await;
    app.register("ann@example.com").await;
    for _ in 0..PAIR.free {
        assert_eq!(login(&app, "10.0.0.1", "ann@example.com", WRONG, None).await.status(), 401);
    }
    expect_throttled(login(&app, "10.0.0.1", "ann@example.com", WRONG, None).await, 30).await;
    age_attempts(&app, 31).await;
    assert_eq!(login(&app, "10.0.0.1", "ann@example.com", WRONG, None).await.status(), 401, "30 s later");
    let wait = expect_throttled(login(&app, "10.0.0.1", "ann@example.com", WRONG, None).await, 60).await;
    assert!(wait > 30, "the second wait doubles: {wait}");
    age_attempts(&app, 61).await;
    assert_eq!(login(&app, "10.0.0.1", "ann@example.com", PASSWORD, None).await.status(), 200, "60 s later");
    app.stop().await;
}

#[tokio::test]
async fn spraying_many_addresses_from_one_client_throttles_that_client() {
    let app = TestApp::spawn().await;
    for i in 0..CLIENT_IP.free {
        let r = login(&app, "10.7.7.7", &format!("spray{i}@example.com"), WRONG, None).await;
        assert_eq!(r.status(), 401, "guess {i}");
    }
    app.register("fresh@example.com").await;
    expect_throttled(login(&app, "10.7.7.7", "fresh@example.com", PASSWORD, None).await, 30).await;
    assert_eq!(login(&app, "10.8.8.8", "fresh@example.com", PASSWORD, None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_attack_from_everywhere_slows_new_clients_but_never_the_owners_device() {
    let app = TestApp::spawn().await;
    app.register("victim@example.com").await;
    let r = login(&app, "192.0.2.1", "victim@example.com", PASSWORD, None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let device = body["device_token"].as_str().expect("a device token").to_owned();

    // Guesses from 200 addresses over the last hour (written directly: the limits would
    // space them out over longer than a test may take).
    app.sql(
        "INSERT INTO login_attempts (email, client_ip, created_at) \
         SELECT 'victim@example.com', '198.51.100.' || g, now() - g * interval '15 seconds' \
         FROM generate_series(1, 200) g",
    )
    .await;
    // A new client waits — minutes at most, however long the attack goes on.
    expect_throttled(login(&app, "203.0.113.9", "victim@example.com", PASSWORD, None).await, EMAIL.cap.as_secs()).await;
    // The owner's device passes, from any address, and gets its token renewed.
    let r = login(&app, "203.0.113.10", "victim@example.com", PASSWORD, Some(&device)).await;
    assert_eq!(r.status(), 200);
    let renewed: Value = r.json().await.unwrap();
    assert!(renewed["device_token"].as_str().is_some());
    // A forged or broken device token is ignored: the client counts as new.
    let mut forged: Vec<char> = device.chars().collect();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for token in [forged.as_str(), "d1.garbage"] {
        let r = login(&app, "203.0.113.11", "victim@example.com", PASSWORD, Some(token)).await;
        assert_eq!(r.status(), 429, "{token}: counted as a new client");
    }
    // A device (stolen, say) that guesses gets its own back-off.
    for _ in 0..PAIR.free {
        assert_eq!(login(&app, "203.0.113.12", "victim@example.com", WRONG, Some(&device)).await.status(), 401);
    }
    expect_throttled(login(&app, "203.0.113.12", "victim@example.com", PASSWORD, Some(&device)).await, 30).await;
    app.stop().await;
}

#[tokio::test]
async fn registration_probes_count_like_failed_sign_ins() {
    let app = TestApp::spawn().await;
    app.sql("INSERT INTO users (email) SELECT 'member' || g || '@example.com' FROM generate_series(1, 20) g").await;
    let register = |ip: &'static str, email: String| {
        let request = from_client(app.http.post(app.url("/api/auth/register")), ip);
        async move { request.json(&json!({"email": email, "password": PASSWORD})).send().await.unwrap() }
    };
    for g in 1..=CLIENT_IP.free {
        let r = register("10.6.6.6", format!("member{g}@example.com")).await;
        assert_eq!(r.status(), 409);
        assert_eq!(error_parts(r).await.0, "email_taken");
    }
    // The prober now gets one answer for taken and new addresses alike, at no hashing cost.
    let hashed = app.app_state.sign_in.argon2_runs();
    for email in ["member1@example.com", "brand-new@example.com"] {
        expect_throttled(register("10.6.6.6", email.into()).await, 30).await;
    }
    assert_eq!(app.app_state.sign_in.argon2_runs(), hashed, "no Argon2 work for throttled registrations");
    let created: i64 = app.scalar("SELECT count(*) FROM users WHERE email = 'brand-new@example.com'").await;
    assert_eq!(created, 0);
    // Anyone else registers as usual, and a registration leaves no attempt behind.
    assert_eq!(register("10.6.6.7", "brand-new@example.com".into()).await.status(), 201);
    let left: i64 = app.scalar("SELECT count(*) FROM login_attempts WHERE client_ip = '10.6.6.7'").await;
    assert_eq!(left, 0);
    app.stop().await;
}
