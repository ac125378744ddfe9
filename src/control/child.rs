use std::collections::VecDeque;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{
    AttemptEnd, ChildName, ControlMessage, CustomMessage, EndSignal, Outcome, PollWatch,
    ShutdownReason,
};
use crate::error::{ControlError, SendError};
use crate::manager::ManagerShared;

/// A child's address in its manager: the slot of its record and its id. The
/// id tells a record from a newer one that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ChildKey {
    pub(crate) slot: usize,
    pub(crate) id: u64,
}

/// What a child tells its manager on its own, outside the manager's loop.
pub(crate) trait StopListener: Send + Sync {
    /// Shutdown was requested through the child's handle: the manager starts
    /// its grace period.
    fn stop_requested(&self, key: ChildKey);

    /// The child said it is ready; only called while the manager waits for
    /// it (ordered start).
    fn child_ready(&self, key: ChildKey);

    /// A child whose readiness counts became ready (`true`) or unready again
    /// (`false`) within its attempt.
    fn counted_ready(&self, ready: bool);

    /// The child has a reload it has not taken (`true`), or no longer has
    /// one (`false`): it took it, started a new attempt, or ended.
    fn reload_pending(&self, pending: bool);

    /// The child's current attempt has ended: its task reports how.
    fn attempt_ended(&self, key: ChildKey, end: AttemptEnd);
}

/// The readiness of an attempt, in the low bits of [`ChildCore`]'s
/// `progress` word.
const UNREADY: u64 = 0;
const READY: u64 = 1;
/// The attempt has ended: nothing can make it ready any more.
const CLOSED: u64 = 2;
const STATE_BITS: u32 = 2;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// How a manager treats a child; fixed when it is inserted. Its core keeps
/// the flags as [`Flags`], and the grace period in its `watch` box.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildPolicy {
    /// Its own grace period, instead of the manager's.
    pub(crate) grace: Option<Duration>,
    /// Stopped only after every other child of its manager has ended.
    pub(crate) background: bool,
    /// Its end, when it is not restarted, stops the manager.
    pub(crate) significant: bool,
    /// Its failure, when it is not restarted, stops the manager.
    pub(crate) escalate: bool,
    /// The manager waits for it to be ready before starting the next child.
    pub(crate) announce_ready: bool,
    /// Its readiness counts toward its manager's.
    pub(crate) reports_ready: bool,
    /// It is a manager: it has taken a reload only once its own children
    /// have, and says so itself.
    pub(crate) passes_reloads_on: bool,
    /// Neither reports readiness nor was told not to, and no ordered start
    /// waits for it: [`Context::mark_ready`](crate::Context::mark_ready) on
    /// it is a mistake.
    pub(crate) undeclared_ready: bool,
}

/// The flags of a [`ChildPolicy`], in one byte, which shares a word of its
/// core with the slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags(u8);

const BACKGROUND: u8 = 1;
const SIGNIFICANT: u8 = 1 << 1;
const ESCALATE: u8 = 1 << 2;
const ANNOUNCE_READY: u8 = 1 << 3;
const REPORTS_READY: u8 = 1 << 4;
const PASSES_RELOADS_ON: u8 = 1 << 5;
const UNDECLARED_READY: u8 = 1 << 6;

impl Flags {
    fn of(policy: &ChildPolicy) -> Flags {
        let flag = |set: bool, flag: u8| if set { flag } else { 0 };
        Flags(
            flag(policy.background, BACKGROUND)
                | flag(policy.significant, SIGNIFICANT)
                | flag(policy.escalate, ESCALATE)
                | flag(policy.announce_ready, ANNOUNCE_READY)
                | flag(policy.reports_ready, REPORTS_READY)
                | flag(policy.passes_reloads_on, PASSES_RELOADS_ON)
                | flag(policy.undeclared_ready, UNDECLARED_READY),
        )
    }

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// [`ChildPolicy::background`].
    pub(crate) fn background(self) -> bool {
        self.has(BACKGROUND)
    }

