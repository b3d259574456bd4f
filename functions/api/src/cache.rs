//! Layer 1 of the seed plan's caches: catalog data held in this instance's memory.
//!
//! * Rendered catalog responses (body + ETag) per route, so a hit costs a hash lookup and a
//!   reference-count increment — no query, no serialisation.
//! * The facts a quote needs (a variant, a decoration method, the active discount rules).
//!
//! Entries live for `CATALOG_CACHE_TTL_SECS` (default 60 s); a change made in SQL is
//! therefore served by every instance within one TTL. Concurrent misses on one key share a
//! single load (no stampede on the database when an entry expires under load), and
//! "not found" is cached too, in bounded caches, so random slugs and ids cannot turn into a
//! query each. Admin writes will call [`CatalogCache::invalidate_all`] on the instance that
//! made them and purge the edge (see docs/ARCHITECTURE.md, "Caches").

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use db::{Catalog, MethodAvailability, StoreError, VariantForSale};
use domain::{DecorationMethod, MethodName, PriceRule, Product, Slug, VariantId};
use moka::future::Cache;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A rendered catalog response: `None` body means "not found".
#[derive(Clone)]
pub struct Rendered {
    pub body: Option<Bytes>,
    pub etag: String,
}

impl Rendered {
    fn found(body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Self { body: Some(Bytes::from(body)), etag: format!("\"{hex}\"") }
    }

    fn not_found() -> Self {
        Self { body: None, etag: String::new() }
    }
}

#[derive(Clone, Hash, PartialEq, Eq)]
enum ResponseKey {
    ProductList,
    Product(Slug),
}

#[derive(Clone)]
pub struct CatalogCache {
    catalog: Catalog,
    responses: Cache<ResponseKey, Rendered>,
    variants: Cache<VariantId, Option<Arc<VariantForSale>>>,
    methods: Cache<MethodName, Option<Arc<MethodAvailability>>>,
    rules: Cache<(), Arc<Vec<PriceRule>>>,
}

impl CatalogCache {
    pub fn new(catalog: Catalog, ttl: Duration) -> Self {
        fn cache<K, V>(capacity: u64, ttl: Duration) -> Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder().max_capacity(capacity).time_to_live(ttl).build()
        }
        Self {
            catalog,
            responses: cache(2_000, ttl),
            variants: cache(20_000, ttl),
            methods: cache(200, ttl),
            rules: cache(1, ttl),
        }
    }

    /// `GET /api/products`, rendered.
    pub async fn product_list(&self) -> Result<Rendered, Arc<StoreError>> {
        self.responses
            .try_get_with(ResponseKey::ProductList, async {
                let products = self.catalog.active_products().await?;
                Ok(Rendered::found(render(&ProductList { products: &products })))
            })
            .await
    }

    /// `GET /api/products/{slug}`, rendered.
    pub async fn product(&self, slug: Slug) -> Result<Rendered, Arc<StoreError>> {
        self.responses
            .try_get_with(ResponseKey::Product(slug.clone()), async move {
                Ok(match self.catalog.active_product(&slug).await? {
                    Some((product, methods)) => {
                        Rendered::found(render(&ProductPage { product: &product, decoration_methods: &methods }))
                    }
                    None => Rendered::not_found(),
                })
            })
            .await
    }

    pub async fn variant(&self, id: VariantId) -> Result<Option<Arc<VariantForSale>>, Arc<StoreError>> {
        self.variants.try_get_with(id, async move { Ok(self.catalog.variant(id).await?.map(Arc::new)) }).await
    }

    pub async fn method(&self, name: &MethodName) -> Result<Option<Arc<MethodAvailability>>, Arc<StoreError>> {
        self.methods.try_get_with_by_ref(name, async { Ok(self.catalog.method(name).await?.map(Arc::new)) }).await
    }

    pub async fn price_rules(&self) -> Result<Arc<Vec<PriceRule>>, Arc<StoreError>> {
        self.rules.try_get_with((), async { Ok(Arc::new(self.catalog.active_price_rules().await?)) }).await
    }

    /// Drops everything: the next request reloads from the database.
    pub fn invalidate_all(&self) {
        self.responses.invalidate_all();
        self.variants.invalidate_all();
        self.methods.invalidate_all();
        self.rules.invalidate_all();
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
