use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

const MINIMAL: &str = r#"
database_url = "postgres://u:hunter2@localhost/db"
[admin]
jwt_secret = "0123456789abcdef0123456789abcdef"
[[deployments]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:9/v1/"
models = { "gpt-4o-mini" = "gpt-4o-mini", "fast" = { upstream = "gpt-4o-mini" } }
"#;

fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    Config::from_toml_str("tollgate.toml", text, env)
}

#[test]
fn minimal_file_gets_defaults_and_routes() {
    let config = parse(MINIMAL, &env_of(&[])).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.deployments[0].base_url, "http://127.0.0.1:9/v1");
    assert_eq!(
        config.deployments[0].models["fast"],
        ModelRoute {
            upstream: "gpt-4o-mini".into(),
            price: "gpt-4o-mini".into()
        }
    );
    assert!(config.run_migrations);
}

#[test]
fn environment_overrides_the_file() {
    let env = env_of(&[
        (ENV_LISTEN, "127.0.0.1:9999"),
        (ENV_DATABASE_URL, "postgres://other/db"),
        (ENV_ADMIN_JWT_SECRET, "ffffffffffffffffffffffffffffffffffff"),
    ]);
    let config = parse(MINIMAL, &env).unwrap();
    assert_eq!(config.listen.port(), 9999);
    assert_eq!(config.database_url.expose(), "postgres://other/db");
    let secret = config.admin.jwt_secret.unwrap();
    assert!(secret.expose().starts_with("ffff"));
}

#[test]
fn debug_output_never_shows_secrets() {
    let env = env_of(&[("PROVIDER_KEY", "sk-very-secret")]);
    let text = MINIMAL.replace(
        "kind = \"openai\"",
        "kind = \"openai\"\napi_key_env = \"PROVIDER_KEY\"",
    );
    let config = parse(&text, &env).unwrap();
    let debug = format!("{config:?}");
    for secret in ["hunter2", SECRET, "sk-very-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn unknown_field_is_named() {
    let err = parse(&format!("{MINIMAL}\n[ledger]\nbatch = 3\n"), &env_of(&[])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("tollgate.toml: "), "{msg}");
    assert!(msg.contains("batch"), "{msg}");
}

#[test]
fn errors_name_field_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "base_url = \"http://127.0.0.1:9/v1/\"",
            "base_url = \"ftp://x\"",
            "deployments[0].base_url",
        ),
        (
            "kind = \"openai\"",
            "kind = \"watsonx\"",
            "deployments[0].kind",
        ),
        (
            "kind = \"openai\"",
            "kind = \"openai\"\napi_key_env = \"NOPE_KEY\"",
            "NOPE_KEY is not set",
        ),
        (
            "jwt_secret = \"0123456789abcdef0123456789abcdef\"",
            "jwt_secret = \"short\"",
            "admin.jwt_secret",
        ),
        (
            "database_url = \"postgres://u:hunter2@localhost/db\"",
            "",
            "TOLLGATE_DATABASE_URL",
        ),
    ];
    for (from, to, expected) in cases {
        let err = parse(&MINIMAL.replace(from, to), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err} should mention {expected}");
        assert!(!err.contains("hunter2"));
    }
}

#[test]
fn a_deployment_name_used_twice_is_refused() {
    let text = format!(
        "{MINIMAL}\n[[deployments]]\nname = \"mock\"\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = {{ \"fast\" = \"m\" }}\n"
    );
    let err = parse(&text, &env_of(&[])).unwrap_err().to_string();
    assert!(
        err.contains("deployments[1].name") && err.contains("\"mock\""),
        "{err}"
    );
}

#[test]
fn azure_deployments_take_an_api_version_and_entra_id_and_nothing_else_does() {
    let env = env_of(&[("AZ", "az-key")]);
    let azure = |extra: &str| {
        format!(
            "{MINIMAL}\n[[deployments]]\nname = \"azure\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\napi_key_env = \"AZ\"\n{extra}\nmodels = {{ \"gpt-4o\" = {{ upstream = \"my-4o\", price = \"gpt-4o\" }} }}\n"
        )
    };
    let config = parse(
        &azure("api_version = \"2024-10-21\"\nauth = \"entra-id\""),
        &env,
    )
    .unwrap();
    let deployment = &config.deployments[1];
    assert_eq!(deployment.kind, ProviderKind::Azure);
    assert_eq!(deployment.azure.api_version.as_deref(), Some("2024-10-21"));
    assert!(deployment.azure.entra_id);
    assert_eq!(
        parse(&azure(""), &env).unwrap().deployments[1].azure,
        Default::default()
    );
    for (extra, field, says) in [
        (
            "auth = \"password\"",
            "deployments[1].auth",
            "unknown Azure authentication",
        ),
        (
            "api_version = \"2024 10\"",
            "deployments[1].api_version",
            "is not an api-version",
        ),
    ] {
        let err = parse(&azure(extra), &env).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(says), "{err}");
    }
    let openai = format!(
        "{MINIMAL}\n[[deployments]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"http://x\"\napi_version = \"2024-10-21\"\nmodels = {{ \"m\" = \"m\" }}\n"
    );
    let err = parse(&openai, &env).unwrap_err().to_string();
    assert!(
        err.contains("deployments[1].api_version") && err.contains("not kind = \"azure\""),
        "{err}"
    );
}

