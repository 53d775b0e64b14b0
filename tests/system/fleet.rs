//! The fleet: daemons replicating to a real PostgreSQL (a throwaway
//! cluster), exactly once across PostgreSQL stopping, kill -9 in the middle
//! of a batch and a cut network; two real Exims relaying with `trace
//! --fleet` showing the whole journey and `stats --fleet` the sum of the
//! hosts; the grants that keep hosts to their own rows; partitions dropped
//! for retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Connection;
use exim_pilot::query::stats::LineCounts;
use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG, Postgres, Proxy, append_lines, outcome, run};

const WAIT: Duration = Duration::from_secs(120);

/// The test configuration with a `[fleet]` section.
fn write_config(dir: &Path, postgres: &str, host: &str, extra: &str) -> PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{FAST_CONFIG}\n[fleet]\npostgres = \"{postgres}\"\nhost_name = \"{host}\"\n\
             batch_lines = 300\ntimeout = \"2s\"\n{extra}\n"
        ),
    )
    .unwrap();
    config
}

/// A generated log's lines.
fn generated(seed: u64, lines: u64) -> Vec<String> {
    let mut content = Vec::new();
    exim_pilot::synth::Generator::new(seed)
        .write(lines, &mut content)
        .unwrap();
    String::from_utf8(content)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Lines stored in the host's SQLite.
/// (0 before the daemon made the database.)
fn local_lines(db: &Path) -> i64 {
    let Ok(conn) = Connection::open(db) else {
        return 0;
    };
    conn.query_row(
        "SELECT coalesce(sum(lines), 0) FROM log_chunks",
        [],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

fn pg_count(pg: &Postgres, table: &str, host: &str) -> i64 {
    pg.psql(&format!(
        "SELECT count(*) FROM exim_pilot.{table} WHERE host = '{host}'"
    ))
    .trim()
    .parse()
    .unwrap_or(-1)
}

/// The lines in a log file.
fn lines_in(log: &Path) -> i64 {
    let content = std::fs::read(log).unwrap_or_default();
    content.iter().filter(|&&b| b == b'\n').count() as i64
}

/// Polls `check` until it gives `Ok`, failing with its last `Err` after
/// [`WAIT`].
fn poll(mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until PostgreSQL holds as many of `host`'s lines as its SQLite,
/// and that is at least `at_least`.
fn wait_until_shipped(pg: &Postgres, host: &str, daemon: &Daemon, at_least: i64) {
    poll(|| {
        let local = local_lines(&daemon.db);
        let shipped = pg
            .psql_as(
                "postgres",
                &format!("SELECT count(*) FROM exim_pilot.lines WHERE host = '{host}'"),
            )
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(-1);
        if local >= at_least && shipped == local {
            return Ok(());
        }
        Err(format!(
            "{host}: {shipped} of {local} lines shipped (waiting for {at_least}); the daemon's log:\n{}",
            daemon.stderr_text()
        ))
    });
}

/// Sorted rows, as text, from SQLite.
fn sqlite_rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    let columns = statement.column_count();
    let mut rows: Vec<String> = statement
        .query_map([], |row| {
            let mut fields = Vec::new();
            for i in 0..columns {
                let value: deadpool_sqlite::rusqlite::types::Value = row.get(i)?;
                fields.push(match value {
                    deadpool_sqlite::rusqlite::types::Value::Null => String::new(),
                    deadpool_sqlite::rusqlite::types::Value::Integer(n) => n.to_string(),
                    deadpool_sqlite::rusqlite::types::Value::Text(t) => t,
                    deadpool_sqlite::rusqlite::types::Value::Blob(b) => hex(&b),
                    deadpool_sqlite::rusqlite::types::Value::Real(r) => r.to_string(),
                });
            }
            Ok(fields.join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    rows
}

/// Sorted rows, as text, from PostgreSQL.
fn pg_rows(pg: &Postgres, sql: &str) -> Vec<String> {
    let mut rows: Vec<String> = pg.psql(sql).lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every line of the host's SQLite, with its source's fingerprint and
/// offset, in PostgreSQL exactly once; and its messages, delivery
/// attempts and rejections likewise.
fn assert_replicated(pg: &Postgres, host: &str, db: &Path) {
    let conn = Connection::open(db).unwrap();
    let fingerprints: BTreeMap<i64, Vec<u8>> = conn
        .prepare("SELECT id, fingerprint FROM log_sources")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut local: Vec<String> = exim_pilot::store::repo::all_lines(&conn)
        .unwrap()
        .into_iter()
        .map(|(source, line)| {
            format!(
                "{}|{}|{}",
                hex(&fingerprints[&source]),
                line.offset,
                hex(&line.bytes)
            )
        })
        .collect();
    local.sort();
    let shipped = pg_rows(
        pg,
        &format!(
            "SELECT encode(source, 'hex') || '|' || line_offset || '|' || encode(raw, 'hex')
             FROM exim_pilot.lines WHERE host = '{host}'"
        ),
    );
    let missing: Vec<&String> = local
        .iter()
        .filter(|l| shipped.binary_search(l).is_err())
        .take(5)
        .collect();
    let extra: Vec<&String> = shipped
        .iter()
        .filter(|l| local.binary_search(l).is_err())
        .take(5)
        .collect();
    assert_eq!(
        shipped.len(),
        local.len(),
        "{host}: lines in PostgreSQL and SQLite; missing {missing:?} extra {extra:?}"
    );
    assert!(shipped == local, "{host}: the lines differ");
    // Receptions (one message row per `<=` line), delivery attempts and
    // rejections: (what, SQLite's rows, PostgreSQL's rows of the host).
    let ms = |column: &str| format!("(extract(epoch FROM {column}) * 1000)::bigint");
    let tables = [
        (
            "messages",
            // SQLite keeps a Message-ID header as its hash: whether there
            // is one is compared (the fleet's trace test follows one).
            "SELECT exim_id, received_ms, sender, size,
                    CASE WHEN header_id_hash IS NULL THEN '' ELSE 'id' END
             FROM messages WHERE received_ms IS NOT NULL"
                .to_owned(),
            format!(
                "SELECT concat_ws('|', exim_id, {}, sender, coalesce(size::text, ''),
                                  CASE WHEN header_message_id IS NULL THEN '' ELSE 'id' END)
                 FROM exim_pilot.messages WHERE host = '{host}'",
                ms("received_at")
            ),
        ),
        (
            // The fleet keeps an event per line, and a discard is a `=>`
            // line; the model keeps it as the recipient's status (the peer
            // discards each recipient by name, `:blackhole:`).
            "delivery attempts",
            "SELECT m.exim_id, a.attempted_ms, a.flag
             FROM delivery_attempts a JOIN messages m ON m.id = a.message_id
             UNION ALL
             SELECT m.exim_id, r.last_attempt_ms, '=>'
             FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.status = 'discarded'"
                .to_owned(),
            format!(
                "SELECT concat_ws('|', exim_id, {}, flag)
                 FROM exim_pilot.deliveries WHERE host = '{host}'",
                ms("delivered_at")
            ),
        ),
        (
            "rejections",
            "SELECT rejected_ms, stage, temporary, coalesce(host_ip, '') FROM rejections"
                .to_owned(),
            format!(
                "SELECT concat_ws('|', {}, stage, temporary::int, coalesce(peer_ip, ''))
                 FROM exim_pilot.rejections WHERE host = '{host}'",
                ms("rejected_at")
            ),
        ),
    ];
    for (what, local, fleet) in tables {
        assert_eq!(
            pg_rows(pg, &fleet),
            sqlite_rows(db, &local),
            "{host}: {what}"
        );
    }
}

#[test]
fn a_daemon_ships_every_line_once_and_the_fleet_answers_like_the_host() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    let lines = generated(3, 6000);
    let (first, rest) = lines.split_at(2500);
    append_lines(&dir.path().join("mainlog"), first);
    write_config(dir.path(), &pg.socket_url("postgres"), "mx1", "");
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx1", &daemon, first.len() as i64);
    append_lines(&dir.path().join("mainlog"), rest);
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&dir.path().join("mainlog")));
    // The status line and the log say it is caught up.
    assert!(daemon.stop().success());
    assert_replicated(&pg, "mx1", &dir.path().join("x.db"));

    // stats --fleet counts as stats does on the host.
    let config = dir.path().join("c.toml");
    let db = dir.path().join("x.db");
    let config_arg = config.to_str().unwrap();
    let local = cli_json(&[
        "stats",
        "--json",
        "--config",
        config_arg,
        "--db",
        db.to_str().unwrap(),
    ]);
    let fleet = cli_json(&["stats", "--fleet", "--json", "--config", config_arg]);
    let host = &fleet["hosts"]["mx1"];
    for key in LineCounts::NAMES.into_iter().chain(["kinds"]) {
        assert_eq!(host[key], local[key], "stats --fleet {key}");
    }
    assert_eq!(host["received_volume"], local["totals"]["received_volume"]);
    assert_eq!(
        host["delivered_messages"],
        local["totals"]["delivered_messages"]
    );
    assert_eq!(fleet["total"], *host);

    // The web view gives the CLI's answers from the fleet, as JSON and as
    // pages a browser renders.
    let server = crate::util::web::Server::start_with(&db, dir.path(), Some(&config));
    let id = pg.psql(
        "SELECT exim_id FROM exim_pilot.deliveries WHERE host = 'mx1' ORDER BY delivered_at LIMIT 1",
    );
    let id = id.trim();
    let cli = cli_json(&["trace", "--fleet", "--json", "--config", config_arg, id]);
    assert_eq!(server.json(&format!("/api/v1/fleet/trace?q={id}")), cli);
    assert_eq!(server.json("/api/v1/fleet/stats"), fleet);
    assert_eq!(server.json("/api/v1/fleet/stats?host=mx1")["total"], *host);
    let page = server.page(&format!("/fleet?q={id}"), 200);
    assert!(page.contains("Journey 1") && page.contains(id), "{page}");
    assert!(server.page("/fleet", 200).contains("delivered messages"));
    assert!(
        server
            .page("/fleet?q=nobody%40nowhere.example", 404)
            .contains("no message in the fleet")
    );
    assert!(
        server
            .page("/api/v1/fleet/stats?since=tomorrow-ish", 400)
            .contains("since")
    );
    match crate::util::system_program("chromium") {
        Some(chromium) => {
            let url = format!("http://127.0.0.1:{}/fleet?q={id}", server.port);
            let dom = crate::util::web::headless(&chromium, &url, &["--dump-dom"]);
            assert!(dom.contains("Journey 1") && dom.contains(">mx1<"), "{dom}");
        }
        None => crate::util::stand_down("chromium is not installed: the fleet page in a browser"),
    }
    drop(server);
    // Without [fleet], the page says how to get one.
    let server = crate::util::web::Server::start_with(&db, dir.path(), None);
    assert!(server.page("/fleet", 404).contains("set [fleet] postgres"));
    drop(server);

    // A restart ships nothing again.
    let before = pg_count(&pg, "lines", "mx1");
    let daemon = Daemon::start(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.stop().success());
    assert_eq!(pg_count(&pg, "lines", "mx1"), before);
    let status =
        pg.psql("SELECT high_water > 0, lines FROM exim_pilot.replication WHERE host = 'mx1'");
    assert_eq!(status.trim(), format!("t|{before}"));

    // Stopped right after new lines arrive: what the writer commits while
    // stopping ships before the daemon exits.
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log("fleet replication connected");
    append_lines(&dir.path().join("mainlog"), &generated(4, 2000));
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.stop().success());
    assert!(pg_count(&pg, "lines", "mx1") > before);
    assert_replicated(&pg, "mx1", &db);
}

#[test]
fn postgres_stopped_for_a_minute_while_mail_flows_loses_and_repeats_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    let lines = generated(5, 9000);
    let log = dir.path().join("mainlog");
    write_config(dir.path(), &pg.socket_url("postgres"), "mx1", "");
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:{}\"\n",
            std::fs::read_to_string(dir.path().join("c.toml")).unwrap(),
            crate::util::free_port()
        ),
    )
    .unwrap();
    let metrics_port: u16 = std::fs::read_to_string(dir.path().join("c.toml"))
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    let chunks: Vec<&[String]> = lines.chunks(150).collect();
    append_lines(&log, chunks[0]);
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx1", &daemon, chunks[0].len() as i64);
    pg.stop_server();
    let stopped = Instant::now();
    let mut written = chunks[0].len();
    let mut next = 1;
    // Mail flows for 60 s with PostgreSQL down: the host keeps storing.
    while stopped.elapsed() < Duration::from_secs(60) && next < chunks.len() {
        append_lines(&log, chunks[next]);
        written += chunks[next].len();
        next += 1;
        std::thread::sleep(Duration::from_millis(1000));
    }
    crate::util::wait_for_lines(&daemon.db, written, WAIT, Some(&daemon));
    let (_, exposition) = crate::util::http_get(metrics_port, "/metrics").unwrap();
    let samples = crate::util::parse_exposition(&exposition);
    assert_eq!(samples["exim_pilot_fleet_up"], 0.0, "{exposition}");
    assert!(
        samples["exim_pilot_fleet_unshipped_lines"] > 0.0,
        "{exposition}"
    );
    assert!(
        samples["exim_pilot_fleet_lag_seconds"] > 30.0,
        "{exposition}"
    );
    pg.start_server();
    for chunk in &chunks[next..] {
        append_lines(&log, chunk);
    }
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&log));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, exposition) = crate::util::http_get(metrics_port, "/metrics").unwrap();
        let samples = crate::util::parse_exposition(&exposition);
        if samples["exim_pilot_fleet_up"] == 1.0
            && samples["exim_pilot_fleet_unshipped_lines"] == 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "{exposition}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(daemon.stop().success());
    assert_replicated(&pg, "mx1", &dir.path().join("x.db"));
}