    /// [`ChildPolicy::significant`].
    pub(crate) fn significant(self) -> bool {
        self.has(SIGNIFICANT)
    }

    /// [`ChildPolicy::escalate`].
    pub(crate) fn escalate(self) -> bool {
        self.has(ESCALATE)
    }

    /// [`ChildPolicy::announce_ready`].
    pub(crate) fn announce_ready(self) -> bool {
        self.has(ANNOUNCE_READY)
    }

    /// [`ChildPolicy::reports_ready`].
    pub(crate) fn reports_ready(self) -> bool {
        self.has(REPORTS_READY)
    }

    /// [`ChildPolicy::passes_reloads_on`].
    pub(crate) fn passes_reloads_on(self) -> bool {
        self.has(PASSES_RELOADS_ON)
    }

    /// [`ChildPolicy::undeclared_ready`].
    pub(crate) fn undeclared_ready(self) -> bool {
        self.has(UNDECLARED_READY)
    }
}

/// The state one child shares between its handles, its context and its
/// manager.
pub(crate) struct ChildCore {
    pub(crate) id: u64,
    /// Where the manager keeps this child's record; valid while the child
    /// has not ended. A manager holds at most 2^32 records.
    slot: u32,
    pub(crate) name: ChildName,
    /// How its manager treats it: its [`ChildPolicy`], but for the grace
    /// period, which is kept in `watch`.
    pub(crate) policy: Flags,
    /// The current attempt's number (from 1; 0 before the first) shifted
    /// left by `STATE_BITS`, and its readiness in the low bits. One word, so
    /// that a context of an ended attempt, which knows only its own number,
    /// can never make a later attempt ready: its compare-and-swap fails.
    progress: AtomicU64,
    /// Whether, and how, the child was asked to stop: the `STOP_*` bits,
    /// and in the high half the last attempt stopped alone. A child has no
    /// token of its own unless its process asks for one
    /// ([`Context::token`](crate::Context::token)): a stop is this word and
    /// a wake-up of `end`'s waiters.
    stop: AtomicU64,
    /// Its manager, told of what the child does on its own
    /// ([`StopListener`]); the concrete type, half the size of a `dyn`.
    listener: Weak<ManagerShared>,
    inbox: Mutex<Inbox>,
    /// Its heartbeat and slow-poll measurements, for a child with a
    /// heartbeat timeout or a slow-poll threshold, and its own grace period
    /// if it has one: boxed, so that a child with none of them pays one
    /// word.
    watch: Option<Box<Watch>>,
    pub(crate) end: EndSignal,
    /// Its manager's metrics, told of each of its stage changes. Here
    /// rather than in the manager's record, whose storage is allocated in
    /// chunks of 256 records.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: std::sync::Arc<crate::manager::ManagerMetrics>,
}

/// What a child is watched for, if anything; fixed when it is inserted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Watched {
    /// Its heartbeat timeout.
    pub(crate) stale_after: Option<Duration>,
    /// Its slow-poll threshold.
    pub(crate) slow_poll: Option<Duration>,
}

/// What [`ChildCore`] measures for a child with a heartbeat timeout or a
/// slow-poll threshold, and a child's own grace period.
struct Watch {
    /// When it last said it is alive: nanoseconds since its manager's run
    /// started (tokio's clock, so paused test time counts).
    last_beat: AtomicU64,
    /// It is failed when it goes this long without a heartbeat. Here
    /// rather than in the core, which every child has, and where every 16
    /// bytes are a malloc size class up.
    stale_after: Option<Duration>,
    polls: Option<PollWatch>,
    /// Its own grace period, instead of the manager's. Here rather than in
    /// the policy for the same reason.
    grace: Option<Duration>,
}

