//! Which object store a function uses, read from the environment once at start-up.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `OBJECT_STORE` | `local` in development; required in production (`APP_ENV`) | `s3` or `local` |
//! | `S3_BUCKET` | (required for `s3`) | bucket name |
//! | `S3_ENDPOINT` | AWS | `https://<account>.r2.cloudflarestorage.com`, `http://127.0.0.1:5005` … |
//! | `S3_FORCE_PATH_STYLE` | `true` with `S3_ENDPOINT`, else `false` | path-style URLs |
//! | `S3_REGION` | `AWS_REGION`, else `us-east-1` with an endpoint | signing region (`auto` for R2) |
//! | `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY` | the `AWS_*` variables | static keys (R2 tokens) |
//! | `S3_ATTEMPT_TIMEOUT_MS`, `S3_OPERATION_TIMEOUT_MS`, `S3_MAX_ATTEMPTS` | 10000, 30000, 3 | bounds |
//! | `LOCAL_OBJECTS_DIR` | `.dev/objects` | root of the local store |
//! | `LOCAL_OBJECTS_PUBLIC_URL` | `http://127.0.0.1:3000` | the API as the browser reaches it |
//! | `LOCAL_OBJECTS_SECRET` | random per process | HMAC key for signed URLs, ≥ 32 bytes |
//!
//! A local store in production (`APP_ENV=production`, the default inside Lambda) is refused:
//! a function instance's disk is private and temporary, so the worker would never see what
//! the API stored.

use std::path::PathBuf;
use std::sync::Arc;

use aws::{AwsConnection, ConnectionKeys, ConnectionSettings};
use config::{ConfigError, Env, check_http_url};
use serde::Deserialize;

use crate::local::{LocalStore, LocalStoreConfig, MIN_SECRET_BYTES};
use crate::s3::{S3Store, S3StoreConfig};
use crate::{ObjectError, ObjectStore};

const S3_KEYS: ConnectionKeys = ConnectionKeys {
    endpoint: "S3_ENDPOINT",
    region: "S3_REGION",
    access_key_id: "S3_ACCESS_KEY_ID",
    secret_access_key: "S3_SECRET_ACCESS_KEY",
    attempt_timeout_ms: "S3_ATTEMPT_TIMEOUT_MS",
    operation_timeout_ms: "S3_OPERATION_TIMEOUT_MS",
    max_attempts: "S3_MAX_ATTEMPTS",
};

pub const DEFAULT_LOCAL_DIR: &str = ".dev/objects";
pub const DEFAULT_LOCAL_PUBLIC_URL: &str = "http://127.0.0.1:3000";

/// The object store chosen by the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectsConfig {
    S3(S3StoreConfig),
    Local(LocalStoreConfig),
}

/// An opened store. The local variant is kept concrete because the API must also mount the
/// route that serves its signed URLs.
#[derive(Debug, Clone)]
pub enum OpenedObjectStore {
    S3(Arc<S3Store>),
    Local(Arc<LocalStore>),
}

impl OpenedObjectStore {
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match self {
            Self::S3(store) => store.clone(),
            Self::Local(store) => store.clone(),
        }
    }

    /// The local store, when that is what runs (to mount `/_objects/`).
    pub fn local(&self) -> Option<&Arc<LocalStore>> {
        match self {
            Self::Local(store) => Some(store),
            Self::S3(_) => None,
        }
    }
}

/// The variables in the table above, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct ObjectsSettings {
    pub object_store: Option<StoreKind>,
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_force_path_style: Option<bool>,
    pub s3_region: Option<String>,
    pub aws_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_attempt_timeout_ms: Option<u64>,
    pub s3_operation_timeout_ms: Option<u64>,
    pub s3_max_attempts: Option<u64>,
    pub local_objects_dir: Option<PathBuf>,
    pub local_objects_public_url: Option<String>,
    pub local_objects_secret: Option<String>,
}

/// `OBJECT_STORE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    S3,
    Local,
}