#[test]
fn kill_9_in_the_middle_of_a_replication_batch_twenty_times() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    let lines = generated(7, 12_000);
    let log = dir.path().join("mainlog");
    write_config(dir.path(), &pg.socket_url("postgres"), "mx1", "");
    let per_round = lines.len() / 20;
    for round in 0..20 {
        append_lines(&log, &lines[round * per_round..(round + 1) * per_round]);
        if round % 2 == 0 {
            // Between the first batch's inserts and its COMMIT.
            let point = "fleet-before-commit:1";
            let mut daemon = Daemon::start_with(dir.path(), &[("EXIM_PILOT_FAILPOINT", point)]);
            let status = daemon.wait(WAIT);
            assert!(
                !status.success(),
                "round {round}: the failpoint was not reached"
            );
            assert!(
                daemon
                    .stderr_text()
                    .contains("failpoint fleet-before-commit"),
                "{}",
                daemon.stderr_text()
            );
        } else {
            // At a moment of the test's choosing, by SIGKILL.
            let daemon = Daemon::start(dir.path());
            std::thread::sleep(Duration::from_millis(300 + 97 * round as u64));
            daemon.kill();
        }
    }
    append_lines(&log, &lines[20 * per_round..]);
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&log));
    assert!(daemon.stop().success());
    assert_replicated(&pg, "mx1", &dir.path().join("x.db"));
}

