//! The introductions' rate limits: counts per key in fixed windows, with a bounded state, and
//! the IP groups a bootnode counts requesters by.
//!
//! A key costs an attacker what it costs to make: a PeerId costs nothing (a fresh key), an IP
//! group costs an address block. So a bootnode counts an ask against both the requester's
//! [`IpGroup`] and its PeerId (intro rule 3), and every limiter holds at most
//! [`MAX_TRACKED`] keys: a full one first forgets the keys whose window has passed, then the
//! one whose window began first. Fresh keys therefore lock nobody out (they push out the
//! oldest entries, at worst giving a peer a fresh window early); what they can still do is
//! bounded by their IP group's count, which they share.
//!
//! Time is passed in (`now`), so the tests step it without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Keys one limiter tracks. Each entry is a key and a window (a few dozen bytes): 4,096 of
/// them are ~200 KiB at most per limiter, and as many requesters or IP groups as a
/// bootnode's connections hold at once by default.
pub(super) const MAX_TRACKED: usize = 4096;

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
pub(super) struct RateLimiter<K> {
    limit: Limit,
    capacity: usize,
    /// Each key's window: when it began and how many events it counted.
    seen: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    pub(super) fn new(limit: Limit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED)
    }

    fn with_capacity(limit: Limit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// Whether one more event of `key` fits, counting it if so.
    pub(super) fn allow(&mut self, key: K, now: Instant) -> bool {
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

/// The address block a requester is counted by: an IPv4 /24 or an IPv6 /64 (what one
/// customer or one host typically holds), or none for a requester seen over no direct
/// connection (relayed only), all of which share one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum IpGroup {
    /// The first three octets.
    V4([u8; 3]),
    /// The first eight octets.
    V6([u8; 8]),
    /// No IP seen.
    Unseen,
}

impl IpGroup {
    /// The group of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub(super) fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                IpGroup::V4([a, b, c])
            }
            Some(IpAddr::V6(v6)) => {
                let o = v6.octets();
                IpGroup::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
            None => IpGroup::Unseen,
        }
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

    #[test]
    fn requesters_are_grouped_by_slash_24_and_slash_64() {
        let group = |s: &str| IpGroup::of(Some(s.parse().unwrap()));
        assert_eq!(group("198.51.100.7"), group("198.51.100.200"));
        assert_ne!(group("198.51.100.7"), group("198.51.101.7"));
        assert_eq!(group("2001:db8:1:2::1"), group("2001:db8:1:2:ffff::9"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(
            group("::ffff:198.51.100.9"),
            group("198.51.100.7"),
            "v4-mapped"
        );
        assert_eq!(IpGroup::of(None), IpGroup::Unseen);
    }
}
