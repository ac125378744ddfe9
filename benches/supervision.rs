//! What supervision costs: every scenario of issue 6 run on procmgr and on a
//! hand-written baseline that does the same work with a bare
//! `tokio::task::JoinSet` and `tokio_util::sync::CancellationToken`, on a
//! multi-threaded tokio runtime with 2 workers, at N = 1,000, 10,000 and
//! 100,000 children.
//!
//! ```text
//! cargo bench --bench supervision                     # the full suite, about two minutes
//! cargo bench --bench supervision -- --quick          # under a minute, for CI or by hand
//! cargo bench --bench supervision -- --quick reload   # only the scenarios named
//! PROCMGR_BENCH_QUICK=1 cargo bench                   # quick mode through the environment
//! ```
//!
//! Scenarios (BENCHMARKS.md says the same at more length):
//!
//! - `start`: N idle children inserted before the run, until every child has
//!   reported that it runs;
//! - `insert`: N idle children inserted one by one into a running manager
//!   from another task, until every one runs (reported as a rate);
//! - `shutdown`: N running children, from the shutdown request until the
//!   manager's future has returned;
//! - `first-error`: N running children, one of which then fails, until the
//!   manager has returned the error;
//! - `reload`: one reload through the manager's handle until every one of N
//!   children has seen it;
//! - `churn`: N children that end at once, inserted into a running manager,
//!   until all have ended (reported as a rate), and, in a fresh process, the
//!   resident memory after 10,000, 100,000 and 1,000,000 such children;
//! - `memory`: peak resident memory growth per idle child, in a fresh process
//!   per measurement;
//! - `restart`: one child that fails N times in a row, restarted each time
//!   with zero backoff, until its last attempt has ended (reported per
//!   fail-to-restart cycle);
//! - `snapshot` (with `--features serde`, procmgr only): `tree()` of a
//!   running manager with N idle children, and serializing it to JSON;
//! - `slow-poll` (procmgr only): what a slow-poll threshold costs per poll
//!   of a child's future, against the same child without one.
//!
//! Every child reports through the same counters on both sides, so the two
//! sides differ only in how they supervise. Each figure is the median of a
//! few repetitions, the two sides taking turns. The ratio is procmgr over
//! the baseline for times and memory, and procmgr's rate over the baseline's
//! for rates.
//!
//! The binary re-executes itself with `--child ...` for the memory
//! scenarios, so that each measurement starts from a clean process. To run
//! one timed scenario once on one side under a profiler:
//!
//! ```text
//! valgrind --tool=callgrind target/release/deps/supervision-<hash> \
//!     --child profile insert procmgr 10000
//! ```

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use procmgr::{
    Backoff, BoxError, ChildHandle, ChildOptions, Context, ControlMessage, ProcessManager, Restart,
    RestartLimit, Runnable,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Worker threads of every runtime the suite builds.
const WORKERS: usize = 2;

/// Children per batch in the churn memory measurement; at most this many
/// exist at once.
const CHURN_BATCH: usize = 1_000;

/// When the churn memory measurement reads the resident memory.
const CHURN_CHECKPOINTS: [usize; 3] = [10_000, 100_000, 1_000_000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child_process(&args[1..]);
        return;
    }
    let quick = args.iter().any(|arg| arg == "--quick")
        || std::env::var("PROCMGR_BENCH_QUICK").is_ok_and(|value| value == "1");
    // Cargo passes `--bench`; every other flag is ours or ignored.
    let only: Vec<&str> = args
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .map(String::as_str)
        .collect();
    let config = Config::new(quick, only);
    config.run();
}

struct Config<'a> {
    quick: bool,
    sizes: &'static [usize],
    only: Vec<&'a str>,
}

