//! The registry: a manager's child records, the run's phase, and what the
//! handles leave for the loop (inserts, stop requests, readiness during an
//! ordered start). It sits behind the one mutex that inserts and the loop's
//! phase changes share; its fields are private so that every change goes
//! through a named operation.
//!
//! A child's record says where the child is in its life ([`Stage`]). Its
//! variants carry what belongs to them: the running attempt, the restart
//! deadline and last outcome, the group member waiting for its siblings.
//!
//! ```text
//!            admit                spawn
//!  insert ──────────▶ Pending ──────────▶ Running ──── attempt ends ───┐
//!                        ▲                  ▲  │                       │
//!                        │ restart due      │  │ group stops it        ▼
//!                     Backoff ◀─────────────┼──┘──────▶ Held      restart?
//!                        ▲    group restarts│             │       yes / no
//!                        └──────────────────┼─────────────┘        │    │
//!                        └──── one-for-one ─┴──────────────────────┘    │
//!  any stage ──── final end (`Run::end_child`) ──▶ Ended / removed ◀─────┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "metrics")]
use super::metrics::{Bucket, ManagerMetrics};
use super::names::Names;
use super::slab::Slab;
use crate::control::{ChildCore, ChildKey, ChildName, Lineage, Outcome, suffixed};
use crate::error::InsertErrorKind;
use crate::manager::run::DynRunnable;
use crate::policy::RestartState;

/// Where a manager's run is. The loop changes it through one method
/// (`Run::enter`), under the registry lock, so inserts and the loop never
/// disagree about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Built, not run yet: inserts wait for the run.
    Idle,
    /// Running; the children inserted before the run start one by one
    /// (ordered start) or all at once.
    Running,
    /// A graceful shutdown was requested and the manager has a drain
    /// period: it reports unready and runs on as before until `until`, then
    /// stops.
    Draining { until: Instant },
    /// Shutdown was requested: the children other than background ones
    /// stop.
    Stopping {
        /// When children with the manager's grace period are aborted;
        /// `None` once that has happened.
        deadline: Option<Instant>,
        /// Every child was aborted at once.
        forced: bool,
    },
    /// Every other child has ended; the background children stop.
    StoppingBackground,
    /// The run has returned.
    Finished,
}

impl Phase {
    /// Whether an insert is refused now, and why.
    fn refuses(self) -> Option<InsertErrorKind> {
        match self {
            // Children still serve while draining; one inserted for a new
            // connection is welcome.
            Phase::Idle | Phase::Running | Phase::Draining { .. } => None,
            Phase::Stopping { .. } | Phase::StoppingBackground => {
                Some(InsertErrorKind::ShuttingDown)
            }
            Phase::Finished => Some(InsertErrorKind::Stopped),
        }
    }

    /// Whether the manager is stopping or has stopped.
    pub(crate) fn is_stopping(self) -> bool {
        !matches!(self, Phase::Idle | Phase::Running | Phase::Draining { .. })
    }
}

/// Where a child is in its life, with what belongs to that stage.
pub(crate) enum Stage {
    /// Accepted, not spawned yet.
    Pending,
    /// An attempt runs.
    Running(Attempt),
    /// Waiting until `at` for its next attempt; `last` is how the previous
    /// one ended, the outcome if the restart never comes, and `order` when
    /// it had started.
    Backoff {
        at: Instant,
        last: Box<Outcome>,
        order: u64,
    },
    /// Its attempt ended; it waits for the siblings a one-for-all or
    /// rest-for-one strategy restarts with it.
    Held { last: Box<Outcome>, order: u64 },
    /// Ended for good; kept only with auto-cleanup off. The outcome is on
    /// the child's end signal.
    Ended,
}

/// One running attempt of a child.
pub(crate) struct Attempt {
    /// Its task, once spawned (just after the registry lock): aborted
    /// through this, never joined (the task reports its end itself).
    pub(crate) task: Option<JoinHandle<()>>,
    /// When it started: nanoseconds since its run started (the registry's
    /// [`started`](Registry::started)). Half the size of an `Instant`, which
    /// keeps a record at 80 bytes; a `u64` of nanoseconds lasts 584 years.
    started: u64,
    /// Counts attempts started by this run, so attempts sort by when they
    /// started, whatever their slots.
    pub(crate) order: u64,
    /// Whether the manager stops this attempt to restart it with its
    /// group.
    pub(crate) group: GroupRole,
    /// How the attempt before this one ended, for the tree view.
    pub(crate) previous: Option<Box<Outcome>>,
}

impl Attempt {
    /// An attempt that starts `now`, in a run that started at `run_started`.
    pub(crate) fn new(
        run_started: Instant,
        now: Instant,
        order: u64,
        previous: Option<Box<Outcome>>,
    ) -> Attempt {
        let since = now.saturating_duration_since(run_started).as_nanos();
        Attempt {
            task: None,
            started: u64::try_from(since).unwrap_or(u64::MAX),
            order,
            group: GroupRole::None,
            previous,
        }
    }

    /// When it started, in a run that started at `run_started`.
    pub(crate) fn started(&self, run_started: Instant) -> Instant {
        run_started + Duration::from_nanos(self.started)
    }
}

/// An attempt's part in a group restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupRole {
    None,
    /// To be stopped when its turn comes (ordered stop).
    Queued,
    /// Being stopped.
    Stopping,
}

