//! Writes a realistic generated Exim main log (see `src/synth.rs`) to
//! stdout and the truth it encodes to stderr, for benchmarks:
//!
//!     cargo run --release --features synth --example generate_log -- LINES [SEED] [mixed|old|new] [PROFILE] > mainlog
//!
//! The third argument picks the message id format (default mixed); `old`
//! gives logs that Debian 12's eximstats counts correctly. The fourth picks
//! the traffic's shape: mixed (the default), many-addresses,
//! multi-recipient, attack, bounce-storm, long-lines, realistic (the public
//! logs' shape, `examples/calibrate.rs`) or unique-texts.

use std::io::{BufWriter, Write};

use exim_pilot::synth::{Generator, IdFormat, PROFILES, Profile};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(42);
    let ids = match args.next().as_deref() {
        None | Some("mixed") => IdFormat::Mixed,
        Some("old") => IdFormat::Old,
        Some("new") => IdFormat::New,
        Some(other) => {
            eprintln!("generate_log: id format must be mixed, old or new, not {other:?}");
            std::process::exit(2);
        }
    };
    let profile = match args.next() {
        None => PROFILES[0],
        Some(name) => Profile::named(&name).unwrap_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            eprintln!(
                "generate_log: profile must be one of {}, not {name:?}",
                names.join(", ")
            );
            std::process::exit(2);
        }),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut generator = Generator::new(seed).with_ids(ids).with_profile(profile);
    generator.write(lines, &mut out)?;
    let truth = generator.finish(&mut out)?;
    out.flush()?;
    eprintln!("{truth:?}");
    Ok(())
}
