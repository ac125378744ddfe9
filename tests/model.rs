//! A model-based randomized test of the supervision tree.
//!
//! Each case is one seed. A SplitMix64 generator turns the seed into a plan:
//! a root manager with random settings (strategy, grace period,
//! auto-cleanup, ordered stop, a manager-wide restart limit) and a few
//! children, then a sequence of
//! operations: inserts of scripted children with random options (restart
//! policy with a fixed, jitter-free backoff and a restart limit, own grace
//! period, background, significant, escalate, reports-ready), bursts of 4
//! to 16 children of one spec inserted with no `.await` between them (so
//! that they wake the manager once, and end and are reaped together; more
//! would overflow the 1,024 events a subscription holds between the
//! model's reads), inserts of
//! nested managers with children of their own, stops, reloads and custom
//! messages through child handles, reloads, shutdowns and forced shutdowns
//! through manager handles, and advances of virtual time. About 45 % of the
//! nested managers are restartable subtrees, inserted with `OnFailure` or
//! `Always` (a limit of 1 to 3, a backoff); most of those get a child that
//! fails for good, or children that all complete, so that their runs end
//! by themselves and their parent starts them again. Two plans in five
//! insert a nested manager first, more often restartable, so that it has
//! the time to. Some operations
//! run back to back without letting the runtime turn in between, so that
//! the manager sees them in one turn.
//!
//! A scripted child says, per attempt, what it does: return `Ok`, fail or
//! panic after some virtual time, or hang; and what it does when asked to
//! stop: return after a delay, or ignore the request until it is aborted.
//! Every attempt holds a guard that counts it as alive until its future is
//! dropped.
//!
//! After every step that lets the runtime settle, and once more after the
//! root's run returned, the test checks the tree against a small reference
//! model:
//!
//! - a child's outcome, once set, never changes; it is one its script and
//!   what happened to it allow (a cooperative child that stops well within
//!   its grace period is never aborted unless a forced shutdown, an
//!   aborted ancestor or an ordered stop that may run out of the manager's
//!   grace period explains it), and once it is set no attempt of the
//!   child is alive and no two attempts ever ran at once;
//! - restart counts follow the policy: none without one, at most the limit
//!   for one-for-one and background children (each restart of an on-failure
//!   child follows an attempt scripted to fail), at most the sum of the
//!   siblings' limits under one-for-all and rest-for-one, and at most the
//!   manager's own limit (a group restart counts once);
//! - a one-for-one manager with a restart limit is asked to stop once its
//!   children's undisturbed timelines make one restart too many (the model
//!   merges the instants their restarts are decided and slides the window
//!   over them); a failure that names a manager's limit comes from a
//!   manager that has one;
//! - exactly, while nothing has interfered with it yet: a foreground child
//!   of a one-for-one manager follows its script's timeline (restart count
//!   and outcome at every step, from the backoff arithmetic and the limit)
//!   from its start, until its manager's restart limit trips;
//! - a child starts at its insert, unless its manager is busy: a child
//!   inserted while a one-for-all or rest-for-one group restart is in
//!   flight there (a foreground member shows as restarting), or into
//!   a nested manager whose run has not started, waits. A waiting child is
//!   not running, not ready, has no restarts and keeps its handle; it
//!   starts when the group's members have started again or its manager starts
//!   stopping (or, nested, when its manager's run starts), and the model
//!   takes its start from what it sees then (a probe's clock, or the
//!   record's uptime in the parent). A child may also wait when a group
//!   restart began at the very instant of its insert (a sibling's attempt,
//!   or a restartable subtree's run, ended then, and the loop saw that
//!   first); otherwise a child that did not wait starts exactly at its
//!   insert;
//! - a failure that is final stops the manager (escalation), a significant
//!   child's end stops it (unless its group restart stopped it for good),
//!   and a child does not end for good with restarts left unless its
//!   manager stops or its handle asked it to;
//! - handles refuse requests exactly when the process has ended; inserts
//!   are refused exactly when a manager's shutdown was requested
//!   (`ShuttingDown`) or its run ended (`Stopped`); a stop through a nested
//!   manager's handle is accepted exactly when it has not ended in its
//!   parent (between two runs of a restartable subtree too);
//! - a nested manager's runs are counted from its parent's events (each
//!   `Started` of it is one). The children inserted before its first run
//!   (its spec) get a new incarnation in each run: their handle's id changes
//!   exactly then and their outcome is cleared, and each starts its first
//!   attempt once per incarnation (an unended one has started in the
//!   current run, barring a group restart). A child inserted while its
//!   manager ran never runs again: its id and its outcome stay. "An outcome
//!   never changes" and the probe checks hold per incarnation; checks that
//!   read the manager's stop read a run that is over as stopped, and the
//!   exact timeline of a spec child in a later run starts with its
//!   incarnation;
//! - a restartable subtree is restarted like a leaf: its restart count in
//!   its parent within the limit (summed with its siblings' under a group
//!   strategy); in a one-for-one parent, a restart only after a failed run
//!   for `OnFailure`, never for `Never`, after the backoff of its failures
//!   in a row. A stop through its own `ManagerHandle`, also one before its
//!   first run, is for good: its parent starts it again only in a new run
//!   of its own;
//! - from the events, so that runs that began and ended between two checks
//!   count too: a foreground child of a one-for-one manager with a restart
//!   policy does not end for good with restarts left in its run unless its
//!   handle, something outside its manager, or the manager's own stop
//!   (announced, or set off by a sibling's end that stops it) explains it;
//! - a running manager whose foreground children have all ended is
//!   stopping (its background children); when nothing but that can explain
//!   its stop (no request from the test or an ancestor, its parent's
//!   group, a final failure, an abort or a significant child), all its
//!   foreground children have ended and its `shutdown_reason()` is `None`;
//! - a manager is ready exactly when each of its live reporting children is
//!   (a nested manager counting as ready when its run has started and its
//!   own children are ready, and unready again when one of them is not);
//! - with auto-cleanup the records a manager keeps are no more than its
//!   live children, and without it no more than its children: a restarted
//!   subtree drops its ended run's records;
//! - a manager whose shutdown was seen at `t` has returned by `t` plus the
//!   bound the model computes from the grace periods (the longest
//!   foreground grace, or the manager's for an ordered stop, plus the
//!   longest background grace, whose periods start only when the
//!   background children are asked; only the background part after a
//!   forced shutdown); a nested manager asked before its run started
//!   counts from its start, a restarted one from its latest run's;
//! - once the root's run returned: no child task is alive, every accepted
//!   child has an outcome that `wait` returns at once, every nested manager
//!   has one too, the run returned `Err` if a child without a restart policy
//!   failed and only if some child failed or was aborted, and the root
//!   refuses inserts and requests; no panic escapes.
//!
//! Everything runs on a current-thread runtime with paused time and jitter
//! off, so a seed always gives the same run. A failing seed is shrunk
//! (operations dropped one by one while the same check still fails), and
//! the test fails with each seed, its message and the shrunk trace.
//!
//! # Running
//!
//! - `cargo test --all-features --test model`: the default
//!   [`DEFAULT_CASES`] seeds, from seed 0.
//! - `PROCMGR_MODEL_CASES=100000 cargo test --release --test model`: more
//!   seeds; `PROCMGR_MODEL_FIRST=<n>` starts at another seed.
//! - `PROCMGR_MODEL_SEED=<n> cargo test --test model`: replays one seed;
//!   add `PROCMGR_MODEL_TRACE=1` to fail with its trace even when it
//!   passes, to see what it does, and `PROCMGR_MODEL_EVENTS=1` to see the
//!   tree's events in the trace.

use std::collections::HashMap;
use std::fmt;
use std::future::IntoFuture;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures::FutureExt;
use procmgr::{
    Backoff, ChildHandle, ChildOptions, ChildState, Context, ControlMessage, EventKind, Events,
    EventsError, Exit, FailureCause, InsertErrorKind, Jitter, ManagerHandle, NESTED_GRACE_MARGIN,
    Outcome, ProcessManager, Restart, RestartLimit, RunError, Runnable, ShutdownReason, Strategy,
    process_fn,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Seeds run when `PROCMGR_MODEL_CASES` is not set.
const DEFAULT_CASES: u64 = 500;
/// Failing seeds shrunk by default; the others are only listed.
const SHRUNK_SEEDS: usize = 4;

const MS: Duration = Duration::from_millis(1);
/// Rounding of tokio's millisecond timer, a few times over, in a stop bound.
const SLACK: Duration = Duration::from_millis(5);
/// Scripted stop delays and grace periods are at least this far apart, so
/// that the model never has to guess which of two timers fires first.
const MARGIN: Duration = Duration::from_millis(3);
/// A restart limit's window: longer than any case, so the limit is a count.
const WINDOW: Duration = Duration::from_secs(3600);
const BACKOFF_CAP: Duration = Duration::from_millis(200);
/// Polls of other tasks the test lets happen before it looks.
const SETTLE_YIELDS: usize = 100;

#[test]
fn the_tree_matches_the_model() {
    silence_scripted_panics();
    if let Some(seed) = env_u64("PROCMGR_MODEL_SEED") {
        let plan = Plan::generate(seed);
        match run_plan(&plan) {
            Ok(trace) if env_u64("PROCMGR_MODEL_TRACE").is_some() => {
                panic!("seed {seed} passes; trace:\n{}", trace.join("\n"))
            }
            Ok(_) => {}
            Err(failure) => panic!("{}", report(seed, &plan, failure, true)),
        }
        return;
    }
    let first = env_u64("PROCMGR_MODEL_FIRST").unwrap_or(0);
    let cases = env_u64("PROCMGR_MODEL_CASES").unwrap_or(DEFAULT_CASES);
    let mut reports = Vec::new();
    for seed in first..first + cases {
        let plan = Plan::generate(seed);
        if let Err(failure) = run_plan(&plan) {
            let shrink = reports.len() < SHRUNK_SEEDS;
            reports.push(report(seed, &plan, failure, shrink));
        }
    }
    assert!(
        reports.is_empty(),
        "{} of {cases} seeds failed (replay one with PROCMGR_MODEL_SEED=<seed>):\n\n{}",
        reports.len(),
        reports.join("\n\n")
    );
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

/// The default panic hook prints every panic; the scripted ones are noise.
fn silence_scripted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&SCRIPTED_PANIC) {
                default(info);
            }
        }));
    });
}

fn report(seed: u64, plan: &Plan, failure: Failure, shrink: bool) -> String {
    if !shrink {
        return format!("seed {seed}: {}", failure.message);
    }
    let (plan, failure) = shrink_plan(plan.clone(), failure);
    format!(
        "seed {seed}: {}\n  shrunk to {} steps:\n    {}",
        failure.message,
        plan.steps.len(),
        failure.trace.join("\n    ")
    )
}

// ---------------------------------------------------------------------------
// Random plans

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn ms(&mut self, choices: &[u64]) -> Duration {
        Duration::from_millis(self.pick(choices))
    }

    fn index(&mut self) -> u32 {
        self.next() as u32
    }
}

/// How an attempt ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    Err,
    Panic,
    Hang,
}