impl ObjectsConfig {
    /// Reads the variables in the table above.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?, env.mode()?.is_production())
    }

    /// Checks the settings: which store, and everything that store needs.
    pub fn from_settings(s: ObjectsSettings, production: bool) -> Result<Self, ConfigError> {
        let kind = match s.object_store {
            Some(kind) => kind,
            None if production => return Err(ConfigError::Missing("OBJECT_STORE")),
            None => StoreKind::Local,
        };
        match kind {
            StoreKind::S3 => {
                let bucket = s.s3_bucket.ok_or(ConfigError::Missing("S3_BUCKET"))?;
                check_bucket(&bucket)?;
                let connection = AwsConnection::from_settings(
                    ConnectionSettings {
                        endpoint: s.s3_endpoint,
                        region: s.s3_region,
                        aws_region: s.aws_region,
                        access_key_id: s.s3_access_key_id,
                        secret_access_key: s.s3_secret_access_key,
                        attempt_timeout_ms: s.s3_attempt_timeout_ms,
                        operation_timeout_ms: s.s3_operation_timeout_ms,
                        max_attempts: s.s3_max_attempts,
                    },
                    &S3_KEYS,
                    None,
                )?;
                let force_path_style = s.s3_force_path_style.unwrap_or(connection.endpoint.is_some());
                Ok(Self::S3(S3StoreConfig { bucket, connection, force_path_style }))
            }
            StoreKind::Local if production => Err(ConfigError::invalid(
                "OBJECT_STORE",
                "local",
                "local is for development, not APP_ENV=production: a function instance's disk is private and temporary; use s3",
            )),
            StoreKind::Local => {
                let public_base_url = s.local_objects_public_url.unwrap_or_else(|| DEFAULT_LOCAL_PUBLIC_URL.into());
                check_http_url("LOCAL_OBJECTS_PUBLIC_URL", &public_base_url)?;
                let secret = match s.local_objects_secret {
                    Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                        return Err(ConfigError::invalid(
                            "LOCAL_OBJECTS_SECRET",
                            &secret,
                            format!("must be at least {MIN_SECRET_BYTES} characters"),
                        ));
                    }
                    other => other.map(String::into_bytes),
                };
                Ok(Self::Local(LocalStoreConfig {
                    root: s.local_objects_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_LOCAL_DIR)),
                    public_base_url: public_base_url.trim_end_matches('/').to_owned(),
                    secret,
                }))
            }
        }
    }

    /// Builds the store: no network traffic for S3; creates the directories for local.
    pub fn open(&self) -> Result<OpenedObjectStore, ObjectError> {
        Ok(match self {
            Self::S3(config) => OpenedObjectStore::S3(Arc::new(S3Store::new(config))),
            Self::Local(config) => OpenedObjectStore::Local(Arc::new(LocalStore::open(config)?)),
        })
    }
}

