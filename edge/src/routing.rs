//! Geo-steering and failover, the seed's Cloudflare load balancer: origin pools per region,
//! chosen from the client's country or continent, a fallback pool, passive health (a pool
//! with `failures` failures inside `window` is down for `cooldown`), and the order in which
//! pools are tried (one retry, idempotent requests only: see [`crate::Edge`]).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::Uri;
use http::uri::{Authority, Scheme};
use thiserror::Error;

use crate::geo::{ClientInfo, Continent, Country};

/// A pool's name as configuration and the affinity cookie spell it: 1–32 of `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolName(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a pool name (1-32 of a-z, 0-9, -)")]
pub struct InvalidPoolName(pub String);

impl FromStr for PoolName {
    type Err = InvalidPoolName;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if (1..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidPoolName(raw.chars().take(40).collect()))
        }
    }
}

impl PoolName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One origin server: scheme and authority only (`https://api-eu.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    authority: Authority,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not an origin (scheme://host[:port], http or https, no path)")]
pub struct InvalidOrigin(pub String);

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidOrigin(raw.chars().take(100).collect());
        let uri: Uri = raw.trim().trim_end_matches('/').parse().map_err(|_| invalid())?;
        let scheme = uri.scheme().filter(|s| **s == Scheme::HTTP || **s == Scheme::HTTPS).ok_or_else(invalid)?;
        let authority = uri.authority().ok_or_else(invalid)?;
        let path_ok = uri.path_and_query().is_none_or(|pq| pq.as_str().is_empty() || pq.as_str() == "/");
        if !path_ok || authority.as_str().contains('@') {
            return Err(invalid());
        }
        Ok(Self { scheme: scheme.clone(), authority: authority.clone() })
    }
}

impl Origin {
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The absolute URI of `path_and_query` on this origin.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// A regional pool of interchangeable origins (requests rotate over them).
#[derive(Debug)]
pub struct OriginPool {
    pub name: PoolName,
    pub origins: Vec<Origin>,
    next: AtomicUsize,
}

impl OriginPool {
    pub fn new(name: PoolName, origins: Vec<Origin>) -> Self {
        Self { name, origins, next: AtomicUsize::new(0) }
    }

    /// The next origin in rotation. Pools are built non-empty by configuration.
    pub fn pick(&self) -> &Origin {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.origins[i % self.origins.len()]
    }
}

/// Index of a pool in [`Steering::pools`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolId(pub usize);

/// Which pool serves which clients.
#[derive(Debug)]
pub struct Steering {
    pools: Vec<OriginPool>,
    by_country: HashMap<Country, PoolId>,
    by_continent: HashMap<Continent, PoolId>,
    fallback: PoolId,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SteeringError {
    #[error("no origin pools configured")]
    NoPools,
    #[error("pool {0} has no origins")]
    EmptyPool(PoolName),
    #[error("pool {0} is defined twice")]
    DuplicatePool(PoolName),
    #[error("unknown pool {0}")]
    UnknownPool(PoolName),
}

impl Steering {
    pub fn new(
        pools: Vec<OriginPool>,
        countries: Vec<(Country, PoolName)>,
        continents: Vec<(Continent, PoolName)>,
        fallback: Option<PoolName>,
    ) -> Result<Self, SteeringError> {
        if pools.is_empty() {
            return Err(SteeringError::NoPools);
        }
        for (i, pool) in pools.iter().enumerate() {
            if pool.origins.is_empty() {
                return Err(SteeringError::EmptyPool(pool.name.clone()));
            }
            if pools[..i].iter().any(|p| p.name == pool.name) {
                return Err(SteeringError::DuplicatePool(pool.name.clone()));
            }
        }
        let find = |name: &PoolName| {
            pools
                .iter()
                .position(|p| &p.name == name)
                .map(PoolId)
                .ok_or_else(|| SteeringError::UnknownPool(name.clone()))
        };
        let by_country = countries.iter().map(|(c, n)| Ok((*c, find(n)?))).collect::<Result<_, SteeringError>>()?;
        let by_continent = continents.iter().map(|(c, n)| Ok((*c, find(n)?))).collect::<Result<_, SteeringError>>()?;
        let fallback = match &fallback {
            Some(name) => find(name)?,
            None => PoolId(0),
        };
        Ok(Self { pools, by_country, by_continent, fallback })
    }

    pub fn pools(&self) -> &[OriginPool] {
        &self.pools
    }

    pub fn pool(&self, id: PoolId) -> &OriginPool {
        &self.pools[id.0]
    }

    pub fn find(&self, name: &str) -> Option<PoolId> {
        self.pools.iter().position(|p| p.name.as_str() == name).map(PoolId)
    }

    pub fn fallback(&self) -> PoolId {
        self.fallback
    }

    /// The pool for this client: a country rule, else a continent rule, else the fallback.
    pub fn preferred(&self, client: &ClientInfo) -> PoolId {
        client
            .country
            .and_then(|c| self.by_country.get(&c))
            .or_else(|| client.continent.and_then(|c| self.by_continent.get(&c)))
            .copied()
            .unwrap_or(self.fallback)
    }

    /// Pools in the order to try them: the affinity pool (if any), the preferred pool, the
    /// fallback, then the rest in configuration order; healthy ones only, unless none is
    /// healthy, in which case all of them (an edge that refuses every request helps nobody).
    pub fn candidates(
        &self,
        client: &ClientInfo,
        affinity: Option<PoolId>,
        health: &PoolHealth,
        now: SystemTime,
    ) -> Vec<PoolId> {
        let mut order: Vec<PoolId> = Vec::with_capacity(self.pools.len() + 2);
        let preferred = self.preferred(client);
        for id in affinity.into_iter().chain([preferred, self.fallback]).chain((0..self.pools.len()).map(PoolId)) {
            if !order.contains(&id) {
                order.push(id);
            }
        }
        let healthy: Vec<PoolId> = order.iter().copied().filter(|id| health.is_up(*id, now)).collect();
        if healthy.is_empty() { order } else { healthy }
    }
}

/// When a pool counts as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Failures (5xx, connect error, timeout) within `window` that mark a pool down.
    pub failures: u32,
    pub window: Duration,
    /// How long a down pool is skipped before it is tried again.
    pub cooldown: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self { failures: 3, window: Duration::from_secs(30), cooldown: Duration::from_secs(30) }
    }
}

#[derive(Debug, Default)]
struct PoolState {
    recent_failures: Vec<SystemTime>,
    down_until: Option<SystemTime>,
}

/// Passive (and, when probes run, active) health of every pool. Per process natively; per
/// isolate on Cloudflare.
#[derive(Debug)]
pub struct PoolHealth {
    policy: HealthPolicy,
    pools: Vec<Mutex<PoolState>>,
}

/// What a failure did to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    Unchanged,
    MarkedDown,
}

impl PoolHealth {
    pub fn new(policy: HealthPolicy, pools: usize) -> Self {
        Self { policy, pools: (0..pools).map(|_| Mutex::default()).collect() }
    }

    fn state(&self, id: PoolId) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding this lock cannot leave the state inconsistent: recover.
        self.pools[id.0].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Up unless marked down and still cooling down. A pool whose cool-down has passed is
    /// up again with a clean record.
    pub fn is_up(&self, id: PoolId, now: SystemTime) -> bool {
        let mut state = self.state(id);
        match state.down_until {
            Some(until) if now < until => false,
            Some(_) => {
                *state = PoolState::default();
                true
            }
            None => true,
        }
    }

    pub fn record_failure(&self, id: PoolId, now: SystemTime) -> HealthChange {
        let mut state = self.state(id);
        if state.down_until.is_some_and(|until| now < until) {
            return HealthChange::Unchanged;
        }
        let window = self.policy.window;
        state.recent_failures.retain(|t| now.duration_since(*t).map_or(true, |age| age < window));
        state.recent_failures.push(now);
        if state.recent_failures.len() >= self.policy.failures as usize {
            state.recent_failures.clear();
            state.down_until = Some(now + self.policy.cooldown);
            HealthChange::MarkedDown
        } else {
            HealthChange::Unchanged
        }
    }

    /// An active probe failed at `at`: the pool is down until `at` + the cool-down (unless
    /// that has already passed).
    pub fn mark_down(&self, id: PoolId, at: SystemTime) -> HealthChange {
        let mut state = self.state(id);
        let until = at + self.policy.cooldown;
        if state.down_until.is_some_and(|current| current >= until) {
            return HealthChange::Unchanged;
        }
        state.recent_failures.clear();
        state.down_until = Some(until);
        HealthChange::MarkedDown
    }

    /// An active probe succeeded: the pool is up now, whatever its record.
    pub fn mark_up(&self, id: PoolId) {
        *self.state(id) = PoolState::default();
    }

    pub fn snapshot(&self, now: SystemTime) -> Vec<bool> {
        (0..self.pools.len()).map(|i| self.is_up(PoolId(i), now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_authority_only() {
        assert_eq!("http://127.0.0.1:3000/".parse::<Origin>().unwrap().to_string(), "http://127.0.0.1:3000");
        for bad in ["127.0.0.1:3000", "ftp://x", "http://x/api", "http://u:p@x", "http://", ""] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn three_failures_in_the_window_mark_a_pool_down_until_the_cooldown_ends() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let health = PoolHealth::new(HealthPolicy::default(), 1);
        let id = PoolId(0);
        assert_eq!(health.record_failure(id, t0), HealthChange::Unchanged);
        // The first failure falls out of the 30 s window.
        assert_eq!(health.record_failure(id, t0 + Duration::from_secs(31)), HealthChange::Unchanged);
        assert_eq!(health.record_failure(id, t0 + Duration::from_secs(32)), HealthChange::Unchanged);
        assert!(health.is_up(id, t0 + Duration::from_secs(32)));
        assert_eq!(health.record_failure(id, t0 + Duration::from_secs(33)), HealthChange::MarkedDown);
        assert!(!health.is_up(id, t0 + Duration::from_secs(62)));
        assert!(health.is_up(id, t0 + Duration::from_secs(63)));
    }
}
