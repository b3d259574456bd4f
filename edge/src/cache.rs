//! Edge caching (the seed's layer 3): which requests may be answered from the cache, which
//! origin responses may be stored and for how long, normalised keys, and what a stored
//! entry's age means (fresh, stale-while-revalidate, expired).
//!
//! Pure: no I/O, no clock (the time is a parameter). Storage is a [`crate::EdgeCache`].

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, RANGE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};

/// RFC 9213's `CDN-Cache-Control`: a lifetime meant for CDNs (us) only. When an origin sends
/// it, it alone decides whether and how long the edge stores the response, and the edge
/// strips it before answering, so browsers and caches further down follow `Cache-Control`.
/// The API uses it to keep catalog pages an hour here (purged on every catalog write) while
/// browsers keep them seconds.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Query parameters that only track campaigns and never change a response: dropped from
/// cache keys (and from the request the origin sees) so they do not split the cache.
const TRACKING_PARAMS: &[&str] = &[
    "gclid",
    "gbraid",
    "wbraid",
    "dclid",
    "fbclid",
    "msclkid",
    "yclid",
    "twclid",
    "ttclid",
    "igshid",
    "li_fat_id",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
];

/// Longest freshness or stale window honoured, whatever the origin says.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A normalised cache key: the path, then the query with tracking parameters dropped and
/// the remaining parameters sorted by name (a stable sort: repeated names keep their
/// order, which can matter to the origin). The host is not part of the key: one site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn from_uri(uri: &Uri) -> Self {
        let path = if uri.path().is_empty() { "/" } else { uri.path() };
        match uri.query().map(normalise_query) {
            Some(query) if !query.is_empty() => Self(format!("{path}?{query}")),
            _ => Self(path.to_owned()),
        }
    }

    /// Parses a key as the purge endpoint receives it (`/api/products?b=2&a=1`) and
    /// normalises it the same way requests are. `None` unless it is an origin-form path.
    pub fn parse(raw: &str) -> Option<Self> {
        if !raw.starts_with('/') || raw.len() > 2048 {
            return None;
        }
        let uri: Uri = raw.parse().ok()?;
        Some(Self::from_uri(&uri))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_tracking(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("utm_") || lower.starts_with("utm%5f") || TRACKING_PARAMS.contains(&lower.as_str())
}

/// Drops empty pairs and tracking parameters, sorts the rest by name (stable).
pub fn normalise_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !is_tracking(pair.split_once('=').map_or(*pair, |(name, _)| name)))
        .collect();
    pairs.sort_by(|a, b| {
        let name = |p: &&str| p.split_once('=').map_or(*p, |(n, _)| n).to_owned();
        name(a).cmp(&name(b))
    });
    pairs.join("&")
}

/// The request URI the origin sees for a cacheable request: the normalised key, so what is
/// stored under a key is exactly what the origin answered for it.
pub fn normalised_uri(key: &CacheKey) -> Uri {
    // A key is built from a valid URI and only loses query pairs, so it parses again.
    key.as_str().parse().unwrap_or_else(|_| Uri::from_static("/"))
}

/// Why a request is not answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Not GET or HEAD.
    Method,
    /// Outside the cached route prefixes.
    Route,
    /// `Authorization`, or a cookie other than the edge's own affinity cookie.
    Credentials,
    /// Range requests go to the origin as they are.
    Range,
}

/// Decides whether a request may be served from (and fill) the cache.
///
/// `cached_prefixes` are path prefixes (`/api/products`); `ignored_cookie` is the edge's
/// affinity cookie, which identifies a region, not a person.
pub fn request_key(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    cached_prefixes: &[String],
    ignored_cookie: Option<&str>,
) -> Result<CacheKey, Bypass> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Bypass::Method);
    }
    if !cached_prefixes.iter().any(|prefix| path_has_prefix(uri.path(), prefix)) {
        return Err(Bypass::Route);
    }
    if has_credentials(headers, ignored_cookie) {
        return Err(Bypass::Credentials);
    }
    if headers.contains_key(RANGE) {
        return Err(Bypass::Range);
    }
    Ok(CacheKey::from_uri(uri))
}

/// `/api/products` matches `/api/products`, `/api/products/x` and `/api/products?q`, not
/// `/api/productsx`.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `Authorization`, or any cookie but `ignored_cookie`, makes a request personal.
pub fn has_credentials(headers: &HeaderMap, ignored_cookie: Option<&str>) -> bool {
    if headers.contains_key(AUTHORIZATION) {
        return true;
    }
    headers.get_all(COOKIE).iter().any(|value| {
        let Ok(value) = value.to_str() else { return true };
        value
            .split(';')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .any(|c| Some(c.split_once('=').map_or(c, |(name, _)| name).trim()) != ignored_cookie)
    })
}

/// The parts of `Cache-Control` the edge acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub max_age: Option<Duration>,
    pub s_maxage: Option<Duration>,
    pub stale_while_revalidate: Option<Duration>,
}

impl CacheControl {
    /// Parses every `Cache-Control` header; unknown directives are ignored, a malformed
    /// number makes its directive absent (so the response is not cached on a guess).
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL)
    }

    /// [`Self::parse`] of another field with the same syntax (`CDN-Cache-Control`).
    pub fn parse_field(headers: &HeaderMap, field: &HeaderName) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(field) {
            let Ok(value) = value.to_str() else {
                cc.no_store = true;
                continue;
            };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds =
                    || arg.and_then(|a| a.parse::<u64>().ok()).map(|s| Duration::from_secs(s).min(MAX_LIFETIME));
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "max-age" => cc.max_age = seconds(),
                    "s-maxage" => cc.s_maxage = seconds(),
                    "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// How long a stored response is fresh, and how long after that it may be served stale
/// while one background request refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh: Duration,
    pub stale_while_revalidate: Duration,
}

