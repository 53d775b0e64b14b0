//! The `exim-pilot` binary: parse the command line, run the command on a
//! tokio runtime, and turn the outcome into a sysexits status.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use exim_pilot::cli::Cli;
use exim_pilot::exit;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The daemon catches its signals before anything else: a SIGTERM or
    // SIGHUP in its first milliseconds must not find the default action.
    let signals = match cli.command {
        exim_pilot::cli::Command::Run { .. } => match exim_pilot::daemon::catch_signals() {
            Ok(signals) => Some(signals),
            Err(err) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "exim-pilot: cannot install signal handlers: {err}"
                );
                return ExitCode::from(exit::SOFTWARE);
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "exim-pilot: cannot start the async runtime: {err}"
            );
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let outcome = runtime.block_on(exim_pilot::commands::dispatch(cli, signals));
    // A blocking task still running (a reader stuck in the kernel) must not
    // keep the process alive after the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        // The reader of our output went away (`| head`): nothing to report.
        Err(err) if exim_pilot::output::is_closed_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            let status = exit::status_for(&err);
            exim_pilot::logging::report_fatal(&format!("{err:#}"), status);
            ExitCode::from(status)
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena, and keeps
/// what is freed there. Lines are allocated by the reader and freed by the
/// writer, with parsing and compression on threads of their own: with an
/// arena each, several megabytes of freed memory stayed resident, and
/// peak RSS varied from run to run by as much. Two arenas keep it flat.
///
/// glibc also raises its mmap threshold each time a large block is freed,
/// after which batch-sized buffers come from the arenas and stay resident
/// once freed: fixed thresholds of 128 KiB (glibc's starting values) keep
/// them mapped and returned. Peak RSS of an ingest: 36 -> 25 MiB
/// (benches/README.md). The environment's MALLOC_* variables still win.
#[allow(unsafe_code)] // mallopt(3): glibc's allocator has no safe interface
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 << 10),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 << 10),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only changes allocator tuning; called first
            // thing in main, before any other thread exists.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}
