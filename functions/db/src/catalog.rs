//! Catalog reads: what the storefront browses and what a quote is priced from.
//!
//! Every read says which catalog version it saw ([`Versioned`]). `catalog_version` (V8) is
//! bumped in the same transaction as every change to the catalog tables, so a snapshot that
//! holds version `v` holds every catalog change up to `v`. A read asked for "at least `v`"
//! goes to the read pool (a replica where configured) when the replica's own copy of the
//! version has reached `v`, and to the primary when the replica lags behind: a caller that
//! knows of a change never reads from before it (read-your-writes across instances).

use std::fmt;

use domain::{
    BasisPoints, Cents, DecorationMethod, DecorationMethodId, DiscountKind, MethodName, PriceRule, PriceRuleId,
    PricingRules, Product, ProductId, ProductStatus, RuleScope, Slug, Variant, VariantId,
};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError, Tx};
use crate::row::{self, FromRow, RowExt, corrupt_column};

/// The catalog's version (`catalog_version.version`): only goes up, once per statement
/// that changes a catalog table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CatalogVersion(i64);

impl CatalogVersion {
    /// Below every stored version: "any snapshot will do".
    pub const ANY: Self = Self(0);

    pub const fn new(version: i64) -> Self {
        Self(version)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for CatalogVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which server answered a catalog read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The read pool: the replica, or the primary when no replica is configured.
    ReadPool,
    /// The primary, because the replica had not reached the version asked for.
    Primary,
}

/// A catalog read and the version of the snapshot it was read in.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: CatalogVersion,
    pub from: ReadFrom,
}

/// A decoration method with the products it may be used on.
#[derive(Debug, Clone)]
pub struct MethodAvailability {
    pub method: DecorationMethod,
    /// `None`: every product. `Some(ids)`: only these.
    pub only_products: Option<Vec<ProductId>>,
}

impl MethodAvailability {
    pub fn allowed_for(&self, product: ProductId) -> bool {
        self.only_products.as_ref().is_none_or(|ids| ids.contains(&product))
    }
}

/// A variant with the facts about its product that pricing needs.
#[derive(Debug, Clone)]
pub struct VariantForSale {
    pub variant: Variant,
    pub product_status: ProductStatus,
    pub product_title: String,
}

/// Catalog queries over the store's read pool, falling back to the primary when the read
/// pool is behind the version a caller needs.
#[derive(Clone)]
pub struct Catalog {
    db: Database,
}

// Column lists for the `FromRow` impls below. Each impl reads its columns by name, so the
// order here is free; a column missing from a list is a `StoreError::Corrupt` naming it.
pub(crate) const PRODUCT_COLUMNS: &str =
    "id, slug, title, description, images, materials, weight_grams, country_of_origin, status";
pub(crate) const VARIANT_COLUMNS: &str =
    "v.id, v.product_id, v.color, v.size, v.sku, v.base_price_cents, v.stock_level, v.image_url";
/// With [`VARIANT_COLUMNS`], from `variants v JOIN products p`: a [`VariantForSale`].
pub(crate) const FOR_SALE_COLUMNS: &str = "p.status AS product_status, p.title AS product_title";
pub(crate) const METHOD_COLUMNS: &str = "m.id, m.name, m.display_name, m.status, m.pricing_rules, m.file_requirements, \
     m.applies_to_all_products, \
     ARRAY(SELECT dmp.product_id FROM decoration_method_products dmp WHERE dmp.method_id = m.id ORDER BY dmp.product_id) \
       AS only_product_ids";
pub(crate) const PRICE_RULE_COLUMNS: &str =
    "id, name, scope, entity_id, min_qty, max_qty, discount_type, value, priority";

const VERSION_SQL: &str = "SELECT version FROM catalog_version";

/// The version row as `db` sees it, in the caller's snapshot.
async fn version_in(tx: &Tx<'_>) -> Result<CatalogVersion, StoreError> {
    let rows = tx.query("reading the catalog version", VERSION_SQL, &[]).await?;
    row::one::<VersionRow>(&rows, "reading the catalog version").map(|r| r.0)
}

struct VersionRow(CatalogVersion);

