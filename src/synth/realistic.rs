//! What real hosts write that the other shapes do not: password-guessing
//! sessions as the public logs show them, and texts that are each
//! message's own (subjects, the remote server's confirmation with its
//! queue id, remote errors with their tokens, sizes spread to megabytes).

use super::Generator;

/// Remote servers' words for a message taken, each with its queue id.
const CONFIRMATIONS: [&str; 5] = [
    "250 2.0.0 Ok: queued as {}",
    "250 2.0.0 OK  1733561{} {}- gsmtp",
    "250 OK id={}",
    "250 2.6.0 <{}@mail.example.net> [InternalId={}] Queued mail for delivery",
    "250 Requested mail action okay, completed: id={}",
];

/// Remote servers' refusals of an unknown recipient, each with its own
/// token where the server writes one.
const REFUSALS: [&str; 4] = [
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\\n550-5.1.1 double-checking the recipient's email address for typos or\\n550 5.1.1 unnecessary spaces. {} - gsmtp",
    "550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table",
    "550 5.5.0 Requested action not taken: mailbox unavailable ({})",
    "552 5.2.2 Mailbox full; quota exceeded (id {})",
];

impl Generator {
    /// A password-guessing session: a failed reverse lookup, one to three
    /// failed logins (now and then a relay attempt instead), then a lost,
    /// timed-out, TLS-failed or closed connection. A third of sessions
    /// log their opening.
    pub(super) fn brute_force(&mut self) -> Vec<String> {
        let pid = self.next_pid();
        let ip = format!("46.148.{}.{}", self.rng.u8(..64), self.rng.u8(1..255));
        let port = self.rng.u16(1024..);
        let helo = ["localhost", "User", "ylmf-pc", "WIN-CLJ1B0GQ6JP"][self.rng.usize(..4)];
        let host = format!("({helo}) [{ip}]:{port}");
        let mut lines = Vec::with_capacity(6);
        if self.rng.u8(..3) == 0 {
            lines.push(format!(
                "[{pid}] SMTP connection from [{ip}]:{port} (TCP/IP connection count = {})",
                self.rng.u8(1..20)
            ));
        }
        lines.push(format!("[{pid}] no host name found for IP address {ip}"));
        if self.rng.u8(..100) < 5 {
            lines.push(format!(
                "[{pid}] H={host} F=<spam{}@example.biz> rejected RCPT <nobody{}@example.org>: relay not permitted",
                self.rng.u16(..),
                self.rng.u8(..)
            ));
        } else {
            for _ in 0..self.rng.u8(1..4) {
                lines.push(format!(
                    "[{pid}] dovecot_login authenticator failed for {host}: 535 Incorrect authentication data (set_id={}{})",
                    ["info", "admin", "test", "webmaster", "sales"][self.rng.usize(..5)],
                    self.rng.u16(..500)
                ));
            }
        }
        let duration = self.rng.u8(..60);
        lines.push(match self.rng.u8(..100) {
            0..45 => format!("[{pid}] SMTP connection from {host} lost D={duration}s"),
            45..65 => format!("[{pid}] SMTP command timeout on connection from {host} D={duration}s"),
            65..85 => format!(
                "[{pid}] TLS error on connection from {host} (recv): The TLS connection was non-properly terminated."
            ),
            _ => format!("[{pid}] SMTP connection from {host} D={duration}s closed by QUIT"),
        });
        lines
    }

    /// A message's size: most a few kilobytes, one in a hundred several
    /// megabytes.
    pub(super) fn message_size(&mut self) -> u32 {
        if !self.profile.unique_texts {
            return self.rng.u32(300..200_000);
        }
        match self.rng.u8(..100) {
            0..60 => self.rng.u32(800..12_000),
            60..90 => self.rng.u32(12_000..200_000),
            90..99 => self.rng.u32(200_000..2_000_000),
            _ => self.rng.u32(2_000_000..9_000_000),
        }
    }

    /// A subject of its own (`unique_texts`), else one of a few.
    pub(super) fn subject(&mut self, filler: &str) -> String {
        if !self.profile.unique_texts {
            return format!("{}{filler}", self.pick(&super::SUBJECTS));
        }
        let topic = [
            "Invoice",
            "Re: Meeting notes",
            "Order confirmation",
            "Fwd: Proposal",
            "Your ticket",
        ][self.rng.usize(..5)];
        format!(
            "{topic} #{} for {}{filler}",
            self.rng.u32(..),
            ["ACME Ltd", "Jane Doe", "the team", "client 42"][self.rng.usize(..4)]
        )
    }

    /// The remote server's confirmation of a message taken.
    pub(super) fn confirmation(&mut self, filler: &str) -> String {
        if !self.profile.unique_texts {
            return format!("250 2.0.0 Ok: queued as {:X}{filler}", self.rng.u32(..));
        }
        let template = CONFIRMATIONS[self.rng.usize(..CONFIRMATIONS.len())];
        self.fill(template, filler)
    }

    /// The confirmation of a retry or a bounce's delivery: a plain `250
    /// OK`, unless each message's texts are its own.
    pub(super) fn short_confirmation(&mut self) -> String {
        if self.profile.unique_texts {
            self.confirmation("")
        } else {
            "250 OK".to_owned()
        }
    }

    /// The remote server's refusal of an unknown recipient.
    pub(super) fn refusal(&mut self, recipient: &str) -> String {
        if !self.profile.unique_texts {
            return "550 5.1.1 User unknown".to_owned();
        }
        let template = REFUSALS[self.rng.usize(..REFUSALS.len())];
        if template.contains("<{}>") {
            return template.replacen("{}", recipient, 1);
        }
        self.fill(template, "")
    }

    /// `template` with each `{}` a token of its own, then `filler`.
    fn fill(&mut self, template: &str, filler: &str) -> String {
        let mut out = String::with_capacity(template.len() + 40);
        let mut parts = template.split("{}");
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            out.push_str(&format!("{:x}{:x}", self.rng.u64(..), self.rng.u16(..)));
            out.push_str(part);
        }
        out.push_str(filler);
        out
    }
}
