//! The API over real HTTP and a real Postgres, one database per test. Needs
//! TEST_DATABASE_URL (`make test` sets it). Compiled as one binary (zero2prod's layout).

mod catalog;
mod errors;
mod health;
mod helpers;
mod lambda;
mod quote;
mod uploads;
