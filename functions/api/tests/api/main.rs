//! The API over real HTTP and a real Postgres, one database per test. Needs
//! TEST_DATABASE_URL (`make test` sets it). Compiled as one binary (zero2prod's layout).

mod admin;
mod authorization;
mod auth;
mod catalog;
mod designs;
mod errors;
mod health;
mod helpers;
mod lambda;
mod orders;
mod production;
mod quote;
mod startup;
mod uploads;
mod webhooks;
