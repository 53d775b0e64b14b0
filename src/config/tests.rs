//! The configuration's tests: defaults, every key read, every problem
//! reported with file and key, ranges, aliases.

use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Some(Path::new("test.toml")), &Overrides::default())
}

fn problems(text: &str) -> String {
    load(text)
        .expect_err("configuration should be rejected")
        .to_string()
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let config = load("").unwrap();
    assert_eq!(config.database.path, PathBuf::from(DEFAULT_DATABASE_PATH));
    assert_eq!(config.database.max_open_conns, 10);
    assert_eq!(config.database.max_idle_conns, 5);
    assert_eq!(config.database.conn_max_lifetime, Duration::from_secs(1800));
    assert_eq!(config.database.busy_timeout, Duration::from_secs(5));
    assert_eq!(config.logging.format, LogFormat::Auto);
    assert_eq!(config.logging.level, "info");
    assert!(
        config.log.path == Path::new(DEBIAN_MAINLOG) || config.log.path == Path::new(RHEL_MAINLOG)
    );
}

#[test]
fn every_key_is_read() {
    let config = load(
        r#"
        [log]
        path = "/srv/exim/mainlog"
        [database]
        path = "/tmp/x.db"
        max_open_conns = 4
        max_idle_conns = 2
        conn_max_lifetime = "1h 5m"
        busy_timeout = "250ms"
        pool_wait_timeout = "3s"
        [ingest]
        batch_size = 10
        flush_interval = "1s"
        channel_capacity = 20
        channel_capacity_bytes = 100000
        batch_size_bytes = 200000
        max_line_bytes = 4096
        [health]
        interval = "2s"
        timeout = "1s"
        backoff_min = "10ms"
        backoff_max = "1m"
        [diagnostics]
        level = "debug"
        format = "json"
        [retention]
        log_lines_days = 11
        delivery_attempts_days = 12
        rejections_days = 13
        messages_days = 14
        audit_log_days = 15
        interval = "2h"
        "#,
    )
    .unwrap();
    assert_eq!(config.log.path, PathBuf::from("/srv/exim/mainlog"));
    assert_eq!(config.database.max_open_conns, 4);
    assert_eq!(config.database.max_idle_conns, 2);
    assert_eq!(config.database.conn_max_lifetime, Duration::from_secs(3900));
    assert_eq!(config.database.busy_timeout, Duration::from_millis(250));
    assert_eq!(config.database.pool_wait_timeout, Duration::from_secs(3));
    assert_eq!(config.ingest.batch_size, 10);
    assert_eq!(config.ingest.flush_interval, Duration::from_secs(1));
    assert_eq!(config.ingest.channel_capacity, 20);
    assert_eq!(config.ingest.max_line_bytes, 4096);
    assert_eq!(config.health.interval, Duration::from_secs(2));
    assert_eq!(config.health.timeout, Duration::from_secs(1));
    assert_eq!(config.health.backoff_min, Duration::from_millis(10));
    assert_eq!(config.health.backoff_max, Duration::from_secs(60));
    assert_eq!(config.logging.level, "debug");
    assert_eq!(config.logging.format, LogFormat::Json);
    assert_eq!(config.ingest.channel_capacity_bytes, 100_000);
    assert_eq!(config.ingest.batch_size_bytes, 200_000);
    let retention = config.retention;
    assert_eq!(
        (
            retention.log_lines_days,
            retention.delivery_attempts_days,
            retention.rejections_days,
            retention.messages_days,
            retention.audit_log_days,
        ),
        (11, 12, 13, 14, 15)
    );
    assert_eq!(retention.interval, Duration::from_secs(7200));
}

#[test]
fn the_old_name_of_diagnostics_is_still_accepted() {
    let config = load("[logging]\nlevel = \"debug\"\n").unwrap();
    assert_eq!(config.logging.level, "debug");
    assert!(config.to_toml().contains("[diagnostics]"));
}

#[test]
fn the_old_name_of_log_lines_days_is_still_accepted() {
    let config = load("[retention]\nlog_entries_days = 7\n").unwrap();
    assert_eq!(config.retention.log_lines_days, 7);
    assert!(config.to_toml().contains("log_lines_days = 7"));
}

