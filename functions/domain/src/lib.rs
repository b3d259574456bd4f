//! The Stolen Tee domain: what the shop sells and how it prices it.
//!
//! This crate is the innermost layer of the workspace (see `docs/ARCHITECTURE.md`).
//! **Architecture invariant:** no I/O, no async, no clock, no randomness. Everything here is a
//! pure function of its inputs, so every rule can be tested without a database and every
//! adapter (Postgres, Lambda, the edge) can rely on the same definitions.
//!
//! Values are *parsed* into existence: a [`Slug`], a [`Quantity`] or a [`QuoteRequest`] that
//! exists has already been checked, so code further in never re-validates.

mod accounts;
mod catalog;
mod designs;
mod ids;
mod jobs;
mod media;
mod money;
mod orders;
mod pricing;
mod products;
mod quote;

pub use accounts::{Email, EmailError, NewPassword, PasswordError, Role, parse_name};
pub use catalog::{
    DecorationMethod, MethodName, MethodStatus, PlacementCharge, PricingRules, PricingRulesError, Product,
    ProductStatus, QuantityBreak, Slug, SlugError, Variant,
};
pub use designs::{DesignData, DesignError, DesignPlacement, MAX_PLACEMENTS_PER_VIEW, print_area};
pub use ids::{
    AssetId, CustomerId, DecorationMethodId, DesignId, GuestId, JobId, OrderId, PriceRuleId, ProductId, UploadId,
    UserId, VariantId,
};
pub use jobs::{AssetKind, CutoutMessage, JobStatus, UnknownState, UploadStatus};
pub use media::{
    ImageFacts, ImageFormat, ImageRules, MAX_PIXELS, MAX_SIDE, MAX_UPLOAD_BYTES, MediaError, inspect_image,
};
pub use money::{BasisPoints, Cents};
pub use orders::{
    Address, Cart, CartError, CartLine, MAX_CART_LINES, OrderNumber, OrderTotals, PaymentStatus, PaymentTransition,
    ProductionStatus, ProductionTransitionError, RawAddress, RawCart, RawCartItem, RawDecoration, SHIPPING_CENTS,
    TotalsOverflow,
};
pub use pricing::{
    Discount, DiscountKind, PriceRule, PricingContext, Quote, QuoteError, QuoteLine, QuoteLineKind, RuleScope, quote,
};
pub use products::{
    CountryCode, MAX_IMAGES, MAX_VARIANT_PRICE, MAX_VARIANTS, NewProduct, NewVariant, ProductError, ProductPatch,
    RawProduct, RawProductPatch, RawVariant, RawVariantPatch, VariantPatch, WebUrl,
};
pub use quote::{
    Location, MAX_QUANTITY, Placement, Quantity, QuantityError, QuoteRequest, QuoteRequestError, RawPlacement,
    RawQuoteRequest,
};
