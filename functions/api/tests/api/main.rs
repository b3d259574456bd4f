//! The API over real HTTP and a real Postgres, one database per test. Needs
//! TEST_DATABASE_URL (`make test` sets it). Compiled as one binary (zero2prod's layout).

mod admin;
mod auth;
mod authorization;
mod catalog;
mod catalog_versions;
mod designs;
mod errors;
mod health;
mod helpers;
mod identity_forging;
mod job_lifecycle;
mod lambda;
mod media_access;
mod orders;
mod production;
mod quote;
mod sign_in_limits;
mod startup;
mod stripe_stand_in;
mod stripe_time_travel;
mod supabase_confirmation;
mod supabase_stand_in;
mod uploads;
mod webhooks;
