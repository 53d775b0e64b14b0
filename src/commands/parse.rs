//! `exim-pilot parse FILE...`: run the parser over log files and report
//! what it recognised, without touching the database; `--unrecognised`
//! counts the lines it could not place by shape (`parse::shape`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use std::io::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::parse::{Event, Kind, parse_line, render, shape};
use crate::source::file::framing::LineReader;

/// Unrecognised lines shown as examples, at most.
const EXAMPLES: usize = 10;
/// Distinct shapes counted, at most (the rest are counted as one): bounds
/// the memory a log of nothing but unknown lines takes.
const MAX_SHAPES: usize = 10_000;
/// Shapes printed, at most.
const SHAPES_SHOWN: usize = 50;

/// What `parse` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The report as text.
    Report,
    /// The report as one JSON object.
    Json,
    /// Every entry in the parser's compact form.
    Show,
    /// The shapes of the lines not understood, most frequent first.
    Shapes,
}

impl Output {
    /// What `--json`, `--show` and `--unrecognised` ask for (clap lets at
    /// most one of them through).
    pub fn of(json: bool, show: bool, unrecognised: bool) -> Output {
        match (json, show, unrecognised) {
            (_, true, _) => Output::Show,
            (_, _, true) => Output::Shapes,
            (true, _, _) => Output::Json,
            _ => Output::Report,
        }
    }
}

/// One shape of unrecognised lines.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub shape: String,
    pub lines: u64,
    /// The first line of this shape, lossily decoded.
    pub example: String,
}

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
    /// The most frequent shapes of the unrecognised lines.
    pub unrecognised_shapes: Vec<Shape>,
    pub seconds: f64,
    pub lines_per_second: f64,
}

/// Parses every file, then prints what `output` says.
pub fn run(config: &Config, files: &[PathBuf], output: Output) -> Result<()> {
    let show = output == Output::Show;
    let started = Instant::now();
    let mut report = ParseReport::default();
    let mut shapes = Shapes::default();
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
            if let Event::Unrecognised { body } = entry.event {
                shapes.count(body, line.bytes);
                if report.unrecognised_examples.len() < EXAMPLES {
                    report
                        .unrecognised_examples
                        .push(String::from_utf8_lossy(line.bytes).into_owned());
                }
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
    report.unrecognised_shapes = shapes.most_frequent(SHAPES_SHOWN);
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Report => print_text(&mut out, &report)?,
        Output::Shapes => {
            for shape in &report.unrecognised_shapes {
                writeln!(
                    out,
                    "{:>9}  {}\n           e.g. {}",
                    shape.lines, shape.shape, shape.example
                )?;
            }
        }
        Output::Show => {}
    }
    out.flush()?;
    Ok(())
}

/// Unrecognised lines counted by shape, at most [`MAX_SHAPES`] of them.
#[derive(Debug, Default)]
struct Shapes {
    by_shape: std::collections::HashMap<String, (u64, String)>,
    others: u64,
}

impl Shapes {
    fn count(&mut self, body: &[u8], line: &[u8]) {
        let shape = shape(body);
        if let Some((lines, _)) = self.by_shape.get_mut(&shape) {
            *lines += 1;
        } else if self.by_shape.len() < MAX_SHAPES {
            let example = String::from_utf8_lossy(line).into_owned();
            self.by_shape.insert(shape, (1, example));
        } else {
            self.others += 1;
        }
    }

    /// The `n` most frequent, then the shapes past [`MAX_SHAPES`] as one.
    fn most_frequent(self, n: usize) -> Vec<Shape> {
        let mut shapes: Vec<Shape> = self
            .by_shape
            .into_iter()
            .map(|(shape, (lines, example))| Shape {
                shape,
                lines,
                example,
            })
            .collect();
        shapes.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.shape.cmp(&b.shape)));
        shapes.truncate(n);
        if self.others > 0 {
            shapes.push(Shape {
                shape: format!("(more than {MAX_SHAPES} other shapes)"),
                lines: self.others,
                example: String::new(),
            });
        }
        shapes
    }
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
    for shape in report.unrecognised_shapes.iter().take(EXAMPLES) {
        writeln!(out, "  {:>7}  {}", shape.lines, shape.shape)?;
    }
    if report.unrecognised_shapes.len() > EXAMPLES {
        writeln!(
            out,
            "  (parse --unrecognised lists them all, with an example each)"
        )?;
    }
    Ok(())
}
