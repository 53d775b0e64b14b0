//! Lines about problems of the host rather than of one message or session
//! (Exim's catalogue: spool and disk, sockets, TLS set-up, crashed
//! processes, DNS lists, content scanners), and DMARC results: each read
//! into an [`Event::Problem`] by how it starts or a phrase it holds. The
//! line is the detail; `stats`, the metrics and the health page count them
//! by kind.

use super::entry::{Event, Problem};
use super::fields::find;

/// How a problem line starts, and which problem it is.
const STARTS: &[(&[u8], Problem)] = &[
    (b"spool directory space check failed", Problem::SpaceCheck),
    (b"log directory space check failed", Problem::SpaceCheck),
    (b"Spool write error", Problem::Spool),
    (b"spoolfile error on close", Problem::Spool),
    (b"Failed to create spool file", Problem::Spool),
    (b"Failed setting ownership on spool file", Problem::Spool),
    (b"Couldn't open message log", Problem::Spool),
    (b"Couldn't fdopen message log", Problem::Spool),
    (b"Format error in spool file", Problem::Spool),
    (b"Error reading spool file", Problem::Spool),
    (b"Spool error: no recipients", Problem::Spool),
    // The hints databases live in the spool too.
    (b"failed to open database lock file", Problem::Spool),
    (b"failed to open DB file", Problem::Spool),
    (b"Bad db record size", Problem::Spool),
    (b"Berkeley DB error", Problem::Spool),
    (b"IPv4 socket creation failed", Problem::Socket),
    (b"IPv6 socket creation failed", Problem::Socket),
    (
        b"Failed to create IPv6 socket for wildcard listening",
        Problem::Socket,
    ),
    (
        b"Setting IPV6_V6ONLY on daemon's IPv6 wildcard socket failed",
        Problem::Socket,
    ),
    (b"bind of [", Problem::Socket),
    (b"socket bind() to port", Problem::Socket),
    (b"failed to load cert chain", Problem::TlsSetup),
    (b"failed to stat ", Problem::TlsSetup),
    (b"could not stat '", Problem::TlsSetup),
    (b"tls_verify_certificates ", Problem::TlsSetup),
    (b"Failed to open OCSP response file", Problem::TlsSetup),
    (b"Failed to read PEM file", Problem::TlsSetup),
    (b"Error reading OCSP response", Problem::TlsSetup),
    (
        b"Required TLS certificate status not received",
        Problem::TlsSetup,
    ),
    (b"Received TLS cert status response", Problem::TlsSetup),
    (b"OCSP dates invalid", Problem::TlsSetup),
    (b"Server certificate revoked", Problem::TlsSetup),
    (b"Server certificate status unknown", Problem::TlsSetup),
    (b"DANE error:", Problem::TlsSetup),
    (b"TLS error in certificate", Problem::TlsSetup),
    (b"Warning: No server certificate defined", Problem::TlsSetup),
    (b"queue run: process ", Problem::ProcessCrashed),
    (b"Fork failed for local delivery", Problem::ProcessFailure),
    (
        b"failed to read delivery status for ",
        Problem::ProcessFailure,
    ),
    (b"failed to fork ", Problem::ProcessFailure),
    (b"delivery re-exec ", Problem::ProcessFailure),
    (b"unable to set gid=", Problem::ProcessFailure),
    (b"cannot run initgroups()", Problem::ProcessFailure),
    (b"initgroups failed for uid=", Problem::ProcessFailure),
    (b"getrlimit(", Problem::ProcessFailure),
    (b"setrlimit(", Problem::ProcessFailure),
    (b"delivery setrlimit(", Problem::ProcessFailure),
    (
        b"daemon: fork of queue-runner process failed",
        Problem::ProcessFailure,
    ),
    (
        b"daemon: delivery process fork failed",
        Problem::ProcessFailure,
    ),
    (
        b"failed to create pipe in queue runner",
        Problem::ProcessFailure,
    ),
    (
        b"fork of delivery process from queue runner",
        Problem::ProcessFailure,
    ),
    (
        b"queue run: unexpected data on pipe",
        Problem::ProcessFailure,
    ),
    (b"queue run: error on pipe", Problem::ProcessFailure),
    (b"excessive memory alloc request", Problem::ProcessFailure),
    (b"SIGSEGV", Problem::ProcessFailure),
    (
        b"creation of pipe for filter or :include: failed",
        Problem::ProcessFailure,
    ),
    (b"Attempt to exec tainted path", Problem::ProcessFailure),
    (b"fork() failed", Problem::ProcessFailure),
    (b"fork failed for TLS check", Problem::ProcessFailure),
    (
        b"daemon: accept process fork failed",
        Problem::ProcessFailure,
    ),
    (
        b"daemon: couldn't dup socket descriptor",
        Problem::ProcessFailure,
    ),
    (b"daemon: close(", Problem::ProcessFailure),
    (b"daemon: fclose(", Problem::ProcessFailure),
    // The daemon's notifier socket (`daemon_notifier_socket bind: ...`).
    (b"daemon_notifier_socket ", Problem::Socket),
    (b"daemon_notification: sendto", Problem::Socket),
    (b"Cannot lock ", Problem::Spool),
    (
        b"Daemon cannot be run when mua_wrapper is set",
        Problem::Config,
    ),
    (b"pid file path ", Problem::Config),
    (b"DNS list lookup defer", Problem::DnslistDefer),
    (b"DNS list lookup for ", Problem::DnslistDefer),
    (b"host name alias list truncated", Problem::Dns),
    (b"dnssec fail on SRV", Problem::Dns),
    (b"CNAME loop for ", Problem::Dns),
    (b"dns_again_means_nonexist recursion", Problem::Dns),
    (b"failed to expand ", Problem::Config),
    (b"expansion of ", Problem::Config),
    (b"Expansion of ", Problem::Config),
    (b"unable to expand ", Problem::Config),
    (b"invalid message_size_limit", Problem::Config),
    (b"bad value for smtp_receive_timeout", Problem::Config),
    (b"spam acl condition:", Problem::ContentScan),
    (b"malware acl condition:", Problem::ContentScan),
    (b"DMARC results:", Problem::Dmarc),
    (
        b"Error while reading message with no usable sender address",
        Problem::BounceFailed,
    ),
    (b"Message abandoned", Problem::MessageAbandoned),
    (
        b"ridiculously long message header received",
        Problem::MessageAbandoned,
    ),
    (
        b"overlong message header line received",
        Problem::MessageAbandoned,
    ),
    (
        b"Delivery deferred by system filter",
        Problem::FilterDeferred,
    ),
];

