//! Who may use an upload, its asset and its jobs: the account that started the upload, or
//! the guest whose token did. For everyone else — another account, another guest, a visitor
//! with no token — every id is unknown: the same 404 an id that never existed gets, so not
//! even its existence is confirmed.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};
use crate::uploads::{guest_token, tiny_png};

/// Someone making requests: an account's bearer token, a guest token, both or neither.
#[derive(Clone, Default)]
struct As {
    bearer: Option<String>,
    guest: Option<String>,
}

impl As {
    fn account(token: &str) -> Self {
        Self { bearer: Some(token.into()), guest: None }
    }
    fn guest(token: &str) -> Self {
        Self { bearer: None, guest: Some(token.into()) }
    }
    fn nobody() -> Self {
        Self::default()
    }

    fn request(&self, app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = app.http.request(method, app.url(path));
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(guest) = &self.guest {
            request = request.header("x-guest-token", guest);
        }
        request
    }

    async fn start_upload(&self, app: &TestApp, bytes: usize) -> Value {
        let response = self
            .request(app, reqwest::Method::POST, "/api/uploads")
            .json(&json!({"content_type": "image/png", "byte_size": bytes}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn complete(&self, app: &TestApp, upload: &str) -> reqwest::Response {
        self.request(app, reqwest::Method::POST, &format!("/api/uploads/{upload}/complete")).send().await.unwrap()
    }

    async fn start_job(&self, app: &TestApp, asset: &str) -> reqwest::Response {
        self.request(app, reqwest::Method::POST, "/api/jobs").json(&json!({"asset_id": asset})).send().await.unwrap()
    }

    async fn poll(&self, app: &TestApp, job: &str) -> reqwest::Response {
        self.request(app, reqwest::Method::GET, &format!("/api/jobs/{job}")).send().await.unwrap()
    }
}

/// One customer's media: an upload put and completed, and a job for it.
struct Media {
    upload: String,
    asset: String,
    job: String,
    put_url: String,
}

/// `who` uploads a tiny PNG, completes it and starts a job; `who` is updated with the guest
/// token a guest receives.
async fn media_of(app: &TestApp, who: &mut As) -> Media {
    let png = tiny_png();
    let started = who.start_upload(app, png.len()).await;
    if who.bearer.is_none() {
        who.guest = Some(guest_token(&started));
    }
    let upload = started["upload"]["id"].as_str().unwrap().to_owned();
    let put_url = started["upload"]["put"]["url"].as_str().unwrap().to_owned();
    let put = app.http.put(&put_url).header("content-type", "image/png").body(png).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let done = who.complete(app, &upload).await;
    assert_eq!(done.status(), 201);
    let asset = done.json::<Value>().await.unwrap()["asset"]["id"].as_str().unwrap().to_owned();
    let job = who.start_job(app, &asset).await;
    assert_eq!(job.status(), 202);
    let job = job.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().to_owned();
    Media { upload, asset, job, put_url }
}

async fn assert_not_found(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 404, "{what}");
    assert_eq!(error_parts(response).await.0, "not_found", "{what}");
}

/// Every media route, used by `stranger` on `victim`'s ids: all 404, and nothing changed.
async fn assert_cannot_touch(app: &TestApp, stranger: &As, victim: &Media, who: &str) {
    assert_not_found(stranger.complete(app, &victim.upload).await, &format!("{who} completes the upload")).await;
    assert_not_found(stranger.start_job(app, &victim.asset).await, &format!("{who} starts a job on the asset")).await;
    assert_not_found(stranger.poll(app, &victim.job).await, &format!("{who} polls the job")).await;
}

#[tokio::test]
async fn another_account_a_guest_and_a_visitor_get_404_for_an_accounts_upload_asset_and_job() {
    let app = TestApp::spawn().await;
    let (_, a) = app.register("ann@example.com").await;
    let (_, b) = app.register("bob@example.com").await;
    let mut ann = As::account(&a);
    let victim = media_of(&app, &mut ann).await;

    let mut guest = As::nobody();
    let _guests_own = media_of(&app, &mut guest).await;
    for (stranger, who) in [(As::account(&b), "another account"), (guest, "a guest"), (As::nobody(), "a visitor")] {
        assert_cannot_touch(&app, &stranger, &victim, who).await;
    }
    // An unknown id answers exactly the same.
    let unknown = uuid::Uuid::new_v4().to_string();
    let unknown = Media { upload: unknown.clone(), asset: unknown.clone(), job: unknown, put_url: String::new() };
    assert_cannot_touch(&app, &As::account(&b), &unknown, "another account, unknown ids").await;

    // Nothing was created for the strangers, and the owner still has everything.
    let jobs: i64 = app.scalar("SELECT count(*) FROM jobs").await;
    assert_eq!(jobs, 2, "one job each for Ann and the guest");
    assert_eq!(ann.poll(&app, &victim.job).await.status(), 200);
    assert_eq!(ann.start_job(&app, &victim.asset).await.status(), 200, "the owner finds their live job");
    assert_eq!(ann.complete(&app, &victim.upload).await.status(), 200, "completing again is idempotent");
    app.stop().await;
}

#[tokio::test]
async fn an_account_another_guest_and_a_visitor_get_404_for_a_guests_media() {
    let app = TestApp::spawn().await;
    let mut guest = As::nobody();
    let victim = media_of(&app, &mut guest).await;
    let (_, b) = app.register("bob@example.com").await;
    let mut other_guest = As::nobody();
    media_of(&app, &mut other_guest).await;
    for (stranger, who) in
        [(As::account(&b), "an account"), (other_guest, "another guest"), (As::nobody(), "a visitor")]
    {
        assert_cannot_touch(&app, &stranger, &victim, who).await;
    }
    assert_eq!(guest.poll(&app, &victim.job).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_guest_keeps_one_id_across_uploads_and_an_account_with_the_guest_token_keeps_its_guest_media() {
    let app = TestApp::spawn().await;
    let mut guest = As::nobody();
    let first = media_of(&app, &mut guest).await;
    // Starting another upload with the token keeps the same guest (and renews the token).
    let again = guest.start_upload(&app, 10).await;
    let renewed = guest_token(&again);
    let id_of = |token: &str| token.split('.').nth(1).unwrap().to_owned();
    assert_eq!(id_of(&renewed), id_of(guest.guest.as_deref().unwrap()));
    assert_eq!(As::guest(&renewed).poll(&app, &first.job).await.status(), 200, "the renewed token works too");

    // Signing in does not lose what was made as a guest, as long as the token is sent along.
    let (_, token) = app.register("guest-now-member@example.com").await;
    let member = As { bearer: Some(token.clone()), guest: guest.guest.clone() };
    assert_eq!(member.poll(&app, &first.job).await.status(), 200);
    assert_not_found(As::account(&token).poll(&app, &first.job).await, "the account alone").await;
    app.stop().await;
}

#[tokio::test]
async fn a_forged_tampered_or_expired_guest_token_is_refused_not_treated_as_a_visitor() {
    let app = TestApp::spawn().await;
    let mut guest = As::nobody();
    let media = media_of(&app, &mut guest).await;
    let token = guest.guest.clone().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let other = uuid::Uuid::new_v4().simple().to_string();
    let expired = api::guest::GuestKey::derive(&app.app_state.auth.order_token_secret).issue(
        domain::GuestId::from_uuid(parts[1].parse().unwrap()),
        std::time::SystemTime::now() - api::guest::GUEST_TOKEN_TTL - std::time::Duration::from_secs(60),
    );
    for bad in [
        format!("v1.{other}.{}.{}", parts[2], parts[3]),
        format!("v1.{}.{}.{}", parts[1], parts[2].parse::<u64>().unwrap() + 1, parts[3]),
        "garbage".to_owned(),
        expired,
    ] {
        let response = As::guest(&bad).poll(&app, &media.job).await;
        assert_eq!(response.status(), 401, "{bad}");
        assert_eq!(error_parts(response).await.0, "unauthorized");
    }
    // A token signed with another key (another deployment, or forged) is refused as well.
    let foreign = api::guest::GuestKey::derive(&[9; 32])
        .issue(domain::GuestId::from_uuid(parts[1].parse().unwrap()), std::time::SystemTime::now());
    assert_eq!(As::guest(&foreign).poll(&app, &media.job).await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn presigned_urls_carry_no_ids_and_results_are_stored_under_keys_no_id_predicts() {
    let app = TestApp::spawn().await;
    let mut guest = As::nobody();
    let media = media_of(&app, &mut guest).await;
    for id in [&media.upload, &media.asset, &media.job] {
        assert!(!media.put_url.contains(id.as_str()) && !media.put_url.contains(&id.replace('-', "")));
    }
    let prefix: String = app.scalar(&format!("SELECT object_prefix FROM jobs WHERE id = '{}'", media.job)).await;
    assert!(prefix.len() == 32 && !prefix.contains(&media.job.replace('-', "")[..8]), "{prefix}");
    let other: String = app.scalar("SELECT replace(gen_random_uuid()::text, '-', '')").await;
    assert_ne!(prefix, other);
    app.stop().await;
}
