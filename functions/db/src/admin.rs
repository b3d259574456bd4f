//! Catalog writes for staff. Columns are named in the SQL here, never taken from request
//! keys (the old system's admin update used request keys as column names): a patch is a
//! fixed struct whose absent fields keep their value.

use domain::{NewProduct, Product, ProductId, ProductPatch, ProductStatus, Slug, Variant, VariantId, VariantPatch};
use tokio_postgres::types::Type;

use crate::catalog::{PRODUCT_COLUMNS, VARIANT_COLUMNS};
use crate::orders::is_unique_violation;
use crate::pool::{Database, StoreError};
use crate::row::{self, RowExt};

/// How a catalog write ended.
#[derive(Debug)]
pub enum ProductWrite {
    Done(Product),
    NotFound,
    /// Slug or a SKU already taken.
    Conflict,
}

/// How a variant write ended.
#[derive(Debug)]
pub enum VariantWrite {
    /// The variant as stored now, and its product's slug (whose page shows it).
    Done {
        variant: Variant,
        product_slug: Slug,
    },
    NotFound,
}

#[derive(Clone)]
pub struct CatalogAdmin {
    db: Database,
}

impl CatalogAdmin {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Creates a product and its variants in one transaction.
    pub async fn create_product(&self, p: &NewProduct) -> Result<ProductWrite, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let images = serde_json::to_value(&p.images).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!(
            "INSERT INTO products (slug, title, description, images, materials, weight_grams, country_of_origin, status, sort_order) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {PRODUCT_COLUMNS}"
        );
        let inserted = tx
            .query(
                "creating a product",
                &sql,
                &[
                    (&p.slug.as_str(), Type::TEXT),
                    (&p.title, Type::TEXT),
                    (&p.description, Type::TEXT),
                    (&images, Type::JSONB),
                    (&p.materials, Type::TEXT),
                    (&p.weight_grams, Type::INT4),
                    (&p.country_of_origin.as_ref().map(|c| c.as_str()), Type::TEXT),
                    (&p.status.as_str(), Type::TEXT),
                    (&p.sort_order, Type::INT4),
                ],
            )
            .await;
        let rows = match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(ProductWrite::Conflict),
            other => other?,
        };
        let mut product: Product = row::one(&rows, "creating a product")?;
        let product_id = product.id.as_uuid();
        for (i, v) in p.variants.iter().enumerate() {
            let sort = i32::try_from(i).unwrap_or(i32::MAX);
            let (base_cost, base_price) = (v.base_cost.get(), v.base_price.get());
            let image_url = v.image_url.as_ref().map(|u| u.as_str());
            let sql = format!(
                "INSERT INTO variants AS v (product_id, color, size, sku, base_cost_cents, base_price_cents, stock_level, image_url, sort_order) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {VARIANT_COLUMNS}"
            );
            let inserted = tx
                .query(
                    "creating a variant",
                    &sql,
                    &[
                        (&product_id, Type::UUID),
                        (&v.color, Type::TEXT),
                        (&v.size, Type::TEXT),
                        (&v.sku, Type::TEXT),
                        (&base_cost, Type::INT8),
                        (&base_price, Type::INT8),
                        (&v.stock_level, Type::INT4),
                        (&image_url, Type::TEXT),
                        (&sort, Type::INT4),
                    ],
                )
                .await;
            let rows = match inserted {
                Err(e) if is_unique_violation(&e) => return Ok(ProductWrite::Conflict),
                other => other?,
            };
            if let Some(variant) = row::first::<Variant>(&rows)? {
                product.variants.push(variant);
            }
        }
        tx.commit().await?;
        Ok(ProductWrite::Done(product))
    }

    /// Applies a whitelisted patch.
    pub async fn update_product(&self, id: ProductId, patch: &ProductPatch) -> Result<ProductWrite, StoreError> {
        let conn = self.db.primary.conn().await?;
        let images = patch
            .images
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let status = patch.status.map(ProductStatus::as_str);
        let sql = format!(
            "UPDATE products SET title = COALESCE($2, title), description = COALESCE($3, description), \
               images = COALESCE($4, images), materials = COALESCE($5, materials), \
               weight_grams = COALESCE($6, weight_grams), country_of_origin = COALESCE($7, country_of_origin), \
               status = COALESCE($8, status), sort_order = COALESCE($9, sort_order) \
             WHERE id = $1 RETURNING {PRODUCT_COLUMNS}"
        );
        let rows = conn
            .query(
                "updating a product",
                &sql,
                &[
                    (&id.as_uuid(), Type::UUID),
                    (&patch.title, Type::TEXT),
                    (&patch.description, Type::TEXT),
                    (&images, Type::JSONB),
                    (&patch.materials, Type::TEXT),
                    (&patch.weight_grams, Type::INT4),
                    (&patch.country_of_origin.as_ref().map(|c| c.as_str()), Type::TEXT),
                    (&status, Type::TEXT),
                    (&patch.sort_order, Type::INT4),
                ],
            )
            .await?;
        match row::first::<Product>(&rows)? {
            None => Ok(ProductWrite::NotFound),
            Some(product) => Ok(ProductWrite::Done(self.with_variants(product).await?)),
        }
    }

    /// Archives instead of deleting: old orders and designs keep their references.
    pub async fn archive_product(&self, id: ProductId) -> Result<ProductWrite, StoreError> {
        self.update_product(id, &ProductPatch::archive()).await
    }

    async fn with_variants(&self, mut product: Product) -> Result<Product, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.product_id = $1 ORDER BY v.sort_order, v.color, v.size"
        );
        let rows = conn.query("listing a product's variants", &sql, &[(&product.id.as_uuid(), Type::UUID)]).await?;
        product.variants = row::all(&rows)?;
        Ok(product)
    }

    /// Applies a variant patch (a price change, typically) in one statement.
    pub async fn update_variant(&self, id: VariantId, patch: &VariantPatch) -> Result<VariantWrite, StoreError> {
        let conn = self.db.primary.conn().await?;
        let (price, cost) = (patch.base_price.map(|c| c.get()), patch.base_cost.map(|c| c.get()));
        let sql = format!(
            "UPDATE variants AS v SET base_price_cents = COALESCE($2, v.base_price_cents), \
               base_cost_cents = COALESCE($3, v.base_cost_cents), stock_level = COALESCE($4, v.stock_level) \
             FROM products p WHERE v.id = $1 AND p.id = v.product_id \
             RETURNING {VARIANT_COLUMNS}, p.slug AS product_slug"
        );
        let rows = conn
            .query(
                "updating a variant",
                &sql,
                &[
                    (&id.as_uuid(), Type::UUID),
                    (&price, Type::INT8),
                    (&cost, Type::INT8),
                    (&patch.stock_level, Type::INT4),
                ],
            )
            .await?;
        let Some(updated) = rows.first() else { return Ok(VariantWrite::NotFound) };
        let variant = <Variant as row::FromRow>::from_row(updated)?;
        let slug: &str = updated.column("product_slug")?;
        let product_slug =
            Slug::parse(slug).map_err(|e| crate::row::corrupt_column("product_slug", format!("{slug:?}: {e}")))?;
        Ok(VariantWrite::Done { variant, product_slug })
    }

    /// The slug of a product (for purging its page), whatever its status.
    pub async fn slug_of(&self, id: ProductId) -> Result<Option<String>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query("finding a slug", "SELECT slug FROM products WHERE id = $1", &[(&id.as_uuid(), Type::UUID)])
            .await?;
        rows.first().map(|r| r.column("slug")).transpose()
    }
}