#[test]
fn a_cut_network_to_postgres_loses_and_repeats_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let proxy = Proxy::start(pg.port);
    let dir = TempDir::new().unwrap();
    let lines = generated(9, 8000);
    let log = dir.path().join("mainlog");
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        proxy.port
    );
    write_config(dir.path(), &url, "mx1", "");
    let chunks: Vec<&[String]> = lines.chunks(400).collect();
    let daemon = Daemon::start(dir.path());
    for (n, chunk) in chunks.iter().enumerate() {
        append_lines(&log, chunk);
        if n % 5 == 2 {
            // Bytes stop mid-batch; the client finds out by its timeout.
            std::thread::sleep(Duration::from_millis(150));
            proxy.cut();
            std::thread::sleep(Duration::from_secs(4));
            proxy.restore();
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&log));
    // The cuts were noticed (by the client's own timeout: a dead link
    // never says so), not slept through.
    let log = daemon.stderr_text();
    assert!(log.contains("fleet replication paused"), "{log}");
    assert!(daemon.stop().success());
    assert_replicated(&pg, "mx1", &dir.path().join("x.db"));
}

/// Waits until `log` holds `count` lines containing `needle`.
fn wait_for_in(log: &Path, needle: &str, count: usize) {
    poll(|| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return Ok(());
        }
        Err(format!(
            "{count} x {needle:?} not in {}:\n{text}",
            log.display()
        ))
    });
}

