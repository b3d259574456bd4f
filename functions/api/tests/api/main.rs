//! The API over real HTTP and a real Postgres, one database per test. Needs
//! TEST_DATABASE_URL (`make test` sets it). Compiled as one binary (zero2prod's layout).

mod admin;
mod auth;
mod catalog;
mod catalog_versions;
mod designs;
mod errors;
mod health;
mod helpers;
mod lambda;
mod orders;
mod quote;
mod startup;
mod uploads;
mod webhooks;
