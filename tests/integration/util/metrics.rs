//! What the metrics tests share (fast and system): `stats --json` and
//! `exim-pilot metrics` side by side, a generated log, and a daemon
//! configuration that serves `/metrics` on a free port.

use std::collections::BTreeMap;
use std::path::Path;

use tempfile::TempDir;

use super::{FAST_CONFIG, counters_only, family_sum, free_port, metrics_of, outcome, run};

pub fn stats_json(db: &Path) -> serde_json::Value {
    let (status, stdout, stderr) =
        outcome(&run(&["stats", "--json", "--db", db.to_str().unwrap()]));
    assert_eq!(status, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// The sum of a `stats --json` band list's counts.
pub fn band_total(stats: &serde_json::Value, key: &str) -> f64 {
    stats[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|band| band["count"].as_f64().unwrap())
        .sum()
}

pub fn generated_log(dir: &Path, seed: u64, lines: u64) -> std::path::PathBuf {
    let log = dir.join(format!("generated-{seed}.log"));
    let mut content = Vec::new();
    exim_pilot::synth::Generator::new(seed)
        .write(lines, &mut content)
        .unwrap();
    std::fs::write(&log, content).unwrap();
    log
}

/// Every count `metrics` and `stats --json` both give, equal.
pub fn assert_agrees_with_stats(samples: &BTreeMap<String, f64>, stats: &serde_json::Value) {
    let flag = |name: &str| samples[&format!("exim_messages_total{{flag=\"{name}\"}}")];
    let kinds = &stats["kinds"];
    let kind = |name: &str| kinds[name].as_f64().unwrap_or(0.0);
    assert_eq!(flag("arrived"), stats["received"].as_f64().unwrap());
    assert_eq!(flag("arrived"), kind("reception"));
    assert_eq!(flag("fakereject"), kind("fake_reject"));
    assert_eq!(flag("delivered"), kind("delivery"));
    assert_eq!(flag("additional"), kind("delivery_more"));
    assert_eq!(flag("cutthrough"), kind("cutthrough"));
    assert_eq!(flag("suppressed"), kind("suppressed"));
    assert_eq!(flag("deferred"), stats["deferred"].as_f64().unwrap());
    assert_eq!(flag("failed"), stats["bounced"].as_f64().unwrap());
    assert_eq!(flag("completed"), stats["completed"].as_f64().unwrap());
    assert_eq!(
        samples["exim_reject_total"],
        stats["rejected"].as_f64().unwrap() + stats["temporarily_rejected"].as_f64().unwrap()
    );
    assert_eq!(
        samples["exim_pilot_lines_unrecognised_total"],
        stats["unrecognised"].as_f64().unwrap()
    );
    assert_eq!(
        family_sum(samples, "exim_pilot_lines_total"),
        stats["lines"].as_f64().unwrap()
    );
    for (name, count) in kinds.as_object().unwrap() {
        assert_eq!(
            samples[&format!("exim_pilot_lines_total{{kind=\"{name}\"}}")],
            count.as_f64().unwrap(),
            "{name}"
        );
    }
    assert_eq!(
        family_sum(samples, "exim_pilot_delivery_time_seconds_count"),
        band_total(stats, "delivery_times")
    );
    assert_eq!(
        family_sum(samples, "exim_pilot_deliveries_total"),
        kind("delivery")
            + kind("delivery_more")
            + kind("cutthrough")
            + kind("suppressed")
            + kind("deferral")
            + kind("failure")
    );
    assert_eq!(
        family_sum(samples, "exim_pilot_deferrals_total"),
        flag("deferred")
    );
    assert_eq!(
        family_sum(samples, "exim_pilot_bounces_total"),
        flag("failed")
    );
    assert_eq!(
        samples["exim_pilot_received_bytes_total"],
        stats["totals"]["received_volume"].as_f64().unwrap()
    );
}

/// A directory whose `c.toml` serves metrics on a free loopback port.
pub fn listening_config() -> (TempDir, u16) {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("c.toml"),
        metrics_config(&format!("listen = \"127.0.0.1:{port}\"")),
    )
    .unwrap();
    (dir, port)
}

pub fn metrics_config(extra: &str) -> String {
    format!("{FAST_CONFIG}\n[metrics]\n{extra}\n")
}

/// The exposition key (`name{a="x",b="y"}`) as a name and a label map.
pub fn split_key(key: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, labels)) = key.split_once('{') else {
        return (key.to_owned(), BTreeMap::new());
    };
    let labels = labels.trim_end_matches('}');
    let pattern = regex::Regex::new(r#"([a-z_]+)="((?:[^"\\]|\\.)*)""#).unwrap();
    // An empty value is no label at all to Prometheus.
    let labels = pattern
        .captures_iter(labels)
        .filter(|c| !c[2].is_empty())
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();
    (name.to_owned(), labels)
}
