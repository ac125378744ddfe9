//! What a running manager keeps once a burst of children has settled: N
//! children that end at once, inserted all at once into a running manager
//! (kept alive by one idle child), until every one has ended and been
//! reaped; against the hand-written `JoinSet` + `CancellationToken`
//! supervisor of `supervision.rs`, fed the same burst over its channel.
//!
//! ```text
//! cargo bench --bench kept                 # N = 1,000, 10,000 and 100,000, a few seconds
//! cargo bench --bench kept -- --quick      # N = 1,000 and 10,000
//! PROCMGR_BENCH_QUICK=1 cargo bench --bench kept
//! ```
//!
//! A bench of its own because it counts bytes with a counting global
//! allocator (`cap`), which adds an atomic operation to every allocation:
//! the timed scenarios of `supervision.rs` keep the plain system allocator.
//!
//! Each measurement runs on a fresh multi-threaded runtime with 2 workers,
//! like the other benches. It takes the bytes in use after a warm-up burst
//! of 1,000 children, runs the burst, waits until every child has been
//! reaped, lets the loop settle for a few milliseconds, and takes the bytes
//! in use again: the difference is what the burst left behind. The figure
//! is the median of 3 runs per side, the sides taking turns. A negative
//! figure means that the burst's ends gave back what the warm-up had left.

#![allow(clippy::print_stdout)]

use std::alloc::System;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use procmgr::{BoxError, Context, IdleProcess, ManagerHandle, ProcessManager, Runnable};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

// Shared with `supervision.rs`, which uses all of it.
#[allow(dead_code)]
#[path = "common/baseline.rs"]
mod baseline;

/// Worker threads of every runtime the bench builds.
const WORKERS: usize = 2;

/// Children in the burst before the first reading, which grows what both
/// sides reuse from one burst to the next.
const WARM_UP: usize = 1_000;

const REPETITIONS: usize = 3;

/// The target (issue 11): bytes kept per child of the burst.
const TARGET: f64 = 8.0;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick")
        || std::env::var("PROCMGR_BENCH_QUICK").is_ok_and(|value| value == "1");
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!(
        "heap kept after a burst: procmgr vs JoinSet + CancellationToken, {WORKERS} tokio workers, sizes {sizes:?}"
    );
    println!();
    let mut rows = Vec::new();
    for &n in sizes {
        let mut procmgr = Vec::new();
        let mut baseline = Vec::new();
        for repetition in 0..REPETITIONS {
            if repetition % 2 == 0 {
                procmgr.push(on_runtime(procmgr_kept(n)));
                baseline.push(on_runtime(baseline_kept(n)));
            } else {
                baseline.push(on_runtime(baseline_kept(n)));
                procmgr.push(on_runtime(procmgr_kept(n)));
            }
        }
        let row = Row {
            n,
            procmgr: median(procmgr),
            baseline: median(baseline),
        };
        println!(
            "kept {:>9}: {} | {} | {}",
            thousands(n),
            row.figure(row.procmgr),
            row.figure(row.baseline),
            row.ratio()
        );
        rows.push(row);
    }
    println!();
    println!("| scenario | N | procmgr | baseline | ratio | target |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for row in &rows {
        println!(
            "| kept after a burst | {} | {} | {} | {} | {} |",
            thousands(row.n),
            row.figure(row.procmgr),
            row.figure(row.baseline),
            row.ratio(),
            row.verdict()
        );
    }
}

struct Row {
    n: usize,
    procmgr: isize,
    baseline: isize,
}

impl Row {
    fn per_child(&self, bytes: isize) -> f64 {
        bytes as f64 / self.n as f64
    }

    fn figure(&self, bytes: isize) -> String {
        let sign = if bytes < 0 { "-" } else { "" };
        format!(
            "{sign}{} B ({:.1} B/child)",
            thousands(bytes.unsigned_abs()),
            self.per_child(bytes)
        )
    }

    /// procmgr over the baseline; none when either kept nothing (or gave
    /// back what the warm-up left).
    fn ratio(&self) -> String {
        if self.baseline > 0 && self.procmgr >= 0 {
            format!("{:.1}x", self.procmgr as f64 / self.baseline as f64)
        } else {
            "-".to_owned()
        }
    }

    /// Like the timed scenarios' targets, it applies at N >= 10,000.
    fn verdict(&self) -> String {
        let holds = self.per_child(self.procmgr) <= TARGET;
        let verdict = match (self.n >= 10_000, holds) {
            (false, _) => "",
            (true, true) => " holds",
            (true, false) => " MISSED",
        };
        format!("<= {TARGET} B/child{verdict}")
    }
}

/// Bytes in use right now, by every thread.
fn in_use() -> isize {
    isize::try_from(ALLOCATOR.allocated()).expect("fits")
}

/// Builds a fresh runtime, runs `future` as a task on it (so that only the
/// two workers run, never the main thread), and drops the runtime.
fn on_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move { tokio::spawn(future).await.expect("scenario finished") })
}

/// Lets the workers finish what the last reap started.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn median(mut samples: Vec<isize>) -> isize {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ---------------------------------------------------------------------------
// procmgr

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

/// Ends at once; arrives at its countdown when dropped, which the manager
/// does when it removes the child's record: once all have arrived, every
/// child has been reaped, without holding a `ChildHandle` per child.
struct Reaped(Arc<Countdown>);

impl Runnable for Reaped {
    type Error = std::convert::Infallible;

    async fn run(&self, _ctx: Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.arrive();
    }
}

async fn procmgr_burst(handle: &ManagerHandle, n: usize) {
    let reaped = Countdown::new(n);
    for _ in 0..n {
        drop(
            handle
                .insert(Reaped(Arc::clone(&reaped)))
                .expect("accepted"),
        );
    }
    reaped.wait().await;
    settle().await;
}

async fn procmgr_kept(n: usize) -> isize {
    let manager = ProcessManager::new();
    manager.insert(IdleProcess).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    procmgr_burst(&handle, WARM_UP).await;
    let base = in_use();
    procmgr_burst(&handle, n).await;
    let kept = in_use() - base;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    kept
}

// ---------------------------------------------------------------------------
// The baseline

/// The idle child that keeps the supervisor running, or one of the burst,
/// which ends at once (one future type for both).
async fn baseline_child(token: CancellationToken, idle: bool) -> Result<(), BoxError> {
    if idle {
        token.cancelled().await;
    }
    Ok(())
}

async fn baseline_burst<F>(
    handle: &baseline::Handle<F>,
    make: fn(CancellationToken) -> F,
    reaped: &AtomicUsize,
    n: usize,
) {
    let until = reaped.load(Ordering::Relaxed) + n;
    for _ in 0..n {
        handle.insert(make);
    }
    // The supervisor counts what it joins but tells no one: look now and
    // then.
    while reaped.load(Ordering::Relaxed) < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    settle().await;
}

async fn baseline_kept(n: usize) -> isize {
    let mut supervisor = baseline::Supervisor::new();
    supervisor.spawn(|token| baseline_child(token, true));
    let handle = supervisor.handle();
    let reaped = supervisor.reaped();
    let run = tokio::spawn(supervisor.run());
    let brief = |token| baseline_child(token, false);
    baseline_burst(&handle, brief, &reaped, WARM_UP).await;
    let base = in_use();
    baseline_burst(&handle, brief, &reaped, n).await;
    let kept = in_use() - base;
    handle.request_shutdown();
    run.await.expect("joined").expect("clean stop");
    kept
}
