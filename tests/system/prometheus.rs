//! A real Prometheus (Debian's `prometheus`) scraping the daemon across a
//! restart: counters never go down, and what Prometheus holds is what
//! `exim-pilot metrics` and `stats --json` say.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::metrics::{
    assert_agrees_with_stats, generated_log, listening_config, split_key, stats_json,
};
use crate::util::{
    Daemon, append_lines, counters_only, free_port, http_get, metrics_of, status_is, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(60);

/// A Prometheus server of the test's own, on loopback, killed on drop.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `program` scraping `target` every second; waits until ready.
    fn start(program: &str, dir: &Path, target: u16) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: exim-pilot\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = std::process::Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let prometheus = Prometheus { child, port };
        let deadline = Instant::now() + WAIT;
        while !http_get(port, "/-/ready").is_ok_and(|(head, _)| status_is(&head, 200)) {
            assert!(
                Instant::now() < deadline,
                "prometheus is not ready: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// An instant query's vector: each series' labels (without `job` and
    /// `instance`) and value.
    fn query(&self, expression: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let encoded: String = expression
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (head, body) = http_get(self.port, &format!("/api/v1/query?query={encoded}")).unwrap();
        assert!(status_is(&head, 200), "{expression}: {head}\n{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let labels = series["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(name, _)| !matches!(name.as_str(), "job" | "instance"))
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
                    .collect();
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The one value of a scalar-like query (NaN when the result is empty).
    fn value(&self, expression: &str) -> f64 {
        self.query(expression).first().map_or(f64::NAN, |(_, v)| *v)
    }

    /// Waits until `expression` is `expected`.
    fn wait_for(&self, expression: &str, expected: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.value(expression);
            if value == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expression} is {value}, not {expected}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The type Prometheus recorded for `metric`.
    fn metric_type(&self, metric: &str) -> String {
        let (_, body) = http_get(self.port, &format!("/api/v1/metadata?metric={metric}")).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["data"][metric][0]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A real Prometheus scrapes the daemon while a generated log is written
/// in three parts, with a restart of the daemon between two of them. No
/// counter ever went down (`resets()` is 0 over the whole run, which saw
/// a failed scrape while the daemon was down), Prometheus recorded the
/// types the exposition declares, and every counter sample it holds at
/// the end equals `exim-pilot metrics`, which equals `stats --json`.
#[test]
fn a_real_prometheus_sees_counters_that_never_go_down_across_a_restart() {
    let Some(program) = crate::util::system_program("prometheus") else {
        crate::util::stand_down("prometheus is not installed: the scrape test");
        return;
    };
    let (dir, port) = listening_config();
    let generated = std::fs::read_to_string(generated_log(dir.path(), 23, 9_000)).unwrap();
    let lines: Vec<String> = generated.lines().map(str::to_owned).collect();
    let parts: Vec<&[String]> = lines.chunks(lines.len() / 3 + 1).collect();
    let log = dir.path().join("mainlog");
    let lines_stored = "sum(exim_pilot_lines_total)";

    let mut daemon = Daemon::start(dir.path());
    daemon.wait_for_log("serving metrics");
    let prometheus = Prometheus::start(&program, dir.path(), port);
    let mut appended = 0;
    for (index, part) in parts.iter().enumerate() {
        if index == 2 {
            // A restart between two scrapes: Prometheus sees the target
            // down, then the counters again.
            assert!(daemon.stop().success());
            prometheus.wait_for("min_over_time(up[1h])", 0.0);
            daemon = Daemon::start(dir.path());
            daemon.wait_for_log("serving metrics");
        }
        append_lines(&log, part);
        appended += part.len();
        wait_for_lines(&daemon.db, appended, WAIT, Some(&daemon));
        prometheus.wait_for(lines_stored, appended as f64);
    }
    let counted = r#"{__name__=~"exim_.+(_total|_bucket|_sum|_count)"}"#;
    assert!(prometheus.value(&format!("count({counted})")) > 50.0);
    // Per family: resets() drops the name, which would make the series
    // of different families clash.
    let families: std::collections::BTreeSet<String> = counters_only(&metrics_of(&daemon.db))
        .keys()
        .map(|key| split_key(key).0)
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    for family in &families {
        assert_eq!(
            prometheus.value(&format!("sum(resets({family}[1h]))")),
            0.0,
            "{family} went down"
        );
    }
    assert_eq!(prometheus.value("max_over_time(up[1h])"), 1.0);
    assert_eq!(prometheus.metric_type("exim_messages_total"), "counter");
    assert_eq!(
        prometheus.metric_type("exim_pilot_queue_time_seconds"),
        "histogram"
    );
    assert_eq!(
        prometheus.metric_type("exim_pilot_messages_frozen"),
        "gauge"
    );

    let db = daemon.db.clone();
    let cli = metrics_of(&db);
    assert_agrees_with_stats(&cli, &stats_json(&db));
    let scraped = prometheus.query(counted);
    let mut compared = 0;
    for (key, value) in counters_only(&cli) {
        let (name, mut labels) = split_key(&key);
        labels.insert("__name__".to_owned(), name);
        let found = scraped
            .iter()
            .find(|(series, _)| *series == labels)
            .unwrap_or_else(|| panic!("Prometheus has no {key}"));
        assert_eq!(found.1, value, "{key}");
        compared += 1;
    }
    assert_eq!(
        compared,
        scraped.len(),
        "Prometheus has series the CLI has not"
    );
    assert!(daemon.stop().success());
}
