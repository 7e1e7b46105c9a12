//! What a load run hears as it goes: the bootnodes' event streams, counted ([`Tally`]), and the
//! simulated peers' reports, kept ([`Reported`]).
//!
//! Separate from `main.rs`, which drives the phases and prints the tables: this is only the
//! bookkeeping both read from, shared with the tasks that follow each bootnode's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::PeerId;
use peerfind_behaviours::intro;
use peerfind_proto::v1 as pb;
use peerfind_tests::sim::Report;
use tokio::sync::mpsc;

/// What the bootnode's event stream said, counted.
#[derive(Clone, Default)]
pub(crate) struct Tally {
    inner: Arc<Mutex<TallyInner>>,
    notify: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct TallyInner {
    /// When the bootnode first held each peer's record with an address.
    joined: HashMap<PeerId, Instant>,
    updates: u64,
    served: u64,
    missed: u64,
}

impl Tally {
    pub(crate) async fn follow(self, mut events: tonic::Streaming<pb::Event>) {
        while let Some(Ok(event)) = events.next().await {
            let now = Instant::now();
            {
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                match event.kind {
                    Some(pb::event::Kind::RecordUpdated(u)) => {
                        inner.updates += 1;
                        if let Ok(peer) = u.peer_id.parse() {
                            inner.joined.entry(peer).or_insert(now);
                        }
                    }
                    // A simulated peer's first record (seq 1) has no address; one whose first
                    // record to arrive is already a later one (the first was overtaken) has
                    // joined as well.
                    Some(pb::event::Kind::RecordLearned(l)) if l.seq >= 2 => {
                        if let Ok(peer) = l.peer_id.parse() {
                            inner.joined.entry(peer).or_insert(now);
                        }
                    }
                    Some(pb::event::Kind::IntroductionServed(_)) => inner.served += 1,
                    Some(pb::event::Kind::Lagged(l)) => inner.missed += l.missed,
                    _ => {}
                }
            }
            self.notify.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TallyInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn joined(&self, dialed: &HashMap<PeerId, Instant>) -> usize {
        let inner = self.lock();
        dialed
            .keys()
            .filter(|p| inner.joined.contains_key(p))
            .count()
    }

    pub(crate) fn join_times(&self, dialed: &HashMap<PeerId, Instant>) -> Vec<Duration> {
        let inner = self.lock();
        let mut times: Vec<Duration> = dialed
            .iter()
            .filter_map(|(p, at)| {
                inner
                    .joined
                    .get(p)
                    .map(|j| j.saturating_duration_since(*at))
            })
            .collect();
        times.sort();
        times
    }

    pub(crate) fn updates(&self) -> u64 {
        let inner = self.lock();
        inner.updates + inner.missed
    }

    pub(crate) fn served(&self) -> u64 {
        self.lock().served
    }

    pub(crate) fn missed(&self) -> u64 {
        self.lock().missed
    }

    /// Returns at the next event, or after a short while if none comes.
    pub(crate) async fn changed(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.notify.notified()).await;
    }
}

/// Everything the simulated peers reported, kept.
#[derive(Default)]
pub(crate) struct Reported {
    pub(crate) dialed_at: HashMap<PeerId, Instant>,
    pub(crate) failures: Vec<String>,
    pub(crate) retried: Vec<String>,
    pub(crate) answers: Vec<intro::Outcome>,
}

impl Reported {
    fn keep(&mut self, report: Report) {
        match report {
            Report::Dialing { peer, at } => {
                self.dialed_at.insert(peer, at);
            }
            Report::Failed { reason } => self.failures.push(reason),
            Report::Retried { reason } => self.retried.push(reason),
            Report::Answered { outcome } => self.answers.push(outcome),
        }
    }

    /// Keeps what has arrived, without waiting.
    pub(crate) fn drain(&mut self, reports: &mut mpsc::Receiver<Report>) {
        while let Ok(report) = reports.try_recv() {
            self.keep(report);
        }
    }

    /// Keeps what arrives within a short while.
    pub(crate) async fn wait(&mut self, reports: &mut mpsc::Receiver<Report>) {
        if let Ok(Some(report)) =
            tokio::time::timeout(Duration::from_millis(100), reports.recv()).await
        {
            self.keep(report);
        }
        self.drain(reports);
    }
}
