//! Every route with who may call it. The router is built from this table and the
//! authorization matrix test (`tests/api/authorization.rs`) walks the same table, calling each
//! route as a guest, a customer, another customer, staff and an admin: a route cannot be added
//! without declaring its access rule, and a rule the handler does not keep fails that test.
//!
//! The rule is enforced by the handler's extractors (`Auth<Staff>`, `MaybeAuth`, …) and
//! ownership checks; the table only declares it, so it cannot drift from the code unnoticed.

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get, patch, post};

use crate::app::AppState;
use crate::routes::{admin, auth, catalog, designs, dev_payments, health, jobs, orders, quote, uploads, webhooks};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, and the answer does not depend on who asks (health, catalog, quotes, sign-in).
    Public,
    /// Anyone; the request carries its own proof, checked by the handler (a Stripe signature).
    Signed,
    /// Guests and accounts alike; what it creates belongs to the caller (an account, or a
    /// guest holding the capability it is given).
    Guest,
    /// Any signed-in account; it sees only its own data.
    SignedIn,
    /// Only whoever owns the resource the request names — its account, or the guest holding
    /// its capability. Anyone else gets 404, so an id cannot even be confirmed.
    Owner(Owned),
    /// Like [`Access::Owner`], and staff too (the role re-read from the database): support
    /// looks up a customer's order by the number the customer quotes.
    OwnerOrStaff(Owned),
    /// Fulfilment staff and admins (role re-read from the database on every request).
    Staff,
    /// Admins only.
    Admin,
    /// Mounted only in development, never in production.
    Development,
}

/// The kinds of resource a customer or guest owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Design,
    Order,
    Upload,
    Job,
}

/// One path, its methods with their access rules, and the handlers.
pub struct Route {
    pub path: &'static str,
    pub methods: Vec<(Method, Access)>,
    pub(crate) handler: MethodRouter<AppState>,
}

fn route(path: &'static str, methods: &[(Method, Access)], handler: MethodRouter<AppState>) -> Route {
    Route { path, methods: methods.to_vec(), handler }
}

/// The whole HTTP surface served with [`AppState`]. `development` adds the routes that exist
/// only in development (the local payment provider's confirmation).
pub fn table(development: bool) -> Vec<Route> {
    use Access::*;
    use Method as M;
    let mut routes = vec![
        route("/health", &[(M::GET, Public)], get(health::live)),
        route("/health/live", &[(M::GET, Public)], get(health::live)),
        route("/health/ready", &[(M::GET, Public)], get(health::ready)),
        route("/api/products", &[(M::GET, Public)], get(catalog::list)),
        route("/api/products/{slug}", &[(M::GET, Public)], get(catalog::show)),
        route("/api/price/quote", &[(M::POST, Public)], post(quote::quote)),
        route("/api/uploads", &[(M::POST, Guest)], post(uploads::start)),
        route("/api/uploads/{id}/complete", &[(M::POST, Owner(Owned::Upload))], post(uploads::complete)),
        route("/api/jobs", &[(M::POST, Owner(Owned::Upload))], post(jobs::start)),
        route("/api/jobs/{id}", &[(M::GET, Owner(Owned::Job))], get(jobs::show)),
        route("/api/auth/register", &[(M::POST, Public)], post(auth::register)),
        route("/api/auth/login", &[(M::POST, Public)], post(auth::login)),
        route("/api/auth/supabase", &[(M::POST, Public)], post(auth::supabase)),
        route("/api/auth/supabase/link", &[(M::POST, Public)], post(auth::supabase_link)),
        route("/api/auth/me", &[(M::GET, SignedIn)], get(auth::me)),
        route("/api/designs", &[(M::GET, SignedIn), (M::POST, SignedIn)], get(designs::list).post(designs::create)),
        route(
            "/api/designs/{id}",
            &[(M::GET, Owner(Owned::Design)), (M::PUT, Owner(Owned::Design)), (M::DELETE, Owner(Owned::Design))],
            get(designs::show).put(designs::update).delete(designs::delete),
        ),
        route("/api/orders/calculate-tax", &[(M::POST, Public)], post(orders::calculate_tax)),
        route("/api/orders", &[(M::POST, Guest)], post(orders::create)),
        route("/api/orders/{id}", &[(M::GET, OwnerOrStaff(Owned::Order))], get(orders::show)),
        route(
            "/api/webhooks/stripe",
            &[(M::POST, Signed)],
            post(webhooks::stripe).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        ),
        route("/api/admin/products", &[(M::POST, Admin)], post(admin::create_product)),
        route(
            "/api/admin/products/{id}",
            &[(M::PATCH, Admin), (M::DELETE, Admin)],
            patch(admin::update_product).delete(admin::archive_product),
        ),
        route("/api/admin/variants/{id}", &[(M::PATCH, Admin)], patch(admin::update_variant)),
        route("/api/admin/orders", &[(M::GET, Staff)], get(admin::list_orders)),
        route("/api/admin/orders/{id}", &[(M::GET, Staff)], get(admin::show_order)),
        route("/api/admin/orders/{id}/status", &[(M::PATCH, Staff)], patch(admin::move_order)),
    ];
    if development {
        routes.push(route(
            "/api/dev/payments/{intent_id}/{action}",
            &[(M::POST, Development)],
            post(dev_payments::act),
        ));
    }
    routes
}
