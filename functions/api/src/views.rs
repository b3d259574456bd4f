//! The JSON the API shows for stored records: orders, their lines, history and customer,
//! assets and saved designs.
//!
//! Handlers never serialise the store's row structs. A row struct follows the schema; a view
//! follows the HTTP contract (docs/API.md), so adding, renaming or retyping a column changes
//! a view only when someone decides the JSON should change. Each view borrows from its row,
//! names every field the JSON shows (in the order it shows them) and leaves out the rest
//! (object keys, payment intents, idempotency data, owners).

use db::designs::Design;
use db::jobs::Asset;
use db::orders::{Customer, Dispute, Order, OrderItem, StatusChange};
use domain::{
    AssetId, AssetKind, Cents, CustomerId, DesignId, JobId, OrderId, OrderNumber, PaymentStatus, ProductId,
    ProductionStatus, UserId, VariantId,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// An order as customers and staff see it (`order` in order bodies).
#[derive(Debug, Serialize)]
pub struct OrderView<'a> {
    pub id: OrderId,
    pub order_number: &'a OrderNumber,
    pub email: &'a str,
    pub currency: &'a str,
    pub subtotal_cents: Cents,
    pub discount_cents: Cents,
    pub tax_cents: Cents,
    pub shipping_cents: Cents,
    pub total_cents: Cents,
    pub payment_status: PaymentStatus,
    /// What has gone back to the customer, partial refunds included.
    pub refunded_cents: Cents,
    /// A chargeback's newest state, or `null`.
    pub dispute: Option<DisputeView<'a>>,
    pub production_status: ProductionStatus,
    pub tracking_number: Option<&'a str>,
    pub carrier: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
    pub shipping_address: &'a Value,
    pub notes: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(o: &'a Order) -> Self {
        Self {
            id: o.id,
            order_number: &o.order_number,
            email: &o.email,
            currency: &o.currency,
            subtotal_cents: o.subtotal_cents,
            discount_cents: o.discount_cents,
            tax_cents: o.tax_cents,
            shipping_cents: o.shipping_cents,
            total_cents: o.total_cents,
            payment_status: o.payment_status,
            refunded_cents: o.refunded_cents,
            dispute: o.dispute.as_ref().map(DisputeView::from),
            production_status: o.production_status,
            tracking_number: o.tracking_number.as_deref(),
            carrier: o.carrier.as_deref(),
            shipped_at: o.shipped_at,
            shipping_address: &o.shipping_address,
            notes: o.notes.as_deref(),
            created_at: o.created_at,
        }
    }
}

/// A chargeback on an order (`order.dispute`).
#[derive(Debug, Serialize)]
pub struct DisputeView<'a> {
    /// Stripe's status word: `needs_response`, `under_review`, `won`, `lost`, …
    pub status: &'a str,
    pub amount_cents: Option<Cents>,
    pub reason: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl<'a> From<&'a Dispute> for DisputeView<'a> {
    fn from(d: &'a Dispute) -> Self {
        Self { status: &d.status, amount_cents: d.amount_cents, reason: d.reason.as_deref(), updated_at: d.updated_at }
    }
}

/// An order line (`items[]`).
#[derive(Debug, Serialize)]
pub struct OrderItemView<'a> {
    pub id: Uuid,
    pub variant_id: VariantId,
    pub sku: &'a str,
    pub product_title: &'a str,
    pub color: &'a str,
    pub size: &'a str,
    pub quantity: u32,
    pub unit_price_cents: Cents,
    pub total_price_cents: Cents,
    pub custom_spec: &'a Value,
    pub production_status: ProductionStatus,
}

impl<'a> From<&'a OrderItem> for OrderItemView<'a> {
    fn from(i: &'a OrderItem) -> Self {
        Self {
            id: i.id,
            variant_id: i.variant_id,
            sku: &i.sku,
            product_title: &i.product_title,
            color: &i.color,
            size: &i.size,
            quantity: i.quantity,
            unit_price_cents: i.unit_price_cents,
            total_price_cents: i.total_price_cents,
            custom_spec: &i.custom_spec,
            production_status: i.production_status,
        }
    }
}

/// A history row (`history[]`): which status it is about, from what, to what.
#[derive(Debug, Serialize)]
pub struct StatusChangeView<'a> {
    pub kind: &'static str,
    pub old_status: Option<&'static str>,
    pub new_status: &'static str,
    pub changed_by: Option<UserId>,
    pub notes: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl<'a> From<&'a StatusChange> for StatusChangeView<'a> {
    fn from(c: &'a StatusChange) -> Self {
        Self {
            kind: c.transition.kind(),
            old_status: c.transition.old_status(),
            new_status: c.transition.new_status(),
            changed_by: c.changed_by,
            notes: c.notes.as_deref(),
            at: c.at,
        }
    }
}

/// The customer behind an order (staff only).
#[derive(Debug, Serialize)]
pub struct CustomerView<'a> {
    pub id: CustomerId,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub user_id: Option<UserId>,
}

impl<'a> From<&'a Customer> for CustomerView<'a> {
    fn from(c: &'a Customer) -> Self {
        Self { id: c.id, email: &c.email, name: c.name.as_deref(), phone: c.phone.as_deref(), user_id: c.user_id }
    }
}

/// A stored object's record (`asset`); where it is stored is not shown, URLs are presigned.
#[derive(Debug, Serialize)]
pub struct AssetView<'a> {
    pub id: AssetId,
    pub kind: AssetKind,
    pub content_type: &'a str,
    pub byte_size: i64,
    pub content_hash: Option<&'a str>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub dpi: Option<i32>,
    pub original_name: Option<&'a str>,
    pub job_id: Option<JobId>,
}

