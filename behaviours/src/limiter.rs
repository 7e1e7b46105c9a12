//! Rate limits: counts per key in fixed windows, with a bounded state. Written here rather
//! than taken from `governor`, whose keyed limiters grow with every key until pruned: a
//! limiter a stranger feeds keys must stay bounded by itself.
//!
//! A key costs an attacker what it costs to make: a PeerId costs nothing (a fresh key), an
//! address block ([`crate::ip_group::Group`]) does. So what strangers can repeat is counted by
//! block too (intro rule 3 counts an ask against the requester's block and its PeerId), and
//! every limiter holds at most [`MAX_TRACKED`] keys: a full one first forgets the keys whose
//! window has passed, then the one whose window began first. Fresh keys therefore lock nobody
//! out (they push out the oldest entries, at worst giving a key a fresh window early); what
//! they can still do is bounded by their block's count, which they share.
//!
//! Time is passed in (`now`), so the tests step it without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys one limiter tracks. Each entry is a key and a window (a few dozen bytes): 4,096 of
/// them are ~200 KiB at most per limiter, and as many requesters or IP groups as a
/// bootnode's connections hold at once by default.
pub const MAX_TRACKED: usize = 4096;

/// A limit of `count` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed per window.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// Counts events per key in fixed windows; at most `capacity` keys. See the module doc.
#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: Limit,
    capacity: usize,
    /// Each key's window: when it began and how many events it counted.
    seen: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A limiter of `limit` per key, tracking at most [`MAX_TRACKED`] keys.
    pub fn new(limit: Limit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED)
    }

    /// A limiter of `limit` per key, tracking at most `capacity` keys.
    pub fn with_capacity(limit: Limit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// Whether one more event of `key` fits, counting it if so.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        let window = self.limit.window;
        if !self.seen.contains_key(&key) && self.seen.len() >= self.capacity {
            self.seen
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if self.seen.len() >= self.capacity
                && let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
            }
        }
        let (start, n) = self.seen.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= window {
            (*start, *n) = (now, 0);
        }
        if *n >= self.limit.count {
            return false;
        }
        *n += 1;
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn limit(count: u32) -> Limit {
        Limit {
            count,
            window: MINUTE,
        }
    }

    #[test]
    fn a_key_gets_its_count_per_window_and_a_new_window_after() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(limit(2));
        assert!(limiter.allow(1, t0));
        assert!(limiter.allow(1, t0 + Duration::from_secs(1)));
        assert!(!limiter.allow(1, t0 + Duration::from_secs(59)), "the count");
        assert!(limiter.allow(2, t0), "another key has its own");
        assert!(limiter.allow(1, t0 + MINUTE), "the next window");
    }

    #[test]
    fn fresh_keys_push_out_the_oldest_entry_and_lock_no_one_out() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::with_capacity(limit(1), 3);
        for key in 0..3 {
            assert!(limiter.allow(key, t0 + Duration::from_secs(key)));
        }
        // Full, nothing expired: a new key still gets its count, and the oldest goes.
        for fresh in 100..110 {
            assert!(limiter.allow(fresh, t0 + Duration::from_secs(5)));
            assert_eq!(limiter.len(), 3, "bounded");
        }
        assert!(limiter.allow(0, t0 + Duration::from_secs(6)), "forgotten");
    }

    #[test]
    fn a_full_limiter_forgets_passed_windows_first() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::with_capacity(limit(1), 2);
        assert!(limiter.allow(1, t0));
        assert!(limiter.allow(2, t0 + Duration::from_secs(30)));
        // Key 1's window has passed: it goes, key 2 (still limited) stays.
        assert!(limiter.allow(3, t0 + Duration::from_secs(61)));
        assert!(!limiter.allow(2, t0 + Duration::from_secs(62)));
    }
}
