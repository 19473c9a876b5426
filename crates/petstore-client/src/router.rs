//! Correlation: which waiting call an inbound frame answers.
//!
//! Typed calls wait for the response carrying their `correlationId`, so any number may be in
//! flight and the server may answer them in any order. Raw calls (frames a test writes by hand)
//! wait for their id if the frame had one, and otherwise take, in the order they were sent, the
//! frames no one else is waiting for: an answer to a frame the server could not read carries no
//! id at all.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use crate::Inbound;

/// A raw call waiting for an answer.
#[derive(Debug)]
enum RawWaiter {
    /// Its sender lives in `Router::by_id` under this id.
    Keyed(String),
    Unkeyed(oneshot::Sender<Inbound>),
}

/// Matches inbound frames to the calls waiting for them.
#[derive(Debug)]
pub(crate) struct Router {
    /// Typed calls and raw calls with a correlation id, by that id.
    by_id: HashMap<String, oneshot::Sender<Inbound>>,
    /// Raw calls in the order they were sent: they also take frames no one else waits for.
    raw: VecDeque<RawWaiter>,
    /// `by_id` size at which abandoned waiters are swept out next.
    prune_at: usize,
}

impl Default for Router {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            raw: VecDeque::new(),
            prune_at: Self::MIN_PRUNE_AT,
        }
    }
}

impl Router {
    const MIN_PRUNE_AT: usize = 64;

    /// Waits for the response with `correlation_id`.
    pub(crate) fn expect(&mut self, correlation_id: String, reply: oneshot::Sender<Inbound>) {
        self.by_id.insert(correlation_id, reply);
        self.prune();
    }

    /// Waits for the response with `key`, or failing that the next unmatched frame.
    pub(crate) fn expect_raw(&mut self, key: Option<String>, reply: oneshot::Sender<Inbound>) {
        match key {
            // A reused id cannot be told apart; the later call falls back to arrival order.
            Some(key) if !self.by_id.contains_key(&key) => {
                self.by_id.insert(key.clone(), reply);
                self.raw.push_back(RawWaiter::Keyed(key));
            }
            _ => self.raw.push_back(RawWaiter::Unkeyed(reply)),
        }
        self.prune();
    }

    /// Hands a frame to its waiter. Returns whether a waiter took it.
    pub(crate) fn deliver(&mut self, correlation_id: Option<&str>, inbound: Inbound) -> bool {
        if let Some(reply) = correlation_id.and_then(|id| self.by_id.remove(id)) {
            if let Some(id) = correlation_id {
                self.raw
                    .retain(|waiter| !matches!(waiter, RawWaiter::Keyed(key) if key == id));
            }
            return reply.send(inbound).is_ok();
        }
        while let Some(waiter) = self.raw.pop_front() {
            let reply = match waiter {
                RawWaiter::Keyed(key) => match self.by_id.remove(&key) {
                    Some(reply) => reply,
                    None => continue,
                },
                RawWaiter::Unkeyed(reply) => reply,
            };
            if !reply.is_closed() {
                return reply.send(inbound).is_ok();
            }
        }
        false
    }

    /// Forgets waiters whose caller gave up (timed out or was cancelled). Amortised: a sweep
    /// runs only when the map has doubled since the last one.
    fn prune(&mut self) {
        if self.by_id.len() + self.raw.len() < self.prune_at {
            return;
        }
        self.by_id.retain(|_, reply| !reply.is_closed());
        let by_id = &self.by_id;
        self.raw.retain(|waiter| match waiter {
            RawWaiter::Keyed(key) => by_id.contains_key(key),
            RawWaiter::Unkeyed(reply) => !reply.is_closed(),
        });
        self.prune_at = ((self.by_id.len() + self.raw.len()) * 2).max(Self::MIN_PRUNE_AT);
    }

