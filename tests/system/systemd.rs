//! The shipped systemd units, checked with systemd's own analyser: they
//! verify cleanly and their exposure score stays low. PID 1 here need not be
//! systemd; `systemd-analyze` works offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::util::{binary, outcome, system_program};

/// The Debian unit and the RHEL one.
const UNITS: [&str; 2] = ["exim-pilot.service", "exim-pilot-rhel.service"];

/// The web view's unit (the same on both), and its exposure bound: it
/// needs the network.
const WEB_UNIT: (&str, f64) = ("exim-pilot-web.service", 2.0);

/// Worst exposure `systemd-analyze security` may give (the bar).
const MAX_EXPOSURE: f64 = 1.5;

/// The shipped drop-ins, each with the worst exposure the unit may have
/// with it: serving metrics and reaching a PostgreSQL over TCP need the
/// network.
const DROP_INS: [(&str, f64); 4] = [
    ("fleet.conf", 2.0),
    ("journal-source.conf", 1.5),
    ("metrics-listen.conf", 2.0),
    ("metrics-textfile.conf", 1.5),
];

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(unit_path(name)).unwrap()
}

/// The generated man page under `dir/man`, for `verify`'s Documentation= check
/// (point `MANPATH` there).
fn write_man_page(dir: &Path) {
    let man8 = dir.join("man/man8");
    std::fs::create_dir_all(&man8).unwrap();
    let page = Command::new(binary())
        .args(["generate", "man"])
        .output()
        .unwrap();
    assert!(page.status.success());
    std::fs::write(man8.join("exim-pilot.8"), page.stdout).unwrap();
}

/// `systemd-analyze verify` passes `unit` without a word (the man page
/// under `dir/man`).
fn verifies(analyze: &str, unit: &Path, dir: &Path) {
    let output = Command::new(analyze)
        .arg("verify")
        .arg(unit)
        .env("MANPATH", dir.join("man"))
        .output()
        .unwrap();
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (0, "", ""),
        "systemd-analyze verify {}",
        unit.display()
    );
}

/// `systemd-analyze`, or `None` off CI when systemd is not installed.
fn systemd_analyze() -> Option<String> {
    let program = system_program("systemd-analyze");
    if program.is_none() {
        crate::util::stand_down("systemd-analyze is not installed: the unit check");
    }
    program
}

#[test]
fn units_verify_without_a_complaint() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // verify checks that ExecStart's binary and the Documentation= man page
    // exist: give it the built binary and the generated page.
    let dir = TempDir::new().unwrap();
    write_man_page(dir.path());
    for name in UNITS.into_iter().chain([WEB_UNIT.0]) {
        let text = unit_text(name);
        assert!(
            text.contains("ExecStart=/usr/bin/exim-pilot run ")
                || (name == WEB_UNIT.0 && text.contains("ExecStart=/usr/bin/exim-pilot serve ")),
            "{name}"
        );
        let copy = dir.path().join(name);
        let built = binary().display().to_string();
        std::fs::write(&copy, text.replace("/usr/bin/exim-pilot", &built)).unwrap();
        verifies(&analyze, &copy, dir.path());
    }
}

/// The exposure level `systemd-analyze security` gives the unit file `path`.
fn exposure(analyze: &str, path: &Path) -> f64 {
    let output = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .output()
        .unwrap();
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!(status, 0, "{}: {stderr}", path.display());
    stdout
        .lines()
        .find_map(|line| line.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|score| score.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"))
}

#[test]
fn units_are_hardened_to_an_exposure_of_at_most_1_5() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    for name in UNITS {
        let exposure = exposure(&analyze, &unit_path(name));
        eprintln!("{name}: exposure {exposure}");
        assert!(exposure <= MAX_EXPOSURE, "{name}: exposure {exposure}");
    }
    let (name, bound) = WEB_UNIT;
    let exposure = exposure(&analyze, &unit_path(name));
    eprintln!("{name}: exposure {exposure}");
    assert!(exposure <= bound, "{name}: exposure {exposure}");
}

/// Each drop-in, applied to the Debian unit (its settings after the unit's,
/// as systemd reads a drop-in), keeps the exposure within its bound; the
/// metrics listener's may reach 2.0, since it needs the network.
#[test]
fn the_shipped_drop_ins_keep_the_exposure_within_their_bounds() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let mut checked = Vec::new();
    for (drop_in, bound) in DROP_INS {
        let text = unit_text(drop_in);
        assert!(text.contains("\n[Service]\n"), "{drop_in}");
        let mut unit = unit_text(UNITS[0]);
        // After the unit's [Install]: reopen [Service] for the drop-in.
        unit.push_str(&text);
        let path = dir.path().join("exim-pilot.service");
        std::fs::write(&path, unit).unwrap();
        let exposure = exposure(&analyze, &path);
        eprintln!("exim-pilot.service + {drop_in}: exposure {exposure}");
        assert!(exposure <= bound, "{drop_in}: exposure {exposure}");
        checked.push(exposure);
    }
    // The fleet's and the listener's drop-ins really open the network: the
    // score moves.
    let unit = exposure(&analyze, &unit_path(UNITS[0]));
    assert!(checked[0] > unit && checked[2] > unit, "{checked:?} {unit}");
}

