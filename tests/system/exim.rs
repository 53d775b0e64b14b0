//! Against a real Exim: two Exim daemons on loopback (the project's own
//! configurations in `tests/exim/`), a scripted workload sent with swaks,
//! and `exim-pilot run` tailing the receiving Exim's real main log. The
//! database must hold every line, recognise every line, give each message
//! the outcome Exim had, and count like eximstats.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Connection;
use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG, outcome, run, system_program, wait_for_lines};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Two Exim daemons in a temporary directory.
pub(crate) struct Exim {
    pub(crate) dir: TempDir,
    mx_port: u16,
}

impl Exim {
    /// Starts the peer and the mx; `verbose` turns on `+pid +millisec` and
    /// the other selectors, else Exim's defaults apply.
    pub(crate) fn start(verbose: bool) -> Option<Exim> {
        let (Some(exim4), Some(_)) = (system_program("exim4"), system_program("swaks")) else {
            crate::util::stand_down("exim4 or swaks is not installed: the real Exim test");
            return None;
        };
        let dir = TempDir::new().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for side in ["mx", "peer"] {
            for sub in ["spool", "log", "mail"] {
                std::fs::create_dir_all(dir.path().join(side).join(sub)).unwrap();
            }
            // Exim reads its configuration after dropping to its own user.
            let config = dir.path().join(format!("{side}.conf"));
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/exim")
                    .join(format!("{side}.conf")),
                &config,
            )
            .unwrap();
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["-R", "Debian-exim:Debian-exim"])
            .arg(dir.path().join("mx"))
            .arg(dir.path().join("peer"))
            .status()
            .unwrap();
        assert!(chown.success());
        for side in ["mx", "peer"] {
            std::fs::set_permissions(
                dir.path().join(side).join("log"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        let (mx_port, peer_port) = (free_port(), free_port());
        let define = |name: &str, value: &dyn std::fmt::Display| format!("-D{name}={value}");
        let peer = Command::new(&exim4)
            .arg("-C")
            .arg(dir.path().join("peer.conf"))
            .arg(define("DIR", &dir.path().display()))
            .arg(define("LISTEN_ON", &peer_port))
            .args(["-bd", "-q2s", "-oP"])
            .arg(dir.path().join("peer.pid"))
            .status()
            .unwrap();
        assert!(peer.success(), "the peer Exim did not start");
        let mut mx = Command::new(&exim4);
        mx.arg("-C")
            .arg(dir.path().join("mx.conf"))
            .arg(define("DIR", &dir.path().display()))
            .arg(define("LISTEN_ON", &mx_port))
            .arg(define("UPSTREAM", &peer_port));
        if verbose {
            mx.arg("-DVERBOSE_LOG=1");
        }
        let mx = mx
            .args(["-bd", "-q2s", "-oP"])
            .arg(dir.path().join("mx.pid"))
            .status()
            .unwrap();
        assert!(mx.success(), "the mx Exim did not start");
        let exim = Exim { dir, mx_port };
        for port in [mx_port, peer_port] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "Exim is not listening on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(exim)
    }

    pub(crate) fn mainlog(&self) -> PathBuf {
        self.dir.path().join("mx/log/mainlog")
    }

    /// Sends one message with swaks; `ipv6` connects to ::1.
    pub(crate) fn send(&self, from: &str, to: &[&str], subject: &str, tls: bool, ipv6: bool) {
        let server = if ipv6 { "::1" } else { "127.0.0.1" };
        let to = to.join(",");
        let mut swaks = Command::new("swaks");
        swaks
            .args([
                "--silent",
                "2",
                "-s",
                server,
                "-p",
                &self.mx_port.to_string(),
            ])
            .args(["-f", from, "-t", &to, "--h-Subject", subject]);
        if tls {
            swaks.arg("--tls");
        }
        // Rejections make swaks exit non-zero; the log is what we check.
        let _ = swaks.output().unwrap();
    }

    /// Stops both daemons and waits until they are gone.
    pub(crate) fn stop(&self) {
        for side in ["mx", "peer"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(format!("{side}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the mx log shows `needle`.
pub(crate) fn wait_for_log(exim: &Exim, needle: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(exim.mainlog()).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the Exim log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (status, frozen, parent) of the message from `sender`, and its
/// recipients' statuses by address.
pub(crate) fn message_from(
    conn: &Connection,
    sender: &str,
) -> (String, bool, Option<String>, Vec<(String, String)>) {
    let (id, status, frozen, parent): (i64, String, i64, Option<String>) = conn
        .query_row(
            "SELECT id, status, frozen, parent_exim_id FROM messages WHERE sender = ?1",
            [sender],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|err| panic!("no message from {sender}: {err}"));
    let recipients = conn
        .prepare("SELECT address, status FROM recipients WHERE message_id = ?1 ORDER BY address")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (status, frozen != 0, parent, recipients)
}

pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The whole workload against a real Exim, checked end to end.
///
/// Longer than 80 lines: one end-to-end workload through two real Exims,
/// then its assertions, in the order the mail flows.
fn workload(verbose: bool) {
    let Some(exim) = Exim::start(verbose) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("c.toml"), FAST_CONFIG).unwrap();
    let db = dir.path().join("x.db");
    let daemon = Daemon::start_at(
        dir.path(),
        &exim.mainlog(),
        &db,
        &dir.path().join("c.toml"),
        &[],
    );

    exim.send(
        "local@outside.example",
        &["alice@test.example"],
        "local",
        false,
        false,
    );
    exim.send(
        "team@outside.example",
        &[
            "alice@test.example",
            "bob@test.example",
            "carol@test.example",
        ],
        "team",
        false,
        false,
    );
    exim.send(
        "relay@outside.example",
        &["dave@remote.example"],
        "relay",
        false,
        false,
    );
    exim.send(
        "pair@outside.example",
        &["dave@remote.example", "erin@remote.example"],
        "relay two",
        false,
        false,
    );
    exim.send(
        "bounce@outside.example",
        &["nobody@remote.example"],
        "will bounce",
        false,
        false,
    );
    exim.send(
        "grey@outside.example",
        &["greyonce@remote.example"],
        "greylisted",
        false,
        false,
    );
    exim.send(
        "relaying@outside.example",
        &["someone@elsewhere.example"],
        "refused",
        false,
        false,
    );
    exim.send(
        "spam@outside.example",
        &["spammer@test.example"],
        "refused",
        false,
        false,
    );
    exim.send(
        "content@outside.example",
        &["bob@test.example"],
        "REJECTME please",
        false,
        false,
    );
    exim.send(
        "tls@outside.example",
        &["carol@test.example"],
        "over tls",
        true,
        false,
    );
    exim.send(
        "six@outside.example",
        &["bob@test.example"],
        "ipv6",
        false,
        true,
    );

    wait_for_log(&exim, "== greyonce@remote.example");
    std::fs::write(exim.dir.path().join("peer/grey-open"), "").unwrap();
    wait_for_log(&exim, "=> greyonce@remote.example");
    wait_for_log(&exim, "Frozen");
    exim.stop();

    // Everything Exim wrote is stored, byte for byte, in order.
    let content = std::fs::read(exim.mainlog()).unwrap();
    let expected: Vec<&[u8]> = content
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let stored = wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert_eq!(stored.len(), expected.len());
    for (stored, expected) in stored.iter().zip(&expected) {
        assert_eq!(stored.as_slice(), *expected);
    }
    let db_text = db.display().to_string();
    let stats: serde_json::Value =
        serde_json::from_str(&outcome(&run(&["stats", "--db", &db_text, "--json"])).1).unwrap();
    let unrecognised: Vec<String> = stored
        .iter()
        .filter(|raw| {
            exim_pilot::parse::parse_line(raw).kind() == exim_pilot::parse::Kind::Unrecognised
        })
        .map(|raw| String::from_utf8_lossy(raw).into_owned())
        .collect();
    assert_eq!(crate::util::lines_of_kind(&db, "unrecognised"), 0);
    assert!(
        unrecognised.is_empty(),
        "every line of a real Exim log is recognised: {unrecognised:#?}"
    );
    assert_eq!(stats["unrecognised"], 0);
    assert!(daemon.stop().success());

    let conn = Connection::open(&db).unwrap();
    let delivered = |r: &[(&str, &str)]| pairs(r);
    assert_eq!(
        message_from(&conn, "local@outside.example"),
        (
            "completed".into(),
            false,
            None,
            delivered(&[("alice@test.example", "delivered")])
        )
    );
    assert_eq!(
        message_from(&conn, "team@outside.example").3,
        delivered(&[
            ("alice@test.example", "delivered"),
            ("bob@test.example", "delivered"),
            ("carol@test.example", "delivered")
        ])
    );
    assert_eq!(
        message_from(&conn, "relay@outside.example").3,
        delivered(&[("dave@remote.example", "delivered")])
    );
    assert_eq!(
        message_from(&conn, "pair@outside.example").3,
        delivered(&[
            ("dave@remote.example", "delivered"),
            ("erin@remote.example", "delivered")
        ])
    );
    let (status, _, _, recipients) = message_from(&conn, "bounce@outside.example");
    assert_eq!(
        (status.as_str(), recipients),
        ("completed", pairs(&[("nobody@remote.example", "bounced")]))
    );
    let bounced_id: String = conn
        .query_row(
            "SELECT exim_id FROM messages WHERE sender = 'bounce@outside.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (status, frozen, parent, recipients) = message_from(&conn, "<>");
    assert_eq!(
        (status.as_str(), frozen, parent),
        ("frozen", true, Some(bounced_id)),
        "the bounce links to its message"
    );
    assert_eq!(recipients, pairs(&[("bounce@outside.example", "bounced")]));
    let (status, _, _, recipients) = message_from(&conn, "grey@outside.example");
    assert_eq!(
        (status.as_str(), recipients),
        (
            "completed",
            pairs(&[("greyonce@remote.example", "delivered")])
        )
    );
    let deferrals: i64 = conn
        .query_row(
            "SELECT count(*) FROM delivery_attempts a JOIN messages m ON m.id = a.message_id
             WHERE m.sender = 'grey@outside.example' AND a.outcome = 'deferred'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(deferrals >= 1, "greylisting was deferred first");
    let rejections: Vec<(String, Option<String>)> = crate::util::query_all(
        &conn,
        "SELECT stage, recipient FROM rejections ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(
        rejections,
        vec![
            (
                "rcpt".to_owned(),
                Some("someone@elsewhere.example".to_owned())
            ),
            ("rcpt".to_owned(), Some("spammer@test.example".to_owned())),
            ("after_data".to_owned(), None),
        ]
    );
    let tls: Option<String> = conn
        .query_row(
            "SELECT t.text FROM messages m JOIN texts t ON t.id = m.tls_cipher_id
             WHERE m.sender = 'tls@outside.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tls.is_some_and(|cipher| cipher.starts_with("TLS")));
    let ip: String = conn
        .query_row(
            "SELECT host_ip FROM messages WHERE sender = 'six@outside.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ip, "::1");

    // The same numbers as eximstats on the same log (Exim 4.96 ids).
    let expected = crate::util::eximstats(&exim.mainlog()).expect("eximstats comes with Exim");
    assert_eq!(stats["received"], expected.received);
    assert_eq!(stats["delivered"], expected.delivered_addresses);
    assert_eq!(stats["rejected"], expected.rejects);
    assert_eq!(stats["totals"]["received_volume"], expected.received_volume);
}

#[test]
fn a_real_exim_with_pid_and_millisecond_timestamps() {
    workload(true);
}

#[test]
fn a_real_exim_with_its_default_log_selector() {
    workload(false);
}
