//! Drill "identity forging": Supabase tokens that lie about whose address they carry, and
//! password guesses sent all at once.
//!
//! Client addresses reach the API only through `ClientIp` (see `helpers::from_client`).

use std::time::{Duration, Instant};

use api::auth::limits::{CLIENT_IP, EMAIL, PAIR, Tier};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts, from_client};
use crate::supabase_stand_in::{SUPABASE_SECRET, access_token};

const PASSWORD: &str = "correct horse battery";

async fn app() -> TestApp {
    TestApp::spawn_with(&[
        ("SUPABASE_JWT_SECRET", SUPABASE_SECRET),
        // 500 requests at once queue for the pool's ten connections.
        ("DB_POOL_WAIT_TIMEOUT_MS", "60000"),
        ("REQUEST_TIMEOUT_MS", "120000"),
    ])
    .await
}

async fn supabase(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/auth/supabase", &json!({"access_token": token})).await
}

async fn link(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    from_client(app.http.post(app.url("/api/auth/supabase/link")), "10.0.0.1")
        .json(&json!({"access_token": token, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn code(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), error_parts(response).await.0)
}

async fn linked_id(app: &TestApp, email: &str) -> Option<String> {
    app.scalar(&format!("SELECT supabase_user_id FROM users WHERE email = '{email}'")).await
}

fn new_sub() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn a_supabase_token_with_forged_metadata_cannot_take_over_an_admin() {
    let app = app().await;
    app.staff("admin@stolentee.com", "admin").await;
    let users: i64 = app.scalar("SELECT count(*) FROM users").await;
    // The attacker's own Supabase user: they set the admin's address (never confirmed) and
    // wrote "verified" into the metadata every Supabase user may edit.
    let forged = access_token(
        &new_sub(),
        "admin@stolentee.com",
        "email",
        json!({"email_verified": true, "full_name": "The Admin"}),
    );
    assert_eq!(code(supabase(&app, &forged).await).await, (403, "email_not_verified".into()));
    assert_eq!(code(link(&app, &forged, "a guess at the password").await).await, (403, "email_not_verified".into()));
    assert_eq!(linked_id(&app, "admin@stolentee.com").await, None, "the admin account is not linked");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM users").await, users, "and no account was made");
    app.stop().await;
}

#[tokio::test]
async fn a_verified_address_still_needs_the_accounts_password_and_staff_never_link() {
    let app = app().await;
    app.staff("admin@stolentee.com", "admin").await;
    let (ann, _) = app.register("ann@example.com").await;

    // Even an address Google vouches for gets no session of an existing account.
    let admin_google = access_token(&new_sub(), "admin@stolentee.com", "google", json!({}));
    let r = supabase(&app, &admin_google).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_parts(r).await.0, "link_required");
    assert_eq!(code(link(&app, &admin_google, "not the password").await).await, (401, "invalid_credentials".into()));
    // Staff accounts sign in with their password only, so not even it links them.
    assert_eq!(code(link(&app, &admin_google, PASSWORD).await).await, (403, "staff_link_refused".into()));
    assert_eq!(linked_id(&app, "admin@stolentee.com").await, None);

    // A customer who proves the password is linked, and signs in with Supabase from then on.
    let sub = new_sub();
    let ann_google = access_token(&sub, "ann@example.com", "google", json!({}));
    assert_eq!(code(supabase(&app, &ann_google).await).await, (409, "link_required".into()));
    assert_eq!(code(link(&app, &ann_google, "not the password").await).await, (401, "invalid_credentials".into()));
    let r = link(&app, &ann_google, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["id"], ann.as_str());
    assert!(body["device_token"].as_str().is_some());
    let r = supabase(&app, &ann_google).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["user"]["id"], ann.as_str());
    // Another Supabase user with the same address cannot take the link over.
    let other = access_token(&new_sub(), "ann@example.com", "google", json!({}));
    assert_eq!(code(supabase(&app, &other).await).await, (409, "account_conflict".into()));
    assert_eq!(code(link(&app, &other, PASSWORD).await).await, (409, "account_conflict".into()));
    assert_eq!(linked_id(&app, "ann@example.com").await, Some(sub));
    app.stop().await;
}