/// Whether the edge may store this origin response, and for how long. The lifetime comes
/// from `CDN-Cache-Control` when the origin sent one (RFC 9213: it then replaces
/// `Cache-Control` for us), else from `Cache-Control` (`s-maxage` before `max-age`). Never:
/// without an explicit shared lifetime (no heuristics), with `Set-Cookie`, `private`,
/// `no-store`, `no-cache`, a `Vary` on anything but `Accept-Encoding`, or an uncacheable
/// status.
pub fn storable(status: StatusCode, headers: &HeaderMap) -> Option<Lifetime> {
    let status_ok = matches!(status.as_u16(), 200 | 203 | 204 | 300 | 301 | 308 | 404 | 410);
    if !status_ok || headers.contains_key(SET_COOKIE) {
        return None;
    }
    let vary_ok = headers
        .get_all(VARY)
        .iter()
        .all(|v| v.to_str().is_ok_and(|v| v.split(',').all(|f| f.trim().eq_ignore_ascii_case("accept-encoding"))));
    if !vary_ok {
        return None;
    }
    let cc = if headers.contains_key(CDN_CACHE_CONTROL) {
        CacheControl::parse_field(headers, &CDN_CACHE_CONTROL)
    } else {
        CacheControl::parse(headers)
    };
    if cc.no_store || cc.no_cache || cc.private {
        return None;
    }
    let fresh = cc.s_maxage.or(cc.max_age)?;
    let stale_while_revalidate = cc.stale_while_revalidate.unwrap_or_default();
    if fresh.is_zero() && stale_while_revalidate.is_zero() {
        return None;
    }
    Some(Lifetime { fresh, stale_while_revalidate })
}

/// A response as the cache keeps it. Hop-by-hop headers are already gone.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stored_at: SystemTime,
    pub lifetime: Lifetime,
}

/// An entry's state at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh {
        age: Duration,
    },
    /// Past its freshness but inside `stale-while-revalidate`: serve it, refresh once.
    Stale {
        age: Duration,
    },
    Expired,
}

impl CachedResponse {
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        // A clock that went backwards makes the entry brand new rather than expired.
        let age = now.duration_since(self.stored_at).unwrap_or_default();
        if age < self.lifetime.fresh {
            Freshness::Fresh { age }
        } else if age < self.lifetime.fresh.saturating_add(self.lifetime.stale_while_revalidate) {
            Freshness::Stale { age }
        } else {
            Freshness::Expired
        }
    }

    /// Total time the entry is worth keeping: fresh + stale window.
    pub fn keep_for(&self) -> Duration {
        self.lifetime.fresh.saturating_add(self.lifetime.stale_while_revalidate)
    }

    /// Bytes the entry costs in a bounded cache (body + headers, roughly).
    pub fn weight(&self) -> usize {
        self.body.len() + self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum::<usize>() + 128
    }
}

/// `X-Cache` on every response the edge sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> String {
        CacheKey::from_uri(&uri.parse().unwrap()).0
    }

    #[test]
    fn keys_sort_the_query_and_drop_tracking_parameters() {
        assert_eq!(key("/api/products?b=2&a=1"), "/api/products?a=1&b=2");
        assert_eq!(key("/api/products?utm_source=x&UTM_Medium=y&gclid=1&fbclid=2&page=2"), "/api/products?page=2");
        assert_eq!(key("/api/products?utm_source=x"), "/api/products");
        assert_eq!(key("/api/products?&&"), "/api/products");
        assert_eq!(key("/api/products?tag=b&tag=a"), "/api/products?tag=b&tag=a");
    }

    #[test]
    fn cache_control_needs_an_explicit_shared_lifetime() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CACHE_CONTROL, v.parse().unwrap());
            m
        };
        let ok = storable(StatusCode::OK, &h("public, max-age=60, stale-while-revalidate=30")).unwrap();
        assert_eq!(ok, Lifetime { fresh: Duration::from_secs(60), stale_while_revalidate: Duration::from_secs(30) });
        assert_eq!(storable(StatusCode::OK, &h("max-age=60, s-maxage=5")).unwrap().fresh, Duration::from_secs(5));
        for never in ["no-store", "private, max-age=60", "no-cache, max-age=60", "public", "max-age=x", "max-age=0"] {
            assert_eq!(storable(StatusCode::OK, &h(never)), None, "{never}");
        }
        assert_eq!(storable(StatusCode::INTERNAL_SERVER_ERROR, &h("max-age=60")), None);
    }

    #[test]
    fn cdn_cache_control_replaces_cache_control_for_the_edge() {
        let h = |cc: &str, cdn: &str| {
            let mut m = HeaderMap::new();
            m.insert(CACHE_CONTROL, cc.parse().unwrap());
            m.insert(CDN_CACHE_CONTROL, cdn.parse().unwrap());
            m
        };
        let catalog =
            storable(StatusCode::OK, &h("public, max-age=30", "public, max-age=3600, stale-while-revalidate=7200"));
        assert_eq!(
            catalog,
            Some(Lifetime { fresh: Duration::from_secs(3600), stale_while_revalidate: Duration::from_secs(7200) })
        );
        // Browsers may not store it, the edge may (RFC 9213's example); and the other way round.
        assert_eq!(storable(StatusCode::OK, &h("no-store", "max-age=60")).unwrap().fresh, Duration::from_secs(60));
        assert_eq!(storable(StatusCode::OK, &h("public, max-age=60", "no-store")), None);
        assert_eq!(storable(StatusCode::OK, &h("public, max-age=60", "max-age=x")), None, "malformed: not stored");
    }
}
