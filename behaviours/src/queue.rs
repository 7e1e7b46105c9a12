//! A FIFO queue with a cap, for events that remote peers cause faster than they may be taken.
//!
//! Rules:
//! 1. Below the cap, a pushed item is kept and comes out in order.
//! 2. At the cap, pushing drops the oldest item and counts it: newer events carry newer state,
//!    and a queue a remote can fill must not grow without bound.

use std::collections::VecDeque;

/// Events a behaviour keeps for the swarm. The swarm polls a behaviour for its events before
/// anything else and takes one per poll, so the queue is near empty in a running node; the cap
/// only bounds what remote peers could pile up behind a stalled consumer (1,024 events of a
/// few hundred bytes each: well under a megabyte).
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// A FIFO queue of at most `cap` items (see the module doc).
#[derive(Debug, Clone)]
pub struct Bounded<T> {
    items: VecDeque<T>,
    cap: usize,
    dropped: u64,
}

impl<T> Bounded<T> {
    /// An empty queue of at most `cap` items (at least 1).
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Adds `item` at the back; at the cap, drops the oldest first (rule 2).
    pub fn push_back(&mut self, item: T) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
            self.dropped += 1;
            tracing::debug!(
                cap = self.cap,
                dropped = self.dropped,
                "event queue full: dropped the oldest"
            );
        }
        self.items.push_back(item);
    }

    /// Takes the oldest item.
    pub fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// How many items are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many items were dropped at the cap so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_below_the_cap_and_drops_the_oldest_at_it() {
        let mut q = Bounded::new(3);
        for i in 0..3 {
            q.push_back(i);
        }
        assert_eq!((q.len(), q.dropped()), (3, 0));
        q.push_back(3);
        q.push_back(4);
        assert_eq!((q.len(), q.dropped()), (3, 2));
        assert_eq!(
            std::iter::from_fn(|| q.pop_front()).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(q.is_empty());
    }
}
