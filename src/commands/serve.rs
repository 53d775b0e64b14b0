//! `exim-pilot serve`: binds `[web] listen` (or `--listen`), checks the
//! database can be read, then hands both to the web view.

use anyhow::Result;

use crate::config::Config;
use crate::exit::{CONFIG, Failure, USAGE};

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
        },
    )
    .await?;
    Ok(())
}