#[derive(Default)]
struct Inbox {
    /// How many reloads were requested so far, modulo 2^31 ([`RELOADS`]);
    /// the context remembers how many it has seen, which coalesces reloads
    /// without losing one (unless a process misses a multiple of 2^31 of
    /// them in a row).
    reloads: u32,
    /// A reload is waiting to be taken and counts in the manager's
    /// `reloading`; every change of it is reported to the listener, so the
    /// count is exact.
    reload_pending: bool,
    /// The process has looked at its messages at least once; one that never
    /// does (it only waits for shutdown) would hold every reload pending.
    listening: bool,
    closed: bool,
    /// What most children never have, in one box made on first use.
    rare: Option<Box<Rare>>,
    /// Once a manager that ended was restarted by its parent (a restartable
    /// subtree): the same child in every run of its manager, through which
    /// handles follow it, so that a handle taken before the restart
    /// controls the child that runs now. Set once, after this child's end;
    /// the `stop` word's [`SUCCEEDED`] bit says it is there without the
    /// lock.
    lineage: Option<Arc<Lineage>>,
}

/// One child of a restartable subtree's spec across the runs of its
/// manager: the child in each earlier run points here, and this points at
/// the child in the latest run. A handle from any run reaches the child
/// that runs now in one step, and keeps only its own run's core and the
/// latest: nothing per run in between.
pub(crate) struct Lineage {
    latest: Mutex<Arc<ChildCore>>,
}

impl Lineage {
    pub(crate) fn new(latest: Arc<ChildCore>) -> Self {
        Lineage {
            latest: Mutex::new(latest),
        }
    }

    /// The child in the latest run.
    fn latest(&self) -> Arc<ChildCore> {
        Arc::clone(&self.lock())
    }

    /// Makes `next` the child in the latest run; returns the one it was.
    #[must_use = "the core it was may be the last of a process's: drop it after the registry lock"]
    pub(crate) fn advance(&self, next: Arc<ChildCore>) -> Arc<ChildCore> {
        std::mem::replace(&mut *self.lock(), next)
    }

