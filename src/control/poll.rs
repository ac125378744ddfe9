//! Slow-poll detection: how long each poll of a child's future blocks its
//! thread, for a child inserted with a slow-poll threshold
//! ([`ChildOptions::slow_poll`](crate::ChildOptions::slow_poll)).
//!
//! The child's task measures each poll with `std::time::Instant` (a thread
//! that blocks does not advance tokio's paused clock, and blocking is what
//! this is about) and writes when the poll began into one atomic word, so
//! that the manager's loop and snapshots on other threads can see a poll
//! that is blocking right now. Everything is `Relaxed`: the values are
//! measurements read for reports, and nothing else is published through
//! them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One child's slow-poll threshold and what was measured against it, over
/// all its attempts.
#[derive(Debug)]
pub(crate) struct PollWatch {
    threshold: Duration,
    /// What `polling_since` counts from.
    base: Instant,
    /// Nanoseconds from `base` to the start of the poll running now, plus
    /// one; 0 between polls.
    polling_since: AtomicU64,
    slow_polls: AtomicU64,
    /// The longest slow poll, in nanoseconds (0: none yet).
    longest: AtomicU64,
    /// How long the poll had blocked when the manager aborted the child, in
    /// nanoseconds (0: it was not blocking then); taken by the failure.
    blocked_at_abort: AtomicU64,
}

impl PollWatch {
    pub(crate) fn new(threshold: Duration) -> Self {
        PollWatch {
            threshold,
            base: Instant::now(),
            polling_since: AtomicU64::new(0),
            slow_polls: AtomicU64::new(0),
            longest: AtomicU64::new(0),
            blocked_at_abort: AtomicU64::new(0),
        }
    }

    pub(crate) fn threshold(&self) -> Duration {
        self.threshold
    }

    /// A poll begins; returns when, for [`leave`](PollWatch::leave).
    pub(crate) fn enter(&self) -> Instant {
        let now = Instant::now();
        self.polling_since
            .store(nanos(now - self.base).saturating_add(1), Ordering::Relaxed);
        now
    }

    /// The poll that began at `began` has returned; how long it took if that
    /// was longer than the threshold.
    pub(crate) fn leave(&self, began: Instant) -> Option<Duration> {
        let took = began.elapsed();
        self.polling_since.store(0, Ordering::Relaxed);
        if took <= self.threshold {
            return None;
        }
        self.slow_polls.fetch_add(1, Ordering::Relaxed);
        self.longest.fetch_max(nanos(took), Ordering::Relaxed);
        Some(took)
    }

    /// How long the poll running now has blocked, if longer than the
    /// threshold.
    pub(crate) fn blocking(&self) -> Option<Duration> {
        let since = self.polling_since.load(Ordering::Relaxed).checked_sub(1)?;
        let blocked = self
            .base
            .elapsed()
            .saturating_sub(Duration::from_nanos(since));
        (blocked > self.threshold).then_some(blocked)
    }

    /// The manager aborts the child: remembers whether a poll over the
    /// threshold held its thread at that moment (so the abort waits for it).
    pub(crate) fn note_abort(&self) {
        let blocked = self.blocking().map_or(0, nanos);
        self.blocked_at_abort.store(blocked, Ordering::Relaxed);
    }

    /// What [`note_abort`](PollWatch::note_abort) saw, once.
    pub(crate) fn take_blocked_at_abort(&self) -> Option<Duration> {
        match self.blocked_at_abort.swap(0, Ordering::Relaxed) {
            0 => None,
            blocked => Some(Duration::from_nanos(blocked)),
        }
    }

    /// How many polls took longer than the threshold, and the longest.
    pub(crate) fn slow_polls(&self) -> (u64, Option<Duration>) {
        let longest = self.longest.load(Ordering::Relaxed);
        (
            self.slow_polls.load(Ordering::Relaxed),
            (longest > 0).then(|| Duration::from_nanos(longest)),
        )
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