impl FromRow for VersionRow {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self(CatalogVersion(row.column("version")?)))
    }
}

/// The body of every versioned read: `$read` (a future over the snapshot `$tx`) runs in one
/// `REPEATABLE READ` snapshot holding at least `$at_least` — on the read pool when its own
/// version has caught up, else on the primary, which holds every committed version. A macro
/// rather than a function taking a closure: the reads borrow the transaction, and a
/// higher-ranked async closure would make the handlers' futures lose `Send`.
macro_rules! read_at {
    ($catalog:expr, $at_least:expr, |$tx:ident| $read:expr) => {{
        let catalog: &Catalog = $catalog;
        let at_least: CatalogVersion = $at_least;
        if catalog.db.has_replica() {
            let mut conn = catalog.db.read.conn().await?;
            let snapshot = conn.snapshot().await?;
            let version = version_in(&snapshot).await?;
            if version >= at_least {
                let value = {
                    let $tx = &snapshot;
                    $read
                }
                .await?;
                snapshot.commit().await?;
                return Ok(Versioned { value, version, from: ReadFrom::ReadPool });
            }
            tracing::info!(
                replica = version.get(),
                needed = at_least.get(),
                "the replica is behind the catalog version: reading the primary"
            );
        }
        let mut conn = catalog.db.primary.conn().await?;
        let snapshot = conn.snapshot().await?;
        let version = version_in(&snapshot).await?;
        let value = {
            let $tx = &snapshot;
            $read
        }
        .await?;
        snapshot.commit().await?;
        let from = if catalog.db.has_replica() { ReadFrom::Primary } else { ReadFrom::ReadPool };
        Ok(Versioned { value, version, from })
    }};
}

impl Catalog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Whether reads may go to a replica (`DATABASE_READ_URL`).
    pub fn has_replica(&self) -> bool {
        self.db.has_replica()
    }

    /// The primary's current catalog version: the newest committed catalog change.
    pub async fn primary_version(&self) -> Result<CatalogVersion, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn.query("reading the catalog version", VERSION_SQL, &[]).await?;
        row::one::<VersionRow>(&rows, "reading the catalog version").map(|r| r.0)
    }

    /// Active products in display order, each with its variants, from the read pool.
    pub async fn active_products(&self) -> Result<Vec<Product>, StoreError> {
        Ok(self.active_products_at(CatalogVersion::ANY).await?.value)
    }

    /// Active products in display order, each with its variants, at `at_least` or newer.
    pub async fn active_products_at(&self, at_least: CatalogVersion) -> Result<Versioned<Vec<Product>>, StoreError> {
        read_at!(self, at_least, |tx| active_products_in(tx))
    }

    /// An active product by slug, with its variants and the active decoration methods that
    /// may be used on it. Drafts and archived products are not found.
    pub async fn active_product(&self, slug: &Slug) -> Result<Option<(Product, Vec<DecorationMethod>)>, StoreError> {
        Ok(self.active_product_at(slug, CatalogVersion::ANY).await?.value)
    }

    /// [`Self::active_product`] at `at_least` or newer.
    pub async fn active_product_at(
        &self,
        slug: &Slug,
        at_least: CatalogVersion,
    ) -> Result<Versioned<Option<(Product, Vec<DecorationMethod>)>>, StoreError> {
        read_at!(self, at_least, |tx| active_product_in(tx, slug))
    }

    /// A variant of any product status (pricing decides what an archived product means).
    pub async fn variant(&self, id: VariantId) -> Result<Option<VariantForSale>, StoreError> {
        Ok(self.variant_at(id, CatalogVersion::ANY).await?.value)
    }

    /// [`Self::variant`] at `at_least` or newer.
    pub async fn variant_at(
        &self,
        id: VariantId,
        at_least: CatalogVersion,
    ) -> Result<Versioned<Option<VariantForSale>>, StoreError> {
        read_at!(self, at_least, |tx| variant_in(tx, id))
    }

    /// A decoration method by name, whatever its status.
    pub async fn method(&self, name: &MethodName) -> Result<Option<MethodAvailability>, StoreError> {
        Ok(self.method_at(name, CatalogVersion::ANY).await?.value)
    }

    /// [`Self::method`] at `at_least` or newer.
    pub async fn method_at(
        &self,
        name: &MethodName,
        at_least: CatalogVersion,
    ) -> Result<Versioned<Option<MethodAvailability>>, StoreError> {
        read_at!(self, at_least, |tx| method_in(tx, name))
    }

    /// All active discount rules.
    pub async fn active_price_rules(&self) -> Result<Vec<PriceRule>, StoreError> {
        Ok(self.active_price_rules_at(CatalogVersion::ANY).await?.value)
    }

    /// [`Self::active_price_rules`] at `at_least` or newer.
    pub async fn active_price_rules_at(
        &self,
        at_least: CatalogVersion,
    ) -> Result<Versioned<Vec<PriceRule>>, StoreError> {
        read_at!(self, at_least, |tx| active_price_rules_in(tx))
    }
}

