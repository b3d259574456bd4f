//! The guards in front of Stripe, against a real Postgres: call limits that hold under
//! concurrency and across pools (as across Lambda instances), and reused tax answers that
//! expire. Needs TEST_DATABASE_URL (`make test` sets it).

use std::collections::HashMap;
use std::time::Duration;

use db::payment_calls::{Admission, Bucket, PaymentCalls};
use db::tax_quotes::{TaxQuote, TaxQuotes};
use db::testing::TestDb;
use db::{Database, DbConfig};
use domain::Cents;

fn pools(url: &str) -> Database {
    let map: HashMap<String, String> =
        [("DATABASE_URL".to_owned(), url.to_owned()), ("DB_MAX_CONNECTIONS".to_owned(), "6".to_owned())].into();
    Database::new(&DbConfig::from_env(&config::Env::from_pairs(map)).unwrap()).unwrap()
}

fn bucket(key: &str, limit: u32) -> Bucket {
    Bucket { key: key.into(), limit }
}

const WINDOW: Duration = Duration::from_secs(600);

#[tokio::test]
async fn concurrent_calls_never_share_the_last_free_slot() {
    let db = TestDb::migrated().await;
    // Two pools on one database: two API instances.
    let instances = [PaymentCalls::new(pools(&db.url)), PaymentCalls::new(pools(&db.url))];
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let calls = instances[i % 2].clone();
            tokio::spawn(async move { calls.admit(&[bucket("ip:203.0.113.9", 5)], WINDOW).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for h in handles {
        match h.await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::Limited { bucket, retry_after_secs } => {
                assert_eq!(bucket, "ip:203.0.113.9");
                assert!((1..=600).contains(&retry_after_secs), "{retry_after_secs}");
            }
        }
    }
    assert_eq!(admitted, 5, "exactly the limit, however the calls interleave");
    db.drop_db().await;
}

#[tokio::test]
async fn every_bucket_of_a_call_must_have_room() {
    let db = TestDb::migrated().await;
    let calls = PaymentCalls::new(pools(&db.url));
    let order = "order:6f1c0a52-2b7e-4f7e-9d0a-3f3b8f0d9a11";
    for ip in ["ip:a", "ip:b"] {
        assert_eq!(calls.admit(&[bucket(ip, 10), bucket(order, 2)], WINDOW).await.unwrap(), Admission::Admitted);
    }
    let third = calls.admit(&[bucket("ip:c", 10), bucket(order, 2)], WINDOW).await.unwrap();
    assert!(matches!(third, Admission::Limited { ref bucket, .. } if bucket == order), "{third:?}");
    // A fresh address alone is not held back by that order, and a repeated bucket counts once.
    assert_eq!(calls.admit(&[bucket("ip:c", 10)], WINDOW).await.unwrap(), Admission::Admitted);
    assert_eq!(calls.admit(&[bucket("ip:d", 1), bucket("ip:d", 1)], WINDOW).await.unwrap(), Admission::Admitted);
    assert_eq!(calls.admit(&[], WINDOW).await.unwrap(), Admission::Admitted);

    // Old windows are swept as new calls are counted.
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO payment_call_counts (bucket, window_start, calls) VALUES ('ip:old', now() - interval '2 days', 9)",
        )
        .await
        .unwrap();
    calls.admit(&[bucket("ip:e", 10)], WINDOW).await.unwrap();
    let old: i64 =
        client.query_one("SELECT count(*) FROM payment_call_counts WHERE bucket = 'ip:old'", &[]).await.unwrap().get(0);
    assert_eq!(old, 0);
    db.drop_db().await;
}

fn quote(id: &str, expires: Option<i64>) -> TaxQuote {
    TaxQuote {
        calculation_id: id.into(),
        amount_total: Cents::new(36194),
        tax_amount_exclusive: Cents::new(2758),
        tax_amount_inclusive: Cents::ZERO,
        calculation_expires_at: expires,
    }
}

#[tokio::test]
async fn a_tax_answer_is_kept_for_its_time_and_never_past_stripes() {
    let db = TestDb::migrated().await;
    let quotes = TaxQuotes::new(pools(&db.url));
    let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    assert_eq!(quotes.get(&a).await.unwrap(), None);
    let far = 4_000_000_000;
    quotes.put(&a, &quote("taxcalc_1", Some(far)), Duration::from_secs(900)).await.unwrap();
    assert_eq!(quotes.get(&a).await.unwrap(), Some(quote("taxcalc_1", Some(far))));
    // A newer answer for the same request replaces the old one.
    quotes.put(&a, &quote("taxcalc_2", None), Duration::from_secs(900)).await.unwrap();
    assert_eq!(quotes.get(&a).await.unwrap().unwrap().calculation_id, "taxcalc_2");
    // Stripe's own expiry wins over a longer TTL; a zero TTL keeps nothing.
    quotes.put(&b, &quote("taxcalc_3", Some(1_000)), Duration::from_secs(900)).await.unwrap();
    assert_eq!(quotes.get(&b).await.unwrap(), None);
    quotes.put(&c, &quote("taxcalc_4", None), Duration::ZERO).await.unwrap();
    assert_eq!(quotes.get(&c).await.unwrap(), None);
    db.drop_db().await;
}