/// What an attempt does when asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnStop {
    ReturnAfter(Duration),
    Ignore,
}

/// How an attempt learns that it is asked to stop: from its messages
/// (`ControlMessage::Shutdown`), or only from a token it makes when it
/// starts, which a child has only if it asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Messages,
    Token,
    ChildToken,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    end: End,
    after: Duration,
    on_stop: OnStop,
    ready_after: Option<Duration>,
    watch: Watch,
}

impl Attempt {
    fn generate(rng: &mut Rng) -> Self {
        let end = match rng.below(20) {
            0..=4 => End::Ok,
            5..=7 => End::Err,
            8 => End::Panic,
            _ => End::Hang,
        };
        let on_stop = if rng.chance(20) {
            OnStop::Ignore
        } else {
            OnStop::ReturnAfter(rng.ms(&[0, 5, 30, 150, 500]))
        };
        Attempt {
            end,
            after: rng.ms(&[1, 10, 40, 100, 400]),
            on_stop,
            ready_after: rng.chance(50).then(|| rng.ms(&[0, 20])),
            watch: match rng.below(10) {
                0 => Watch::Token,
                1 => Watch::ChildToken,
                _ => Watch::Messages,
            },
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            End::Hang => f.write_str("hang")?,
            end => write!(f, "{end:?} after {:?}", self.after)?,
        }
        match self.on_stop {
            OnStop::ReturnAfter(delay) => write!(f, ", stops in {delay:?}")?,
            OnStop::Ignore => f.write_str(", ignores stop")?,
        }
        if let Some(ready) = self.ready_after {
            write!(f, ", ready after {ready:?}")?;
        }
        match self.watch {
            Watch::Messages => {}
            Watch::Token => f.write_str(", watches its token")?,
            Watch::ChildToken => f.write_str(", watches a child token")?,
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ChildSpec {
    /// One entry per attempt; the last one repeats.
    script: Vec<Attempt>,
    restart: Restart,
    backoff_floor: Duration,
    limit: u32,
    grace: Option<Duration>,
    background: bool,
    significant: bool,
    escalate: bool,
    reports_ready: bool,
}

impl ChildSpec {
    fn generate(rng: &mut Rng) -> Self {
        let attempts = 1 + rng.below(3);
        let restart = match rng.below(10) {
            0..=3 => Restart::Never,
            4..=6 => Restart::OnFailure,
            _ => Restart::Always,
        };
        let mut script: Vec<Attempt> = (0..attempts).map(|_| Attempt::generate(rng)).collect();
        if restart == Restart::Never && rng.chance(60) {
            // A failure without a restart stops the tree: keep them rare
            // enough that most cases live long enough to do something.
            for attempt in &mut script {
                if matches!(attempt.end, End::Err | End::Panic) {
                    attempt.end = End::Hang;
                }
            }
        }
        ChildSpec {
            script,
            restart,
            backoff_floor: rng.ms(&[0, 10, 50]),
            limit: rng.below(4) as u32,
            grace: rng.chance(40).then(|| rng.ms(&[10, 50, 200])),
            background: rng.chance(12),
            significant: rng.chance(8),
            escalate: !rng.chance(20),
            reports_ready: rng.chance(30),
        }
    }

    /// What a nested manager is as a child, as far as the model cares.
    fn manager(grace: Duration, significant: bool, restart: SubtreeRestart) -> Self {
        ChildSpec {
            script: Vec::new(),
            restart: restart.restart,
            backoff_floor: restart.backoff_floor,
            limit: restart.limit,
            grace: Some(grace),
            background: false,
            significant,
            escalate: true,
            reports_ready: true,
        }
    }

    fn attempt(&self, index: u32) -> Attempt {
        self.script[(index as usize).min(self.script.len() - 1)]
    }

    fn options(&self, name: String) -> ChildOptions {
        let backoff = Backoff::exponential(self.backoff_floor, BACKOFF_CAP)
            .jitter(Jitter::None)
            .reset_after(WINDOW);
        let options = ChildOptions::new()
            .name(name)
            .restart(self.restart)
            .backoff(backoff)
            .restart_limit(RestartLimit::new(self.limit, WINDOW))
            .background(self.background)
            .significant(self.significant)
            .escalate(self.escalate)
            .reports_ready(self.reports_ready);
        match self.grace {
            Some(grace) => options.grace_period(grace),
            None => options,
        }
    }
}

impl fmt::Display for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.restart)?;
        if self.restart != Restart::Never {
            write!(
                f,
                " (limit {}, backoff from {:?})",
                self.limit, self.backoff_floor
            )?;
        }
        if let Some(grace) = self.grace {
            write!(f, ", grace {grace:?}")?;
        }
        for (flag, name) in [
            (self.background, "background"),
            (self.significant, "significant"),
            (!self.escalate, "no-escalate"),
            (self.reports_ready, "reports-ready"),
        ] {
            if flag {
                write!(f, ", {name}")?;
            }
        }
        let script: Vec<String> = self.script.iter().map(ToString::to_string).collect();
        write!(f, "; script [{}]", script.join("; "))
    }
}

#[derive(Debug, Clone)]
struct ManagerSpec {
    strategy: Strategy,
    grace: Duration,
    auto_cleanup: bool,
    ordered_stop: bool,
    /// The manager-wide restart limit (restarts within [`WINDOW`]).
    restart_limit: Option<u32>,
}

impl ManagerSpec {
    fn generate(rng: &mut Rng) -> Self {
        ManagerSpec {
            strategy: rng.pick(&[
                Strategy::OneForOne,
                Strategy::OneForAll,
                Strategy::RestForOne,
            ]),
            grace: rng.ms(&[20, 100, 300]),
            auto_cleanup: rng.chance(70),
            ordered_stop: rng.chance(20),
            restart_limit: rng.chance(35).then(|| rng.below(4) as u32),
        }
    }

    fn build(&self, name: String) -> ProcessManager {
        let builder = ProcessManager::builder()
            .name(name)
            .strategy(self.strategy)
            .grace_period(self.grace)
            .auto_cleanup(self.auto_cleanup)
            .ordered_stop(self.ordered_stop);
        match self.restart_limit {
            Some(restarts) => builder.restart_limit(RestartLimit::new(restarts, WINDOW)),
            None => builder,
        }
        .build()
    }
}

impl fmt::Display for ManagerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}, grace {:?}", self.strategy, self.grace)?;
        if !self.auto_cleanup {
            f.write_str(", keeps records")?;
        }
        if self.ordered_stop {
            f.write_str(", ordered stop")?;
        }
        if let Some(restarts) = self.restart_limit {
            write!(f, ", manager limit {restarts}")?;
        }
        Ok(())
    }
}

/// How a nested manager's parent restarts it: `Restart::Never` for a
/// subtree that runs once, else a restartable subtree whose run is started
/// again, with the children it was built with, after it ended.
#[derive(Debug, Clone, Copy)]
struct SubtreeRestart {
    restart: Restart,
    limit: u32,
    backoff_floor: Duration,
}

impl SubtreeRestart {
    fn generate(rng: &mut Rng) -> Self {
        let restart = match rng.below(100) {
            0..=59 => Restart::Never,
            60..=84 => Restart::OnFailure,
            _ => Restart::Always,
        };
        SubtreeRestart {
            restart,
            limit: 1 + rng.below(3) as u32,
            backoff_floor: rng.ms(&[0, 10, 50]),
        }
    }

    /// The options a parent gets with the subtree: none for one that runs
    /// once, so that it is inserted as before restartable subtrees.
    fn options(&self, options: ChildOptions) -> ChildOptions {
        if self.restart == Restart::Never {
            return options;
        }
        let backoff = Backoff::exponential(self.backoff_floor, BACKOFF_CAP)
            .jitter(Jitter::None)
            .reset_after(WINDOW);
        options
            .restart(self.restart)
            .backoff(backoff)
            .restart_limit(RestartLimit::new(self.limit, WINDOW))
    }
}

impl fmt::Display for SubtreeRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.restart)?;
        if self.restart != Restart::Never {
            write!(
                f,
                " (limit {}, backoff from {:?})",
                self.limit, self.backoff_floor
            )?;
        }
        Ok(())
    }
}

/// Targets are indexes taken modulo what exists when the step runs, so a
/// plan stays valid when the shrinker drops steps.
#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    Insert {
        manager: u32,
        child: ChildSpec,
    },
    /// `count` children of one spec at once, with no `.await` between
    /// them: one wake-up of the manager for all, and ends that come
    /// together, reaped together.
    InsertBurst {
        manager: u32,
        child: ChildSpec,
        count: u32,
    },
    InsertManager {
        parent: u32,
        spec: ManagerSpec,
        grace: Option<Duration>,
        significant: bool,
        children: Vec<ChildSpec>,
        restart: SubtreeRestart,
    },
    StopChild(u32),
    ReloadChild(u32),
    SendChild(u32),
    ReloadManager(u32),
    ShutdownManager(u32),
    ForceManager(u32),
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// Let the runtime settle and check the model after this step.
    settle: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    root: ManagerSpec,
    initial: Vec<ChildSpec>,
    steps: Vec<Step>,
    /// How the case ends: a forced shutdown of the root instead of a
    /// graceful one.
    force_at_end: bool,
}

impl Plan {
    fn generate(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let root = ManagerSpec::generate(&mut rng);
        let initial = (0..1 + rng.below(4))
            .map(|_| ChildSpec::generate(&mut rng))
            .collect();
        let steps = (0..5 + rng.below(30))
            .map(|_| Step {
                op: Op::generate(&mut rng),
                settle: !rng.chance(15),
            })
            .collect();
        let mut plan = Plan {
            root,
            initial,
            steps,
            force_at_end: rng.chance(25),
        };
        if rng.chance(40) {
            // A subtree from the start has the time to end its runs and be
            // restarted: most of these are restartable.
            let mut op = Op::insert_manager(&mut rng);
            if let Op::InsertManager { restart, .. } = &mut op {
                if restart.restart == Restart::Never && rng.chance(35) {
                    restart.restart = Restart::OnFailure;
                }
            }
            plan.steps.insert(
                0,
                Step {
                    op: op.provoke_restarts(&mut rng),
                    settle: true,
                },
            );
        }
        plan
    }
}

impl Op {
    fn insert_manager(rng: &mut Rng) -> Self {
        Op::InsertManager {
            parent: rng.index(),
            spec: ManagerSpec::generate(rng),
            grace: rng.chance(30).then(|| rng.ms(&[10, 50, 200])),
            significant: rng.chance(10),
            children: (0..1 + rng.below(3))
                .map(|_| ChildSpec::generate(rng))
                .collect(),
            restart: SubtreeRestart::generate(rng),
        }
        .provoke_restarts(rng)
    }

