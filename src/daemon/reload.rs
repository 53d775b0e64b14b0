//! SIGHUP: the configuration read again and applied piece by piece, or
//! refused whole (a bad file, or a change that needs a restart), keeping the
//! running one.

use std::sync::Arc;

use super::Running;
use super::progress::lock;
use crate::config::Config;
use crate::pipeline::item::{AuditItem, Item};
use crate::pipeline::writer::WriterSettings;
use crate::store;

/// SIGHUP: re-reads the configuration. A bad one is logged and the running
/// configuration stays; a good one is applied piece by piece. Returns the
/// audit record of what happened.
pub(super) async fn reload(running: &mut Running) -> Item {
    let Running {
        config_path,
        overrides,
        current,
        log,
        settings,
        config_tx,
        handle,
        control,
        notifier,
        metrics,
        ..
    } = running;
    lock(notifier).reloading();
    let source = config_path.as_deref().map_or_else(
        || crate::config::DEFAULT_CONFIG_PATH.to_owned(),
        |p| p.display().to_string(),
    );
    let loaded = Config::load(config_path.as_deref(), overrides)
        .map_err(|err| err.to_string())
        .and_then(|new| match restart_needed(current, &new) {
            Some(problem) => Err(problem),
            None => Ok(new),
        })
        .and_then(|new| {
            let file = new
                .source
                .as_deref()
                .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
            let prepared = metrics
                .prepare(&new.metrics)
                .map_err(|err| format!("{file}: {err}"))?;
            Ok((new, prepared))
        });
    let outcome = match loaded {
        Err(err) => {
            tracing::error!(error = %err, "configuration reload failed; keeping the running configuration: {err}");
            AuditItem::item(
                "config_rejected",
                "daemon",
                serde_json::json!({ "file": source, "error": err }),
            )
        }
        Ok((new, prepared)) => {
            metrics.apply(prepared, &new.metrics);
            log.set_level(&new.logging.level);
            control.set_stall_after(new.health.stall_after);
            let _ = settings.send(WriterSettings::from_config(&new, None));
            if new.database != current.database {
                match store::connect(&new.database).await {
                    Ok(store) => {
                        handle.replace(store);
                        tracing::info!("database settings changed; connection pool rebuilt");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot apply the new database settings: {err}; keeping the running pool");
                    }
                }
            }
            if new.log.source == crate::config::LogSource::File && new.log.path != current.log.path
            {
                control.switch_path(new.log.path.clone());
            }
            let _ = config_tx.send(Arc::new(new.clone()));
            *current = new;
            tracing::info!(file = %source, "configuration reloaded from {source}");
            AuditItem::item(
                "config_reloaded",
                "daemon",
                serde_json::json!({ "file": source }),
            )
        }
    };
    lock(notifier).ready(&format!("tailing {}", super::source_name(current)));
    outcome
}

/// What a reload cannot change while running, as the reason to refuse it.
///
/// The read positions live in the database: switching files would leave
/// the new one with only the lines after the switch and positions that
/// claim the whole log, so nothing would ever fill in the start.
fn restart_needed(current: &Config, new: &Config) -> Option<String> {
    let file = new
        .source
        .as_deref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    if new.database.path != current.database.path {
        return Some(format!(
            "{file}: [database] path: cannot change while running (from {} to {}); \
             restart exim-pilot to change [database] path",
            current.database.path.display(),
            new.database.path.display()
        ));
    }
    if new.fleet != current.fleet {
        return Some(format!(
            "{file}: [fleet]: cannot change while running (the replicator holds this host's \
             mark in PostgreSQL); restart exim-pilot to change [fleet]"
        ));
    }
    let journal = |log: &crate::config::LogConfig| {
        (
            log.source,
            log.journal_identifier.clone(),
            log.journal_unit.clone(),
        )
    };
    (journal(&new.log) != journal(&current.log)).then(|| {
        format!(
            "{file}: [log] source, journal_identifier, journal_unit: cannot change while \
             running; restart exim-pilot to read another source"
        )
    })
}
