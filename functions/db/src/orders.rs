//! Orders: checkout (customer, order, items, first history row in one transaction), the
//! idempotency of `POST /api/orders`, payment events from webhooks, and staff moves.
//!
//! Everything runs on the primary. Pricing facts for checkout are read from the primary too
//! ([`Orders::pricing_context`]), never from a cache or a lagging replica.

use domain::{
    Cents, CustomerId, MethodName, OrderId, OrderNumber, OrderTotals, PaymentStatus, PaymentTransition, PriceRule,
    ProductionStatus, UserId, VariantId,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::catalog::{
    FOR_SALE_COLUMNS, METHOD_COLUMNS, MethodAvailability, PRICE_RULE_COLUMNS, VARIANT_COLUMNS, VariantForSale,
};
use crate::pool::{Database, StoreError, Tx};
use crate::row::{self, FromRow, RowExt, corrupt_column};

/// An order as stored, with its customer's e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub order_number: OrderNumber,
    pub customer_id: CustomerId,
    pub user_id: Option<UserId>,
    pub email: String,
    pub currency: String,
    pub subtotal_cents: Cents,
    pub discount_cents: Cents,
    pub tax_cents: Cents,
    pub shipping_cents: Cents,
    pub total_cents: Cents,
    pub payment_status: PaymentStatus,
    pub payment_intent_id: Option<String>,
    pub production_status: ProductionStatus,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub shipped_at: Option<OffsetDateTime>,
    pub shipping_address: serde_json::Value,
    pub notes: Option<String>,
    pub created_at: OffsetDateTime,
    pub request_hash: Option<String>,
    pub tax_calculation_id: Option<String>,
    /// What the charge's refunds add up to (partial refunds included); 0 when none.
    pub refunded_cents: Cents,
    /// The newest state of a chargeback on the order, if the customer's bank opened one.
    pub dispute: Option<Dispute>,
}

/// A chargeback, as Stripe's newest event about it described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// `dp_…`
    pub id: String,
    /// Stripe's status word: `needs_response`, `under_review`, `won`, `lost`, …
    pub status: String,
    pub amount_cents: Option<Cents>,
    pub reason: Option<String>,
    /// When Stripe created the event that set this state.
    pub updated_at: OffsetDateTime,
}

/// An order line as stored, with what staff need to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub id: Uuid,
    pub variant_id: VariantId,
    pub sku: String,
    pub product_title: String,
    pub color: String,
    pub size: String,
    pub quantity: u32,
    pub unit_price_cents: Cents,
    pub total_price_cents: Cents,
    pub custom_spec: serde_json::Value,
    pub production_status: ProductionStatus,
}

/// A checkout identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub email: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<UserId>,
}

/// A history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub transition: StatusTransition,
    pub changed_by: Option<UserId>,
    pub notes: Option<String>,
    pub at: OffsetDateTime,
}

/// What a history row records: a move of one of the order's two statuses. Stored as
/// `kind` (`payment` or `production`), `old_status` and `new_status`; one value here, so a
/// row can never pair a payment kind with a production status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusTransition {
    /// Driven by payment events; `from` is `None` for the row written at checkout.
    Payment { from: Option<PaymentStatus>, to: PaymentStatus },
    /// A staff move.
    Production { from: Option<ProductionStatus>, to: ProductionStatus },
}

impl StatusTransition {
    /// The stored `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Payment { .. } => "payment",
            Self::Production { .. } => "production",
        }
    }

    /// The stored `old_status`.
    pub fn old_status(self) -> Option<&'static str> {
        match self {
            Self::Payment { from, .. } => from.map(PaymentStatus::as_str),
            Self::Production { from, .. } => from.map(ProductionStatus::as_str),
        }
    }

    /// The stored `new_status`.
    pub fn new_status(self) -> &'static str {
        match self {
            Self::Payment { to, .. } => to.as_str(),
            Self::Production { to, .. } => to.as_str(),
        }
    }
}

/// A line to insert, priced by the caller with `domain::quote`.
#[derive(Debug, Clone)]
pub struct NewOrderItem {
    pub variant_id: VariantId,
    pub quantity: u32,
    pub unit_price_cents: Cents,
    pub total_price_cents: Cents,
    pub custom_spec: serde_json::Value,
}

/// `Idempotency-Key` of the request, scoped to its sender, with the hash of the cart.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub email: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<UserId>,
    pub currency: String,
    pub totals: OrderTotals,
    pub shipping_address: serde_json::Value,
    pub notes: Option<String>,
    pub tax_calculation_id: Option<String>,
    pub items: Vec<NewOrderItem>,
    pub idempotency: Option<IdempotencyKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    Created(Order),
    /// The same sender already placed this order with this key.
    Existing(Order),
    /// The key was used for a different cart.
    KeyReused,
}

