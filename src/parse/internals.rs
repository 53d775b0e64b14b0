//! Exim's rare lines about its own internals and set-up (journal and
//! spool moves, modules, lookups, memory, tainted data, DMARC's and ARC's
//! libraries, rewriting), read into their events. Tried only on lines
//! nothing else placed, so that the common lines never pay for them: a
//! busy host writes these a few times a day, if ever.

use super::entry::{Event, Problem};
use super::fields::find;
use super::host_ident::host_and_ident;

/// How a rare line starts, and which problem it is.
const STARTS: &[(&[u8], Problem)] = &[
    // The spool: journals, moves between queues, message logs.
    (b"link(", Problem::Spool),
    (b"unlink(", Problem::Spool),
    (b"failed to unlink ", Problem::Spool),
    (b"failed to move ", Problem::Spool),
    (b"Couldn't open journal file", Problem::Spool),
    (b"Couldn't set perms on journal file", Problem::Spool),
    (b"attempt to open journal for reading", Problem::Spool),
    (b"failed to update journal", Problem::Spool),
    (b"failed to fsync journal", Problem::Spool),
    (b"failed to write journal", Problem::Spool),
    (b"cannot accept message: failed to stat", Problem::Spool),
    (b"Attempt to open msglog file path", Problem::Spool),
    (b"deliver_datafile lseek", Problem::Spool),
    (b"smtp-wait database entry for ", Problem::Spool),
    // Sockets the daemon sets up or asks about.
    (b"getsockopt() failed", Problem::Socket),
    (b"getsockname() failed", Problem::Socket),
    (b"setting SO_REUSEADDR on socket failed", Problem::Socket),
    (b"failed to set socket NODELAY", Problem::Socket),
    (b"failed to dup inetd socket", Problem::Socket),
    (b"socks auth failed", Problem::Socket),
    // TLS set-up.
    (b"WARNING: deprecated Diffie-Hellman", Problem::TlsSetup),
    (b"SNI unusable with this OpenSSL", Problem::TlsSetup),
    // Exim's own process: memory, buffers, strings (most end the process).
    (b"bad memory ", Problem::ProcessFailure),
    (b"Taint mismatch", Problem::ProcessFailure),
    (b"failed to alloc ", Problem::ProcessFailure),
    (b"failed to malloc ", Problem::ProcessFailure),
    (b"malloc() failed", Problem::ProcessFailure),
    (b"store_reset called", Problem::ProcessFailure),
    (b"store_mark called", Problem::ProcessFailure),
    (b"internal error in ", Problem::ProcessFailure),
    (b"internal error: store_reset", Problem::ProcessFailure),
    (
        b"string_sprintf expansion was longer",
        Problem::ProcessFailure,
    ),
    (b"string_format", Problem::ProcessFailure),
    (b"string too ", Problem::ProcessFailure),
    (b"buffer underflow in ", Problem::ProcessFailure),
    (b"already initialised GnuTLS", Problem::ProcessFailure),
    (b"live variable '", Problem::ProcessFailure),
    (b"overlong write_command", Problem::ProcessFailure),
    (b"overlong formatted string", Problem::ProcessFailure),
    (b"null conn-context pointer", Problem::ProcessFailure),
    (b"too many lookups open", Problem::ProcessFailure),
    (b"readsock fdopen", Problem::ProcessFailure),
    // Configuration, modules and lookups that failed at run time.
    (b"no port specified for interface", Problem::Config),
    (b"Tainted filename", Problem::Config),
    (b"Tainted dirname", Problem::Config),
    (b"tainted search query", Problem::Config),
    (b"attempt to use tainted", Problem::Config),
    (b"attempt to used tainted", Problem::Config),
    (b"local part longer than ", Problem::Config),
    (b"internal ACL error", Problem::Config),
    (b"ACL for QUIT returned ERROR", Problem::Config),
    (b"ACL for not-QUIT returned ERROR", Problem::Config),
    (b"ACL \"warn\" with \"message\" setting", Problem::Config),
    (b"unknown log name ", Problem::Config),
    (b"\"discard\" verb not allowed", Problem::Config),
    (b"\"drop\" verb not allowed", Problem::Config),
    (b"\"timeout_dns\" is no longer available", Problem::Config),
    (b"configured error code starts with", Problem::Config),
    (b"EHLO/HELO response must not contain", Problem::Config),
    (b"Error loading ", Problem::Config),
    (b"Duplicate lookup name", Problem::Config),
    (b"Lookup module ", Problem::Config),
    (b"Module ", Problem::Config),
    (b"malformed ratelimit data", Problem::Config),
    (
        b"More than one path given in log_file_path",
        Problem::Config,
    ),
    (b"log_write called with no log flags", Problem::Config),
    (b"debug tag may not contain", Problem::Config),
    (b"unable to open debug log", Problem::Config),
    (b"routing loop for ", Problem::Config),
    (b"bad router variable name", Problem::Config),
    (b"Error in ", Problem::Config),
    (b"Failed to expand ", Problem::Config),
    (b"bad protocol option in transport", Problem::Config),
    (b"Bad expansion for socks_proxy", Problem::Config),
    (b"Unrecognised socks auth method", Problem::Config),
    (b"Exim configuration error", Problem::Config),
    (b"setup fail for ", Problem::Config),
    (b"Wrong ownership on ", Problem::Config),
    (b"Stat failed on ", Problem::Config),
    (b"dnslist query is too long", Problem::Config),
    (b"unknown item in dnslist", Problem::Config),
    (b"dnslists domain ", Problem::Config),
    (b"nmh lookup: ", Problem::Config),
    (b"Timeout on nmh lookup", Problem::Config),
    // DMARC's and ARC's libraries, history file and signing.
    (b"DMARC failure ", Problem::Config),
    (b"failure to ", Problem::Config),
    (b"dmarc: ", Problem::Config),
    (b"ARC: ", Problem::Config),
    (b"arc: ", Problem::Config),
    (b"DMARC using synthesized SPF sender domain", Problem::Dmarc),
    // Content scanning's own spool and the regex and BMI conditions.
    (b"regex acl condition", Problem::ContentScan),
    (b"mime acl condition", Problem::ContentScan),
    (b"failed to open scan ", Problem::ContentScan),
    (b"Error/short write while writing ", Problem::ContentScan),
    (b"bmi warning", Problem::ContentScan),
    // The test harness's DNS.
    (b"failed to run fakens", Problem::Dns),
    (b"read from fakens failed", Problem::Dns),
];

