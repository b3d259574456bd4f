//! `migrate` connects the way the functions do. Against a server that accepts only TLS
//! (every managed Postgres) it succeeds and verifies the server's certificate, where a plain
//! connection is refused.
//!
//! The server is a throwaway cluster made here: `initdb`, a CA and a server certificate
//! generated for this run, `ssl=on`, and a `pg_hba.conf` with `hostssl` lines only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use db::{Connector, DbConfig, Purpose};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM.
struct Certificates {
    ca: String,
    server: String,
    server_key: String,
}

fn certificates() -> Certificates {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name.push(DnType::CommonName, "stolentee test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

    let server_key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("server params");
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server = params.signed_by(&server_key, &ca, &ca_key).expect("server certificate");
    Certificates { ca: ca.pem(), server: server.pem(), server_key: server_key.serialize_pem() }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `PG_BINDIR`, else the newest
/// Debian-style `/usr/lib/postgresql/<version>/bin`, else the `PATH`.
fn postgres_bindir() -> PathBuf {
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
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).find(|d| has_all(d))).unwrap_or_default();
    on_path.expect(
        "this test starts its own PostgreSQL server and needs initdb, pg_ctl and postgres \
         (Debian: apt-get install postgresql; `make test` installs them) or PG_BINDIR",
    )
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (initdb and postgres refuse root).
fn run_pg(program: &Path, args: &[&str]) -> Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A PostgreSQL cluster that accepts TLS connections only; stopped and deleted on drop.
struct TlsOnlyServer {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    ca_file: PathBuf,
}

impl TlsOnlyServer {
    fn start() -> Self {
        let bindir = postgres_bindir();
        let dir = std::env::temp_dir().join(format!("stolentee-tls-{}-{}", std::process::id(), free_port()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("creating the cluster directory");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
            assert!(status.is_ok_and(|s| s.success()), "chown of the cluster directory");
        }
        let data_str = data.to_str().expect("UTF-8 temp path");
        let out = run_pg(&bindir.join("initdb"), &["-D", data_str, "-U", "postgres", "--auth=trust", "--no-locale"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));

        let certs = certificates();
        let write = |name: &str, text: &str| {
            let path = data.join(name);
            std::fs::write(&path, text).expect("writing a certificate file");
            path
        };
        write("server.crt", &certs.server);
        let key = write("server.key", &certs.server_key);
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, &certs.ca).expect("writing the CA file");
        write("pg_hba.conf", "local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key permissions");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status();
            assert!(status.is_ok_and(|s| s.success()), "chown of the data directory");
        }

        let port = free_port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={dir} -c ssl=on",
            dir = dir.display()
        );
        let log = dir.join("server.log");
        let out = run_pg(
            &bindir.join("pg_ctl"),
            &["-D", data_str, "-o", &options, "-l", log.to_str().expect("UTF-8"), "-w", "-t", "30", "start"],
        );
        assert!(
            out.status.success(),
            "starting the TLS-only server failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self { bindir, dir, port, ca_file }
    }

    fn url(&self, sslmode: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode={sslmode}", self.port)
    }

    fn migrate(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars.iter().copied())
            .output()
            .expect("running migrate")
    }
}

impl Drop for TlsOnlyServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        run_pg(&self.bindir.join("pg_ctl"), &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn migrate_runs_over_verified_tls_where_a_plain_connection_is_refused() {
    let server = TlsOnlyServer::start();
    let ca = server.ca_file.to_str().expect("UTF-8");

    // The server really refuses plain connections: what `migrate` used to open.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let plain = runtime.block_on(tokio_postgres::connect(&server.url("disable"), tokio_postgres::NoTls));
    let err = format!("{:?}", plain.err().expect("a plain connection must be refused"));
    assert!(err.contains("no pg_hba.conf entry") || err.contains("no encryption"), "{err}");

    // The one connect path, over TLS, verifying the server against the configured CA.
    let url = server.url("require");
    let out = server.migrate(&["--seed"], &[("DATABASE_URL", &url), ("DB_SSL_ROOT_CERT", ca)]);
    assert!(out.status.success(), "migrate over TLS failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let out = server.migrate(&["--check"], &[("DATABASE_URL", &url), ("DB_SSL_ROOT_CERT", ca)]);
    assert!(out.status.success(), "migrate --check failed:\n{}", String::from_utf8_lossy(&out.stderr));

    // The pools take the same path: a served connection sees the seeded catalog.
    let config =
        DbConfig::from_env(&config::Env::from_pairs([("DATABASE_URL", url.as_str()), ("DB_SSL_ROOT_CERT", ca)]))
            .expect("settings");
    let products: i64 = runtime.block_on(async {
        let connector = Connector::new(&config, &config.primary_url, Purpose::Serving).expect("connector");
        assert!(connector.uses_tls());
        let client = connector.connect("counting products").await.expect("a TLS connection");
        client.query_one("SELECT count(*) FROM products", &[]).await.expect("query").get(0)
    });
    assert!(products > 0, "the seed catalog is there");

    // The certificate is verified, not merely accepted: without the CA, the system's roots
    // do not know this server and the connection fails.
    let out = server.migrate(&["--check"], &[("DATABASE_URL", &url)]);
    assert!(!out.status.success(), "an unverifiable server must be refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
