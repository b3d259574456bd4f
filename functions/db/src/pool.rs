//! Connection pools over `tokio-postgres`, bounded in size and in time.
//!
//! Every wait is bounded: getting a connection waits at most `DB_POOL_WAIT_TIMEOUT_MS` for
//! a free slot and `DB_CONNECT_TIMEOUT_MS` to open one; every statement is bounded by the
//! server's `statement_timeout` and, as a backstop the server cannot break, by a client-side
//! timer that also cancels the statement on the server (behind a transaction pooler, where no
//! start-up option can set `statement_timeout`, that timer is the limit). A database that is down or unreachable therefore yields
//! [`StoreError::Unavailable`] within about 1.5 s by default, never a hang.

use std::time::Duration;

use deadpool_postgres::{Pool, PoolError, Runtime};
use thiserror::Error;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::config::{DbConfig, PoolMode};
use crate::connect::{Canceller, Connector, Purpose};

/// Failures of the store, classified by what a caller can do about them.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time: retry later (HTTP 503).
    #[error("database unavailable while {doing}: {reason}")]
    Unavailable { doing: &'static str, reason: String },
    /// The database answered with an error: a bug or a broken invariant (HTTP 500).
    #[error("database error while {doing}: {source}")]
    Query {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Stored data broke a rule the schema cannot express.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Classifies a driver error: lost connections and cancelled statements are transient.
    pub fn from_pg(doing: &'static str, e: tokio_postgres::Error) -> Self {
        let transient = e.is_closed()
            || e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::QUERY_CANCELED
                    || *c == tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                    || *c == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
                    || *c == tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS
            })
            || e.code().is_none() && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if transient { Self::Unavailable { doing, reason: with_causes(&e) } } else { Self::Query { doing, source: e } }
    }

    fn from_pool(doing: &'static str, e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => Self::from_pg(doing, e).into_unavailable(doing),
            other => Self::Unavailable { doing, reason: other.to_string() },
        }
    }

    pub(crate) fn into_unavailable(self, doing: &'static str) -> Self {
        match self {
            Self::Query { source, .. } => Self::Unavailable { doing, reason: with_causes(&source) },
            other => other,
        }
    }
}

/// `error: cause: cause`: the driver's own message ("error performing TLS handshake") says
/// little without what caused it ("invalid peer certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// One pool of connections to one server.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    mode: PoolMode,
    query_guard: Duration,
    canceller: Canceller,
    role: &'static str,
}

/// The store's pools: writes and read-your-writes go to `primary`; catalog reads may go to
/// `read` (a replica, or the primary again when `DATABASE_READ_URL` is unset).
#[derive(Clone)]
pub struct Database {
    pub primary: Db,
    pub read: Db,
    replica: bool,
}

/// Pool occupancy, for readiness output and alarms (the seed's "connections > 80 %").
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    pub max_size: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

impl Database {
    /// Builds the pools. Connections are opened lazily, on first use: a Lambda cold start
    /// does not wait for the database, and a database that is down at start-up is reported
    /// by readiness, not by a crash loop.
    pub fn new(config: &DbConfig) -> Result<Self, StoreError> {
        let primary = Db::new(config, &config.primary_url, config.plan.per_instance, "primary")?;
        let (read, replica) = match &config.read_url {
            Some(url) => (Db::new(config, url, config.read_pool_size, "replica")?, true),
            None => (primary.clone(), false),
        };
        Ok(Self { primary, read, replica })
    }

    pub fn has_replica(&self) -> bool {
        self.replica
    }

    /// Each pool's occupancy for the CloudWatch gauges: the primary, and the replica's pool
    /// when there is one (without one, reads share the primary's pool, counted once).
    pub fn gauges(&self) -> Vec<runtime::metrics::PoolGauges> {
        use runtime::metrics::PoolRole;
        let mut gauges = vec![self.primary.stats().gauges(PoolRole::Primary)];
        if self.replica {
            gauges.push(self.read.stats().gauges(PoolRole::Replica));
        }
        gauges
    }
}

impl PoolStats {
    /// Open = idle + in use; in use = checked out; waiting = callers queued for a slot.
    pub fn gauges(&self, pool: runtime::metrics::PoolRole) -> runtime::metrics::PoolGauges {
        runtime::metrics::PoolGauges {
            pool,
            open: self.open as u64,
            in_use: self.open.saturating_sub(self.idle) as u64,
            waiting: self.waiting as u64,
        }
    }
}