pub(crate) struct Record {
    pub(crate) core: Arc<ChildCore>,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    stage: Stage,
    /// Counts stage changes; a timer remembers the epoch it was set in and
    /// is void once the child has moved on.
    epoch: u32,
    /// Its name's hash in the name map, so that its end need not hash the
    /// name again.
    name_hash: u32,
    /// Only children with a restart policy have one.
    pub(crate) restart: Option<Box<RestartState>>,
}

impl Record {
    pub(crate) fn stage(&self) -> &Stage {
        &self.stage
    }

    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    pub(crate) fn key(&self) -> ChildKey {
        self.core.key()
    }

    /// Moves the child to its next stage; returns the one it leaves. Every
    /// timer set in the old stage is void from now on.
    #[must_use = "the stage left may hold a user's error: drop it after the registry lock"]
    pub(crate) fn set_stage(&mut self, stage: Stage) -> Stage {
        self.epoch = self.epoch.wrapping_add(1);
        let left = std::mem::replace(&mut self.stage, stage);
        #[cfg(feature = "metrics")]
        self.core
            .metrics
            .moved(Bucket::of(&left), Bucket::of(&self.stage), &self.core);
        left
    }

    /// Moves the child to the stage `next` makes of the one it leaves, whose
    /// last outcome it takes along.
    pub(crate) fn restage(&mut self, next: impl FnOnce(Option<Box<Outcome>>) -> Stage) {
        self.epoch = self.epoch.wrapping_add(1);
        let left = std::mem::replace(&mut self.stage, Stage::Pending);
        #[cfg(feature = "metrics")]
        let from = Bucket::of(&left);
        let last = match left {
            Stage::Backoff { last, .. } | Stage::Held { last, .. } => Some(last),
            Stage::Running(attempt) => attempt.previous,
            Stage::Pending | Stage::Ended => None,
        };
        self.stage = next(last);
        #[cfg(feature = "metrics")]
        self.core
            .metrics
            .moved(from, Bucket::of(&self.stage), &self.core);
    }

    /// Asks the running attempt, if one runs, to stop alone.
    pub(crate) fn stop_attempt(&self) {
        if self.attempt().is_some() {
            self.core.stop_attempt(self.core.attempt());
        }
    }

    /// Whether an attempt runs and was asked to stop, in any way.
    pub(crate) fn stopping(&self) -> bool {
        self.attempt().is_some() && self.core.stop_reached(self.core.attempt())
    }

    /// The running attempt, if one runs.
    pub(crate) fn attempt(&self) -> Option<&Attempt> {
        match &self.stage {
            Stage::Running(attempt) => Some(attempt),
            _ => None,
        }
    }

    pub(crate) fn attempt_mut(&mut self) -> Option<&mut Attempt> {
        match &mut self.stage {
            Stage::Running(attempt) => Some(attempt),
            _ => None,
        }
    }
}

/// A record's slot as the lists of slots keep it: a manager holds at most
/// 2^32 records, so that an accepted child waits to spawn in 4 bytes.
fn slot_index(slot: usize) -> Option<u32> {
    u32::try_from(slot).ok()
}

pub(crate) struct Registry {
    phase: Phase,
    /// The current run's token: cancelled when it stops. Every child's
    /// token but a background child's (and all with ordered stop) is a
    /// child of it. A manager restarted by its parent gets a new one.
    token: CancellationToken,
    /// The current run's shutdown request, a child of `token`: cancelled
    /// alone when a graceful request starts a drain, and with `token` by
    /// every other way of stopping.
    requested: CancellationToken,
    /// When the current run began: the clock its children's heartbeats are
    /// stamped on.
    started: Option<Instant>,
    /// What a restarted run starts again: the children inserted before the
    /// first run (the spec), kept only for a manager that runs nested.
    spec: Vec<Spec>,
    next_id: u64,
    /// Live children by name, for lookups and to keep names unique.
    names: Names,
    records: Slab<Record>,
    /// The slots of accepted children the loop has not spawned yet: 4 bytes
    /// each, a list that holds every child of a burst at its peak.
    pending: Vec<u32>,
    /// Children asked to stop through their own handle, whose grace period
    /// the loop must start.
    stop_requests: Vec<ChildKey>,
    /// Children that said they are ready while the loop waits for them.
    ready: Vec<ChildKey>,
    /// With a group strategy: live children in id order (ended ones are
    /// skipped and swept out), so a group is found without looking at every
    /// record. Empty with one-for-one.
    order: Vec<ChildKey>,
    /// Whether `order` is kept.
    keep_order: bool,
    /// Ends since [`shrink`](Registry::shrink) last looked.
    ends_since_shrink: usize,
    /// The last `'static` name (a type's default name, or a literal) found
    /// taken, by its place ([`ChildName::static_place`]), and the child
    /// that has it: while that child lives, the next child under that
    /// name is suffixed without a lookup of the name.
    taken: Option<(usize, usize, ChildKey)>,
    #[cfg(feature = "metrics")]
    metrics: Arc<ManagerMetrics>,
}

