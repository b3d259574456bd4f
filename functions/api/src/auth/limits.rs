//! How many password checks a client may make, and how long it waits after that.
//!
//! Every password check (sign-in, Supabase link, registration) is counted *before* the
//! Argon2 work, atomically, by `db::sign_in`; this module is the policy it applies. The aim
//! is to make guessing slow without giving an attacker a way to lock the real owner out:
//!
//! | counted per | free | then wait, from the latest attempt | window | against |
//! |---|---|---|---|---|
//! | e-mail + client IP | 5 | 30 s, doubling, ≤ 15 min | 15 min | one client guessing one account |
//! | client IP (any e-mail) | 20 | 30 s, doubling, ≤ 15 min | 15 min | one client spraying many accounts |
//! | e-mail (any IP) | 10 | 2 s, doubling, ≤ 5 min | 1 h | many clients guessing one account |
//! | device (instead of all three) | 5 | 30 s, doubling, ≤ 15 min | 15 min | a stolen or shared device |
//!
//! Attempts from a client without a device token are counted under the first three keys;
//! attempts with a valid device token (handed out by an earlier successful sign-in to that
//! e-mail) only under their device. So:
//!
//! * An attacker's guesses throttle the attacker's own IP and (e-mail, IP) pair, hard.
//! * Guesses for one account from many IPs slow *new* clients of that account, never for
//!   more than 5 minutes per attempt, and never the owner's devices, which keep their own
//!   budget: the one thing a distributed attacker could otherwise take away.
//! * Nothing is ever locked for good: every wait is capped and shrinks as attempts age out.
//!
//! In-flight attempts count like failures, so 500 parallel guesses get exactly the free
//! allowance of Argon2 work and 429s for the rest.

use std::time::Duration;

use db::sign_in::{Counted, Recent, Tally, Windows};

/// Free attempts, then `base · 2^(n − free)` after the latest attempt, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub free: i64,
    pub base: Duration,
    pub cap: Duration,
    pub window: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One client guessing one account.
pub const PAIR: Tier = Tier { free: 5, base: secs(30), cap: secs(15 * 60), window: secs(15 * 60) };
/// One client spraying many accounts.
pub const CLIENT_IP: Tier = Tier { free: 20, base: secs(30), cap: secs(15 * 60), window: secs(15 * 60) };
/// Many clients guessing one account: slows new clients, capped low, never touches devices.
pub const EMAIL: Tier = Tier { free: 10, base: secs(2), cap: secs(5 * 60), window: secs(60 * 60) };
/// A device that signed in to the account before.
pub const DEVICE: Tier = Tier { free: 5, base: secs(30), cap: secs(15 * 60), window: secs(15 * 60) };

/// The windows the store counts over.
pub const WINDOWS: Windows =
    Windows { pair: PAIR.window, client_ip: CLIENT_IP.window, email: EMAIL.window, device: DEVICE.window };

impl Tier {
    /// The wait after the latest attempt once `count` attempts are in the window.
    pub fn delay(&self, count: i64) -> Duration {
        if count < self.free {
            return Duration::ZERO;
        }
        let doublings = (count - self.free).min(30) as u32;
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// How much longer this key must wait at `now`.
    fn remaining(&self, tally: &Tally, now: time::OffsetDateTime) -> Duration {
        let Some(latest) = tally.latest else { return Duration::ZERO };
        let until = latest + self.delay(tally.count);
        let left = until - now;
        if left.is_positive() { left.unsigned_abs() } else { Duration::ZERO }
    }
}

/// A refused attempt: the client may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u32 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.clamp(1, u64::from(u32::MAX)) as u32
    }
}

/// Admits an attempt, or says how long to wait: the longest wait of the keys it counts under.
pub fn decide(counted: &Counted) -> Result<(), Throttled> {
    let now = counted.now;
    let wait = match &counted.recent {
        Recent::Untrusted { pair, client_ip, email } => {
            PAIR.remaining(pair, now).max(CLIENT_IP.remaining(client_ip, now)).max(EMAIL.remaining(email, now))
        }
        Recent::Device { device } => DEVICE.remaining(device, now),
    };
    if wait.is_zero() { Ok(()) } else { Err(Throttled { retry_after: wait }) }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn at(now: OffsetDateTime, count: i64, ago: u64) -> Tally {
        Tally { count, latest: Some(now - secs(ago)) }
    }

    fn untrusted(pair: Tally, client_ip: Tally, email: Tally) -> Counted {
        Counted { now: OffsetDateTime::UNIX_EPOCH + secs(10_000), recent: Recent::Untrusted { pair, client_ip, email } }
    }

    #[test]
    fn back_off_is_free_then_doubles_up_to_its_cap() {
        assert_eq!(PAIR.delay(0), Duration::ZERO);
        assert_eq!(PAIR.delay(4), Duration::ZERO);
        assert_eq!(PAIR.delay(5), secs(30));
        assert_eq!(PAIR.delay(6), secs(60));
        assert_eq!(PAIR.delay(8), secs(240));
        assert_eq!(PAIR.delay(10), secs(900), "capped");
        assert_eq!(PAIR.delay(i64::MAX), secs(900), "no overflow");
        assert_eq!(EMAIL.delay(10), secs(2));
        assert_eq!(EMAIL.delay(1_000), secs(300), "many clients only ever slow a new client by minutes");
    }

    #[test]
    fn the_longest_wait_of_any_key_applies() {
        let now = OffsetDateTime::UNIX_EPOCH + secs(10_000);
        let none = Tally::default();
        assert_eq!(decide(&untrusted(at(now, 4, 0), at(now, 19, 0), at(now, 9, 0))), Ok(()));
        // Fifth failure of this pair 10 s ago: 20 s left.
        assert_eq!(decide(&untrusted(at(now, 5, 10), none, none)), Err(Throttled { retry_after: secs(20) }));
        // The IP is over its allowance too, with a longer wait.
        assert_eq!(decide(&untrusted(at(now, 5, 10), at(now, 22, 0), none)), Err(Throttled { retry_after: secs(120) }));
        // The back-off has passed: admitted again.
        assert_eq!(decide(&untrusted(at(now, 6, 61), none, none)), Ok(()));
        // Many clients on one e-mail.
        assert_eq!(decide(&untrusted(none, none, at(now, 12, 1))), Err(Throttled { retry_after: secs(7) }));
    }

    #[test]
    fn a_device_is_judged_by_its_own_attempts_only() {
        let now = OffsetDateTime::UNIX_EPOCH + secs(10_000);
        let device = |t| Counted { now, recent: Recent::Device { device: t } };
        assert_eq!(decide(&device(at(now, 4, 0))), Ok(()));
        assert_eq!(decide(&device(at(now, 5, 0))), Err(Throttled { retry_after: secs(30) }));
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(Throttled { retry_after: Duration::from_millis(1) }.retry_after_secs(), 1);
        assert_eq!(Throttled { retry_after: Duration::from_millis(20_001) }.retry_after_secs(), 21);
    }

    #[test]
    fn windows_fit_in_the_retention() {
        for w in [WINDOWS.pair, WINDOWS.client_ip, WINDOWS.email, WINDOWS.device] {
            assert!(w <= db::sign_in::RETENTION);
        }
    }
}
