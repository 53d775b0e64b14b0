//! The queue helper against a real Exim (`tests/exim/queue.conf`): mail
//! queued with `-odq` to a smarthost where nothing listens, the helper run
//! as Exim's user exactly as systemd runs it (the connection on its
//! standard input and output), in the first tier under NoNewPrivileges and
//! in the second without. Exim's own log lines and listing are the truth.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use exim_pilot::queue::helper::Reply;
use exim_pilot::queue::listing::parse_listing;
use exim_pilot::queue::outcome::Outcome;
use exim_pilot::queue::record::Record;
use tempfile::TempDir;

use crate::util::system_program;

/// A private Exim spool, and a helper set up to act on it.
struct Queue {
    dir: TempDir,
    exim4: PathBuf,
    /// Where mail for other domains goes.
    port: u16,
}

impl Queue {
    fn new() -> Option<Queue> {
        Queue::with_smarthost_port(9)
    }

    /// A queue whose mail for other domains goes to 127.0.0.1:`port`.
    fn with_smarthost_port(port: u16) -> Option<Queue> {
        let (Some(exim4), Some(_)) = (system_program("exim4"), system_program("setpriv")) else {
            crate::util::stand_down(
                "exim4 (exim4-daemon-light) or setpriv is not installed: the queue test",
            );
            return None;
        };
        if !crate::root::privileged("the queue test (it runs the helper as Debian-exim)") {
            return None;
        }
        let dir = TempDir::new().unwrap();
        let path = dir.path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["spool", "log", "mail", "actions"] {
            std::fs::create_dir(path.join(sub)).unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exim/queue.conf"),
            path.join("queue.conf"),
        )
        .unwrap();
        // What systemd's ExecStart names: a root-owned helper and, for this
        // private spool, Exim with its configuration (the helper's argv is
        // fixed: "exim" is whatever [queue] exim names).
        std::fs::copy(
            env!("CARGO_BIN_EXE_exim-pilot-queue-helper"),
            path.join("helper"),
        )
        .unwrap();
        let wrapper = path.join("exim");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} -C {}/queue.conf -DDIR={} -DSMARTHOST_PORT={port} \"$@\"\n",
                exim4,
                path.display(),
                path.display()
            ),
        )
        .unwrap();
        for file in ["helper", "exim"] {
            std::fs::set_permissions(path.join(file), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::write(
            path.join("pilot.toml"),
            format!(
                "[web]\nauth = \"proxy\"\nproxy_user_header = \"X-User\"\n\
                 proxy_addresses = [\"127.0.0.1\"]\n\n\
                 [queue]\nactions = true\nexim = \"{}\"\nactions_log = \"{}\"\nbulk_limit = 10\n",
                wrapper.display(),
                path.join("actions/actions.log").display()
            ),
        )
        .unwrap();
        let chown = Command::new("chown")
            .args(["-R", "Debian-exim:Debian-exim"])
            .args(["spool", "log", "mail", "actions"].map(|sub| path.join(sub)))
            .status()
            .unwrap();
        assert!(chown.success());
        Some(Queue {
            dir,
            exim4: PathBuf::from(exim4),
            port,
        })
    }

    /// Queues a message from `from` to `to` without trying to deliver it;
    /// returns its id.
    fn submit(&self, from: &str, to: &str, subject: &str) -> String {
        let before = self.ids();
        let mut exim = self
            .exim_as_root(&["-odq", "-f", from, to])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        write!(
            exim.stdin.take().unwrap(),
            "From: {from}\nTo: {to}\nSubject: {subject}\n\nqueued by the test\n"
        )
        .unwrap();
        assert!(exim.wait().unwrap().success());
        let after = self.ids();
        let new: Vec<String> = after
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        new[0].clone()
    }

    fn exim_as_root(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exim4);
        command
            .arg("-C")
            .arg(self.dir.path().join("queue.conf"))
            .arg(format!("-DDIR={}", self.dir.path().display()))
            .arg(format!("-DSMARTHOST_PORT={}", self.port))
            .args(args);
        command
    }

    /// The queue as root's `exim -bp` lists it.
    fn listing(&self) -> Vec<u8> {
        let output = self.exim_as_root(&["-bp"]).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        output.stdout
    }

    fn ids(&self) -> Vec<String> {
        parse_listing(&self.listing())
            .0
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    fn mainlog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/mainlog")).unwrap_or_default()
    }

    fn records(&self) -> Vec<Record> {
        std::fs::read(self.dir.path().join("actions/actions.log"))
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| Record::from_line(line).unwrap())
            .collect()
    }

    /// Sends `request` to the helper of `tier` run as Debian-exim (under
    /// NoNewPrivileges when `no_new_privs`), its connection a socket as
    /// systemd passes it; returns the reply and what followed it.
    fn ask(&self, tier: u8, no_new_privs: bool, request: serde_json::Value) -> (Reply, Vec<u8>) {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let input: OwnedFd = theirs.into();
        let output = input.try_clone().unwrap();
        let mut setpriv = helper_command(self.dir.path(), tier, no_new_privs);
        let helper = setpriv
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(output))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command holds the helper's end of the connection until it is
        // dropped: without this, reading ours would never end.
        drop(setpriv);
        let mut line = request.to_string();
        line.push('\n');
        ours.write_all(line.as_bytes()).unwrap();
        let done = helper.wait_with_output().unwrap();
        let mut answer = Vec::new();
        ours.read_to_end(&mut answer).unwrap();
        assert!(
            done.status.success(),
            "helper: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let newline = answer.iter().position(|&b| b == b'\n').unwrap();
        let reply: Reply = serde_json::from_slice(&answer[..newline]).unwrap();
        (reply, answer[newline + 1..].to_vec())
    }
}

