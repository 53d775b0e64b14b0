//! The helper against a stand-in Exim (a script that lists the ids it is
//! asked about as queued unless named in `gone`, and for anything else
//! records its argv, its environment and whether the intent was on disk
//! when it ran, and prints what Exim prints): what runs, what is refused, and what is
//! recorded before and after.

use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::queue::request::{Actor, PROTOCOL_VERSION};

struct Setup {
    dir: tempfile::TempDir,
    config: QueueConfig,
}

/// A stand-in Exim printing `stdout`, and recording what it saw.
fn setup(stdout: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let exim = dir.path().join("exim");
    let log = dir.path().join("actions.log");
    std::fs::write(
        &exim,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = -bpr ] && [ $# -gt 1 ]; then\n\
               shift\n\
               for id; do\n\
                 if grep -qx \"$id\" {d}/gone 2>/dev/null; then\n\
                   printf '  0 %s\\n    *** spool read error: No such file or directory ***\\n\\n' \"$id\"\n\
                 else\n\
                   printf ' 5m   328 %s <a@b>\\n          c@d\\n\\n' \"$id\"\n\
                 fi\n\
               done\n\
               exit 0\n\
             fi\n\
             echo \"$@\" > {d}/argv\n\
             env > {d}/env\n\
             cp {log} {d}/log-when-run 2>/dev/null\n\
             printf '%s' '{stdout}'\n",
            d = dir.path().display(),
            log = log.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&exim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = QueueConfig {
        actions: true,
        exim,
        socket: PathBuf::from("/nonexistent/queue.sock"),
        deliver_socket: PathBuf::from("/nonexistent/deliver.sock"),
        actions_log: log,
        web_user: "exim-pilot".to_owned(),
        bulk_limit: 3,
    };
    Setup { dir, config }
}

fn cli_peer() -> Peer {
    Peer {
        uid: 0,
        pid: 99,
        user: "root".to_owned(),
    }
}

fn request(verb: Verb, ids: &[&str]) -> Request {
    Request {
        v: PROTOCOL_VERSION,
        request_id: "req-7".to_owned(),
        verb,
        ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        dry_run: false,
        reason: "testing".to_owned(),
        selection: String::new(),
        origin: "cli".to_owned(),
        actor: Actor::default(),
    }
}

/// Serves `request` and returns the reply and the payload after it.
fn ask(config: &QueueConfig, peer: &Peer, request: &Request) -> (Reply, Vec<u8>) {
    let mut line = serde_json::to_vec(request).unwrap();
    line.push(b'\n');
    let mut out = Vec::new();
    serve(
        config,
        request.verb.tier(),
        peer,
        &mut Cursor::new(line),
        &mut out,
    )
    .unwrap();
    let newline = out.iter().position(|&b| b == b'\n').unwrap();
    let reply: Reply = serde_json::from_slice(&out[..newline]).unwrap();
    (reply, out[newline + 1..].to_vec())
}

fn records(log: &Path) -> Vec<Record> {
    std::fs::read(log)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Record::from_line(line).unwrap())
        .collect()
}

