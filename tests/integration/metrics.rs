//! The metrics: `exim-pilot metrics` against `stats`, the counters across
//! restarts, a database made before them, the daemon's `/metrics` and
//! textfile, bad settings at start and on reload, the Grafana dashboard.
//! A real Prometheus scraping across a restart is a system test
//! (tests/system/prometheus.rs).

use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::metrics::{
    assert_agrees_with_stats, generated_log, listening_config, metrics_config, stats_json,
};
use crate::util::{
    Daemon, append_lines, counters_only, family_sum, free_port, http_get, metrics_of,
    parse_exposition, status_is, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn metrics_agree_with_stats_on_the_sample_and_a_generated_log() {
    let dir = TempDir::new().unwrap();
    let sample = crate::util::fixture("sample/mainlog");
    let generated = generated_log(dir.path(), 31, 30_000);
    for (name, log) in [("sample", &sample), ("generated", &generated)] {
        let db = dir.path().join(format!("{name}.db"));
        crate::util::ingest_into(&db, log);
        let samples = metrics_of(&db);
        assert_agrees_with_stats(&samples, &stats_json(&db));
        assert!(samples["exim_pilot_database_bytes"] > 0.0);
        assert_eq!(samples["exim_pilot_counters_complete"], 1.0);
        // Histograms are cumulative and end in their count.
        for (key, value) in &samples {
            if let Some(rest) = key.strip_prefix("exim_pilot_queue_time_seconds_bucket{")
                && rest.ends_with("le=\"+Inf\"}")
            {
                let labels = &rest[..rest.len() - "le=\"+Inf\"}".len()];
                let labels = labels.trim_end_matches(',');
                assert_eq!(
                    *value,
                    samples[&format!("exim_pilot_queue_time_seconds_count{{{labels}}}")]
                );
            }
        }
    }
    let samples = metrics_of(&dir.path().join("sample.db"));
    assert_eq!(samples["exim_pilot_messages_frozen"], 1.0);
    assert_eq!(
        samples["exim_message_errors_total{status=\"451\",enhanced=\"4.7.1\"}"],
        7.0
    );
    assert_eq!(
        samples["exim_pilot_deferrals_total{reason=\"greylisted\"}"],
        7.0
    );
    assert_eq!(
        samples["exim_pilot_rejections_total{stage=\"rcpt\",class=\"permanent\"}"],
        2.0
    );
}

/// A database written before the counters existed is counted once, from
/// its stored lines, by the first writer that opens it; again and again
/// changes nothing.
#[test]
fn a_database_from_before_the_counters_is_counted_once() {
    let dir = TempDir::new().unwrap();
    // More chunks than the seeding reads at a time (64).
    let log = generated_log(dir.path(), 7, 40_000);
    let db = dir.path().join("x.db");
    let ingest = || crate::util::ingest_into(&db, &log);
    ingest();
    let counted = counters_only(&metrics_of(&db));
    // As migration 0010 leaves a database that held lines.
    let conn = deadpool_sqlite::rusqlite::Connection::open(&db).unwrap();
    let chunks: i64 = conn
        .query_row("SELECT count(*) FROM log_chunks", [], |row| row.get(0))
        .unwrap();
    assert!(chunks > 64, "{chunks} chunks");
    conn.execute_batch(
        "DELETE FROM metric_counters; INSERT INTO metric_state VALUES ('needs_seed', 1);",
    )
    .unwrap();
    drop(conn);
    let before = metrics_of(&db);
    assert_eq!(before["exim_pilot_counters_complete"], 0.0);
    assert_eq!(family_sum(&before, "exim_pilot_lines_total"), 0.0);
    ingest();
    let after = metrics_of(&db);
    assert_eq!(after["exim_pilot_counters_complete"], 1.0);
    assert_eq!(counters_only(&after), counted);
    ingest();
    assert_eq!(counters_only(&metrics_of(&db)), counted);
}

/// The daemon serves `/metrics` and writes the textfile; both carry the
/// same counters as `exim-pilot metrics`, and the daemon's own gauges.
/// Reloads with a bad address, a port in use or an unwritable textfile
/// keep the running settings; a good one moves the listener.
#[test]
fn the_daemon_serves_metrics_writes_the_textfile_and_keeps_them_on_a_bad_reload() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    let textfile = dir.path().join("exim-pilot.prom");
    let config = dir.path().join("c.toml");
    let settings = |listen: &str, textfile: &Path| {
        metrics_config(&format!(
            "listen = \"{listen}\"\ntextfile = \"{}\"\ninterval = \"1s\"\n",
            textfile.display()
        ))
    };
    std::fs::write(&config, settings(&format!("127.0.0.1:{port}"), &textfile)).unwrap();
    let sample = std::fs::read_to_string(crate::util::fixture("sample/mainlog")).unwrap();
    let lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log(&format!(
        "serving metrics on http://127.0.0.1:{port}/metrics"
    ));
    append_lines(&dir.path().join("mainlog"), &lines);
    wait_for_lines(&daemon.db, lines.len(), WAIT, Some(&daemon));

    let (head, body) = http_get(port, "/metrics").unwrap();
    assert!(status_is(&head, 200), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let served = parse_exposition(&body);
    let cli = metrics_of(&daemon.db);
    assert_eq!(counters_only(&served), counters_only(&cli));
    assert_eq!(served["exim_pilot_database_up"], 1.0);
    assert_eq!(served["exim_pilot_lag_bytes"], 0.0);
    assert_eq!(served["exim_pilot_lag_seconds"], 0.0);
    assert!(
        !cli.contains_key("exim_pilot_database_up"),
        "the CLI has no daemon to ask"
    );
    let (head, _) = http_get(port, "/nothing").unwrap();
    assert!(status_is(&head, 404), "{head}");

    // The textfile: written every second, with the same counters.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&textfile).unwrap_or_default();
        if counters_only(&parse_exposition(&text)) == counters_only(&cli) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "textfile never caught up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad reloads: each error names its key; the old listener serves on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap().to_string();
    let file_not_dir = dir.path().join("a-file");
    std::fs::write(&file_not_dir, "").unwrap();
    for (bad, key) in [
        (settings("localhost:http", &textfile), "[metrics] listen"),
        (
            settings(&taken_address, &textfile),
            "[metrics] listen: cannot listen on",
        ),
        (
            settings(&format!("127.0.0.1:{port}"), &file_not_dir.join("x.prom")),
            "[metrics] textfile: cannot write",
        ),
    ] {
        let rejected = daemon
            .stderr_text()
            .matches("configuration reload failed")
            .count();
        std::fs::write(&config, bad).unwrap();
        daemon.signal("HUP");
        let deadline = Instant::now() + WAIT;
        while daemon
            .stderr_text()
            .matches("configuration reload failed")
            .count()
            == rejected
        {
            assert!(Instant::now() < deadline, "{}", daemon.stderr_text());
            std::thread::sleep(Duration::from_millis(25));
        }
        let stderr = daemon.stderr_text();
        let last = stderr
            .lines()
            .rfind(|l| l.contains("configuration reload failed"))
            .unwrap();
        assert!(last.contains(key), "{key}: {last}");
        let (head, _) = http_get(port, "/metrics").unwrap();
        assert!(status_is(&head, 200), "{head}");
    }
    drop(taken);

    // A good reload moves the listener.
    let moved = free_port();
    std::fs::write(&config, settings(&format!("127.0.0.1:{moved}"), &textfile)).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_log(&format!(
        "serving metrics on http://127.0.0.1:{moved}/metrics"
    ));
    let (head, _) = http_get(moved, "/metrics").unwrap();
    assert!(status_is(&head, 200), "{head}");
    let deadline = Instant::now() + WAIT;
    while http_get(port, "/metrics").is_ok() {
        assert!(Instant::now() < deadline, "the old listener still answers");
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(daemon.stop().success());
}

/// Bad settings stop the start with status 78 and a message naming the
/// key: an unparsable address, a port in use, a textfile in a directory
/// that does not exist, a textfile not ending in .prom.
#[test]
fn bad_metrics_settings_stop_the_start_with_status_78_naming_the_key() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("mainlog"), "").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cases = [
        (
            "listen = \"9353\"".to_owned(),
            "[metrics] listen: \"9353\" is not an address and port",
        ),
        (
            format!("listen = \"{}\"", taken.local_addr().unwrap()),
            "[metrics] listen: cannot listen on 127.0.0.1:",
        ),
        (
            format!(
                "textfile = \"{}\"",
                dir.path().join("missing/x.prom").display()
            ),
            "[metrics] textfile: cannot write in the directory of",
        ),
        (
            "textfile = \"/tmp/x.txt\"".to_owned(),
            "[metrics] textfile: must name a file ending in .prom",
        ),
        ("interval = \"0s\"".to_owned(), "[metrics] interval"),
    ];
    for (setting, message) in cases {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, metrics_config(&setting)).unwrap();
        let mut daemon = Daemon::start(dir.path());
        let status = daemon.wait(WAIT);
        let stderr = daemon.stderr_text();
        assert_eq!(status.code(), Some(78), "{setting}: {stderr}");
        assert!(stderr.contains(message), "{setting}: {stderr}");
    }
}

