//! The authorization matrix: every route of the router's own table (`routes::table`) called
//! as a guest, a customer who owns the resource, another customer, staff and an admin. The
//! expected answer comes from the access rule the table declares, so a new route is covered
//! the moment it is added, and a handler that does not keep its declared rule fails here.

use std::collections::BTreeMap;

use api::routes::table::{Access, Owned, table};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, cart};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Guest,
    Owner,
    OtherCustomer,
    Staff,
    Admin,
}

const CALLERS: [Caller; 5] = [Caller::Guest, Caller::Owner, Caller::OtherCustomer, Caller::Staff, Caller::Admin];

/// What the test needs to call one route: the path with its parameters filled in, a body, and
/// the headers that prove ownership for a guest-owned resource.
struct Call {
    path: String,
    body: Option<Value>,
}

/// The accounts and the resources customer "owner" holds.
struct World {
    tokens: BTreeMap<Caller, String>,
    product_id: String,
    order_id: String,
    design_id: String,
    upload_id: String,
    /// A completed upload of the owner's (the artwork), for cut-out jobs.
    asset_id: String,
    variant_id: String,
    job_id: String,
    design_body: Value,
}

async fn world(app: &TestApp) -> World {
    let (owner_id, owner) = app.register("owner@example.com").await;
    let _ = &owner_id;
    let (_, other) = app.register("other@example.com").await;
    let staff = app.staff("staff@example.com", "fulfillment").await;
    let admin = app.staff("admin@example.com", "admin").await;
    let tokens = BTreeMap::from([
        (Caller::Owner, owner.clone()),
        (Caller::OtherCustomer, other),
        (Caller::Staff, staff),
        (Caller::Admin, admin),
    ]);

    let product_id: String = app.scalar("SELECT id::text FROM products WHERE slug = 'classic-tee'").await;
    let artwork: String = app
        .scalar(&format!(
            "INSERT INTO assets (owner_id, object_key, content_type, byte_size, kind) \
             VALUES ('{owner_id}', 'uploads/matrix-{}.png', 'image/png', 100, 'upload') RETURNING id::text",
            uuid::Uuid::new_v4()
        ))
        .await;
    let design_body = json!({
        "name": "matrix",
        "product_id": product_id,
        "design_data": {"front": [{"artwork_id": artwork, "x": 1, "y": 1, "width": 5, "height": 5}]}
    });
    let created: Value =
        app.send_json_as(Method::POST, "/api/designs", &owner, &design_body).await.json().await.unwrap();
    let design_id = created["design"]["id"].as_str().expect("a design").to_owned();

    let variant = app.variant_id("ST-TEE-BLK-M").await;
    let order: Value = app
        .http
        .post(app.url("/api/orders"))
        .bearer_auth(&owner)
        .json(&cart(&variant, json!(2), "owner@example.com"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order"]["id"].as_str().unwrap_or_else(|| panic!("an order: {order}")).to_owned();

    let started: Value = app
        .http
        .post(app.url("/api/uploads"))
        .bearer_auth(&owner)
        .json(&json!({"content_type": "image/png", "byte_size": 100, "filename": "a.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = started["upload"]["id"].as_str().unwrap_or_else(|| panic!("an upload: {started}")).to_owned();
    let queued: Value =
        app.send_json_as(Method::POST, "/api/jobs", &owner, &json!({"asset_id": artwork})).await.json().await.unwrap();
    let job_id = queued["job"]["id"].as_str().unwrap_or_else(|| panic!("a job: {queued}")).to_owned();
    World {
        tokens,
        product_id,
        order_id,
        design_id,
        upload_id,
        asset_id: artwork,
        variant_id: variant,
        job_id,
        design_body,
    }
}

/// Fills a route's parameters with the world's resources.
fn call(world: &World, path: &str, method: &Method, access: Access) -> Call {
    let filled = path
        .replace("{slug}", "classic-tee")
        .replace("{intent_id}", "pi_matrix")
        .replace("{action}", "confirm")
        .replace(
            "{id}",
            match (access, path) {
                (Access::Owner(kind) | Access::OwnerOrStaff(kind), _) => match kind {
                    Owned::Design => &world.design_id,
                    Owned::Order => &world.order_id,
                    Owned::Upload => &world.upload_id,
                    Owned::Job => &world.job_id,
                },
                (_, p) if p.starts_with("/api/admin/products") => &world.product_id,
                (_, p) if p.starts_with("/api/admin/variants") => &world.variant_id,
                (_, p) if p.starts_with("/api/admin/orders") => &world.order_id,
                _ => "00000000-0000-4000-8000-000000000000",
            },
        );
    let body = match (access, method) {
        (Access::Owner(Owned::Design), &Method::PUT) => Some(world.design_body.clone()),
        (Access::Owner(Owned::Upload), &Method::POST) if filled == "/api/jobs" => {
            Some(json!({"asset_id": world.asset_id}))
        }
        (_, &Method::POST | &Method::PUT | &Method::PATCH) => Some(json!({})),
        _ => None,
    };
    assert!(!filled.contains('{'), "a parameter of {path} has no fixture: add one above");
    Call { path: filled, body }
}

/// Whether `status` keeps `access` for `caller`; `None` when it does.
fn breaks(access: Access, caller: Caller, status: StatusCode) -> Option<&'static str> {
    let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    let hidden = status == StatusCode::NOT_FOUND;
    let signed_in = caller != Caller::Guest;
    let staff = matches!(caller, Caller::Staff | Caller::Admin);
    match access {
        Access::Public | Access::Signed | Access::Guest | Access::Development => {
            denied.then_some("open to everyone, but refused")
        }
        Access::SignedIn if !signed_in => (status != StatusCode::UNAUTHORIZED).then_some("a guest must get 401"),
        Access::SignedIn => denied.then_some("any account may call it"),
        Access::Owner(_) if caller == Caller::Owner => {
            (denied || hidden).then_some("the owner must reach their resource")
        }
        Access::Owner(_) if !signed_in => {
            (!(status == StatusCode::UNAUTHORIZED || hidden)).then_some("a guest must get 401 or 404")
        }
        Access::Owner(_) => (!hidden).then_some("anyone but the owner must get 404"),
        Access::OwnerOrStaff(_) if caller == Caller::Owner || staff => {
            (denied || hidden).then_some("the owner and staff must reach it")
        }
        Access::OwnerOrStaff(_) if !signed_in => {
            (!(status == StatusCode::UNAUTHORIZED || hidden)).then_some("a guest must get 401 or 404")
        }
        Access::OwnerOrStaff(_) => (!hidden).then_some("another customer must get 404"),
        Access::Staff | Access::Admin if !signed_in => {
            (status != StatusCode::UNAUTHORIZED).then_some("a guest must get 401")
        }
        Access::Staff if staff => denied.then_some("staff and admins may call it"),
        Access::Staff => (status != StatusCode::FORBIDDEN).then_some("customers must get 403"),
        Access::Admin if caller == Caller::Admin => denied.then_some("admins may call it"),
        Access::Admin => (status != StatusCode::FORBIDDEN).then_some("non-admins must get 403"),
    }
}

#[tokio::test]
async fn every_route_keeps_its_declared_access_rule_for_every_kind_of_caller() {
    let app = TestApp::spawn().await;
    let world = world(&app).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in table(true) {
        for (method, access) in &route.methods {
            let call = call(&world, route.path, method, *access);
            let mut statuses = BTreeMap::new();
            for caller in CALLERS {
                let mut request = app.http.request(method.clone(), app.url(&call.path));
                if let Some(token) = world.tokens.get(&caller) {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &call.body {
                    request = request.json(body);
                }
                let status = request.send().await.expect("request sent").status();
                statuses.insert(caller, status);
                if let Some(why) = breaks(*access, caller, status) {
                    failures.push(format!("{method} {} as {caller:?}: {status}: {why}", route.path));
                }
                checked += 1;
            }
            // A public route answers the same whoever asks.
            if *access == Access::Public {
                let distinct: std::collections::BTreeSet<_> = statuses.values().collect();
                if distinct.len() > 1 {
                    failures
                        .push(format!("{method} {}: public, yet answers differ by caller: {statuses:?}", route.path));
                }
            }
        }
    }
    assert!(checked >= 5 * 25, "the table lists every route ({checked} calls)");
    assert!(failures.is_empty(), "{} broken rules:\n{}", failures.len(), failures.join("\n"));
    app.stop().await;
}

#[test]
fn the_rules_themselves_can_fail() {
    // The judge above is only as good as this: each rule rejects the answer it forbids.
    assert!(breaks(Access::Admin, Caller::Staff, StatusCode::OK).is_some());
    assert!(breaks(Access::Staff, Caller::Owner, StatusCode::OK).is_some());
    assert!(breaks(Access::SignedIn, Caller::Guest, StatusCode::OK).is_some());
    assert!(breaks(Access::Owner(Owned::Design), Caller::OtherCustomer, StatusCode::OK).is_some());
    assert!(breaks(Access::Owner(Owned::Design), Caller::OtherCustomer, StatusCode::FORBIDDEN).is_some());
    assert!(breaks(Access::Owner(Owned::Order), Caller::Owner, StatusCode::NOT_FOUND).is_some());
    assert!(breaks(Access::Public, Caller::Guest, StatusCode::UNAUTHORIZED).is_some());
    assert!(breaks(Access::Owner(Owned::Job), Caller::Admin, StatusCode::NOT_FOUND).is_none());
}