#[test]
fn an_action_is_recorded_on_disk_before_exim_runs_and_its_outcome_after() {
    let Setup { dir, config } =
        setup("Message 1rAAAA-000001-AB is now frozen\nMessage 1rAAAA-000002-AB is locked\n");
    let (reply, payload) = ask(
        &config,
        &cli_peer(),
        &request(Verb::Freeze, &["1rAAAA-000001-AB", "1rAAAA-000002-AB"]),
    );
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.outcomes, [Outcome::Done, Outcome::Busy]);
    assert!(payload.is_empty());
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(argv.trim(), "-Mf 1rAAAA-000001-AB 1rAAAA-000002-AB");
    // The intent was in the log when Exim ran.
    let seen = std::fs::read_to_string(dir.path().join("log-when-run")).unwrap();
    assert!(
        seen.contains("\"record\":\"intent\"") && seen.contains("req-7"),
        "{seen}"
    );
    assert!(!seen.contains("\"record\":\"outcome\""), "{seen}");
    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    assert!(!env.contains("HOME="), "{env}");
    match records(&config.actions_log).as_slice() {
        [Record::Intent(intent), Record::Outcome(outcome)] => {
            assert_eq!(intent.caller.actor.user, "root");
            assert_eq!(intent.caller.origin, "cli");
            assert_eq!(
                intent.argv[1..],
                ["-Mf", "1rAAAA-000001-AB", "1rAAAA-000002-AB"]
            );
            assert_eq!(outcome.outcomes, ["done", "busy"]);
            assert_eq!(outcome.request_id, "req-7");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_listing_passes_exims_output_on_and_is_not_recorded() {
    let Setup { dir: _dir, config } = setup(" 5m   328 1rAAAA-000001-AB <a@b>\n          c@d\n\n");
    let (reply, payload) = ask(&config, &cli_peer(), &request(Verb::List, &[]));
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        payload,
        b" 5m   328 1rAAAA-000001-AB <a@b>\n          c@d\n\n"
    );
    assert_eq!(reply.payload_bytes, payload.len() as u64);
    assert!(records(&config.actions_log).is_empty());
}

#[test]
fn refusals_run_nothing() {
    let Setup { dir, mut config } = setup("");
    let ran = || dir.path().join("argv").exists();
    // A viewer from the web view may list, not act or read a body.
    let web = Peer {
        uid: 104,
        pid: 5,
        user: "exim-pilot".to_owned(),
    };
    let mut viewer = request(Verb::Remove, &["1rAAAA-000001-AB"]);
    viewer.actor = Actor {
        user: "vera".into(),
        role: "viewer".into(),
        auth: "users".into(),
        client_ip: "192.0.2.9".into(),
    };
    let (reply, _) = ask(&config, &web, &viewer);
    assert!(!reply.ok && reply.error.contains("admin role"), "{reply:?}");
    viewer.verb = Verb::ShowBody;
    assert!(!ask(&config, &web, &viewer).0.ok);
    // Over the bulk limit.
    let many = [
        "1rAAAA-000001-AB",
        "1rAAAA-000002-AB",
        "1rAAAA-000003-AB",
        "1rAAAA-000004-AB",
    ];
    let (reply, _) = ask(&config, &cli_peer(), &request(Verb::Thaw, &many));
    assert!(reply.error.contains("bulk_limit"), "{reply:?}");
    // Actions off.
    config.actions = false;
    let (reply, _) = ask(&config, &cli_peer(), &request(Verb::Freeze, &many[..1]));
    assert!(reply.error.contains("actions are off"), "{reply:?}");
    // A bad request line.
    let mut out = Vec::new();
    serve(
        &config,
        1,
        &cli_peer(),
        &mut Cursor::new(b"{\"v\":1}\n".to_vec()),
        &mut out,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&out).contains("\"ok\":false"));
    assert!(!ran(), "Exim ran");
    assert!(records(&config.actions_log).is_empty());
}

#[test]
fn an_action_that_cannot_be_recorded_is_refused() {
    let Setup { dir, mut config } = setup("");
    config.actions_log = dir.path().join("missing-directory/actions.log");
    let (reply, _) = ask(
        &config,
        &cli_peer(),
        &request(Verb::Remove, &["1rAAAA-000001-AB"]),
    );
    assert!(
        !reply.ok && reply.error.contains("cannot be recorded"),
        "{reply:?}"
    );
    assert!(!dir.path().join("argv").exists(), "Exim ran");
}

#[test]
fn a_dry_run_is_recorded_and_runs_nothing() {
    let Setup { dir, config } = setup("");
    let mut dry = request(Verb::Remove, &["1rAAAA-000001-AB"]);
    dry.dry_run = true;
    let (reply, _) = ask(&config, &cli_peer(), &dry);
    assert!(reply.ok);
    assert_eq!(reply.outcomes, [Outcome::DryRun]);
    assert_eq!(reply.argv[1..], ["-Mrm", "1rAAAA-000001-AB"]);
    assert!(!dir.path().join("argv").exists(), "Exim ran");
    assert_eq!(records(&config.actions_log).len(), 2);
}

