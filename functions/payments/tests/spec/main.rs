//! The payments crate's specification, as one test binary (one link, not five).
//!
//! - `stripe_client`: the Stripe API stubbed over real HTTP with wiremock.
//! - `webhooks`: signature verification, accepted and refused.
//! - `events`: typed event parsing, including hostile JSON.
//! - `fixtures`: the test-support event bodies parse back to the events they describe.
//! - `local_provider`: the `make dev` provider and its signed events.
//! - `config`: start-up validation of the environment.
//! - `properties`: arbitrary bytes and headers never panic and never verify.

mod config;
mod events;
mod fixtures;
mod local_provider;
mod properties;
mod stripe_client;
mod webhooks;
