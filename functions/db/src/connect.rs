//! The one way this project opens a Postgres connection: pools, `migrate` and the test
//! databases all go through [`Connector`], so TLS, timeouts and the application name are set
//! in one place and cannot drift apart.

use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::config::{DbConfig, PoolMode, redact_url};
use crate::pool::StoreError;

/// How to reach one server (the primary or a replica), with TLS decided once.
///
/// TLS is used when the URL says `sslmode=require`, as every managed Postgres (RDS,
/// Supabase) needs. Unlike libpq's `require`, the server's certificate is always verified —
/// against `DB_SSL_ROOT_CERT` or the system's roots — and its name checked (libpq's
/// `verify-full`): an encrypted connection to an impostor protects nothing. Without
/// `sslmode=require` connections are plain, as to a local server.
#[derive(Clone)]
pub struct Connector {
    pg: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    shown: String,
}

/// What a connection is for: serving requests gets the configured statement timeout as a
/// start-up option (session mode); maintenance work such as migrations may run longer and
/// gets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serving,
    Maintenance,
}

impl Connector {
    /// Parses `url` and applies `config`'s timeouts, application name and TLS roots.
    pub fn new(config: &DbConfig, url: &str, purpose: Purpose) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::Unavailable { doing: "parsing the database URL", reason: e.to_string() }
        })?;
        pg.connect_timeout(config.connect_timeout);
        pg.application_name(&config.application_name);
        if purpose == Purpose::Serving && config.pool_mode == PoolMode::Session {
            // Transaction poolers reject or ignore start-up options; there the role's
            // settings must carry the timeout (see docs/CONFIG.md).
            let existing = pg.get_options().unwrap_or_default().to_owned();
            pg.options(format!("{existing} -c statement_timeout={}", config.statement_timeout.as_millis()).trim());
        }
        let tls = if pg.get_ssl_mode() == SslMode::Require { Some(rustls_connector(config)?) } else { None };
        Ok(Self { pg, tls, shown })
    }

    /// Whether connections are encrypted (and the server verified).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The URL without its password, for logs and errors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Opens one connection, bounded by the connect timeout, and drives it on a task that
    /// logs how it ended.
    pub async fn connect(&self, doing: &'static str) -> Result<Client, StoreError> {
        let timeout = self.pg.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
        let attempt = async {
            match &self.tls {
                Some(tls) => {
                    let (client, connection) = self.pg.connect(tls.clone()).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
                None => {
                    let (client, connection) = self.pg.connect(NoTls).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result.map_err(|e| StoreError::from_pg(doing, e).into_unavailable(doing)),
            Err(_) => Err(StoreError::Unavailable { doing, reason: format!("no answer within {timeout:?}") }),
        }
    }

    /// What a pool needs to stop a statement on the server after giving up on it.
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller { tls: self.tls.clone() }
    }

    /// A pool manager that opens connections exactly as [`Connector::connect`] does.
    pub(crate) fn manager(&self) -> deadpool_postgres::Manager {
        let manager_config =
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast };
        match &self.tls {
            Some(tls) => deadpool_postgres::Manager::from_config(self.pg.clone(), tls.clone(), manager_config),
            None => deadpool_postgres::Manager::from_config(self.pg.clone(), NoTls, manager_config),
        }
    }
}

/// Sends Postgres's out-of-band cancel request for a statement the client stopped waiting
/// for. Without it, a statement abandoned by its client keeps running on the server — behind
/// a transaction-mode pooler there is no server-side `statement_timeout` to end it — holding
/// its locks and a server connection. Poolers (PgBouncer, Supavisor, RDS Proxy) forward the
/// request to the server connection that runs the statement.
#[derive(Clone)]
pub(crate) struct Canceller {
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Canceller {
    /// Fires the cancel request on its own task: the caller has already given up and must
    /// not wait for the server a second time.
    pub(crate) fn cancel(&self, token: tokio_postgres::CancelToken, doing: &'static str) {
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let sent = match tls {
                Some(tls) => token.cancel_query(tls).await,
                None => token.cancel_query(NoTls).await,
            };
            match sent {
                Ok(()) => tracing::warn!(doing, "statement cancelled on the server after its time ran out"),
                Err(e) => tracing::warn!(doing, error = %e, "could not cancel a timed-out statement"),
            }
        });
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "database connection ended with an error");
    }
}

/// TLS over rustls + ring (the same stack as the AWS clients), verifying the server against
/// `DB_SSL_ROOT_CERT` when set, else the system's roots.
fn rustls_connector(config: &DbConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let bad = |reason: String| StoreError::Unavailable { doing: "setting up TLS", reason };
    let mut roots = rustls::RootCertStore::empty();
    match &config.ssl_root_cert {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| bad(format!("DB_SSL_ROOT_CERT: {e}")))?;
                roots.add(cert).map_err(|e| bad(format!("DB_SSL_ROOT_CERT: {e}")))?;
            }
        }
        None => {
            // Unreadable individual system certificates are skipped, as every TLS client does.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
}
