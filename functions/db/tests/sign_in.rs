//! Sign-in attempts against a real Postgres: reservations are atomic, whatever arrives at
//! once. Needs TEST_DATABASE_URL (`make test` sets it).

use std::collections::HashMap;
use std::time::Duration;

use db::sign_in::{AttemptKey, Counted, Recent, SignInAttempts, Windows};
use db::testing::TestDb;
use db::{Database, DbConfig};

const WINDOWS: Windows = Windows {
    pair: Duration::from_secs(900),
    client_ip: Duration::from_secs(900),
    email: Duration::from_secs(3600),
    device: Duration::from_secs(900),
};

fn attempts(url: &str) -> SignInAttempts {
    let map: HashMap<String, String> =
        [("DATABASE_URL", url), ("DB_MAX_CONNECTIONS", "8"), ("DB_POOL_WAIT_TIMEOUT_MS", "30000")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    SignInAttempts::new(Database::new(&DbConfig::from_env(&config::Env::from_pairs(map)).unwrap()).unwrap())
}

/// Admits while fewer than `limit` attempts of this (e-mail, IP) are in the window.
fn at_most(limit: i64) -> impl Fn(&Counted) -> Result<(), ()> + Clone {
    move |counted: &Counted| match counted.recent {
        Recent::Untrusted { pair, .. } if pair.count < limit => Ok(()),
        Recent::Device { device } if device.count < limit => Ok(()),
        _ => Err(()),
    }
}

/// `n` reservations at once; returns how many were admitted.
async fn race(store: &SignInAttempts, n: usize, email: &str, ip: &str, device: Option<&str>, limit: i64) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, email, ip, device) = (store.clone(), email.to_owned(), ip.to_owned(), device.map(str::to_owned));
        let decide = at_most(limit);
        set.spawn(async move {
            let key = AttemptKey { email: &email, client_ip: &ip, device: device.as_deref() };
            store.reserve(&key, &WINDOWS, decide).await.unwrap().is_ok()
        });
    }
    set.join_all().await.into_iter().filter(|admitted| *admitted).count()
}

#[tokio::test]
async fn parallel_reservations_never_pass_the_count() {
    let db = TestDb::migrated().await;
    let store = attempts(&db.url);
    assert_eq!(race(&store, 200, "ann@example.com", "10.0.0.1", None, 5).await, 5);
    assert_eq!(race(&store, 200, "ann@example.com", "10.0.0.1", None, 5).await, 0, "the five still count");
    assert_eq!(race(&store, 100, "ann@example.com", "10.0.0.1", Some("device-1"), 3).await, 3, "a device apart");
    let rows: i64 = db.client().await.query_one("SELECT count(*) FROM login_attempts", &[]).await.unwrap().get(0);
    assert_eq!(rows, 8);
    db.drop_db().await;
}

#[tokio::test]
async fn counts_see_each_key_and_successes_stop_counting() {
    let db = TestDb::migrated().await;
    let store = attempts(&db.url);
    let key = |email, ip| AttemptKey { email, client_ip: ip, device: None };
    let admit = |_: &Counted| Ok::<(), ()>(());
    store.reserve(&key("ann@example.com", "10.0.0.1"), &WINDOWS, admit).await.unwrap().unwrap();
    store.reserve(&key("ann@example.com", "10.0.0.2"), &WINDOWS, admit).await.unwrap().unwrap();
    let mine = store.reserve(&key("bob@example.com", "10.0.0.1"), &WINDOWS, admit).await.unwrap().unwrap();
    store.succeeded(mine, None).await.unwrap();
    let mut seen = None;
    store
        .reserve(&key("ann@example.com", "10.0.0.1"), &WINDOWS, |c: &Counted| {
            seen = Some(c.recent);
            Err(())
        })
        .await
        .unwrap()
        .unwrap_err();
    let Some(Recent::Untrusted { pair, client_ip, email }) = seen else { panic!("{seen:?}") };
    assert_eq!((pair.count, client_ip.count, email.count), (1, 1, 2), "bob's success no longer counts");
    assert!(pair.latest.is_some());
    // Rows older than the window do not count.
    db.client().await.batch_execute("UPDATE login_attempts SET created_at = now() - interval '2 hours'").await.unwrap();
    store
        .reserve(&key("ann@example.com", "10.0.0.1"), &WINDOWS, |c: &Counted| {
            seen = Some(c.recent);
            Err(())
        })
        .await
        .unwrap()
        .unwrap_err();
    let Some(Recent::Untrusted { pair, client_ip, email }) = seen else { panic!("{seen:?}") };
    assert_eq!((pair.count, client_ip.count, email.count, pair.latest), (0, 0, 0, None));
    db.drop_db().await;
}