    /// Waiters outstanding, abandoned ones included until the next sweep.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
            + self
                .raw
                .iter()
                .filter(|waiter| matches!(waiter, RawWaiter::Unkeyed(_)))
                .count()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Reply, Response};

    fn success(id: &str, n: u64) -> Inbound {
        Inbound::Response(Response {
            correlation_id: Some(id.to_owned()),
            timestamp: None,
            reply: Reply::Success(json!(n)),
        })
    }

    #[test]
    fn the_router_matches_responses_by_correlation_id_in_any_order() {
        let mut router = Router::default();
        let (a, mut a_answer) = oneshot::channel();
        let (b, mut b_answer) = oneshot::channel();
        let (c, mut c_answer) = oneshot::channel();
        router.expect("a".to_owned(), a);
        router.expect("b".to_owned(), b);
        router.expect("c".to_owned(), c);

        assert!(router.deliver(Some("c"), success("c", 3)));
        assert!(router.deliver(Some("a"), success("a", 1)));
        // Unknown and repeated ids find no one, and don't disturb the rest.
        assert!(!router.deliver(Some("zzz"), success("zzz", 0)));
        assert!(!router.deliver(Some("a"), success("a", 11)));
        assert!(router.deliver(Some("b"), success("b", 2)));

        assert_eq!(a_answer.try_recv().unwrap(), success("a", 1));
        assert_eq!(b_answer.try_recv().unwrap(), success("b", 2));
        assert_eq!(c_answer.try_recv().unwrap(), success("c", 3));
        assert_eq!(router.len(), 0);
    }

    #[test]
    fn raw_waiters_take_unmatched_frames_in_the_order_they_were_sent() {
        let mut router = Router::default();
        let (typed, mut typed_answer) = oneshot::channel();
        let (first, mut first_answer) = oneshot::channel();
        let (second, mut second_answer) = oneshot::channel();
        router.expect("typed".to_owned(), typed);
        router.expect_raw(None, first);
        router.expect_raw(None, second);

        assert!(router.deliver(None, Inbound::Text("one".to_owned())));
        // A response for the typed call is not taken by the raw waiter in between.
        assert!(router.deliver(Some("typed"), success("typed", 1)));
        assert!(router.deliver(Some("unknown"), success("unknown", 2)));
        // No one left.
        assert!(!router.deliver(None, Inbound::Text("three".to_owned())));

        assert_eq!(
            first_answer.try_recv().unwrap(),
            Inbound::Text("one".to_owned())
        );
        assert_eq!(typed_answer.try_recv().unwrap(), success("typed", 1));
        assert_eq!(second_answer.try_recv().unwrap(), success("unknown", 2));
    }

    #[test]
    fn a_raw_waiter_with_an_id_gets_its_own_response_even_out_of_order() {
        let mut router = Router::default();
        let (unkeyed, mut unkeyed_answer) = oneshot::channel();
        let (keyed, mut keyed_answer) = oneshot::channel();
        router.expect_raw(None, unkeyed);
        router.expect_raw(Some("k".to_owned()), keyed);

        assert!(router.deliver(Some("k"), success("k", 1)));
        assert!(router.deliver(None, Inbound::Text("other".to_owned())));
        assert_eq!(keyed_answer.try_recv().unwrap(), success("k", 1));
        assert_eq!(
            unkeyed_answer.try_recv().unwrap(),
            Inbound::Text("other".to_owned())
        );
        assert_eq!(router.len(), 0);
        assert!(
            router.raw.is_empty(),
            "the keyed waiter left its place in line"
        );
    }

    #[test]
    fn a_raw_waiter_whose_id_goes_unanswered_falls_back_to_arrival_order() {
        // A frame the server could not read is answered without its id.
        let mut router = Router::default();
        let (keyed, mut keyed_answer) = oneshot::channel();
        router.expect_raw(Some("k".to_owned()), keyed);
        assert!(router.deliver(None, Inbound::Text("bad frame".to_owned())));
        assert_eq!(
            keyed_answer.try_recv().unwrap(),
            Inbound::Text("bad frame".to_owned())
        );
        assert_eq!(router.len(), 0);
    }

    #[test]
    fn abandoned_waiters_are_skipped_and_swept_out() {
        let mut router = Router::default();
        let (abandoned_raw, abandoned_raw_answer) = oneshot::channel();
        let (live_raw, mut live_raw_answer) = oneshot::channel();
        router.expect_raw(None, abandoned_raw);
        router.expect_raw(None, live_raw);
        // The first raw caller timed out: the frame goes to the next one.
        drop(abandoned_raw_answer);
        assert!(router.deliver(None, Inbound::Text("x".to_owned())));
        assert_eq!(
            live_raw_answer.try_recv().unwrap(),
            Inbound::Text("x".to_owned())
        );

        // Many typed callers time out; the map does not keep all of them.
        let mut live = Vec::new();
        for n in 0..1_000 {
            let (reply, answer) = oneshot::channel();
            router.expect(format!("call-{n}"), reply);
            if n % 100 == 0 {
                live.push((n, answer));
            }
        }
        assert!(router.len() < 200, "{} waiters kept", router.len());
        for (n, mut answer) in live {
            let id = format!("call-{n}");
            assert!(router.deliver(Some(&id), success(&id, n)));
            assert_eq!(answer.try_recv().unwrap(), success(&id, n));
        }
    }
}
