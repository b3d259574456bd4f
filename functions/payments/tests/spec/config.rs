//! Start-up validation: a wrong or half-made payments configuration stops the process.

use std::time::Duration;

use config::{ConfigError, Env};
use payments::{BasisPoints, DEFAULT_API_BASE, PaymentsConfig};

fn config(pairs: &[(&str, &str)], in_lambda: bool) -> Result<PaymentsConfig, ConfigError> {
    let mut env = Env::from_pairs(pairs.iter().copied());
    if in_lambda {
        env = env.with("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
    }
    PaymentsConfig::from_env(&env)
}

#[test]
fn no_key_means_local_payments_with_a_random_secret_and_no_tax() {
    let Ok(PaymentsConfig::Local(a)) = config(&[], false) else { panic!("expected local") };
    let Ok(PaymentsConfig::Local(b)) = config(&[], false) else { panic!("expected local") };
    assert_ne!(a.webhook_secret, b.webhook_secret, "a fresh secret per process");
    assert_eq!(a.tax_rate, BasisPoints::new(0));
    assert_eq!(config(&[("STRIPE_SECRET_KEY", "  ")], false).map(|c| matches!(c, PaymentsConfig::Local(_))), Ok(true));
}

#[test]
fn local_settings_can_be_fixed() {
    let Ok(PaymentsConfig::Local(local)) =
        config(&[("LOCAL_WEBHOOK_SECRET", "whsec_dev"), ("LOCAL_TAX_RATE_BP", "825")], false)
    else {
        panic!("expected local")
    };
    assert_eq!(local.webhook_secret.expose(), "whsec_dev");
    assert_eq!(local.tax_rate, BasisPoints::new(825));
    assert!(matches!(config(&[("LOCAL_TAX_RATE_BP", "10000")], false), Err(ConfigError::Invalid { .. })));
}

#[test]
fn stripe_can_be_required_and_always_is_in_production() {
    assert_eq!(config(&[("PAYMENTS_REQUIRE_STRIPE", "1")], false), Err(ConfigError::Missing("STRIPE_SECRET_KEY")));
    assert_eq!(config(&[], true), Err(ConfigError::Missing("STRIPE_SECRET_KEY")));
    assert_eq!(config(&[("APP_ENV", "production")], false), Err(ConfigError::Missing("STRIPE_SECRET_KEY")));
    // Production cannot be talked into the local stand-in, in Lambda or not.
    for lambda in [true, false] {
        let refused = config(&[("APP_ENV", "production"), ("PAYMENTS_REQUIRE_STRIPE", "0")], lambda);
        assert!(matches!(refused, Err(ConfigError::Invalid { key: "PAYMENTS_REQUIRE_STRIPE", .. })), "{refused:?}");
    }
    // A local Lambda emulator in development mode may use it.
    let dev_lambda = config(&[("APP_ENV", "development")], true);
    assert!(matches!(dev_lambda, Ok(PaymentsConfig::Local(_))));
    assert!(matches!(config(&[("PAYMENTS_REQUIRE_STRIPE", "maybe")], false), Err(ConfigError::Invalid { .. })));
}

#[test]
fn a_key_needs_a_webhook_secret_and_vice_versa() {
    assert_eq!(
        config(&[("STRIPE_SECRET_KEY", "sk_test_123")], false),
        Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"))
    );
    assert!(matches!(
        config(&[("STRIPE_WEBHOOK_SECRET", "whsec_1")], false),
        Err(ConfigError::Invalid { key: "STRIPE_WEBHOOK_SECRET", .. })
    ));
}

#[test]
fn only_secret_or_restricted_keys_are_accepted() {
    for key in ["pk_test_123", "whsec_123", "sk_test_12 3", "test"] {
        let result = config(&[("STRIPE_SECRET_KEY", key), ("STRIPE_WEBHOOK_SECRET", "whsec_1")], false);
        assert!(matches!(result, Err(ConfigError::Invalid { key: "STRIPE_SECRET_KEY", .. })), "{key}");
        // The rejected value is not echoed back.
        assert!(!format!("{result:?}").contains(key), "{key}");
    }
    for key in ["sk_test_123", "rk_live_123"] {
        assert!(config(&[("STRIPE_SECRET_KEY", key), ("STRIPE_WEBHOOK_SECRET", "whsec_1")], false).is_ok());
    }
}

#[test]
fn stripe_settings_have_safe_defaults_and_validated_overrides() {
    let Ok(PaymentsConfig::Stripe(stripe)) =
        config(&[("STRIPE_SECRET_KEY", "sk_test_123"), ("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old")], false)
    else {
        panic!("expected stripe")
    };
    assert_eq!(stripe.webhook_secrets.len(), 2, "comma-separated secrets for rotation");
    assert_eq!(stripe.settings.api_base, DEFAULT_API_BASE);
    assert_eq!(stripe.settings.timeout, Duration::from_millis(3000));
    assert_eq!(stripe.settings.retry.max_retries, 2);

    let Ok(PaymentsConfig::Stripe(custom)) = config(
        &[
            ("STRIPE_SECRET_KEY", "sk_test_123"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_1"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111/"),
            ("STRIPE_TIMEOUT_MS", "800"),
            ("STRIPE_MAX_RETRIES", "0"),
        ],
        false,
    ) else {
        panic!("expected stripe")
    };
    assert_eq!(custom.settings.api_base, "http://127.0.0.1:12111");
    assert_eq!(custom.settings.timeout, Duration::from_millis(800));
    assert_eq!(custom.settings.retry.max_retries, 0);

    let base = [("STRIPE_SECRET_KEY", "sk_test_123"), ("STRIPE_WEBHOOK_SECRET", "whsec_1")];
    for (key, value) in [
        ("STRIPE_API_BASE", "ftp://stripe"),
        ("STRIPE_TIMEOUT_MS", "0"),
        ("STRIPE_TIMEOUT_MS", "soon"),
        ("STRIPE_MAX_RETRIES", "50"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((key, value));
        assert!(matches!(config(&pairs, false), Err(ConfigError::Invalid { .. })), "{key}={value}");
    }
}

#[test]
fn a_live_key_is_never_sent_over_plain_http() {
    let result = config(
        &[
            ("STRIPE_SECRET_KEY", "sk_live_123"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_1"),
            ("STRIPE_API_BASE", "http://stripe.internal"),
        ],
        false,
    );
    assert!(matches!(result, Err(ConfigError::Invalid { key: "STRIPE_API_BASE", .. })));
}

#[test]
fn debug_output_of_a_config_shows_no_secret() {
    let stripe =
        config(&[("STRIPE_SECRET_KEY", "sk_test_SECRETKEY"), ("STRIPE_WEBHOOK_SECRET", "whsec_SECRETHOOK")], false)
            .unwrap();
    let local = config(&[("LOCAL_WEBHOOK_SECRET", "whsec_SECRETLOCAL")], false).unwrap();
    let text = format!("{stripe:?} {local:?} {:?} {:?}", stripe.build().unwrap(), local.build().unwrap());
    assert!(!text.contains("SECRET"), "{text}");
}

#[test]
fn build_gives_the_configured_provider() {
    assert_eq!(config(&[], false).unwrap().build().unwrap().name(), "local");
    let stripe = config(&[("STRIPE_SECRET_KEY", "sk_test_1"), ("STRIPE_WEBHOOK_SECRET", "whsec_1")], false).unwrap();
    assert_eq!(stripe.build().unwrap().name(), "stripe");
}