    /// Makes most restartable subtrees end their runs by themselves, which
    /// random children seldom do: a child that fails for good (and
    /// escalates), or, for `Restart::Always`, children that all complete.
    fn provoke_restarts(mut self, rng: &mut Rng) -> Self {
        let Op::InsertManager {
            children, restart, ..
        } = &mut self
        else {
            return self;
        };
        if restart.restart == Restart::Never || rng.chance(20) {
            return self;
        }
        if restart.restart == Restart::Always && rng.chance(40) {
            for child in children.iter_mut() {
                child.restart = Restart::Never;
                child.background = false;
                child.script[0].end = End::Ok;
            }
        } else {
            // It fails for good at once, or after its own restarts.
            let index = rng.below(children.len() as u64) as usize;
            let child = &mut children[index];
            child.restart = rng.pick(&[Restart::Never, Restart::OnFailure]);
            child.background = false;
            child.escalate = true;
            for attempt in &mut child.script {
                attempt.end = rng.pick(&[End::Err, End::Err, End::Panic]);
                attempt.after = rng.ms(&[1, 10, 40]);
            }
        }
        self
    }

    fn generate(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=29 => Op::Advance(rng.ms(&[0, 1, 5, 10, 20, 50, 100, 300])),
            30..=42 => Op::Insert {
                manager: rng.index(),
                child: ChildSpec::generate(rng),
            },
            43..=46 => Op::InsertBurst {
                manager: rng.index(),
                child: ChildSpec::generate(rng),
                count: 4 + rng.below(13) as u32,
            },
            47..=55 => Op::insert_manager(rng),
            56..=67 => Op::StopChild(rng.index()),
            68..=75 => Op::ReloadChild(rng.index()),
            76..=83 => Op::SendChild(rng.index()),
            84..=86 => Op::ReloadManager(rng.index()),
            87..=95 => Op::ShutdownManager(rng.index()),
            _ => Op::ForceManager(rng.index()),
        }
    }
}

// ---------------------------------------------------------------------------
// Scripted children

const SCRIPTED_PANIC: &str = "scripted panic";

/// What the test sees of one child's attempts.
#[derive(Default)]
struct Probe {
    /// Attempts whose future exists.
    alive: AtomicUsize,
    /// The incarnations that ran, oldest first: the id the child had in
    /// each (a spec child of a restarted subtree has a new one per run of
    /// its manager), with the highest attempt number that started in it and
    /// how many of its attempts started from the first.
    incarnations: Mutex<Vec<Incarnation>>,
    /// Two attempts were alive at once.
    overlapped: AtomicBool,
    /// When the first attempt started.
    first_start: Mutex<Option<Instant>>,
    /// When each attempt ended (its future was dropped).
    ends: Mutex<Vec<Instant>>,
}

#[derive(Debug, Clone, Copy)]
struct Incarnation {
    id: u64,
    /// When its first attempt started.
    started: Instant,
    attempts_seen: u32,
    first_attempts: u32,
}

/// Held by a running attempt: counts it as alive until its future is dropped.
struct Alive {
    probe: Arc<Probe>,
    manager: Arc<AtomicUsize>,
}

impl Alive {
    fn enter(probe: Arc<Probe>, manager: Arc<AtomicUsize>, id: u64, attempt: u32) -> Self {
        if probe.alive.fetch_add(1, Ordering::SeqCst) > 0 {
            probe.overlapped.store(true, Ordering::SeqCst);
        }
        {
            let mut incarnations = probe.incarnations.lock().expect("the probe's lock");
            let first = u32::from(attempt == 1);
            match incarnations.last_mut() {
                Some(latest) if latest.id == id => {
                    latest.attempts_seen = latest.attempts_seen.max(attempt);
                    latest.first_attempts += first;
                }
                _ => incarnations.push(Incarnation {
                    id,
                    started: Instant::now(),
                    attempts_seen: attempt,
                    first_attempts: first,
                }),
            }
        }
        probe
            .first_start
            .lock()
            .expect("the probe's lock")
            .get_or_insert_with(Instant::now);
        manager.fetch_add(1, Ordering::SeqCst);
        Alive { probe, manager }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.probe.alive.fetch_sub(1, Ordering::SeqCst);
        self.manager.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut ends) = self.probe.ends.lock() {
            ends.push(Instant::now());
        }
    }
}

fn scripted(
    name: String,
    spec: &ChildSpec,
    probe: &Arc<Probe>,
    manager: &Arc<AtomicUsize>,
) -> impl Runnable + use<> {
    let script = Arc::new(spec.clone());
    let probe = Arc::clone(probe);
    let manager = Arc::clone(manager);
    process_fn(name, move |ctx| {
        let alive = Alive::enter(
            Arc::clone(&probe),
            Arc::clone(&manager),
            ctx.id(),
            ctx.attempt(),
        );
        let attempt = script.attempt(ctx.attempt() - 1);
        run_attempt(ctx, attempt, alive)
    })
}

async fn run_attempt(mut ctx: Context, attempt: Attempt, _alive: Alive) -> Result<(), String> {
    let far = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);
    let action = tokio::time::sleep_until(match attempt.end {
        End::Hang => far,
        _ => Instant::now() + attempt.after,
    });
    let ready = tokio::time::sleep_until(attempt.ready_after.map_or(far, |d| Instant::now() + d));
    let stopped = tokio::time::sleep_until(far);
    tokio::pin!(action, ready, stopped);
    // Made at the start: a stop that came before is seen at once.
    let token = match attempt.watch {
        Watch::Messages => None,
        Watch::Token => Some(ctx.token()),
        Watch::ChildToken => Some(ctx.child_token()),
    };
    let watched = async {
        match &token {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(watched);
    let mut marked = false;
    let mut stopping = false;
    // With a token, the messages say nothing of the stop: only the token
    // does, so a token the stop missed would leave the attempt running.
    let mut messages_done = false;
    loop {
        tokio::select! {
            () = &mut action => match attempt.end {
                End::Ok => return Ok(()),
                End::Err => return Err("scripted failure".to_owned()),
                End::Panic => std::panic::panic_any(SCRIPTED_PANIC),
                End::Hang => unreachable!("a hanging attempt's timer is ten years out"),
            },
            () = &mut ready, if !marked => {
                marked = true;
                ctx.mark_ready();
            }
            () = &mut watched, if !stopping => {
                stopping = true;
                if let OnStop::ReturnAfter(delay) = attempt.on_stop {
                    stopped.as_mut().reset(Instant::now() + delay);
                }
            }
            message = ctx.recv(), if !stopping && !messages_done => match message {
                Some(ControlMessage::Shutdown) | None if token.is_some() => messages_done = true,
                Some(ControlMessage::Shutdown) | None => {
                    stopping = true;
                    if let OnStop::ReturnAfter(delay) = attempt.on_stop {
                        stopped.as_mut().reset(Instant::now() + delay);
                    }
                }
                // Reloads and custom messages are read and change nothing.
                Some(_) => {}
            },
            () = &mut stopped => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// The model

/// Whether a group restart (one-for-all, rest-for-one) is in flight in the
/// manager: its members wait for the group, held (restarting at no time set
/// yet) or scheduled (restarting at the group's time). Under a group
/// strategy a foreground child restarts only with its group; `background`
/// names the children that restart alone.
fn group_in_flight(manager: &Manager, background: &[&str]) -> bool {
    manager.spec.strategy != Strategy::OneForOne
        && manager.handle.snapshot().iter().any(|info| {
            matches!(info.state(), ChildState::Restarting { .. })
                && !background.contains(&info.name())
        })
}

/// The timeline of a child that nothing interferes with: how many restarts
/// it has had at `at`, and how it ended if it has.
struct Natural {
    restarts: u32,
    end: Option<(Duration, End)>,
}

fn natural(spec: &ChildSpec, start: Duration, at: Duration) -> Natural {
    let mut begin = start;
    let mut restarts = 0;
    let mut failures_in_a_row = 0u32;
    loop {
        let attempt = spec.attempt(restarts);
        if attempt.end == End::Hang || begin + attempt.after > at {
            return Natural {
                restarts,
                end: None,
            };
        }
        let ended = begin + attempt.after;
        let failed = attempt.end != End::Ok;
        let restart = match spec.restart {
            Restart::Never => false,
            Restart::OnFailure => failed,
            _ => true,
        };
        if !restart || restarts >= spec.limit {
            return Natural {
                restarts,
                end: Some((ended, attempt.end)),
            };
        }
        let delay = if failed {
            failures_in_a_row += 1;
            backoff(spec.backoff_floor, failures_in_a_row)
        } else {
            failures_in_a_row = 0;
            Duration::ZERO
        };
        if ended + delay > at {
            return Natural {
                restarts,
                end: None,
            };
        }
        restarts += 1;
        begin = ended + delay;
    }
}

/// When an undisturbed child's manager decided to restart it, up to `at`:
/// the instants its attempts ended and its policy and own limit allowed a
/// restart. These are what a manager-wide restart limit counts.
fn restart_decisions(spec: &ChildSpec, start: Duration, at: Duration) -> Vec<Duration> {
    let mut decisions = Vec::new();
    let mut begin = start;
    let mut failures_in_a_row = 0u32;
    loop {
        let restarts = decisions.len() as u32;
        let attempt = spec.attempt(restarts);
        if attempt.end == End::Hang || begin + attempt.after > at {
            return decisions;
        }
        let ended = begin + attempt.after;
        let failed = attempt.end != End::Ok;
        let restart = match spec.restart {
            Restart::Never => false,
            Restart::OnFailure => failed,
            _ => true,
        };
        if !restart || restarts >= spec.limit {
            return decisions;
        }
        decisions.push(ended);
        let delay = if failed {
            failures_in_a_row += 1;
            spec.backoff_floor
                .checked_mul(1 << (failures_in_a_row - 1).min(20))
                .unwrap_or(BACKOFF_CAP)
                .min(BACKOFF_CAP.max(spec.backoff_floor))
        } else {
            failures_in_a_row = 0;
            Duration::ZERO
        };
        if ended + delay > at {
            return decisions;
        }
        begin = ended + delay;
    }
}

/// The first of `decisions` (sorted) that a limit of `restarts` within
/// [`WINDOW`] refuses.
fn first_refused(decisions: &[Duration], restarts: u32) -> Option<Duration> {
    let mut recent = std::collections::VecDeque::new();
    for &at in decisions {
        while recent.front().is_some_and(|&oldest| at - oldest >= WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= restarts as usize {
            return Some(at);
        }
        recent.push_back(at);
    }
    None
}

/// The exponential, jitter-free backoff after `failures_in_a_row` failures.
fn backoff(floor: Duration, failures_in_a_row: u32) -> Duration {
    let exact = floor
        .checked_mul(1 << (failures_in_a_row - 1).min(20))
        .unwrap_or(BACKOFF_CAP);
    exact.min(BACKOFF_CAP.max(floor))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completed,
    Stopped,
    Failed,
    Panicked,
    Aborted,
    Other,
}

fn kind(outcome: &Outcome) -> Kind {
    match outcome {
        Outcome::Completed => Kind::Completed,
        Outcome::Stopped => Kind::Stopped,
        Outcome::Failed(_) => Kind::Failed,
        Outcome::Panicked(_) => Kind::Panicked,
        Outcome::Aborted => Kind::Aborted,
        _ => Kind::Other,
    }
}

fn natural_kind(end: End) -> Kind {
    match end {
        End::Ok => Kind::Completed,
        End::Err => Kind::Failed,
        End::Panic => Kind::Panicked,
        End::Hang => Kind::Other,
    }
}

struct Manager {
    spec: ManagerSpec,
    handle: ManagerHandle,
    depth: usize,
    /// Its index among the children, when it is nested.
    as_child: Option<usize>,
    /// Attempts of its scripted children that are alive.
    live: Arc<AtomicUsize>,
    children: Vec<usize>,
    /// When its shutdown was first seen requested, and the check before,
    /// when it was not yet: it was requested in between.
    stop_seen: Option<(Duration, Duration)>,
    forced_at: Option<Duration>,
    /// The test asked it (or forced it) to shut down through its handle.
    requested: bool,
    /// Its path, as its parent's events name it.
    path: String,
    runs: Runs,
}

/// What the model knows of a manager's runs, from its parent's events: a
/// nested manager runs again when its parent restarts it (a restartable
/// subtree), or when its parent runs again and it is one of the children
/// its parent was built with.
#[derive(Default)]
struct Runs {
    /// Runs started: its attempts in its parent, in all of its parent's
    /// runs. The root's one run counts from the start.
    started: u32,
    /// Runs the model has followed into the children's incarnations.
    followed: u32,
    /// When the latest run followed started.
    latest_start: Option<Duration>,
    /// Its restart policy's failures in a row, for the backoff, and whether
    /// the attempt that ended last failed.
    failures_in_a_row: u32,
    last_failed: bool,
    /// A stop through its own handle was accepted: its parent does not
    /// restart it (until a run of its parent starts it again).
    for_good: bool,
    /// Its parent aborted one of its runs.
    aborted: bool,
    /// Its current run is stopping: it said so, or a child's end that
    /// stops it came first.
    stopping: bool,
    /// When its restarts were seen: the events are read at each insert, so
    /// one seen at the time of an insert came just then.
    restarts_seen: Vec<Duration>,
}

struct Child {
    name: String,
    manager: usize,
    spec: ChildSpec,
    /// The manager it is, when it is one.
    nested: Option<usize>,
    probe: Arc<Probe>,
    handle: ChildHandle,
    inserted: Duration,
    /// Its grace period in its manager.
    grace: Duration,
    /// It was inserted while its manager could not start it: a group
    /// restart was in flight there, or the manager itself had not started.
    waits: bool,
    /// When its first attempt (or its run, for a nested manager) started:
    /// its insert, unless it waited; then as seen once it started.
    started: Option<Duration>,
    /// Its start has been seen where the model expected it.
    start_confirmed: bool,
    stopped_at: Option<Duration>,
    /// The outcome of its current incarnation, once seen.
    first_outcome: Option<String>,
    /// It was inserted into a nested manager before that manager's first
    /// run: it is part of the manager's spec, started again in each run.
    in_spec: bool,
    /// Which run of its manager the child's handle speaks of: the run it
    /// was inserted into, or for a spec child its manager's latest.
    run: u32,
    /// The id its handle gave in that run.
    id: u64,
}

struct Failure {
    message: String,
    trace: Vec<String>,
}

/// Runs a plan on a fresh paused runtime; its trace when it passes.
fn run_plan(plan: &Plan) -> Result<Vec<String>, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let mut trace = Vec::new();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(execute(plan, &mut trace))
    }));
    let message = match result {
        Ok(Ok(())) => return Ok(trace),
        Ok(Err(message)) => message,
        Err(panic) => format!("the test panicked: {}", panic_text(&*panic)),
    };
    Err(Failure { message, trace })
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned())
}

