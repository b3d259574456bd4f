//! Rate limits, the old system's numbers: 100 requests per 15 minutes per client on
//! `/api/`, 10 uploads per hour, 5 failed logins per 15 minutes. Token buckets keyed by
//! client address and route class; the Stripe webhook is exempt (Stripe retries from many
//! addresses and must never be refused by us).
//!
//! The bucket arithmetic lives here ([`TokenBucket`]); where buckets are kept is a
//! [`crate::RateLimitStore`]: process memory natively, a Durable Object on Cloudflare.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use http::Method;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The route classes that have their own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteClass {
    /// Every request under `/api/` (uploads and logins included).
    Api,
    /// Starting an upload (`POST /api/uploads`).
    Upload,
    /// Failed logins: checked before, charged only when the origin refuses the login.
    LoginFailure,
    /// Reading a cut-out job's status (`GET /api/jobs/{id}`). The storefront polls it every
    /// 2 s while a cut-out runs, which alone would spend the `/api/` budget (100 per 15 min)
    /// in about three minutes, so polls draw from their own, larger bucket instead.
    JobPoll,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Upload => "upload",
            Self::LoginFailure => "login",
            Self::JobPoll => "poll",
        }
    }
}

/// `limit` requests per `period`, refilled continuously.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub limit: u32,
    pub period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a rate rule (N/DURATION, e.g. 100/15m, 10/1h, 5/900s)")]
pub struct InvalidRule(pub String);

impl FromStr for Rule {
    type Err = InvalidRule;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRule(raw.chars().take(40).collect());
        let (limit, period) = raw.trim().split_once('/').ok_or_else(invalid)?;
        let limit: u32 = limit.trim().parse().map_err(|_| invalid())?;
        let period = period.trim();
        let (number, unit) = period.split_at(period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len()));
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let secs = match unit {
            "" | "s" => number,
            "m" => number.saturating_mul(60),
            "h" => number.saturating_mul(3600),
            _ => return Err(invalid()),
        };
        if limit == 0 || secs == 0 || secs > 7 * 24 * 3600 {
            return Err(invalid());
        }
        Ok(Self { limit, period: Duration::from_secs(secs) })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.limit, self.period.as_secs())
    }
}

/// The rules and the paths they apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub api: Rule,
    pub uploads: Rule,
    pub login_failures: Rule,
    pub job_polls: Rule,
    pub uploads_path: String,
    pub login_path: String,
    /// Paths never limited (the Stripe webhook).
    pub exempt_paths: Vec<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            api: Rule { limit: 100, period: Duration::from_secs(15 * 60) },
            uploads: Rule { limit: 10, period: Duration::from_secs(3600) },
            login_failures: Rule { limit: 5, period: Duration::from_secs(15 * 60) },
            // One poll every 2 s is 450 per 15 min; room for two jobs at once.
            job_polls: Rule { limit: 900, period: Duration::from_secs(15 * 60) },
            uploads_path: "/api/uploads".into(),
            login_path: "/api/auth/login".into(),
            exempt_paths: vec!["/api/webhooks/stripe".into()],
        }
    }
}

/// How a request is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Take one token from the class's bucket now.
    Take(RouteClass),
    /// Refuse if the bucket is empty, but take a token only after the response shows a
    /// failure (failed logins).
    CheckThenChargeOnFailure(RouteClass),
}

impl RateLimits {
    pub fn rule(&self, class: RouteClass) -> Rule {
        match class {
            RouteClass::Api => self.api,
            RouteClass::Upload => self.uploads,
            RouteClass::LoginFailure => self.login_failures,
            RouteClass::JobPoll => self.job_polls,
        }
    }

    /// The charges a request incurs, in order (none outside `/api/` and for exempt paths).
    pub fn charges(&self, method: &Method, path: &str) -> Vec<Charge> {
        let trimmed = path.trim_end_matches('/');
        // Preflights are answered by the edge itself and cost the visitor nothing.
        if method == Method::OPTIONS
            || !path.starts_with("/api/")
            || self.exempt_paths.iter().any(|p| trimmed == p.trim_end_matches('/'))
        {
            return Vec::new();
        }
        if (method == Method::GET || method == Method::HEAD)
            && trimmed.strip_prefix("/api/jobs/").is_some_and(|id| !id.is_empty() && !id.contains('/'))
        {
            return vec![Charge::Take(RouteClass::JobPoll)];
        }
        let mut charges = vec![Charge::Take(RouteClass::Api)];
        if method == Method::POST && trimmed == self.uploads_path.trim_end_matches('/') {
            charges.push(Charge::Take(RouteClass::Upload));
        }
        if method == Method::POST && trimmed == self.login_path.trim_end_matches('/') {
            charges.push(Charge::CheckThenChargeOnFailure(RouteClass::LoginFailure));
        }
        charges
    }
}

/// Who is being limited: the client address (an IPv6 client by its /64, which one
/// subscriber usually owns whole) and the route class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LimitKey {
    pub class: RouteClass,
    pub client: String,
}