/// A reader polling the textfile while the daemon rewrites it never sees
/// part of a file: every read is a whole exposition.
#[test]
fn the_textfile_is_never_seen_half_written() {
    let dir = TempDir::new().unwrap();
    let textfile = dir.path().join("exim-pilot.prom");
    std::fs::write(
        dir.path().join("c.toml"),
        metrics_config(&format!(
            "textfile = \"{}\"\ninterval = \"1s\"",
            textfile.display()
        )),
    )
    .unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &crate::util::numbered_lines("t", 0, 100));
    let daemon = Daemon::start(dir.path());
    let started = Instant::now();
    let mut reads = 0u64;
    let mut versions = std::collections::BTreeSet::new();
    let mut appended = 100;
    while started.elapsed() < Duration::from_secs(5) || versions.len() < 3 {
        assert!(started.elapsed() < WAIT, "the textfile was not rewritten");
        let Ok(text) = std::fs::read_to_string(&textfile) else {
            continue;
        };
        reads += 1;
        assert!(
            text.ends_with("\n") && text.contains("\nexim_pilot_build_info{"),
            "a partial textfile:\n{text}"
        );
        let samples = parse_exposition(&text);
        assert!(samples.contains_key("exim_messages_total{flag=\"arrived\"}"));
        versions.insert(family_sum(&samples, "exim_pilot_lines_total") as u64);
        if reads.is_multiple_of(500) {
            append_lines(&log, &crate::util::numbered_lines("t", appended, 50));
            appended += 50;
        }
    }
    assert!(reads > 1000, "only {reads} reads");
    // Nothing but the textfile is left in its directory's .prom names.
    let proms = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".prom")
        })
        .count();
    assert_eq!(proms, 1);
    assert!(daemon.stop().success());
}