/// S3's bucket naming rules (3–63 of `a-z0-9.-`, starting and ending alphanumeric): a typo
/// here would otherwise surface as a confusing signature or DNS error.
fn check_bucket(bucket: &str) -> Result<(), ConfigError> {
    let bytes = bucket.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok { Ok(()) } else { Err(ConfigError::invalid("S3_BUCKET", bucket, "not a valid bucket name")) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use config::parse_bool;

    use super::*;
    use aws::AwsCredentials;

    fn parse(pairs: &[(&str, &str)], in_lambda: bool) -> Result<ObjectsConfig, ConfigError> {
        let mut env = Env::from_pairs(pairs.iter().copied());
        if in_lambda {
            env = env.with("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        }
        ObjectsConfig::from_env(&env)
    }

    #[test]
    fn local_is_the_default_outside_lambda() {
        let Ok(ObjectsConfig::Local(local)) = parse(&[], false) else { panic!("expected local") };
        assert_eq!(local.root, PathBuf::from(DEFAULT_LOCAL_DIR));
        assert_eq!(local.public_base_url, DEFAULT_LOCAL_PUBLIC_URL);
        assert_eq!(local.secret, None);
    }

    #[test]
    fn production_must_choose_and_cannot_choose_local_whatever_the_host() {
        assert_eq!(parse(&[], true), Err(ConfigError::Missing("OBJECT_STORE")));
        assert_eq!(parse(&[("APP_ENV", "production")], false), Err(ConfigError::Missing("OBJECT_STORE")));
        assert!(matches!(
            parse(&[("APP_ENV", "production"), ("OBJECT_STORE", "local")], false),
            Err(ConfigError::Invalid { key: "OBJECT_STORE", .. })
        ));
        assert!(matches!(
            parse(&[("OBJECT_STORE", "local")], true),
            Err(ConfigError::Invalid { key: "OBJECT_STORE", .. })
        ));
    }

    #[test]
    fn unknown_kind_is_named() {
        let err = parse(&[("OBJECT_STORE", "gcs")], false).expect_err("gcs is not supported");
        assert!(err.to_string().contains("OBJECT_STORE"), "{err}");
    }

    #[test]
    fn local_settings_are_validated() {
        let Ok(ObjectsConfig::Local(local)) = parse(
            &[
                ("OBJECT_STORE", "local"),
                ("LOCAL_OBJECTS_DIR", "/tmp/objs"),
                ("LOCAL_OBJECTS_PUBLIC_URL", "http://localhost:8080/"),
                ("LOCAL_OBJECTS_SECRET", &"s".repeat(32)),
            ],
            false,
        ) else {
            panic!("expected local")
        };
        assert_eq!(local.root, PathBuf::from("/tmp/objs"));
        assert_eq!(local.public_base_url, "http://localhost:8080");
        assert_eq!(local.secret.as_deref(), Some("s".repeat(32).as_bytes()));
        assert!(!format!("{local:?}").contains("sssss"), "Debug must not print the secret");

        assert!(matches!(
            parse(&[("LOCAL_OBJECTS_SECRET", "short")], false),
            Err(ConfigError::Invalid { key: "LOCAL_OBJECTS_SECRET", .. })
        ));
        for bad in ["localhost:3000", "ftp://x", "http://", "http://x/?a=b"] {
            assert!(
                matches!(
                    parse(&[("LOCAL_OBJECTS_PUBLIC_URL", bad)], false),
                    Err(ConfigError::Invalid { key: "LOCAL_OBJECTS_PUBLIC_URL", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn s3_needs_a_valid_bucket() {
        assert_eq!(parse(&[("OBJECT_STORE", "s3")], false), Err(ConfigError::Missing("S3_BUCKET")));
        for bad in ["ab", "Uploads", "-x-", "a_b", &"a".repeat(64)] {
            assert!(
                matches!(
                    parse(&[("OBJECT_STORE", "s3"), ("S3_BUCKET", bad), ("S3_REGION", "eu-west-1")], false),
                    Err(ConfigError::Invalid { key: "S3_BUCKET", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn s3_on_aws_uses_the_lambda_region_and_role() {
        let Ok(ObjectsConfig::S3(s3)) =
            parse(&[("OBJECT_STORE", "s3"), ("S3_BUCKET", "stolentee-uploads"), ("AWS_REGION", "eu-west-1")], true)
        else {
            panic!("expected s3")
        };
        assert_eq!(s3.bucket, "stolentee-uploads");
        assert_eq!(s3.connection.region, "eu-west-1");
        assert_eq!(s3.connection.endpoint, None);
        assert_eq!(s3.connection.credentials, AwsCredentials::Environment);
        assert!(!s3.force_path_style);
        assert_eq!(s3.connection.timeouts.attempt, Duration::from_secs(10));

        assert_eq!(
            parse(&[("OBJECT_STORE", "s3"), ("S3_BUCKET", "stolentee-uploads")], true),
            Err(ConfigError::Missing("S3_REGION"))
        );
    }

    #[test]
    fn s3_on_r2_or_moto() {
        let Ok(ObjectsConfig::S3(s3)) = parse(
            &[
                ("OBJECT_STORE", "s3"),
                ("S3_BUCKET", "uploads"),
                ("S3_ENDPOINT", "https://acct.r2.cloudflarestorage.com"),
                ("S3_REGION", "auto"),
                ("S3_ACCESS_KEY_ID", "AKID"),
                ("S3_SECRET_ACCESS_KEY", "topsecret"),
                ("S3_ATTEMPT_TIMEOUT_MS", "2000"),
                ("S3_OPERATION_TIMEOUT_MS", "5000"),
                ("S3_MAX_ATTEMPTS", "5"),
            ],
            true,
        ) else {
            panic!("expected s3")
        };
        assert_eq!(s3.connection.endpoint.as_deref(), Some("https://acct.r2.cloudflarestorage.com"));
        assert_eq!(s3.connection.region, "auto");
        assert!(s3.force_path_style, "path style is the default with an endpoint");
        assert!(
            matches!(&s3.connection.credentials, AwsCredentials::Static { access_key_id, .. } if access_key_id == "AKID")
        );
        assert!(!format!("{s3:?}").contains("topsecret"), "Debug must not print the secret");
        assert_eq!(s3.connection.timeouts.attempt, Duration::from_secs(2));
        assert_eq!(s3.connection.timeouts.operation, Duration::from_secs(5));
        assert_eq!(s3.connection.timeouts.max_attempts, 5);

        let Ok(ObjectsConfig::S3(moto)) = parse(
            &[
                ("OBJECT_STORE", "s3"),
                ("S3_BUCKET", "uploads"),
                ("S3_ENDPOINT", "http://127.0.0.1:5005"),
                ("S3_FORCE_PATH_STYLE", "false"),
            ],
            false,
        ) else {
            panic!("expected s3")
        };
        assert_eq!(moto.connection.region, "us-east-1");
        assert!(!moto.force_path_style);
    }

    #[test]
    fn s3_settings_are_validated() {
        let base = [("OBJECT_STORE", "s3"), ("S3_BUCKET", "uploads"), ("S3_REGION", "us-east-1")];
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            parse(&pairs, false)
        };
        let invalid = |r: Result<ObjectsConfig, ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        assert_eq!(invalid(with(("S3_ENDPOINT", "127.0.0.1:5005"))), "S3_ENDPOINT");
        assert_eq!(invalid(with(("S3_FORCE_PATH_STYLE", "maybe"))), "S3_FORCE_PATH_STYLE");
        assert_eq!(invalid(with(("S3_REGION", "us east"))), "S3_REGION");
        assert_eq!(invalid(with(("S3_ATTEMPT_TIMEOUT_MS", "0"))), "S3_ATTEMPT_TIMEOUT_MS");
        assert_eq!(invalid(with(("S3_ATTEMPT_TIMEOUT_MS", "soon"))), "S3_ATTEMPT_TIMEOUT_MS");
        assert_eq!(invalid(with(("S3_OPERATION_TIMEOUT_MS", "5"))), "S3_OPERATION_TIMEOUT_MS");
        assert_eq!(invalid(with(("S3_MAX_ATTEMPTS", "100"))), "S3_MAX_ATTEMPTS");
        assert_eq!(with(("S3_ACCESS_KEY_ID", "AKID")), Err(ConfigError::Missing("S3_SECRET_ACCESS_KEY")));
        assert_eq!(with(("S3_SECRET_ACCESS_KEY", "x")), Err(ConfigError::Missing("S3_ACCESS_KEY_ID")));
    }

    #[test]
    fn booleans() {
        for (raw, want) in [("true", true), ("1", true), ("YES", true), ("false", false), ("0", false), ("No", false)] {
            assert_eq!(parse_bool("K", raw), Ok(want), "{raw}");
        }
        assert!(parse_bool("K", "").is_err());
    }
}