#[test]
fn the_web_view_names_its_user_and_anyone_else_is_named_by_uid() {
    let Setup { dir: _dir, config } = setup("Message 1rAAAA-000001-AB is not frozen\n");
    let web = Peer {
        uid: 104,
        pid: 5,
        user: "exim-pilot".to_owned(),
    };
    let mut from_web = request(Verb::Thaw, &["1rAAAA-000001-AB"]);
    from_web.actor = Actor {
        user: "alice".into(),
        role: "admin".into(),
        auth: "users".into(),
        client_ip: "192.0.2.7".into(),
    };
    assert_eq!(ask(&config, &web, &from_web).0.outcomes, [Outcome::Noop]);
    // The same claim from another user is ignored.
    let other = Peer {
        uid: 1000,
        pid: 6,
        user: "mallory".to_owned(),
    };
    ask(&config, &other, &from_web);
    let actors: Vec<(String, String, String)> = records(&config.actions_log)
        .into_iter()
        .filter_map(|record| match record {
            Record::Intent(intent) => Some((
                intent.caller.actor.user,
                intent.caller.origin,
                intent.caller.actor.client_ip,
            )),
            Record::Outcome(_) => None,
        })
        .collect();
    assert_eq!(
        actors,
        [
            ("alice".into(), "web".into(), "192.0.2.7".into()),
            ("mallory".into(), "cli".into(), String::new()),
        ]
    );
}

#[test]
fn ids_that_left_the_queue_are_absent_and_never_reach_exim() {
    let Setup { dir, config } = setup("Message 1rAAAA-000001-AB has been removed\n");
    std::fs::write(dir.path().join("gone"), "1rAAAA-000002-AB\n").unwrap();
    let ids = ["1rAAAA-000001-AB", "1rAAAA-000002-AB"];
    let mut dry = request(Verb::Remove, &ids);
    dry.dry_run = true;
    let (reply, _) = ask(&config, &cli_peer(), &dry);
    assert_eq!(reply.outcomes, [Outcome::DryRun, Outcome::Absent]);
    assert_eq!(reply.argv[1..], ["-Mrm", "1rAAAA-000001-AB"]);
    assert!(!dir.path().join("argv").exists(), "Exim ran");

    let (reply, _) = ask(&config, &cli_peer(), &request(Verb::Remove, &ids));
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.outcomes, [Outcome::Done, Outcome::Absent]);
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(argv.trim(), "-Mrm 1rAAAA-000001-AB");
    match records(&config.actions_log).as_slice() {
        [_, _, Record::Intent(intent), Record::Outcome(outcome)] => {
            assert_eq!(intent.ids, ids);
            assert_eq!(intent.argv[1..], ["-Mrm", "1rAAAA-000001-AB"]);
            assert_eq!(outcome.outcomes, ["done", "absent"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn when_every_id_left_the_queue_exim_is_not_run() {
    let Setup { dir, config } = setup("");
    std::fs::write(dir.path().join("gone"), "1rAAAA-000001-AB\n").unwrap();
    let (reply, _) = ask(
        &config,
        &cli_peer(),
        &request(Verb::Freeze, &["1rAAAA-000001-AB"]),
    );
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.outcomes, [Outcome::Absent]);
    assert!(reply.argv.is_empty(), "{reply:?}");
    assert!(!dir.path().join("argv").exists(), "Exim ran");
    match records(&config.actions_log).as_slice() {
        [Record::Intent(intent), Record::Outcome(outcome)] => {
            assert!(intent.argv.is_empty());
            assert_eq!(outcome.outcomes, ["absent"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_exim_that_cannot_list_refuses_the_action_and_records_nothing() {
    let Setup { dir, mut config } = setup("");
    for (exim, why) in [
        (dir.path().join("no-such-exim"), "No such file"),
        (PathBuf::from("/bin/false"), "exited with Some(1)"),
    ] {
        config.exim = exim;
        let (reply, _) = ask(
            &config,
            &cli_peer(),
            &request(Verb::Thaw, &["1rAAAA-000001-AB"]),
        );
        assert!(
            !reply.ok && reply.error.contains("cannot check") && reply.error.contains(why),
            "{reply:?}"
        );
    }
    assert!(records(&config.actions_log).is_empty());
}