async fn execute(plan: &Plan, trace: &mut Vec<String>) -> Result<(), String> {
    let root = plan.root.build("m0".to_owned());
    let mut world = World {
        origin: Instant::now(),
        managers: Vec::new(),
        children: Vec::new(),
        trace,
        last_check: Duration::ZERO,
        root_result: None,
        events: root.handle().subscribe(),
        restarts_in_run: HashMap::new(),
        log_events: env_u64("PROCMGR_MODEL_EVENTS").is_some(),
    };
    world.trace.push(format!("m0: root, {}", plan.root));
    world.managers.push(Manager {
        spec: plan.root.clone(),
        handle: root.handle(),
        depth: 0,
        as_child: None,
        live: Arc::default(),
        children: Vec::new(),
        stop_seen: None,
        forced_at: None,
        requested: false,
        path: "m0".to_owned(),
        runs: Runs {
            started: 1,
            followed: 1,
            ..Runs::default()
        },
    });
    for spec in &plan.initial {
        world.insert(0, spec)?;
    }
    let mut run = tokio::spawn(root.into_future());
    world.settle_and_check(&mut run).await?;
    for step in &plan.steps {
        if world.root_result.is_some() {
            // `after_the_run` checks that an ended root refuses everything.
            break;
        }
        world.apply(&step.op).await?;
        if step.settle {
            world.settle_and_check(&mut run).await?;
        }
    }
    let end = if plan.force_at_end {
        Op::ForceManager(0)
    } else {
        Op::ShutdownManager(0)
    };
    if world.root_result.is_none() {
        world.apply(&end).await?;
        world.settle_and_check(&mut run).await?;
    }
    let give_up = world.now() + Duration::from_secs(60);
    while world.root_result.is_none() {
        if world.now() > give_up {
            return Err("the root's run has not returned a minute after its shutdown".into());
        }
        tokio::time::sleep(50 * MS).await;
        world.settle_and_check(&mut run).await?;
    }
    world.after_the_run()
}

struct World<'t> {
    origin: Instant,
    managers: Vec<Manager>,
    children: Vec<Child>,
    trace: &'t mut Vec<String>,
    last_check: Duration,
    root_result: Option<Result<Exit, RunError>>,
    /// Every event of the tree, from the root's hub.
    events: Events,
    /// Restarts of each child in its current run, from the events.
    restarts_in_run: HashMap<usize, u32>,
    /// `PROCMGR_MODEL_EVENTS` is set: the trace shows every event.
    log_events: bool,
}

