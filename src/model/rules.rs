//! The rules: how one line changes a message's or a recipient's state.
//! Pure: the batch model loads and writes the states.

use crate::parse::{Delivery, DeliveryFlag};

/// A message's status, as stored in `messages.status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    /// Received; recipients still pending.
    Received,
    /// At least one delivery deferred; not finished.
    Deferred,
    /// Frozen on the queue.
    Frozen,
    /// `Completed`: every recipient dealt with.
    Completed,
    /// Rejected before it was accepted (`fake_reject`).
    Rejected,
}

impl Status {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Deferred => "deferred",
            Status::Frozen => "frozen",
            Status::Completed => "completed",
            Status::Rejected => "rejected",
        }
    }

    /// The status a stored name stands for (`received` for anything else,
    /// which the schema's CHECK rules out).
    pub fn from_name(name: &str) -> Status {
        match name {
            "deferred" => Status::Deferred,
            "frozen" => Status::Frozen,
            "completed" => Status::Completed,
            "rejected" => Status::Rejected,
            _ => Status::Received,
        }
    }
}

/// What the model tracks of a message row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageState {
    /// Where the message stands.
    pub status: Status,
    /// Whether it is frozen now.
    pub frozen: bool,
    /// When it was received (`<=`), if seen.
    pub received_ms: Option<i64>,
    /// When it completed, if it did.
    pub completed_ms: Option<i64>,
    /// The time of its latest line.
    pub last_event_ms: Option<i64>,
    /// The time of its last `Frozen` line.
    pub frozen_ms: Option<i64>,
    /// Exim's reason on that line, as a text id.
    pub frozen_reason_id: Option<i64>,
    /// Whether any of its attempts was deferred (`==`).
    pub had_deferral: bool,
    /// Whether any of its attempts failed (`**`).
    pub had_failure: bool,
}

impl MessageState {
    /// Any line about the message: it happened now, if the line has a time.
    fn touched(&mut self, at: Option<i64>) {
        self.last_event_ms = at.or(self.last_event_ms);
    }

    /// `<=`: the reception (possibly after a placeholder was made). A
    /// reception read late never moves the last event back.
    pub fn received(&mut self, at: Option<i64>) {
        self.received_ms = at;
        self.last_event_ms = match (self.last_event_ms, at) {
            (Some(last), Some(at)) => Some(last.max(at)),
            (last, at) => last.or(at),
        };
    }

    /// A delivery result line: a deferral defers a message still waiting;
    /// nothing else changes the message's status.
    pub fn attempted(&mut self, flag: DeliveryFlag, at: Option<i64>) {
        self.had_deferral |= flag == DeliveryFlag::Deferred;
        self.had_failure |= flag == DeliveryFlag::Failed;
        if flag == DeliveryFlag::Deferred
            && matches!(self.status, Status::Received | Status::Deferred)
        {
            self.status = Status::Deferred;
        }
        self.touched(at);
    }

    /// `Completed`.
    pub fn completed(&mut self, at: Option<i64>) {
        self.status = Status::Completed;
        self.completed_ms = at;
        self.frozen = false;
        self.touched(at);
    }

    /// `Frozen`, `Message is frozen`: a completed message stays completed.
    pub fn frozen(&mut self, at: Option<i64>) {
        self.frozen = true;
        if self.status != Status::Completed {
            self.status = Status::Frozen;
        }
        self.touched(at);
    }

    /// A `Frozen` line (not `Message is frozen`, which says no more than
    /// that it still is): since when, and why.
    pub fn frozen_because(&mut self, at: Option<i64>, reason_id: Option<i64>) {
        self.frozen(at);
        self.frozen_ms = at;
        self.frozen_reason_id = reason_id;
    }

    /// `Unfrozen by ...`: back to waiting.
    pub fn unfrozen(&mut self, at: Option<i64>) {
        self.frozen = false;
        if self.status == Status::Frozen {
            self.status = Status::Deferred;
        }
        self.touched(at);
    }

    /// A rejection naming the message: refused after DATA, it never
    /// entered the queue. Only a message with no reception is affected.
    pub fn rejected_after_data(&mut self, at: Option<i64>) {
        if self.status == Status::Received && self.received_ms.is_none() {
            self.status = Status::Rejected;
            self.touched(at);
        }
    }
}

/// What a delivery result line says happened: `delivered`, `deferred` or
/// `failed` (the rule of the generated column `attempts.outcome`), or
/// `discarded` (no attempt is stored for a discard).
pub fn attempt_outcome(flag: DeliveryFlag) -> &'static str {
    match flag {
        DeliveryFlag::Discarded => "discarded",
        DeliveryFlag::Delivered
        | DeliveryFlag::DeliveredMore
        | DeliveryFlag::Cutthrough
        | DeliveryFlag::Suppressed => "delivered",
        DeliveryFlag::Deferred => "deferred",
        DeliveryFlag::Failed => "failed",
    }
}

/// A recipient's status, as stored in `recipients.status`.
pub const PENDING: &str = "pending";

/// What the model tracks of a recipient row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientState {
    /// The recipient's row id.
    pub row: i64,
    /// `pending`, `delivered`, `deferred`, `bounced` or `discarded`.
    pub status: &'static str,
    /// The address it was finally delivered to, when a router rewrote it.
    pub final_address: Option<String>,
    /// The address it was expanded from (an alias or a forward).
    pub parent_address: Option<String>,
    /// When it was last tried.
    pub last_attempt_ms: Option<i64>,
    /// When it was delivered, if it was.
    pub delivered_ms: Option<i64>,
    /// Whether its row holds its first attempt (any later one is a row of
    /// `attempts`).
    pub holds_attempt: bool,
}

impl RecipientState {
    /// A new recipient row, nothing tried yet.
    pub fn pending(row: i64) -> Self {
        RecipientState {
            row,
            status: PENDING,
            ..RecipientState::default()
        }
    }

    /// The stored status name as the `'static` one the model uses.
    pub fn status_from_name(name: &str) -> &'static str {
        match name {
            "delivered" => "delivered",
            "deferred" => "deferred",
            "bounced" => "bounced",
            "discarded" => "discarded",
            _ => PENDING,
        }
    }

    /// A delivery result for this recipient. A final disposition is never
    /// undone by a later deferral line.
    pub fn attempted(&mut self, delivery: &Delivery<'_>, at: Option<i64>) {
        let status = match attempt_outcome(delivery.flag) {
            "failed" => "bounced",
            outcome => outcome,
        };
        let settled = matches!(self.status, "delivered" | "bounced" | "discarded");
        if !(settled && status == "deferred") {
            self.status = status;
        }
        self.final_address =
            Some(String::from_utf8_lossy(delivery.address.final_address).into_owned());
        if let Some(parents) = delivery.address.parents {
            self.parent_address = Some(String::from_utf8_lossy(parents).into_owned());
        }
        self.last_attempt_ms = at;
        if status == "delivered" {
            self.delivered_ms = at;
        }
    }
}
