//! Layer 1 of the seed plan's caches: catalog data held in this instance's memory, kept in
//! step with the catalog version in Postgres (`catalog_version`, bumped by every catalog
//! change, in SQL or through the admin API).
//!
//! * Rendered catalog responses (body + ETag) per route, so a hit costs a hash lookup and a
//!   reference-count increment — no query, no serialisation.
//! * The facts a quote needs (a variant, a decoration method, the active discount rules).
//!
//! **Versioned keys.** Every entry is keyed by the primary's catalog version this instance
//! knew when it was asked for ([`CatalogCache::known_version`]), and a load for version `v`
//! reads a snapshot at `v` or newer (the replica when it has caught up, else the primary:
//! `db::Catalog`). A request that knows of a change can therefore never be answered from
//! before it — not from an older entry, and not from a load that an older request started.
//!
//! **Checking the version.** The primary's version is read at most once per
//! `CATALOG_VERSION_CHECK_MS` (default 1 s) per instance, by one request while the others
//! wait for its answer (single flight), so a change made anywhere is served by every
//! instance within that interval (plus the check's own round trip). An admin write made
//! through this instance reads the new version at once ([`CatalogCache::catalog_changed`]).
//! If the primary does not answer, the instance keeps serving what it last knew and asks
//! again after the interval: a warm catalog survives a database outage.
//!
//! Entries still expire after `CATALOG_CACHE_TTL_SECS`, which now bounds memory rather than
//! staleness. Concurrent misses on one key share a single load (no stampede on the database
//! when an entry expires under load), and "not found" is cached too, in bounded caches, so
//! random slugs and ids cannot turn into a query each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use db::{Catalog, CatalogVersion, MethodAvailability, StoreError, VariantForSale};
use domain::{DecorationMethod, MethodName, PriceRule, Product, Slug, VariantId};
use moka::future::Cache;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A rendered catalog response: `None` body means "not found".
#[derive(Clone)]
pub struct Rendered {
    pub body: Option<Bytes>,
    pub etag: String,
    /// The catalog version of the snapshot it was rendered from.
    pub version: CatalogVersion,
}

impl Rendered {
    fn found(body: Vec<u8>, version: CatalogVersion) -> Self {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Self { body: Some(Bytes::from(body)), etag: format!("\"{hex}\""), version }
    }

    fn not_found(version: CatalogVersion) -> Self {
        Self { body: None, etag: String::new(), version }
    }
}

/// What `POST /api/price/quote` prices from, each read at (or after) one known version.
pub struct QuoteFacts {
    pub variant: Option<Arc<VariantForSale>>,
    pub method: Option<Arc<MethodAvailability>>,
    pub rules: Arc<Vec<PriceRule>>,
    /// The oldest snapshot among the three: the quote reflects every change up to it.
    pub version: CatalogVersion,
}

#[derive(Clone, Hash, PartialEq, Eq)]
enum ResponseKey {
    ProductList,
    Product(Slug),
}

/// A cached value and the version of the snapshot it was read in.
#[derive(Clone)]
struct Entry<T> {
    value: T,
    version: CatalogVersion,
}

#[derive(Clone)]
pub struct CatalogCache {
    catalog: Catalog,
    watch: Arc<VersionWatch>,
    responses: Cache<(ResponseKey, CatalogVersion), Rendered>,
    variants: Cache<(VariantId, CatalogVersion), Entry<Option<Arc<VariantForSale>>>>,
    methods: Cache<(MethodName, CatalogVersion), Entry<Option<Arc<MethodAvailability>>>>,
    rules: Cache<CatalogVersion, Entry<Arc<Vec<PriceRule>>>>,
}

