//! The Prometheus text exposition format, version 0.0.4: the families and
//! samples of one scrape, and their encoding. Pure.
//!
//! Written here rather than with `prometheus-client`, which writes only
//! OpenMetrics: it appends `_total` to counter names and a full stop to
//! HELP texts, so it cannot reproduce exim_exporter's names, and node
//! exporter's textfile collector reads the classic format, where a TYPE
//! line must name the sample (`..._total`) or the family turns untyped.

use std::fmt::Write as _;

/// What a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// A value now.
    Gauge,
    /// Observations in cumulative buckets, with their sum and count.
    Histogram,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One family: its HELP, TYPE and samples, encoded together.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name on the TYPE line: a counter's sample name (`..._total`), a
    /// histogram's base name.
    pub name: &'static str,
    /// What it is.
    pub kind: MetricType,
    /// The HELP text.
    pub help: &'static str,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Appended to the family's name: `""`, `_bucket`, `_sum`, `_count`.
    pub suffix: &'static str,
    /// The label set as written between the braces (`a="x",b="y"`),
    /// values already escaped; empty for none.
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A value as the format writes it: integers without a fraction,
/// `+Inf`, `-Inf`, `NaN`.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// Encodes `families` as text 0.0.4. A family without samples is left
/// out, as node_exporter would drop it anyway.
pub fn encode(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.len() * 256);
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", family.name);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.name());
        for sample in &family.samples {
            out.push_str(family.name);
            out.push_str(sample.suffix);
            if !sample.labels.is_empty() {
                out.push('{');
                out.push_str(&sample.labels);
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_value(sample.value));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_gauges_and_histograms_in_the_classic_format() {
        let families = vec![
            Family {
                name: "exim_messages_total",
                kind: MetricType::Counter,
                help: "Total number of logged messages broken down by flag (delivered, deferred, etc)",
                samples: vec![Sample {
                    suffix: "",
                    labels: "flag=\"arrived\"".to_owned(),
                    value: 3.0,
                }],
            },
            Family {
                name: "empty",
                kind: MetricType::Gauge,
                help: "left out",
                samples: vec![],
            },
            Family {
                name: "t_seconds",
                kind: MetricType::Histogram,
                help: "a \\ b\nc",
                samples: vec![
                    Sample {
                        suffix: "_bucket",
                        labels: "le=\"+Inf\"".to_owned(),
                        value: 2.0,
                    },
                    Sample {
                        suffix: "_sum",
                        labels: String::new(),
                        value: 0.25,
                    },
                ],
            },
        ];
        expect_test::expect![[r#"
            # HELP exim_messages_total Total number of logged messages broken down by flag (delivered, deferred, etc)
            # TYPE exim_messages_total counter
            exim_messages_total{flag="arrived"} 3
            # HELP t_seconds a \\ b\nc
            # TYPE t_seconds histogram
            t_seconds_bucket{le="+Inf"} 2
            t_seconds_sum 0.25
        "#]]
        .assert_eq(&encode(&families));
    }

    #[test]
    fn values_and_label_values_are_written_as_the_format_wants() {
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
