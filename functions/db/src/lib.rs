//! Postgres: bounded pools (TLS included), the one way to connect, migrations, and the
//! repositories the functions use (catalog, accounts, orders, designs, media and jobs, payment
//! call limits and cached tax quotes).
//!
//! **Architecture invariant:** this crate knows SQL and the driver but not HTTP, object
//! storage or queues. It returns domain types and classified errors ([`StoreError`]) that
//! callers map to status codes or retries.

pub mod accounts;
pub mod admin;
pub mod catalog;
pub mod config;
pub mod connect;
pub mod designs;
pub mod jobs;
pub mod migrate;
pub mod orders;
pub mod payment_calls;
pub mod pool;
pub mod row;
pub mod sign_in;
pub mod tax_quotes;
#[cfg(feature = "test-support")]
pub mod testing;

pub use catalog::{Catalog, CatalogVersion, MethodAvailability, ReadFrom, VariantForSale, Versioned};
pub use config::{DbConfig, PoolMode, PoolPlan};
pub use connect::{Connector, Purpose};
pub use pool::{Conn, Database, Db, Param, PoolStats, StoreError, Tx};
pub use row::{FromRow, RowExt};
