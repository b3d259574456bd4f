//! Catalog reads: what the storefront browses and what a quote is priced from.
//!
//! These go to the read pool (a replica where configured): the catalog tolerates the
//! replica's lag, and the API caches it for longer than that anyway.

use domain::{
    BasisPoints, Cents, DecorationMethod, DecorationMethodId, DiscountKind, MethodName, MethodStatus, PriceRule,
    PriceRuleId, PricingRules, Product, ProductId, ProductStatus, RuleScope, Slug, Variant, VariantId,
};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError};

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

pub(crate) const PRODUCT_COLUMNS: &str =
    "id, slug, title, description, images, materials, weight_grams, country_of_origin, status";
pub(crate) const VARIANT_COLUMNS: &str =
    "v.id, v.product_id, v.color, v.size, v.sku, v.base_price_cents, v.stock_level, v.image_url";
pub(crate) const METHOD_COLUMNS: &str = "m.id, m.name, m.display_name, m.status, m.pricing_rules, m.file_requirements, \
     m.applies_to_all_products, \
     ARRAY(SELECT dmp.product_id FROM decoration_method_products dmp WHERE dmp.method_id = m.id ORDER BY dmp.product_id)";

impl Catalog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Active products in display order, each with its variants.
    pub async fn active_products(&self) -> Result<Vec<Product>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE status = 'active' ORDER BY sort_order, title");
        let rows = conn.query("listing products", &sql, &[]).await?;
        let mut products = rows.iter().map(product_from_row).collect::<Result<Vec<_>, _>>()?;

        let ids: Vec<Uuid> = products.iter().map(|p| p.id.as_uuid()).collect();
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = ANY($1) \
             ORDER BY v.product_id, v.sort_order, v.color, v.size"
        );
        let rows = conn.query("listing variants", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
        for row in &rows {
            let variant = variant_from_row(row)?;
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
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut product = product_from_row(row)?;
        let id = product.id.as_uuid();

        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = $1 ORDER BY v.sort_order, v.color, v.size"
        );
        let rows = conn.query("listing a product's variants", &sql, &[(&id, Type::UUID)]).await?;
        product.variants = rows.iter().map(variant_from_row).collect::<Result<_, _>>()?;

        let sql = format!(
            "SELECT {METHOD_COLUMNS} FROM decoration_methods m \
             WHERE m.status = 'active' AND (m.applies_to_all_products OR EXISTS \
               (SELECT 1 FROM decoration_method_products dmp WHERE dmp.method_id = m.id AND dmp.product_id = $1)) \
             ORDER BY m.sort_order, m.name"
        );
        let rows = conn.query("listing a product's decoration methods", &sql, &[(&id, Type::UUID)]).await?;
        let methods = rows.iter().map(|r| method_from_row(r).map(|m| m.method)).collect::<Result<_, _>>()?;
        Ok(Some((product, methods)))
    }

    /// A variant of any product status (pricing decides what an archived product means).
    pub async fn variant(&self, id: VariantId) -> Result<Option<VariantForSale>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!(
            "SELECT {VARIANT_COLUMNS}, p.status, p.title FROM variants v JOIN products p ON p.id = v.product_id WHERE v.id = $1"
        );
        let rows = conn.query("finding a variant", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        rows.first()
            .map(|row| {
                Ok(VariantForSale {
                    variant: variant_from_row(row)?,
                    product_status: product_status(row.get(8))?,
                    product_title: row.get(9),
                })
            })
            .transpose()
    }

    /// A decoration method by name, whatever its status.
    pub async fn method(&self, name: &MethodName) -> Result<Option<MethodAvailability>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = format!("SELECT {METHOD_COLUMNS} FROM decoration_methods m WHERE m.name = $1");
        let rows = conn.query("finding a decoration method", &sql, &[(&name.as_str(), Type::TEXT)]).await?;
        rows.first().map(method_from_row).transpose()
    }

    /// All active discount rules.
    pub async fn active_price_rules(&self) -> Result<Vec<PriceRule>, StoreError> {
        let conn = self.db.read.conn().await?;
        let sql = "SELECT id, name, scope, entity_id, min_qty, max_qty, discount_type, value, priority \
                   FROM price_rules WHERE active ORDER BY priority DESC, id";
        let rows = conn.query("listing price rules", sql, &[]).await?;
        rows.iter().map(price_rule_from_row).collect()
    }
}

