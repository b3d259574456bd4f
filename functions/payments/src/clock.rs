//! Wall-clock time as Unix seconds, the unit of Stripe's `created` and `t=` fields.
//!
//! Code that must be testable at a chosen instant (webhook verification) takes a
//! `SystemTime` and converts it with [`unix_seconds`]; code that stamps something it is
//! making right now (the local provider's events and tax calculations) calls [`now_unix`].

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` in whole seconds since the Unix epoch; negative before it (a badly set clock must
/// not wrap around to a time far in the future), saturating at the ends of `i64`.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The current time in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    unix_seconds(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn seconds_count_from_the_epoch_in_both_directions() {
        assert_eq!(unix_seconds(UNIX_EPOCH), 0);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(90_500)), 90);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(now_unix() > 1_700_000_000);
    }
}
