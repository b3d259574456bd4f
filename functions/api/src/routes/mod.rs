//! Route handlers, one module per area. Each handler parses its input into domain types,
//! calls the store or the cache, and maps outcomes to responses; rules live in `domain`.

pub mod catalog;
pub mod health;
pub mod quote;
