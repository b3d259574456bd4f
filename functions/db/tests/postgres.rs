//! The store against a real Postgres: migrations, seed data, the pooler mode and bounded
//! waits. Needs TEST_DATABASE_URL (`make test` sets it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use db::jobs::{Asset, Job, Upload, UploadState};
use db::migrate::{self, SchemaState};
use db::orders::{StatusChange, StatusTransition};
use db::testing::TestDb;
use db::{Catalog, Database, DbConfig, FromRow, PoolMode, RowExt, StoreError};
use domain::{AssetKind, MethodName, PaymentStatus, Slug};

fn config(url: &str, extra: &[(&str, &str)]) -> DbConfig {
    let mut map: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.insert("DATABASE_URL".into(), url.into());
    DbConfig::from_env(&config::Env::from_pairs(map)).unwrap()
}

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;
    assert!(matches!(migrate::schema_state(&mut client).await.unwrap(), SchemaState::Behind { .. }));

    let applied = migrate::migrate(&mut client).await.unwrap();
    assert_eq!(
        applied,
        [
            "V1__foundation",
            "V2__uploads",
            "V3__auth",
            "V4__commerce",
            "V5__media_ownership_and_job_deadlines",
            "V6__payment_guards",
            "V7__sign_in_hardening",
            "V8__catalog_version"
        ]
    );
    assert_eq!(migrate::migrate(&mut client).await.unwrap(), Vec::<String>::new());
    assert_eq!(migrate::schema_state(&mut client).await.unwrap(), SchemaState::UpToDate { version: 8 });
    db.drop_db().await;
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_is_refused() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    // What an edited file looks like from the database's side: a different checksum.
    client.batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1").await.unwrap();

    let state = migrate::schema_state(&mut client).await.unwrap();
    assert!(matches!(&state, SchemaState::Diverged { detail } if detail.contains("edited")), "{state:?}");
    assert!(migrate::migrate(&mut client).await.is_err(), "migrate must refuse a diverged history");
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_a_newer_build_migrated_is_ahead_and_this_build_may_serve_on_it() {
    let (name, sql) = db::testing::future_migration();
    let db = TestDb::migrated_by_newer_build(&[(&name, sql)]).await;
    let mut client = db.client().await;
    let state = migrate::schema_state(&mut client).await.unwrap();
    assert_eq!(state, SchemaState::Ahead { version: migrate::newest_version(), unknown: vec![name.clone()] });
    assert!(state.allows_serving());

    // This build's `migrate` (a rollback deploy runs it) has nothing to do and changes nothing.
    let history = "SELECT count(*) FROM refinery_schema_history";
    let before: i64 = client.query_one(history, &[]).await.unwrap().get(0);
    assert_eq!(migrate::migrate(&mut client).await.unwrap(), Vec::<String>::new());
    let recorded: i64 = client.query_one(history, &[]).await.unwrap().get(0);
    assert_eq!(recorded, before);

    let pools = Database::new(&config(&db.url, &[])).unwrap();
    assert_eq!(migrate::check_at_start(&pools).await.unwrap(), Some(state), "start-up goes on");
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_missing_this_builds_latest_migration_is_behind_and_refused() {
    let newest = migrate::newest_version();
    let db = TestDb::migrated_to(newest - 1).await;
    let state = migrate::schema_state(&mut db.client().await).await.unwrap();
    assert!(
        matches!(&state, SchemaState::Behind { pending } if pending.len() == 1 && pending[0].starts_with(&format!("V{newest}__"))),
        "{state:?}"
    );
    assert!(!state.allows_serving());
    let pools = Database::new(&config(&db.url, &[])).unwrap();
    let refusal = migrate::check_at_start(&pools).await.unwrap_err();
    assert!(matches!(refusal, migrate::SchemaRefusal::Behind { .. }), "{refusal}");
    db.drop_db().await;
}

#[tokio::test]
async fn ahead_and_behind_at_once_is_behind() {
    // A newer build's migration recorded, but this build's latest missing: not "ahead".
    let (name, sql) = db::testing::future_migration();
    let db = TestDb::migrated_by_newer_build(&[(&name, sql)]).await;
    let mut client = db.client().await;
    let newest = migrate::newest_version();
    client.execute("DELETE FROM refinery_schema_history WHERE version = $1", &[&newest]).await.unwrap();
    let state = migrate::schema_state(&mut client).await.unwrap();
    assert!(matches!(&state, SchemaState::Behind { .. }), "{state:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn an_unknown_migration_older_than_this_builds_newest_is_divergence_not_progress() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    // What another branch's migration, numbered below ours, looks like in the history.
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             SELECT 0, 'elsewhere', applied_on, '42' FROM refinery_schema_history WHERE version = 1",
        )
        .await
        .unwrap();
    let state = migrate::schema_state(&mut client).await.unwrap();
    assert!(matches!(&state, SchemaState::Diverged { detail } if detail.contains("V0__elsewhere")), "{state:?}");
    assert!(!state.allows_serving());
    db.drop_db().await;
}

#[tokio::test]
async fn an_edited_migration_is_refused_even_when_the_database_is_ahead() {
    let (name, sql) = db::testing::future_migration();
    let db = TestDb::migrated_by_newer_build(&[(&name, sql)]).await;
    db.client()
        .await
        .batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1")
        .await
        .unwrap();
    let state = migrate::schema_state(&mut db.client().await).await.unwrap();
    assert!(matches!(&state, SchemaState::Diverged { detail } if detail.contains("edited")), "{state:?}");
    let pools = Database::new(&config(&db.url, &[])).unwrap();
    let refusal = migrate::check_at_start(&pools).await.unwrap_err();
    assert!(matches!(refusal, migrate::SchemaRefusal::Diverged { .. }), "{refusal}");
    db.drop_db().await;
}

#[tokio::test]
async fn an_unreachable_database_is_not_checked_and_start_up_goes_on() {
    let pools = Database::new(&config("postgres://postgres@127.0.0.1:1/nothing", &[])).unwrap();
    assert_eq!(migrate::check_at_start(&pools).await.unwrap(), None);
}

#[tokio::test]
async fn a_migration_that_cannot_get_its_lock_gives_up_fast_and_applies_nothing() {
    let db = TestDb::seeded().await;
    // A long transaction (a report, a stuck request) reads the products table…
    let mut holder = db.client().await;
    let open = holder.transaction().await.unwrap();
    open.query_one("SELECT count(*) FROM products", &[]).await.unwrap();

    // …so a newer build's ALTER TABLE would wait for it, and every later query of the table
    // would queue behind that ALTER. The migration gives up within its lock timeout instead.
    let version = migrate::newest_version() + 1;
    let newer = [(format!("V{version}__add_a_column"), "ALTER TABLE products ADD COLUMN sparkle INT")];
    let newer: Vec<(&str, &str)> = newer.iter().map(|(n, sql)| (n.as_str(), *sql)).collect();
    let mut client = db.client().await;
    let started = Instant::now();
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        migrate::migrate_as_newer_build(&mut client, &newer, Duration::from_millis(300)),
    )
    .await
    .expect("the migration waited for the lock without a bound");
    let err = attempt.unwrap_err();
    assert!(err.is_lock_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(migrate::schema_state(&mut client).await.unwrap(), SchemaState::UpToDate { .. }));

    // Once the long transaction ends, the same deploy step succeeds.
    open.commit().await.unwrap();
    let applied = migrate::migrate_as_newer_build(&mut client, &newer, Duration::from_millis(300)).await.unwrap();
    assert_eq!(applied, [newer[0].0]);
    // The session that migrated is back to no lock timeout.
    let row = client.query_one("SHOW lock_timeout", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "0");
    db.drop_db().await;
}