#[test]
fn the_rhel_unit_differs_from_the_debian_one_only_where_the_distros_do() {
    // Exim's log directory, its reading group and its unit name; comments
    // may say so in their own words.
    let debian_as_rhel: Vec<String> = unit_text(UNITS[0])
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| match line {
            "After=exim4.service" => "After=exim.service".to_owned(),
            "SupplementaryGroups=adm" => "SupplementaryGroups=exim".to_owned(),
            "BindReadOnlyPaths=/var/log/exim4" => "BindReadOnlyPaths=/var/log/exim".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let rhel: Vec<String> = unit_text(UNITS[1])
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert_eq!(rhel, debian_as_rhel);
}

#[test]
fn the_unit_runs_the_daemon_on_the_shipped_configuration_path() {
    let text = unit_text(UNITS[0]);
    let exec = text
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap();
    assert_eq!(
        exec,
        format!(
            "/usr/bin/exim-pilot run --config {}",
            exim_pilot::config::DEFAULT_CONFIG_PATH
        )
    );
    for key in ["Type=notify", "WatchdogSec=", "RestartPreventExitStatus=78"] {
        assert!(text.lines().any(|line| line.starts_with(key)), "{key}");
    }
}

/// The web unit's descriptor limit stays above the server's own bound on
/// connections, so that bound, not EMFILE, is what a flood meets.
#[test]
fn the_web_units_file_limit_is_above_its_connection_bound() {
    let text = unit_text("exim-pilot-web.service");
    let limit: usize = text
        .lines()
        .find_map(|line| line.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE in the web unit")
        .trim()
        .parse()
        .unwrap();
    assert!(
        limit >= exim_pilot::web::MAX_CONNECTIONS + 256,
        "LimitNOFILE={limit}"
    );
}

/// The queue helper's units: both sockets and both services verify, the
/// first tier is as tight as the daemon's unit and runs under
/// NoNewPrivileges, and the second tier sets nothing that implies it (its
/// deliveries need Exim's setuid root) yet still bounds what it may write.
#[test]
fn the_queue_helpers_units_verify_and_the_tiers_differ_only_where_they_must() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_exim-pilot-queue-helper"));
    write_man_page(dir.path());
    for name in [
        "exim-pilot-queue.socket",
        "exim-pilot-queue@.service",
        "exim-pilot-deliver.socket",
        "exim-pilot-deliver@.service",
    ] {
        let text = unit_text(name).replace(
            "/usr/libexec/exim-pilot/exim-pilot-queue-helper",
            &helper.display().to_string(),
        );
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    for name in ["exim-pilot-queue.socket", "exim-pilot-deliver.socket"] {
        verifies(&analyze, &dir.path().join(name), dir.path());
    }
    let tight = exposure(&analyze, &unit_path("exim-pilot-queue@.service"));
    let loose = exposure(&analyze, &unit_path("exim-pilot-deliver@.service"));
    eprintln!("exim-pilot-queue@.service: exposure {tight}; exim-pilot-deliver@.service: {loose}");
    assert!(tight <= MAX_EXPOSURE, "first tier: exposure {tight}");
    assert!(loose > tight, "{loose} {tight}");
    assert!(loose <= 6.5, "second tier: exposure {loose}");
    let first = unit_text("exim-pilot-queue@.service");
    let second = unit_text("exim-pilot-deliver@.service");
    assert!(first.contains("\nNoNewPrivileges=yes\n"));
    // systemd.exec(5) (systemd 252): each of these implies NoNewPrivileges;
    // ProtectHostname= did, in the booted container (packaging/test-queue).
    for implies in [
        "ProtectHostname=",
        "SystemCallLog=",
        "SystemCallFilter=",
        "SystemCallArchitectures=",
        "RestrictAddressFamilies=",
        "RestrictNamespaces=",
        "PrivateDevices=",
        "ProtectKernelTunables=",
        "ProtectKernelModules=",
        "ProtectKernelLogs=",
        "ProtectClock=",
        "MemoryDenyWriteExecute=",
        "RestrictRealtime=",
        "RestrictSUIDSGID=",
        "DynamicUser=",
        "LockPersonality=",
        "NoNewPrivileges=",
    ] {
        assert!(
            !second.lines().any(|l| l.starts_with(implies)),
            "second tier sets {implies}"
        );
    }
    for unit in [&first, &second] {
        assert!(unit.contains("\nProtectSystem=strict\n") && unit.contains("\nUser=Debian-exim\n"));
        assert!(unit.contains("LoadCredential=exim-pilot.toml:/etc/exim-pilot/exim-pilot.toml"));
    }
}