impl CatalogCache {
    /// `ttl`: how long an entry may stay in memory; `check_every`: how old this instance's
    /// knowledge of the primary's catalog version may get before a request asks again.
    pub fn new(catalog: Catalog, ttl: Duration, check_every: Duration) -> Self {
        fn cache<K, V>(capacity: u64, ttl: Duration) -> Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder().max_capacity(capacity).time_to_live(ttl).build()
        }
        Self {
            catalog,
            watch: Arc::new(VersionWatch::new(check_every)),
            responses: cache(2_000, ttl),
            variants: cache(20_000, ttl),
            methods: cache(200, ttl),
            rules: cache(4, ttl),
        }
    }

    /// The primary's catalog version as this instance knows it: asked again when the last
    /// answer is older than the check interval.
    pub async fn known_version(&self) -> CatalogVersion {
        self.read_version().await.0
    }

    /// The version to read at, and — when this request just waited for a version query that
    /// failed and a miss would be loaded from that same primary (no replica) — the error to
    /// answer a miss with: waiting for the database twice would double the time to a 503.
    /// Hits are served either way.
    async fn read_version(&self) -> (CatalogVersion, Option<StoreError>) {
        let seen = self.watch.current(&self.catalog, false).await;
        if seen.advanced {
            self.drop_older_entries();
        }
        let down = seen.failed.filter(|_| !self.catalog.has_replica());
        (seen.version, down.map(|reason| StoreError::Unavailable { doing: "reading the catalog version", reason }))
    }

    /// Reads the primary's version now, whatever the interval: a catalog write through this
    /// instance has committed, and its next read must show it.
    pub async fn catalog_changed(&self) -> CatalogVersion {
        let seen = self.watch.current(&self.catalog, true).await;
        if seen.advanced {
            self.drop_older_entries();
        }
        seen.version
    }

    /// No request asks for an older version's keys any more: free their memory now rather
    /// than at their TTL, so they cannot crowd out the new version's entries.
    fn drop_older_entries(&self) {
        self.responses.invalidate_all();
        self.variants.invalidate_all();
        self.methods.invalidate_all();
        self.rules.invalidate_all();
    }

    /// `GET /api/products`, rendered.
    pub async fn product_list(&self) -> Result<Rendered, Arc<StoreError>> {
        let (at, down) = self.read_version().await;
        if let Some(e) = down {
            return self.responses.get(&(ResponseKey::ProductList, at)).await.ok_or_else(|| Arc::new(e));
        }
        self.responses
            .try_get_with((ResponseKey::ProductList, at), async {
                let read = self.catalog.active_products_at(at).await?;
                Ok(Rendered::found(render(&ProductList { products: &read.value }), read.version))
            })
            .await
    }

    /// `GET /api/products/{slug}`, rendered.
    pub async fn product(&self, slug: Slug) -> Result<Rendered, Arc<StoreError>> {
        let (at, down) = self.read_version().await;
        if let Some(e) = down {
            return self.responses.get(&(ResponseKey::Product(slug), at)).await.ok_or_else(|| Arc::new(e));
        }
        self.responses
            .try_get_with((ResponseKey::Product(slug.clone()), at), async move {
                let read = self.catalog.active_product_at(&slug, at).await?;
                Ok(match read.value {
                    Some((product, methods)) => Rendered::found(
                        render(&ProductPage { product: &product, decoration_methods: &methods }),
                        read.version,
                    ),
                    None => Rendered::not_found(read.version),
                })
            })
            .await
    }

    /// The variant, method and discount rules of a quote, all at (or after) the version this
    /// instance knows: a quote never prices from before a change the instance has seen.
    pub async fn quote_facts(&self, id: VariantId, name: &MethodName) -> Result<QuoteFacts, Arc<StoreError>> {
        let (at, down) = self.read_version().await;
        if let Some(e) = down {
            let cached = (
                self.variants.get(&(id, at)).await,
                self.methods.get(&(name.clone(), at)).await,
                self.rules.get(&at).await,
            );
            let (Some(variant), Some(method), Some(rules)) = cached else { return Err(Arc::new(e)) };
            let version = variant.version.min(method.version).min(rules.version);
            return Ok(QuoteFacts { variant: variant.value, method: method.value, rules: rules.value, version });
        }
        let variant = self.variants.try_get_with((id, at), async move {
            let read = self.catalog.variant_at(id, at).await?;
            Ok::<_, StoreError>(Entry { value: read.value.map(Arc::new), version: read.version })
        });
        let method = self.methods.try_get_with((name.clone(), at), async move {
            let read = self.catalog.method_at(name, at).await?;
            Ok::<_, StoreError>(Entry { value: read.value.map(Arc::new), version: read.version })
        });
        let rules = self.rules.try_get_with(at, async move {
            let read = self.catalog.active_price_rules_at(at).await?;
            Ok::<_, StoreError>(Entry { value: Arc::new(read.value), version: read.version })
        });
        let (variant, method, rules) = tokio::try_join!(variant, method, rules)?;
        let version = variant.version.min(method.version).min(rules.version);
        Ok(QuoteFacts { variant: variant.value, method: method.value, rules: rules.value, version })
    }

    /// Drops everything: the next request reloads from the database.
    pub fn invalidate_all(&self) {
        self.drop_older_entries();
    }
}