impl<'a> From<&'a Asset> for AssetView<'a> {
    fn from(a: &'a Asset) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            content_type: &a.content_type,
            byte_size: a.byte_size,
            content_hash: a.content_hash.as_deref(),
            width: a.width,
            height: a.height,
            dpi: a.dpi,
            original_name: a.original_name.as_deref(),
            job_id: a.job_id,
        }
    }
}

/// A saved design (`design`, `designs[]`).
#[derive(Debug, Serialize)]
pub struct DesignView<'a> {
    pub id: DesignId,
    pub name: &'a str,
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub design_data: &'a Value,
    pub thumbnail_url: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl<'a> From<&'a Design> for DesignView<'a> {
    fn from(d: &'a Design) -> Self {
        Self {
            id: d.id,
            name: &d.name,
            product_id: d.product_id,
            variant_id: d.variant_id,
            design_data: &d.design_data,
            thumbnail_url: d.thumbnail_url.as_deref(),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// Views of every row in `rows`.
pub fn all<'a, R, V: From<&'a R>>(rows: &'a [R]) -> Vec<V> {
    rows.iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use db::orders::StatusTransition;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    fn order() -> Order {
        Order {
            id: OrderId::from_uuid(Uuid::nil()),
            order_number: OrderNumber::parse("ST-250102-ABCDE").unwrap(),
            customer_id: CustomerId::from_uuid(Uuid::nil()),
            user_id: Some(UserId::from_uuid(Uuid::nil())),
            email: "ada@example.com".into(),
            currency: "usd".into(),
            subtotal_cents: Cents::new(2000),
            discount_cents: Cents::new(100),
            tax_cents: Cents::new(160),
            shipping_cents: Cents::new(599),
            total_cents: Cents::new(2659),
            payment_status: PaymentStatus::Paid,
            payment_intent_id: Some("pi_123".into()),
            production_status: ProductionStatus::InProduction,
            tracking_number: None,
            carrier: None,
            shipped_at: None,
            shipping_address: json!({ "city": "Portland" }),
            notes: None,
            created_at: at(1_735_776_000),
            request_hash: Some("ab".repeat(32)),
            tax_calculation_id: Some("taxcalc_1".into()),
            refunded_cents: Cents::new(500),
            dispute: None,
        }
    }

    #[test]
    fn an_order_shows_integer_cents_and_state_names_and_hides_payment_and_idempotency_data() {
        let json = serde_json::to_value(OrderView::from(&order())).unwrap();
        assert_eq!(
            keys(&json),
            [
                "carrier",
                "created_at",
                "currency",
                "discount_cents",
                "dispute",
                "email",
                "id",
                "notes",
                "order_number",
                "payment_status",
                "production_status",
                "refunded_cents",
                "shipped_at",
                "shipping_address",
                "shipping_cents",
                "subtotal_cents",
                "tax_cents",
                "total_cents",
                "tracking_number",
            ]
        );
        assert_eq!(json["total_cents"], 2659);
        assert_eq!(json["order_number"], "ST-250102-ABCDE");
        assert_eq!((&json["payment_status"], &json["production_status"]), (&json!("paid"), &json!("in_production")));
        assert_eq!((&json["created_at"], &json["shipped_at"]), (&json!("2025-01-02T00:00:00Z"), &Value::Null));
        assert_eq!((&json["refunded_cents"], &json["dispute"]), (&json!(500), &Value::Null));
        let mut disputed = order();
        disputed.dispute = Some(Dispute {
            id: "dp_1".into(),
            status: "needs_response".into(),
            amount_cents: Some(Cents::new(2659)),
            reason: Some("fraudulent".into()),
            updated_at: at(0),
        });
        let json = serde_json::to_value(OrderView::from(&disputed)).unwrap();
        assert_eq!(
            json["dispute"],
            json!({"status": "needs_response", "amount_cents": 2659, "reason": "fraudulent",
                   "updated_at": "1970-01-01T00:00:00Z"}),
            "the dispute id stays with staff tools, like the intent"
        );
    }

    #[test]
    fn an_asset_does_not_show_where_it_is_stored() {
        let asset = Asset {
            id: AssetId::from_uuid(Uuid::nil()),
            object_key: "cutouts/abc/mask.png".into(),
            kind: AssetKind::Mask,
            content_type: "image/png".into(),
            byte_size: 7,
            content_hash: None,
            width: Some(10),
            height: Some(20),
            dpi: Some(300),
            original_name: None,
            job_id: Some(JobId::from_uuid(Uuid::nil())),
        };
        let json = serde_json::to_value(AssetView::from(&asset)).unwrap();
        assert_eq!(
            keys(&json),
            [
                "byte_size",
                "content_hash",
                "content_type",
                "dpi",
                "height",
                "id",
                "job_id",
                "kind",
                "original_name",
                "width"
            ]
        );
        assert_eq!(json["kind"], "mask");
    }

    #[test]
    fn a_history_row_shows_its_kind_and_the_stored_state_names() {
        let change = StatusChange {
            transition: StatusTransition::Production {
                from: Some(ProductionStatus::Printed),
                to: ProductionStatus::Shipped,
            },
            changed_by: None,
            notes: Some("UPS".into()),
            at: at(0),
        };
        assert_eq!(
            serde_json::to_value(StatusChangeView::from(&change)).unwrap(),
            json!({
                "kind": "production",
                "old_status": "printed",
                "new_status": "shipped",
                "changed_by": null,
                "notes": "UPS",
                "at": "1970-01-01T00:00:00Z",
            })
        );
    }
}
