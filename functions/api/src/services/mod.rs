//! Workflows that span several stores and providers, as plain async functions returning
//! domain outcomes. They know nothing of HTTP: handlers parse input, call a service, and map
//! its outcome (errors through `crate::error`) to a response.

pub mod checkout;
pub mod media;
pub mod payment_events;
pub mod sign_in;
pub mod stripe_guard;