/// Notes rather than problems: a message's addresses rewritten, an admin
/// command's bad address, the debugging daemon, a caller's IP options or
/// early talk.
fn note(body: &[u8]) -> Option<Event<'_>> {
    let rewritten = body.first() == Some(&b'"')
        && (find(body, b" rewritten as ").is_some() || find(body, b" rewritten with ").is_some())
        || body.starts_with(b"qualify/rewrite: ")
        || body.starts_with(b"rewrite: ");
    if rewritten || body.starts_with(b"failed to parse address '") {
        return Some(Event::MessageNote { detail: body });
    }
    if body.starts_with(b"debugging Exim in inetd wait mode") {
        return Some(Event::Process { detail: body });
    }
    if body.starts_with(b"Ci=") && find(body, b" SMTP peer appears to have ").is_some() {
        // 4.99's test harness: whether the client spoke before the banner.
        let mut session = host_and_ident(body).session();
        session.detail = body;
        return Some(Event::SessionNote(session));
    }
    if body.starts_with(b"IP options on incoming call: ") {
        let mut session = host_and_ident(b"").session();
        session.detail = body;
        return Some(Event::SessionNote(session));
    }
    // A DKIM line written outside a message (a signing key that failed
    // to load): read as the message's DKIM lines are.
    let detail = body.strip_prefix(b"DKIM: ")?;
    Some(Event::Dkim { detail })
}

/// What a line nothing else placed says, if it is one of Exim's rare
/// internal lines by how it starts (their phrases past a name are in
/// [`super::problem`]'s one phrase table), or a note.
pub fn internal(body: &[u8]) -> Option<Event<'_>> {
    let problem = STARTS
        .iter()
        .find(|(start, _)| body.starts_with(start))
        .map(|(_, problem)| *problem);
    match problem {
        Some(problem) => Some(Event::Problem {
            problem,
            detail: body,
        }),
        None => note(body),
    }
}
