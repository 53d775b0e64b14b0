//! `[queue]`: seeing Exim's queue and acting on it through the queue
//! helper, checked and printed. The helper reads this section too (the
//! file is root's), so the switch for actions, Exim's path and the audit
//! file are said once, here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::check::{Checker, Range};

/// `[queue]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub actions: Option<bool>,
    pub exim: Option<String>,
    pub socket: Option<String>,
    pub deliver_socket: Option<String>,
    pub actions_log: Option<String>,
    pub web_user: Option<String>,
    pub bulk_limit: Option<i64>,
}

/// `[queue]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Whether freeze, thaw, remove, deliver and give up may run at all
    /// (off by default; the helper refuses them too).
    pub actions: bool,
    /// Exim's binary, as the helper runs it.
    pub exim: PathBuf,
    /// The first tier's socket (listing, showing, freeze, thaw, remove).
    pub socket: PathBuf,
    /// The second tier's socket (deliver, give up).
    pub deliver_socket: PathBuf,
    /// Where the helper records each action before and after it runs.
    pub actions_log: PathBuf,
    /// The user the web view runs as: only its requests may name another
    /// actor (the signed-in user and the client's address).
    pub web_user: String,
    /// The most messages one action may touch.
    pub bulk_limit: usize,
}

/// The most `[queue] bulk_limit` may be: the helper protocol's ceiling
/// (`queue::request::MAX_IDS`, which a test there holds equal).
pub const MAX_BULK_LIMIT: usize = 1000;

/// How many messages one action may touch: 100 unless configured.
const BULK_LIMIT: Range<i64> = Range {
    default: 100,
    min: 1,
    max: MAX_BULK_LIMIT as i64,
};

impl QueueConfig {
    /// Checks `[queue]`. `web_auth_none` is whether `[web] auth = "none"`
    /// (everyone an admin): actions are refused with it.
    pub(super) fn check(check: &mut Checker, raw: RawQueue, web_auth_none: bool) -> Self {
        let actions = raw.actions.unwrap_or(false);
        if actions && web_auth_none {
            check.problem(
                "[queue] actions",
                "needs [web] auth = \"users\" or \"proxy\": with \"none\" every visitor is an \
                 admin, and any page they open could act on the queue"
                    .to_owned(),
            );
        }
        let absolute = |check: &mut Checker, key: &str, value: Option<String>, default: &str| {
            let path = PathBuf::from(value.unwrap_or_else(|| default.to_owned()));
            if !path.is_absolute() {
                check.problem(key, format!("{} is not an absolute path", path.display()));
            }
            path
        };
        let exim = match raw.exim {
            Some(exim) => absolute(check, "[queue] exim", Some(exim), ""),
            None => default_exim(),
        };
        QueueConfig {
            actions,
            exim,
            socket: absolute(
                check,
                "[queue] socket",
                raw.socket,
                "/run/exim-pilot/queue.sock",
            ),
            deliver_socket: absolute(
                check,
                "[queue] deliver_socket",
                raw.deliver_socket,
                "/run/exim-pilot/deliver.sock",
            ),
            actions_log: absolute(
                check,
                "[queue] actions_log",
                raw.actions_log,
                "/var/log/exim-pilot-queue/actions.log",
            ),
            web_user: raw.web_user.unwrap_or_else(|| "exim-pilot".to_owned()),
            bulk_limit: check.count("[queue] bulk_limit", raw.bulk_limit, BULK_LIMIT),
        }
    }

    pub(super) fn to_raw(&self) -> RawQueue {
        let path = |p: &Path| Some(p.display().to_string());
        RawQueue {
            actions: Some(self.actions),
            exim: path(&self.exim),
            socket: path(&self.socket),
            deliver_socket: path(&self.deliver_socket),
            actions_log: path(&self.actions_log),
            web_user: Some(self.web_user.clone()),
            bulk_limit: Some(i64::try_from(self.bulk_limit).unwrap_or(i64::MAX)),
        }
    }
}

/// Exim's binary where the distributions put it: Debian's `exim4`, or
/// `exim` (RHEL, source builds).
fn default_exim() -> PathBuf {
    ["/usr/sbin/exim4", "/usr/sbin/exim"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/exim4"))
}