/// What a payment event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Seen before (same event id): nothing done.
    Duplicate,
    /// The order changed: its payment status (`from` → `to`, equal for a partial refund or a
    /// dispute update), its refunded amount or its dispute.
    Applied { order_id: OrderId, from: PaymentStatus, to: PaymentStatus, via: IntentMatch },
    /// Nothing to change: the order is already at or past that state (or holds a newer
    /// dispute state).
    Ignored { order_id: OrderId, status: PaymentStatus, via: IntentMatch },
    /// The intent does not belong to the order, or the amount differs: recorded, not applied.
    Rejected { reason: String },
    /// No order has this intent, and its metadata names no order that exists: recorded as
    /// `unmatched`. Someone must look: money may have moved for an order the shop cannot see.
    UnknownOrder,
}

/// How an event's intent led to its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentMatch {
    /// The order's own intent (`orders.payment_intent_id`).
    Own,
    /// The order had no intent recorded (its creation succeeded at Stripe, recording it did
    /// not); the event's intent names the order in its metadata and is now the order's.
    Adopted,
    /// The intent names the order in its metadata, but the order's intent is `stored`: a
    /// second intent exists for one order. A success through it still pays the order (the
    /// money arrived) and becomes the order's intent; whoever reads the alarm checks that the
    /// other intent is never paid as well.
    Stray { stored: String },
}

/// What an event asks of its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentChange<'a> {
    /// `payment_intent.succeeded` (`Paid`) or `payment_intent.payment_failed` (`Failed`).
    Status(PaymentStatus),
    /// `charge.refunded`: `amount_refunded` is the charge's running total; `full` when the
    /// whole charge went back (the order becomes `refunded`).
    Refund { amount_refunded: Cents, full: bool },
    /// `charge.dispute.*`: the dispute's state as of the event (newest event wins).
    Dispute { dispute_id: &'a str, status: &'a str, amount: Cents, reason: Option<&'a str> },
}

/// A payment event, as verified by the payments library and reduced to what matters here.
#[derive(Debug, Clone)]
pub struct PaymentEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// When Stripe created the event (Unix seconds): orders dispute updates.
    pub created: i64,
    pub intent_id: &'a str,
    /// The order id from the intent's metadata, when it had one.
    pub metadata_order_id: Option<&'a str>,
    /// Amount and currency of the intent (for success: must equal the order's total).
    pub amount_cents: Option<Cents>,
    pub currency: Option<&'a str>,
    pub change: PaymentChange<'a>,
}

/// An admin move of the production status.
#[derive(Debug, Clone)]
pub struct StatusMove {
    pub to: ProductionStatus,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub notes: Option<String>,
    pub changed_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved(Box<Order>),
    NotFound,
    Refused(domain::ProductionTransitionError),
}

/// Admin list filters and page.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub payment_status: Option<PaymentStatus>,
    pub production_status: Option<ProductionStatus>,
    /// Keyset cursor: orders strictly older than this (created_at, id).
    pub before: Option<(OffsetDateTime, OrderId)>,
    pub limit: i64,
}

// Column lists for the `FromRow` impls below, which read them by name.
const ORDER_COLUMNS: &str = "o.id, o.order_number, o.customer_id, o.user_id, c.email, o.currency, o.subtotal_cents, \
     o.discount_cents, o.tax_cents, o.shipping_cents, o.total_cents, o.payment_status, o.payment_intent_id, \
     o.production_status, o.tracking_number, o.carrier, o.shipped_at, o.shipping_address, o.notes, o.created_at, \
     o.request_hash, o.tax_calculation_id, o.refunded_cents, o.dispute_id, o.dispute_status, \
     o.dispute_amount_cents, o.dispute_reason, o.dispute_updated_at";

const ITEM_COLUMNS: &str = "i.id, i.variant_id, v.sku, p.title AS product_title, v.color, v.size, i.quantity, \
     i.unit_price_cents, i.total_price_cents, i.custom_spec, i.production_status";
const CUSTOMER_COLUMNS: &str = "id, email, name, phone, user_id";
const HISTORY_COLUMNS: &str = "kind, old_status, new_status, changed_by, notes, created_at";

