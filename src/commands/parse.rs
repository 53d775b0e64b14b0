//! `exim-pilot parse FILE...`: run the parser over log files and report
//! what it recognised, without touching the database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use std::io::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::parse::{Kind, parse_line, render};
use crate::source::file::framing::LineReader;

/// Unrecognised lines shown as examples, at most.
const EXAMPLES: usize = 10;

/// What one run saw.
#[derive(Debug, Default, Serialize)]
pub struct ParseReport {
    pub files: usize,
    pub lines: u64,
    pub bytes: u64,
    pub unrecognised: u64,
    /// Lines per entry kind (only kinds that occurred).
    pub kinds: BTreeMap<&'static str, u64>,
    /// The first unrecognised lines, lossily decoded.
    pub unrecognised_examples: Vec<String>,
    pub seconds: f64,
    pub lines_per_second: f64,
}

/// Parses every file, then prints the report (text or JSON). With `show`,
/// prints every entry in the parser's compact form instead.
pub fn run(config: &Config, files: &[PathBuf], json: bool, show: bool) -> Result<()> {
    let started = Instant::now();
    let mut report = ParseReport::default();
    let mut counts = [0u64; Kind::ALL.len()];
    let mut out = crate::output::stdout();
    for path in files {
        let input = super::open_input(path, 0)?;
        let mut reader = LineReader::new(input.into_reader(), 0, config.ingest.max_line_bytes);
        loop {
            let line = match reader
                .next_line()
                .map_err(|err| super::input_error(path, &err))?
            {
                Some(line) => line,
                // A finished file's last line counts even without a newline.
                None => match reader.finish() {
                    Some(line) => line,
                    None => break,
                },
            };
            let entry = parse_line(line.bytes);
            let kind = entry.kind();
            counts[kind as usize] += 1;
            report.lines += 1;
            report.bytes += line.end - line.start;
            if show {
                writeln!(out, "{}", render(&entry))?;
            }
            if kind == Kind::Unrecognised && report.unrecognised_examples.len() < EXAMPLES {
                report
                    .unrecognised_examples
                    .push(String::from_utf8_lossy(line.bytes).into_owned());
            }
        }
        report.files += 1;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.lines_per_second = report.lines as f64 / report.seconds.max(1e-9);
    for kind in Kind::ALL {
        if counts[kind as usize] > 0 {
            report.kinds.insert(kind.name(), counts[kind as usize]);
        }
    }
    report.unrecognised = counts[Kind::Unrecognised as usize];
    if !show && json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else if !show {
        print_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
}

fn print_text(out: &mut impl std::io::Write, report: &ParseReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{} lines ({} bytes) in {} file(s), {:.0} lines/s",
        report.lines, report.bytes, report.files, report.lines_per_second
    )?;
    let width = report.kinds.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut kinds: Vec<_> = report.kinds.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (kind, count) in kinds {
        let share = 100.0 * *count as f64 / report.lines.max(1) as f64;
        writeln!(out, "  {kind:<width$}  {count:>9}  {share:6.2}%")?;
    }
    writeln!(out, "unrecognised: {}", report.unrecognised)?;
    for example in &report.unrecognised_examples {
        writeln!(out, "  {example}")?;
    }
    Ok(())
}