#[tokio::test]
async fn a_failed_migration_leaves_nothing_behind() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;
    // A conflicting object makes V1 fail halfway through (after it created other tables).
    client.batch_execute("CREATE TABLE saved_designs (id int)").await.unwrap();

    assert!(migrate::migrate(&mut client).await.is_err());
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('users', 'products')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the failed migration's earlier statements must be rolled back");
    assert!(matches!(migrate::schema_state(&mut client).await.unwrap(), SchemaState::Behind { .. }));
    db.drop_db().await;
}

#[tokio::test]
async fn the_seed_catalog_loads_idempotently_and_keeps_later_edits() {
    let db = TestDb::seeded().await;
    let mut client = db.client().await;
    client.batch_execute("UPDATE products SET title = 'Edited Tee' WHERE slug = 'classic-tee'").await.unwrap();
    migrate::seed(&mut client).await.unwrap();

    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM products").await, 2);
    assert_eq!(count("SELECT count(*) FROM variants").await, 15);
    assert_eq!(count("SELECT count(*) FROM decoration_methods").await, 3);
    assert_eq!(count("SELECT count(*) FROM price_rules WHERE scope = 'global'").await, 3);
    assert_eq!(count("SELECT count(*) FROM users").await, 0, "no default accounts");
    let title: String =
        client.query_one("SELECT title FROM products WHERE slug = 'classic-tee'", &[]).await.unwrap().get(0);
    assert_eq!(title, "Edited Tee");
    db.drop_db().await;
}

