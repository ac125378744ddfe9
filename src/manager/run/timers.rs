//! Timers: grace deadlines, restarts, start timeouts and liveness checks
//! share one min-heap, and the manager's stop deadline sits in its phase.
//!
//! An entry names its child by key and by the record's epoch, which counts
//! the child's stage changes: an entry set in an earlier stage, or for a
//! child that has ended, is void and skipped when it comes due. So that void
//! entries never pile up (a one-hour grace period for children that stop at
//! once), the heap is swept whenever it has doubled since the last sweep,
//! or has grown past four entries per record, which is what a burst of
//! children that have ended leaves. A child usually has one to three valid
//! entries (its grace, its start timeout, a restart or liveness check), but
//! its grace can be armed more than once in one stage (by its handle's stop,
//! then by its group's or its manager's), so the second rule also waits
//! for a quarter of the heap's size in ends or timer turns since the last
//! sweep: a heap that stays above four valid entries per record is not
//! swept on every event. Its size stays proportional to the live children,
//! at O(1) amortized cost, and its capacity follows its size down the same
//! way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::Run;
use super::end::Ending;
use super::start::RestartDue;
use super::stop::AbortCause;
use crate::control::{ChildKey, Context};
use crate::manager::registry::{Phase, Record, Registry, Stage};

/// What a timer does when it fires; the order breaks ties between timers
/// due at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// Abort the child: its grace period is over.
    Abort,
    /// Abort the child: it was not ready within the start timeout.
    StartTimeout,
    /// Start the child's next attempt.
    Restart,
    /// Check that the child has sent a heartbeat recently enough.
    Liveness,
}

/// When, what, for which child, and in which of its stages. `rank` orders
/// timers due together (a group's restarts follow the members' start
/// order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    kind: TimerKind,
    rank: u64,
    slot: usize,
    id: u64,
    epoch: u32,
}

pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    /// The heap's size after the last sweep.
    swept: usize,
    /// Calls of [`sweep`](Timers::sweep) since the heap was last swept: one
    /// per final end and per timer turn.
    since_sweep: usize,
    /// How many times the heap was swept.
    #[cfg(test)]
    sweeps: usize,
}

impl Timers {
    pub(super) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            swept: 0,
            since_sweep: 0,
            #[cfg(test)]
            sweeps: 0,
        }
    }

    /// Sets a timer for the record's current stage.
    pub(super) fn set(&mut self, at: Instant, kind: TimerKind, record: &Record) {
        self.set_ranked(at, kind, 0, record);
    }

    pub(super) fn set_ranked(&mut self, at: Instant, kind: TimerKind, rank: u64, record: &Record) {
        let key = record.key();
        self.heap.push(Reverse(Timer {
            at,
            kind,
            rank,
            slot: key.slot,
            id: key.id,
            epoch: record.epoch(),
        }));
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(timer)| timer.at)
    }

    /// The next timer due by `now` that is still valid for its record.
    fn pop_due(&mut self, now: Instant, registry: &Registry) -> Option<(TimerKind, ChildKey)> {
        while let Some(&Reverse(timer)) = self.heap.peek() {
            if timer.at > now {
                return None;
            }
            self.heap.pop();
            let key = ChildKey {
                slot: timer.slot,
                id: timer.id,
            };
            self.swept = self.swept.min(self.heap.len());
            if registry
                .get(key)
                .is_some_and(|record| record.epoch() == timer.epoch)
            {
                return Some((timer.kind, key));
            }
        }
        None
    }

    /// Drops void entries once the heap has doubled since the last sweep or
    /// holds more than four entries per record (and a quarter of its size
    /// in calls have passed since the last sweep), and gives back capacity
    /// beyond four times its size.
    pub(super) fn sweep(&mut self, registry: &Registry) {
        let len = self.heap.len();
        self.since_sweep += 1;
        let doubled = len > 2 * self.swept + 64;
        let crowded = len > 4 * registry.record_count() + 64 && self.since_sweep >= len / 4;
        if doubled || crowded {
            self.since_sweep = 0;
            #[cfg(test)]
            {
                self.sweeps += 1;
            }
            self.heap.retain(|Reverse(timer)| {
                registry
                    .get(ChildKey {
                        slot: timer.slot,
                        id: timer.id,
                    })
                    .is_some_and(|record| record.epoch() == timer.epoch)
            });
            self.swept = self.heap.len();
        }
        // Timers that fire leave room behind too, not only void entries.
        if self.heap.capacity() > 4 * self.heap.len() + 64 {
            self.heap.shrink_to(2 * self.heap.len());
        }
    }
}

/// `now + duration`, or far in the future when that does not fit in an
/// `Instant` (a grace period of `Duration::MAX` means "never abort").
pub(super) fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(60 * 60 * 24 * 365 * 30)))
        .unwrap_or(now)
}