impl<'a> Config<'a> {
    fn new(quick: bool, only: Vec<&'a str>) -> Self {
        Config {
            quick,
            sizes: if quick {
                &[1_000, 10_000]
            } else {
                &[1_000, 10_000, 100_000]
            },
            only,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    /// How many times a timed scenario runs on each side.
    fn repetitions(&self, n: usize) -> usize {
        match (self.quick, n) {
            (true, _) => 5,
            (false, ..=1_000) => 31,
            (false, ..=10_000) => 21,
            (false, _) => 11,
        }
    }

    /// When one run of a scenario, predicted from the previous size, is
    /// long enough to run it once only, and when to skip it: seconds.
    fn time_budget(&self) -> (f64, f64) {
        if self.quick { (2.0, 15.0) } else { (5.0, 30.0) }
    }

    fn memory_repetitions(&self) -> usize {
        if self.quick { 1 } else { 3 }
    }

    fn run(&self) {
        let started = Instant::now();
        println!(
            "procmgr vs JoinSet + CancellationToken, {WORKERS} tokio workers, {} mode, sizes {:?}",
            if self.quick { "quick" } else { "full" },
            self.sizes
        );
        println!("each figure: procmgr | baseline | ratio (target, applies at N >= 10,000)");
        println!();
        let mut rows = Vec::new();
        for (name, scenario) in TIMED {
            if !self.wants(name) {
                continue;
            }
            // Seconds per child (or restart) of the slower side at the
            // previous size, to keep a scenario that turns out very slow
            // within the suite's time.
            let mut seconds_each: Option<f64> = None;
            for &n in self.sizes {
                let predicted = seconds_each.map(|each| each * n as f64);
                let (single_run, skip) = self.time_budget();
                let repetitions = match predicted {
                    Some(seconds) if seconds > skip => {
                        let row = Row::skipped(name, n, seconds);
                        row.print();
                        rows.push(row);
                        continue;
                    }
                    Some(seconds) if seconds > single_run => 1,
                    _ => self.repetitions(n),
                };
                let (procmgr, baseline) = self.measure(scenario, n, repetitions);
                seconds_each = Some(procmgr.max(baseline).as_secs_f64() / n as f64);
                let row = Row::timed(name, n, procmgr, baseline);
                row.print();
                rows.push(row);
            }
        }
        if self.wants("churn") {
            for row in churn_memory(self.memory_repetitions()) {
                row.print();
                rows.push(row);
            }
        }
        if self.wants("memory") {
            for &n in self.sizes {
                let row = self.idle_memory(n);
                row.print();
                rows.push(row);
            }
        }
        self.observability();
        println!();
        println!("| scenario | N | procmgr | baseline | ratio | target |");
        println!("| --- | ---: | ---: | ---: | ---: | --- |");
        for row in &rows {
            row.print_markdown();
        }
        println!();
        println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    }

    /// The median time of `scenario` on each side, the sides taking turns so
    /// that drift in the machine's load touches both alike.
    fn measure(&self, scenario: Scenario, n: usize, repetitions: usize) -> (Duration, Duration) {
        let mut procmgr = Vec::new();
        let mut baseline = Vec::new();
        for repetition in 0..repetitions {
            let order = if repetition % 2 == 0 {
                [Side::Procmgr, Side::Baseline]
            } else {
                [Side::Baseline, Side::Procmgr]
            };
            for side in order {
                let elapsed = scenario(side, n);
                match side {
                    Side::Procmgr => procmgr.push(elapsed),
                    Side::Baseline => baseline.push(elapsed),
                }
            }
        }
        (median(procmgr), median(baseline))
    }

    /// What the observability features cost, on procmgr alone (the baseline
    /// has no such thing): `snapshot` (feature `serde`) and `slow-poll`.
    fn observability(&self) {
        #[cfg(feature = "serde")]
        if self.wants("snapshot") {
            let repetitions = if self.quick { 5 } else { 21 };
            for &n in self.sizes {
                let (tree, json, bytes) = snapshot_cost(n, repetitions);
                println!(
                    "snapshot {:>9}: tree() {} ({} ns/child), to JSON {} ({} ns/child, {} KiB)",
                    thousands(n),
                    human_time(tree),
                    tree.as_nanos() / n as u128,
                    human_time(json),
                    json.as_nanos() / n as u128,
                    bytes / 1024,
                );
            }
        }
        if self.wants("slow-poll") {
            let polls = if self.quick { 200_000 } else { 1_000_000 };
            let repetitions = if self.quick { 5 } else { 15 };
            let (off, on) = poll_cost(polls, repetitions);
            let per_poll = |total: Duration| total.as_nanos() as f64 / polls as f64;
            println!(
                "slow-poll {:>8} polls: {:.1} ns/poll without a threshold, {:.1} ns/poll with one ({:+.1} ns)",
                thousands(polls),
                per_poll(off),
                per_poll(on),
                per_poll(on) - per_poll(off),
            );
        }
    }

    /// Peak resident memory growth per idle child, each measurement in a
    /// fresh process.
    fn idle_memory(&self, n: usize) -> Row {
        let per_child = |side: Side| {
            let samples = (0..self.memory_repetitions())
                .map(|_| {
                    let output = run_child_process(&["memory", side.as_str(), &n.to_string()]);
                    let bytes: f64 = output.trim().parse().expect("a byte count");
                    bytes / n as f64
                })
                .collect();
            median_f64(samples)
        };
        let procmgr = per_child(Side::Procmgr);
        let baseline = per_child(Side::Baseline);
        Row {
            scenario: "memory",
            n,
            procmgr: Figure::BytesPerChild(procmgr),
            baseline: Figure::BytesPerChild(baseline),
            ratio: procmgr / baseline,
            target: Target::AtMost(1.5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Procmgr,
    Baseline,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Procmgr => "procmgr",
            Side::Baseline => "baseline",
        }
    }

    fn parse(text: &str) -> Side {
        match text {
            "procmgr" => Side::Procmgr,
            "baseline" => Side::Baseline,
            other => panic!("unknown side {other:?}"),
        }
    }
}

type Scenario = fn(Side, usize) -> Duration;

const TIMED: [(&str, Scenario); 7] = [
    ("start", start),
    ("insert", insert),
    ("shutdown", shutdown),
    ("first-error", first_error),
    ("reload", reload),
    ("churn", churn),
    ("restart", restart),
];

// ---------------------------------------------------------------------------
// Reporting

#[derive(Debug, Clone, Copy)]
enum Target {
    /// procmgr's figure over the baseline's, at most this.
    AtMost(f64),
    /// procmgr's rate over the baseline's, at least this.
    AtLeast(f64),
    /// procmgr's own figure within this fraction of 1.
    Flat(f64),
    /// Nothing to compare against at this size.
    None,
}

#[derive(Debug, Clone, Copy)]
enum Figure {
    Time {
        total: Duration,
        n: usize,
        /// What `n` counts: children, or restarts.
        each: &'static str,
    },
    Rate {
        total: Duration,
        n: usize,
    },
    BytesPerChild(f64),
    /// Resident memory (KiB) and its growth over the reading before the
    /// first child.
    Resident {
        kib: u64,
        before: u64,
    },
    /// Not run: one run would have taken this many seconds (for the slower
    /// side).
    Skipped(f64),
    /// Resident memory after the last churn checkpoint over that after an
    /// earlier one, `since` children.
    Growth {
        growth: f64,
        since: usize,
    },
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Figure::Time { total, n, each } => write!(
                f,
                "{} ({:.0} ns/{each})",
                human_time(total),
                total.as_nanos() as f64 / n as f64
            ),
            Figure::Rate { total, n } => write!(
                f,
                "{:.0}k/s ({:.0} ns/child)",
                n as f64 / total.as_secs_f64() / 1_000.0,
                total.as_nanos() as f64 / n as f64
            ),
            Figure::BytesPerChild(bytes) => write!(f, "{bytes:.0} B/child"),
            Figure::Skipped(seconds) => write!(f, "not run (about {seconds:.0} s a run)"),
            Figure::Resident { kib, before } => write!(
                f,
                "{:.1} MiB (+{:.1} MiB)",
                kib as f64 / 1024.0,
                kib.saturating_sub(before) as f64 / 1024.0
            ),
            Figure::Growth { growth, since } => {
                write!(
                    f,
                    "{:+.1}% since {}",
                    (growth - 1.0) * 100.0,
                    thousands(since)
                )
            }
        }
    }
}

fn human_time(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

struct Row {
    scenario: &'static str,
    n: usize,
    procmgr: Figure,
    baseline: Figure,
    ratio: f64,
    target: Target,
}

impl Row {
    fn timed(scenario: &'static str, n: usize, procmgr: Duration, baseline: Duration) -> Row {
        let rated = matches!(scenario, "insert" | "churn");
        let each = if scenario == "restart" {
            "restart"
        } else {
            "child"
        };
        let (procmgr_figure, baseline_figure, ratio) = if rated {
            (
                Figure::Rate { total: procmgr, n },
                Figure::Rate { total: baseline, n },
                baseline.as_secs_f64() / procmgr.as_secs_f64(),
            )
        } else {
            (
                Figure::Time {
                    total: procmgr,
                    n,
                    each,
                },
                Figure::Time {
                    total: baseline,
                    n,
                    each,
                },
                procmgr.as_secs_f64() / baseline.as_secs_f64(),
            )
        };
        Row {
            scenario,
            n,
            procmgr: procmgr_figure,
            baseline: baseline_figure,
            ratio,
            // Issue 11's targets.
            target: match scenario {
                "insert" | "churn" => Target::AtLeast(0.8),
                "restart" => Target::AtMost(1.2),
                "reload" => Target::AtMost(1.0),
                _ => Target::AtMost(1.3),
            },
        }
    }

    fn verdict(&self) -> String {
        let applies = self.n >= 10_000;
        match self.target {
            Target::AtMost(limit) => format!(
                "<= {limit}x{}",
                verdict_suffix(applies, self.ratio <= limit)
            ),
            Target::AtLeast(limit) => format!(
                ">= {limit}x{}",
                verdict_suffix(applies, self.ratio >= limit)
            ),
            Target::Flat(limit) => format!(
                "within {:.0}%{}",
                limit * 100.0,
                verdict_suffix(true, (self.ratio - 1.0).abs() <= limit)
            ),
            Target::None => "-".to_owned(),
        }
    }

    /// A size not run because one run would take `seconds`.
    fn skipped(scenario: &'static str, n: usize, seconds: f64) -> Row {
        Row {
            scenario,
            n,
            procmgr: Figure::Skipped(seconds),
            baseline: Figure::Skipped(seconds),
            ratio: f64::NAN,
            target: Target::None,
        }
    }

    fn ratio_text(&self) -> String {
        if self.ratio.is_nan() {
            "-".to_owned()
        } else {
            format!("{:.2}x", self.ratio)
        }
    }

    fn print(&self) {
        println!(
            "{:<14} N={:<9} procmgr {:<28} baseline {:<28} ratio {:>6}  {}",
            self.scenario,
            self.n,
            self.procmgr.to_string(),
            self.baseline.to_string(),
            self.ratio_text(),
            self.verdict()
        );
    }

    fn print_markdown(&self) {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            self.scenario,
            thousands(self.n),
            self.procmgr,
            self.baseline,
            self.ratio_text(),
            self.verdict()
        );
    }
}

fn verdict_suffix(applies: bool, holds: bool) -> &'static str {
    match (applies, holds) {
        (false, _) => "",
        (true, true) => " holds",
        (true, false) => " MISSED",
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_unstable_by(f64::total_cmp);
    samples[samples.len() / 2]
}

// ---------------------------------------------------------------------------
// What both sides share

/// Counts children down to zero and wakes the one task waiting for that.
/// Children on both sides report through it, so it costs both the same.
struct Countdown {
    left: AtomicUsize,
    done: Notify,
}

impl Countdown {
    fn new(n: usize) -> Arc<Countdown> {
        Arc::new(Countdown {
            left: AtomicUsize::new(n),
            done: Notify::new(),
        })
    }

    fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` keeps the wake-up if the waiter is not waiting yet.
            self.done.notify_one();
        }
    }

    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.done.notified().await;
        }
    }
}

/// Builds a fresh runtime, runs `future` as a task on it (so that only the
/// two workers run, never the main thread), and drops the runtime.
fn on_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    // `PROCMGR_BENCH_WORKERS=1` for a profile whose instruction count does
    // not depend on how the machine schedules two workers.
    let workers = std::env::var("PROCMGR_BENCH_WORKERS")
        .ok()
        .and_then(|workers| workers.parse().ok())
        .unwrap_or(WORKERS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move { tokio::spawn(future).await.expect("scenario finished") })
}

fn child_error() -> std::io::Error {
    std::io::Error::other("child failed")
}

// ---------------------------------------------------------------------------
// procmgr's children

/// Reports that it runs, then waits for shutdown.
struct Idle {
    started: Arc<Countdown>,
}

impl Idle {
    fn new(started: &Arc<Countdown>) -> Idle {
        Idle {
            started: Arc::clone(started),
        }
    }
}

impl Runnable for Idle {
    type Error = Infallible;

    async fn run(&self, ctx: Context) -> Result<(), Infallible> {
        self.started.arrive();
        ctx.shutdown_requested().await;
        Ok(())
    }
}

/// Reports that it runs, then fails when triggered.
struct FailOnTrigger {
    started: Arc<Countdown>,
    trigger: Arc<Notify>,
}

impl Runnable for FailOnTrigger {
    type Error = std::io::Error;

    async fn run(&self, _ctx: Context) -> Result<(), std::io::Error> {
        self.started.arrive();
        self.trigger.notified().await;
        Err(child_error())
    }
}

/// Reports that it runs, then reports every reload until shutdown.
struct Reloadable {
    started: Arc<Countdown>,
    reloaded: Arc<Countdown>,
}

impl Runnable for Reloadable {
    type Error = Infallible;

    async fn run(&self, mut ctx: Context) -> Result<(), Infallible> {
        self.started.arrive();
        while let Some(message) = ctx.recv().await {
            match message {
                ControlMessage::Reload => self.reloaded.arrive(),
                ControlMessage::Shutdown => break,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Fails on its first `times` attempts, then ends cleanly.
struct FailTimes {
    times: u32,
}

impl Runnable for FailTimes {
    type Error = std::io::Error;

    async fn run(&self, ctx: Context) -> Result<(), std::io::Error> {
        if ctx.attempt() <= self.times {
            Err(child_error())
        } else {
            Ok(())
        }
    }
}

/// Ends at once.
struct Brief;

impl Runnable for Brief {
    type Error = Infallible;

    async fn run(&self, _ctx: Context) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A running manager with `n` idle children that all run, and a way to stop
/// it that is not timed.
async fn procmgr_running_idle(
    n: usize,
) -> (
    procmgr::ManagerHandle,
    tokio::task::JoinHandle<<ProcessManager as IntoFuture>::Output>,
) {
    let started = Countdown::new(n);
    let manager = ProcessManager::new();
    for _ in 0..n {
        manager.insert(Idle::new(&started)).expect("accepted");
    }
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    started.wait().await;
    (handle, run)
}

/// Yields `polls` times, so that its task is polled that often. It wakes
/// itself rather than calling `tokio::task::yield_now`, which defers the wake
/// until the runtime has polled its drivers: a system call per yield that
/// would drown what is measured.
struct Yields(usize);

impl Runnable for Yields {
    type Error = Infallible;

    async fn run(&self, _ctx: Context) -> Result<(), Infallible> {
        for _ in 0..self.0 {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    std::task::Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        Ok(())
    }
}

/// The median time of one child polled `polls` times, without a slow-poll
/// threshold and with one it never reaches, the two taking turns.
fn poll_cost(polls: usize, repetitions: usize) -> (Duration, Duration) {
    // One thread: a yield on a multi-threaded runtime also measures how the
    // workers hand the task around, which drowns what is measured here.
    let once = |threshold: Option<Duration>| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let manager = ProcessManager::new();
            let options = match threshold {
                Some(threshold) => ChildOptions::new().slow_poll(threshold),
                None => ChildOptions::new(),
            };
            manager
                .insert_with(Yields(polls), options)
                .expect("accepted");
            let t0 = Instant::now();
            manager.await.expect("clean run");
            t0.elapsed()
        })
    };
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..repetitions {
        off.push(once(None));
        on.push(once(Some(Duration::from_secs(1))));
    }
    (median(off), median(on))
}

/// A running manager with `n` idle children: the median time of `tree()`
/// and of serializing it to JSON, and the JSON's size.
#[cfg(feature = "serde")]
fn snapshot_cost(n: usize, repetitions: usize) -> (Duration, Duration, usize) {
    on_runtime(async move {
        let (handle, run) = procmgr_running_idle(n).await;
        let mut trees = Vec::new();
        let mut jsons = Vec::new();
        let mut bytes = 0;
        for _ in 0..repetitions {
            let t0 = Instant::now();
            let tree = handle.tree();
            trees.push(t0.elapsed());
            let t0 = Instant::now();
            let json = serde_json::to_vec(&tree).expect("serializes");
            jsons.push(t0.elapsed());
            bytes = json.len();
        }
        handle.request_shutdown().expect("running");
        run.await.expect("joined").expect("clean stop");
        (median(trees), median(jsons), bytes)
    })
}

// ---------------------------------------------------------------------------
// The baseline: what one would write by hand with a JoinSet and a
// CancellationToken.

#[path = "common/baseline.rs"]
mod baseline;

/// The baseline's idle child; with a trigger it fails when triggered
/// instead (one future type for both, so the baseline boxes nothing).
async fn baseline_idle(
    token: CancellationToken,
    started: Arc<Countdown>,
    fail_on: Option<Arc<Notify>>,
) -> Result<(), BoxError> {
    started.arrive();
    match fail_on {
        Some(trigger) => {
            trigger.notified().await;
            Err(child_error().into())
        }
        None => {
            token.cancelled().await;
            Ok(())
        }
    }
}

/// The baseline's reloadable child: reloads arrive through a `watch`
/// channel, the cheapest tokio primitive that reaches every task at once.
async fn baseline_reloadable(
    token: CancellationToken,
    mut reloads: watch::Receiver<u64>,
    started: Arc<Countdown>,
    reloaded: Arc<Countdown>,
) -> Result<(), BoxError> {
    started.arrive();
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            changed = reloads.changed() => {
                if changed.is_err() {
                    break;
                }
                reloaded.arrive();
            }
        }
    }
    Ok(())
}

/// The baseline's churn child: ends at once, unless it is the one that
/// keeps the supervisor alive until shutdown.
async fn baseline_brief(token: CancellationToken, keep: bool) -> Result<(), BoxError> {
    if keep {
        token.cancelled().await;
    }
    Ok(())
}

/// The baseline's restarted child: fails on its first `times` attempts.
async fn baseline_fail_times(
    _token: CancellationToken,
    attempt: u32,
    times: u32,
) -> Result<(), BoxError> {
    if attempt <= times {
        Err(child_error().into())
    } else {
        Ok(())
    }
}

/// A baseline that runs `n` idle children, all of them running.
async fn baseline_running_idle(
    n: usize,
) -> (
    baseline::Handle<impl Future<Output = Result<(), BoxError>> + Send + 'static>,
    tokio::task::JoinHandle<Result<(), BoxError>>,
) {
    let started = Countdown::new(n);
    let mut supervisor = baseline::Supervisor::new();
    for _ in 0..n {
        supervisor.spawn(|token| baseline_idle(token, Arc::clone(&started), None));
    }
    let handle = supervisor.handle();
    let run = tokio::spawn(supervisor.run());
    started.wait().await;
    (handle, run)
}

// ---------------------------------------------------------------------------
// The timed scenarios

fn start(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        let started = Countdown::new(n);
        match side {
            Side::Procmgr => {
                let t0 = Instant::now();
                let manager = ProcessManager::new();
                for _ in 0..n {
                    manager.insert(Idle::new(&started)).expect("accepted");
                }
                let handle = manager.handle();
                let run = tokio::spawn(manager.into_future());
                started.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
            Side::Baseline => {
                let t0 = Instant::now();
                let mut supervisor = baseline::Supervisor::new();
                for _ in 0..n {
                    supervisor.spawn(|token| baseline_idle(token, Arc::clone(&started), None));
                }
                let handle = supervisor.handle();
                let run = tokio::spawn(supervisor.run());
                started.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
        }
    })
}

fn insert(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        let keeper_started = Countdown::new(1);
        let started = Countdown::new(n);
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                manager
                    .insert(Idle::new(&keeper_started))
                    .expect("accepted");
                let handle = manager.handle();
                let run = tokio::spawn(manager.into_future());
                keeper_started.wait().await;
                let t0 = Instant::now();
                for _ in 0..n {
                    handle.insert(Idle::new(&started)).expect("accepted");
                }
                started.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
            Side::Baseline => {
                let supervisor = baseline::Supervisor::new();
                let handle = supervisor.handle();
                handle.insert(|token| baseline_idle(token, Arc::clone(&keeper_started), None));
                let run = tokio::spawn(supervisor.run());
                keeper_started.wait().await;
                let t0 = Instant::now();
                for _ in 0..n {
                    handle.insert(|token| baseline_idle(token, Arc::clone(&started), None));
                }
                started.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
        }
    })
}

fn shutdown(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        match side {
            Side::Procmgr => {
                let (handle, run) = procmgr_running_idle(n).await;
                let t0 = Instant::now();
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                t0.elapsed()
            }
            Side::Baseline => {
                let (handle, run) = baseline_running_idle(n).await;
                let t0 = Instant::now();
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
                t0.elapsed()
            }
        }
    })
}

fn first_error(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        let started = Countdown::new(n);
        let trigger = Arc::new(Notify::new());
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                for _ in 1..n {
                    manager.insert(Idle::new(&started)).expect("accepted");
                }
                manager
                    .insert(FailOnTrigger {
                        started: Arc::clone(&started),
                        trigger: Arc::clone(&trigger),
                    })
                    .expect("accepted");
                let run = tokio::spawn(manager.into_future());
                started.wait().await;
                let t0 = Instant::now();
                trigger.notify_one();
                let result = run.await.expect("joined");
                let elapsed = t0.elapsed();
                assert!(result.is_err(), "the failure is returned");
                elapsed
            }
            Side::Baseline => {
                let mut supervisor = baseline::Supervisor::new();
                for _ in 1..n {
                    supervisor.spawn(|token| baseline_idle(token, Arc::clone(&started), None));
                }
                supervisor.spawn(|token| {
                    baseline_idle(token, Arc::clone(&started), Some(Arc::clone(&trigger)))
                });
                let run = tokio::spawn(supervisor.run());
                started.wait().await;
                let t0 = Instant::now();
                trigger.notify_one();
                let result = run.await.expect("joined");
                let elapsed = t0.elapsed();
                assert!(result.is_err(), "the failure is returned");
                elapsed
            }
        }
    })
}

fn reload(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        let started = Countdown::new(n);
        let reloaded = Countdown::new(n);
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                for _ in 0..n {
                    manager
                        .insert(Reloadable {
                            started: Arc::clone(&started),
                            reloaded: Arc::clone(&reloaded),
                        })
                        .expect("accepted");
                }
                let handle = manager.handle();
                let run = tokio::spawn(manager.into_future());
                started.wait().await;
                let t0 = Instant::now();
                handle.request_reload().expect("running");
                reloaded.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
            Side::Baseline => {
                let (reload_sender, reloads) = watch::channel(0_u64);
                let mut supervisor = baseline::Supervisor::new();
                for _ in 0..n {
                    supervisor.spawn(|token| {
                        baseline_reloadable(
                            token,
                            reloads.clone(),
                            Arc::clone(&started),
                            Arc::clone(&reloaded),
                        )
                    });
                }
                let handle = supervisor.handle();
                let run = tokio::spawn(supervisor.run());
                started.wait().await;
                let t0 = Instant::now();
                reload_sender.send_modify(|generation| *generation += 1);
                reloaded.wait().await;
                let elapsed = t0.elapsed();
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
                elapsed
            }
        }
    })
}

fn churn(side: Side, n: usize) -> Duration {
    on_runtime(async move {
        let keeper_started = Countdown::new(1);
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                let keeper = manager
                    .insert(Idle::new(&keeper_started))
                    .expect("accepted");
                let handle = manager.handle();
                let run = tokio::spawn(manager.into_future());
                keeper_started.wait().await;
                let t0 = Instant::now();
                for _ in 0..n {
                    handle.insert(Brief).expect("accepted");
                }
                // Stopping the keeper lets the run end once every brief
                // child has ended.
                keeper.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                t0.elapsed()
            }
            Side::Baseline => {
                let supervisor = baseline::Supervisor::new();
                let handle = supervisor.handle();
                let keeper_token = CancellationToken::new();
                let keeper = keeper_token.clone();
                handle.insert(move |_| baseline_brief(keeper, true));
                let run = tokio::spawn(supervisor.run());
                let t0 = Instant::now();
                for _ in 0..n {
                    handle.insert(|token| baseline_brief(token, false));
                }
                keeper_token.cancel();
                run.await.expect("joined").expect("clean stop");
                t0.elapsed()
            }
        }
    })
}

/// One child that fails `n` times in a row and is restarted at once each
/// time; from the run's start until its last, clean attempt has ended.
fn restart(side: Side, n: usize) -> Duration {
    let times = u32::try_from(n).expect("a restart count that fits a u32");
    on_runtime(async move {
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                manager
                    .insert_with(
                        FailTimes { times },
                        ChildOptions::new()
                            .restart(Restart::OnFailure)
                            .backoff(Backoff::none())
                            .restart_limit(RestartLimit::new(u32::MAX, Duration::from_secs(60))),
                    )
                    .expect("accepted");
                let t0 = Instant::now();
                manager.await.expect("the last attempt ends cleanly");
                t0.elapsed()
            }
            Side::Baseline => {
                let mut attempt = 1;
                let mut supervisor =
                    baseline::Supervisor::new().restart_failed_with(move |token| {
                        attempt += 1;
                        baseline_fail_times(token, attempt, times)
                    });
                supervisor.spawn(|token| baseline_fail_times(token, 1, times));
                let t0 = Instant::now();
                supervisor
                    .run()
                    .await
                    .expect("the last attempt ends cleanly");
                t0.elapsed()
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Memory, each measurement in a fresh process

fn run_child_process(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .expect("the bench binary runs");
    assert!(
        output.status.success(),
        "child process {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs one measurement and prints its result on stdout: a memory
/// measurement for the suite, or (`profile`) one timed scenario once on one
/// side, for running under a profiler.
fn child_process(args: &[String]) {
    match args {
        [what, scenario, side, n] if what == "profile" => {
            let (_, scenario) = TIMED
                .iter()
                .find(|(name, _)| name == scenario)
                .expect("a timed scenario's name");
            let elapsed = scenario(Side::parse(side), n.parse().expect("a child count"));
            println!("{}", human_time(elapsed));
        }
        [what, side, n] if what == "memory" => {
            let n: usize = n.parse().expect("a child count");
            println!("{}", idle_memory_growth(Side::parse(side), n));
        }
        [what, side] if what == "churn-memory" => {
            for (churned, kib) in churn_resident(Side::parse(side)) {
                println!("{churned} {kib}");
            }
        }
        other => panic!("unknown child process arguments {other:?}"),
    }
}

/// `VmRSS` and `VmHWM` (peak) of this process, in KiB.
fn resident_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("the field is in /proc/self/status")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Peak resident memory growth, in bytes, from before `n` idle children are
/// inserted until they all run.
fn idle_memory_growth(side: Side, n: usize) -> u64 {
    on_runtime(async move {
        // Touch what every run needs once (the runtime's workers, the
        // allocator's per-thread arenas) before the first reading.
        match side {
            Side::Procmgr => {
                let (handle, run) = procmgr_running_idle(64).await;
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
            }
            Side::Baseline => {
                let (handle, run) = baseline_running_idle(64).await;
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
            }
        }
        let (before, _) = resident_kib();
        match side {
            Side::Procmgr => {
                let (handle, run) = procmgr_running_idle(n).await;
                let (_, peak) = resident_kib();
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
                peak.saturating_sub(before) * 1024
            }
            Side::Baseline => {
                let (handle, run) = baseline_running_idle(n).await;
                let (_, peak) = resident_kib();
                handle.request_shutdown();
                run.await.expect("joined").expect("clean stop");
                peak.saturating_sub(before) * 1024
            }
        }
    })
}

/// Resident memory (KiB) of a process whose manager runs all along while
/// brief children are inserted in batches, each batch ending before the
/// next: before the first, and after each checkpoint in [`CHURN_CHECKPOINTS`].
fn churn_resident(side: Side) -> Vec<(usize, u64)> {
    on_runtime(async move {
        let total = CHURN_CHECKPOINTS[CHURN_CHECKPOINTS.len() - 1];
        let mut readings = vec![(0, resident_kib().0)];
        let keeper_started = Countdown::new(1);
        match side {
            Side::Procmgr => {
                let manager = ProcessManager::new();
                manager
                    .insert(Idle::new(&keeper_started))
                    .expect("accepted");
                let handle = manager.handle();
                let run = tokio::spawn(manager.into_future());
                keeper_started.wait().await;
                let mut batch: Vec<ChildHandle> = Vec::with_capacity(CHURN_BATCH);
                let mut churned = 0;
                while churned < total {
                    batch.extend((0..CHURN_BATCH).map(|_| handle.insert(Brief).expect("accepted")));
                    // A handle's wait returns once the manager has reaped the
                    // child and dropped its record.
                    for child in batch.drain(..) {
                        child.wait().await;
                    }
                    churned += CHURN_BATCH;
                    if CHURN_CHECKPOINTS.contains(&churned) {
                        readings.push((churned, resident_kib().0));
                    }
                }
                handle.request_shutdown().expect("running");
                run.await.expect("joined").expect("clean stop");
            }
            Side::Baseline => {
                let supervisor = baseline::Supervisor::new();
                let handle = supervisor.handle();
                let reaped = supervisor.reaped();
                let keeper_token = CancellationToken::new();
                let keeper = keeper_token.clone();
                handle.insert(move |_| baseline_brief(keeper, true));
                let run = tokio::spawn(supervisor.run());
                let mut churned = 0;
                while churned < total {
                    for _ in 0..CHURN_BATCH {
                        handle.insert(|token| baseline_brief(token, false));
                    }
                    churned += CHURN_BATCH;
                    while reaped.load(Ordering::Relaxed) < churned {
                        tokio::task::yield_now().await;
                    }
                    if CHURN_CHECKPOINTS.contains(&churned) {
                        readings.push((churned, resident_kib().0));
                    }
                }
                keeper_token.cancel();
                run.await.expect("joined").expect("clean stop");
            }
        }
        readings
    })
}

/// The churn memory rows: resident memory after each checkpoint (the median
/// of `repetitions` processes per side), and whether it stayed flat.
fn churn_memory(repetitions: usize) -> Vec<Row> {
    let readings = |side: Side| -> Vec<(usize, u64)> {
        let runs: Vec<Vec<(usize, u64)>> = (0..repetitions)
            .map(|_| {
                run_child_process(&["churn-memory", side.as_str()])
                    .lines()
                    .map(|line| {
                        let (churned, kib) = line.split_once(' ').expect("two fields");
                        (churned.parse().expect("a count"), kib.parse().expect("KiB"))
                    })
                    .collect()
            })
            .collect();
        (0..runs[0].len())
            .map(|i| {
                let mut kib: Vec<u64> = runs.iter().map(|run| run[i].1).collect();
                kib.sort_unstable();
                (runs[0][i].0, kib[kib.len() / 2])
            })
            .collect()
    };
    let procmgr = readings(Side::Procmgr);
    let baseline = readings(Side::Baseline);
    let (p_before, b_before) = (procmgr[0].1, baseline[0].1);
    let mut rows = Vec::new();
    for (&(churned, p), &(_, b)) in procmgr.iter().zip(&baseline).skip(1) {
        rows.push(Row {
            scenario: "churn memory",
            n: churned,
            procmgr: Figure::Resident {
                kib: p,
                before: p_before,
            },
            baseline: Figure::Resident {
                kib: b,
                before: b_before,
            },
            ratio: p.saturating_sub(p_before) as f64 / b.saturating_sub(b_before).max(1) as f64,
            target: Target::None,
        });
    }
    // Resident memory after the last checkpoint over that after an earlier
    // one: it must not grow with the number of children churned. The issue
    // compares with the first checkpoint; the one after it shows what is
    // left once the allocator has warmed up.
    let last = procmgr.len() - 1;
    for (first, target) in [(1, Target::Flat(0.10)), (2, Target::None)] {
        let growth = |readings: &[(usize, u64)]| readings[last].1 as f64 / readings[first].1 as f64;
        rows.push(Row {
            scenario: "churn kept",
            n: procmgr[last].0,
            procmgr: Figure::Growth {
                growth: growth(&procmgr),
                since: procmgr[first].0,
            },
            baseline: Figure::Growth {
                growth: growth(&baseline),
                since: baseline[first].0,
            },
            ratio: growth(&procmgr),
            target,
        });
    }
    rows
}
