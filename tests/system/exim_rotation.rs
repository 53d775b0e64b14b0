//! Rotation by Exim's own tools while a real Exim logs: exicyclog, and
//! logrotate with Debian's exim4-base stanza, while running and while
//! stopped: every line of every generation stored once.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG, system_program, wait_for_lines};

use crate::exim::{Exim, WAIT};

/// Every line of the mx log and its rotated generations (exicyclog's
/// `mainlog.NN[.gz]`), oldest first.
fn all_generations(exim: &Exim) -> Vec<Vec<u8>> {
    let log_dir = exim.dir.path().join("mx/log");
    let mut generations: Vec<(u32, PathBuf)> = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name
                .strip_prefix("mainlog.")?
                .trim_end_matches(".gz")
                .parse()
                .ok()?;
            Some((number, entry.path()))
        })
        .collect();
    generations.sort_by_key(|generation| std::cmp::Reverse(generation.0));
    let mut lines = Vec::new();
    for path in generations
        .into_iter()
        .map(|(_, path)| path)
        .chain(std::iter::once(exim.mainlog()))
    {
        let raw = std::fs::read(&path).unwrap();
        let content = if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)
                .unwrap();
            out
        } else {
            raw
        };
        lines.extend(
            content
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    lines
}

/// How a rotation tool is run on the mx log.
enum Rotator {
    /// `exicyclog -l <dir>/%slog -k 10`: `mainlog.01`, `mainlog.02.gz` ...
    Exicyclog(String),
    /// logrotate with Debian's exim4-base stanza: `mainlog.1`, `mainlog.2.gz` ...
    Logrotate(String, PathBuf, PathBuf),
}

impl Rotator {
    fn rotate(&self, exim: &Exim) {
        let output = match self {
            Rotator::Exicyclog(program) => Command::new(program)
                .arg("-l")
                .arg(exim.dir.path().join("mx/log/%slog"))
                .args(["-k", "10"])
                .output()
                .unwrap(),
            Rotator::Logrotate(program, config, state) => Command::new(program)
                .arg("-f")
                .arg("-s")
                .arg(state)
                .arg(config)
                .output()
                .unwrap(),
        };
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Mail flows; the log is rotated once while the daemon runs, then twice
/// while it is stopped (so its last position ends up in a compressed
/// generation); after a restart every line of every generation is
/// stored exactly once, in order.
fn rotation_by_exims_tools(make_rotator: impl Fn(&Exim) -> Option<Rotator>) {
    let Some(exim) = Exim::start(false) else {
        return;
    };
    let Some(rotator) = make_rotator(&exim) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("c.toml"), FAST_CONFIG).unwrap();
    let db = dir.path().join("x.db");
    let config = dir.path().join("c.toml");
    let daemon = Daemon::start_at(dir.path(), &exim.mainlog(), &db, &config, &[]);
    let send = |who: &str| {
        exim.send(
            &format!("{who}@outside.example"),
            &["alice@test.example"],
            who,
            false,
            false,
        );
        wait_for_log_anywhere(&exim, &format!("{who}@outside.example"));
    };

    send("before");
    rotator.rotate(&exim);
    send("after-running-rotation");
    wait_for_lines(&db, all_generations(&exim).len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());

    send("stopped-one");
    rotator.rotate(&exim);
    send("stopped-two");
    rotator.rotate(&exim);
    send("stopped-three");
    let compressed = std::fs::read_dir(exim.dir.path().join("mx/log"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".gz"));
    assert!(
        compressed,
        "a generation the daemon had not finished was compressed"
    );
    let daemon = Daemon::start_at(dir.path(), &exim.mainlog(), &db, &config, &[]);
    send("restarted");
    exim.stop();
    let expected = all_generations(&exim);
    let stored = wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());
    assert!(crate::util::audit_actions(&db).contains(&"rotated".to_owned()));
    assert_eq!(stored.len(), expected.len());
    for (index, (stored, expected)) in stored.iter().zip(&expected).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(stored),
            String::from_utf8_lossy(expected),
            "line {index}"
        );
    }
}

#[test]
fn exicyclog_rotation_while_running_and_while_stopped() {
    rotation_by_exims_tools(|_| {
        Some(Rotator::Exicyclog(
            system_program("exicyclog").expect("exicyclog comes with Exim"),
        ))
    });
}

#[test]
fn logrotate_with_debians_exim_configuration_while_running_and_while_stopped() {
    rotation_by_exims_tools(|exim| {
        let Some(program) = system_program("logrotate") else {
            crate::util::stand_down("logrotate is not installed: the logrotate test");
            return None;
        };
        // Debian's /etc/logrotate.d/exim4-base stanza, on our paths.
        let log_dir = exim.dir.path().join("mx/log");
        let config = exim.dir.path().join("logrotate.conf");
        std::fs::write(
            &config,
            format!(
                "{dir}/mainlog {dir}/rejectlog {{\n\tdaily\n\tmissingok\n\trotate 10\n\tcompress\n\tdelaycompress\n\tnotifempty\n\tnocreate\n}}\n",
                dir = log_dir.display()
            ),
        )
        .unwrap();
        Some(Rotator::Logrotate(
            program,
            config,
            exim.dir.path().join("logrotate.state"),
        ))
    });
}

/// Waits until `needle` appears in the mx log or one of its generations.
fn wait_for_log_anywhere(exim: &Exim, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !all_generations(exim)
        .iter()
        .any(|line| String::from_utf8_lossy(line).contains(needle))
    {
        assert!(Instant::now() < deadline, "no {needle:?} in the Exim logs");
        std::thread::sleep(Duration::from_millis(100));
    }
}