impl Queue {
    /// Listens on `queue.sock` and `deliver.sock` as systemd's sockets with
    /// `Accept=yes` do: each connection gets a helper of its own (the first
    /// tier under NoNewPrivileges), as Debian-exim.
    fn listen(&self) {
        for (name, tier) in [("queue.sock", 1u8), ("deliver.sock", 2u8)] {
            let listener =
                std::os::unix::net::UnixListener::bind(self.dir.path().join(name)).unwrap();
            let dir = self.dir.path().to_path_buf();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let input: OwnedFd = stream.into();
                    let output = input.try_clone().unwrap();
                    let mut setpriv = helper_command(&dir, tier, tier == 1);
                    let helper = setpriv
                        .stdin(Stdio::from(input))
                        .stdout(Stdio::from(output))
                        .spawn();
                    drop(setpriv);
                    if let Ok(mut helper) = helper {
                        let _ = helper.wait();
                    }
                }
            });
        }
        let mut config = std::fs::read_to_string(self.dir.path().join("pilot.toml")).unwrap();
        config.push_str(&format!(
            "socket = \"{}\"\ndeliver_socket = \"{}\"\n\n[database]\npath = \"{}\"\n",
            self.dir.path().join("queue.sock").display(),
            self.dir.path().join("deliver.sock").display(),
            self.dir.path().join("pilot.db").display(),
        ));
        std::fs::write(self.dir.path().join("pilot.toml"), config).unwrap();
    }

    /// `exim-pilot` with this queue's configuration.
    fn pilot(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(crate::util::binary())
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("pilot.toml"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        crate::util::outcome(&output)
    }
}

/// The helper of `tier` in `dir` as systemd runs it: as Debian-exim, under
/// NoNewPrivileges when `no_new_privs` (the first tier's unit).
fn helper_command(dir: &Path, tier: u8, no_new_privs: bool) -> Command {
    let mut setpriv = Command::new("setpriv");
    setpriv.args([
        "--reuid=Debian-exim",
        "--regid=Debian-exim",
        "--init-groups",
    ]);
    if no_new_privs {
        setpriv.arg("--no-new-privs");
    }
    setpriv
        .arg("--")
        .arg(dir.join("helper"))
        .args(["--tier", &tier.to_string(), "--config"])
        .arg(dir.join("pilot.toml"));
    setpriv
}

fn request(verb: &str, ids: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "v": 1,
        "request_id": format!("test-{verb}"),
        "verb": verb,
        "ids": ids,
        "reason": "the queue test",
        "origin": "cli",
    })
}

