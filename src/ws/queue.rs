//! The per-connection inbound priority queue.
//!
//! A session reads frames off its socket, parses them into requests and queues them here; a worker
//! drains the queue highest priority first. The queue is why an `authenticate` or a `ping` is
//! never stuck behind a burst of bulk writes from the same connection, and why one connection can
//! only ever hold a bounded amount of work in memory.
//!
//! It is a plain synchronous data structure with no knowledge of sockets or tasks: the session owns
//! one per connection and drives it from a single task, so there is no locking here. The admission
//! policy, in terms of what the caller has to do:
//!
//! - [`Admission::Queued`]: nothing to do.
//! - [`Admission::QueuedAboveHighWater`]: the depth just reached the high-water mark, so send
//!   one `backpressure` notification. It is reported once per crossing: the mark re-arms only
//!   after the depth has fallen to the low-water mark, so a depth hovering around the mark does
//!   not flood the client with notifications.
//! - [`Admission::Refused`]: the queue is full and the request is sheddable (`Low`,
//!   `Background`), so answer it with `OVERLOADED` right away.
//! - [`Admission::Full`]: the queue is full and the request matters (`Critical`, `High`,
//!   `Normal`), so hold on to it and stop reading from the socket until
//!   [`PriorityQueue::has_room`]. TCP flow control then slows the client down instead of the
//!   server dropping its writes.
//!
//! Memory: an idle connection has a budget of a few KiB, so an empty queue owns no heap memory.
//! Each level's buffer is allocated on its first push and all buffers are released when the queue
//! drains, rather than keeping the high-water footprint of the last burst for the life of the
//! connection.

use std::collections::VecDeque;

use petstore_api::ws::Priority;

/// The number of priority levels: one buffer each, indexed by [`Priority::index`] so that index 0
/// (`Critical`) drains first.
const LEVELS: usize = Priority::ALL.len();

/// The outcome of [`PriorityQueue::push`]. The item comes back when it was not queued, so nothing
/// is ever lost silently.
#[must_use = "a refused or held-back item must be answered or retried"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<T> {
    /// Queued.
    Queued,
    /// Queued, and the depth has just reached the high-water mark: tell the client once.
    QueuedAboveHighWater,
    /// Not queued: full, and the item is `Low` or `Background`. Answer it with `OVERLOADED`.
    Refused(T),
    /// Not queued: full, and the item is `Critical`, `High` or `Normal`. Keep it and stop reading
    /// until [`PriorityQueue::has_room`], then push it again.
    Full(T),
}

impl<T> Admission<T> {
    /// Whether the item went into the queue.
    pub fn is_queued(&self) -> bool {
        matches!(self, Self::Queued | Self::QueuedAboveHighWater)
    }

    /// The item handed back, if it was not queued.
    pub fn into_item(self) -> Option<T> {
        match self {
            Self::Queued | Self::QueuedAboveHighWater => None,
            Self::Refused(item) | Self::Full(item) => Some(item),
        }
    }
}

/// A bounded queue that pops the highest priority first and keeps arrival order within a
/// priority. See the [module documentation](self) for the admission policy.
#[derive(Debug)]
pub struct PriorityQueue<T> {
    /// One FIFO per priority, `Critical` first. `VecDeque::new` does not allocate.
    levels: [VecDeque<T>; LEVELS],
    /// Items across all levels.
    len: usize,
    capacity: usize,
    high_water: usize,
    low_water: usize,
    /// The high-water crossing has been reported and not yet re-armed.
    above_high_water: bool,
}

impl<T> PriorityQueue<T> {
    /// A queue holding at most `capacity` items that reports reaching `high_water` items.
    ///
    /// Degenerate limits are clamped rather than rejected, since they come from configuration
    /// that has already been validated: the capacity is at least 1 and the high-water mark lies
    /// in `1..=capacity`. The low-water mark, where the high-water report re-arms, is half the
    /// high-water mark.
    pub fn new(capacity: usize, high_water: usize) -> Self {
        let capacity = capacity.max(1);
        let high_water = high_water.clamp(1, capacity);
        Self {
            levels: Default::default(),
            len: 0,
            capacity,
            high_water,
            low_water: high_water / 2,
            above_high_water: false,
        }
    }

