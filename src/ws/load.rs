//! A session's share of the message-queue figures: the requests it has waiting and in flight,
//! whether it is under backpressure, and the requests it refused as `OVERLOADED`.
//!
//! The figures are sums over sessions, read by `/health` (this server's [`SessionCounts`]) and
//! `/metrics` (the process's gauges). A session reports its level after each step of its loop
//! and only what changed moves the sums, so a request read, started and answered within one
//! step costs no shared write at all; dropping the share takes the session's part back out,
//! whichever way the session ended.
//!
//! **Under backpressure** means: the session's queue reached its high-water mark (the client
//! was sent a `backpressure` notification) and has not yet drained to the low-water mark where
//! that notification re-arms. A session whose queue is full and that has stopped reading its
//! socket is always in that state. The outbox of notifications has no such state: a session
//! whose outbox overflows is closed as a slow consumer (1013) instead.

use std::sync::Arc;

use crate::{
    edge::SessionCounts,
    telemetry::metrics::{self, QueueMoved},
};

/// What one session's queue holds, as the figures count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct QueueLevel {
    /// Requests read and not yet started: queued, or held back while the queue is full.
    pub waiting: usize,
    /// Requests started and not yet answered.
    pub in_flight: usize,
    /// See the [module documentation](self).
    pub backpressured: bool,
}

/// The part of the figures one session has added, taken back out when it is dropped.
pub(super) struct QueueShare {
    counts: Arc<SessionCounts>,
    reported: QueueLevel,
}

impl QueueShare {
    /// A share of nothing yet, counted in `counts` (and the process's metrics).
    pub(super) fn new(counts: Arc<SessionCounts>) -> Self {
        Self {
            counts,
            reported: QueueLevel::default(),
        }
    }

    /// The session's queue is now at `level`.
    pub(super) fn report(&mut self, level: QueueLevel) {
        if level == self.reported {
            return;
        }
        let moved = QueueMoved {
            waiting: difference(level.waiting, self.reported.waiting),
            in_flight: difference(level.in_flight, self.reported.in_flight),
            backpressured: i64::from(level.backpressured) - i64::from(self.reported.backpressured),
        };
        self.counts.queue_moved(moved);
        metrics::ws().queue_moved(moved);
        self.reported = level;
    }

    /// The session refused a request with `OVERLOADED`.
    pub(super) fn overloaded(&self) {
        self.counts.overloaded();
        metrics::ws().overloaded();
    }
}

impl Drop for QueueShare {
    fn drop(&mut self) {
        self.report(QueueLevel::default());
    }
}

/// `now - before`, for lengths far below `i64::MAX` (queues and in-flight sets are bounded by
/// configuration).
fn difference(now: usize, before: usize) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::sessions::MessageQueue;

    fn level(waiting: usize, in_flight: usize, backpressured: bool) -> QueueLevel {
        QueueLevel {
            waiting,
            in_flight,
            backpressured,
        }
    }

    #[test]
    fn shares_of_several_sessions_add_up_and_leave_with_them() {
        let counts = Arc::new(SessionCounts::default());
        let mut first = QueueShare::new(Arc::clone(&counts));
        let mut second = QueueShare::new(Arc::clone(&counts));
        first.report(level(5, 1, true));
        second.report(level(2, 3, false));
        assert_eq!(
            counts.message_queue(),
            MessageQueue {
                waiting: 7,
                in_flight: 4,
                sessions_under_backpressure: 1,
                overloaded: 0,
            }
        );

        // Levels, not increments: the same report twice counts once.
        first.report(level(1, 1, false));
        first.report(level(1, 1, false));
        second.report(level(4, 0, true));
        second.overloaded();
        assert_eq!(
            counts.message_queue(),
            MessageQueue {
                waiting: 5,
                in_flight: 1,
                sessions_under_backpressure: 1,
                overloaded: 1,
            }
        );

        // A session that ends with work still queued takes all of it back out.
        drop(second);
        assert_eq!(
            counts.message_queue(),
            MessageQueue {
                waiting: 1,
                in_flight: 1,
                sessions_under_backpressure: 0,
                overloaded: 1,
            }
        );
        drop(first);
        assert_eq!(
            counts.message_queue(),
            MessageQueue {
                overloaded: 1,
                ..MessageQueue::default()
            }
        );
    }
}