#[test]
fn errors_name_the_file_the_key_and_the_value() {
    assert_eq!(
        problems("[database]\nmax_open_conns = 0\n"),
        "test.toml: [database] max_open_conns: must be at least 1, got 0"
    );
    let message = problems("[database]\nbusy_timeout = \"soon\"\n");
    assert!(
        message.starts_with("test.toml: [database] busy_timeout: not a duration"),
        "{message}"
    );
    assert!(message.ends_with("got \"soon\""), "{message}");
}

#[test]
fn all_problems_are_reported_together() {
    let message = problems(
        "[database]\nmax_open_conns = 2\nmax_idle_conns = 3\n[ingest]\nbatch_size = -1\n[logging]\nformat = \"xml\"\n",
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 3, "{message}");
    assert!(lines[0].contains("[database] max_idle_conns: must not exceed"));
    assert!(lines[1].contains("[ingest] batch_size: must be at least 1, got -1"));
    assert!(lines[2].contains("[diagnostics] format: must be one of auto, journald, text, json"));
}

#[test]
fn unknown_keys_and_sections_are_rejected_by_name() {
    let message = problems("[database]\nmax_open_connections = 3\n");
    assert!(message.starts_with("test.toml: "), "{message}");
    assert!(message.contains("max_open_connections"), "{message}");
    let message = problems("[datbase]\npath = \"x\"\n");
    assert!(message.contains("datbase"), "{message}");
}

#[test]
fn every_wrong_type_and_unknown_key_is_reported_not_only_the_first() {
    let message = problems(
        "[ingest]\nbatch_size = \"many\"\nflush_interval = 5\n[database]\nmax_open_conns = \"ten\"\nsize = 3\n",
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 4, "{message}");
    for key in [
        "[ingest] batch_size",
        "[ingest] flush_interval",
        "[database] max_open_conns",
        "[database] size",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("test.toml: {key}: "))),
            "{key}: {message}"
        );
    }
}

#[test]
fn wrong_types_name_the_key() {
    let message = problems("[ingest]\nbatch_size = \"many\"\n");
    assert!(message.contains("batch_size"), "{message}");
}

#[test]
fn backoff_bounds_and_level_are_checked() {
    let message = problems("[health]\nbackoff_min = \"2m\"\nbackoff_max = \"1m\"\n");
    assert!(
        message.contains("[health] backoff_min: must not exceed"),
        "{message}"
    );
    let message = problems("[logging]\nlevel = \"loud=[\"\n");
    assert!(message.contains("[diagnostics] level"), "{message}");
}

#[test]
fn every_duration_and_count_has_an_upper_bound() {
    let keys = [
        ("database", "conn_max_lifetime"),
        ("database", "busy_timeout"),
        ("database", "pool_wait_timeout"),
        ("ingest", "flush_interval"),
        ("health", "interval"),
        ("health", "timeout"),
        ("health", "backoff_min"),
        ("health", "backoff_max"),
        ("retention", "interval"),
    ];
    for (section, key) in keys {
        for value in ["400days", "1000years", "584542046090years"] {
            let message = problems(&format!("[{section}]\n{key} = {value:?}\n"));
            assert!(
                message.contains(&format!("[{section}] {key}: ")),
                "{section}.{key} = {value}: {message}"
            );
        }
    }
    let counts = [
        ("database", "max_open_conns"),
        ("database", "max_idle_conns"),
        ("ingest", "batch_size"),
        ("ingest", "channel_capacity"),
        ("ingest", "max_line_bytes"),
        ("retention", "log_lines_days"),
        ("retention", "log_entries_days"),
        ("retention", "messages_days"),
    ];
    for (section, key) in counts {
        let message = problems(&format!("[{section}]\n{key} = {}\n", i64::MAX));
        assert!(
            message.contains("must be at most"),
            "{section}.{key}: {message}"
        );
    }
}

