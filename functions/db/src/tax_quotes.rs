//! Stripe Tax answers kept by request fingerprint (`tax_quotes`), shared by every API
//! instance: the storefront asks for tax when the address changes and again when the order is
//! placed, and the same cart to the same address is one calculation however many instances
//! or callers ask.

use std::time::Duration;

use domain::Cents;
use tokio_postgres::types::Type;

use crate::pool::{Database, StoreError};
use crate::row::{self, FromRow, RowExt};

/// A stored answer: the calculation's id and amounts, in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxQuote {
    pub calculation_id: String,
    pub amount_total: Cents,
    pub tax_amount_exclusive: Cents,
    pub tax_amount_inclusive: Cents,
    /// When Stripe discards the calculation (Unix seconds), if it said.
    pub calculation_expires_at: Option<i64>,
}

impl FromRow for TaxQuote {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(TaxQuote {
            calculation_id: row.column("calculation_id")?,
            amount_total: Cents::new(row.column("amount_total_cents")?),
            tax_amount_exclusive: Cents::new(row.column("tax_amount_exclusive_cents")?),
            tax_amount_inclusive: Cents::new(row.column("tax_amount_inclusive_cents")?),
            calculation_expires_at: row.column("calculation_expires_at")?,
        })
    }
}

#[derive(Clone)]
pub struct TaxQuotes {
    db: Database,
}

impl TaxQuotes {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The unexpired answer for this fingerprint, if any.
    pub async fn get(&self, request_hash: &str) -> Result<Option<TaxQuote>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "reading a cached tax quote",
                "SELECT calculation_id, amount_total_cents, tax_amount_exclusive_cents, tax_amount_inclusive_cents, \
                   calculation_expires_at \
                 FROM tax_quotes WHERE request_hash = $1 AND expires_at > now()",
                &[(&request_hash, Type::TEXT)],
            )
            .await?;
        row::first(&rows)
    }

    /// Keeps `quote` for `ttl` (never past the calculation's own expiry), replacing an older
    /// answer for the same fingerprint; deletes answers that expired over an hour ago.
    pub async fn put(&self, request_hash: &str, quote: &TaxQuote, ttl: Duration) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        let ttl_secs = ttl.as_secs_f64();
        conn.query(
            "caching a tax quote",
            "WITH swept AS (DELETE FROM tax_quotes WHERE expires_at < now() - interval '1 hour') \
             INSERT INTO tax_quotes (request_hash, calculation_id, amount_total_cents, tax_amount_exclusive_cents, \
               tax_amount_inclusive_cents, calculation_expires_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, \
               LEAST(now() + make_interval(secs => $7), COALESCE(to_timestamp($6::int8), 'infinity'))) \
             ON CONFLICT (request_hash) DO UPDATE SET calculation_id = EXCLUDED.calculation_id, \
               amount_total_cents = EXCLUDED.amount_total_cents, \
               tax_amount_exclusive_cents = EXCLUDED.tax_amount_exclusive_cents, \
               tax_amount_inclusive_cents = EXCLUDED.tax_amount_inclusive_cents, \
               calculation_expires_at = EXCLUDED.calculation_expires_at, expires_at = EXCLUDED.expires_at, \
               created_at = now()",
            &[
                (&request_hash, Type::TEXT),
                (&quote.calculation_id, Type::TEXT),
                (&quote.amount_total.get(), Type::INT8),
                (&quote.tax_amount_exclusive.get(), Type::INT8),
                (&quote.tax_amount_inclusive.get(), Type::INT8),
                (&quote.calculation_expires_at, Type::INT8),
                (&ttl_secs, Type::FLOAT8),
            ],
        )
        .await?;
        Ok(())
    }
}