pub(crate) fn product_status(raw: &str) -> Result<ProductStatus, StoreError> {
    ProductStatus::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("product status {raw:?}")))
}

pub(crate) fn product_from_row(row: &Row) -> Result<Product, StoreError> {
    let slug: &str = row.get(1);
    let images: serde_json::Value = row.get(4);
    let images = serde_json::from_value::<Vec<String>>(images)
        .map_err(|e| StoreError::Corrupt(format!("images of product {slug}: {e}")))?;
    Ok(Product {
        id: ProductId::from_uuid(row.get(0)),
        slug: Slug::parse(slug).map_err(|e| StoreError::Corrupt(format!("slug {slug:?}: {e}")))?,
        title: row.get(2),
        description: row.get(3),
        images,
        materials: row.get(5),
        weight_grams: row.get(6),
        country_of_origin: row.get(7),
        status: product_status(row.get(8))?,
        variants: Vec::new(),
    })
}

pub(crate) fn variant_from_row(row: &Row) -> Result<Variant, StoreError> {
    Ok(Variant {
        id: VariantId::from_uuid(row.get(0)),
        product_id: ProductId::from_uuid(row.get(1)),
        color: row.get(2),
        size: row.get(3),
        sku: row.get(4),
        price_cents: Cents::new(row.get(5)),
        stock_level: row.get(6),
        image_url: row.get(7),
    })
}

pub(crate) fn method_from_row(row: &Row) -> Result<MethodAvailability, StoreError> {
    let name: &str = row.get(1);
    let corrupt = |what: String| StoreError::Corrupt(format!("decoration method {name:?}: {what}"));
    let status = match row.get::<_, &str>(3) {
        "active" => MethodStatus::Active,
        "inactive" => MethodStatus::Inactive,
        other => return Err(corrupt(format!("status {other:?}"))),
    };
    let rules: serde_json::Value = row.get(4);
    let method = DecorationMethod {
        id: DecorationMethodId::from_uuid(row.get(0)),
        name: MethodName::parse(name).ok_or_else(|| corrupt("name".into()))?,
        display_name: row.get(2),
        status,
        pricing: PricingRules::parse(&rules).map_err(|e| corrupt(e.to_string()))?,
        file_requirements: row.get(5),
    };
    let all: bool = row.get(6);
    let only: Vec<Uuid> = row.get(7);
    let only_products = (!all).then(|| only.into_iter().map(ProductId::from_uuid).collect());
    Ok(MethodAvailability { method, only_products })
}

pub(crate) fn price_rule_from_row(row: &Row) -> Result<PriceRule, StoreError> {
    let name: String = row.get(1);
    let corrupt = |what: &str| StoreError::Corrupt(format!("price rule {name:?}: {what}"));
    let entity: Option<Uuid> = row.get(3);
    let scope = match (row.get::<_, &str>(2), entity) {
        ("product", Some(id)) => RuleScope::Product(ProductId::from_uuid(id)),
        ("method", Some(id)) => RuleScope::Method(DecorationMethodId::from_uuid(id)),
        ("global", None) => RuleScope::Global,
        _ => return Err(corrupt("scope and entity disagree")),
    };
    let value: i64 = row.get(7);
    let kind = match row.get::<_, &str>(6) {
        "percentage" => {
            DiscountKind::Percentage { bp: BasisPoints::new(u32::try_from(value).map_err(|_| corrupt("percentage"))?) }
        }
        "fixed_amount" => DiscountKind::FixedAmount { cents: Cents::new(value) },
        _ => return Err(corrupt("discount type")),
    };
    let qty = |v: i32| u32::try_from(v).map_err(|_| corrupt("quantity range"));
    Ok(PriceRule {
        id: PriceRuleId::from_uuid(row.get(0)),
        min_qty: qty(row.get(4))?,
        max_qty: row.get::<_, Option<i32>>(5).map(qty).transpose()?,
        name,
        scope,
        kind,
        priority: row.get(8),
    })
}