#[tokio::test]
async fn the_schema_refuses_impossible_states() {
    let db = TestDb::seeded().await;
    let client = db.client().await;
    let refused = [
        "UPDATE variants SET base_price_cents = -1 WHERE sku = 'ST-TEE-BLK-S'",
        "UPDATE products SET slug = 'Bad Slug' WHERE slug = 'classic-tee'",
        "INSERT INTO users (email) VALUES ('Mixed@Case.com')",
        "INSERT INTO price_rules (name, scope, discount_type, value) VALUES ('x', 'product', 'percentage', 10)",
        "INSERT INTO price_rules (name, scope, discount_type, value) VALUES ('y', 'global', 'percentage', 10001)",
    ];
    for sql in refused {
        assert!(client.batch_execute(sql).await.is_err(), "should be refused: {sql}");
    }
    db.drop_db().await;
}

#[tokio::test]
async fn catalog_reads_return_active_products_with_variants_and_methods() {
    let db = TestDb::seeded().await;
    let catalog = Catalog::new(Database::new(&config(&db.url, &[])).unwrap());
    let products = catalog.active_products().await.unwrap();
    let slugs: Vec<&str> = products.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["classic-tee", "classic-hoodie"]);
    assert_eq!(products[0].variants.len(), 10);
    assert_eq!(products[1].variants.len(), 5);

    let (tee, methods) = catalog.active_product(&Slug::parse("classic-tee").unwrap()).await.unwrap().unwrap();
    assert_eq!(tee.title, "Classic Tee");
    let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["screen_print", "dtg"], "embroidery is hoodie-only");

    let embroidery = catalog.method(&MethodName::parse("embroidery").unwrap()).await.unwrap().unwrap();
    assert!(!embroidery.allowed_for(tee.id));
    assert!(catalog.method(&MethodName::parse("laser").unwrap()).await.unwrap().is_none());
    assert_eq!(catalog.active_price_rules().await.unwrap().len(), 3);
    db.drop_db().await;
}

fn corrupt_message(e: StoreError) -> String {
    match e {
        StoreError::Corrupt(message) => message,
        other => panic!("expected corrupt data, got {other:?}"),
    }
}

#[tokio::test]
async fn rows_are_read_by_column_name_whatever_the_order_of_the_columns() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let row = client
        .query_one(
            "INSERT INTO assets (object_key, kind, content_type, byte_size) \
             VALUES ('uploads/a/original.png', 'upload', 'image/png', 7) \
             RETURNING job_id, byte_size, kind, original_name, dpi, height, width, content_hash, content_type, \
               object_key, id",
            &[],
        )
        .await
        .unwrap();
    let asset = Asset::from_row(&row).unwrap();
    assert_eq!((asset.kind, asset.byte_size), (AssetKind::Upload, 7));
    assert_eq!((asset.object_key.as_str(), asset.content_type.as_str()), ("uploads/a/original.png", "image/png"));
    assert_eq!((asset.width, asset.job_id), (None, None));
    db.drop_db().await;
}

