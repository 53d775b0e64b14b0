//! Load on the web view: CLIENTS threads request the pages (and API
//! answers) of a running `exim-pilot serve` in turn for SECONDS, and the
//! time of each answer is printed per page: p50, p99, max, and errors.
//!
//!     cargo build --release --example web_load
//!     target/release/examples/web_load PORT DATABASE [CLIENTS] [SECONDS]
//!
//! The database names the pages: a message from its middle, its busiest
//! sender, a domain, and a thousand messages spread over it (asked for at
//! random, so those answers are mostly made, not taken from the view's
//! short-lived cache), and the flow over a window picked at random (up to
//! a day: made every time, the most a client can ask of the server). Defaults: 20 clients for 60 s. Each request is a new
//! connection (HTTP/1.0), as a browser's first visit is.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::{Connection, OpenFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().ok_or("give the port")?.parse()?;
    let database = args.next().ok_or("give the database")?;
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);

    let conn = Connection::open_with_flags(&database, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let id: String = conn.query_row(
        "SELECT exim_id FROM messages WHERE id = (SELECT max(id) / 2 FROM messages)",
        [],
        |row| row.get(0),
    )?;
    let sender: String = conn.query_row(
        "SELECT sender FROM messages WHERE sender <> '<>' GROUP BY sender ORDER BY count(*) DESC LIMIT 1",
        [],
        |row| row.get(0),
    )?;
    let domain = sender.rsplit('@').next().unwrap_or_default().to_owned();
    // A thousand messages spread over the database: each asked for once
    // in a while, so most of these answers are made, not kept.
    let spread: Vec<String> = conn
        .prepare("SELECT exim_id FROM messages WHERE id % (SELECT max(id) / 1000 + 1 FROM messages) = 0 LIMIT 1000")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    drop(conn);
    let pages: Vec<(&str, String)> = vec![
        ("search by id", format!("/?q={id}")),
        (
            "search by sender",
            format!("/?q={}", sender.replace('@', "%40")),
        ),
        ("search by domain", format!("/?q={domain}&since=1d")),
        ("message", format!("/message/{id}")),
        ("flow (last day)", "/flow".to_owned()),
        ("stuck", "/stuck".to_owned()),
        ("log (last hour)", "/log".to_owned()),
        ("health", "/health".to_owned()),
        ("live (first state)", "/live".to_owned()),
        ("api stats (last day)", "/api/v1/stats?since=1d".to_owned()),
        ("api search by id", format!("/api/v1/search?q={id}")),
        ("flow, any window", String::new()),
        ("message, many ids", String::new()),
    ];
    let many = pages.len() - 1;
    let any_window = pages.len() - 2;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let results: Vec<Vec<(usize, Duration, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let pages = &pages;
                let spread = &spread;
                scope.spawn(move || {
                    let mut times = Vec::new();
                    let mut next = client % pages.len();
                    let mut rng = fastrand::Rng::with_seed(client as u64);
                    while Instant::now() < deadline {
                        let path = if next == many {
                            format!("/message/{}", spread[rng.usize(..spread.len())])
                        } else if next == any_window {
                            // A window of its own: an answer made, not kept,
                            // and a whole day's statistics to sum.
                            format!("/flow?since={}m", rng.usize(60..1440))
                        } else {
                            pages[next].1.clone()
                        };
                        let started = Instant::now();
                        let ok = get(port, &path).unwrap_or(false);
                        times.push((next, started.elapsed(), ok));
                        next = (next + 1) % pages.len();
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    println!("{clients} clients for {seconds} s against 127.0.0.1:{port} ({database})");
    println!(
        "{:<22} {:>7} {:>9} {:>9} {:>9} {:>7}",
        "page", "answers", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut worst = 0.0f64;
    let mut worst_but_any_window = 0.0f64;
    for (index, (name, _)) in pages.iter().enumerate() {
        let mut times: Vec<Duration> = results
            .iter()
            .flatten()
            .filter(|(page, _, _)| *page == index)
            .map(|(_, time, _)| *time)
            .collect();
        let errors = results
            .iter()
            .flatten()
            .filter(|(page, _, ok)| *page == index && !ok)
            .count();
        times.sort();
        let at = |p: f64| {
            times
                .get(((times.len() as f64 - 1.0) * p).round() as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        worst = worst.max(at(0.99));
        if index != any_window {
            worst_but_any_window = worst_but_any_window.max(at(0.99));
        }
        println!(
            "{name:<22} {:>7} {:>9.1} {:>9.1} {:>9.1} {errors:>7}",
            times.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    println!(
        "worst p99: {worst:.1} ms; of every page but \"flow, any window\" (a day's statistics \
         made for every request, which waits its turn among the heavy questions): \
         {worst_but_any_window:.1} ms"
    );
    Ok(())
}

/// One GET; whether it was answered 200.
fn get(port: u16, path: &str) -> std::io::Result<bool> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response.starts_with(b"HTTP/1.0 200") || response.starts_with(b"HTTP/1.1 200"))
}
