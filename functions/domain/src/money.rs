//! Money in integer cents and ratios in basis points: the old system's floats and
//! DECIMAL(10,2) arithmetic produced off-by-a-cent totals; integers cannot.

use serde::{Deserialize, Serialize};

/// An amount of money in the smallest currency unit (US cents). Signed so that
/// intermediate differences are representable; every amount the shop charges is checked
/// to be non-negative where it is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(i64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Self {
        Self(cents)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    pub fn checked_sub(self, other: Cents) -> Option<Cents> {
        self.0.checked_sub(other.0).map(Cents)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Cents> {
        self.0.checked_mul(factor).map(Cents)
    }

    /// `self × bp / 10 000`, rounded half away from zero to the cent: the one rounding rule
    /// used for every multiplier and percentage in a quote.
    pub fn checked_apply_bp(self, bp: BasisPoints) -> Option<Cents> {
        let product = i128::from(self.0) * i128::from(bp.get());
        let half = if product >= 0 { 5_000 } else { -5_000 };
        let rounded = (product + half) / 10_000;
        i64::try_from(rounded).ok().map(Cents)
    }
}

impl std::fmt::Display for Cents {
    /// Formats as dollars for humans (`$12.99`); APIs carry the integer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:02}", abs / 100, abs % 100)
    }
}

/// A ratio in hundredths of a percent: 10 000 = ×1.0, 1 500 = 15 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BasisPoints(u32);

impl BasisPoints {
    pub const ONE: BasisPoints = BasisPoints(10_000);

    pub const fn new(bp: u32) -> Self {
        Self(bp)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applying_basis_points_rounds_half_away_from_zero() {
        // 1299 × 0.85 = 1104.15 → 1104
        assert_eq!(Cents::new(1299).checked_apply_bp(BasisPoints::new(8500)), Some(Cents::new(1104)));
        // 5 × 0.5 = 2.5 → 3
        assert_eq!(Cents::new(5).checked_apply_bp(BasisPoints::new(5000)), Some(Cents::new(3)));
        // 3 × 0.5 = 1.5 → 2 ; 1 × 0.5 = 0.5 → 1 ; 1 × 0.4999 → 0
        assert_eq!(Cents::new(3).checked_apply_bp(BasisPoints::new(5000)), Some(Cents::new(2)));
        assert_eq!(Cents::new(1).checked_apply_bp(BasisPoints::new(5000)), Some(Cents::new(1)));
        assert_eq!(Cents::new(1).checked_apply_bp(BasisPoints::new(4999)), Some(Cents::new(0)));
        assert_eq!(Cents::new(-5).checked_apply_bp(BasisPoints::new(5000)), Some(Cents::new(-3)));
    }

    #[test]
    fn applying_basis_points_never_overflows_silently() {
        assert_eq!(Cents::new(i64::MAX).checked_apply_bp(BasisPoints::new(20_000)), None);
        assert_eq!(Cents::new(i64::MAX).checked_apply_bp(BasisPoints::ONE), Some(Cents::new(i64::MAX)));
    }

    #[test]
    fn cents_display_as_dollars() {
        assert_eq!(Cents::new(1299).to_string(), "$12.99");
        assert_eq!(Cents::new(5).to_string(), "$0.05");
        assert_eq!(Cents::new(-250).to_string(), "-$2.50");
    }
}
