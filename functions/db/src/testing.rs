//! Fresh, migrated databases for integration tests (feature `test-support`).
//!
//! Tests talk to a real Postgres: `TEST_DATABASE_URL` names a server and a database on it
//! where the tests may `CREATE DATABASE` (`make test` sets it, starting a server if needed).
//! Each [`TestDb`] is a new database named `stolentee_test_<unix time>_<random>`; databases
//! left behind by earlier runs (a panicking test never drops its database) are removed when
//! they are more than an hour old.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

use crate::config::DbConfig;
use crate::connect::{Connector, Purpose};

use crate::migrate;

const PREFIX: &str = "stolentee_test_";

/// A handle on a test database: cloning it copies the names, not the database.
#[derive(Clone)]
pub struct TestDb {
    pub name: String,
    /// URL of the test database itself.
    pub url: String,
    admin_url: String,
}

/// The admin URL from `TEST_DATABASE_URL`, with a clear message when it is missing.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_DATABASE_URL is not set. Run the tests with `make test`, which starts Postgres \
             if needed, or set it to a server where tests may create databases, e.g. \
             TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

async fn connect(url: &str) -> Client {
    let config = DbConfig::for_url(url).unwrap_or_else(|e| panic!("TEST_DATABASE_URL: {e}"));
    let connector = Connector::new(&config, url, Purpose::Maintenance)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", config::redact_url(url)));
    connector.connect("connecting for a test").await.unwrap_or_else(|e| panic!("{}: {e}", connector.shown()))
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let mut config: tokio_postgres::Config = url.parse().expect("TEST_DATABASE_URL is not a valid Postgres URL");
    config.dbname(db);
    // Rebuild as a URL: the keyword form would lose nothing either, but URLs read better.
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string().replace('/', "%2F"),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config.get_password().map(|p| format!(":{}", String::from_utf8_lossy(p))).unwrap_or_default();
    format!("postgres://{user}{password}@{host}:{port}/{db}")
}

impl TestDb {
    /// An empty database (no migrations).
    pub async fn empty() -> Self {
        let admin_url = admin_url();
        let admin = connect(&admin_url).await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        drop_stale(&admin, now).await;
        let name = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        Self { name, url, admin_url }
    }

    /// A migrated database.
    pub async fn migrated() -> Self {
        let db = Self::empty().await;
        migrate::migrate(&mut db.client().await).await.expect("migrating the test database");
        db
    }

    /// A database an older build migrated: this build's migrations up to `version` only.
    pub async fn migrated_to(version: i32) -> Self {
        let db = Self::empty().await;
        let older: Vec<refinery::Migration> =
            migrate::embedded().into_iter().filter(|m| m.version() <= version).collect();
        refinery::Runner::new(&older)
            .run_async(&mut db.client().await)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database to V{version}: {e}"));
        db
    }

    /// A database a newer build migrated: this build's migrations, then `newer`
    /// (`("V<n>__name", sql)`), applied and recorded by refinery exactly as that build's
    /// `migrate` would.
    pub async fn migrated_by_newer_build(newer: &[(&str, &str)]) -> Self {
        let db = Self::empty().await;
        let mut all = migrate::embedded();
        for (name, sql) in newer {
            all.push(refinery::Migration::unapplied(name, sql).unwrap_or_else(|e| panic!("migration {name}: {e}")));
        }
        refinery::Runner::new(&all)
            .run_async(&mut db.client().await)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database as a newer build: {e}"));
        db
    }

    /// A migrated database with the seed catalog.
    pub async fn seeded() -> Self {
        let db = Self::migrated().await;
        migrate::seed(&mut db.client().await).await.expect("seeding the test database");
        db
    }

    /// A copy of this database as it is now (`CREATE DATABASE … TEMPLATE`), ids and all,
    /// that nothing writes to afterwards: a read replica that stopped replaying the
    /// primary's changes, for tests of replica lag. Connections to this database are closed
    /// first (a template must have none).
    pub async fn frozen_copy(&self) -> Self {
        let admin = connect(&self.admin_url).await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
        let mut attempts = 0;
        loop {
            let _ = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&self.name],
                )
                .await;
            match admin.batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", self.name)).await {
                Ok(()) => break,
                // A connection can slip in between the two statements; try again.
                Err(e) if attempts < 20 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "copying the test database: retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("copying test database {} to {name}: {e}", self.name),
            }
        }
        Self { url: with_database(&self.admin_url, &name), name, admin_url: self.admin_url.clone() }
    }

    /// A direct connection to this database, for arranging and inspecting state.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// Drops the database now (tests that finish call it; the rest are swept later).
    pub async fn drop_db(self) {
        let admin = connect(&self.admin_url).await;
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).await;
    }
}