#[test]
fn key_pools_priorities_and_anthropic() {
    let env = env_of(&[("K1", "sk-1"), ("K2", "sk-2")]);
    let text = format!(
        "{MINIMAL}\n[[deployments]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\npriority = 1\nweight = 3\napi_keys = [{{ env = \"K1\", weight = 2 }}, {{ env = \"K2\" }}]\nmodels = {{ \"fast\" = \"claude-haiku-4-5\" }}\n"
    );
    let config = parse(&text, &env).unwrap();
    let claude = &config.deployments[1];
    assert_eq!(claude.kind, ProviderKind::Anthropic);
    assert_eq!((claude.priority, claude.weight), (1, 3));
    assert_eq!(
        claude.api_keys.iter().map(|k| k.weight).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(!format!("{config:?}").contains("sk-1"));
    let both = text.replace("api_keys = [", "api_key_env = \"K1\"\napi_keys = [");
    assert!(
        parse(&both, &env)
            .unwrap_err()
            .to_string()
            .contains("api_keys")
    );
    let missing = text.replace("\"K2\"", "\"K3\"");
    assert!(
        parse(&missing, &env)
            .unwrap_err()
            .to_string()
            .contains("K3 is not set")
    );
}

#[test]
fn zero_governance_durations_are_refused() {
    for field in ["reservation_ttl_secs", "redis_timeout_ms"] {
        let text = format!("{MINIMAL}\n[governance]\n{field} = 0\n");
        let err = parse(&text, &env_of(&[])).unwrap_err().to_string();
        assert!(
            err.contains(&format!("governance.{field}")) && err.contains("greater than 0"),
            "{err}"
        );
    }
}

#[test]
fn lease_settings_default_safely_and_bad_ones_are_refused_by_name() {
    let config = parse(MINIMAL, &env_of(&[])).unwrap();
    let leases = &config.governance.leases;
    assert!(leases.enabled);
    assert_eq!(
        (leases.headroom_share, leases.min_headroom_requests),
        (8, 64)
    );
    assert_eq!(leases.ttl, Duration::from_secs(10));
    let headroom = format!("{MINIMAL}\n[governance]\nheadroom_headers = true\n");
    let config = parse(&headroom, &env_of(&[])).unwrap();
    assert!(
        !config.governance.leases.enabled,
        "headroom headers turn leases off"
    );
    for (line, field, says) in [
        ("ttl_secs = 0", "ttl_secs", "greater than 0"),
        ("idle_ms = 0", "idle_ms", "greater than 0"),
        ("horizon_ms = 0", "horizon_ms", "greater than 0"),
        ("headroom_share = 1", "headroom_share", "all of a budget"),
        (
            "ttl_secs = 1\nreport_interval_ms = 400",
            "report_interval_ms",
            "more than a third of ttl_secs",
        ),
        ("lease_ms = 5", "lease_ms", "unknown field"),
    ] {
        let text = format!("{MINIMAL}\n[governance.leases]\n{line}\n");
        let err = parse(&text, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(says), "{line}: {err}");
    }
}

#[test]
fn database_and_ledger_defaults_are_bounded() {
    let config = parse(MINIMAL, &env_of(&[])).unwrap();
    let db = &config.database;
    assert_eq!((db.pool_size, db.admin_pool_size), (10, 4));
    assert_eq!(db.acquire_timeout, Duration::from_secs(5));
    assert_eq!(db.report_timeout, Duration::from_secs(5));
    let ledger = &config.ledger;
    assert_eq!((ledger.batch_size, ledger.max_in_memory), (500, 10_000));
    assert_eq!(ledger.journal_queue(), 2000);
    assert!(!ledger.journal_fsync);
    assert_eq!(ledger.retention, None);
    assert_eq!(
        ledger.journal_dir,
        std::path::PathBuf::from(".tollgate/journal")
    );
    assert_eq!(ledger.memory_bound(), 10_000 + 2000 + 2 * 500);
}

#[test]
fn journal_and_retention_fields_are_read() {
    let text = MINIMAL.replace(
        "[admin]",
        "[ledger]\nspill_dir = \"/var/lib/tollgate\"\njournal_fsync = true\nretention_days = 90\n[admin]",
    );
    let ledger = parse(&text, &env_of(&[])).unwrap().ledger;
    // The old name of the directory still works.
    assert_eq!(
        ledger.journal_dir,
        std::path::PathBuf::from("/var/lib/tollgate")
    );
    assert!(ledger.journal_fsync);
    assert_eq!(
        ledger.retention,
        Some(crate::config::RetentionConfig {
            days: 90,
            interval: Duration::from_secs(86_400)
        })
    );
    let short = MINIMAL.replace(
        "[admin]",
        "[ledger]\nretention_days = 7\nretention_interval_secs = 59\n[admin]",
    );
    let err = parse(&short, &env_of(&[])).unwrap_err().to_string();
    assert!(
        err.contains("ledger.retention_interval_secs") && err.contains("use 60 to"),
        "{err}"
    );
}

#[test]
fn database_fields_are_read() {
    let text = format!(
        "{}\n[database]\npool_size = 3\nadmin_pool_size = 1\nacquire_timeout_ms = 250\nreport_timeout_ms = 30000\n",
        MINIMAL.replace("[admin]", "[ledger]\nmax_in_memory = 500\n[admin]")
    );
    let config = parse(&text, &env_of(&[])).unwrap();
    assert_eq!(config.database.pool_size, 3);
    assert_eq!(config.database.admin_pool_size, 1);
    assert_eq!(config.database.acquire_timeout, Duration::from_millis(250));
    assert_eq!(config.database.report_timeout, Duration::from_secs(30));
    assert_eq!(config.ledger.max_in_memory, 500);
}

#[test]
fn bad_database_and_ledger_values_name_the_field_and_the_fix() {
    for (section, field, fix) in [
        ("database", "pool_size = 1", "use 2 to 1000"),
        ("database", "admin_pool_size = 0", "use 1 to 1000"),
        (
            "database",
            "acquire_timeout_ms = 0",
            "wait for a free connection",
        ),
        (
            "database",
            "report_timeout_ms = 0",
            "how long a report may run",
        ),
        (
            "ledger",
            "max_in_memory = 10",
            "use ledger.batch_size (500)",
        ),
        ("ledger", "batch_size = 0", "use 1 to 10000"),
        ("ledger", "retention_days = 0", "use 1 to 36500 days"),
        (
            "ledger",
            "retention_interval_secs = 3600",
            "set ledger.retention_days",
        ),
        ("database", "pool = 3", "unknown field"),
    ] {
        let text = format!("{MINIMAL}\n[{section}]\n{field}\n");
        let msg = parse(&text, &env_of(&[])).unwrap_err().to_string();
        let name = field.split(' ').next().unwrap();
        assert!(msg.contains(name), "{field}: {msg}");
        assert!(msg.contains(fix), "{field}: {msg}");
        if fix != "unknown field" {
            assert!(
                msg.contains(&format!("`{section}.{name}`")),
                "{field}: {msg}"
            );
        }
    }
}

#[test]
fn the_shipped_config_files_are_valid() {
    let env = env_of(&[(ENV_ADMIN_JWT_SECRET, SECRET)]);
    for (name, text) in [
        ("tollgate.toml", include_str!("../../tollgate.toml")),
        (
            "docker/tollgate.toml",
            include_str!("../../docker/tollgate.toml"),
        ),
    ] {
        let config =
            Config::from_toml_str(name, text, &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.ledger.max_in_memory, 10_000, "{name}");
        assert_eq!(config.database.pool_size, 10, "{name}");
    }
}

#[test]
fn key_cache_and_client_auth_defaults() {
    let config = parse(MINIMAL, &env_of(&[])).unwrap();
    assert_eq!(config.key_cache.max_entries, 100_000);
    assert_eq!(
        config.key_cache.min_refresh_interval,
        Duration::from_millis(100)
    );
    assert_eq!(config.key_cache.refresh_interval, Duration::from_secs(30));
    assert_eq!(config.client_auth.max_failures_per_minute, Some(100));
    assert_eq!(config.client_auth.tracked_addresses, 50_000);
    assert_eq!(config.client_auth.trusted_proxy_hops, 0);
    let off = format!("{MINIMAL}\n[client_auth]\nmax_failures_per_minute = 0\n");
    assert_eq!(
        parse(&off, &env_of(&[]))
            .unwrap()
            .client_auth
            .max_failures_per_minute,
        None
    );
}

#[test]
fn key_cache_and_client_auth_bounds_are_checked_by_name() {
    for (table, field, value) in [
        ("key_cache", "max_entries", "0"),
        ("key_cache", "min_refresh_interval_ms", "5"),
        ("key_cache", "min_refresh_interval_ms", "60001"),
        ("key_cache", "refresh_interval_secs", "0"),
        ("client_auth", "tracked_addresses", "0"),
        ("client_auth", "trusted_proxy_hops", "11"),
    ] {
        let text = format!("{MINIMAL}\n[{table}]\n{field} = {value}\n");
        let err = parse(&text, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains(&format!("field `{table}.{field}`")), "{err}");
    }
}