/// Every metric the shipped Grafana dashboard queries is exported.
#[test]
fn every_metric_the_grafana_dashboard_queries_is_exported() {
    let dashboard_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    collect_expressions(&dashboard, &mut expressions);
    assert!(expressions.len() >= 10, "{expressions:?}");

    // A daemon's exposition: the database's families and its own.
    let (dir, port) = listening_config();
    let sample = std::fs::read_to_string(crate::util::fixture("sample/mainlog")).unwrap();
    let lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    append_lines(&dir.path().join("mainlog"), &lines);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, lines.len(), WAIT, Some(&daemon));
    let (_, body) = http_get(port, "/metrics").unwrap();
    assert!(daemon.stop().success());
    let exported: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let name = regex::Regex::new(r"\b(exim_[a-z_]+)").unwrap();
    let mut queried = 0;
    for expression in &expressions {
        for found in name.captures_iter(expression) {
            queried += 1;
            let metric = &found[1];
            assert!(
                exported.contains(metric),
                "the dashboard queries {metric}, which is not exported ({expression})"
            );
        }
    }
    assert!(queried >= 15, "{queried}");
}

fn collect_expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "expr"
                    && let Some(text) = value.as_str()
                {
                    out.push(text.to_owned());
                } else {
                    collect_expressions(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_expressions(item, out);
            }
        }
        _ => {}
    }
}