#[test]
fn log_and_database_paths_that_name_the_wrong_thing_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let message = problems(&format!("[log]\npath = {dir_text:?}\n"));
    assert!(
        message.contains("[log] path: must name Exim's main log, a regular file")
            && message.contains("is a directory"),
        "{message}"
    );
    let message = problems("[log]\npath = \"/var/log/exim4/main\\u0000log\"\n");
    assert!(
        message.contains("[log] path: must not contain a NUL byte"),
        "{message}"
    );
    let message = problems(&format!("[database]\npath = {dir_text:?}\n"));
    assert!(
        message.contains("[database] path: must name the database file, not a directory"),
        "{message}"
    );
    let overrides = Overrides {
        log_path: Some(PathBuf::from("/dev/zero")),
        journal: false,
        database_path: Some(dir.path().to_path_buf()),
        web_listen: None,
    };
    let message = Config::from_toml("", None, &overrides)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("--log: must name Exim's main log") && message.contains("a device"),
        "{message}"
    );
    assert!(
        message.contains("--db: must name the database file"),
        "{message}"
    );
}

#[test]
fn overrides_win_over_the_file() {
    let overrides = Overrides {
        log_path: Some(PathBuf::from("/override/mainlog")),
        journal: false,
        database_path: Some(PathBuf::from("/override/db")),
        web_listen: Some("[::1]:9000".to_owned()),
    };
    let config = Config::from_toml(
        "[log]\npath = \"/file/mainlog\"\n[database]\npath = \"/file/db\"\n[web]\nlisten = \"127.0.0.1:1\"\n",
        None,
        &overrides,
    )
    .unwrap();
    assert_eq!(config.log.path, PathBuf::from("/override/mainlog"));
    assert_eq!(config.database.path, PathBuf::from("/override/db"));
    assert_eq!(config.web.listen.to_string(), "[::1]:9000");
}

#[test]
fn printed_configuration_loads_back_unchanged() {
    let config = load(
        "[database]\nconn_max_lifetime = \"90m\"\nbusy_timeout = \"1500ms\"\n[logging]\nformat = \"text\"\n",
    )
    .unwrap();
    let printed = config.to_toml();
    let reloaded = load(&printed).unwrap();
    assert_eq!(
        Config {
            source: None,
            ..reloaded
        },
        Config {
            source: None,
            ..config
        }
    );
}

#[test]
fn missing_explicit_file_is_an_error_naming_it() {
    let err = Config::load(
        Some(Path::new("/nonexistent/exim-pilot.toml")),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/exim-pilot.toml"));
}

#[test]
fn default_log_is_the_existing_file_else_the_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let debian = dir.path().join("exim4/mainlog");
    let rhel = dir.path().join("exim/main.log");
    let candidates = [debian.clone(), rhel.clone()];
    assert_eq!(first_present_log(&candidates), debian, "nothing exists");

    std::fs::create_dir(rhel.parent().unwrap()).unwrap();
    assert_eq!(
        first_present_log(&candidates),
        rhel,
        "Exim's log directory exists before its first line"
    );

    std::fs::create_dir(debian.parent().unwrap()).unwrap();
    std::fs::write(&rhel, "").unwrap();
    assert_eq!(
        first_present_log(&candidates),
        rhel,
        "a file beats a directory"
    );
}

#[test]
fn the_journal_source_is_chosen_by_key_or_flag_and_needs_no_log_file() {
    let file = "[log]\npath = \"/nonexistent/mainlog\"\nsource = \"journal\"\n\
                journal_identifier = \"exim4\"\njournal_unit = \"exim4.service\"\n";
    let config = Config::from_toml(file, None, &Overrides::default()).unwrap();
    assert_eq!(config.log.source, LogSource::Journal);
    assert_eq!(config.log.journal_identifier, "exim4");
    assert_eq!(config.log.journal_unit.as_deref(), Some("exim4.service"));
    // Printed back, it loads to the same configuration.
    let printed = toml::to_string(&config.to_raw()).unwrap();
    assert_eq!(
        Config::from_toml(&printed, None, &Overrides::default()).unwrap(),
        config
    );

    let overrides = Overrides {
        journal: true,
        ..Overrides::default()
    };
    let config =
        Config::from_toml("[log]\npath = \"/nonexistent/mainlog\"\n", None, &overrides).unwrap();
    assert_eq!(config.log.source, LogSource::Journal);
    assert_eq!(config.log.journal_identifier, "exim");

    let message = problems("[log]\nsource = \"syslog\"\njournal_identifier = \"a=b\"\n");
    assert!(
        message.contains("[log] source: \"syslog\" is not a source"),
        "{message}"
    );
    assert!(message.contains("[log] journal_identifier"), "{message}");
}