#[test]
fn the_first_tier_lists_freezes_thaws_and_removes_as_exim_logs_it() {
    let Some(queue) = Queue::new() else { return };
    let first = queue.submit("alice@test.example", "dave@remote.example", "one");
    let second = queue.submit("<>", "erin@remote.example", "a bounce");
    let third = queue.submit("bob@test.example", "frank@remote.example", "three");

    // The listing equals root's, read by the same reader.
    let (reply, listing) = queue.ask(1, true, request("list", &[]));
    assert!(reply.ok, "{reply:?}");
    let (mut listed, skipped) = parse_listing(&listing);
    assert_eq!(skipped, 0);
    // -bpr is unsorted, -bp sorted.
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = parse_listing(&queue.listing()).0;
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|m| m.id == second && m.sender.is_empty()));

    let act = |verb: &str, ids: &[&str]| queue.ask(1, true, request(verb, ids)).0;
    let reply = act("freeze", &[&first]);
    assert_eq!(reply.outcomes, [Outcome::Done], "{reply:?}");
    assert!(
        queue
            .mainlog()
            .contains(&format!("{first} frozen by Debian-exim"))
    );
    let frozen = parse_listing(&queue.listing()).0;
    assert!(frozen.iter().any(|m| m.id == first && m.frozen));
    assert_eq!(act("freeze", &[&first]).outcomes, [Outcome::Noop]);
    assert_eq!(
        act("thaw", &[&first, &third]).outcomes,
        [Outcome::Done, Outcome::Noop]
    );
    assert!(
        queue
            .mainlog()
            .contains(&format!("{first} unfrozen by Debian-exim"))
    );
    assert_eq!(act("remove", &[&third]).outcomes, [Outcome::Done]);
    assert!(
        queue
            .mainlog()
            .contains(&format!("{third} removed by Debian-exim"))
    );
    // Gone from the queue: the re-check finds it absent and Exim is not run.
    let reply = act("remove", &[&third]);
    assert_eq!(reply.outcomes, [Outcome::Absent], "{reply:?}");
    assert!(reply.argv.is_empty(), "{reply:?}");
    assert_eq!(queue.ids().len(), 2);

    // The headers of a queued message, from the helper.
    let (reply, headers) = queue.ask(1, true, request("show_headers", &[&first]));
    assert!(reply.ok, "{reply:?}");
    assert!(String::from_utf8_lossy(&headers).contains("Subject: one"));

    // Every action has its intent and then its outcome, in order.
    let records = queue.records();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            Record::Intent(_) => "intent",
            Record::Outcome(_) => "outcome",
        })
        .collect();
    // freeze, freeze again, thaw, remove, remove again: showing headers is
    // not audited.
    assert_eq!(kinds.len(), 10, "{records:?}");
    assert!(
        kinds.chunks(2).all(|pair| pair == ["intent", "outcome"]),
        "{kinds:?}"
    );
    match &records[0] {
        Record::Intent(intent) => {
            assert_eq!(intent.caller.actor.user, "root");
            assert_eq!(intent.ids, [first.clone()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_requests_are_refused_and_deliver_needs_the_second_tier() {
    let Some(queue) = Queue::new() else { return };
    let id = queue.submit("alice@test.example", "alice@test.example", "local");
    for (tier, request) in [
        (1, request("remove", &["-C/tmp/evil"])),
        (1, request("remove", &["1rAAAA-000001-AB;id"])),
        (1, request("deliver", &[&id])),
        (2, request("freeze", &[&id])),
        (
            1,
            serde_json::json!({"v": 1, "request_id": "x", "verb": "run", "ids": []}),
        ),
    ] {
        let (reply, _) = queue.ask(tier, tier == 1, request.clone());
        assert!(!reply.ok, "{request}: {reply:?}");
    }
    // Nothing ran: no action lines, no records, the message still queued.
    assert!(!queue.mainlog().contains(" by Debian-exim"));
    assert!(queue.records().is_empty());
    assert_eq!(queue.ids(), [id.clone()]);

    // The second tier, without NoNewPrivileges: Exim's setuid root makes the
    // local delivery that the first tier could not.
    let (reply, _) = queue.ask(2, false, request("deliver", &[&id]));
    assert_eq!(reply.outcomes, [Outcome::Started], "{reply:?}");
    let log = queue.mainlog();
    assert!(
        log.contains(&format!("{id} => alice <alice@test.example>")),
        "{log}"
    );
    assert!(log.contains(&format!("{id} Completed")), "{log}");
    assert!(queue.ids().is_empty());
}

#[test]
fn the_cli_lists_with_the_logs_deferral_reasons_and_acts_through_the_helper() {
    let Some(queue) = Queue::new() else { return };
    queue.listen();
    let remote = queue.submit("alice@test.example", "dave@remote.example", "deferred");
    let frozen = queue.submit("bob@test.example", "erin@remote.example", "to freeze");
    // A delivery attempt through the second tier: the smarthost refuses
    // the connection, Exim defers and logs why.
    let (status, stdout, stderr) = queue.pilot(&["queue", "deliver", &remote, "--yes"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{remote} deliver: started")),
        "{stdout}"
    );
    assert!(
        queue
            .mainlog()
            .contains(&format!("{remote} == dave@remote.example"))
    );
    // The log into a database of its own, for the reasons.
    let (status, _, stderr) = queue.pilot(&[
        "ingest",
        queue.dir.path().join("log/mainlog").to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{stderr}");

    let (status, stdout, stderr) = queue.pilot(&["queue", "list", "--json"]);
    assert_eq!(status, 0, "{stderr}");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    let deferred = rows
        .iter()
        .find(|r| r["queue_id"] == remote.as_str())
        .unwrap();
    let recipient = &deferred["recipients"][0];
    assert_eq!(recipient["address"], "dave@remote.example");
    assert_eq!(recipient["attempts"], 1, "{deferred}");
    assert!(
        recipient["delay_reason"]
            .as_str()
            .unwrap_or("")
            .contains("Connection refused"),
        "{deferred}"
    );

    // An action on a selection, confirmed with --yes; a selection of
    // everything is refused, as is an action without confirmation.
    let (status, _, stderr) = queue.pilot(&["queue", "freeze", "--older", "0s"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let (status, _, stderr) = queue.pilot(&["queue", "remove", "--yes"]);
    assert_eq!(status, 2, "{stderr}");
    let (status, stdout, stderr) = queue.pilot(&[
        "queue",
        "freeze",
        "--recipient",
        "erin@",
        "--yes",
        "--reason",
        "loops",
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("{frozen} freeze: done"));
    let (_, stdout, _) = queue.pilot(&["queue", "list", "--frozen"]);
    assert!(
        stdout.contains(&frozen) && !stdout.contains(&remote),
        "{stdout}"
    );
    let (_, stdout, _) = queue.pilot(&["queue", "count"]);
    assert_eq!(stdout.trim(), "2");
    let (status, stdout, _) = queue.pilot(&["queue", "remove", &frozen, "--dry-run"]);
    assert_eq!(status, 0);
    assert!(stdout.contains("dry_run"), "{stdout}");
    assert_eq!(queue.ids().len(), 2);
    let reasons: Vec<String> = queue
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::Intent(intent) => Some(format!("{} {}", intent.verb.name(), intent.reason)),
            Record::Outcome(_) => None,
        })
        .collect();
    assert_eq!(reasons, ["deliver ", "freeze loops", "remove "]);
}

/// A smarthost on loopback that takes one message and says 250 to
/// everything; its thread returns what it was sent.
fn smtp_sink() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::BufRead as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut lines = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        out.write_all(b"220 sink.test ESMTP\r\n").unwrap();
        let (mut received, mut line, mut in_data) = (String::new(), String::new(), false);
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return received;
            }
            received.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    out.write_all(b"250 OK queued as sink1\r\n").unwrap();
                }
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "EHLO" | "HELO" => b"250 sink.test\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    let _ = out.write_all(b"221 bye\r\n");
                    return received;
                }
                _ => b"250 OK\r\n",
            };
            out.write_all(reply).unwrap();
        }
    });
    (port, sink)
}

