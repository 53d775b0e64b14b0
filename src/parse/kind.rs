//! The kinds of log entries, each with the name `parse` prints and
//! `line_counts` stores: written once, in `kinds!`, from which the enum,
//! [`Kind::ALL`] and [`Kind::name`] are generated; and which kind each
//! parsed [`Event`] is.

use std::fmt;

use super::entry::{DeliveryFlag, Event, Problem};

/// Declares [`Kind`] from `Variant => "name"` pairs, so a kind is listed
/// once, not in three places that can drift apart.
macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// The kinds of entries, with their stored names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: [Kind; [$(Kind::$variant),*].len()] = [$(Kind::$variant),*];

            /// The name counted in `line_counts.kind` and printed by `parse`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }
        }
    };
}

kinds! {
    Reception => "reception",
    FakeReject => "fake_reject",
    Delivery => "delivery",
    Blackholed => "blackholed",
    DeliveryMore => "delivery_more",
    Cutthrough => "cutthrough",
    Suppressed => "suppressed",
    Failure => "failure",
    Deferral => "deferral",
    Completed => "completed",
    Frozen => "frozen",
    MessageIsFrozen => "message_is_frozen",
    Unfrozen => "unfrozen",
    HostError => "host_error",
    ErrorIgnored => "error_ignored",
    Removed => "removed",
    SpoolLocked => "spool_locked",
    QueuedOnly => "queued_only",
    Dkim => "dkim",
    MessageNote => "message_note",
    Discarded => "discarded",
    Rejection => "rejection",
    SenderVerify => "sender_verify",
    ConnectionOpened => "connection_opened",
    ConnectionClosed => "connection_closed",
    ConnectionLost => "connection_lost",
    ConnectionRefused => "connection_refused",
    NoMail => "no_mail",
    SmtpTimeout => "smtp_timeout",
    ProtocolError => "protocol_error",
    IncompleteTransaction => "incomplete_transaction",
    TlsError => "tls_error",
    AuthFailed => "auth_failed",
    HostLookupFailed => "host_lookup_failed",
    AclWarning => "acl_warning",
    QueueRunStart => "queue_run_start",
    QueueRunEnd => "queue_run_end",
    DaemonStarted => "daemon_started",
    Sighup => "sighup",
    Process => "process",
    Warning => "warning",
    SpaceCheckFailed => "space_check_failed",
    SpoolError => "spool_error",
    SocketError => "socket_error",
    TlsSetupError => "tls_setup_error",
    ProcessCrashed => "process_crashed",
    ProcessFailure => "process_failure",
    DnslistDefer => "dnslist_defer",
    ContentScanError => "content_scan_error",
    Dmarc => "dmarc",
    BounceFailed => "bounce_failed",
    MessageAbandoned => "message_abandoned",
    FilterDeferred => "filter_deferred",
    RoutedToSelf => "routed_to_self",
    DnsProblem => "dns_problem",
    ConfigError => "config_error",
    SessionNote => "session_note",
    Continuation => "continuation",
    Blank => "blank",
    Comment => "comment",
    Unrecognised => "unrecognised",
}