/// A command's JSON output, asserting it succeeded.
fn cli_json(args: &[&str]) -> serde_json::Value {
    let (status, out, err) = outcome(&run(args));
    assert_eq!(status, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn two_real_exims_relaying_make_one_journey_per_message_across_hosts() {
    let Some(pg) = Postgres::start() else { return };
    let Some(exim) = crate::exim::Exim::start(true) else {
        return;
    };
    let url = pg.socket_url("postgres");
    let mut pilots = Vec::new();
    for host in ["mx", "peer"] {
        let dir = TempDir::new().unwrap();
        let config = write_config(dir.path(), &url, host, "");
        let log = exim.dir.path().join(host).join("log/mainlog");
        let daemon = Daemon::start_at(dir.path(), &log, &dir.path().join("x.db"), &config, &[]);
        pilots.push((host, dir, log, daemon));
    }
    // The peer accepts these three (and discards what it takes).
    let accepted = ["dave", "erin", "frank", "dave", "erin"];
    for (n, user) in accepted.iter().enumerate() {
        exim.send(
            &format!("sender{n}@client.example"),
            &[&format!("{user}@remote.example")],
            &format!("relayed {n}"),
            false,
            false,
        );
    }
    exim.send(
        "local@client.example",
        &["postmaster@test.example"],
        "local",
        false,
        false,
    );
    exim.send(
        "spam@client.example",
        &["x@elsewhere.example"],
        "refused",
        false,
        false,
    );
    // Five relayed messages delivered by the peer, each hop confirmed.
    wait_for_in(&pilots[0].2, "250 OK id=", 5);
    wait_for_in(&pilots[1].2, " => ", 5);
    // Exim goes on logging queue runs: the pilots stop (shipping what
    // they committed last), so that both sides hold still for comparing.
    let pilots: Vec<(&str, TempDir)> = pilots
        .into_iter()
        .map(|(host, dir, log, daemon)| {
            wait_for_in(&log, "Completed", 5);
            wait_until_shipped(&pg, host, &daemon, lines_in(&log));
            assert!(daemon.stop().success());
            assert_replicated(&pg, host, &dir.path().join("x.db"));
            (host, dir)
        })
        .collect();
    let config = pilots[0].1.path().join("c.toml");
    let config = config.to_str().unwrap();

    // Each relayed message, traced from the mx's id: the mx's delivery to
    // the peer, the peer's reception with the same Message-ID, the peer's
    // delivery, each line labelled with its host.
    let relayed = pg.psql(
        "SELECT exim_id || ' ' || remote_id FROM exim_pilot.deliveries
         WHERE host = 'mx' AND remote_id IS NOT NULL ORDER BY delivered_at",
    );
    let relayed: Vec<(String, String)> = relayed
        .lines()
        .map(|line| {
            let (a, b) = line.split_once(' ').unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect();
    assert_eq!(relayed.len(), 5, "{relayed:?}");
    for (mx_id, peer_id) in &relayed {
        let (status, out, err) = outcome(&run(&[
            "trace", "--fleet", "--json", "--config", config, mx_id,
        ]));
        assert_eq!(status, 0, "{err}");
        let journeys: serde_json::Value = serde_json::from_str(&out).unwrap();
        let journeys = journeys.as_array().unwrap();
        assert_eq!(journeys.len(), 1, "{out}");
        let journey = &journeys[0];
        assert_eq!(journey["hosts"], serde_json::json!(["mx", "peer"]), "{out}");
        assert!(
            journey["hops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|hop| hop["by"] == "confirmation"
                    && hop["from"]["exim_id"] == mx_id.as_str()
                    && hop["to"]["exim_id"] == peer_id.as_str()
                    && hop["to"]["host"] == "peer"),
            "{out}"
        );
        let header_ids = journey["header_message_ids"].as_array().unwrap();
        assert_eq!(
            header_ids.len(),
            1,
            "one Message-ID across both hosts: {out}"
        );
        let lines = journey["lines"].as_array().unwrap();
        let line = |host: &str, id: &str, needle: &str| {
            lines.iter().any(|line| {
                line["host"] == host
                    && line["exim_id"] == id
                    && line["text"].as_str().unwrap().contains(needle)
            })
        };
        assert!(line("mx", mx_id, "<= "), "the mx's reception: {out}");
        assert!(
            line("mx", mx_id, "=> "),
            "the mx's delivery to the peer: {out}"
        );
        let header = header_ids[0].as_str().unwrap();
        assert!(
            line("peer", peer_id, &format!("id={header}")),
            "the peer's reception: {out}"
        );
        assert!(line("peer", peer_id, "=> "), "the peer's delivery: {out}");
        let times: Vec<&str> = lines
            .iter()
            .map(|l| l["logged_at"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "in time order: {out}"
        );
        // The same journey from the peer's id and from the Message-ID.
        for other in [peer_id.as_str(), header] {
            let (status, again, err) = outcome(&run(&[
                "trace", "--fleet", "--json", "--config", config, other,
            ]));
            assert_eq!(status, 0, "{err}");
            let again: serde_json::Value = serde_json::from_str(&again).unwrap();
            assert_eq!(again[0]["messages"], journey["messages"], "{other}");
        }
        // As text, every line names its host.
        let (_, text, _) = outcome(&run(&["trace", "--fleet", "--config", config, mx_id]));
        assert!(
            text.contains(&format!("hop: mx {mx_id} -> peer {peer_id} (confirmation)")),
            "{text}"
        );
        let body: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.contains("hop:"))
            .collect();
        assert!(body.len() >= 4, "{text}");
        assert!(
            body.iter()
                .all(|l| l.starts_with("  mx  ") || l.starts_with("  peer  ")),
            "{text}"
        );
    }

    // stats --fleet is the sum of the hosts' own stats.
    let fleet = cli_json(&["stats", "--fleet", "--json", "--config", config]);
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for (host, dir) in &pilots {
        let db = dir.path().join("x.db");
        let local = cli_json(&[
            "stats",
            "--json",
            "--config",
            config,
            "--db",
            db.to_str().unwrap(),
        ]);
        let per_host = cli_json(&[
            "stats", "--fleet", "--host", host, "--json", "--config", config,
        ]);
        assert_eq!(per_host["total"], fleet["hosts"][*host], "{host}");
        for key in LineCounts::NAMES {
            assert_eq!(fleet["hosts"][*host][key], local[key], "{host} {key}");
            *sums.entry(key).or_default() += local[key].as_u64().unwrap();
        }
    }
    for (key, sum) in sums {
        assert_eq!(fleet["total"][key].as_u64().unwrap(), sum, "total {key}");
    }
    assert!(fleet["total"]["rejected"].as_u64().unwrap() >= 1);
}

#[test]
fn a_host_role_writes_only_its_own_rows_and_never_changes_them() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("pw"), "mx1-secret\n").unwrap();
    pg.psql("CREATE ROLE pilot_mx1 LOGIN PASSWORD 'mx1-secret'");
    // The owner migrates, the administrator maps the role to its host.
    let owner = write_config(dir.path(), &pg.socket_url("postgres"), "mx1", "");
    let (status, out, err) = outcome(&run(&[
        "fleet",
        "migrate",
        "--config",
        owner.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("0001_fleet"), "{out}");
    pg.psql(
        "GRANT exim_pilot_host TO pilot_mx1;
         INSERT INTO exim_pilot.host_roles (host, role) VALUES ('mx1', 'pilot_mx1');",
    );
    // The host replicates under its own role.
    let url = format!(
        "host={} port={} user=pilot_mx1 dbname=postgres",
        pg.dir.path().display(),
        pg.port
    );
    write_config(
        dir.path(),
        &url,
        "mx1",
        &format!("password_file = \"{}\"", dir.path().join("pw").display()),
    );
    append_lines(&dir.path().join("mainlog"), &generated(13, 800));
    // With its password from the file: a wrong one is refused first.
    pg.require_password(Some("pilot_mx1"));
    std::fs::write(dir.path().join("pw"), "not-the-password\n").unwrap();
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log("password authentication failed for user \"pilot_mx1\"");
    assert!(daemon.stop().success());
    std::fs::write(dir.path().join("pw"), "mx1-secret\n").unwrap();
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&dir.path().join("mainlog")));
    assert!(daemon.stop().success());
    assert_replicated(&pg, "mx1", &dir.path().join("x.db"));
    pg.require_password(None);
    // What the role may not do.
    for sql in [
        // Into a month whose partition exists, so only the policy refuses.
        "INSERT INTO exim_pilot.lines (host, source, line_offset, logged_at, kind, length)
         SELECT 'mx2', '\\x00', 0, min(logged_at), 'blank', 0 FROM exim_pilot.lines",
        "UPDATE exim_pilot.lines SET raw = NULL WHERE host = 'mx1'",
        "DELETE FROM exim_pilot.messages WHERE host = 'mx1'",
        "INSERT INTO exim_pilot.replication (host, database_name, high_water) VALUES ('mx2', 'x', 0)",
        "CREATE TABLE exim_pilot.mine (x int)",
        "DROP TABLE exim_pilot.lines",
    ] {
        let err = pg.psql_as("pilot_mx1", sql).expect_err(sql);
        assert!(
            err.contains("permission denied")
                || err.contains("row-level security")
                || err.contains("must be owner"),
            "{sql}: {err}"
        );
    }
    // Another host's mark is out of its sight for writing: the update
    // finds no row.
    pg.psql("INSERT INTO exim_pilot.replication (host, database_name, high_water) VALUES ('mx2', 'd', 7)");
    pg.psql_as(
        "pilot_mx1",
        "UPDATE exim_pilot.replication SET high_water = 0 WHERE host = 'mx2'",
    )
    .unwrap();
    assert_eq!(
        pg.psql("SELECT high_water FROM exim_pilot.replication WHERE host = 'mx2'")
            .trim(),
        "7"
    );
    pg.psql("DELETE FROM exim_pilot.replication WHERE host = 'mx2'");
    // Reading is allowed, of every host.
    assert!(
        pg.psql_as("pilot_mx1", "SELECT count(*) FROM exim_pilot.lines")
            .is_ok()
    );
    // A host configured with another host's name is refused, not mixed in.
    let impostor = TempDir::new().unwrap();
    std::fs::write(impostor.path().join("pw"), "mx1-secret\n").unwrap();
    write_config(
        impostor.path(),
        &url,
        "mx2",
        &format!(
            "password_file = \"{}\"",
            impostor.path().join("pw").display()
        ),
    );
    append_lines(&impostor.path().join("mainlog"), &generated(14, 100));
    let daemon = Daemon::start(impostor.path());
    let deadline = Instant::now() + WAIT;
    while !daemon.stderr_text().contains("row-level security") {
        assert!(Instant::now() < deadline, "{}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(daemon.stop().success());
    assert_eq!(pg_count(&pg, "lines", "mx2"), 0);
}

#[test]
fn retention_keeps_unshipped_chunks_and_the_fleet_drops_whole_months() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    let config = write_config(
        dir.path(),
        &pg.socket_url("postgres"),
        "mx1",
        "[retention]\nlog_lines_days = 1\n",
    );
    let config = config.to_str().unwrap();
    // A log of two days nine days apart: retention would remove the first.
    let log = dir.path().join("old.log");
    let day = |date: &str, tag: &str| -> Vec<String> {
        (0..3000)
            .map(|seq| {
                format!(
                    "{date} 00:{:02}:{:02} [{seq}] Start queue run: pid={tag}-{seq}",
                    seq / 60 % 60,
                    seq % 60
                )
            })
            .collect()
    };
    append_lines(&log, &day("2024-01-01", "old"));
    append_lines(&log, &day("2024-01-10", "new"));
    let db = dir.path().join("x.db");
    let (status, _, err) = outcome(&run(&[
        "ingest",
        "--config",
        config,
        "--db",
        db.to_str().unwrap(),
        log.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{err}");
    let stored = local_lines(&db);
    // Nothing shipped yet: prune keeps every chunk.
    let (status, _, err) = outcome(&run(&[
        "prune",
        "--config",
        config,
        "--db",
        db.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{err}");
    assert_eq!(local_lines(&db), stored, "unshipped lines were pruned");
    // Shipped up to a chunk: only chunks up to it may go.
    let conn = Connection::open(&db).unwrap();
    let (middle, newest): (i64, i64) = conn
        .query_row("SELECT max(id) / 2, max(id) FROM log_chunks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    exim_pilot::store::repo::save_shipped(&conn, middle).unwrap();
    let (status, _, err) = outcome(&run(&[
        "prune",
        "--config",
        config,
        "--db",
        db.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{err}");
    let (oldest_kept, kept_newest): (i64, i64) = conn
        .query_row("SELECT min(id), max(id) FROM log_chunks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(local_lines(&db) < stored, "nothing shipped was pruned");
    assert!(
        oldest_kept > 1 && oldest_kept <= middle + 1,
        "{oldest_kept} {middle}"
    );
    assert_eq!(kept_newest, newest);
    // The fleet: partitions by month, dropped whole.
    let daemon = Daemon::start_at(
        dir.path(),
        &dir.path().join("mainlog"),
        &db,
        Path::new(config),
        &[],
    );
    wait_until_shipped(&pg, "mx1", &daemon, 1);
    assert!(daemon.stop().success());
    let partitions = pg.psql(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE c.relname LIKE 'lines_p%'",
    );
    assert!(
        partitions.trim().parse::<i64>().unwrap() >= 1,
        "{partitions}"
    );
    let (status, out, err) = outcome(&run(&[
        "fleet",
        "prune",
        "--keep-months",
        "1",
        "--config",
        config,
    ]));
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("dropped"), "{out}");
    assert_eq!(pg_count(&pg, "lines", "mx1"), 0, "{out}");
    let (status, out, err) = outcome(&run(&["fleet", "status", "--config", config]));
    assert_eq!(status, 0, "{err}");
    assert!(out.starts_with("mx1: "), "{out}");
}

#[test]
fn two_databases_replicating_as_one_host_name_are_caught() {
    let Some(pg) = Postgres::start() else { return };
    let (first, second) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    for dir in [&first, &second] {
        write_config(dir.path(), &pg.socket_url("postgres"), "twin", "");
    }
    append_lines(&first.path().join("mainlog"), &generated(31, 300));
    let one = Daemon::start(first.path());
    wait_until_shipped(&pg, "twin", &one, lines_in(&first.path().join("mainlog")));
    // A second machine configured with the same name takes the host over
    // (as a rebuilt database would), saying so...
    append_lines(&second.path().join("mainlog"), &generated(32, 300));
    let two = Daemon::start(second.path());
    two.wait_for_log("came from another database");
    // ...and the first finds its mark moved at its next batch, and stops
    // replicating rather than mixing two machines' rows.
    append_lines(&first.path().join("mainlog"), &generated(33, 300));
    one.wait_for_log("two machines replicate with [fleet] host_name = \"twin\"");
    one.wait_for_log("fleet replication stopped until exim-pilot restarts");
    assert!(one.stop().success());
    assert!(two.stop().success());
}

/// A database that held the mark and lost its connection (a timeout, a
/// restarted PostgreSQL) does not take the host back from the twin that
/// took it meanwhile: it was not rebuilt, and taking back would mix two
/// machines' rows (CI saw the first take the mark back after a timeout).
#[test]
fn a_twin_that_reconnects_does_not_take_the_host_back() {
    let Some(pg) = Postgres::start() else { return };
    let (first, second) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    for dir in [&first, &second] {
        write_config(dir.path(), &pg.socket_url("postgres"), "twin", "");
    }
    append_lines(&first.path().join("mainlog"), &generated(34, 300));
    let one = Daemon::start(first.path());
    wait_until_shipped(&pg, "twin", &one, lines_in(&first.path().join("mainlog")));
    append_lines(&second.path().join("mainlog"), &generated(35, 300));
    let two = Daemon::start(second.path());
    two.wait_for_log("came from another database");
    let held_by =
        || pg.psql("SELECT database_name FROM exim_pilot.replication WHERE host = 'twin'");
    let taken = held_by();
    // Every replicator's connection dropped: both reconnect and claim again.
    pg.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    append_lines(&first.path().join("mainlog"), &generated(36, 300));
    append_lines(&second.path().join("mainlog"), &generated(37, 300));
    one.wait_for_log("took the fleet mark while this one was disconnected");
    one.wait_for_log("fleet replication stopped until exim-pilot restarts");
    // The second keeps the host and ships on, to its newest chunk.
    let all = lines_in(&second.path().join("mainlog"));
    poll(|| {
        let newest: i64 = Connection::open(&two.db)
            .and_then(|conn| {
                conn.query_row("SELECT coalesce(max(id), 0) FROM log_chunks", [], |row| {
                    row.get(0)
                })
            })
            .unwrap_or(0);
        let mark = pg.psql("SELECT high_water FROM exim_pilot.replication WHERE host = 'twin'");
        if local_lines(&two.db) == all && mark.trim() == newest.to_string() {
            return Ok(());
        }
        Err(format!("mark {mark:?}, newest chunk {newest}"))
    });
    assert_eq!(held_by(), taken);
    assert!(one.stop().success());
    assert!(two.stop().success());
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn tls_verify_full_checks_the_servers_certificate_against_the_ca_file() {
    let Some(pg) = Postgres::start() else { return };
    if crate::util::system_program("openssl").is_none() {
        crate::util::stand_down("openssl is not installed: the TLS test");
        return;
    }
    // A CA, a server certificate for localhost signed by it, and a CA that
    // signed nothing.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    for args in [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=fleet test CA",
            "-days",
            "2",
        ][..],
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-subj",
            "/CN=another CA",
            "-days",
            "2",
        ][..],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ][..],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ][..],
    ] {
        openssl(d, args);
    }
    let data = pg.dir.path().join("data");
    for file in ["server.crt", "server.key"] {
        std::fs::copy(d.join(file), data.join(file)).unwrap();
        let owner = std::fs::metadata(data.join("PG_VERSION")).unwrap();
        std::os::unix::fs::chown(
            data.join(file),
            Some(std::os::unix::fs::MetadataExt::uid(&owner)),
            None,
        )
        .unwrap();
    }
    std::fs::set_permissions(
        data.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    pg.psql("ALTER SYSTEM SET ssl = on");
    pg.psql("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    let url = format!(
        "host=localhost port={} user=postgres dbname=postgres",
        pg.port
    );
    let log = d.join("mainlog");
    append_lines(&log, &generated(41, 500));
    // Signed by another CA: refused, nothing shipped.
    write_config(
        d,
        &url,
        "tls1",
        &format!(
            "tls = \"verify-full\"\nca_file = \"{}\"",
            d.join("other.pem").display()
        ),
    );
    let daemon = Daemon::start(d);
    daemon.wait_for_log("fleet replication paused");
    let log_text = daemon.stderr_text();
    assert!(
        log_text.to_lowercase().contains("certificate"),
        "{log_text}"
    );
    assert!(daemon.stop().success());
    // Nothing reached PostgreSQL: not even the schema was made.
    assert_eq!(
        pg.psql("SELECT to_regclass('exim_pilot.lines') IS NULL")
            .trim(),
        "t"
    );
    // Signed by the CA given: shipped, over TLS.
    write_config(
        d,
        &url,
        "tls1",
        &format!(
            "tls = \"verify-full\"\nca_file = \"{}\"",
            d.join("ca.pem").display()
        ),
    );
    let daemon = Daemon::start(d);
    wait_until_shipped(&pg, "tls1", &daemon, lines_in(&log));
    let encrypted = pg.psql(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
         WHERE a.application_name = 'exim-pilot'",
    );
    assert_eq!(encrypted.trim(), "t");
    assert!(daemon.stop().success());
}

#[test]
fn unusable_fleet_settings_stop_the_daemon_at_start_naming_the_key() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no-such-password");
    for (extra, key) in [
        (
            format!("password_file = \"{}\"", missing.display()),
            "[fleet] password_file",
        ),
        (
            format!("tls = \"verify-full\"\nca_file = \"{}\"", missing.display()),
            "[fleet] ca_file",
        ),
    ] {
        write_config(
            dir.path(),
            "host=127.0.0.1 port=1 user=pilot dbname=fleet",
            "mx1",
            &extra,
        );
        // check-config reads the files as run does: it refuses them too.
        let (status, _, err) = outcome(&run(&[
            "check-config",
            "--config",
            dir.path().join("c.toml").to_str().unwrap(),
        ]));
        assert_eq!(status, 78, "check-config passed what run refuses: {err}");
        assert!(err.contains(key), "{err}");
        let mut daemon = Daemon::start(dir.path());
        let status = daemon.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(78), "{}", daemon.stderr_text());
        assert!(
            daemon.stderr_text().contains(key),
            "{}",
            daemon.stderr_text()
        );
    }
    // A password in the URL is refused by check-config, naming the key.
    let config = write_config(
        dir.path(),
        "postgresql://pilot:secret@db.example/fleet",
        "mx1",
        "",
    );
    let (status, _, err) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(status, 78, "{err}");
    assert!(
        err.contains("[fleet] postgres") && err.contains("password_file"),
        "{err}"
    );
}

#[test]
fn a_reload_that_changes_fleet_is_refused_and_the_old_one_keeps_shipping() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    write_config(dir.path(), &pg.socket_url("postgres"), "mx1", "");
    let log = dir.path().join("mainlog");
    append_lines(&log, &generated(51, 300));
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&log));
    write_config(dir.path(), &pg.socket_url("postgres"), "renamed", "");
    daemon.signal("HUP");
    daemon.wait_for_log("[fleet]: cannot change while running");
    // Still replicating, as mx1.
    append_lines(&log, &generated(52, 300));
    wait_until_shipped(&pg, "mx1", &daemon, lines_in(&log));
    assert!(daemon.stop().success());
    assert_eq!(
        pg.psql("SELECT count(*) FROM exim_pilot.replication")
            .trim(),
        "1"
    );
}

/// A host whose database was rebuilt ships its lines again from chunk 0;
/// PostgreSQL keeps one row per line, and the mark counts each line once
/// (`fleet status` said 102,832 for 91,416 held, counting the re-ship).
#[test]
fn a_rebuilt_database_ships_again_and_the_mark_counts_each_line_once() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    write_config(dir.path(), &pg.socket_url("postgres"), "mx9", "");
    append_lines(&dir.path().join("mainlog"), &generated(41, 900));
    let daemon = Daemon::start(dir.path());
    let all = lines_in(&dir.path().join("mainlog"));
    wait_until_shipped(&pg, "mx9", &daemon, all);
    assert!(daemon.stop().success());
    for file in ["x.db", "x.db-wal", "x.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log("came from another database");
    let conn = || Connection::open(dir.path().join("x.db")).unwrap();
    poll(|| {
        let newest: i64 = conn()
            .query_row("SELECT coalesce(max(id), 0) FROM log_chunks", [], |row| {
                row.get(0)
            })
            .unwrap_or(0);
        let mark = pg.psql("SELECT high_water FROM exim_pilot.replication WHERE host = 'mx9'");
        if newest > 0 && local_lines(&daemon.db) == all && mark.trim() == newest.to_string() {
            return Ok(());
        }
        Err(format!("mark {mark:?}, newest chunk {newest}"))
    });
    assert!(daemon.stop().success());
    assert_eq!(pg_count(&pg, "lines", "mx9"), all, "one row per line");
    let counted = pg.psql("SELECT lines FROM exim_pilot.replication WHERE host = 'mx9'");
    assert_eq!(counted.trim(), all.to_string(), "the mark's count");
}

/// Partitions only for months around now: nobody makes them for the year
/// 9999, and a line dated far off (a reset clock) ships into the default
/// partition instead of stopping replication.
#[test]
fn partitions_are_made_only_around_now_and_far_dated_lines_still_ship() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new().unwrap();
    write_config(dir.path(), &pg.socket_url("postgres"), "mx8", "");
    let mut lines = generated(51, 300);
    lines.insert(
        100,
        "1975-01-01 00:00:00 a line from a reset clock".to_owned(),
    );
    lines.push("2099-06-01 00:00:00 a line from a clock far ahead".to_owned());
    append_lines(&dir.path().join("mainlog"), &lines);
    let daemon = Daemon::start(dir.path());
    wait_until_shipped(&pg, "mx8", &daemon, lines.len() as i64);
    assert!(daemon.stop().success());
    let other = pg.psql("SELECT count(*) FROM exim_pilot.lines_other WHERE host = 'mx8'");
    assert_eq!(
        other.trim(),
        "2",
        "the far-dated lines are in the default partition"
    );
    let refused = pg.psql_as("postgres", "SELECT exim_pilot.ensure_month(9999, 12)");
    assert!(
        refused
            .as_ref()
            .is_err_and(|err| err.contains("outside the window")),
        "{refused:?}"
    );
    let made: i64 = pg
        .psql("SELECT count(*) FROM pg_class WHERE relname LIKE 'lines_p2099%' OR relname LIKE 'lines_p1975%'")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(made, 0);
}
