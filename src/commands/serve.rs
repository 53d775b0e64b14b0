//! `exim-pilot serve`: binds `[web] listen` (or `--listen`), checks the
//! database can be read, then hands both to the web view.

use anyhow::Result;

use crate::config::Config;
use crate::exit::{CONFIG, Failure, USAGE};

/// `serve --hash-password`: a password from standard input (one line) as
/// the argon2 hash `[[web.users]] password_hash` takes.
pub fn hash_password() -> Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Failure::new(USAGE, "give the password on standard input (one line)").into());
    }
    let hash = crate::web::hash_password(password).map_err(|err| Failure::new(USAGE, err))?;
    let mut out = crate::output::stdout();
    writeln!(out, "{hash}")?;
    out.flush()?;
    Ok(())
}

pub async fn run(config: &Config) -> Result<()> {
    let listen = config.web.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|err| {
        Failure::new(
            CONFIG,
            format!("[web] listen: cannot listen on {listen}: {err}"),
        )
    })?;
    // Fail at once on a database that cannot be read, not at the first page.
    crate::query::open(&config.database.path)
        .map_err(|err| Failure::new(USAGE, err.to_string()))?;
    crate::web::serve(
        listener,
        crate::web::WebSettings {
            database: config.database.path.clone(),
            config: config.web.clone(),
            fleet: config.fleet.clone(),
            queue: config.queue.clone(),
        },
    )
    .await?;
    Ok(())
}