    /// Queues `item` at `priority`, or hands it back when the queue is full.
    pub fn push(&mut self, priority: Priority, item: T) -> Admission<T> {
        if !self.has_room() {
            return if priority.is_sheddable() {
                Admission::Refused(item)
            } else {
                Admission::Full(item)
            };
        }
        self.levels[priority.index()].push_back(item);
        self.len += 1;
        if !self.above_high_water && self.len >= self.high_water {
            self.above_high_water = true;
            Admission::QueuedAboveHighWater
        } else {
            Admission::Queued
        }
    }

    /// The oldest item of the highest priority present, with that priority.
    pub fn pop(&mut self) -> Option<(Priority, T)> {
        let (level, item) = self
            .levels
            .iter_mut()
            .enumerate()
            .find_map(|(level, items)| items.pop_front().map(|item| (level, item)))?;
        self.len -= 1;
        if self.len <= self.low_water {
            self.above_high_water = false;
        }
        if self.len == 0 {
            self.release();
        }
        // The level is the priority's index: no need to store the priority with every item.
        Some((Priority::ALL[level], item))
    }

    /// Items queued, across all priorities.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items queued at one priority.
    pub fn len_of(&self, priority: Priority) -> usize {
        self.levels[priority.index()].len()
    }

    /// Whether a push would be accepted: a caller holding a [`Admission::Full`] item resumes
    /// reading once this is true.
    pub fn has_room(&self) -> bool {
        self.len < self.capacity
    }