impl Kind {
    /// The kinds that are problems of the host (disk, spool, sockets, TLS
    /// set-up, crashes, DNS lists, scanners, bounces that failed, messages
    /// abandoned or held), and DMARC results: counted together by `stats`
    /// and the health page.
    pub const HOST_PROBLEMS: [Kind; 15] = [
        Kind::SpaceCheckFailed,
        Kind::SpoolError,
        Kind::SocketError,
        Kind::TlsSetupError,
        Kind::ProcessCrashed,
        Kind::ProcessFailure,
        Kind::DnslistDefer,
        Kind::ContentScanError,
        Kind::BounceFailed,
        Kind::MessageAbandoned,
        Kind::FilterDeferred,
        Kind::RoutedToSelf,
        Kind::DnsProblem,
        Kind::ConfigError,
        Kind::Dmarc,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Event<'_> {
    /// This event's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Event::Reception(r) if r.fake_reject => Kind::FakeReject,
            Event::Reception(_) => Kind::Reception,
            Event::Delivery(d) => match d.flag {
                DeliveryFlag::Delivered => Kind::Delivery,
                DeliveryFlag::DeliveredMore => Kind::DeliveryMore,
                DeliveryFlag::Cutthrough => Kind::Cutthrough,
                DeliveryFlag::Suppressed => Kind::Suppressed,
                DeliveryFlag::Failed => Kind::Failure,
                DeliveryFlag::Deferred => Kind::Deferral,
                DeliveryFlag::Discarded => Kind::Blackholed,
            },
            Event::Completed { .. } => Kind::Completed,
            Event::Frozen { .. } => Kind::Frozen,
            Event::MessageIsFrozen => Kind::MessageIsFrozen,
            Event::Unfrozen { .. } => Kind::Unfrozen,
            Event::HostError { .. } => Kind::HostError,
            Event::ErrorIgnored { .. } => Kind::ErrorIgnored,
            Event::Removed { .. } => Kind::Removed,
            Event::SpoolLocked => Kind::SpoolLocked,
            Event::QueuedOnly { .. } => Kind::QueuedOnly,
            Event::Dkim { .. } => Kind::Dkim,
            Event::MessageNote { .. } => Kind::MessageNote,
            Event::Discarded(_) => Kind::Discarded,
            Event::Rejection(_) => Kind::Rejection,
            Event::SenderVerify { .. } => Kind::SenderVerify,
            Event::ConnectionOpened(_) => Kind::ConnectionOpened,
            Event::ConnectionClosed(_) => Kind::ConnectionClosed,
            Event::ConnectionLost(_) => Kind::ConnectionLost,
            Event::ConnectionRefused(_) => Kind::ConnectionRefused,
            Event::NoMail(_) => Kind::NoMail,
            Event::SmtpTimeout(_) => Kind::SmtpTimeout,
            Event::ProtocolError(_) => Kind::ProtocolError,
            Event::IncompleteTransaction(_) => Kind::IncompleteTransaction,
            Event::TlsError(_) => Kind::TlsError,
            Event::AuthFailed { .. } => Kind::AuthFailed,
            Event::HostLookupFailed { .. } => Kind::HostLookupFailed,
            Event::AclWarning(_) => Kind::AclWarning,
            Event::QueueRunStart { .. } => Kind::QueueRunStart,
            Event::QueueRunEnd { .. } => Kind::QueueRunEnd,
            Event::DaemonStarted { .. } => Kind::DaemonStarted,
            Event::Sighup { .. } => Kind::Sighup,
            Event::Process { .. } => Kind::Process,
            Event::Problem { problem, .. } => match problem {
                Problem::SpaceCheck => Kind::SpaceCheckFailed,
                Problem::Spool => Kind::SpoolError,
                Problem::Socket => Kind::SocketError,
                Problem::TlsSetup => Kind::TlsSetupError,
                Problem::ProcessCrashed => Kind::ProcessCrashed,
                Problem::ProcessFailure => Kind::ProcessFailure,
                Problem::DnslistDefer => Kind::DnslistDefer,
                Problem::ContentScan => Kind::ContentScanError,
                Problem::Dmarc => Kind::Dmarc,
                Problem::BounceFailed => Kind::BounceFailed,
                Problem::MessageAbandoned => Kind::MessageAbandoned,
                Problem::FilterDeferred => Kind::FilterDeferred,
                Problem::RoutedToSelf => Kind::RoutedToSelf,
                Problem::Dns => Kind::DnsProblem,
                Problem::Config => Kind::ConfigError,
            },
            Event::SessionNote(_) => Kind::SessionNote,
            Event::Warning { .. } => Kind::Warning,
            Event::Continuation { .. } => Kind::Continuation,
            Event::Blank => Kind::Blank,
            Event::Comment { .. } => Kind::Comment,
            Event::Unrecognised { .. } => Kind::Unrecognised,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_name() {
        let names: std::collections::HashSet<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
    }
}