/// The primary's catalog version as this instance last read it, and when.
struct VersionWatch {
    every: Duration,
    known: Mutex<Known>,
    /// Held by the one request reading the version; the others wait for its answer.
    checking: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Known {
    version: CatalogVersion,
    /// When the query that answered `version` was sent (it saw every commit before then).
    /// `None`: never asked.
    asked_at: Option<Instant>,
    /// Why the last query failed, if it did (`version` is then the one before).
    failed: Option<String>,
}

/// What a request learnt from [`VersionWatch::current`].
struct Seen {
    version: CatalogVersion,
    /// The version moved on from what was known before.
    advanced: bool,
    /// The query this request waited for failed (not: an earlier one it did not wait for).
    failed: Option<String>,
}

impl VersionWatch {
    fn new(every: Duration) -> Self {
        Self {
            every,
            known: Mutex::new(Known { version: CatalogVersion::ANY, asked_at: None, failed: None }),
            checking: tokio::sync::Mutex::new(()),
        }
    }

    fn known(&self) -> Known {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Asked after the request arrived: the answer saw every commit the request could know of.
    fn asked_since(known: &Known, arrived: Instant) -> bool {
        known.asked_at.is_some_and(|asked| asked >= arrived)
    }

    /// Younger than the interval.
    fn recent(&self, known: &Known) -> bool {
        known.asked_at.is_some_and(|asked| asked.elapsed() < self.every)
    }

    /// The version, read from the primary if the last answer is too old (always, with
    /// `force`), unless another request's query sent after this one arrived answers it.
    async fn current(&self, catalog: &Catalog, force: bool) -> Seen {
        let arrived = Instant::now();
        let known = self.known();
        if !force && self.recent(&known) {
            return Seen { version: known.version, advanced: false, failed: None };
        }
        let _turn = self.checking.lock().await;
        let known = self.known();
        if Self::asked_since(&known, arrived) {
            return Seen { version: known.version, advanced: false, failed: known.failed };
        }
        if !force && self.recent(&known) {
            return Seen { version: known.version, advanced: false, failed: None };
        }
        let asked_at = Some(Instant::now());
        match catalog.primary_version().await {
            Ok(version) => {
                *self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Known { version, asked_at, failed: None };
                if version != known.version {
                    tracing::info!(from = known.version.get(), to = version.get(), "catalog version changed");
                }
                Seen { version, advanced: version > known.version, failed: None }
            }
            Err(e) => {
                // Keep serving what we know; ask again after the interval, not per request.
                tracing::warn!(error = %e, known = known.version.get(), "reading the catalog version failed");
                let failed = Some(e.to_string());
                *self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Known { version: known.version, asked_at, failed: failed.clone() };
                Seen { version: known.version, advanced: false, failed }
            }
        }
    }
}

#[derive(Serialize)]
struct ProductList<'a> {
    products: &'a [Product],
}

#[derive(Serialize)]
struct ProductPage<'a> {
    product: &'a Product,
    decoration_methods: &'a [DecorationMethod],
}

fn render<T: Serialize>(value: &T) -> Vec<u8> {
    // Our catalog types have string keys and no floats: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
