//! Parser throughput over a realistic generated log (see `src/synth.rs`):
//! `cargo bench --bench parse`. Prints lines per second via criterion's
//! element throughput.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exim_pilot::parse::parse_line;
use exim_pilot::synth::Generator;

fn parse_generated_log(c: &mut Criterion) {
    let mut log = Vec::new();
    let truth = Generator::new(42)
        .write(200_000, &mut log)
        .expect("generate");
    let lines: Vec<&[u8]> = log
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len() as u64, truth.counts.lines);

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(truth.counts.lines));
    group.sample_size(20);
    group.bench_function("generated_log_lines", |b| {
        b.iter(|| {
            let mut kinds = 0usize;
            for line in &lines {
                kinds += parse_line(std::hint::black_box(line)).kind() as usize;
            }
            kinds
        });
    });
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("generated_log_bytes", |b| {
        b.iter(|| {
            lines
                .iter()
                .map(|line| parse_line(std::hint::black_box(line)).kind() as usize)
                .sum::<usize>()
        });
    });
    group.finish();
}

criterion_group!(benches, parse_generated_log);
criterion_main!(benches);
