//! The functions' adapters to the outside world: today Postgres (pools, migrations, catalog
//! queries); object storage and the job queue join with the cut-out work.
//!
//! **Architecture invariant:** this crate knows SQL and drivers but not HTTP. It returns
//! domain types and classified errors ([`StoreError`]) that the API maps to status codes.

pub mod accounts;
pub mod admin;
pub mod aws;
pub mod catalog;
pub mod config;
pub mod db;
pub mod designs;
pub mod jobs;
pub mod migrate;
pub mod objects;
pub mod orders;
pub mod queue;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

pub use catalog::{Catalog, MethodAvailability, VariantForSale};
pub use config::{ConfigError, DbConfig, PoolMode, PoolPlan};
pub use db::{Conn, Database, Db, Param, PoolStats, StoreError, Tx};