#[tokio::test]
async fn a_column_that_cannot_be_read_is_corrupt_data_naming_the_column_not_a_panic() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    let row =
        client.query_one("SELECT 'finished' AS status, 42 AS attempts, NULL::text AS object_key", &[]).await.unwrap();
    let missing = corrupt_message(row.column::<String>("logs").unwrap_err());
    assert!(missing.starts_with("column logs: "), "{missing}");
    let mistyped = corrupt_message(row.column::<String>("attempts").unwrap_err());
    assert!(mistyped.starts_with("column attempts: "), "{mistyped}");
    let null = corrupt_message(row.column::<String>("object_key").unwrap_err());
    assert!(null.starts_with("column object_key: "), "{null}");
    assert_eq!(row.column::<Option<String>>("object_key").unwrap(), None, "NULL is fine where a field is optional");
    let unknown = corrupt_message(row.parsed::<domain::JobStatus>("status").unwrap_err());
    assert_eq!(unknown, r#"column status: unknown job status "finished""#);
    // A row type reports the first column it cannot read.
    let job = corrupt_message(Job::from_row(&row).unwrap_err());
    assert!(job.starts_with("column id: "), "{job}");
    db.drop_db().await;
}

#[tokio::test]
async fn stored_states_that_contradict_each_other_are_corrupt_data() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    let history = |kind: &'static str, old: &'static str, new: &'static str| {
        let client = &client;
        async move {
            let sql = format!(
                "SELECT '{kind}' AS kind, {old} AS old_status, '{new}' AS new_status, NULL::uuid AS changed_by, \
                   NULL::text AS notes, now() AS created_at"
            );
            StatusChange::from_row(&client.query_one(&sql, &[]).await.unwrap())
        }
    };
    let placed = history("payment", "NULL", "pending").await.unwrap();
    assert_eq!(placed.transition, StatusTransition::Payment { from: None, to: PaymentStatus::Pending });
    let paid = history("payment", "'pending'", "paid").await.unwrap();
    assert_eq!(
        paid.transition,
        StatusTransition::Payment { from: Some(PaymentStatus::Pending), to: PaymentStatus::Paid }
    );
    let mixed = corrupt_message(history("production", "'pending'", "paid").await.unwrap_err());
    assert_eq!(mixed, r#"column new_status: unknown production status "paid""#);

    let upload = |status: &'static str, asset: &'static str| {
        let client = &client;
        async move {
            let sql = format!(
                "SELECT gen_random_uuid() AS id, 'uploads/u/original.png' AS object_key, 'image/png' AS content_type, \
                   7::bigint AS byte_size, NULL::text AS original_name, now() AS expires_at, \
                   '{status}' AS status, {asset}::uuid AS asset_id"
            );
            Upload::from_row(&client.query_one(&sql, &[]).await.unwrap())
        }
    };
    assert_eq!(upload("pending", "NULL").await.unwrap().state, UploadState::Pending);
    let asset = "'00000000-0000-4000-8000-000000000001'";
    assert!(matches!(upload("completed", asset).await.unwrap().state, UploadState::Completed(_)));
    let lost = corrupt_message(upload("completed", "NULL").await.unwrap_err());
    assert_eq!(lost, "column asset_id: a completed upload has none");
    db.drop_db().await;
}