async fn active_products_in(tx: &Tx<'_>) -> Result<Vec<Product>, StoreError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE status = 'active' ORDER BY sort_order, title");
    let rows = tx.query("listing products", &sql, &[]).await?;
    let mut products: Vec<Product> = row::all(&rows)?;

    let ids: Vec<Uuid> = products.iter().map(|p| p.id.as_uuid()).collect();
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = ANY($1) \
         ORDER BY v.product_id, v.sort_order, v.color, v.size"
    );
    let rows = tx.query("listing variants", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
    for row in &rows {
        let variant = Variant::from_row(row)?;
        if let Some(p) = products.iter_mut().find(|p| p.id == variant.product_id) {
            p.variants.push(variant);
        }
    }
    Ok(products)
}

async fn active_product_in(tx: &Tx<'_>, slug: &Slug) -> Result<Option<(Product, Vec<DecorationMethod>)>, StoreError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE slug = $1 AND status = 'active'");
    let rows = tx.query("finding a product", &sql, &[(&slug.as_str(), Type::TEXT)]).await?;
    let Some(mut product) = row::first::<Product>(&rows)? else {
        return Ok(None);
    };
    let id = product.id.as_uuid();

    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = $1 ORDER BY v.sort_order, v.color, v.size"
    );
    let rows = tx.query("listing a product's variants", &sql, &[(&id, Type::UUID)]).await?;
    product.variants = row::all(&rows)?;

    let sql = format!(
        "SELECT {METHOD_COLUMNS} FROM decoration_methods m \
         WHERE m.status = 'active' AND (m.applies_to_all_products OR EXISTS \
           (SELECT 1 FROM decoration_method_products dmp WHERE dmp.method_id = m.id AND dmp.product_id = $1)) \
         ORDER BY m.sort_order, m.name"
    );
    let rows = tx.query("listing a product's decoration methods", &sql, &[(&id, Type::UUID)]).await?;
    let methods = row::all::<MethodAvailability>(&rows)?.into_iter().map(|m| m.method).collect();
    Ok(Some((product, methods)))
}

async fn variant_in(tx: &Tx<'_>, id: VariantId) -> Result<Option<VariantForSale>, StoreError> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS}, {FOR_SALE_COLUMNS} FROM variants v JOIN products p ON p.id = v.product_id \
         WHERE v.id = $1"
    );
    let rows = tx.query("finding a variant", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
    row::first(&rows)
}

async fn method_in(tx: &Tx<'_>, name: &MethodName) -> Result<Option<MethodAvailability>, StoreError> {
    let sql = format!("SELECT {METHOD_COLUMNS} FROM decoration_methods m WHERE m.name = $1");
    let rows = tx.query("finding a decoration method", &sql, &[(&name.as_str(), Type::TEXT)]).await?;
    row::first(&rows)
}

async fn active_price_rules_in(tx: &Tx<'_>) -> Result<Vec<PriceRule>, StoreError> {
    let sql = format!("SELECT {PRICE_RULE_COLUMNS} FROM price_rules WHERE active ORDER BY priority DESC, id");
    let rows = tx.query("listing price rules", &sql, &[]).await?;
    row::all(&rows)
}

