//! Retention in the daemon: a prune step (one small transaction) between
//! batches, so pruning a large database never holds up ingest for long.

use std::time::Duration;

use crate::store::repo::{AuditRecord, record_audit};
use crate::store::{Pruned, RetentionPolicy, StoreHandle};

/// Retention, one small transaction between batches, so pruning a large
/// database never holds up ingest for long.
pub(super) struct Pruning {
    next: Option<tokio::time::Instant>,
    active: Option<Pruned>,
}

impl Pruning {
    pub(super) fn new() -> Self {
        Pruning {
            next: None,
            active: None,
        }
    }

    /// Whether the next [`step`](Self::step) may delete rows.
    pub(super) fn due(&self) -> bool {
        self.active.is_some()
            || self
                .next
                .is_none_or(|next| tokio::time::Instant::now() >= next)
    }

    pub(super) async fn step(
        &mut self,
        store: &StoreHandle,
        policy: &RetentionPolicy,
        interval: Duration,
    ) {
        if self.active.is_none() {
            // The first run waits a little: start-up catch-up comes first.
            let next = *self.next.get_or_insert_with(|| {
                tokio::time::Instant::now() + interval.min(FIRST_PRUNE_DELAY)
            });
            if tokio::time::Instant::now() < next {
                return;
            }
            self.active = Some(Pruned::default());
        }
        let Some(mut pruned) = self.active.take() else {
            return;
        };
        let policy = *policy;
        let outcome = store
            .current()
            .with_conn("prune", move |conn| {
                let more = policy.prune_step(conn, &mut pruned)?;
                if !more {
                    record_audit(
                        conn,
                        &AuditRecord {
                            actor: "exim-pilot",
                            action: "pruned",
                            message_id: None,
                            details: &serde_json::to_string(&pruned).unwrap_or_default(),
                            origin: "daemon",
                        },
                    )?;
                }
                Ok((more, pruned))
            })
            .await;
        match outcome {
            Ok((true, pruned)) => self.active = Some(pruned),
            Ok((false, pruned)) => {
                if pruned.total() > 0 {
                    let rows = pruned.total();
                    tracing::info!(
                        rows,
                        ?pruned,
                        "pruned {rows} rows past their retention: {pruned:?}"
                    );
                }
                self.next = Some(tokio::time::Instant::now() + interval);
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning failed: {err}; trying again later");
                self.next =
                    Some(tokio::time::Instant::now() + interval.min(Duration::from_secs(3600)));
            }
        }
    }
}

/// The delay before the first prune of a run.
const FIRST_PRUNE_DELAY: Duration = Duration::from_secs(60);
