//! One message's lines: its session and reception, then its deliveries
//! (local, remote, greylisted then delivered, or bounced with a bounce
//! message of its own), each outcome recorded in the truth.

use super::{CIPHER, Generator, LOCAL_USERS, REMOTE_DOMAINS};

/// A received message, as its delivery lines need it.
struct Message {
    id: String,
    sender: String,
    recipients: Vec<String>,
    size: u32,
    /// The pid of the process delivering it.
    deliverer: u32,
    /// Padding of the profile's long texts.
    filler: String,
}

impl Generator {
    pub(super) fn message(&mut self) -> Vec<String> {
        let receiver = self.next_pid();
        let id = self.message_id();
        let (host, _) = self.client();
        let tls = self.rng.u8(..100) < 60;
        let size = self.message_size();
        let profile = self.profile;
        let sender = format!(
            "user{}@{}",
            self.rng.u32(..profile.senders),
            self.pick(&REMOTE_DOMAINS)
        );
        let (local, recipients) = self.recipients();
        let filler = "x".repeat(profile.long_text);
        let subject = self.subject(&filler);
        let mut lines = vec![
            format!("[{receiver}] SMTP connection from {host} (TCP/IP connection count = 1)"),
            format!(
                "[{receiver}] {id} <= {sender} H={host} P={} {}S={size} id={}.{}@example.com T=\"{subject}\" for {}",
                if tls { "esmtps" } else { "esmtp" },
                if tls {
                    format!("X={CIPHER} CV=no ")
                } else {
                    String::new()
                },
                self.rng.u32(..),
                receiver,
                recipients.join(" ")
            ),
            format!("[{receiver}] SMTP connection from {host} D=1s closed by QUIT"),
        ];
        let message = Message {
            id,
            sender,
            recipients,
            size,
            deliverer: self.next_pid(),
            filler,
        };
        let outcome = self.rng.u8(..100);
        if local {
            self.delivered_locally(&message, &mut lines);
            return lines;
        }
        let mx = format!(
            "mx.{}",
            message.recipients[0]
                .split('@')
                .nth(1)
                .unwrap_or("example.com")
        );
        let mx_ip = format!("198.51.100.{}", self.rng.u8(1..255));
        let peer = format!("H={mx} [{mx_ip}]:25");
        let delivered = 100u8.saturating_sub(profile.greylisted + profile.bounced);
        match outcome {
            o if o < delivered => self.delivered_remotely(&message, &peer, &mut lines),
            o if o < delivered.saturating_add(profile.greylisted) => {
                self.greylisted(&message, &peer, &mut lines);
            }
            _ => self.bounced(&message, &peer, &mut lines),
        }
        lines
    }

    /// A message's recipients, each once, local or remote by the profile;
    /// counted in the truth.
    fn recipients(&mut self) -> (bool, Vec<String>) {
        let profile = self.profile;
        let recipient_count = 1 + profile
            .extra_recipients
            .iter()
            .filter(|percent| self.rng.u8(..100) < **percent)
            .count();
        let local = self.rng.u8(..100) < profile.local;
        let recipients: Vec<String> = (0..recipient_count)
            .map(|_| {
                if local {
                    format!("{}@mx.example", self.pick(&LOCAL_USERS))
                } else {
                    format!(
                        "rcpt{}@{}",
                        self.rng.u32(..profile.remote_recipients),
                        self.pick(&REMOTE_DOMAINS)
                    )
                }
            })
            .collect();
        let mut unique: Vec<String> = Vec::new();
        for recipient in recipients {
            if !unique.contains(&recipient) {
                unique.push(recipient);
            }
        }
        for recipient in &unique {
            if self.recipients_seen.insert(recipient.clone()) {
                self.truth.distinct_recipients += 1;
            }
        }
        (local, unique)
    }

    fn delivered_locally(&mut self, m: &Message, lines: &mut Vec<String>) {
        let (id, deliverer, size) = (&m.id, m.deliverer, m.size);
        for recipient in &m.recipients {
            let user = recipient.split('@').next().unwrap_or("user");
            lines.push(format!(
                "[{deliverer}] {id} => {user} <{recipient}> R=local_user T=local_delivery S={size} QT={}s DT=0s",
                self.rng.u8(..5)
            ));
        }
        lines.push(format!(
            "[{deliverer}] {id} Completed QT={}s",
            self.rng.u8(..5)
        ));
        self.record(id, "completed", false, &m.recipients, "delivered");
    }

