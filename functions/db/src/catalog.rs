//! Catalog reads: what the storefront browses and what a quote is priced from.
//!
//! These go to the read pool (a replica where configured): the catalog tolerates the
//! replica's lag, and the API caches it for longer than that anyway.

use domain::{
    BasisPoints, Cents, DecorationMethod, DecorationMethodId, DiscountKind, MethodName, PriceRule, PriceRuleId,
    PricingRules, Product, ProductId, ProductStatus, RuleScope, Slug, Variant, VariantId,
};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError};
use crate::row::{self, FromRow, RowExt, corrupt_column};

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

/// Catalog queries over the store's read pool.
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

impl Catalog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Active products in display order, each with its variants.
    pub async fn active_products(&self) -> Result<Vec<Product>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE status = 'active' ORDER BY sort_order, title");
        let rows = conn.query("listing products", &sql, &[]).await?;
        let mut products: Vec<Product> = row::all(&rows)?;

        let ids: Vec<Uuid> = products.iter().map(|p| p.id.as_uuid()).collect();
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = ANY($1) \
             ORDER BY v.product_id, v.sort_order, v.color, v.size"
        );
        let rows = conn.query("listing variants", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
        for row in &rows {
            let variant = Variant::from_row(row)?;
            if let Some(p) = products.iter_mut().find(|p| p.id == variant.product_id) {
                p.variants.push(variant);
            }
        }
        Ok(products)
    }

    /// An active product by slug, with its variants and the active decoration methods that
    /// may be used on it. Drafts and archived products are not found.
    pub async fn active_product(&self, slug: &Slug) -> Result<Option<(Product, Vec<DecorationMethod>)>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE slug = $1 AND status = 'active'");
        let rows = conn.query("finding a product", &sql, &[(&slug.as_str(), Type::TEXT)]).await?;
        let Some(mut product) = row::first::<Product>(&rows)? else {
            return Ok(None);
        };
        let id = product.id.as_uuid();

        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = $1 ORDER BY v.sort_order, v.color, v.size"
        );
        let rows = conn.query("listing a product's variants", &sql, &[(&id, Type::UUID)]).await?;
        product.variants = row::all(&rows)?;

        let sql = format!(
            "SELECT {METHOD_COLUMNS} FROM decoration_methods m \
             WHERE m.status = 'active' AND (m.applies_to_all_products OR EXISTS \
               (SELECT 1 FROM decoration_method_products dmp WHERE dmp.method_id = m.id AND dmp.product_id = $1)) \
             ORDER BY m.sort_order, m.name"
        );
        let rows = conn.query("listing a product's decoration methods", &sql, &[(&id, Type::UUID)]).await?;
        let methods = row::all::<MethodAvailability>(&rows)?.into_iter().map(|m| m.method).collect();
        Ok(Some((product, methods)))
    }

    /// A variant of any product status (pricing decides what an archived product means).
    pub async fn variant(&self, id: VariantId) -> Result<Option<VariantForSale>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!(
            "SELECT {VARIANT_COLUMNS}, {FOR_SALE_COLUMNS} FROM variants v JOIN products p ON p.id = v.product_id \
             WHERE v.id = $1"
        );
        let rows = conn.query("finding a variant", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    /// A decoration method by name, whatever its status.
    pub async fn method(&self, name: &MethodName) -> Result<Option<MethodAvailability>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {METHOD_COLUMNS} FROM decoration_methods m WHERE m.name = $1");
        let rows = conn.query("finding a decoration method", &sql, &[(&name.as_str(), Type::TEXT)]).await?;
        row::first(&rows)
    }

    /// All active discount rules.
    pub async fn active_price_rules(&self) -> Result<Vec<PriceRule>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {PRICE_RULE_COLUMNS} FROM price_rules WHERE active ORDER BY priority DESC, id");
        let rows = conn.query("listing price rules", &sql, &[]).await?;
        row::all(&rows)
    }
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
