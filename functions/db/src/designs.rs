//! Saved designs, always scoped to their owner: every query names the user, so another
//! user's design is simply not found (a 404, never a 403 that confirms it exists).

use domain::{AssetId, AssetKind, DesignId, ProductId, UserId, VariantId};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError};
use crate::row::{self, FromRow, RowExt};

/// A saved design as stored (its owner is implied: every query names it).
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    pub id: DesignId,
    pub name: String,
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub design_data: serde_json::Value,
    pub thumbnail_url: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The fields of a design as written (already validated by the caller).
#[derive(Debug, Clone)]
pub struct DesignFields {
    pub name: String,
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub design_data: serde_json::Value,
    pub thumbnail_url: Option<String>,
}

/// Why a design's references are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceProblem {
    UnknownProduct,
    /// The variant is not one of the product's.
    VariantNotOfProduct,
    /// These artwork ids do not exist or belong to someone else.
    UnusableArtwork(Vec<AssetId>),
}

const COLUMNS: &str = "id, name, product_id, variant_id, design_data, thumbnail_url, created_at, updated_at";

impl FromRow for Design {
    /// Reads [`COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Design {
            id: DesignId::from_uuid(row.column("id")?),
            name: row.column("name")?,
            product_id: ProductId::from_uuid(row.column("product_id")?),
            variant_id: row.column::<Option<Uuid>>("variant_id")?.map(VariantId::from_uuid),
            design_data: row.column("design_data")?,
            thumbnail_url: row.column("thumbnail_url")?,
            created_at: row.column("created_at")?,
            updated_at: row.column("updated_at")?,
        })
    }
}

#[derive(Clone)]
pub struct Designs {
    db: Database,
}

impl Designs {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Checks that the product exists (and is not archived), the variant is the product's,
    /// and every artwork id is an asset owned by `user` or a public one (no owner: uploaded
    /// as a guest before sign-in, or the shop's own).
    pub async fn check_references(
        &self,
        user: UserId,
        fields: &DesignFields,
        artwork: &[AssetId],
    ) -> Result<Option<ReferenceProblem>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "checking the design's product",
                "SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND status <> 'archived') AS product_ok, \
                   $2::uuid IS NULL OR EXISTS (SELECT 1 FROM variants WHERE id = $2 AND product_id = $1) AS variant_ok",
                &[(&fields.product_id.as_uuid(), Type::UUID), (&fields.variant_id.map(|v| v.as_uuid()), Type::UUID)],
            )
            .await?;
        let row = rows.first().ok_or_else(|| StoreError::Corrupt("EXISTS returned no row".into()))?;
        if !row.column::<bool>("product_ok")? {
            return Ok(Some(ReferenceProblem::UnknownProduct));
        }
        if !row.column::<bool>("variant_ok")? {
            return Ok(Some(ReferenceProblem::VariantNotOfProduct));
        }
        let ids: Vec<Uuid> = artwork.iter().map(AssetId::as_uuid).collect();
        let kinds: Vec<&str> = AssetKind::ARTWORK.iter().map(|k| k.as_str()).collect();
        // An asset belongs to its owner, or — for a cut-out the worker made — to the owner of
        // the upload its job started from. No owner anywhere in that chain: public.
        let rows = conn
            .query(
                "checking the design's artwork",
                "SELECT a.id FROM assets a \
                   LEFT JOIN jobs j ON j.id = a.job_id \
                   LEFT JOIN assets src ON src.id = j.upload_asset_id \
                 WHERE a.id = ANY($1) AND a.kind = ANY($3) \
                   AND (COALESCE(a.owner_id, src.owner_id) IS NULL OR COALESCE(a.owner_id, src.owner_id) = $2)",
                &[(&ids, Type::UUID_ARRAY), (&user.as_uuid(), Type::UUID), (&kinds, Type::TEXT_ARRAY)],
            )
            .await?;
        let usable: Vec<Uuid> = rows.iter().map(|r| r.column("id")).collect::<Result<_, _>>()?;
        let missing: Vec<AssetId> = artwork.iter().copied().filter(|a| !usable.contains(&a.as_uuid())).collect();
        Ok((!missing.is_empty()).then_some(ReferenceProblem::UnusableArtwork(missing)))
    }

    pub async fn create(&self, user: UserId, f: &DesignFields) -> Result<Design, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "INSERT INTO saved_designs (user_id, name, product_id, variant_id, design_data, thumbnail_url) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let rows = conn
            .query(
                "saving a design",
                &sql,
                &[
                    (&user.as_uuid(), Type::UUID),
                    (&f.name, Type::TEXT),
                    (&f.product_id.as_uuid(), Type::UUID),
                    (&f.variant_id.map(|v| v.as_uuid()), Type::UUID),
                    (&f.design_data, Type::JSONB),
                    (&f.thumbnail_url, Type::TEXT),
                ],
            )
            .await?;
        row::one(&rows, "saving a design")
    }

    /// The user's designs, most recently changed first (at most `limit`).
    pub async fn list(&self, user: UserId, limit: i64) -> Result<Vec<Design>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM saved_designs WHERE user_id = $1 ORDER BY updated_at DESC, id LIMIT $2");
        let rows = conn.query("listing designs", &sql, &[(&user.as_uuid(), Type::UUID), (&limit, Type::INT8)]).await?;
        row::all(&rows)
    }

    pub async fn get(&self, user: UserId, id: DesignId) -> Result<Option<Design>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {COLUMNS} FROM saved_designs WHERE id = $1 AND user_id = $2");
        let rows =
            conn.query("finding a design", &sql, &[(&id.as_uuid(), Type::UUID), (&user.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    pub async fn update(&self, user: UserId, id: DesignId, f: &DesignFields) -> Result<Option<Design>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "UPDATE saved_designs SET name = $3, product_id = $4, variant_id = $5, design_data = $6, thumbnail_url = $7 \
             WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
        );
        let rows = conn
            .query(
                "updating a design",
                &sql,
                &[
                    (&id.as_uuid(), Type::UUID),
                    (&user.as_uuid(), Type::UUID),
                    (&f.name, Type::TEXT),
                    (&f.product_id.as_uuid(), Type::UUID),
                    (&f.variant_id.map(|v| v.as_uuid()), Type::UUID),
                    (&f.design_data, Type::JSONB),
                    (&f.thumbnail_url, Type::TEXT),
                ],
            )
            .await?;
        row::first(&rows)
    }

    /// Any user's design, for staff preparing an order (never reachable by customers).
    pub async fn get_for_staff(&self, id: DesignId) -> Result<Option<Design>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {COLUMNS} FROM saved_designs WHERE id = $1");
        let rows = conn.query("finding a design for staff", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    pub async fn delete(&self, user: UserId, id: DesignId) -> Result<bool, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "deleting a design",
                "DELETE FROM saved_designs WHERE id = $1 AND user_id = $2 RETURNING id",
                &[(&id.as_uuid(), Type::UUID), (&user.as_uuid(), Type::UUID)],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