#[tokio::test]
async fn links_made_by_email_alone_are_not_trusted() {
    let app = app().await;
    let (ann, _) = app.register("ann@example.com").await;
    // What the old sign-in did on a forged "email_verified": link by address alone.
    let attacker = new_sub();
    app.sql(&format!("UPDATE users SET supabase_user_id = '{attacker}' WHERE id = '{ann}'")).await;
    let token = access_token(&attacker, "ann@example.com", "email", json!({"email_verified": true}));
    assert_eq!(code(supabase(&app, &token).await).await, (409, "link_required".into()));

    // Ann links her own Supabase user with her password; the untrusted link is replaced.
    let own = new_sub();
    let r = link(&app, &access_token(&own, "ann@example.com", "google", json!({})), PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert_eq!(linked_id(&app, "ann@example.com").await, Some(own));
    assert_eq!(code(supabase(&app, &token).await).await, (403, "email_not_verified".into()));
    app.stop().await;
}

#[tokio::test]
async fn unverified_supabase_sign_in_says_nothing_about_which_addresses_have_accounts() {
    let app = app().await;
    app.register("ann@example.com").await;
    let users: i64 = app.scalar("SELECT count(*) FROM users").await;
    for metadata in [json!({}), json!({"email_verified": true})] {
        let mut answers = Vec::new();
        for email in ["ann@example.com", "nobody@example.com"] {
            let r = supabase(&app, &access_token(&new_sub(), email, "email", metadata.clone())).await;
            answers.push(code(r).await);
        }
        let expected: Vec<(u16, String)> = vec![(403, "email_not_verified".into()); 2];
        assert_eq!(answers, expected, "{metadata}");
    }
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM users").await, users);
    app.stop().await;
}

/// How many attempts `tier` admits in a burst lasting `elapsed`: its free ones, then one
/// more each time the (doubling) back-off has run out.
fn admitted_within(tier: &Tier, elapsed: Duration) -> u64 {
    let (mut admitted, mut at) = (tier.free, Duration::ZERO);
    loop {
        at += tier.delay(admitted);
        if at > elapsed {
            return admitted as u64;
        }
        admitted += 1;
    }
}

/// Sends every `(client ip, e-mail)` sign-in with a wrong password at once through `client`;
/// returns the statuses, the Argon2 runs they caused and how long the burst took.
async fn burst(app: &TestApp, client: &reqwest::Client, attempts: Vec<(String, String)>) -> (Vec<u16>, u64, Duration) {
    let argon2_before = app.app_state.sign_in.argon2_runs();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (ip, email) in attempts {
        let request = from_client(client.post(app.url("/api/auth/login")), &ip)
            .json(&json!({"email": email, "password": "a wrong guess!"}));
        set.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = set.join_all().await;
    (statuses, app.app_state.sign_in.argon2_runs() - argon2_before, started.elapsed())
}

fn count(statuses: &[u16], status: u16) -> u64 {
    statuses.iter().filter(|s| **s == status).count() as u64
}

/// Sends the burst as the test's usual client and checks that no more guesses were checked
/// (Argon2) than `tier`, the key the burst shares, admits.
async fn check_burst(app: &TestApp, attempts: Vec<(String, String)>, tier: &Tier, what: &str) {
    let (statuses, argon2, elapsed) = burst(app, &app.http, attempts).await;
    let allowed = admitted_within(tier, elapsed);
    let (wrong, throttled) = (count(&statuses, 401), count(&statuses, 429));
    assert_eq!(wrong + throttled, 500, "{what}: every answer is 401 or 429: {statuses:?}");
    assert!(wrong >= tier.free as u64 && wrong <= allowed, "{what}: {wrong} checked, {allowed} allowed");
    assert_eq!(argon2, wrong, "{what}: one Argon2 verification per checked guess, none for the refused");
    let recorded: i64 = app.scalar("SELECT count(*) FROM login_attempts").await;
    assert_eq!(recorded as u64, wrong, "{what}: every checked guess counted");
    app.sql("DELETE FROM login_attempts").await;
}

#[tokio::test]
async fn five_hundred_parallel_guesses_cost_no_more_argon2_than_the_limits_allow() {
    let app = app().await;
    app.register("victim@example.com").await;
    let victim = || "victim@example.com".to_owned();
    check_burst(&app, (0..500).map(|_| ("10.0.0.1".to_owned(), victim())).collect(), &PAIR, "one client, one account")
        .await;
    check_burst(
        &app,
        (0..500).map(|i| (format!("10.1.{}.{}", i / 250, i % 250), victim())).collect(),
        &EMAIL,
        "500 clients, one account",
    )
    .await;
    check_burst(
        &app,
        (0..500).map(|i| ("10.2.0.1".to_owned(), format!("user{i}@example.com"))).collect(),
        &CLIENT_IP,
        "one client, 500 accounts",
    )
    .await;

    // Straight to the origin, without the edge's secret, each guess naming a fresh client IP
    // in the header: the header is not believed, so all 500 are one client (the TCP peer) on
    // one account, and no more guesses are checked than that pair's limit.
    let (statuses, argon2, elapsed) = burst(
        &app,
        &reqwest::Client::new(),
        (0..500).map(|i| (format!("10.3.{}.{}", i / 250, i % 250), victim())).collect(),
    )
    .await;
    let allowed = admitted_within(&PAIR, elapsed);
    let (wrong, throttled) = (count(&statuses, 401), count(&statuses, 429));
    assert_eq!(wrong + throttled, 500, "spoofed IPs: every answer is 401 or 429: {statuses:?}");
    assert!(wrong <= allowed, "spoofed IPs: {wrong} guesses checked, the one real client may have {allowed}");
    assert_eq!(argon2, wrong, "spoofed IPs: one Argon2 verification per checked guess");
    let believed: i64 = app.scalar("SELECT count(*) FROM login_attempts WHERE client_ip LIKE '10.3.%'").await;
    assert_eq!(believed, 0, "no forged address was recorded");
    app.stop().await;
}
