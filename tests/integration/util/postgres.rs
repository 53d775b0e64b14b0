//! A throwaway PostgreSQL cluster for the fleet tests: `initdb` and
//! `pg_ctl` from Debian's `postgresql` package, in a short temporary
//! directory (the socket path must stay under 108 bytes), listening on its
//! Unix socket and on a loopback port, removed when dropped. As root the
//! server runs as `nobody` (initdb refuses root). And a TCP proxy the tests
//! can cut, to stand for a broken network.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{free_port, stand_down};

/// A running cluster.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_user: Option<&'static str>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

impl Postgres {
    /// Creates and starts a cluster, or stands down (fails under CI) when
    /// PostgreSQL's server programs are not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|version| version.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists())
                    .max()
            })
        else {
            stand_down("PostgreSQL's server (Debian's postgresql package) is not installed");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .unwrap();
        let as_user = is_root().then_some("nobody");
        if let Some(user) = as_user {
            let status = Command::new("chown")
                .arg(format!("{user}:nogroup"))
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let postgres = Postgres {
            dir,
            port: free_port(),
            bin,
            as_user,
        };
        let data = postgres.dir.path().join("data");
        let initdb = postgres
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        postgres.start_server();
        Some(postgres)
    }

    fn command(&self, program: &str) -> Command {
        match self.as_user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(self.bin.join(program));
                command
            }
            None => Command::new(self.bin.join(program)),
        }
    }

    /// Starts the server (again).
    pub fn start_server(&self) {
        let dir = self.dir.path();
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-k {} -c listen_addresses=127.0.0.1 -p {} -F -c max_connections=50",
                dir.display(),
                self.port
            ))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (as a crash or a power cut would).
    pub fn stop_server(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Makes `role` sign in with its password (scram-sha-256) from now on;
    /// `None`: everyone is trusted again, as initdb left it.
    pub fn require_password(&self, role: Option<&str>) {
        let hba = self.dir.path().join("data/pg_hba.conf");
        let text = std::fs::read_to_string(&hba).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !line.ends_with("# exim-pilot test"))
            .collect();
        let mut new = String::new();
        if let Some(role) = role {
            new.push_str(&format!(
                "local all {role} scram-sha-256 # exim-pilot test\n"
            ));
        }
        new.push_str(&kept.join("\n"));
        new.push('\n');
        std::fs::write(&hba, new).unwrap();
        self.psql("SELECT pg_reload_conf()");
    }

    /// A connection string for `user` over the Unix socket.
    pub fn socket_url(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// Runs SQL as the superuser and returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as("postgres", sql)
            .unwrap_or_else(|err| panic!("psql: {err}\n{sql}"))
    }

    /// Runs SQL as `user`; `Err` holds psql's error output.
    pub fn psql_as(&self, user: &str, sql: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A TCP proxy from a loopback port to the cluster's, which a test can
/// cut: every connection stops carrying bytes (they are not closed, as a
/// dead link would not say so) and new ones are accepted but get nothing.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Starts forwarding to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut_for_thread, streams_for_thread) = (Arc::clone(&cut), Arc::clone(&streams));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut kept = streams_for_thread.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                drop(kept);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let cut = Arc::clone(&cut_for_thread);
                    std::thread::spawn(move || pump(from, to, &cut));
                }
            }
        });
        Proxy { port, cut, streams }
    }

    /// Stops carrying bytes on every connection, old and new.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Closes every connection that was cut and carries bytes again.
    pub fn restore(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while the link is up; while it is cut, bytes are
/// read and dropped, as a broken network would lose them.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool) {
    let mut buffer = [0u8; 16384];
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
