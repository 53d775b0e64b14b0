//! `exim-pilot prune`: apply `[retention]` now, in the same small
//! transactions the daemon uses, and say what went.

use std::io::Write as _;

use anyhow::Result;

use crate::config::Config;
use crate::store::{self, repo};

/// Prunes and prints the rows deleted per table.
pub async fn run(config: &Config) -> Result<()> {
    let store = store::connect(&config.database).await?;
    let policy = store::RetentionPolicy::of(config);
    let pruned = store
        .with_conn("prune", move |conn| {
            let pruned = policy.prune_all(conn)?;
            repo::record_audit(
                conn,
                &repo::AuditRecord {
                    actor: &std::env::var("SUDO_USER")
                        .or_else(|_| std::env::var("USER"))
                        .unwrap_or_else(|_| "unknown".to_owned()),
                    action: "pruned",
                    message_id: None,
                    details: &serde_json::to_string(&pruned).unwrap_or_default(),
                    origin: "prune",
                },
            )?;
            Ok(pruned)
        })
        .await?;
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "pruned {} rows and lines: {} log lines, {} delivery attempts, {} rejections, {} messages, {} audit records, {} unused texts",
        pruned.total(),
        pruned.log_lines,
        pruned.delivery_attempts,
        pruned.rejections,
        pruned.messages,
        pruned.audit_log,
        pruned.texts
    )?;
    out.flush()?;
    Ok(())
}