async fn drop_stale(admin: &Client, now: u64) {
    let Ok(rows) = admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'stolentee\\_test\\_%'", &[]).await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<_, String>("datname") else { continue };
        let created = name.trim_start_matches(PREFIX).split('_').next().and_then(|t| t.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > 3600) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
}

/// A "database" that accepts TCP connections and never speaks: the hanging server that
/// timeouts must defend against. Returns its port and the task to abort afterwards.
/// A migration only a newer build has: the next version after this build's newest.
pub fn future_migration() -> (String, &'static str) {
    (format!("V{}__future", migrate::newest_version() + 1), "CREATE TABLE future_things (id BIGINT PRIMARY KEY)")
}

pub async fn tarpit() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a tarpit");
    let port = listener.local_addr().expect("tarpit address").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// A throwaway PostgreSQL server of the test's own (`initdb` + `pg_ctl`), for tests that stop
/// the database — which they must never do to the shared server — and start it again on the
/// same port and data. Plain TCP on 127.0.0.1, trust authentication. Stopped and deleted
/// when dropped.
///
/// Needs `initdb`, `pg_ctl` and `postgres`: `PG_BINDIR`, else the newest Debian-style
/// `/usr/lib/postgresql/<version>/bin`, else the `PATH` (`make test` installs them). As root,
/// the programs run as the `postgres` user (initdb refuses root).
pub struct ScratchCluster {
    bindir: std::path::PathBuf,
    dir: std::path::PathBuf,
    pub port: u16,
}

impl ScratchCluster {
    /// Creates and starts a cluster with an empty `postgres` database.
    pub fn start() -> Self {
        let bindir = scratch::postgres_bindir();
        let port = scratch::free_port();
        let dir = std::env::temp_dir().join(format!("stolentee-scratch-pg-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("creating the cluster directory");
        scratch::chown_to_postgres(&dir);
        let out = scratch::run_pg(
            &bindir.join("initdb"),
            &["-D", data.to_str().expect("UTF-8 temp path"), "-U", "postgres", "--auth=trust", "--no-locale"],
        );
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let cluster = Self { bindir, dir, port };
        cluster.resume();
        cluster
    }

    /// The `postgres` database's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`-m immediate`: connections are cut as in a crash).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let out = scratch::run_pg(
            &self.bindir.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"],
        );
        assert!(out.status.success(), "stopping the scratch server: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts the (stopped) server again, on the same port and data, and waits until it
    /// accepts connections.
    pub fn resume(&self) {
        let data = self.dir.join("data");
        let options =
            format!("-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}", self.port, self.dir.display());
        let log = self.dir.join("server.log");
        let out = scratch::run_pg(
            &self.bindir.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "starting the scratch server failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        scratch::run_pg(
            &self.bindir.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

mod scratch {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    pub fn postgres_bindir() -> PathBuf {
        let has_all = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| d.join(b).is_file());
        if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
            assert!(has_all(&dir), "PG_BINDIR={} has no initdb/pg_ctl/postgres", dir.display());
            return dir;
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, d)| has_all(d))
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return dir;
        }
        let on_path =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).find(|d| has_all(d))).unwrap_or_default();
        on_path.expect(
            "this test starts its own PostgreSQL server and needs initdb, pg_ctl and postgres \
             (Debian: apt-get install postgresql; `make test` installs them) or PG_BINDIR",
        )
    }

    fn is_root() -> bool {
        Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    }

    pub fn chown_to_postgres(dir: &Path) {
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status();
            assert!(status.is_ok_and(|s| s.success()), "chown of the cluster directory");
        }
    }

    /// Runs a PostgreSQL program; as root, as the `postgres` user.
    pub fn run_pg(program: &Path, args: &[&str]) -> Output {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    }

    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
    }
}