impl LimitKey {
    pub fn new(class: RouteClass, ip: Option<IpAddr>) -> Self {
        let client = match ip {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            None => "unknown".into(),
        };
        Self { class, client }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.class.as_str(), self.client)
    }
}

/// Take a token, or only look whether one is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acquire {
    Take,
    Peek,
}

/// The outcome of asking a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

/// A token bucket: `tokens` at `updated` (milliseconds since the Unix epoch), refilling at
/// `limit / period`, capped at `limit`. Plain data, so a Durable Object can store it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenBucket {
    pub tokens: f64,
    pub updated_ms: u64,
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

impl TokenBucket {
    pub fn full(rule: Rule, now: SystemTime) -> Self {
        Self { tokens: f64::from(rule.limit), updated_ms: unix_ms(now) }
    }

    fn refill(&mut self, rule: Rule, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        let rate = f64::from(rule.limit) / rule.period.as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(rule.limit));
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Refills to `now`, then takes (or looks for) one token.
    pub fn acquire(&mut self, rule: Rule, mode: Acquire, now: SystemTime) -> Decision {
        self.refill(rule, unix_ms(now));
        if self.tokens >= 1.0 {
            if mode == Acquire::Take {
                self.tokens -= 1.0;
            }
            return Decision::Allowed { remaining: self.tokens.floor() as u32 };
        }
        let rate = f64::from(rule.limit) / rule.period.as_secs_f64();
        let wait = ((1.0 - self.tokens) / rate).ceil().max(1.0);
        Decision::Limited { retry_after: Duration::from_secs(wait as u64) }
    }

    /// Whether the bucket has refilled completely (and so may be forgotten).
    pub fn is_full(&self, rule: Rule, now: SystemTime) -> bool {
        let mut copy = *self;
        copy.refill(rule, unix_ms(now));
        copy.tokens >= f64::from(rule.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_units() {
        assert_eq!("100/15m".parse::<Rule>().unwrap(), Rule { limit: 100, period: Duration::from_secs(900) });
        assert_eq!("10/1h".parse::<Rule>().unwrap().period, Duration::from_secs(3600));
        assert_eq!("5/900".parse::<Rule>().unwrap().period, Duration::from_secs(900));
        for bad in ["", "0/1m", "1/0s", "x/1m", "1/1d", "1", "1/-1m"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_refuses_the_limit_plus_one_and_says_when_to_retry() {
        let rule = Rule { limit: 10, period: Duration::from_secs(3600) };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut bucket = TokenBucket::full(rule, t0);
        for _ in 0..10 {
            assert!(matches!(bucket.acquire(rule, Acquire::Take, t0), Decision::Allowed { .. }));
        }
        assert_eq!(
            bucket.acquire(rule, Acquire::Take, t0),
            Decision::Limited { retry_after: Duration::from_secs(360) }
        );
        let later = t0 + Duration::from_secs(360);
        assert!(matches!(bucket.acquire(rule, Acquire::Take, later), Decision::Allowed { remaining: 0 }));
    }

    #[test]
    fn the_stripe_webhook_is_exempt_and_uploads_pay_twice() {
        let limits = RateLimits::default();
        assert!(limits.charges(&Method::POST, "/api/webhooks/stripe").is_empty());
        assert!(limits.charges(&Method::GET, "/assets/logo.png").is_empty());
        assert!(limits.charges(&Method::OPTIONS, "/api/price/quote").is_empty());
        assert_eq!(
            limits.charges(&Method::POST, "/api/uploads"),
            vec![Charge::Take(RouteClass::Api), Charge::Take(RouteClass::Upload)]
        );
        assert_eq!(limits.charges(&Method::POST, "/api/uploads/1/complete"), vec![Charge::Take(RouteClass::Api)]);
    }

    #[test]
    fn job_status_polls_draw_from_their_own_bucket() {
        let limits = RateLimits::default();
        assert_eq!(limits.charges(&Method::GET, "/api/jobs/abc"), vec![Charge::Take(RouteClass::JobPoll)]);
        assert_eq!(limits.charges(&Method::HEAD, "/api/jobs/abc/"), vec![Charge::Take(RouteClass::JobPoll)]);
        // Starting a job, listing, or anything deeper is ordinary API traffic.
        assert_eq!(limits.charges(&Method::POST, "/api/jobs"), vec![Charge::Take(RouteClass::Api)]);
        assert_eq!(limits.charges(&Method::GET, "/api/jobs/"), vec![Charge::Take(RouteClass::Api)]);
        assert_eq!(limits.charges(&Method::GET, "/api/jobs/a/b"), vec![Charge::Take(RouteClass::Api)]);
        // Polling every 2 s for 15 minutes fits.
        assert!(limits.job_polls.limit >= 15 * 60 / 2);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = LimitKey::new(RouteClass::Api, Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = LimitKey::new(RouteClass::Api, Some("2001:db8:1:2:bbbb::2".parse().unwrap()));
        assert_eq!(a, b);
        assert_eq!(a.client, "2001:db8:1:2::/64");
    }
}