/// A child of the spec: what is needed to start it again in a later run.
pub(crate) struct Spec {
    /// The child in the latest run; its successor is made from it.
    pub(crate) core: Arc<ChildCore>,
    /// The child in every run, made at the first run again.
    pub(crate) lineage: Option<Arc<Lineage>>,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    /// A copy of the restart policy, without its history.
    pub(crate) restart: Option<RestartState>,
}

/// A child's place in the registry, reserved under the lock in which it is
/// admitted.
pub(crate) struct Reserved {
    pub(crate) key: ChildKey,
    /// Its name, with a suffix if its own was taken.
    pub(crate) name: ChildName,
    /// The name's hash in the registry's name map.
    pub(crate) hash: u32,
}

/// What an insert brings to the registry, made before the lock is taken.
pub(crate) struct Admission {
    pub(crate) runnable: Arc<dyn DynRunnable>,
    pub(crate) restart: Option<Box<RestartState>>,
}

/// The name map keeps this much capacity beyond eight times the live
/// children: a map grown for a thousand names (1,792) is never given back.
const NAMES_KEPT: usize = 2048;

impl Registry {
    pub(crate) fn new(
        keep_order: bool,
        #[cfg(feature = "metrics")] metrics: Arc<ManagerMetrics>,
    ) -> Self {
        let token = CancellationToken::new();
        Registry {
            phase: Phase::Idle,
            requested: token.child_token(),
            token,
            started: None,
            spec: Vec::new(),
            next_id: 0,
            names: Names::new(),
            records: Slab::new(),
            pending: Vec::new(),
            stop_requests: Vec::new(),
            ready: Vec::new(),
            order: Vec::new(),
            keep_order,
            ends_since_shrink: 0,
            taken: None,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Only `Run::enter` calls this.
    pub(crate) fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        #[cfg(feature = "metrics")]
        self.metrics.set_stopping(phase.is_stopping());
    }

    /// The current run's token (the next run's before it starts).
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The current run's shutdown request (the next run's before it
    /// starts).
    pub(crate) fn requested(&self) -> &CancellationToken {
        &self.requested
    }

    /// When the current run began, once it has.
    pub(crate) fn started(&self) -> Option<Instant> {
        self.started
    }

    pub(crate) fn set_started(&mut self, started: Instant) {
        self.started = Some(started);
    }

    /// Remembers the children inserted before the first run as the spec a
    /// restarted run starts again; called once, as a nested manager first
    /// runs, when every record is such a child.
    pub(crate) fn keep_spec(&mut self) {
        self.spec = self
            .records
            .iter()
            .map(|record| Spec {
                core: Arc::clone(&record.core),
                lineage: None,
                runnable: Arc::clone(&record.runnable),
                restart: record.restart.as_deref().map(RestartState::fresh),
            })
            .collect();
    }

    /// Starts a new run of a manager whose run has finished: a new token,
    /// and the spec's children taken out, to be admitted again. The ended
    /// run's records, kept with auto-cleanup off, go into `ended_run`: the
    /// new run lists only its own children, and a subtree that restarts
    /// often does not pile up one record per spec child and run.
    pub(crate) fn begin_rerun(
        &mut self,
        ended_run: &mut Vec<Record>,
    ) -> (CancellationToken, Vec<Spec>) {
        debug_assert_eq!(self.phase, Phase::Finished);
        ended_run.extend(self.drain());
        self.phase = Phase::Running;
        self.token = CancellationToken::new();
        self.requested = self.token.child_token();
        (self.token.clone(), std::mem::take(&mut self.spec))
    }

    /// Gives the spec back once its children are admitted again.
    pub(crate) fn restore_spec(&mut self, spec: Vec<Spec>) {
        self.spec = spec;
    }

    /// The key the next admitted child gets, and the name it would have:
    /// `name` if no live sibling has it, else the name with a suffix that no
    /// live sibling has, or, for an `exact` name, a refusal. `Err` says why
    /// the child would be refused, and gives the name back.
    pub(crate) fn reserve(
        &mut self,
        name: ChildName,
        exact: bool,
    ) -> Result<Reserved, (InsertErrorKind, ChildName)> {
        if let Some(refused) = self.phase.refuses() {
            return Err((refused, name));
        }
        let slot = self.records.vacant_key();
        if slot_index(slot).is_none() {
            return Err((InsertErrorKind::Full, name));
        }
        let key = ChildKey {
            slot,
            id: self.next_id,
        };
        let place = name.static_place();
        let known_taken = place.is_some_and(|place| {
            self.taken.is_some_and(|(address, length, holder)| {
                (address, length) == place
                    && self
                        .get(holder)
                        .is_some_and(|record| !matches!(record.stage, Stage::Ended))
            })
        });
        if !known_taken {
            let hash = self.names.hash(name.as_bytes());
            let Some(slot) = self
                .names
                .get(name.as_bytes(), hash, |slot| self.name_at(slot))
            else {
                return Ok(Reserved { key, name, hash });
            };
            if let (Some((address, length)), Some(holder)) = (place, self.records.get(slot)) {
                self.taken = Some((address, length, holder.key()));
            }
        }
        if exact {
            return Err((InsertErrorKind::DuplicateName, name));
        }
        // `worker-7`, or when the user named a sibling that, `worker-7-2`:
        // a suffix never takes a name that is in use.
        for extra in 1.. {
            let candidate = suffixed(&name, key.id, extra);
            let hash = self.names.hash(candidate.as_bytes());
            if !self.name_taken(candidate.as_bytes(), hash) {
                return Ok(Reserved {
                    key,
                    name: candidate,
                    hash,
                });
            }
        }
        unreachable!("fewer live children than suffixes")
    }

    fn name_taken(&self, name: &[u8], hash: u32) -> bool {
        self.names
            .get(name, hash, |slot| self.name_at(slot))
            .is_some()
    }

    /// The name of the child in `slot`, which holds a live child.
    fn name_at(&self, slot: usize) -> &[u8] {
        self.records
            .get(slot)
            .map_or(&[], |record| record.core.name.as_bytes())
    }

    /// Stores a child accepted by [`reserve`](Registry::reserve) (same lock)
    /// and queues it for the loop; `hash` is its name's, from `reserve`.
    pub(crate) fn admit(&mut self, core: Arc<ChildCore>, hash: u32, admission: Admission) {
        let key = core.key();
        // `reserve` refused a slot past `u32`: the core keeps it in 32 bits.
        let listed = core.slot();
        debug_assert_eq!(key.id, self.next_id);
        debug_assert_eq!(hash, self.names.hash(core.name.as_bytes()));
        self.next_id += 1;
        self.names.insert(core.name.as_bytes(), hash, key.slot);
        #[cfg(feature = "metrics")]
        self.metrics.moved(None, Some(Bucket::Starting), &core);
        let slot = self.records.insert(Record {
            core,
            runnable: admission.runnable,
            stage: Stage::Pending,
            epoch: 0,
            name_hash: hash,
            restart: admission.restart,
        });

        debug_assert_eq!(slot, key.slot);
        if self.keep_order {
            self.order.push(key);
        }
        self.pending.push(listed);
    }

    /// The slots of the accepted children still to spawn, oldest first;
    /// [`pending`](Registry::pending) finds each one's record.
    pub(crate) fn take_pending(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.pending)
    }