impl World<'_> {
    fn now(&self) -> Duration {
        Instant::now() - self.origin
    }

    fn log(&mut self, line: String) {
        let now = self.now().as_millis();
        self.trace.push(format!("{now:>5}ms {line}"));
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Advance(duration) => {
                self.log(format!("advance {duration:?}"));
                if duration.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(*duration).await;
                }
            }
            Op::Insert { manager, child } => {
                let manager = *manager as usize % self.managers.len();
                self.insert(manager, child)?;
            }
            Op::InsertBurst {
                manager,
                child,
                count,
            } => {
                let manager = *manager as usize % self.managers.len();
                for _ in 0..*count {
                    self.insert(manager, child)?;
                }
            }
            Op::InsertManager {
                parent,
                spec,
                grace,
                significant,
                children,
                restart,
            } => self.insert_manager(*parent, spec, *grace, *significant, children, *restart)?,
            Op::StopChild(target) => {
                if let Some(index) = self.target(*target) {
                    let result = self.children[index].handle.request_shutdown();
                    self.request("stop", index, result.is_ok())?;
                    if result.is_ok() && self.children[index].stopped_at.is_none() {
                        self.children[index].stopped_at = Some(self.now());
                    }
                }
            }
            Op::ReloadChild(target) => {
                if let Some(index) = self.target(*target) {
                    let result = self.children[index].handle.request_reload();
                    self.request("reload", index, result.is_ok())?;
                }
            }
            Op::SendChild(target) => {
                if let Some(index) = self.target(*target) {
                    let result = self.children[index].handle.send(*target);
                    self.request("send to", index, result.is_ok())?;
                }
            }
            Op::ReloadManager(target) => {
                let index = *target as usize % self.managers.len();
                let result = self.managers[index].handle.request_reload();
                self.manager_request("reload", index, result.is_ok(), false)?;
            }
            Op::ShutdownManager(target) => {
                let index = *target as usize % self.managers.len();
                let result = self.managers[index].handle.request_shutdown();
                self.manager_request("shut down", index, result.is_ok(), true)?;
                self.managers[index].requested |= result.is_ok();
            }
            Op::ForceManager(target) => {
                let index = *target as usize % self.managers.len();
                let result = self.managers[index]
                    .handle
                    .force_shutdown(ShutdownReason::Requested);
                self.manager_request("force", index, result.is_ok(), true)?;
                self.managers[index].requested |= result.is_ok();
                if result.is_ok() && self.managers[index].forced_at.is_none() {
                    self.managers[index].forced_at = Some(self.now());
                }
            }
        }
        Ok(())
    }

    fn target(&self, target: u32) -> Option<usize> {
        (!self.children.is_empty()).then(|| target as usize % self.children.len())
    }

    /// A child handle accepts a request exactly when its child has not ended.
    fn request(&mut self, what: &str, index: usize, accepted: bool) -> Result<(), String> {
        let child = &self.children[index];
        let ended = child.handle.outcome();
        let line = format!(
            "{what} {}: {}",
            child.name,
            if accepted { "accepted" } else { "refused" }
        );
        self.log(line);
        if accepted == ended.is_some() {
            let child = &self.children[index];
            return Err(format!(
                "{what} {} was {} although its outcome is {ended:?}",
                child.name,
                if accepted { "accepted" } else { "refused" },
            ));
        }
        Ok(())
    }

    /// A manager handle accepts a request exactly when its run has not
    /// ended, and a stop of a nested manager exactly when it has not ended
    /// in its parent: between two runs of a restartable subtree too. Such a
    /// stop is for good: its parent does not start it again.
    fn manager_request(
        &mut self,
        what: &str,
        index: usize,
        accepted: bool,
        stop: bool,
    ) -> Result<(), String> {
        let ended = match (stop, self.managers[index].as_child) {
            (true, Some(child)) => self.children[child].handle.outcome(),
            _ => self.managers[index].handle.outcome(),
        };
        if stop && accepted && index > 0 {
            self.drain_events()?;
            self.managers[index].runs.for_good = true;
        }
        self.log(format!(
            "{what} m{index}: {}",
            if accepted { "accepted" } else { "refused" }
        ));
        if accepted == ended.is_some() {
            return Err(format!(
                "{what} m{index} was {} although its outcome is {ended:?}",
                if accepted { "accepted" } else { "refused" },
            ));
        }
        Ok(())
    }

    fn insert(&mut self, manager: usize, spec: &ChildSpec) -> Result<(), String> {
        let index = self.children.len();
        let name = format!("c{index}");
        let probe = Arc::new(Probe::default());
        let runnable = scripted(name.clone(), spec, &probe, &self.managers[manager].live);
        let waits = self.would_wait(manager);
        let in_spec = self.not_started(manager);
        self.drain_events()?;
        let run = self.managers[manager].runs.started.max(1);
        let handle = &self.managers[manager].handle;
        let closed = handle.is_shutdown_requested() || handle.outcome().is_some();
        match handle.insert_with(runnable, spec.options(name.clone())) {
            Ok(handle) => {
                self.log(format!(
                    "insert {name} into m{manager}: {spec}{}",
                    if waits { " (waits)" } else { "" }
                ));
                if closed {
                    return Err(format!(
                        "m{manager} accepted {name} after its shutdown was requested"
                    ));
                }
                let grace = spec.grace.unwrap_or(self.managers[manager].spec.grace);
                let id = handle.id();
                self.children.push(Child {
                    name,
                    manager,
                    spec: spec.clone(),
                    nested: None,
                    probe,
                    handle,
                    inserted: self.now(),
                    grace,
                    waits,
                    started: (!waits).then(|| self.now()),
                    start_confirmed: false,
                    stopped_at: None,
                    first_outcome: None,
                    in_spec,
                    run,
                    id,
                });
                self.managers[manager].children.push(index);
            }
            Err(error) => {
                self.log(format!("insert into m{manager} refused: {error}"));
                self.check_refusal(manager, error.kind())?;
            }
        }
        Ok(())
    }

    /// An insert is refused with `ShuttingDown` from the moment the
    /// manager's shutdown is requested (by anyone, or because only
    /// background children are left), with `Stopped` once it has ended, and
    /// not otherwise: every name the test gives is unique.
    fn check_refusal(&self, manager: usize, kind: InsertErrorKind) -> Result<(), String> {
        let handle = &self.managers[manager].handle;
        let expected = if handle.outcome().is_some() {
            Some(InsertErrorKind::Stopped)
        } else if handle.is_shutdown_requested() {
            Some(InsertErrorKind::ShuttingDown)
        } else {
            None
        };
        if expected != Some(kind) {
            return Err(format!(
                "m{manager} refused an insert with {kind:?}; expected {expected:?}"
            ));
        }
        Ok(())
    }

    /// The record of a child in its manager, as a snapshot shows it now.
    fn record(&self, index: usize) -> Option<procmgr::ChildInfo> {
        let child = &self.children[index];
        self.managers[child.manager]
            .handle
            .snapshot()
            .into_iter()
            .find(|info| info.name() == child.name)
    }

    /// Whether a nested manager's run has not started: its record in its
    /// parent is still waiting to be started.
    fn not_started(&self, manager: usize) -> bool {
        self.managers[manager].as_child.is_some_and(|child| {
            self.record(child)
                .is_some_and(|info| matches!(info.state(), ChildState::Starting))
        })
    }

    /// Whether a child inserted into the manager now waits before it
    /// starts: the manager has not started, or a group restart is in flight
    /// there (the manager is busy until the group's members are scheduled
    /// again, or until it stops).
    fn would_wait(&self, manager: usize) -> bool {
        self.not_started(manager) || self.group_in_flight(manager)
    }

    fn group_in_flight(&self, manager: usize) -> bool {
        let manager = &self.managers[manager];
        let background: Vec<&str> = manager
            .children
            .iter()
            .map(|&child| &self.children[child])
            .filter(|child| child.spec.background)
            .map(|child| child.name.as_str())
            .collect();
        group_in_flight(manager, &background)
    }

    fn insert_manager(
        &mut self,
        parent: u32,
        spec: &ManagerSpec,
        grace: Option<Duration>,
        significant: bool,
        children: &[ChildSpec],
        restart: SubtreeRestart,
    ) -> Result<(), String> {
        let parents: Vec<usize> = (0..self.managers.len())
            .filter(|&m| self.managers[m].depth < 2)
            .collect();
        let parent = parents[parent as usize % parents.len()];
        let index = self.managers.len();
        let name = format!("m{index}");
        let manager = spec.build(name.clone());
        let handle = manager.handle();
        let mut options = restart.options(ChildOptions::new().significant(significant));
        if let Some(grace) = grace {
            options = options.grace_period(grace);
        }
        let closed = {
            let parent = &self.managers[parent].handle;
            parent.is_shutdown_requested() || parent.outcome().is_some()
        };
        let waits = self.would_wait(parent);
        let child = match self.managers[parent].handle.insert_with(manager, options) {
            Ok(child) => child,
            Err(error) => {
                self.log(format!("insert manager into m{parent} refused: {error}"));
                return self.check_refusal(parent, error.kind());
            }
        };
        self.log(format!(
            "insert {name} into m{parent}: {spec}, {restart}{}{}{}",
            grace.map_or(String::new(), |g| format!(", grace {g:?} in parent")),
            if significant { ", significant" } else { "" },
            if waits { " (waits)" } else { "" },
        ));
        if closed {
            return Err(format!(
                "m{parent} accepted {name} after its shutdown was requested"
            ));
        }
        let as_child = self.children.len();
        let grace = grace.unwrap_or(spec.grace + NESTED_GRACE_MARGIN);
        self.drain_events()?;
        let path = format!("{}/{name}", self.managers[parent].path);
        let (in_spec, id) = (self.not_started(parent), child.id());
        self.children.push(Child {
            name,
            manager: parent,
            spec: ChildSpec::manager(grace, significant, restart),
            nested: Some(index),
            probe: Arc::default(),
            handle: child,
            inserted: self.now(),
            grace,
            waits,
            started: (!waits).then(|| self.now()),
            start_confirmed: false,
            stopped_at: None,
            first_outcome: None,
            in_spec,
            run: self.managers[parent].runs.started.max(1),
            id,
        });
        self.managers[parent].children.push(as_child);
        self.managers.push(Manager {
            spec: spec.clone(),
            handle,
            depth: self.managers[parent].depth + 1,
            as_child: Some(as_child),
            live: Arc::default(),
            children: Vec::new(),
            stop_seen: None,
            forced_at: None,
            requested: false,
            path,
            runs: Runs::default(),
        });
        for child in children {
            self.insert(index, child)?;
        }
        Ok(())
    }

    async fn settle_and_check(
        &mut self,
        run: &mut JoinHandle<Result<Exit, RunError>>,
    ) -> Result<(), String> {
        for _ in 0..SETTLE_YIELDS {
            tokio::task::yield_now().await;
        }
        if self.root_result.is_none() && run.is_finished() {
            let result = run
                .await
                .map_err(|error| format!("the root's run did not return: {error}"))?;
            self.log(format!("root returned {result:?}"));
            self.root_result = Some(result);
        }
        self.check()
    }

    /// The managers from `manager` up to the root.
    fn chain(&self, manager: usize) -> Vec<usize> {
        let mut chain = vec![manager];
        let mut at = manager;
        while let Some(child) = self.managers[at].as_child {
            at = self.children[child].manager;
            chain.push(at);
        }
        chain
    }

    fn forced(&self, manager: usize) -> bool {
        self.chain(manager)
            .iter()
            .any(|&m| self.managers[m].forced_at.is_some())
    }

    /// Whether a manager above the child (its own included) was aborted by
    /// its parent, or dropped without finishing its run.
    fn ancestor_aborted(&self, manager: usize) -> bool {
        self.chain(manager).iter().any(|&m| {
            // An aborted run of a manager that ran again shows only in the
            // events.
            self.managers[m].runs.aborted
                || matches!(self.managers[m].handle.outcome(), Some(Outcome::Aborted))
                || self.managers[m].as_child.is_some_and(|child| {
                    matches!(
                        self.children[child].handle.outcome(),
                        Some(Outcome::Aborted)
                    )
                })
        })
    }

    /// Since when something may have disturbed the child's own timeline.
    fn interference(&self, index: usize) -> Option<Duration> {
        let child = &self.children[index];
        let mut earliest = child.stopped_at;
        for m in self.chain(child.manager) {
            let manager = &self.managers[m];
            for at in [
                manager.stop_seen.map(|(before, _)| before),
                manager.forced_at,
            ]
            .into_iter()
            .flatten()
            {
                earliest = Some(earliest.map_or(at, |e: Duration| e.min(at)));
            }
        }
        earliest
    }

    /// When a one-for-one manager's own restart limit refuses a restart, up
    /// to `upto`, as its children's undisturbed timelines predict, and
    /// whether that prediction is exact. It never comes later than the real
    /// one: a child stopped through its handle, or by its manager, restarts
    /// less than its timeline says. A child that waited for its manager's
    /// start makes the prediction unknown (at zero, not exact).
    fn limit_trips(&self, manager: usize, upto: Duration) -> Option<(Duration, bool)> {
        let m = &self.managers[manager];
        let restarts = m.spec.restart_limit?;
        if m.spec.strategy != Strategy::OneForOne {
            return None;
        }
        let children = m.children.iter().map(|&c| &self.children[c]);
        if children.clone().any(|child| child.waits) {
            return Some((Duration::ZERO, false));
        }
        let mut decisions: Vec<Duration> = children
            .clone()
            .filter(|child| child.nested.is_none())
            .filter_map(|child| {
                child
                    .started
                    .map(|start| restart_decisions(&child.spec, start, upto))
            })
            .flatten()
            .collect();
        decisions.sort_unstable();
        let at = first_refused(&decisions, restarts)?;
        let undisturbed = children
            .clone()
            .all(|child| child.stopped_at.is_none_or(|stopped| stopped > at));
        Some((at, undisturbed))
    }

    /// When the manager's run started, if it has: the root at once, a
    /// nested manager as its record in its parent says.
    fn manager_start(&self, manager: usize) -> Option<Duration> {
        match self.managers[manager].as_child {
            None => Some(Duration::ZERO),
            Some(child) => self.children[child].started,
        }
    }

    /// Notes when children that waited started; checks that a child that
    /// did not wait started at its insert.
    fn observe_starts(&mut self, now: Duration) -> Result<(), String> {
        for index in 0..self.children.len() {
            let child = &self.children[index];
            if child.start_confirmed {
                continue;
            }
            // `None`: not started; `Some(None)`: started at a time not known.
            let seen = match child.nested {
                None => {
                    let first = *child.probe.first_start.lock().expect("the probe's lock");
                    first.map(|at| Some(at - self.origin))
                }
                // Its run started with its attempt; an attempt that is over
                // shows no uptime, nor does a later one the first's.
                Some(nested) => self.record(index).and_then(|info| match info.state() {
                    ChildState::Starting => None,
                    _ if self.managers[nested].runs.started > 1 => Some(None),
                    _ => Some(info.uptime().map(|uptime| now - uptime)),
                }),
            };
            let ended = child.handle.outcome().is_some();
            match (child.started, seen) {
                // Ended (aborted, abandoned) before it ever started, or
                // started at a time no longer known: nothing more to see.
                (_, None) if ended => self.children[index].start_confirmed = true,
                (_, Some(None)) => {
                    let child = &mut self.children[index];
                    child.started.get_or_insert(now);
                    child.start_confirmed = true;
                }
                (None, None) => {}
                (None, Some(Some(seen))) => {
                    let child = &mut self.children[index];
                    child.started = Some(seen);
                    child.start_confirmed = true;
                    let line = format!("{} started", child.name);
                    self.log(line);
                }
                (Some(expected), Some(Some(seen))) if seen == expected => {
                    self.children[index].start_confirmed = true;
                }
                // Inserted just as a group restart began in its manager: the
                // loop saw the attempt that ended first, and the insert waits
                // for the group.
                (Some(expected), seen) if self.group_began_at(child.manager, expected) => {
                    let seen = seen.flatten();
                    let child = &mut self.children[index];
                    child.waits = true;
                    child.started = seen;
                    child.start_confirmed = seen.is_some();
                    let line = format!(
                        "{} waits: a group restart began as it was inserted",
                        child.name
                    );
                    self.log(line);
                }
                (Some(expected), seen) => {
                    return Err(format!(
                        "{} (in m{}) {}, not at its insert at {expected:?}",
                        child.name,
                        child.manager,
                        match seen.flatten() {
                            Some(seen) => format!("started at {seen:?}"),
                            None => "has not started".to_owned(),
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether an attempt that may begin a group restart in the manager
    /// ended at `at`: a foreground sibling with a restart policy, in a
    /// one-for-all or rest-for-one manager.
    fn group_began_at(&self, manager: usize, at: Duration) -> bool {
        let manager = &self.managers[manager];
        manager.spec.strategy != Strategy::OneForOne
            && manager.children.iter().any(|&c| {
                let child = &self.children[c];
                let ended_then = match child.nested {
                    None => child
                        .probe
                        .ends
                        .lock()
                        .expect("the probe's lock")
                        .iter()
                        .any(|&end| end - self.origin == at),
                    // A restartable subtree's run that ended then.
                    Some(nested) => self.managers[nested].runs.restarts_seen.contains(&at),
                };
                !child.spec.background && child.spec.restart != Restart::Never && ended_then
            })
    }

    /// Whether something other than its children ending by themselves may
    /// have asked the manager to stop: the test, an ancestor stopping, its
    /// parent restarting it with a group, its handle in its parent, a child
    /// failing for good or aborted, or a significant child ending.
    fn asked_to_stop(&self, index: usize) -> bool {
        let manager = &self.managers[index];
        let by_child = manager.children.iter().any(|&c| {
            let child = &self.children[c];
            child.handle.outcome().is_some_and(|outcome| {
                child.spec.significant
                    // Its restart may have been one too many for the
                    // manager's limit, even after a clean exit.
                    || (manager.spec.restart_limit.is_some()
                        && child.spec.restart != Restart::Never)
                    || matches!(
                        kind(&outcome),
                        Kind::Failed | Kind::Panicked | Kind::Aborted
                    )
            })
        });
        self.asked_from_outside(index) || by_child
    }

    /// Whether the test, an ancestor stopping, its parent restarting it
    /// with a group, or its handle in its parent may have asked the manager
    /// to stop.
    fn asked_from_outside(&self, index: usize) -> bool {
        let manager = &self.managers[index];
        let by_parent = manager.as_child.is_some_and(|c| {
            let child = &self.children[c];
            let parent = &self.managers[child.manager];
            child.stopped_at.is_some() || parent.spec.strategy != Strategy::OneForOne
        });
        let above = self.chain(index)[1..]
            .iter()
            .any(|&m| self.managers[m].handle.is_shutdown_requested());
        manager.requested || by_parent || above
    }

    /// The longest a manager may take from its shutdown to its return.
    fn stop_bound(&self, manager: usize, forced: bool) -> Duration {
        let manager = &self.managers[manager];
        let (mut foreground, mut background) = (Duration::ZERO, Duration::ZERO);
        for &child in &manager.children {
            let child = &self.children[child];
            if child.spec.background {
                background = background.max(child.grace);
            } else {
                foreground = foreground.max(child.grace);
            }
        }
        if manager.spec.ordered_stop && !foreground.is_zero() {
            foreground = manager.spec.grace;
        }
        if forced {
            foreground = Duration::ZERO;
        }
        foreground + background + SLACK
    }

    /// Whether an ordered stop of the manager may reach the manager's grace
    /// period, which bounds the whole sequence, before every child is asked:
    /// the children's worst stop times, one after the other.
    fn ordered_stop_may_run_out(&self, manager: usize) -> bool {
        let manager = &self.managers[manager];
        if !manager.spec.ordered_stop {
            return false;
        }
        let sequence: Duration = manager
            .children
            .iter()
            .map(|&c| &self.children[c])
            .filter(|child| !child.spec.background)
            .map(|child| {
                let worst = child
                    .spec
                    .script
                    .iter()
                    .map(|attempt| match attempt.on_stop {
                        OnStop::ReturnAfter(delay) => delay.min(child.grace),
                        OnStop::Ignore => child.grace,
                    });
                match child.nested {
                    Some(_) => child.grace,
                    None => worst.max().unwrap_or(child.grace),
                }
            })
            .sum();
        sequence + MARGIN >= manager.spec.grace
    }

    /// Reads the tree's events so far. A nested manager's `Started` in its
    /// parent is a run of it; its failures and restarts there are checked
    /// against its restart policy, like a leaf's: a restart only after a
    /// failed run for `OnFailure`, none for `Never`, after the backoff of its
    /// failures in a row, and none after a stop through its own handle.
    fn drain_events(&mut self) -> Result<(), String> {
        loop {
            // Unconstrained: tokio's budget would make a queued event look
            // like none.
            let event = match tokio::task::unconstrained(self.events.recv()).now_or_never() {
                None | Some(Err(EventsError::Ended)) => return Ok(()),
                Some(Ok(event)) => event,
                Some(Err(error)) => return Err(format!("the root's events: {error}")),
            };
            if self.log_events {
                self.log(format!("event {event}"));
            }
            let path = event.path();
            if let Some(index) = (0..self.managers.len()).find(|&m| self.managers[m].path == path) {
                if matches!(event.kind(), EventKind::ShutdownRequested(_)) {
                    self.managers[index].runs.stopping = true;
                }
                if let Some(as_child) = self.managers[index].as_child {
                    self.child_event(as_child, event.kind())?;
                    self.manager_event(index, event.kind())?;
                }
            } else if let Some(index) = path
                .rsplit('/')
                .next()
                .and_then(|name| self.children.iter().position(|c| c.name == name))
            {
                self.child_event(index, event.kind())?;
            }
        }
    }

    /// A foreground child of a one-for-one manager with a restart policy
    /// ends for good with restarts left in its run only when something
    /// stops it or its manager: its handle, something outside the manager,
    /// or the manager's own stop, which it announces, or which a sibling's
    /// end that stops it set off just before. The events show this also
    /// for runs that began and ended between two checks.
    fn child_event(&mut self, index: usize, event: &EventKind) -> Result<(), String> {
        let child = &self.children[index];
        let manager = child.manager;
        match event {
            EventKind::Started { attempt: 1 } => {
                self.restarts_in_run.insert(index, 0);
            }
            EventKind::Restarting { .. } => {
                *self.restarts_in_run.entry(index).or_default() += 1;
            }
            EventKind::Stopped(outcome) => {
                let spec = &child.spec;
                let outcome = kind(outcome);
                // A background child's end may stop its manager too.
                let stops_manager = spec.significant
                    || (spec.escalate && matches!(outcome, Kind::Failed | Kind::Panicked));
                let ends_by_itself = match spec.restart {
                    Restart::OnFailure => matches!(outcome, Kind::Failed | Kind::Panicked),
                    Restart::Always => {
                        matches!(outcome, Kind::Completed | Kind::Failed | Kind::Panicked)
                    }
                    _ => false,
                };
                let restarts = self.restarts_in_run.get(&index).copied().unwrap_or(0);
                let runs = &self.managers[manager].runs;
                if ends_by_itself
                    && !spec.background
                    && self.managers[manager].spec.strategy == Strategy::OneForOne
                    // A manager-wide limit may refuse the restart first.
                    && self.managers[manager].spec.restart_limit.is_none()
                    && restarts < spec.limit
                    && !runs.stopping
                    && !self.asked_from_outside(manager)
                    && child.stopped_at.is_none()
                    && !(child
                        .nested
                        .is_some_and(|nested| self.managers[nested].requested))
                {
                    return Err(format!(
                        "{} (in m{manager}) ended for good ({outcome:?}) after {restarts} of {} \
                         restarts in its run, and nothing stopped it or its manager",
                        child.name, spec.limit
                    ));
                }
                if stops_manager {
                    self.managers[manager].runs.stopping = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn manager_event(&mut self, index: usize, kind: &EventKind) -> Result<(), String> {
        let now = self.now();
        let as_child = &self.children[self.managers[index].as_child.expect("a nested manager")];
        let solo = self.managers[as_child.manager].spec.strategy == Strategy::OneForOne;
        let (policy, floor) = (as_child.spec.restart, as_child.spec.backoff_floor);
        let runs = &mut self.managers[index].runs;
        match kind {
            EventKind::Started { attempt } => {
                runs.started += 1;
                runs.last_failed = false;
                runs.stopping = false;
                if *attempt == 1 {
                    // A new run of its parent, with a fresh restart policy.
                    runs.failures_in_a_row = 0;
                    if runs.started > 1 {
                        runs.for_good = false;
                    }
                } else if runs.for_good {
                    return Err(format!(
                        "m{index} was restarted by its parent (attempt {attempt}) after a stop \
                         through its own handle"
                    ));
                }
            }
            EventKind::Failed(_) | EventKind::Panicked(_) => {
                runs.last_failed = true;
            }
            EventKind::Aborted => runs.aborted = true,
            EventKind::Restarting { attempt, delay } => {
                runs.restarts_seen.push(now);
                let failed = std::mem::take(&mut runs.last_failed);
                let expected = if failed {
                    runs.failures_in_a_row += 1;
                    backoff(floor, runs.failures_in_a_row)
                } else {
                    runs.failures_in_a_row = 0;
                    Duration::ZERO
                };
                // Under a group strategy a sibling's restart takes it along.
                let wrong = match policy {
                    Restart::Never => true,
                    Restart::OnFailure => !failed,
                    _ => false,
                };
                if solo && (wrong || *delay != expected) {
                    return Err(format!(
                        "m{index} ({policy:?}, backoff from {floor:?}) restarts as attempt \
                         {attempt} in {delay:?} after a run that {}; expected {expected:?}",
                        if failed { "failed" } else { "did not fail" }
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Follows the nested managers' new runs into the handles of their spec
    /// children: each run gives every spec child a new incarnation, with a
    /// new id and no outcome yet. Nothing else changes a child's id, and a
    /// child inserted while its manager ran never comes back.
    fn follow_runs(&mut self, now: Duration) -> Result<(), String> {
        self.drain_events()?;
        for index in 1..self.managers.len() {
            let runs = &self.managers[index].runs;
            if runs.started == runs.followed {
                continue;
            }
            let (first, latest) = (runs.followed == 0, runs.started);
            let as_child = self.managers[index].as_child.expect("a nested manager");
            let start = self
                .record(as_child)
                .and_then(|info| info.uptime())
                .map(|uptime| now - uptime);
            let manager = &mut self.managers[index];
            manager.runs.followed = latest;
            if !first {
                // The stop seen before was the end of an earlier run.
                manager.runs.latest_start = Some(start.unwrap_or(now));
                manager.stop_seen = None;
                self.log(format!("m{index} runs again (run {latest})"));
            }
        }
        for index in 0..self.children.len() {
            let child = &self.children[index];
            let latest = self.managers[child.manager].runs.followed.max(1);
            let id = child.handle.id();
            if child.in_spec && latest > child.run {
                if id == child.id {
                    return Err(format!(
                        "{} (in m{}) keeps id {id} in its manager's run {latest}: its handle \
                         does not follow it",
                        child.name, child.manager
                    ));
                }
                let line = format!("{} follows into run {latest}", child.name);
                let child = &mut self.children[index];
                child.run = latest;
                child.id = id;
                child.first_outcome = None;
                // A run starts its spec children at once: one that never
                // started in an earlier run (it waited and was stopped) has
                // now.
                child.started.get_or_insert(now);
                child.start_confirmed = true;
                self.log(line);
            } else if id != child.id {
                return Err(format!(
                    "{} (in m{})'s id changed from {} to {id} without a new run of its manager{}",
                    child.name,
                    child.manager,
                    child.id,
                    if child.in_spec {
                        ""
                    } else {
                        " (inserted while it ran)"
                    }
                ));
            }
        }
        Ok(())
    }

    /// The highest attempt of the child's current incarnation that ran, 0
    /// if none has. A child runs its first attempt at most once per
    /// incarnation, and has at most one incarnation per run of its manager
    /// if it is a spec child, one if it was inserted while its manager ran.
    fn attempts_seen(&self, index: usize) -> Result<u32, String> {
        let child = &self.children[index];
        let most = if child.in_spec { child.run } else { 1 };
        let incarnations = child.probe.incarnations.lock().expect("the probe's lock");
        let fail = |what: String| {
            Err(format!(
                "{} (in m{}{}) {what}",
                child.name,
                child.manager,
                if child.in_spec {
                    ""
                } else {
                    ", inserted while it ran"
                }
            ))
        };
        if incarnations.len() as u32 > most {
            return fail(format!(
                "ran as {} children (ids {:?}) in {most} run(s) of its manager",
                incarnations.len(),
                incarnations.iter().map(|i| i.id).collect::<Vec<_>>()
            ));
        }
        if let Some(twice) = incarnations.iter().find(|i| i.first_attempts > 1) {
            return fail(format!(
                "ran its first attempt {} times as child {}",
                twice.first_attempts, twice.id
            ));
        }
        Ok(incarnations
            .last()
            .filter(|latest| latest.id == child.id)
            .map_or(0, |latest| latest.attempts_seen))
    }

    /// When the child's current incarnation started, from its probe's
    /// clock, if it has.
    fn incarnation_start(&self, index: usize) -> Option<Duration> {
        let child = &self.children[index];
        let incarnations = child.probe.incarnations.lock().expect("the probe's lock");
        incarnations
            .last()
            .filter(|latest| latest.id == child.id)
            .map(|latest| latest.started - self.origin)
    }

    fn check(&mut self) -> Result<(), String> {
        let now = self.now();
        self.follow_runs(now)?;
        for manager in &mut self.managers {
            if manager.stop_seen.is_none() && manager.handle.is_shutdown_requested() {
                manager.stop_seen = Some((self.last_check, now));
            }
        }
        self.observe_starts(now)?;
        for index in 0..self.children.len() {
            if let Some(outcome) = self.children[index].handle.outcome() {
                let text = outcome.to_string();
                let child = &mut self.children[index];
                match &child.first_outcome {
                    Some(first) if *first != text => {
                        return Err(format!(
                            "{}'s outcome changed from {first} to {text}",
                            child.name
                        ));
                    }
                    Some(_) => {}
                    None => {
                        child.first_outcome = Some(text.clone());
                        self.log(format!("{} ended: {text}", self.children[index].name));
                    }
                }
            } else if let Some(first) = &self.children[index].first_outcome {
                return Err(format!(
                    "{}'s outcome {first} disappeared",
                    self.children[index].name
                ));
            }
            self.check_child(index, now)?;
        }
        for index in 0..self.managers.len() {
            self.check_manager(index, now)?;
        }
        self.last_check = now;
        Ok(())
    }

    fn check_child(&self, index: usize, now: Duration) -> Result<(), String> {
        let child = &self.children[index];
        let manager = &self.managers[child.manager];
        let spec = &child.spec;
        let outcome = child.handle.outcome();
        let restarts = child.handle.restarts();
        let who = &child.name;
        let fail = |what: String| Err(format!("{who} (in m{}): {what}", child.manager));

        if child.nested.is_none() {
            let seen = self.attempts_seen(index)?;
            let alive = child.probe.alive.load(Ordering::SeqCst);
            if child.probe.overlapped.load(Ordering::SeqCst) {
                return fail("two of its attempts were alive at once".into());
            }
            if outcome.is_some() && alive > 0 {
                return fail(format!("ended ({outcome:?}) but its task is still alive"));
            }
            if seen > restarts + 1 || seen < restarts {
                return fail(format!(
                    "attempt {seen} ran, but the handle counts {restarts} restarts"
                ));
            }
        }

        let solo = spec.background || manager.spec.strategy == Strategy::OneForOne;
        let budget = if solo {
            spec.limit
        } else {
            manager
                .children
                .iter()
                .map(|&c| &self.children[c].spec)
                .filter(|s| !s.background && s.restart != Restart::Never)
                .map(|s| s.limit)
                .sum()
        };
        // Each restart of a child counts toward its manager's limit, a group
        // restart once for all its members.
        let budget = match manager.spec.restart_limit {
            Some(limit) if now < WINDOW => budget.min(limit),
            _ => budget,
        };
        if spec.restart == Restart::Never && restarts != 0 {
            return fail(format!("restarted {restarts} times without a policy"));
        }
        if restarts > budget {
            return fail(format!(
                "restarted {restarts} times, more than the {budget} its limits allow"
            ));
        }
        if solo && spec.restart == Restart::OnFailure && child.nested.is_none() {
            if let Some(a) =
                (0..restarts).find(|&a| matches!(spec.attempt(a).end, End::Ok | End::Hang))
            {
                return fail(format!(
                    "restarted on failure after attempt {}, which cannot fail ({})",
                    a + 1,
                    spec.attempt(a)
                ));
            }
        }

        // Exactly, while nothing has disturbed its timeline: from its
        // start, or for a spec child in a later run of its manager from the
        // run's.
        let exact = child.nested.is_none()
            && !spec.background
            && manager.spec.strategy == Strategy::OneForOne
            && child.run == manager.runs.followed.max(1);
        // Until its manager's limit trips: then the child whose restart was
        // refused ends, and the manager stops.
        let tripped = self
            .limit_trips(child.manager, now)
            .is_some_and(|(at, _)| at <= now);
        let start = if child.in_spec && child.run > 1 {
            self.incarnation_start(index)
        } else {
            child.started
        };
        if let (true, false, Some(start)) = (exact, tripped, start) {
            if self.interference(index).is_none_or(|at| now < at) {
                let expected = natural(spec, start, now);
                let expected_kind = expected.end.map(|(_, end)| natural_kind(end));
                if restarts != expected.restarts || outcome.as_ref().map(kind) != expected_kind {
                    return fail(format!(
                        "has {restarts} restarts and outcome {outcome:?}; undisturbed since it \
                         started at {start:?} its script gives {} restarts and \
                         {expected_kind:?}",
                        expected.restarts
                    ));
                }
            }
        }

        // A child that has not started waits for its manager: for its run
        // to start, or for a group restart in flight there to be scheduled,
        // unless the manager stops, which starts it (to stop it at once).
        if child.started.is_none() && outcome.is_none() {
            let busy =
                self.group_in_flight(child.manager) && !manager.handle.is_shutdown_requested();
            if self.manager_start(child.manager).is_some() && !busy {
                return fail(format!(
                    "has not started (inserted at {:?}{}), but its manager runs and is not \
                     busy with a group restart",
                    child.inserted,
                    if child.waits { ", waiting" } else { "" }
                ));
            }
            if restarts != 0 || child.handle.is_ready() {
                return fail(format!(
                    "has not started, but counts {restarts} restarts and is_ready() is {}",
                    child.handle.is_ready()
                ));
            }
        }
        // A spec child starts again with each run of its manager.
        if child.in_spec
            && child.run > 1
            && child.nested.is_none()
            && outcome.is_none()
            && self.attempts_seen(index)? == 0
            && !self.group_in_flight(child.manager)
        {
            return fail(format!(
                "has not started in its manager's run {} as child {}",
                child.run, child.id
            ));
        }

        let Some(outcome) = outcome else {
            return Ok(());
        };
        let outcome_kind = kind(&outcome);
        // A nested manager is also stopped through its own handle.
        let asked = child.stopped_at.is_some()
            || child
                .nested
                .is_some_and(|nested| self.managers[nested].requested);
        // A run of its manager that is over has stopped (or ended) too.
        let manager_stopping =
            manager.handle.is_shutdown_requested() || child.run < manager.runs.followed;
        let forced = self.forced(child.manager);
        let ancestor_aborted = self.ancestor_aborted(child.manager);
        match child.nested {
            None => {
                let seen = self.attempts_seen(index)?;
                if seen == restarts {
                    if outcome_kind != Kind::Aborted || !(forced || ancestor_aborted) {
                        return fail(format!(
                            "ended {outcome} before attempt {} ever ran",
                            restarts + 1
                        ));
                    }
                } else {
                    let attempt = spec.attempt(restarts);
                    let explained = match outcome_kind {
                        Kind::Completed => attempt.end == End::Ok,
                        Kind::Failed => attempt.end == End::Err,
                        Kind::Panicked => attempt.end == End::Panic,
                        Kind::Stopped => {
                            asked
                                || manager_stopping
                                || spec.background
                                || manager.spec.strategy != Strategy::OneForOne
                        }
                        Kind::Aborted => {
                            forced
                                || ancestor_aborted
                                || self.ordered_stop_may_run_out(child.manager)
                                || match attempt.on_stop {
                                    OnStop::Ignore => true,
                                    OnStop::ReturnAfter(delay) => delay + MARGIN >= child.grace,
                                }
                        }
                        Kind::Other => false,
                    };
                    if !explained {
                        return fail(format!(
                            "ended {outcome} in attempt {} scripted as [{attempt}] with grace \
                             {:?} (background: {}, asked to stop: {asked}, manager stopping: \
                             {manager_stopping}, forced: {forced})",
                            restarts + 1,
                            child.grace,
                            spec.background,
                        ));
                    }
                }
            }
            Some(nested) => {
                let inner = &self.managers[nested];
                let explained = match outcome_kind {
                    Kind::Completed | Kind::Stopped => true,
                    Kind::Failed => matches!(inner.handle.outcome(), Some(Outcome::Failed(_))),
                    Kind::Aborted => {
                        forced
                            || ancestor_aborted
                            || self.ordered_stop_may_run_out(child.manager)
                            || self.stop_bound(nested, false) + MARGIN >= child.grace
                    }
                    Kind::Panicked | Kind::Other => false,
                };
                if !explained {
                    return fail(format!(
                        "ended {outcome} in its parent, but its stop takes at most {:?} of its \
                         {:?} grace (its own outcome: {:?})",
                        self.stop_bound(nested, false),
                        child.grace,
                        inner.handle.outcome()
                    ));
                }
                if inner.handle.outcome().is_none() {
                    return fail(format!(
                        "ended {outcome} in its parent, but its own handle has no outcome"
                    ));
                }
            }
        }
        if matches!(outcome_kind, Kind::Failed | Kind::Panicked)
            && spec.escalate
            && !spec.background
            && !asked
            && !manager_stopping
        {
            return fail(format!(
                "failed for good ({outcome}) and its manager was not asked to stop"
            ));
        }
        // A group restart that stops it for good (it has no restart policy)
        // is its manager's doing, not its own end.
        let stopped_by_its_group = manager.spec.strategy != Strategy::OneForOne
            && !asked
            && matches!(outcome_kind, Kind::Stopped | Kind::Aborted);
        if spec.significant && !spec.background && !manager_stopping && !stopped_by_its_group {
            return fail(format!(
                "is significant and ended ({outcome}), but its manager was not asked to stop"
            ));
        }
        let ends_by_itself = match spec.restart {
            Restart::OnFailure => matches!(outcome_kind, Kind::Failed | Kind::Panicked),
            Restart::Always => {
                matches!(
                    outcome_kind,
                    Kind::Completed | Kind::Failed | Kind::Panicked
                )
            }
            _ => false,
        };
        if ends_by_itself
            && !spec.background
            && restarts < spec.limit
            && !asked
            && !manager_stopping
        {
            return fail(format!(
                "ended for good ({outcome}) after {restarts} of {} restarts, with neither its \
                 handle nor its manager asking it to stop",
                spec.limit
            ));
        }
        Ok(())
    }

    fn check_manager(&self, index: usize, now: Duration) -> Result<(), String> {
        let manager = &self.managers[index];
        let ended = manager.handle.outcome().is_some();
        let fail = |what: String| Err(format!("m{index}: {what}"));
        let live_children = manager
            .children
            .iter()
            .filter(|&&c| self.children[c].handle.outcome().is_none())
            .count();

        if !ended {
            let expected = manager.children.iter().all(|&c| {
                let child = &self.children[c];
                !child.spec.reports_ready
                    || child.handle.outcome().is_some()
                    || match child.nested {
                        Some(nested) => self.nested_ready(nested),
                        None => child.handle.is_ready(),
                    }
            });
            if manager.handle.is_ready() != expected {
                let unready: Vec<&str> = manager
                    .children
                    .iter()
                    .map(|&c| &self.children[c])
                    .filter(|child| {
                        child.spec.reports_ready
                            && child.handle.outcome().is_none()
                            && !match child.nested {
                                Some(nested) => self.nested_ready(nested),
                                None => child.handle.is_ready(),
                            }
                    })
                    .map(|child| child.name.as_str())
                    .collect();
                return fail(format!(
                    "is_ready() is {} but its live reporting children not ready are {unready:?}",
                    manager.handle.is_ready()
                ));
            }
        }

        if let Some((at, true)) = self.limit_trips(index, now) {
            if !manager.handle.is_shutdown_requested() {
                return fail(format!(
                    "its children's timelines exceed its restart limit of {:?} at {at:?}, but \
                     it was not asked to stop",
                    manager.spec.restart_limit
                ));
            }
        }

        let records = manager.handle.children().len();
        let listed = manager.handle.snapshot().len();
        let allowed = if manager.spec.auto_cleanup {
            live_children
        } else {
            manager.children.len()
        };
        if records > allowed || listed > allowed {
            return fail(format!(
                "keeps {records} records and lists {listed} children; {live_children} of its {} \
                 children are live",
                manager.children.len()
            ));
        }

        if ended {
            let alive = manager.live.load(Ordering::SeqCst);
            if alive > 0 {
                return fail(format!("ended with {alive} child tasks alive"));
            }
            if let Some(&c) = manager
                .children
                .iter()
                .find(|&&c| self.children[c].handle.outcome().is_none())
            {
                return fail(format!(
                    "ended, but {} has no outcome",
                    self.children[c].name
                ));
            }
        } else if let Some(start) = self.manager_start(index) {
            let foreground_ended = manager
                .children
                .iter()
                .map(|&c| &self.children[c])
                .filter(|child| !child.spec.background)
                .all(|child| child.handle.outcome().is_some());
            let stopping = manager.handle.is_shutdown_requested();
            if foreground_ended && !stopping {
                return fail(
                    "every foreground child has ended, but it neither ended nor stops its \
                     background children"
                        .into(),
                );
            }
            if stopping && !self.asked_to_stop(index) {
                if !foreground_ended {
                    return fail(
                        "stops with foreground children left, but nothing asked it to".into(),
                    );
                }
                if let Some(reason) = manager.handle.shutdown_reason() {
                    return fail(format!(
                        "stops its background children, which nobody asked, but gives the \
                         reason {reason:?}"
                    ));
                }
            }
            // A manager whose run had not started when its shutdown came
            // begins its stop when it starts; a stop before a restarted
            // manager's latest run was one of an earlier run.
            let latest = manager.runs.latest_start;
            let start = latest.unwrap_or(start);
            for (since, forced) in [
                (manager.stop_seen.map(|(_, seen)| seen), false),
                (manager.forced_at, true),
            ] {
                let Some(since) = since
                    .filter(|&since| latest.is_none_or(|latest| since >= latest))
                    .map(|since| since.max(start))
                else {
                    continue;
                };
                let bound = self.stop_bound(index, forced);
                if now > since + bound {
                    return fail(format!(
                        "still running at {now:?}, {:?} after its {} was seen; the model's \
                         bound is {bound:?}",
                        now - since,
                        if forced {
                            "forced shutdown"
                        } else {
                            "shutdown"
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// A nested manager counts as ready in its parent while it runs and its
    /// own children are ready (and as unready again when one of them is);
    /// before its run has started, and once it has ended, it is not (its
    /// record in the parent may still wait for siblings restarted with it).
    fn nested_ready(&self, nested: usize) -> bool {
        let handle = &self.managers[nested].handle;
        self.manager_start(nested).is_some() && handle.outcome().is_none() && handle.is_ready()
    }

    /// What must hold once the root's run has returned.
    fn after_the_run(&mut self) -> Result<(), String> {
        for (index, manager) in self.managers.iter().enumerate() {
            if manager.handle.outcome().is_none() {
                return Err(format!("m{index} has no outcome after the root returned"));
            }
            let alive = manager.live.load(Ordering::SeqCst);
            if alive > 0 {
                return Err(format!(
                    "m{index} has {alive} child tasks alive after the root returned"
                ));
            }
        }
        for child in &self.children {
            if child.handle.wait().now_or_never().is_none() {
                return Err(format!(
                    "{} has no outcome after the root returned: wait() would hang",
                    child.name
                ));
            }
        }
        let root = &self.managers[0];
        let failed = |kinds: &[Kind]| {
            self.children.iter().find(|child| {
                child
                    .handle
                    .outcome()
                    .is_some_and(|outcome| kinds.contains(&kind(&outcome)))
            })
        };
        match self.root_result.as_ref().expect("the root returned") {
            Ok(_) => {
                let escalated =
                    root.children
                        .iter()
                        .map(|&c| &self.children[c])
                        .find(|child| {
                            child.spec.restart == Restart::Never
                                && child.spec.escalate
                                && !child.spec.background
                                && child.handle.outcome().is_some_and(|o| {
                                    matches!(kind(&o), Kind::Failed | Kind::Panicked)
                                })
                        });
                if let Some(child) = escalated {
                    return Err(format!(
                        "the root returned Ok although {} failed for good ({:?})",
                        child.name,
                        child.handle.outcome()
                    ));
                }
            }
            Err(error) => {
                let mut limits = error
                    .failures()
                    .into_iter()
                    .flat_map(|failures| failures.iter())
                    .filter(|failure| failure.exceeded_manager_restart_limit().is_some())
                    .peekable();
                let tripped = limits.peek().is_some();
                for failure in limits {
                    let manager = failure
                        .path()
                        .rsplit('/')
                        .nth(1)
                        .and_then(|name| name.strip_prefix('m'))
                        .and_then(|index| index.parse::<usize>().ok())
                        .and_then(|index| self.managers.get(index));
                    if manager.is_none_or(|manager| manager.spec.restart_limit.is_none()) {
                        return Err(format!(
                            "{failure} names a manager-wide limit its manager does not have"
                        ));
                    }
                }
                if !tripped && failed(&[Kind::Failed, Kind::Panicked, Kind::Aborted]).is_none() {
                    return Err(format!(
                        "the root returned {error} but no child failed or was aborted"
                    ));
                }
                // The plan forces through handles only, never by a signal.
                let forced = error
                    .failures()
                    .into_iter()
                    .flat_map(|failures| failures.iter())
                    .find(|failure| matches!(failure.cause(), FailureCause::Forced { .. }));
                if let Some(failure) = forced {
                    if !self.managers.iter().any(|m| m.forced_at.is_some()) {
                        return Err(format!("{failure} although no manager was forced"));
                    }
                    if !matches!(failure.cause(), FailureCause::Forced { signal: None }) {
                        return Err(format!("{failure} names a signal nobody sent"));
                    }
                }
            }
        }
        let late = process_fn("late", |_ctx| async { Ok::<_, String>(()) });
        if root.handle.insert(late).is_ok() {
            return Err("the root accepted an insert after its run returned".into());
        }
        if root.handle.request_shutdown().is_ok() || root.handle.request_reload().is_ok() {
            return Err("the root accepted a request after its run returned".into());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Shrinking

/// The failure's kind, for deciding whether a smaller plan fails the same
/// way: the message without numbers, which name children and times.
fn class(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(60)
        .collect()
}

/// Drops steps, initial children and nested managers' children one at a
/// time while the plan still fails the same way.
fn shrink_plan(mut plan: Plan, mut failure: Failure) -> (Plan, Failure) {
    let wanted = class(&failure.message);
    let mut budget = 400;
    let mut progress = true;
    while progress && budget > 0 {
        progress = false;
        let mut candidates = Vec::new();
        for i in (0..plan.steps.len()).rev() {
            let mut smaller = plan.clone();
            smaller.steps.remove(i);
            candidates.push(smaller);
            if !plan.steps[i].settle {
                let mut settled = plan.clone();
                settled.steps[i].settle = true;
                candidates.push(settled);
            }
            if let Op::InsertBurst { count, .. } = plan.steps[i].op {
                if count > 1 {
                    let mut smaller = plan.clone();
                    if let Op::InsertBurst { count, .. } = &mut smaller.steps[i].op {
                        *count /= 2;
                    }
                    candidates.push(smaller);
                }
            }
            if let Op::InsertManager { children, .. } = &plan.steps[i].op {
                for c in 0..children.len() {
                    let mut smaller = plan.clone();
                    if let Op::InsertManager { children, .. } = &mut smaller.steps[i].op {
                        children.remove(c);
                    }
                    candidates.push(smaller);
                }
            }
        }
        for i in 0..plan.initial.len() {
            let mut smaller = plan.clone();
            smaller.initial.remove(i);
            candidates.push(smaller);
        }
        for candidate in candidates {
            if budget == 0 {
                break;
            }
            budget -= 1;
            if let Err(smaller) = run_plan(&candidate) {
                if class(&smaller.message) == wanted {
                    plan = candidate;
                    failure = smaller;
                    progress = true;
                    break;
                }
            }
        }
    }
    (plan, failure)
}