impl FromRow for Order {
    /// Reads [`ORDER_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let number: &str = row.column("order_number")?;
        let cents = |column: &str| row.column::<i64>(column).map(Cents::new);
        Ok(Order {
            id: OrderId::from_uuid(row.column("id")?),
            order_number: OrderNumber::parse(number)
                .ok_or_else(|| corrupt_column("order_number", format!("{number:?} is not an order number")))?,
            customer_id: CustomerId::from_uuid(row.column("customer_id")?),
            user_id: row.column::<Option<Uuid>>("user_id")?.map(UserId::from_uuid),
            email: row.column("email")?,
            currency: row.column("currency")?,
            subtotal_cents: cents("subtotal_cents")?,
            discount_cents: cents("discount_cents")?,
            tax_cents: cents("tax_cents")?,
            shipping_cents: cents("shipping_cents")?,
            total_cents: cents("total_cents")?,
            payment_status: row.parsed("payment_status")?,
            payment_intent_id: row.column("payment_intent_id")?,
            production_status: row.parsed("production_status")?,
            tracking_number: row.column("tracking_number")?,
            carrier: row.column("carrier")?,
            shipped_at: row.column("shipped_at")?,
            shipping_address: row.column("shipping_address")?,
            notes: row.column("notes")?,
            created_at: row.column("created_at")?,
            request_hash: row.column("request_hash")?,
            tax_calculation_id: row.column("tax_calculation_id")?,
            refunded_cents: cents("refunded_cents")?,
            dispute: match (
                row.column::<Option<String>>("dispute_id")?,
                row.column::<Option<String>>("dispute_status")?,
            ) {
                (Some(id), Some(status)) => Some(Dispute {
                    id,
                    status,
                    amount_cents: row.column::<Option<i64>>("dispute_amount_cents")?.map(Cents::new),
                    reason: row.column("dispute_reason")?,
                    updated_at: row.column("dispute_updated_at")?,
                }),
                _ => None,
            },
        })
    }
}

impl FromRow for OrderItem {
    /// Reads [`ITEM_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let quantity: i32 = row.column("quantity")?;
        Ok(OrderItem {
            id: row.column("id")?,
            variant_id: VariantId::from_uuid(row.column("variant_id")?),
            sku: row.column("sku")?,
            product_title: row.column("product_title")?,
            color: row.column("color")?,
            size: row.column("size")?,
            quantity: u32::try_from(quantity).map_err(|_| corrupt_column("quantity", quantity))?,
            unit_price_cents: Cents::new(row.column("unit_price_cents")?),
            total_price_cents: Cents::new(row.column("total_price_cents")?),
            custom_spec: row.column("custom_spec")?,
            production_status: row.parsed("production_status")?,
        })
    }
}

impl FromRow for Customer {
    /// Reads [`CUSTOMER_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Customer {
            id: CustomerId::from_uuid(row.column("id")?),
            email: row.column("email")?,
            name: row.column("name")?,
            phone: row.column("phone")?,
            user_id: row.column::<Option<Uuid>>("user_id")?.map(UserId::from_uuid),
        })
    }
}

impl FromRow for StatusChange {
    /// Reads [`HISTORY_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let transition = match row.column::<&str>("kind")? {
            "payment" => {
                StatusTransition::Payment { from: row.parsed_opt("old_status")?, to: row.parsed("new_status")? }
            }
            "production" => {
                StatusTransition::Production { from: row.parsed_opt("old_status")?, to: row.parsed("new_status")? }
            }
            other => return Err(corrupt_column("kind", format!("unknown history kind {other:?}"))),
        };
        Ok(StatusChange {
            transition,
            changed_by: row.column::<Option<Uuid>>("changed_by")?.map(UserId::from_uuid),
            notes: row.column("notes")?,
            at: row.column("created_at")?,
        })
    }
}

/// Appends a history row. `changed_by` is the staff member who made a production move.
async fn record_change(
    tx: &Tx<'_>,
    doing: &'static str,
    order: OrderId,
    transition: StatusTransition,
    changed_by: Option<UserId>,
    notes: Option<&str>,
) -> Result<(), StoreError> {
    tx.query(
        doing,
        "INSERT INTO order_status_history (order_id, kind, old_status, new_status, changed_by, notes) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            (&order.as_uuid(), Type::UUID),
            (&transition.kind(), Type::TEXT),
            (&transition.old_status(), Type::TEXT),
            (&transition.new_status(), Type::TEXT),
            (&changed_by.map(|u| u.as_uuid()), Type::UUID),
            (&notes, Type::TEXT),
        ],
    )
    .await
    .map(drop)
}

/// Facts for pricing a cart, read inside the caller's view of the primary.
#[derive(Debug, Clone, Default)]
pub struct CheckoutCatalog {
    pub variants: Vec<VariantForSale>,
    pub methods: Vec<MethodAvailability>,
    pub price_rules: Vec<PriceRule>,
}

#[derive(Clone)]
pub struct Orders {
    db: Database,
}