impl Run<'_> {
    /// The next instant the loop must wake for.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let stop = match self.phase {
            Phase::Stopping { deadline, .. } => deadline,
            Phase::Draining { until } => Some(until),
            _ => None,
        };
        match (stop, self.timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does what the timers due by `now` say; a drain that is over begins
    /// the stop.
    pub(super) fn timers_due(&mut self, now: Instant, parent: Option<&Context>) {
        if let Phase::Draining { until } = self.phase {
            if until <= now {
                self.begin_stop(parent);
            }
        }
        if let Phase::Stopping {
            deadline: Some(at),
            forced,
        } = self.phase
        {
            if at <= now {
                self.enter(Phase::Stopping {
                    deadline: None,
                    forced,
                });
                self.abort_late_children();
            }
        }
        // Restarts with something left to do after the lock; kept between
        // calls, so that a restart allocates nothing.
        let mut restarts = std::mem::take(&mut self.restarts_due);
        {
            let mut guard = self.shared.registry();
            let registry = &mut *guard;
            while let Some((kind, key)) = self.timers.pop_due(now, registry) {
                let Some(record) = registry.get_mut(key) else {
                    continue;
                };
                match (kind, record.stage()) {
                    (TimerKind::Abort, Stage::Running(_)) => {
                        let grace = self.grace_of(record);
                        self.abort(record, AbortCause::Grace(grace));
                    }
                    (TimerKind::StartTimeout, Stage::Running(_))
                        if !self.phase.is_stopping()
                            && self.awaiting_ready == Some(key)
                            && !record.core.is_ready() =>
                    {
                        self.awaiting_ready = None;
                        let timeout = self.shared.settings.ordered_start.unwrap_or_default();
                        self.abort(record, AbortCause::StartTimeout(timeout));
                    }
                    // A child asked to stop has its grace period instead.
                    (TimerKind::Liveness, Stage::Running(_))
                        if !self.phase.is_stopping() && !record.stopping() =>
                    {
                        let stale_after = record.core.stale_after().unwrap_or_default();
                        let since = record.core.since_beat(self.scope.started);
                        if since >= stale_after {
                            self.abort(record, AbortCause::Wedged(stale_after));
                        } else {
                            // Due again when the last beat goes stale.
                            self.timers.set(
                                later(now, stale_after - since),
                                TimerKind::Liveness,
                                record,
                            );
                        }
                    }
                    (TimerKind::Restart, Stage::Backoff { .. }) if !self.phase.is_stopping() => {
                        match self.restart_due(record, now) {
                            RestartDue::Started { in_group: false } => {}
                            due => restarts.push((key, due)),
                        }
                    }
                    _ => {}
                }
            }
            // Attempts that restart leave void entries too, not only ends.
            self.timers.sweep(registry);
        }
        // After the lock: what follows a final end, and a group restart
        // that is over once its members run again.
        for (key, restart) in restarts.drain(..) {
            match restart {
                RestartDue::Stopped => self.end_child(key, Ending::Waiting),
                RestartDue::Started { in_group: true } => self.left_group_backoff(),
                RestartDue::Started { in_group: false } => {}
            }
        }
        if restarts.capacity() <= 1024 {
            self.restarts_due = restarts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::registry::tests::admit;

    /// Sets `count` timers, one per key in turn.
    fn set(timers: &mut Timers, registry: &Registry, keys: &[ChildKey], count: usize) {
        let now = Instant::now();
        for &key in keys.iter().cycle().take(count) {
            let record = registry.get(key).expect("live");
            timers.set(now, TimerKind::Restart, record);
        }
    }

    #[test]
    fn void_entries_are_swept_once_the_heap_has_doubled() {
        let mut registry = crate::manager::registry::tests::registry(false);
        let keys: Vec<ChildKey> = (0..200)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let mut timers = Timers::new();
        set(&mut timers, &registry, &keys, 200);
        timers.sweep(&registry);
        assert_eq!(timers.heap.len(), 200, "nothing void");
        // A hundred entries go void; the heap grows to 350, not twice 200
        // (and 64) yet.
        for &key in &keys[..100] {
            assert!(registry.end(key, false).is_some());
        }
        let live = &keys[100..];
        set(&mut timers, &registry, live, 150);
        timers.sweep(&registry);
        assert_eq!(timers.heap.len(), 350, "swept before the heap doubled");
        // At 465 it has: the void entries go.
        set(&mut timers, &registry, live, 115);
        timers.sweep(&registry);
        assert_eq!(timers.heap.len(), 365);
    }

    /// A heap that holds more than four valid entries per record (a grace
    /// armed again and again in one stage) is swept again only after a
    /// quarter of its size in calls, not on every call.
    #[test]
    fn a_crowded_heap_of_valid_entries_is_not_swept_on_every_call() {
        let mut registry = crate::manager::registry::tests::registry(false);
        let keys: Vec<ChildKey> = (0..100)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let mut timers = Timers::new();
        // Six valid entries per record: the first sweep finds the heap
        // doubled since the last (empty) one, and keeps all 600.
        set(&mut timers, &registry, &keys, 600);
        timers.sweep(&registry);
        assert_eq!((timers.sweeps, timers.heap.len()), (1, 600));
        // Still crowded, but swept again only after a quarter of 600 calls.
        for _ in 0..149 {
            timers.sweep(&registry);
        }
        assert_eq!(timers.sweeps, 1, "swept before 150 calls");
        timers.sweep(&registry);
        assert_eq!(timers.sweeps, 2);
    }
}
