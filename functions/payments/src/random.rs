//! Randomness for the ids, secrets and retry jitter this crate makes up, all from the
//! operating system's generator. One module so that Stripe code and local code draw from the
//! same, unpredictable source: a guessable local webhook secret would let anyone forge a
//! "paid" event, and correlated jitter would make instances retry in lock-step.

/// Fills `buf` from the OS's random source. A failing OS generator is not recoverable (and
/// nothing here may fall back to a predictable one), so it panics.
fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `bytes` random bytes as lower-case hex (`2 × bytes` digits), for ids and secrets.
pub(crate) fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf);
    hex::encode(buf)
}

/// A random number in `0..=max`. The modulo bias is at most `max / 2^64`: irrelevant for
/// the jitter it is used for.
pub(crate) fn up_to(max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    let value = u64::from_le_bytes(bytes);
    match max.checked_add(1) {
        Some(range) => value % range,
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_two_digits_per_byte_and_differs_each_time() {
        let first = hex(12);
        assert_eq!(first.len(), 24);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{first}");
        assert_ne!(first, hex(12));
    }

    #[test]
    fn up_to_stays_within_its_bound() {
        assert_eq!(up_to(0), 0);
        assert!((0..1000).all(|_| up_to(3) <= 3));
        up_to(u64::MAX); // the whole range, no overflow
    }
}