impl Db {
    fn new(config: &DbConfig, url: &str, size: usize, role: &'static str) -> Result<Self, StoreError> {
        let connector = Connector::new(config, url, Purpose::Serving)?;
        let pool = Pool::builder(connector.manager())
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable { doing: "building the pool", reason: e.to_string() })?;
        // In session mode the server's own statement_timeout ends a slow statement and the
        // client's timer is a backstop a second later. Behind a transaction pooler no
        // start-up option can set that timeout, so the client's timer is the limit itself.
        let query_guard = match config.pool_mode {
            PoolMode::Session => config.statement_timeout + Duration::from_secs(1),
            PoolMode::Transaction => config.statement_timeout,
        };
        Ok(Self { pool, mode: config.pool_mode, query_guard, canceller: connector.canceller(), role })
    }

    pub fn role(&self) -> &'static str {
        self.role
    }

    pub fn stats(&self) -> PoolStats {
        let s = self.pool.status();
        PoolStats { max_size: s.max_size, open: s.size, idle: s.available, waiting: s.waiting }
    }

    /// A connection from the pool, within the configured wait and connect timeouts.
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        let client = self.pool.get().await.map_err(|e| StoreError::from_pool("getting a connection", e))?;
        Ok(Conn { client, mode: self.mode, guard: self.query_guard, canceller: self.canceller.clone() })
    }

    /// `SELECT 1` within the pool's bounds: readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.conn().await?.query("pinging the database", "SELECT 1", &[]).await.map(drop)
    }
}

/// A pooled connection that runs statements the way the pool mode allows.
pub struct Conn {
    client: deadpool_postgres::Object,
    mode: PoolMode,
    guard: Duration,
    canceller: Canceller,
}

/// A statement parameter with its declared type: declaring types lets the transaction
/// mode send statements unprepared, and catches type mistakes at the first test.
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// The two ways a statement can be sent, for a client or a transaction alike.
trait Statements: deadpool_postgres::GenericClient {
    async fn query_unnamed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error>;

    fn cancel_token(&self) -> tokio_postgres::CancelToken;
}

impl Statements for deadpool_postgres::Client {
    async fn query_unnamed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.query_typed(sql, params).await
    }

    fn cancel_token(&self) -> tokio_postgres::CancelToken {
        tokio_postgres::Client::cancel_token(self)
    }
}

impl Statements for deadpool_postgres::Transaction<'_> {
    async fn query_unnamed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.query_typed(sql, params).await
    }

    fn cancel_token(&self) -> tokio_postgres::CancelToken {
        tokio_postgres::Transaction::cancel_token(self)
    }
}

/// Runs `sql` the way `mode` allows, bounded by `guard`; a statement still running when
/// the guard fires is cancelled on the server.
async fn run<C: Statements + Sync>(
    client: &C,
    mode: PoolMode,
    guard: Duration,
    canceller: &Canceller,
    doing: &'static str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, StoreError> {
    let run = async {
        match mode {
            PoolMode::Session => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let statement = client.prepare_typed_cached(sql, &types).await?;
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                client.query(&statement, &values).await
            }
            PoolMode::Transaction => client.query_unnamed(sql, params).await,
        }
    };
    match tokio::time::timeout(guard, run).await {
        Ok(result) => result.map_err(|e| StoreError::from_pg(doing, e)),
        Err(_) => {
            canceller.cancel(client.cancel_token(), doing);
            Err(StoreError::Unavailable { doing, reason: format!("no answer within {guard:?}") })
        }
    }
}

impl Conn {
    /// Runs `sql`. In session mode the statement is prepared once per connection and cached;
    /// in transaction mode it goes through the unnamed statement, so nothing named survives
    /// on a server connection another client may get next.
    pub async fn query(&self, doing: &'static str, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        run(&self.client, self.mode, self.guard, &self.canceller, doing, sql, params).await
    }

    /// Starts a transaction; statements in it follow the same pool-mode rules. Dropping the
    /// [`Tx`] without [`Tx::commit`] rolls back, so an early return leaves nothing behind.
    pub async fn transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        let (mode, guard, canceller) = (self.mode, self.guard, self.canceller.clone());
        let tx = self.client.transaction().await.map_err(|e| StoreError::from_pg("starting a transaction", e))?;
        Ok(Tx { tx, mode, guard, canceller })
    }

    /// A read-only `REPEATABLE READ` transaction: every statement in it sees one snapshot of
    /// the database, so a catalog read and the catalog version read beside it agree.
    pub async fn snapshot(&mut self) -> Result<Tx<'_>, StoreError> {
        let tx = self.transaction().await?;
        // Must be the transaction's first statement; it takes no snapshot itself.
        tx.query("starting a snapshot", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", &[]).await?;
        Ok(tx)
    }

    /// The raw client, for migrations and tests that need the whole driver.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl Conn {
    /// How this database's migration history compares with the build's migrations.
    pub async fn schema_state(mut self) -> Result<crate::migrate::SchemaState, crate::migrate::MigrateError> {
        crate::migrate::schema_state(&mut self.client).await
    }
}

/// A transaction on a pooled connection.
pub struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    mode: PoolMode,
    guard: Duration,
    canceller: Canceller,
}

impl Tx<'_> {
    pub async fn query(&self, doing: &'static str, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        run(&self.tx, self.mode, self.guard, &self.canceller, doing, sql, params).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(|e| StoreError::from_pg("committing", e))
    }
}