    fn lock(&self) -> MutexGuard<'_, Arc<ChildCore>> {
        // A core is swapped in whole: a poisoned lock still holds one.
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The part of a child's inbox that most children never use.
#[derive(Default)]
struct Rare {
    /// Custom messages not yet read.
    messages: VecDeque<CustomMessage>,
    /// Why the manager stopped the current attempt to restart it with a
    /// sibling; cleared when the next attempt starts.
    restart_reason: Option<ShutdownReason>,
    /// The tokens the process asked for, if it did.
    tokens: Option<Tokens>,
}

/// Reload counts wrap at 2^31: the context keeps its count and whether it
/// has delivered the stop in one 32-bit word.
pub(crate) const RELOADS: u32 = (1 << 31) - 1;

/// The tokens a process asked for ([`Context::token`](crate::Context::token)):
/// one per attempt, each a child of one for the child, which a stop for
/// good cancels.
struct Tokens {
    root: CancellationToken,
    /// The attempt `current` belongs to.
    attempt: u32,
    current: CancellationToken,
}

/// Bits of [`ChildCore`]'s `stop` word.
/// Asked to stop for good: by a handle, or by the manager.
const STOP_FOR_GOOD: u64 = 1;
/// The first stop came through the child's own handle.
const STOP_ALONE: u64 = 1 << 1;
/// A handle asked it to stop: its grace period has started.
const STOP_ASKED: u64 = 1 << 2;
/// The process made a token: `Inbox::rare` holds it.
const STOP_TOKEN: u64 = 1 << 3;
/// Not a stop: the child has a successor (`Inbox::lineage`).
const SUCCEEDED: u64 = 1 << 4;
const STOP_BITS: u64 = (1 << STOP_ATTEMPT_SHIFT) - 1;
/// The high half holds the last attempt stopped alone.
const STOP_ATTEMPT_SHIFT: u32 = 32;

impl ChildCore {
    pub(crate) fn new(
        key: ChildKey,
        name: ChildName,
        policy: ChildPolicy,
        listener: Weak<ManagerShared>,
        watched: Watched,
        #[cfg(feature = "metrics")] metrics: std::sync::Arc<crate::manager::ManagerMetrics>,
    ) -> Self {
        ChildCore {
            id: key.id,
            // The registry refuses a slot past `u32` (`InsertErrorKind::Full`).
            slot: u32::try_from(key.slot).unwrap_or(u32::MAX),
            name,
            policy: Flags::of(&policy),
            progress: AtomicU64::new(0),
            stop: AtomicU64::new(0),
            listener,
            inbox: Mutex::default(),
            watch: (watched.stale_after.is_some()
                || watched.slow_poll.is_some()
                || policy.grace.is_some())
            .then(|| {
                Box::new(Watch {
                    last_beat: AtomicU64::new(0),
                    stale_after: watched.stale_after,
                    polls: watched.slow_poll.map(PollWatch::new),
                    grace: policy.grace,
                })
            }),
            end: EndSignal::default(),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// The child as it is now: this core, or the same child in the latest
    /// run of its manager.
    pub(crate) fn current(&self) -> Current<'_> {
        if self.stop.load(Ordering::Acquire) & SUCCEEDED == 0 {
            return Current::This(self);
        }
        match self.inbox().lineage.clone() {
            Some(lineage) => Current::Later(lineage.latest()),
            None => Current::This(self),
        }
    }

    /// Joins this child, which has ended, to `lineage`, whose latest child
    /// is this child in its manager's next run (or a later one).
    pub(crate) fn join_lineage(&self, lineage: &Arc<Lineage>) {
        debug_assert!(self.is_finished(), "only an ended child has a successor");
        let mut inbox = self.inbox();
        if inbox.lineage.is_none() {
            inbox.lineage = Some(Arc::clone(lineage));
            self.stop.fetch_or(SUCCEEDED, Ordering::AcqRel);
        }
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // The inbox holds plain data and no code runs under the lock that
        // could panic half-way, so a poisoned lock is still consistent.
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records how the child ended, drops messages it will never read and
    /// wakes everyone waiting for it.
    pub(crate) fn finish(&self, outcome: Outcome) {
        self.close_inbox();
        self.end.set(outcome);
    }

    /// Closes the inbox for good: drops messages the child will never read
    /// and no longer counts a reload it has not taken.
    pub(crate) fn close_inbox(&self) {
        let (unread, was_pending) = {
            let mut inbox = self.inbox();
            inbox.closed = true;
            (
                inbox
                    .rare
                    .as_mut()
                    .map(|rare| std::mem::take(&mut rare.messages)),
                std::mem::take(&mut inbox.reload_pending),
            )
        };
        drop(unread);
        if was_pending {
            self.tell_reload_pending(false);
        }
    }

    /// Its record's slot, as the registry's lists keep it.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    pub(crate) fn key(&self) -> ChildKey {
        ChildKey {
            slot: self.slot as usize,
            id: self.id,
        }
    }

    /// Its own grace period, if it has one.
    pub(crate) fn grace(&self) -> Option<Duration> {
        self.watch.as_ref()?.grace
    }

    /// What it measures, if it has a heartbeat timeout or a slow-poll
    /// threshold.
    fn watched(&self) -> Option<&Watch> {
        self.watch
            .as_deref()
            .filter(|watch| watch.stale_after.is_some() || watch.polls.is_some())
    }

    /// Its policy, for the same child in its manager's next run.
    pub(crate) fn child_policy(&self) -> ChildPolicy {
        let flags = self.policy;
        ChildPolicy {
            grace: self.grace(),
            background: flags.background(),
            significant: flags.significant(),
            escalate: flags.escalate(),
            announce_ready: flags.announce_ready(),
            reports_ready: flags.reports_ready(),
            passes_reloads_on: flags.passes_reloads_on(),
            undeclared_ready: flags.undeclared_ready(),
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.end.get().is_some()
    }

    pub(crate) fn request_shutdown(&self) -> Result<(), ControlError> {
        if self.is_finished() {
            return Err(ControlError::Ended);
        }
        let before = self
            .stop
            .fetch_or(STOP_FOR_GOOD | STOP_ASKED, Ordering::AcqRel);
        if before & STOP_FOR_GOOD == 0 {
            self.stop.fetch_or(STOP_ALONE, Ordering::AcqRel);
            self.stop_reached_tokens(None);
        }
        if before & STOP_ASKED == 0 {
            if let Some(listener) = self.listener.upgrade() {
                listener.stop_requested(self.key());
            }
        }
        Ok(())
    }

    pub(crate) fn request_reload(&self) -> Result<(), ControlError> {
        let newly_pending = {
            let mut inbox = self.inbox();
            if inbox.closed {
                return Err(ControlError::Ended);
            }
            inbox.reloads = inbox.reloads.wrapping_add(1) & RELOADS;
            inbox.listening && !std::mem::replace(&mut inbox.reload_pending, true)
        };
        if newly_pending {
            self.tell_reload_pending(true);
        }
        self.end.wake_all();
        Ok(())
    }

    /// A nested manager's children have all taken the reload it passed on.
    pub(crate) fn reload_taken(&self) {
        if std::mem::take(&mut self.inbox().reload_pending) {
            self.tell_reload_pending(false);
        }
    }

    /// The reloads requested so far, for an attempt that starts from fresh
    /// configuration: none of them is pending any more.
    pub(crate) fn forget_reloads(&self) -> u32 {
        let (reloads, was_pending) = {
            let mut inbox = self.inbox();
            (inbox.reloads, std::mem::take(&mut inbox.reload_pending))
        };
        if was_pending {
            self.tell_reload_pending(false);
        }
        reloads
    }

    fn tell_reload_pending(&self, pending: bool) {
        if let Some(listener) = self.listener.upgrade() {
            listener.reload_pending(pending);
        }
    }

    pub(crate) fn send<T: std::any::Any + Send>(&self, message: T) -> Result<(), SendError<T>> {
        {
            let mut inbox = self.inbox();
            if inbox.closed {
                return Err(SendError::new(message));
            }
            inbox
                .rare
                .get_or_insert_with(Box::default)
                .messages
                .push_back(CustomMessage::new(message));
        }
        self.end.wake_all();
        Ok(())
    }

    /// The next reload or custom message, if any; `seen_reloads` is the
    /// receiver's count of reloads already delivered.
    pub(crate) fn take_message(&self, seen_reloads: &mut u32) -> Option<ControlMessage> {
        let taken = {
            let mut inbox = self.inbox();
            inbox.listening = true;
            if inbox.reloads == *seen_reloads {
                return inbox
                    .rare
                    .as_mut()?
                    .messages
                    .pop_front()
                    .map(ControlMessage::Custom);
            }
            *seen_reloads = inbox.reloads;
            !self.policy.passes_reloads_on() && std::mem::take(&mut inbox.reload_pending)
        };
        if taken {
            self.tell_reload_pending(false);
        }
        Some(ControlMessage::Reload)
    }

    /// A handle asked this child to stop, so its grace period has started.
    pub(crate) fn was_asked_to_stop(&self) -> bool {
        self.stop.load(Ordering::Acquire) & STOP_ASKED != 0
    }

    /// Shutdown was requested through this child's own handle before anyone
    /// else requested it.
    pub(crate) fn was_stopped_alone(&self) -> bool {
        self.stop.load(Ordering::Acquire) & STOP_ALONE != 0
    }

    /// Asks the child to stop for good, on its manager's behalf (the
    /// manager stops, or stops it in its turn): every attempt from now on
    /// sees it. Whether it was news.
    pub(crate) fn stop(&self) -> bool {
        let before = self.stop.fetch_or(STOP_FOR_GOOD, Ordering::AcqRel);
        if before & STOP_FOR_GOOD != 0 {
            return false;
        }
        self.stop_reached_tokens(None);
        true
    }

    /// Asks `attempt` alone to stop (a group restart, a stale heartbeat, a
    /// nested manager that stops by itself): the child's next attempt does
    /// not see it.
    pub(crate) fn stop_attempt(&self, attempt: u32) {
        let stamp = u64::from(attempt) << STOP_ATTEMPT_SHIFT;
        let mut now = self.stop.load(Ordering::Acquire);
        loop {
            // Only forward: a late stop of an earlier attempt must not take
            // back the stop of a later one, nor reach its token. One of the
            // same attempt found its token already.
            if now >> STOP_ATTEMPT_SHIFT >= u64::from(attempt) {
                return;
            }
            let next = (now & STOP_BITS) | stamp;
            match self
                .stop
                .compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        self.stop_reached_tokens(Some(attempt));
    }

    /// Whether the child was asked to stop for good.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) & STOP_FOR_GOOD != 0
    }

    /// Whether `attempt` was asked to stop, in any way: the child for good,
    /// the attempt alone, or the attempt's token cancelled by the process
    /// itself.
    pub(crate) fn stop_reached(&self, attempt: u32) -> bool {
        let now = self.stop.load(Ordering::Acquire);
        // Attempts count from 1: a stamp of 0 is no stop.
        let stamp = now >> STOP_ATTEMPT_SHIFT;
        if now & STOP_FOR_GOOD != 0 || (stamp != 0 && stamp == u64::from(attempt)) {
            return true;
        }
        now & STOP_TOKEN != 0
            && self
                .inbox()
                .tokens()
                .is_some_and(|tokens| tokens.attempt == attempt && tokens.current.is_cancelled())
    }

    /// Cancels the tokens made for the process that a stop reached (all of
    /// them for a stop for good, the one of `attempt` for a stop of it
    /// alone) and wakes everyone waiting on the child.
    fn stop_reached_tokens(&self, attempt: Option<u32>) {
        if self.stop.load(Ordering::Acquire) & STOP_TOKEN != 0 {
            let inbox = self.inbox();
            if let Some(tokens) = inbox.tokens() {
                match attempt {
                    None => tokens.root.cancel(),
                    Some(attempt) if tokens.attempt == attempt => tokens.current.cancel(),
                    Some(_) => {}
                }
            }
        }
        self.end.wake_all();
    }

    /// The token of `attempt`, made on first use: cancelled when the
    /// attempt is asked to stop in any way, and, for a stop for good, with
    /// the tokens of the attempts before it.
    pub(crate) fn token_of(&self, attempt: u32) -> CancellationToken {
        let token = {
            let mut inbox = self.inbox();
            self.stop.fetch_or(STOP_TOKEN, Ordering::AcqRel);
            let tokens = inbox
                .rare
                .get_or_insert_with(Box::default)
                .tokens
                .get_or_insert_with(|| {
                    let root = CancellationToken::new();
                    Tokens {
                        current: root.child_token(),
                        root,
                        attempt,
                    }
                });
            if attempt > tokens.attempt {
                tokens.current = tokens.root.child_token();
                tokens.attempt = attempt;
            }
            let token = if attempt < tokens.attempt {
                // A context that outlived its attempt: a token of its own,
                // which only a stop of the child reaches; the running
                // attempt's stays.
                tokens.root.child_token()
            } else {
                tokens.current.clone()
            };
            // Under the lock, after the token is there: a stop that set its
            // bit before cancels it here, one after finds it.
            let now = self.stop.load(Ordering::Acquire);
            if now & STOP_FOR_GOOD != 0 {
                tokens.root.cancel();
            } else if now >> STOP_ATTEMPT_SHIFT == u64::from(attempt) {
                token.cancel();
            }
            token
        };
        // A wait for the stop that began before the token was made looks
        // again, and waits for the token too.
        self.end.wake_all();
        token
    }

    /// The token of `attempt`, if the process has made one.
    pub(crate) fn made_token(&self, attempt: u32) -> Option<CancellationToken> {
        if self.stop.load(Ordering::Acquire) & STOP_TOKEN == 0 {
            return None;
        }
        self.inbox()
            .tokens()
            .filter(|tokens| tokens.attempt == attempt)
            .map(|tokens| tokens.current.clone())
    }

    /// Marks `attempt` ready; `true` if it was unready and still runs. A
    /// context of an ended attempt changes nothing.
    pub(crate) fn mark_ready(&self, attempt: u32) -> bool {
        let unready = progress(attempt, UNREADY);
        // AcqRel: pairs with the loop's `close_attempt`, so exactly one of
        // the two sees the attempt unready.
        if self
            .progress
            .compare_exchange(
                unready,
                progress(attempt, READY),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        if self.policy.announce_ready() || self.policy.reports_ready() {
            if let Some(listener) = self.listener.upgrade() {
                if self.policy.reports_ready() {
                    listener.counted_ready(true);
                }
                if self.policy.announce_ready() {
                    listener.child_ready(self.key());
                }
            }
        }
        true
    }

    /// Marks `attempt` unready again (a nested manager whose own child went
    /// down); `true` if it was ready and still runs. Only the attempt's own
    /// task may call it (a nested manager's loop does): the count goes up
    /// after the swap, which is safe only while the loop cannot close the
    /// attempt in between, that is while the attempt's task still runs.
    pub(crate) fn mark_unready(&self, attempt: u32) -> bool {
        let ready = progress(attempt, READY);
        if self
            .progress
            .compare_exchange(
                ready,
                progress(attempt, UNREADY),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        if self.policy.reports_ready() {
            if let Some(listener) = self.listener.upgrade() {
                listener.counted_ready(false);
            }
        }
        true
    }

    /// Ends the current attempt's readiness for good; whether it was ready.
    pub(crate) fn close_attempt(&self) -> bool {
        let attempt = self.attempt();
        self.progress
            .swap(progress(attempt, CLOSED), Ordering::AcqRel)
            & STATE_MASK
            == READY
    }

    /// Records a sign of life of `attempt` now, if it is still the current
    /// one; `base` is when the manager's run began. Nobody reads the beats
    /// of a child without a heartbeat timeout, so they are not kept.
    pub(crate) fn beat(&self, attempt: u32, base: tokio::time::Instant) {
        let Some(watch) = self.watched() else {
            return;
        };
        let now = self.progress.load(Ordering::Acquire);
        if now >> STATE_BITS == u64::from(attempt) && now & STATE_MASK != CLOSED {
            watch.last_beat.store(nanos_since(base), Ordering::Release);
        }
    }

    /// How long ago the last sign of life was (zero for a child without a
    /// heartbeat timeout, which is never stale).
    pub(crate) fn since_beat(&self, base: tokio::time::Instant) -> Duration {
        let Some(watch) = self.watched() else {
            return Duration::ZERO;
        };
        Duration::from_nanos(
            nanos_since(base).saturating_sub(watch.last_beat.load(Ordering::Acquire)),
        )
    }

    /// Its heartbeat timeout: it is failed when it goes this long without
    /// a heartbeat.
    pub(crate) fn stale_after(&self) -> Option<Duration> {
        self.watch.as_ref()?.stale_after
    }

    /// Its slow-poll threshold and measurements, if it has a threshold.
    pub(crate) fn polls(&self) -> Option<&PollWatch> {
        self.watch.as_ref()?.polls.as_ref()
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.progress.load(Ordering::Acquire) & STATE_MASK == READY
    }

    /// Tells the manager, if it is still there, that the current attempt's
    /// task has ended, and how. A child whose end is already final (its
    /// manager was abandoned, which aborts its task) has nobody to reap it:
    /// its report would only be kept.
    pub(crate) fn report_end(&self, end: AttemptEnd) {
        if self.is_finished() {
            return;
        }
        if let Some(listener) = self.listener.upgrade() {
            listener.attempt_ended(self.key(), end);
        }
    }

    /// Starts the next attempt, unready and alive as of now: counts it,
    /// forgets the last one's restart reason, and returns its number. The
    /// loop closes the previous attempt before.
    pub(crate) fn begin_attempt(&self, base: tokio::time::Instant) -> u32 {
        let attempt = self.attempt() + 1;
        if attempt > 1 {
            if let Some(rare) = &mut self.inbox().rare {
                rare.restart_reason = None;
            }
        }
        if let Some(watch) = self.watched() {
            watch.last_beat.store(nanos_since(base), Ordering::Release);
        }
        self.progress
            .store(progress(attempt, UNREADY), Ordering::Release);
        attempt
    }

    pub(crate) fn attempt(&self) -> u32 {
        u32::try_from(self.progress.load(Ordering::Acquire) >> STATE_BITS).unwrap_or(u32::MAX)
    }

    pub(crate) fn set_restart_reason(&self, reason: ShutdownReason) {
        self.inbox()
            .rare
            .get_or_insert_with(Box::default)
            .restart_reason = Some(reason);
    }

    pub(crate) fn restart_reason(&self) -> Option<ShutdownReason> {
        self.inbox().rare.as_ref()?.restart_reason.clone()
    }
}

impl Inbox {
    fn tokens(&self) -> Option<&Tokens> {
        self.rare.as_ref()?.tokens.as_ref()
    }
}

/// A child's core as it is now ([`ChildCore::current`]): the one asked
/// for, or, once its manager was restarted, the same child in the latest run.
pub(crate) enum Current<'a> {
    This(&'a ChildCore),
    Later(Arc<ChildCore>),
}

impl std::ops::Deref for Current<'_> {
    type Target = ChildCore;

    fn deref(&self) -> &ChildCore {
        match self {
            Current::This(core) => core,
            Current::Later(core) => core,
        }
    }
}

fn progress(attempt: u32, state: u64) -> u64 {
    (u64::from(attempt) << STATE_BITS) | state
}

fn nanos_since(base: tokio::time::Instant) -> u64 {
    u64::try_from(
        tokio::time::Instant::now()
            .saturating_duration_since(base)
            .as_nanos(),
    )
    .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core is 168 bytes (176 with metrics): with the `Arc`'s counts,
    /// 184, one of malloc's 192-byte chunks per child. Each 16 bytes more
    /// is a chunk size up.
    #[test]
    fn a_core_takes_168_bytes() {
        let metrics = if cfg!(feature = "metrics") { 8 } else { 0 };
        assert_eq!(size_of::<ChildCore>(), 168 + metrics);
        assert_eq!(size_of::<Mutex<Inbox>>(), 32);
    }

    /// Each flag of a policy is kept apart from the others, and so is its
    /// grace period; a child with a grace period alone is not watched.
    #[test]
    fn a_policy_is_kept_flag_by_flag() {
        let none = ChildPolicy {
            grace: None,
            background: false,
            significant: false,
            escalate: false,
            announce_ready: false,
            reports_ready: false,
            passes_reloads_on: false,
            undeclared_ready: false,
        };
        let setters: [fn(&mut ChildPolicy); 8] = [
            |policy| policy.grace = Some(Duration::from_millis(3)),
            |policy| policy.background = true,
            |policy| policy.significant = true,
            |policy| policy.escalate = true,
            |policy| policy.announce_ready = true,
            |policy| policy.reports_ready = true,
            |policy| policy.passes_reloads_on = true,
            |policy| policy.undeclared_ready = true,
        ];
        for set in setters {
            let mut policy = none;
            set(&mut policy);
            let core = ChildCore::new(
                ChildKey { slot: 3, id: 9 },
                ChildName::from(std::borrow::Cow::Borrowed("c")),
                policy,
                Weak::new(),
                Watched::default(),
                #[cfg(feature = "metrics")]
                Arc::default(),
            );
            assert_eq!(format!("{:?}", core.child_policy()), format!("{policy:?}"));
            assert!(core.watched().is_none());
            assert_eq!(core.key(), ChildKey { slot: 3, id: 9 });
        }
    }
}
