//! The one loop that drives a [`LineSource`]: poll, hand what was read to
//! the writer, wait when there is nothing new. The daemon (`run`, following
//! until stopped) and `ingest` (files or the journal, read to their end)
//! both drive their sources with it; what differs between them is a
//! [`Steering`]: when to stop, what a failed poll means, how long to wait.

use std::io;
use std::time::{Duration, Instant};

use super::source::{ItemSink, LineSource, PollOutcome};

/// What the driver asks of whoever runs it.
pub trait Steering {
    /// Whether to stop before the next poll.
    fn stopping(&self) -> bool {
        false
    }

    /// Acts on requests before a poll (a reload's new path).
    fn before_poll(&mut self, _source: &mut dyn LineSource, _sink: &mut dyn ItemSink) {}

    /// A poll is about to run.
    fn poll_started(&mut self) {}

    /// A poll returned (its lines already sent, not yet flushed).
    fn poll_ended(&mut self, _source: &dyn LineSource, _polled: &io::Result<PollOutcome>) {}

    /// Whether a failed poll is tried again (after the usual wait) rather
    /// than ending the drive with its error.
    fn retry(&mut self, _source: &dyn LineSource, _err: &io::Error) -> bool {
        false
    }

    /// Waits before the next poll when the source has nothing more for now;
    /// `since_lines` is how long ago a poll last sent lines. `false`: stop.
    fn wait(&mut self, _since_lines: Duration) -> bool {
        true
    }
}

/// Drives `source` into `sink` until the source is finished, the steering
/// stops it, or the writer goes away; returns the lines sent. Whatever was
/// sent is flushed to the writer after every poll and before returning,
/// an error included (what was read before it is stored too).
pub fn drive(
    source: &mut dyn LineSource,
    sink: &mut dyn ItemSink,
    steering: &mut dyn Steering,
) -> io::Result<u64> {
    let mut lines = 0u64;
    let mut last_lines = Instant::now();
    while !steering.stopping() && !source.finished() {
        steering.before_poll(source, sink);
        steering.poll_started();
        let polled = source.poll(sink);
        steering.poll_ended(source, &polled);
        let again = match polled {
            Ok(outcome) => {
                if outcome.closed {
                    break;
                }
                if outcome.lines > 0 {
                    lines += outcome.lines;
                    last_lines = Instant::now();
                }
                outcome.again
            }
            Err(err) => {
                if !steering.retry(source, &err) {
                    sink.flush();
                    return Err(err);
                }
                false
            }
        };
        // What this poll gathered goes to the writer now: a poll reads a
        // bounded step, and a partial chunk must not wait for the next.
        if !sink.flush() {
            break;
        }
        if again || source.finished() {
            continue;
        }
        if !steering.wait(last_lines.elapsed()) {
            break;
        }
    }
    sink.flush();
    Ok(lines)
}

/// The steering of `ingest`: read to the end at once, and stop at the
/// first error.
#[derive(Debug, Default)]
pub struct ToTheEnd;

impl Steering for ToTheEnd {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::item::{AuditItem, Item};
    use crate::pipeline::source::Collected;

    /// A source that answers from a script of poll results.
    struct Scripted {
        polls: std::collections::VecDeque<io::Result<PollOutcome>>,
        ends: bool,
    }

    impl LineSource for Scripted {
        fn describe(&self) -> String {
            "scripted".to_owned()
        }

        fn poll(&mut self, sink: &mut dyn ItemSink) -> io::Result<PollOutcome> {
            let polled = self.polls.pop_front().unwrap_or(Ok(PollOutcome::default()));
            if let Ok(outcome) = &polled {
                for _ in 0..outcome.lines {
                    sink.send(AuditItem::item("line", "test", serde_json::json!({})));
                }
            }
            polled
        }

        fn finished(&self) -> bool {
            self.ends && self.polls.is_empty()
        }
    }

    fn lines(count: u64, again: bool) -> io::Result<PollOutcome> {
        Ok(PollOutcome {
            lines: count,
            again,
            closed: false,
        })
    }

    #[test]
    fn a_finite_source_is_read_to_its_end() {
        let mut source = Scripted {
            polls: [lines(2, true), lines(0, false), lines(3, false)].into(),
            ends: true,
        };
        let mut sink = Collected::default();
        let sent = drive(&mut source, &mut sink, &mut ToTheEnd).unwrap();
        assert_eq!(sent, 5);
        assert_eq!(sink.0.len(), 5);
    }

    #[test]
    fn an_error_ends_the_drive_unless_the_steering_retries_it() {
        let failing = || Scripted {
            polls: [
                lines(1, false),
                Err(io::Error::other("gone")),
                lines(4, false),
            ]
            .into(),
            ends: true,
        };
        let err = drive(&mut failing(), &mut Collected::default(), &mut ToTheEnd).unwrap_err();
        assert_eq!(err.to_string(), "gone");

        struct Retrying(u32);
        impl Steering for Retrying {
            fn retry(&mut self, _: &dyn LineSource, _: &io::Error) -> bool {
                self.0 += 1;
                true
            }
        }
        let mut retrying = Retrying(0);
        let mut sink = Collected::default();
        let sent = drive(&mut failing(), &mut sink, &mut retrying).unwrap();
        assert_eq!((sent, retrying.0, sink.0.len()), (5, 1, 5));
    }

    #[test]
    fn a_following_source_waits_between_empty_polls_until_stopped() {
        struct Waits(u32);
        impl Steering for Waits {
            fn wait(&mut self, _: Duration) -> bool {
                self.0 += 1;
                self.0 < 3
            }
        }
        let mut source = Scripted {
            polls: [lines(1, true), lines(1, false)].into(),
            ends: false,
        };
        let mut waits = Waits(0);
        let mut sink = Collected::default();
        let sent = drive(&mut source, &mut sink, &mut waits).unwrap();
        // Not after the poll that asked to be polled again at once.
        assert_eq!((sent, waits.0), (2, 3));
        assert!(matches!(sink.0[0], Item::Audit(_)));
    }
}