/// Phrases a problem line holds past its first words (a transport's or
/// process's name, a domain, comes first), and which problem it is.
const PHRASES: &[(&[u8], Problem)] = &[
    (
        b" transport process returned non-zero status",
        Problem::ProcessCrashed,
    ),
    (
        b"transport process vanished unexpectedly",
        Problem::ProcessCrashed,
    ),
    (b" crashed with signal ", Problem::ProcessCrashed),
    (b") when writing error message to ", Problem::BounceFailed),
    (
        b"lowest numbered MX record points to local host",
        Problem::RoutedToSelf,
    ),
    (
        b"remote host address is the local host",
        Problem::RoutedToSelf,
    ),
    (b"(DN: '", Problem::TlsSetup),
    // `Long A lookup for 'name': 5012 msec` (slow_lookup_log).
    (b" lookup for '", Problem::Dns),
    // Starting with `re`, as the common `rejected ...` lines do: tried
    // here, so that the start table turns those away unsearched.
    (b"re-exec of exim", Problem::ProcessFailure),
    (
        b"remote delivery process count got out of step",
        Problem::ProcessFailure,
    ),
    // `3 accept() failures: Too many open files` (the daemon).
    (b" accept() failure", Problem::ProcessFailure),
    (b" select() failure", Problem::ProcessFailure),
    // Exim's rare internals (`super::internals`) past a router's, a
    // module's or a file's name.
    (
        b" failed to create child process to send ",
        Problem::BounceFailed,
    ),
    (b" router generated more than ", Problem::Config),
    (b" router: reroute string ", Problem::Config),
    (b" router: skipped error: ", Problem::Config),
    (b" router failed to expand ", Problem::Config),
    (b" router returned unknown value ", Problem::Config),
    (b": not loading driver modules", Problem::Config),
    (b": not loading lookup modules", Problem::Config),
    (b" does not appear to be a ", Problem::Config),
    (
        b" is not compatible with this version of Exim",
        Problem::Config,
    ),
    (
        b" does not contain the expected module info symbol",
        Problem::Config,
    ),
    (b": failed to expand transport's", Problem::Config),
    (b": chown(", Problem::Config),
    // `pid N: exec of /usr/sbin/exim4 failed: ...` (a daemon's re-exec).
    (b": exec of ", Problem::ProcessFailure),
];

/// Which two-byte openings some start in [`STARTS`] has, a bit each:
/// most lines (`SMTP connection`, `rejected`, `Completed`) open otherwise
/// and are turned away with one lookup instead of a comparison per start.
static OPENINGS: [u64; 1024] = openings();

const fn openings() -> [u64; 1024] {
    let mut bits = [0u64; 1024];
    let mut index = 0;
    while index < STARTS.len() {
        let start = STARTS[index].0;
        let key = opening(start[0], start[1]);
        bits[key / 64] |= 1 << (key % 64);
        index += 1;
    }
    bits
}

const fn opening(first: u8, second: u8) -> usize {
    (first as usize) << 8 | second as usize
}

/// The problem `body` reports by how it starts, if it is one. Cheap: tried
/// on every line that is not a delivery or a host's.
pub fn problem_start(body: &[u8]) -> Option<Event<'_>> {
    let key = opening(*body.first()?, *body.get(1)?);
    if OPENINGS[key / 64] & (1 << (key % 64)) == 0 {
        return None;
    }
    STARTS
        .iter()
        .find(|(start, _)| body.starts_with(start))
        .map(|(_, problem)| Event::Problem {
            problem: *problem,
            detail: body,
        })
}

/// The problem `body` reports by a phrase past its first words (a
/// transport's or process's name, a domain, comes first), if it is one.
/// Tried only on lines nothing else placed: each phrase is a search.
pub fn problem_phrase(body: &[u8]) -> Option<Event<'_>> {
    let problem = PHRASES
        .iter()
        .find(|(phrase, _)| find(body, phrase).is_some())
        .map(|(_, problem)| *problem)?;
    // "process N crashed" yes; a sentence that merely mentions a crash is
    // someone else's line.
    if problem == Problem::ProcessCrashed
        && !(body.starts_with(b"process ") || find(body, b"transport process ").is_some())
    {
        return None;
    }
    Some(Event::Problem {
        problem,
        detail: body,
    })
}
