//! Accounts: roles, e-mail addresses and the password policy, parsed at the boundary.
//!
//! Hashing and token signing are I/O-free but CPU-bound and secret-bearing, so they live in
//! the API crate; what is decided here is what a valid input *is*.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::jobs::UnknownState;

/// What an account may do. Staff roles are checked against the database on every staff
/// request, so a demotion takes effect at once rather than when a token expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Fulfillment,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Self::Customer),
            "fulfillment" => Some(Self::Fulfillment),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Fulfillment => "fulfillment",
            Self::Admin => "admin",
        }
    }

    /// Fulfilment staff and admins: they see every order.
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Fulfillment | Self::Admin)
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::parse(s).ok_or_else(|| UnknownState { what: "role", value: s.to_owned() })
    }
}

/// An e-mail address, trimmed and lower-cased: the schema's `CHECK (email = lower(email))`
/// makes the unique constraint mean "one account per address". Deliberately lenient about
/// syntax (RFC 5322 is not what mail servers accept either): one `@`, something on both
/// sides, a dot in the domain, no spaces or control characters, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a usable e-mail address")]
pub struct EmailError;

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() || email.len() > Self::MAX_LEN {
            return Err(EmailError);
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(EmailError);
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
        if local.is_empty() || domain.len() < 3 || local.chars().any(bad_char) || domain.chars().any(bad_char) {
            return Err(EmailError);
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(EmailError);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that meets the policy (OWASP ASVS 2.1): at least 10 characters, at most
/// 256 (hashing cost must stay bounded); any characters, no composition rules.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordError {
    #[error("a password needs at least {min} characters", min = NewPassword::MIN_CHARS)]
    TooShort,
    #[error("a password may have at most {max} characters", max = NewPassword::MAX_CHARS)]
    TooLong,
}

impl NewPassword {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            Err(PasswordError::TooShort)
        } else if n > Self::MAX_CHARS {
            Err(PasswordError::TooLong)
        } else {
            Ok(Self(raw))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// A display name: trimmed, 1–200 characters, no control characters. Anything else
/// (quotes, SQL metacharacters, emoji) is kept verbatim.
pub fn parse_name(raw: &str, max_chars: usize) -> Option<String> {
    let name = raw.trim();
    let n = name.chars().count();
    (n >= 1 && n <= max_chars && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        assert_eq!(Email::parse("o'brien+tees@example.co.uk").unwrap().as_str(), "o'brien+tees@example.co.uk");
    }

    #[test]
    fn unusable_emails_are_refused() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@.example.com",
            "ann@example..com",
            "ann@example.com.",
            "a\n@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError));
    }

    #[test]
    fn passwords_are_bounded_by_characters_not_bytes() {
        assert_eq!(NewPassword::parse("short".into()), Err(PasswordError::TooShort));
        assert!(NewPassword::parse("éééééééééé".into()).is_ok());
        assert_eq!(NewPassword::parse("x".repeat(257)), Err(PasswordError::TooLong));
        assert_eq!(format!("{:?}", NewPassword::parse("correct horse".into()).unwrap()), "NewPassword(***)");
    }

    #[test]
    fn roles_round_trip_and_staff_is_fulfillment_or_admin() {
        for role in [Role::Customer, Role::Fulfillment, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(!Role::Customer.is_staff() && Role::Fulfillment.is_staff() && Role::Admin.is_staff());
        assert_eq!(Role::parse("superuser"), None);
    }

    #[test]
    fn names_keep_metacharacters_but_not_control_characters() {
        assert_eq!(
            parse_name(" Robert'); DROP TABLE users;-- ", 200).as_deref(),
            Some("Robert'); DROP TABLE users;--")
        );
        assert_eq!(parse_name("Zoë 🐱", 200).as_deref(), Some("Zoë 🐱"));
        assert_eq!(parse_name("   ", 200), None);
        assert_eq!(parse_name("a\u{0}b", 200), None);
        assert_eq!(parse_name(&"x".repeat(201), 200), None);
    }
}