#[test]
fn the_second_tier_delivers_gives_up_and_a_self_frozen_or_locked_message_reads_right() {
    let (port, sink) = smtp_sink();
    let Some(queue) = Queue::with_smarthost_port(port) else {
        return;
    };
    let log_has = |text: &str| queue.mainlog().contains(text);

    // Deliver now, to a smarthost that listens: Exim's own delivery line.
    let sent = queue.submit("alice@test.example", "ivy@remote.example", "deliver me");
    let (reply, _) = queue.ask(2, false, request("deliver", &[&sent]));
    assert_eq!(reply.outcomes, [Outcome::Started], "{reply:?}");
    assert!(
        log_has(&format!("{sent} => ivy@remote.example")),
        "{}",
        queue.mainlog()
    );
    assert!(log_has(&format!("{sent} Completed")));
    assert!(sink.join().unwrap().contains("Subject: deliver me"));

    // A message another process holds (as a delivery does) is busy.
    let held = queue.submit("alice@test.example", "gina@remote.example", "held");
    let data = std::fs::File::options()
        .read(true)
        .write(true)
        .open(queue.dir.path().join(format!("spool/input/{held}-D")))
        .unwrap();
    rustix::fs::fcntl_lock(&data, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let (reply, _) = queue.ask(1, true, request("freeze", &[&held]));
    assert_eq!(reply.outcomes, [Outcome::Busy], "{reply:?}");
    drop(data);

    // A bounce that cannot be delivered: Exim freezes it itself; thawed.
    let bounce = queue.submit("<>", "nobody@test.example", "an undeliverable bounce");
    queue.ask(2, false, request("deliver", &[&bounce]));
    assert!(
        log_has(&format!("{bounce} Frozen (delivery error message)")),
        "{}",
        queue.mainlog()
    );
    let listed = parse_listing(&queue.listing()).0;
    assert!(
        listed.iter().any(|m| m.id == bounce && m.frozen),
        "{listed:?}"
    );
    let (reply, _) = queue.ask(1, true, request("thaw", &[&bounce]));
    assert_eq!(reply.outcomes, [Outcome::Done], "{reply:?}");
    assert!(log_has(&format!("{bounce} unfrozen by Debian-exim")));

    // Give up: Exim cancels it and bounces it to its sender.
    let doomed = queue.submit("alice@test.example", "hank@remote.example", "give up");
    let (reply, _) = queue.ask(2, false, request("give_up", &[&doomed]));
    assert_eq!(reply.outcomes, [Outcome::Started], "{reply:?}");
    assert!(log_has(&format!("{doomed} cancelled by Debian-exim")));
    assert!(log_has(&format!("<= <> R={doomed}")), "{}", queue.mainlog());
}
