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
use db::orders::{Customer, Order, OrderItem, StatusChange};
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