impl FromRow for Product {
    /// Reads [`PRODUCT_COLUMNS`]; the variants are loaded separately.
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let slug: &str = row.column("slug")?;
        let images: serde_json::Value = row.column("images")?;
        Ok(Product {
            id: ProductId::from_uuid(row.column("id")?),
            slug: Slug::parse(slug).map_err(|e| corrupt_column("slug", format!("{slug:?}: {e}")))?,
            title: row.column("title")?,
            description: row.column("description")?,
            images: serde_json::from_value(images).map_err(|e| corrupt_column("images", format!("of {slug}: {e}")))?,
            materials: row.column("materials")?,
            weight_grams: row.column("weight_grams")?,
            country_of_origin: row.column("country_of_origin")?,
            status: row.parsed("status")?,
            variants: Vec::new(),
        })
    }
}

impl FromRow for Variant {
    /// Reads [`VARIANT_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Variant {
            id: VariantId::from_uuid(row.column("id")?),
            product_id: ProductId::from_uuid(row.column("product_id")?),
            color: row.column("color")?,
            size: row.column("size")?,
            sku: row.column("sku")?,
            price_cents: Cents::new(row.column("base_price_cents")?),
            stock_level: row.column("stock_level")?,
            image_url: row.column("image_url")?,
        })
    }
}

impl FromRow for VariantForSale {
    /// Reads [`VARIANT_FOR_SALE_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(VariantForSale {
            variant: Variant::from_row(row)?,
            product_status: row.parsed("product_status")?,
            product_title: row.column("product_title")?,
        })
    }
}

impl FromRow for MethodAvailability {
    /// Reads [`METHOD_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let name: &str = row.column("name")?;
        let rules: serde_json::Value = row.column("pricing_rules")?;
        let method = DecorationMethod {
            id: DecorationMethodId::from_uuid(row.column("id")?),
            name: MethodName::parse(name).ok_or_else(|| corrupt_column("name", format!("{name:?}")))?,
            display_name: row.column("display_name")?,
            status: row.parsed("status")?,
            pricing: PricingRules::parse(&rules)
                .map_err(|e| corrupt_column("pricing_rules", format!("of {name}: {e}")))?,
            file_requirements: row.column("file_requirements")?,
        };
        let all: bool = row.column("applies_to_all_products")?;
        let only: Vec<Uuid> = row.column("only_product_ids")?;
        let only_products = (!all).then(|| only.into_iter().map(ProductId::from_uuid).collect());
        Ok(MethodAvailability { method, only_products })
    }
}

impl FromRow for PriceRule {
    /// Reads [`PRICE_RULE_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let name: String = row.column("name")?;
        let corrupt = |column: &str, what: &str| corrupt_column(column, format!("price rule {name:?}: {what}"));
        let entity: Option<Uuid> = row.column("entity_id")?;
        let scope = match (row.column::<&str>("scope")?, entity) {
            ("product", Some(id)) => RuleScope::Product(ProductId::from_uuid(id)),
            ("method", Some(id)) => RuleScope::Method(DecorationMethodId::from_uuid(id)),
            ("global", None) => RuleScope::Global,
            _ => return Err(corrupt("scope", "scope and entity disagree")),
        };
        let value: i64 = row.column("value")?;
        let kind = match row.column::<&str>("discount_type")? {
            "percentage" => DiscountKind::Percentage {
                bp: BasisPoints::new(u32::try_from(value).map_err(|_| corrupt("value", "percentage"))?),
            },
            "fixed_amount" => DiscountKind::FixedAmount { cents: Cents::new(value) },
            _ => return Err(corrupt("discount_type", "discount type")),
        };
        let qty = |column: &str, v: i32| u32::try_from(v).map_err(|_| corrupt(column, "quantity range"));
        Ok(PriceRule {
            id: PriceRuleId::from_uuid(row.column("id")?),
            min_qty: qty("min_qty", row.column("min_qty")?)?,
            max_qty: row.column::<Option<i32>>("max_qty")?.map(|v| qty("max_qty", v)).transpose()?,
            name,
            scope,
            kind,
            priority: row.column("priority")?,
        })
    }
}