    fn delivered_remotely(&mut self, m: &Message, peer: &str, lines: &mut Vec<String>) {
        let (id, deliverer, size, filler) = (&m.id, m.deliverer, m.size, &m.filler);
        for (index, recipient) in m.recipients.iter().enumerate() {
            let flag = if index == 0 { "=>" } else { "->" };
            let confirmation = self.confirmation(filler);
            lines.push(format!(
                "[{deliverer}] {id} {flag} {recipient} R=dnslookup T=remote_smtp S={size} {peer} X={CIPHER} CV=yes K C=\"{confirmation}\" QT={}s DT={}s",
                self.rng.u8(..9), self.rng.u8(..3)
            ));
        }
        lines.push(format!(
            "[{deliverer}] {id} Completed QT={}s",
            self.rng.u8(..9)
        ));
        self.record(id, "completed", false, &m.recipients, "delivered");
    }

    /// Greylisted, then delivered on a later queue run.
    fn greylisted(&mut self, m: &Message, peer: &str, lines: &mut Vec<String>) {
        let (id, deliverer, size) = (&m.id, m.deliverer, m.size);
        for recipient in &m.recipients {
            lines.push(format!(
                "[{deliverer}] {id} == {recipient} R=dnslookup T=remote_smtp defer (-44) {peer} DT=0s: SMTP error from remote mail server after RCPT TO:<{recipient}>: 451 4.7.1 Greylisted, try again later"
            ));
        }
        let runner = self.next_pid();
        lines.push(format!(
            "[{runner}] {id} == {} routing defer (-51): retry time not reached",
            m.recipients[0]
        ));
        let retry = self.next_pid();
        for (index, recipient) in m.recipients.iter().enumerate() {
            let flag = if index == 0 { "=>" } else { "->" };
            let confirmation = self.short_confirmation();
            lines.push(format!(
                "[{retry}] {id} {flag} {recipient} R=dnslookup T=remote_smtp S={size} {peer} C=\"{confirmation}\" QT={}m{}s DT=1s",
                self.rng.u8(5..30), self.rng.u8(..60)
            ));
        }
        lines.push(format!(
            "[{retry}] {id} Completed QT={}m",
            self.rng.u8(5..31)
        ));
        self.record(id, "completed", false, &m.recipients, "delivered");
    }

    /// Unknown user: a bounce, and its bounce message, which is frozen
    /// when the sender cannot be reached either.
    fn bounced(&mut self, m: &Message, peer: &str, lines: &mut Vec<String>) {
        let (id, deliverer, size, sender) = (&m.id, m.deliverer, m.size, &m.sender);
        for recipient in &m.recipients {
            let refusal = self.refusal(recipient);
            lines.push(format!(
                "[{deliverer}] {id} ** {recipient} R=dnslookup T=remote_smtp {peer}: SMTP error from remote mail server after RCPT TO:<{recipient}>: {refusal}"
            ));
        }
        let bounce = self.message_id();
        let bouncer = self.next_pid();
        lines.push(format!(
            "[{bouncer}] {bounce} <= <> R={id} U=Debian-exim P=local S={} T=\"Mail delivery failed: returning message to sender\" for {sender}",
            size + 1500
        ));
        lines.push(format!("[{deliverer}] {id} Completed QT=1s"));
        self.record(id, "completed", false, &m.recipients, "bounced");
        let bounce_recipients = [sender.clone()];
        if self.rng.bool() {
            self.record(&bounce, "frozen", true, &bounce_recipients, "bounced");
            self.still_frozen(&bounce);
            lines.push(format!(
                "[{bouncer}] {bounce} ** {sender}: Unrouteable address"
            ));
            lines.push(format!(
                "[{bouncer}] {bounce} Frozen (delivery error message)"
            ));
        } else {
            self.record(&bounce, "completed", false, &bounce_recipients, "delivered");
            let confirmation = self.short_confirmation();
            lines.push(format!(
                "[{bouncer}] {bounce} => {sender} R=dnslookup T=remote_smtp H=mx.example.com [203.0.113.9]:25 C=\"{confirmation}\" QT=2s DT=1s"
            ));
            lines.push(format!("[{bouncer}] {bounce} Completed QT=2s"));
        }
    }
}