/// Counts named prepared statements alive on the pool's single connection.
async fn prepared_statements_after_catalog_reads(url: &str, mode: &str) -> i64 {
    let cfg = config(url, &[("DB_MAX_CONNECTIONS", "1"), ("DB_POOL_MODE", mode)]);
    let database = Database::new(&cfg).unwrap();
    let catalog = Catalog::new(database.clone());
    catalog.active_products().await.unwrap();
    catalog.active_product(&Slug::parse("classic-hoodie").unwrap()).await.unwrap().unwrap();
    catalog.active_price_rules().await.unwrap();
    // Pool of one: this is the same server connection the reads used.
    let conn = database.primary.conn().await.unwrap();
    let rows = conn.client().simple_query("SELECT count(*) FROM pg_prepared_statements").await.unwrap();
    match &rows[1] {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).unwrap().parse().unwrap(),
        other => panic!("unexpected message {other:?}"),
    }
}

#[tokio::test]
async fn transaction_pooler_mode_leaves_no_named_prepared_statement_on_the_connection() {
    let db = TestDb::seeded().await;
    assert_eq!(prepared_statements_after_catalog_reads(&db.url, "transaction").await, 0);
    // The same reads in session mode do cache statements: the check above can fail.
    assert!(prepared_statements_after_catalog_reads(&db.url, "session").await > 0);
    assert_eq!(config(&db.url, &[("DB_POOL_MODE", "transaction")]).pool_mode, PoolMode::Transaction);
    db.drop_db().await;
}

/// Whether a `pg_sleep` sent under `application_name` is still running on the server.
async fn sleeping_statements(db: &TestDb, application_name: &str) -> i64 {
    let client = db.client().await;
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            &[&application_name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_statement_the_client_gave_up_on_does_not_keep_running_on_the_server() {
    // Behind a transaction pooler no start-up option can set statement_timeout, so before the
    // client cancelled what it abandoned, a slow statement ran on for as long as it liked,
    // holding its locks and a server connection.
    let db = TestDb::migrated().await;
    for mode in ["transaction", "session"] {
        let app = format!("cancel-test-{mode}");
        let database = Database::new(&config(
            &db.url,
            &[("DB_POOL_MODE", mode), ("DB_STATEMENT_TIMEOUT_MS", "300"), ("DB_APPLICATION_NAME", &app)],
        ))
        .unwrap();
        let conn = database.primary.conn().await.unwrap();
        let started = Instant::now();
        let err = conn.query("sleeping", "SELECT pg_sleep(30)", &[]).await.unwrap_err();
        assert!(err.is_unavailable(), "{mode}: {err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{mode}: took {:?}", started.elapsed());
        let deadline = Instant::now() + Duration::from_secs(5);
        while sleeping_statements(&db, &app).await > 0 {
            assert!(Instant::now() < deadline, "{mode}: the abandoned statement is still running on the server");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The connection is usable again afterwards.
        drop(conn);
        database.primary.ping().await.unwrap();
    }
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_that_refuses_connections_is_unavailable_fast() {
    let database = Database::new(&config("postgres://postgres@127.0.0.1:1/none", &[])).unwrap();
    let started = Instant::now();
    let err = database.primary.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_database_that_accepts_but_never_answers_is_unavailable_within_the_connect_timeout() {
    let (port, tarpit) = db::testing::tarpit().await;
    let database = Database::new(&config(&format!("postgres://postgres@127.0.0.1:{port}/none"), &[])).unwrap();
    let started = Instant::now();
    let err = database.primary.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    tarpit.abort();
}

#[tokio::test]
async fn sslmode_require_verifies_the_server_certificate() {
    // This machine's Postgres offers TLS with a self-signed certificate that no trusted root
    // signed: a verifying client must refuse it (and answer as "unavailable", quickly).
    let admin = db::testing::admin_url();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let database = Database::new(&config(&format!("{admin}{sep}sslmode=require"), &[])).unwrap();
    let started = Instant::now();
    match database.primary.ping().await {
        Err(e) => {
            assert!(e.is_unavailable(), "{e}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        Ok(()) => {
            // A server without TLS would refuse `require` too; reaching here means the server
            // presented a certificate our roots trust — then TLS must really be in use.
            let conn = database.primary.conn().await.unwrap();
            let rows =
                conn.client().simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.unwrap();
            assert!(matches!(&rows[1], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")));
        }
    }
}