    /// The record in `slot` if it is still to spawn. A slot listed in
    /// [`take_pending`](Registry::take_pending) holds the child accepted
    /// there unless that one has ended since and another took its slot,
    /// which is then listed too, and spawns once all the same: its first
    /// listing finds it, the second finds it running.
    pub(crate) fn pending(&mut self, slot: u32) -> Option<&mut Record> {
        self.records
            .get_mut(slot as usize)
            .filter(|record| matches!(record.stage, Stage::Pending))
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn take_stop_requests(&mut self) -> Vec<ChildKey> {
        std::mem::take(&mut self.stop_requests)
    }

    pub(crate) fn push_stop_request(&mut self, key: ChildKey) {
        self.stop_requests.push(key);
    }

    pub(crate) fn push_ready(&mut self, key: ChildKey) {
        self.ready.push(key);
    }

    /// Whether `key` said it is ready since the last call; forgets the rest.
    pub(crate) fn take_ready(&mut self, key: Option<ChildKey>) -> bool {
        let found = key.is_some_and(|key| self.ready.contains(&key));
        self.ready.clear();
        found
    }

    /// The record of the child with this key, if it has not ended (with
    /// auto-cleanup off an ended record is kept, and found).
    pub(crate) fn get(&self, key: ChildKey) -> Option<&Record> {
        self.records
            .get(key.slot)
            .filter(|record| record.core.id == key.id)
    }

    pub(crate) fn get_mut(&mut self, key: ChildKey) -> Option<&mut Record> {
        self.records
            .get_mut(key.slot)
            .filter(|record| record.core.id == key.id)
    }

    /// The record of the live child with this name.
    pub(crate) fn by_name(&self, name: &str) -> Option<&Record> {
        let hash = self.names.hash(name.as_bytes());
        let slot = self
            .names
            .get(name.as_bytes(), hash, |slot| self.name_at(slot))?;
        self.records.get(slot)
    }

    /// How many records there are: the live children, and with auto-cleanup
    /// off the ended ones kept.
    pub(crate) fn record_count(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    pub(crate) fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.records.iter_mut().map(|(_, record)| record)
    }

    /// The live children after `after` in id order (all with `None`), for
    /// group restarts; only kept with a group strategy.
    pub(crate) fn in_order_after(&self, after: Option<u64>) -> Vec<ChildKey> {
        let start = after.map_or(0, |id| self.order.partition_point(|key| key.id <= id));
        self.order[start..].to_vec()
    }

    /// Makes a child's end final in the registry: frees its name, and with
    /// `keep` off removes its record (returned, to be dropped after the
    /// lock: dropping it may drop the user's process). Only
    /// `Run::end_child` calls this.
    /// Returns the child's core and the stage it left, or `None` if it had
    /// ended already.
    pub(crate) fn end(
        &mut self,
        key: ChildKey,
        keep: bool,
    ) -> Option<(Arc<ChildCore>, Stage, Option<Record>)> {
        let record = self
            .records
            .get_mut(key.slot)
            .filter(|record| record.core.id == key.id && !matches!(record.stage, Stage::Ended))?;
        let left = record.set_stage(Stage::Ended);
        let core = Arc::clone(&record.core);
        // A live child's name maps to its slot: no other child can take the
        // name before this one has ended.
        self.names
            .remove(record.core.name.as_bytes(), record.name_hash, key.slot);
        let removed = if keep {
            None
        } else {
            self.records.remove(key.slot)
        };
        self.sweep_order();
        Some((core, left, removed))
    }

    /// Drops ended children from `order` once they are half of it.
    fn sweep_order(&mut self) {
        if self.keep_order && self.order.len() > 2 * self.names.len() + 16 {
            let records = &self.records;
            self.order.retain(|key| {
                records.get(key.slot).is_some_and(|record| {
                    record.core.id == key.id && !matches!(record.stage, Stage::Ended)
                })
            });
        }
    }

    /// Gives memory back after a burst: once most of what the registry grew
    /// to is free, its maps and lists shrink to what the live children need.
    /// (The slab gives its chunks of records back by itself, as each
    /// empties; here it only trims its table.)
    /// Called on every end. The name map is looked at every time (two
    /// loads; each shrink at least quarters it, so rehashing is amortized);
    /// the rest only after as many ends as an eighth of the name map's
    /// capacity, so its cost is amortized and a manager whose live count
    /// swings does not shrink and grow back in turn.
    pub(crate) fn shrink(&mut self) {
        let live = self.names.len();
        // A map grown for a thousand names is always kept: a manager whose live
        // count swings by a batch of children would otherwise give its map
        // back and grow it again with every batch (rehashing each time).
        // Not on the schedule of the rest: the map's capacity, and with it
        // that schedule, depends on its random keys (how many removals leave
        // tombstones), and a last look that came too early left a map grown
        // for a whole burst behind it.
        if self.names.capacity() > 8 * live + NAMES_KEPT {
            self.names.shrink_to(2 * live);
        }
        self.ends_since_shrink += 1;
        if self.ends_since_shrink < self.names.capacity() / 8 + 64 {
            return;
        }
        self.ends_since_shrink = 0;
        self.records.shrink();
        if self.pending.capacity() > 4 * self.pending.len() + 64 {
            self.pending.shrink_to(2 * self.pending.len());
        }
        for list in [&mut self.stop_requests, &mut self.ready] {
            if list.capacity() > 4 * list.len() + 64 {
                list.shrink_to(2 * list.len());
            }
        }
        if self.order.capacity() > 4 * self.order.len() + 64 {
            self.order.shrink_to(2 * self.order.len());
        }
    }

    /// Takes every record out, for a manager that goes away without
    /// finishing its run.
    pub(crate) fn drain(&mut self) -> Vec<Record> {
        self.pending.clear();
        self.names.clear();
        self.order.clear();
        #[cfg(feature = "metrics")]
        self.metrics.cleared();
        self.records.drain().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Weak;

    use super::*;
    use crate::IdleProcess;
    use crate::control::{ChildPolicy, Watched};

    /// A record is 80 bytes: 256 of them fill a chunk of the slab, one per
    /// live child.
    #[test]
    fn a_record_takes_80_bytes() {
        assert_eq!(size_of::<Record>(), 80);
    }

    /// An attempt keeps when it started as an offset from its run's start,
    /// to the nanosecond, and reads it back as an instant.
    #[test]
    fn an_attempt_tells_when_it_started() {
        let run_started = Instant::now();
        for offset in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(86_400 * 365),
        ] {
            let attempt = Attempt::new(run_started, run_started + offset, 0, None);
            assert_eq!(attempt.started(run_started), run_started + offset);
        }
        // An instant before the run's start (none is) reads as the start.
        let early = Attempt::new(run_started + Duration::from_secs(1), run_started, 0, None);
        assert_eq!(
            early.started(run_started + Duration::from_secs(1)),
            run_started + Duration::from_secs(1)
        );
    }

    pub(crate) fn registry(keep_order: bool) -> Registry {
        Registry::new(
            keep_order,
            #[cfg(feature = "metrics")]
            Arc::default(),
        )
    }

    /// Admits an idle child named `name`.
    pub(crate) fn admit(registry: &mut Registry, name: String) -> ChildKey {
        admit_as(
            registry,
            ChildName::from(std::borrow::Cow::Owned(name)),
            true,
        )
        .expect("a free name")
    }

    /// Admits an idle child under `name`, suffixed if it is taken and not
    /// `exact`; the error if it is refused.
    fn admit_as(
        registry: &mut Registry,
        name: ChildName,
        exact: bool,
    ) -> Result<ChildKey, InsertErrorKind> {
        let Reserved { key, name, hash } =
            registry.reserve(name, exact).map_err(|(kind, _)| kind)?;
        let policy = ChildPolicy {
            grace: None,
            background: false,
            significant: false,
            escalate: true,
            announce_ready: false,
            reports_ready: false,
            undeclared_ready: false,
            passes_reloads_on: false,
        };
        let core = ChildCore::new(
            key,
            name,
            policy,
            Weak::new(),
            Watched::default(),
            #[cfg(feature = "metrics")]
            Arc::default(),
        );
        let admission = Admission {
            runnable: Arc::new(IdleProcess),
            restart: None,
        };
        registry.admit(Arc::new(core), hash, admission);
        Ok(key)
    }

    /// A `'static` name found taken is remembered with the child that has
    /// it, and only while that child lives: once it has ended (its record
    /// removed, or kept as ended) the name is free again. An equal name
    /// elsewhere in memory is looked up as any other.
    #[test]
    fn a_static_name_is_known_taken_only_while_its_holder_lives() {
        for keep in [false, true] {
            let mut registry = registry(false);
            let name = |text: &'static str| ChildName::from(std::borrow::Cow::Borrowed(text));
            let text: &'static str = "worker";
            let first = admit_as(&mut registry, name(text), false).expect("free");
            let name_of = |registry: &Registry, key| {
                registry
                    .get(key)
                    .map(|record: &Record| record.core.name.to_string())
            };
            assert_eq!(name_of(&registry, first).as_deref(), Some("worker"));
            for _ in 0..3 {
                let next = admit_as(&mut registry, name(text), false).expect("suffixed");
                assert_eq!(
                    name_of(&registry, next),
                    Some(format!("worker-{}", next.id))
                );
            }
            assert_eq!(
                admit_as(&mut registry, name(text), true),
                Err(InsertErrorKind::DuplicateName)
            );
            // Another name is looked up, and free.
            let other = admit_as(&mut registry, name("other"), true).expect("free");
            assert_eq!(name_of(&registry, other).as_deref(), Some("other"));
            // The same text at another place.
            let elsewhere: &'static str = &"a worker"[2..];
            assert_eq!(elsewhere, text);
            assert_ne!(elsewhere.as_ptr(), text.as_ptr());
            assert_eq!(
                admit_as(&mut registry, name(elsewhere), true),
                Err(InsertErrorKind::DuplicateName)
            );
            // The holder is remembered again, and then ends.
            let next = admit_as(&mut registry, name(text), false).expect("suffixed");
            assert_ne!(next, first);
            registry.end(first, keep).expect("live");
            let again = admit_as(&mut registry, name(text), true).expect("free again");
            assert_eq!(name_of(&registry, again).as_deref(), Some("worker"));
            let next = admit_as(&mut registry, name(text), false).expect("suffixed");
            assert_eq!(
                name_of(&registry, next),
                Some(format!("worker-{}", next.id))
            );
        }
    }

    /// An accepted child is listed by its slot. One that ends before it
    /// spawns frees its slot to the next child, which is then listed twice:
    /// it spawns once, on the first listing.
    #[test]
    fn a_slot_listed_twice_spawns_its_child_once() {
        let mut registry = registry(false);
        let first = admit(&mut registry, "first".to_owned());
        let (_, left, removed) = registry.end(first, false).expect("live");
        assert!(matches!(left, Stage::Pending) && removed.is_some());
        let second = admit(&mut registry, "second".to_owned());
        assert_eq!(second.slot, first.slot, "the slot is reused");
        let listed = registry.take_pending();
        assert_eq!(listed, vec![0, 0]);
        assert!(!registry.has_pending());
        let record = registry.pending(listed[0]).expect("still to spawn");
        assert_eq!(record.key(), second);
        let now = tokio::time::Instant::now();
        drop(record.set_stage(Stage::Running(Attempt::new(now, now, 0, None))));
        assert!(registry.pending(listed[1]).is_none(), "spawned already");
        assert!(registry.pending(7).is_none(), "an empty slot");
    }

    /// Slots are listed in 4 bytes: past `u32`, a manager is full.
    #[test]
    fn a_slot_past_u32_is_refused() {
        assert_eq!(slot_index(0), Some(0));
        assert_eq!(slot_index(u32::MAX as usize), Some(u32::MAX));
        #[cfg(target_pointer_width = "64")]
        assert_eq!(slot_index(u32::MAX as usize + 1), None);
    }

    /// A child's stop word: a stop of one attempt reaches that attempt
    /// only, never an earlier or a later one; a late stop of an earlier
    /// attempt does not take back a later one's; a stop for good reaches
    /// every attempt; a token made for an attempt follows the same rules.
    #[test]
    fn a_stop_of_one_attempt_reaches_that_attempt_only() {
        let mut registry = registry(true);
        let key = admit(&mut registry, "stops".to_owned());
        let core = Arc::clone(&registry.get(key).expect("admitted").core);
        let started = tokio::time::Instant::now();
        assert_eq!(core.begin_attempt(started), 1);
        assert!(!core.stop_reached(0) && !core.stop_reached(1));
        let first = core.token_of(1);
        core.stop_attempt(1);
        assert!(core.stop_reached(1) && first.is_cancelled());
        // Attempt 2 makes no token: the word alone says it was stopped.
        assert_eq!(core.begin_attempt(started), 2);
        assert!(!core.stop_reached(2));
        core.stop_attempt(2);
        core.stop_attempt(1);
        assert!(
            core.stop_reached(2),
            "a late stop of attempt 1 took back 2's"
        );
        assert!(!core.stop_reached(3) && !core.is_stopped());
        assert!(!core.was_asked_to_stop() && !core.was_stopped_alone());
        assert!(core.token_of(2).is_cancelled(), "made after its stop");
        assert_eq!(core.begin_attempt(started), 3);
        let third = core.token_of(3);
        assert!(!third.is_cancelled());
        // Every call of the same attempt gets the same token.
        let again = core.token_of(3);
        // A context of attempt 2 that outlived it gets a token of its own.
        let stale = core.token_of(2);
        stale.cancel();
        assert!(!again.is_cancelled() && !core.stop_reached(3));
        // A late stop of attempt 2 reaches nothing of attempt 3.
        core.stop_attempt(2);
        assert!(!third.is_cancelled() && !core.stop_reached(3));
        // Attempt 4 makes no token: its stop leaves attempt 3's alone.
        assert_eq!(core.begin_attempt(started), 4);
        core.stop_attempt(4);
        assert!(core.stop_reached(4) && !third.is_cancelled());
        again.cancel();
        assert!(third.is_cancelled(), "the same token");
        assert!(core.stop(), "the first stop for good is news");
        assert!(!core.stop(), "the second is not");
        assert!(core.is_stopped() && core.stop_reached(4) && core.stop_reached(5));
        assert!(stale.is_cancelled() && core.token_of(5).is_cancelled());
        assert!(
            !core.was_stopped_alone(),
            "the manager stopped it, not a handle"
        );
    }

    /// Defect 13: a rest-for-one group is found from the trigger on, so a
    /// restart of the child started last looks at one child however many
    /// started before it.
    #[test]
    fn a_rest_for_one_group_is_found_without_looking_at_earlier_children() {
        let mut registry = registry(true);
        let keys: Vec<ChildKey> = (0..100_000)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let last = *keys.last().unwrap();
        let before_last = keys[keys.len() - 2];
        assert_eq!(registry.in_order_after(Some(before_last.id)), vec![last]);
        assert!(registry.in_order_after(Some(last.id)).is_empty());
        assert_eq!(registry.in_order_after(None).len(), keys.len());
        assert_eq!(registry.in_order_after(Some(keys[9].id))[0], keys[10]);
    }

    /// Ended children leave the id-ordered list once they are half of it,
    /// so it stays bounded by the live children.
    #[test]
    fn the_ordered_list_follows_the_live_children() {
        let mut registry = registry(true);
        let keys: Vec<ChildKey> = (0..10_000)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        for &key in &keys[..9_990] {
            assert!(registry.end(key, false).is_some());
        }
        assert!(registry.end(keys[0], false).is_none(), "an end is final");
        assert!(
            registry.order.len() <= 2 * 10 + 16,
            "{}",
            registry.order.len()
        );
        // What is left are the live children, in id order, after at most a
        // few ended ones not swept yet (the group code skips those).
        let left = registry.in_order_after(None);
        assert!(left.ends_with(&keys[9_990..]));
        assert!(left.len() <= 2 * 10 + 16);
    }

    /// An ended child whose slot a new child took is no less ended: the
    /// sweep drops it by its id, not only by its slot's stage.
    #[test]
    fn the_ordered_list_drops_ended_children_whose_slot_was_reused() {
        let mut registry = registry(true);
        let first: Vec<ChildKey> = (0..100)
            .map(|n| admit(&mut registry, format!("a{n}")))
            .collect();
        for &key in &first[..50] {
            assert!(registry.end(key, false).is_some());
        }
        let reusing: Vec<ChildKey> = (0..50)
            .map(|n| admit(&mut registry, format!("b{n}")))
            .collect();
        assert!(reusing.iter().all(|key| key.slot < 50), "slots reused");
        // Enough ends for the list to be swept.
        for &key in &first[50..] {
            assert!(registry.end(key, false).is_some());
        }
        let left = registry.in_order_after(None);
        assert!(
            !left.iter().any(|key| first[..50].contains(key)),
            "{left:?}"
        );
        assert!(left.ends_with(&reusing));
    }

    #[test]
    fn the_ordered_list_is_given_back_after_a_burst() {
        let mut registry = registry(true);
        let keys: Vec<ChildKey> = (0..300)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let grown = registry.order.capacity();
        for &key in &keys[..290] {
            assert!(registry.end(key, false).is_some());
        }
        look(&mut registry);
        let kept = registry.order.capacity();
        assert!(
            (registry.order.len()..grown / 4).contains(&kept),
            "{kept} of {grown}"
        );
    }

    /// Without a group strategy no ordered list is kept at all.
    #[test]
    fn one_for_one_keeps_no_ordered_list() {
        let mut registry = registry(false);
        for n in 0..100 {
            admit(&mut registry, format!("c{n}"));
        }
        assert!(registry.in_order_after(None).is_empty());
        assert_eq!(registry.order.capacity(), 0);
    }

    /// Calls `shrink` once per end, as `Run::end_child` does, until it has
    /// looked.
    fn look(registry: &mut Registry) {
        registry.shrink();
        while registry.ends_since_shrink != 0 {
            registry.shrink();
        }
    }

    /// `shrink` looks only once every eighth of the name map's capacity
    /// plus 64 ends, and counts again from there.
    #[test]
    fn shrink_looks_after_an_eighth_of_the_name_maps_capacity_plus_64_ends() {
        let mut registry = registry(false);
        let key = admit(&mut registry, "c".into());
        for n in 1..1000 {
            admit(&mut registry, format!("c{n}"));
        }
        let ends = registry.names.capacity() / 8 + 64;
        assert!(ends > 64, "{ends}");
        registry.ready.reserve_exact(1000);
        registry.push_ready(key);
        for round in 0..2 {
            for n in 1..ends {
                registry.shrink();
                assert_eq!(registry.ends_since_shrink, n, "round {round}");
            }
            assert!(registry.ready.capacity() >= 1000, "not looked yet");
            registry.shrink();
            assert_eq!(registry.ends_since_shrink, 0, "round {round}");
            assert!(registry.ready.capacity() <= 2, "looked");
            registry.ready.reserve_exact(1000);
        }
    }

    /// The name map is given back once its capacity passes eight times the
    /// live names plus 2,048, and then to room for twice the live names.
    #[test]
    fn the_name_map_shrinks_to_twice_the_live_names_only_past_eight_times_them_plus_2048() {
        // 8 * 192 + 2048 = 3584, a capacity the map has exactly.
        for (live, kept) in [(192, 3584), (191, 448)] {
            let mut registry = registry(false);
            registry.names.reserve(3584);
            assert_eq!(registry.names.capacity(), 3584);
            for n in 0..live {
                admit(&mut registry, format!("c{n}"));
            }
            look(&mut registry);
            assert_eq!(
                registry.names.capacity(),
                kept,
                "{live} live names in room for 3584"
            );
        }
    }

    #[test]
    fn the_name_map_is_given_back_after_a_burst_only_below_an_eighth_full() {
        let mut registry = registry(false);
        let keys: Vec<ChildKey> = (0..10_000)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let grown = registry.names.capacity();
        let (eighth, sixteenth) = (grown / 8, grown / 16);
        for &key in &keys[eighth..] {
            assert!(registry.end(key, false).is_some());
        }
        look(&mut registry);
        // Removals leave tombstones that count against the capacity, so only
        // a shrink (to room for twice the live children) halves it.
        let kept = registry.names.capacity();
        assert!(kept > grown / 2, "an eighth full: kept, {kept} of {grown}");
        for &key in &keys[sixteenth..eighth] {
            assert!(registry.end(key, false).is_some());
        }
        look(&mut registry);
        let kept = registry.names.capacity();
        assert!(
            (2 * sixteenth..=grown / 2).contains(&kept),
            "a sixteenth full: room for twice the live children kept, {kept} of {grown}"
        );
    }

    /// Whatever the map's capacity (its random keys decide how many
    /// removals leave tombstones, and so when it grows), after every end it
    /// holds at most eight times the live names plus 2,048: ends that stop
    /// anywhere in a burst never leave the burst's map behind.
    #[test]
    fn after_every_end_the_name_map_is_at_most_eight_times_the_live_names_plus_2048() {
        for seed in 0..4 {
            let mut registry = registry(false);
            let keys: Vec<ChildKey> = (0..10_000)
                .map(|n| admit(&mut registry, format!("s{seed}-{n}")))
                .collect();
            for (ended, &key) in keys.iter().enumerate() {
                assert!(registry.end(key, false).is_some());
                registry.shrink();
                let live = keys.len() - ended - 1;
                assert!(
                    registry.names.capacity() <= 8 * live + NAMES_KEPT,
                    "{} for {live} live names",
                    registry.names.capacity()
                );
            }
        }
    }

    /// A map of a thousand names is never given back: a manager whose live
    /// count swings by a batch keeps it rather than rehash every batch.
    #[test]
    fn room_for_a_thousand_names_is_kept() {
        let mut registry = registry(false);
        let keys: Vec<ChildKey> = (0..1000)
            .map(|n| admit(&mut registry, format!("c{n}")))
            .collect();
        let grown = registry.names.capacity();
        for &key in &keys[1..] {
            assert!(registry.end(key, false).is_some());
        }
        look(&mut registry);
        // Tombstones count against the capacity; a shrink would leave room
        // for two.
        let kept = registry.names.capacity();
        assert!(kept > grown / 2, "{kept} of {grown}");
    }

    #[test]
    fn a_list_is_given_back_after_a_burst_but_room_for_64_is_kept() {
        let mut registry = registry(false);
        let key = admit(&mut registry, "c".into());
        for _ in 0..256 {
            registry.push_ready(key);
        }
        registry.take_ready(None);
        registry.push_ready(key);
        look(&mut registry);
        let kept = registry.ready.capacity();
        assert!((1..=4).contains(&kept), "{kept}");

        registry.take_ready(None);
        registry.ready.reserve_exact(64);
        assert_eq!(registry.ready.capacity(), 64);
        look(&mut registry);
        assert_eq!(registry.ready.capacity(), 64);
    }

    /// A list keeps its memory up to four times its length plus room for 64,
    /// and past that gives back all but twice its length: exactly, for the
    /// lists of keys (`ready` stands for `pending` and `stop_requests`) and
    /// the id-ordered list.
    #[test]
    fn a_list_shrinks_to_twice_its_length_only_past_four_times_it_plus_64() {
        for (capacity, kept) in [(150, 150), (184, 184), (185, 60)] {
            let mut registry = registry(true);
            let keys: Vec<ChildKey> = (0..30)
                .map(|n| admit(&mut registry, format!("c{n}")))
                .collect();
            registry.ready.reserve_exact(capacity);
            for &key in &keys {
                registry.push_ready(key);
            }
            registry.order.shrink_to_fit();
            registry
                .order
                .reserve_exact(capacity - registry.order.len());
            assert_eq!(
                (registry.ready.capacity(), registry.order.capacity()),
                (capacity, capacity)
            );
            look(&mut registry);
            assert_eq!(
                (registry.ready.capacity(), registry.order.capacity()),
                (kept, kept),
                "30 entries in room for {capacity}"
            );
        }
    }
}