    /// Whether the high-water crossing has been reported and the depth has not yet fallen back to
    /// the low-water mark.
    pub fn is_above_high_water(&self) -> bool {
        self.above_high_water
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The depth whose reaching is reported by [`Admission::QueuedAboveHighWater`].
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// The depth at or below which the high-water report re-arms.
    pub fn low_water(&self) -> usize {
        self.low_water
    }

    /// Gives the buffers of an empty queue back to the allocator.
    fn release(&mut self) {
        for items in &mut self.levels {
            if items.capacity() > 0 {
                *items = VecDeque::new();
            }
        }
    }

    /// Slots allocated across all levels, for the tests of the idle footprint.
    #[cfg(test)]
    fn allocated_slots(&self) -> usize {
        self.levels.iter().map(VecDeque::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Priority; LEVELS] = Priority::ALL;

    fn drain<T>(queue: &mut PriorityQueue<T>) -> Vec<(Priority, T)> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn pops_the_highest_priority_first() {
        let mut queue = PriorityQueue::new(16, 16);
        // Pushed lowest first, so arrival order is the opposite of the expected pop order.
        for (n, priority) in ALL.iter().rev().enumerate() {
            assert!(queue.push(*priority, n).is_queued());
        }
        let popped: Vec<Priority> = drain(&mut queue).into_iter().map(|(p, _)| p).collect();
        assert_eq!(popped, ALL);
        assert!(queue.is_empty());
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_later_higher_priority_overtakes_queued_lower_ones() {
        let mut queue = PriorityQueue::new(16, 16);
        assert!(queue.push(Priority::Low, "bulk-1").is_queued());
        assert!(queue.push(Priority::Normal, "read").is_queued());
        assert_eq!(queue.pop(), Some((Priority::Normal, "read")));
        assert!(queue.push(Priority::Critical, "ping").is_queued());
        assert!(queue.push(Priority::Low, "bulk-2").is_queued());
        assert_eq!(
            drain(&mut queue),
            vec![
                (Priority::Critical, "ping"),
                (Priority::Low, "bulk-1"),
                (Priority::Low, "bulk-2"),
            ]
        );
    }

    #[test]
    fn keeps_arrival_order_within_a_level() {
        let mut queue = PriorityQueue::new(64, 64);
        // Interleave two levels so that FIFO order has to hold per level, not just overall.
        for n in 0..20 {
            let priority = if n % 3 == 0 {
                Priority::High
            } else {
                Priority::Normal
            };
            assert!(queue.push(priority, n).is_queued());
        }
        let popped = drain(&mut queue);
        let high: Vec<i32> = popped
            .iter()
            .filter(|(p, _)| *p == Priority::High)
            .map(|(_, n)| *n)
            .collect();
        let normal: Vec<i32> = popped
            .iter()
            .filter(|(p, _)| *p == Priority::Normal)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(high, (0..20).filter(|n| n % 3 == 0).collect::<Vec<_>>());
        assert_eq!(normal, (0..20).filter(|n| n % 3 != 0).collect::<Vec<_>>());
        // And every High came out before every Normal.
        assert!(
            popped[..high.len()]
                .iter()
                .all(|(p, _)| *p == Priority::High)
        );
    }

    #[test]
    fn reports_the_high_water_crossing_once_until_the_low_water_mark() {
        let mut queue = PriorityQueue::new(10, 4);
        assert_eq!(queue.low_water(), 2);
        for n in 0..3 {
            assert_eq!(queue.push(Priority::Normal, n), Admission::Queued);
        }
        assert!(!queue.is_above_high_water());
        assert_eq!(
            queue.push(Priority::Normal, 3),
            Admission::QueuedAboveHighWater
        );
        assert!(queue.is_above_high_water());
        // Deeper: no second report.
        assert_eq!(queue.push(Priority::Normal, 4), Admission::Queued);
        // Hovering around the mark: 5 → 3 → 4 → 5 stays silent, 3 is above the low-water mark.
        queue.pop();
        queue.pop();
        assert_eq!(queue.len(), 3);
        assert!(queue.is_above_high_water());
        assert_eq!(queue.push(Priority::Normal, 5), Admission::Queued);
        assert_eq!(queue.push(Priority::Normal, 6), Admission::Queued);
        // Down to the low-water mark re-arms ...
        while queue.len() > 2 {
            queue.pop();
        }
        assert!(!queue.is_above_high_water());
        // ... so the next crossing is reported again, once.
        assert_eq!(queue.push(Priority::Normal, 7), Admission::Queued);
        assert_eq!(
            queue.push(Priority::Normal, 8),
            Admission::QueuedAboveHighWater
        );
        assert_eq!(queue.push(Priority::Normal, 9), Admission::Queued);
    }

    #[test]
    fn refuses_sheddable_work_when_full_and_holds_back_the_rest() {
        let mut queue = PriorityQueue::new(3, 3);
        for n in 0..3 {
            assert!(queue.push(Priority::Background, n).is_queued());
        }
        assert!(!queue.has_room());
        assert_eq!(queue.push(Priority::Low, 10), Admission::Refused(10));
        assert_eq!(queue.push(Priority::Background, 11), Admission::Refused(11));
        assert_eq!(queue.push(Priority::Normal, 12), Admission::Full(12));
        assert_eq!(queue.push(Priority::High, 13), Admission::Full(13));
        assert_eq!(queue.push(Priority::Critical, 14), Admission::Full(14));
        assert_eq!(queue.len(), 3, "nothing handed back went in");

        // One pop makes room, and the held-back item goes in on the retry.
        assert_eq!(queue.pop(), Some((Priority::Background, 0)));
        assert!(queue.has_room());
        assert!(queue.push(Priority::Critical, 14).is_queued());
        assert_eq!(queue.pop(), Some((Priority::Critical, 14)));
    }

    #[test]
    fn every_item_is_either_popped_or_handed_back() {
        let mut queue = PriorityQueue::new(8, 6);
        let mut handed_back = Vec::new();
        let mut popped = Vec::new();
        for n in 0..100u32 {
            let priority = ALL[(n % 5) as usize];
            if let Some(item) = queue.push(priority, n).into_item() {
                handed_back.push(item);
            }
            if n % 4 == 0 {
                popped.extend(queue.pop().map(|(_, item)| item));
            }
        }
        popped.extend(drain(&mut queue).into_iter().map(|(_, item)| item));
        assert!(
            !handed_back.is_empty(),
            "the test must actually fill the queue"
        );
        let mut all: Vec<u32> = popped.into_iter().chain(handed_back).collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    /// A deterministic xorshift generator: reproducible sequences without a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Random pushes and pops against a naive model: the model scans all items for the best one,
    /// so it shares no code or structure with the queue.
    #[test]
    fn random_sequences_keep_the_invariants() {
        // Per outcome (queued, queued above high water, refused, full): how often it happened.
        let mut outcomes = [0usize; 4];
        for seed in 1..=50u64 {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed);
            let capacity = 1 + (rng.next() % 24) as usize;
            let high_water = 1 + (rng.next() % capacity as u64) as usize;
            let mut queue = PriorityQueue::new(capacity, high_water);
            // (priority level, sequence number), in arrival order.
            let mut model: Vec<(usize, u64)> = Vec::new();
            let mut armed = true;

            for step in 0..2_000u64 {
                // Bias towards pushes on some seeds and pops on others so both full and empty
                // queues get exercised.
                let push = rng.next() % 100 < 40 + seed % 30;
                if push {
                    let level = (rng.next() % LEVELS as u64) as usize;
                    let admission = queue.push(ALL[level], step);
                    if model.len() < capacity {
                        model.push((level, step));
                        if armed && model.len() >= high_water {
                            armed = false;
                            assert_eq!(admission, Admission::QueuedAboveHighWater, "seed {seed}");
                            outcomes[1] += 1;
                        } else {
                            assert_eq!(admission, Admission::Queued, "seed {seed}");
                            outcomes[0] += 1;
                        }
                    } else if level >= 3 {
                        assert_eq!(admission, Admission::Refused(step), "seed {seed}");
                        outcomes[2] += 1;
                    } else {
                        assert_eq!(admission, Admission::Full(step), "seed {seed}");
                        outcomes[3] += 1;
                    }
                } else {
                    let best = model
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (level, seq))| (*level, *seq))
                        .map(|(index, _)| index);
                    let expected = best.map(|index| {
                        let (level, seq) = model.remove(index);
                        (ALL[level], seq)
                    });
                    assert_eq!(queue.pop(), expected, "seed {seed}");
                    if model.len() <= high_water / 2 {
                        armed = true;
                    }
                }

                assert_eq!(queue.len(), model.len(), "seed {seed}");
                assert!(queue.len() <= capacity, "seed {seed}");
                assert_eq!(queue.is_empty(), model.is_empty(), "seed {seed}");
                assert_eq!(queue.has_room(), model.len() < capacity, "seed {seed}");
                assert_eq!(queue.is_above_high_water(), !armed, "seed {seed}");
                for (level, priority) in ALL.iter().enumerate() {
                    let in_model = model.iter().filter(|(l, _)| *l == level).count();
                    assert_eq!(queue.len_of(*priority), in_model, "seed {seed}");
                }
                if queue.is_empty() {
                    assert_eq!(queue.allocated_slots(), 0, "seed {seed}");
                }
            }
        }
        // The sequences must have reached every branch, or they checked less than they claim.
        assert!(
            outcomes.iter().all(|count| *count > 0),
            "outcomes: {outcomes:?}"
        );
    }

    #[test]
    fn an_empty_queue_owns_no_heap_memory() {
        let mut queue: PriorityQueue<u64> = PriorityQueue::new(1024, 512);
        assert_eq!(queue.allocated_slots(), 0);

        // A burst across every level allocates ...
        for n in 0..500u64 {
            assert!(queue.push(ALL[(n % 5) as usize], n).is_queued());
        }
        assert!(queue.allocated_slots() >= 500);
        // ... and draining gives it all back.
        while queue.len() > 1 {
            queue.pop();
        }
        assert!(
            queue.allocated_slots() > 0,
            "a non-empty queue keeps its buffers"
        );
        queue.pop();
        assert!(queue.is_empty());
        assert_eq!(queue.allocated_slots(), 0);
    }

    #[test]
    fn clamps_degenerate_limits() {
        let queue: PriorityQueue<()> = PriorityQueue::new(0, 0);
        assert_eq!(
            (queue.capacity(), queue.high_water(), queue.low_water()),
            (1, 1, 0)
        );
        let queue: PriorityQueue<()> = PriorityQueue::new(8, 100);
        assert_eq!(
            (queue.capacity(), queue.high_water(), queue.low_water()),
            (8, 8, 4)
        );
    }

    #[test]
    fn a_single_slot_queue_still_works() {
        let mut queue = PriorityQueue::new(1, 1);
        assert_eq!(
            queue.push(Priority::Normal, 'a'),
            Admission::QueuedAboveHighWater
        );
        assert_eq!(queue.push(Priority::Critical, 'b'), Admission::Full('b'));
        assert_eq!(queue.pop(), Some((Priority::Normal, 'a')));
        assert!(!queue.is_above_high_water());
        assert_eq!(
            queue.push(Priority::Critical, 'b'),
            Admission::QueuedAboveHighWater
        );
    }
}