impl Orders {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The variants, methods and active discount rules a cart needs, from the primary.
    pub async fn pricing_context(
        &self,
        variant_ids: &[VariantId],
        methods: &[MethodName],
    ) -> Result<CheckoutCatalog, StoreError> {
        let conn = self.db.primary.conn().await?;
        let ids: Vec<Uuid> = variant_ids.iter().map(VariantId::as_uuid).collect();
        let sql = format!(
            "SELECT {VARIANT_COLUMNS}, {FOR_SALE_COLUMNS} FROM variants v JOIN products p ON p.id = v.product_id \
             WHERE v.id = ANY($1)"
        );
        let rows = conn.query("loading a cart's variants", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
        let variants: Vec<VariantForSale> = row::all(&rows)?;
        let names: Vec<&str> = methods.iter().map(MethodName::as_str).collect();
        let sql = format!("SELECT {METHOD_COLUMNS} FROM decoration_methods m WHERE m.name = ANY($1)");
        let rows = conn.query("loading a cart's methods", &sql, &[(&names, Type::TEXT_ARRAY)]).await?;
        let methods: Vec<MethodAvailability> = row::all(&rows)?;
        let sql = format!("SELECT {PRICE_RULE_COLUMNS} FROM price_rules WHERE active ORDER BY priority DESC, id");
        let rows = conn.query("loading price rules", &sql, &[]).await?;
        let price_rules: Vec<PriceRule> = row::all(&rows)?;
        Ok(CheckoutCatalog { variants, methods, price_rules })
    }

    /// The order a sender already placed with this idempotency key, if any.
    pub async fn by_idempotency_key(&self, scope: &str, key: &str) -> Result<Option<Order>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.idempotency_scope = $1 AND o.idempotency_key = $2"
        );
        let rows = conn.query("finding an order by key", &sql, &[(&scope, Type::TEXT), (&key, Type::TEXT)]).await?;
        row::first(&rows)
    }

    /// Creates customer (found by e-mail), order, items and the first history row in one
    /// transaction. With an idempotency key, concurrent requests carrying it are serialised
    /// by a transaction-scoped advisory lock on (scope, key): the first creates, the others
    /// wait for its commit and then find its order. `next_number` gives a fresh order number
    /// per attempt; a collision (unique constraint) is retried up to 5 times.
    pub async fn checkout(
        &self,
        order: &NewOrder,
        mut next_number: impl FnMut() -> OrderNumber,
    ) -> Result<Checkout, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        if let Some(k) = &order.idempotency {
            let lock_key = format!("order-idempotency:{}:{}", k.scope, k.key);
            tx.query(
                "locking the idempotency key",
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[(&lock_key, Type::TEXT)],
            )
            .await?;
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id \
                 WHERE o.idempotency_scope = $1 AND o.idempotency_key = $2"
            );
            let rows =
                tx.query("finding an order by key", &sql, &[(&k.scope, Type::TEXT), (&k.key, Type::TEXT)]).await?;
            if let Some(existing) = row::first::<Order>(&rows)? {
                return Ok(if existing.request_hash.as_deref() == Some(k.request_hash.as_str()) {
                    Checkout::Existing(existing)
                } else {
                    Checkout::KeyReused
                });
            }
        }

        let user_id = order.user_id.map(|u| u.as_uuid());
        let customer_params: [crate::pool::Param<'_>; 4] =
            [(&order.email, Type::TEXT), (&order.name, Type::TEXT), (&order.phone, Type::TEXT), (&user_id, Type::UUID)];
        // A returning customer with nothing new to record is only read: the upsert below
        // locks the customer row, which would serialise every checkout of one e-mail.
        let mut rows = tx
            .query(
                "finding the customer",
                "SELECT id FROM customers WHERE email = $1 \
                   AND (name IS NOT NULL OR $2::text IS NULL) AND (phone IS NOT NULL OR $3::text IS NULL) \
                   AND (user_id IS NOT NULL OR $4::uuid IS NULL)",
                &customer_params,
            )
            .await?;
        if rows.is_empty() {
            // Fills blanks only: a guest naming someone's e-mail cannot rename their record.
            rows = tx
                .query(
                    "finding or creating the customer",
                    "INSERT INTO customers (email, name, phone, user_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (email) DO UPDATE SET \
                       name = COALESCE(customers.name, EXCLUDED.name), \
                       phone = COALESCE(customers.phone, EXCLUDED.phone), \
                       user_id = COALESCE(customers.user_id, EXCLUDED.user_id) \
                     RETURNING id",
                    &customer_params,
                )
                .await?;
        }
        let customer_id: Uuid =
            rows.first().ok_or_else(|| StoreError::Corrupt("customer upsert".into()))?.column("id")?;

        let t = &order.totals;
        let (key_scope, key, hash) = match &order.idempotency {
            Some(k) => (Some(k.scope.as_str()), Some(k.key.as_str()), Some(k.request_hash.as_str())),
            None => (None, None, None),
        };
        let mut order_id: Option<OrderId> = None;
        for _ in 0..5 {
            let number = next_number();
            let rows = tx
                .query(
                    "inserting the order",
                    "INSERT INTO orders (order_number, customer_id, user_id, currency, subtotal_cents, discount_cents, \
                       tax_cents, shipping_cents, total_cents, shipping_address, notes, idempotency_scope, \
                       idempotency_key, request_hash, tax_calculation_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT (order_number) DO NOTHING RETURNING id",
                    &[
                        (&number.as_str(), Type::TEXT),
                        (&customer_id, Type::UUID),
                        (&user_id, Type::UUID),
                        (&order.currency, Type::TEXT),
                        (&t.subtotal_cents.get(), Type::INT8),
                        (&t.discount_cents.get(), Type::INT8),
                        (&t.tax_cents.get(), Type::INT8),
                        (&t.shipping_cents.get(), Type::INT8),
                        (&t.total_cents.get(), Type::INT8),
                        (&order.shipping_address, Type::JSONB),
                        (&order.notes, Type::TEXT),
                        (&key_scope, Type::TEXT),
                        (&key, Type::TEXT),
                        (&hash, Type::TEXT),
                        (&order.tax_calculation_id, Type::TEXT),
                    ],
                )
                .await?;
            if let Some(row) = rows.first() {
                order_id = Some(OrderId::from_uuid(row.column("id")?));
                break;
            }
            tracing::warn!(number = %number, "order number collision; retrying");
        }
        let order_id = order_id.ok_or_else(|| StoreError::Corrupt("five order number collisions in a row".into()))?;

        for item in &order.items {
            let quantity = i32::try_from(item.quantity).map_err(|_| StoreError::Corrupt("quantity".into()))?;
            tx.query(
                "inserting an order line",
                "INSERT INTO order_items (order_id, variant_id, quantity, unit_price_cents, total_price_cents, custom_spec) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    (&order_id.as_uuid(), Type::UUID),
                    (&item.variant_id.as_uuid(), Type::UUID),
                    (&quantity, Type::INT4),
                    (&item.unit_price_cents.get(), Type::INT8),
                    (&item.total_price_cents.get(), Type::INT8),
                    (&item.custom_spec, Type::JSONB),
                ],
            )
            .await?;
        }
        let placed = StatusTransition::Payment { from: None, to: PaymentStatus::Pending };
        record_change(&tx, "recording the order's first status", order_id, placed, None, Some("order placed")).await?;
        let created = fetch_order(&tx, order_id, false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("order vanished in its own transaction".into()))?;
        tx.commit().await?;
        Ok(Checkout::Created(created))
    }

    /// Records the PaymentIntent created for an order; the first one recorded wins. Returns
    /// the intent the order has now: `intent_id`, or the one a concurrent request recorded
    /// first (the caller then hands out that one, so every caller gets the same intent).
    pub async fn set_payment_intent(&self, id: OrderId, intent_id: &str) -> Result<String, StoreError> {
        let conn = self.db.primary.conn().await?;
        let updated = conn
            .query(
                "recording the payment intent",
                "UPDATE orders SET payment_intent_id = $2 WHERE id = $1 AND payment_intent_id IS NULL \
                 RETURNING payment_intent_id",
                &[(&id.as_uuid(), Type::UUID), (&intent_id, Type::TEXT)],
            )
            .await?;
        if !updated.is_empty() {
            return Ok(intent_id.to_owned());
        }
        // A new statement, so a new snapshot: it sees the intent the winner committed.
        let rows = conn
            .query(
                "reading the recorded payment intent",
                "SELECT payment_intent_id FROM orders WHERE id = $1",
                &[(&id.as_uuid(), Type::UUID)],
            )
            .await?;
        let stored: Option<String> = rows.first().map(|r| r.column("payment_intent_id")).transpose()?.flatten();
        stored.ok_or_else(|| StoreError::Corrupt(format!("order {id} has no intent after recording one")))
    }

    pub async fn by_id(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        fetch_order(&tx, id, false).await
    }

    pub async fn by_number(&self, number: &OrderNumber) -> Result<Option<Order>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_number = $1"
        );
        let rows = conn.query("finding an order by number", &sql, &[(&number.as_str(), Type::TEXT)]).await?;
        row::first(&rows)
    }

    /// The order's lines with their variants.
    pub async fn items(&self, id: OrderId) -> Result<Vec<OrderItem>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "SELECT {ITEM_COLUMNS} \
             FROM order_items i JOIN variants v ON v.id = i.variant_id JOIN products p ON p.id = v.product_id \
             WHERE i.order_id = $1 ORDER BY i.created_at, i.id"
        );
        let rows = conn.query("listing an order's lines", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::all(&rows)
    }

    /// The customer behind an order (staff view).
    pub async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
        let rows = conn.query("finding a customer", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    pub async fn history(&self, id: OrderId) -> Result<Vec<StatusChange>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql =
            format!("SELECT {HISTORY_COLUMNS} FROM order_status_history WHERE order_id = $1 ORDER BY created_at, id");
        let rows = conn.query("listing an order's history", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::all(&rows)
    }

    /// Applies a verified payment event exactly once. The event id is recorded in
    /// `processed_events` in the same transaction as the change, so a replay (or a concurrent
    /// duplicate, which waits on the primary key) changes nothing.
    ///
    /// The order is found by its intent (`orders.payment_intent_id`), else by the order id in
    /// the intent's metadata (see [`IntentMatch`]): an intent created for an order but never
    /// recorded on it, or a second intent for one order, still reaches its order.
    pub async fn apply_payment_event(&self, event: &PaymentEvent<'_>) -> Result<PaymentOutcome, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let fresh = tx
            .query(
                "recording the event id",
                "INSERT INTO processed_events (source, event_id, event_type) VALUES ('stripe', $1, $2) \
                 ON CONFLICT DO NOTHING RETURNING event_id",
                &[(&event.event_id, Type::TEXT), (&event.event_type, Type::TEXT)],
            )
            .await?;
        if fresh.is_empty() {
            return Ok(PaymentOutcome::Duplicate);
        }

        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.payment_intent_id = $1 FOR UPDATE OF o"
        );
        let rows = tx.query("finding the intent's order", &sql, &[(&event.intent_id, Type::TEXT)]).await?;
        let found = match row::first::<Order>(&rows)? {
            Some(order) => Some((order, IntentMatch::Own)),
            None => match event.metadata_order_id.and_then(|raw| Uuid::parse_str(raw).ok()) {
                None => None,
                Some(id) => fetch_order(&tx, OrderId::from_uuid(id), true).await?.map(|order| {
                    let via = match &order.payment_intent_id {
                        None => IntentMatch::Adopted,
                        Some(stored) => IntentMatch::Stray { stored: stored.clone() },
                    };
                    (order, via)
                }),
            },
        };

        let (outcome, order_id, detail) = match found {
            None => {
                let detail = match event.metadata_order_id {
                    Some(meta) => format!("no order has intent {}, nor id {meta} (its metadata)", event.intent_id),
                    None => format!("no order has intent {}, and it names no order", event.intent_id),
                };
                (PaymentOutcome::UnknownOrder, None, Some(detail))
            }
            Some((order, via)) => match mismatch(&order, event, &via) {
                Some(reason) => (PaymentOutcome::Rejected { reason: reason.clone() }, Some(order.id), Some(reason)),
                None => {
                    let id = order.id;
                    let (outcome, detail) = apply_change(&tx, &order, event, via).await?;
                    (outcome, Some(id), detail)
                }
            },
        };
        let label = match &outcome {
            PaymentOutcome::Applied { .. } => "applied",
            PaymentOutcome::Ignored { .. } | PaymentOutcome::Duplicate => "ignored",
            PaymentOutcome::Rejected { .. } => "rejected",
            PaymentOutcome::UnknownOrder => "unmatched",
        };
        let order_uuid = order_id.map(|o| o.as_uuid());
        tx.query(
            "recording the event's outcome",
            "UPDATE processed_events SET outcome = $3, order_id = $4, detail = $5 WHERE source = 'stripe' AND event_id = $1 \
             AND event_type = $2",
            &[
                (&event.event_id, Type::TEXT),
                (&event.event_type, Type::TEXT),
                (&label, Type::TEXT),
                (&order_uuid, Type::UUID),
                (&detail, Type::TEXT),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Records a verified event that names no order at all (a dispute of a charge without an
    /// intent), once, as `unmatched`. Returns whether it was new.
    pub async fn record_unmatched_event(
        &self,
        event_id: &str,
        event_type: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "recording an unmatched event",
                "INSERT INTO processed_events (source, event_id, event_type, outcome, detail) \
                 VALUES ('stripe', $1, $2, 'unmatched', $3) ON CONFLICT DO NOTHING RETURNING event_id",
                &[(&event_id, Type::TEXT), (&event_type, Type::TEXT), (&detail, Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Records an event that needs no state change (an unhandled type), once.
    pub async fn record_unhandled_event(&self, event_id: &str, event_type: &str) -> Result<bool, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "recording an unhandled event",
                "INSERT INTO processed_events (source, event_id, event_type, outcome) VALUES ('stripe', $1, $2, 'unhandled') \
                 ON CONFLICT DO NOTHING RETURNING event_id",
                &[(&event_id, Type::TEXT), (&event_type, Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Staff list, newest first, keyset-paginated.
    pub async fn list(&self, filter: &OrderFilter) -> Result<Vec<Order>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let pay = filter.payment_status.map(PaymentStatus::as_str);
        let prod = filter.production_status.map(ProductionStatus::as_str);
        let (before_at, before_id) = filter.before.map_or((None, None), |(t, id)| (Some(t), Some(id.as_uuid())));
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE ($1::text IS NULL OR o.payment_status = $1) AND ($2::text IS NULL OR o.production_status = $2) \
               AND ($3::timestamptz IS NULL OR (o.created_at, o.id) < ($3, $4)) \
             ORDER BY o.created_at DESC, o.id DESC LIMIT $5"
        );
        let rows = conn
            .query(
                "listing orders",
                &sql,
                &[
                    (&pay, Type::TEXT),
                    (&prod, Type::TEXT),
                    (&before_at, Type::TIMESTAMPTZ),
                    (&before_id, Type::UUID),
                    (&filter.limit, Type::INT8),
                ],
            )
            .await?;
        row::all(&rows)
    }

    /// A staff move of the production status, validated by the domain's rules against the
    /// row locked in the same transaction, with a history row naming who made it.
    pub async fn move_production(&self, id: OrderId, mv: &StatusMove) -> Result<MoveOutcome, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let Some(order) = fetch_order(&tx, id, true).await? else {
            return Ok(MoveOutcome::NotFound);
        };
        let tracking = mv.tracking_number.clone().or(order.tracking_number.clone());
        let carrier = mv.carrier.clone().or(order.carrier.clone());
        let has_tracking = tracking.is_some() && carrier.is_some();
        if let Err(e) = order.production_status.check_move(mv.to, order.payment_status, has_tracking) {
            return Ok(MoveOutcome::Refused(e));
        }
        tx.query(
            "moving the order",
            "UPDATE orders SET production_status = $2, tracking_number = $3, carrier = $4, \
               shipped_at = CASE WHEN $2 = 'shipped' THEN COALESCE(shipped_at, now()) ELSE shipped_at END \
             WHERE id = $1",
            &[
                (&id.as_uuid(), Type::UUID),
                (&mv.to.as_str(), Type::TEXT),
                (&tracking, Type::TEXT),
                (&carrier, Type::TEXT),
            ],
        )
        .await?;
        let change = StatusTransition::Production { from: Some(order.production_status), to: mv.to };
        record_change(&tx, "recording the move", id, change, Some(mv.changed_by), mv.notes.as_deref()).await?;
        let moved = fetch_order(&tx, id, false).await?.ok_or_else(|| StoreError::Corrupt("order vanished".into()))?;
        tx.commit().await?;
        Ok(MoveOutcome::Moved(Box::new(moved)))
    }
}

async fn fetch_order(tx: &Tx<'_>, id: OrderId, lock: bool) -> Result<Option<Order>, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1{}",
        if lock { " FOR UPDATE OF o" } else { "" }
    );
    let rows = tx.query("finding an order", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
    row::first(&rows)
}

/// Why an event may not change this order: the old system captured payments without
/// checking that the intent belonged to the order.
fn mismatch(order: &Order, event: &PaymentEvent<'_>, via: &IntentMatch) -> Option<String> {
    let paid = event.change == PaymentChange::Status(PaymentStatus::Paid);
    match event.metadata_order_id {
        // Found through the metadata: it names this order by construction.
        Some(meta) if *via == IntentMatch::Own && meta != order.id.to_string() => {
            return Some(format!("intent metadata names order {meta}, not {}", order.id));
        }
        None if paid => return Some("the intent carries no order id".into()),
        _ => {}
    }
    if paid && event.amount_cents != Some(order.total_cents) {
        return Some(format!(
            "intent amount {:?} differs from the order total {}",
            event.amount_cents.map(Cents::get),
            order.total_cents.get()
        ));
    }
    if event.currency.is_some_and(|c| !c.eq_ignore_ascii_case(&order.currency)) {
        return Some(format!("event currency {:?} differs from the order's {}", event.currency, order.currency));
    }
    None
}

/// Applies a matched event's change to its locked order, with a history row for anything
/// the order's owner and staff should see. Returns the outcome and the detail to record.
async fn apply_change(
    tx: &Tx<'_>,
    order: &Order,
    event: &PaymentEvent<'_>,
    via: IntentMatch,
) -> Result<(PaymentOutcome, Option<String>), StoreError> {
    let ignored = |via| PaymentOutcome::Ignored { order_id: order.id, status: order.payment_status, via };
    let note = format!("stripe {} ({})", event.event_type, event.event_id);
    let mut detail = match &via {
        IntentMatch::Own => None,
        IntentMatch::Adopted => Some(format!("intent {} adopted: the order had none recorded", event.intent_id)),
        IntentMatch::Stray { stored } => {
            Some(format!("through intent {}, not the order's intent {stored}", event.intent_id))
        }
    };
    // An intent the order never recorded becomes its intent once it proves itself.
    if via == IntentMatch::Adopted {
        tx.query(
            "adopting the intent",
            "UPDATE orders SET payment_intent_id = $2 WHERE id = $1 AND payment_intent_id IS NULL",
            &[(&order.id.as_uuid(), Type::UUID), (&event.intent_id, Type::TEXT)],
        )
        .await?;
    }

    match event.change {
        PaymentChange::Status(target) => {
            // A stray intent's failure says nothing about the order's own intent.
            let stray = matches!(via, IntentMatch::Stray { .. });
            let transition = if stray && target != PaymentStatus::Paid {
                PaymentTransition::Ignore
            } else {
                order.payment_status.on_event(target)
            };
            let PaymentTransition::To(to) = transition else {
                return Ok((ignored(via), detail));
            };
            tx.query(
                "updating the payment status",
                "UPDATE orders SET payment_status = $2, \
                   paid_at = CASE WHEN $2 = 'paid' THEN now() ELSE paid_at END, \
                   refunded_at = CASE WHEN $2 = 'refunded' THEN now() ELSE refunded_at END \
                 WHERE id = $1",
                &[(&order.id.as_uuid(), Type::UUID), (&to.as_str(), Type::TEXT)],
            )
            .await?;
            if stray {
                // The money came through this intent: refunds and disputes will name it.
                tx.query(
                    "recording the paying intent",
                    "UPDATE orders SET payment_intent_id = $2 WHERE id = $1",
                    &[(&order.id.as_uuid(), Type::UUID), (&event.intent_id, Type::TEXT)],
                )
                .await?;
            }
            let change = StatusTransition::Payment { from: Some(order.payment_status), to };
            let notes = match &detail {
                Some(d) => format!("{note}; {d}"),
                None => note,
            };
            record_change(tx, "recording the payment change", order.id, change, None, Some(&notes)).await?;
            Ok((PaymentOutcome::Applied { order_id: order.id, from: order.payment_status, to, via }, detail))
        }
        PaymentChange::Refund { amount_refunded, full } => {
            let refunded = amount_refunded.max(order.refunded_cents);
            let to = match order.payment_status.on_event(PaymentStatus::Refunded) {
                PaymentTransition::To(to) if full => to,
                _ => order.payment_status,
            };
            if refunded == order.refunded_cents && to == order.payment_status {
                return Ok((ignored(via), detail));
            }
            tx.query(
                "recording the refund",
                "UPDATE orders SET refunded_cents = $2, payment_status = $3, \
                   refunded_at = CASE WHEN $3 = 'refunded' THEN COALESCE(refunded_at, now()) ELSE refunded_at END \
                 WHERE id = $1",
                &[(&order.id.as_uuid(), Type::UUID), (&refunded.get(), Type::INT8), (&to.as_str(), Type::TEXT)],
            )
            .await?;
            let what = if full { "refunded in full" } else { "partly refunded" };
            let notes = format!("{note}: {what}, {} of {} cents", refunded.get(), order.total_cents.get());
            let change = StatusTransition::Payment { from: Some(order.payment_status), to };
            record_change(tx, "recording the refund", order.id, change, None, Some(&notes)).await?;
            detail.get_or_insert_with(|| format!("{what}: {} cents", refunded.get()));
            Ok((PaymentOutcome::Applied { order_id: order.id, from: order.payment_status, to, via }, detail))
        }
        PaymentChange::Dispute { dispute_id, status, amount, reason } => {
            let at = OffsetDateTime::from_unix_timestamp(event.created)
                .map_err(|e| StoreError::Corrupt(format!("event created at {}: {e}", event.created)))?;
            if order.dispute.as_ref().is_some_and(|d| d.updated_at > at) {
                detail.get_or_insert_with(|| "an older dispute event than the one recorded".into());
                return Ok((ignored(via), detail));
            }
            tx.query(
                "recording the dispute",
                "UPDATE orders SET dispute_id = $2, dispute_status = $3, dispute_amount_cents = $4, \
                   dispute_reason = $5, dispute_updated_at = $6 WHERE id = $1",
                &[
                    (&order.id.as_uuid(), Type::UUID),
                    (&dispute_id, Type::TEXT),
                    (&status, Type::TEXT),
                    (&amount.get(), Type::INT8),
                    (&reason, Type::TEXT),
                    (&at, Type::TIMESTAMPTZ),
                ],
            )
            .await?;
            let notes = format!("{note}: dispute {dispute_id} {status}, {} cents", amount.get());
            let change = StatusTransition::Payment { from: Some(order.payment_status), to: order.payment_status };
            record_change(tx, "recording the dispute", order.id, change, None, Some(&notes)).await?;
            detail.get_or_insert_with(|| format!("dispute {dispute_id}: {status}"));
            let status = order.payment_status;
            Ok((PaymentOutcome::Applied { order_id: order.id, from: status, to: status, via }, detail))
        }
    }
}

/// True when `e` is a unique violation (e.g. a concurrent insert won).
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Query { source, .. } if source.code() == Some(&SqlState::UNIQUE_VIOLATION))
}
