//! Writes a realistic generated Exim main log (see `src/synth.rs`) to
//! stdout and the truth it encodes to stderr, for benchmarks:
//!
//!     cargo run --release --example generate_log -- 1000000 [SEED] > mainlog

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(42);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let truth = exim_pilot::synth::Generator::new(seed).write(lines, &mut out)?;
    out.flush()?;
    eprintln!("{truth:?}");
    Ok(())
}
