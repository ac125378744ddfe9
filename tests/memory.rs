//! Memory is proportional to live children, never to history: what a
//! manager keeps after children have ended, and what a manager costs that
//! nobody subscribes to.
//!
//! An allocator that counts bytes in use measures each scenario. The tests
//! take turns (one lock) and each runs on a current-thread runtime with
//! paused time, so that no other thread allocates while one measures. Each
//! measures growth against a baseline taken after a warm-up that has
//! already grown the runtime's and the manager's reusable buffers.

use std::alloc::System;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::{
    ChildHandle, ChildOptions, Context, IdleProcess, ManagerHandle, ProcessManager, Runnable,
    Strategy,
};
use tokio::sync::Notify;

#[global_allocator]
static ALLOCATOR: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

/// One measurement at a time.
static TURN: Mutex<()> = Mutex::new(());

/// Bytes in use right now.
fn in_use() -> isize {
    isize::try_from(ALLOCATOR.allocated()).expect("fits")
}

/// Runs `scenario` alone, on a current-thread runtime with paused time.
fn measure<F: std::future::Future<Output = ()>>(scenario: F) {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(scenario);
}

/// Waits for shutdown, then takes a millisecond to stop; under its type's
/// default name, so that many can live side by side (repeats get a suffix).
struct Stays;

impl Runnable for Stays {
    type Error = std::convert::Infallible;

    async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
        ctx.shutdown_requested().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

/// Ends at once, under its type's default name.
struct Brief;

impl Runnable for Brief {
    type Error = std::convert::Infallible;

    async fn run(&self, _ctx: Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

const BATCH: usize = 500;

/// Runs `count` children, `BATCH` at a time, each stopped through its
/// handle once it runs, and waits until all have ended. (A child that
/// returned the moment its token was cancelled would be reaped before its
/// manager saw the stop request, and would need no grace timer at all.)
async fn churn_stopped(manager: &ManagerHandle, count: usize, options: &ChildOptions) {
    for _ in 0..count / BATCH {
        let children: Vec<ChildHandle> = (0..BATCH)
            .map(|_| {
                manager
                    .insert_with(Stays, options.clone())
                    .expect("accepted")
            })
            .collect();
        tokio::task::yield_now().await;
        for child in &children {
            child.shutdown().await;
        }
    }
}

/// Runs `count` children that end by themselves, `BATCH` at a time, and
/// waits until all have ended.
async fn churn_brief(manager: &ManagerHandle, count: usize, options: &ChildOptions) {
    for _ in 0..count / BATCH {
        let children: Vec<ChildHandle> = (0..BATCH)
            .map(|_| {
                manager
                    .insert_with(Brief, options.clone())
                    .expect("accepted")
            })
            .collect();
        for child in &children {
            child.wait().await;
        }
    }
}

/// Growth after 2,000 and after 20,000 churned children, against a
/// baseline after a warm-up of 1,000.
async fn growth_of_churn<C, F>(churn: C) -> (isize, isize)
where
    C: Fn(ManagerHandle, usize) -> F,
    F: std::future::Future<Output = ()>,
{
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    churn(handle.clone(), 1_000).await;
    let base = in_use();
    churn(handle.clone(), 2_000).await;
    let small = in_use() - base;
    churn(handle.clone(), 18_000).await;
    let large = in_use() - base;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    (small, large)
}

/// What the count may grow by beyond the smaller churn's growth: noise,
/// far below the 18,000 timer entries (40 bytes each) it would take to
/// remember the larger churn's children.
const SLACK: isize = 64 * 1024;

#[test]
fn children_stopped_through_their_handles_with_a_long_grace_leave_no_timers_behind() {
    measure(async {
        let options = ChildOptions::new().grace_period(Duration::from_secs(3600));
        let (small, large) = growth_of_churn(|handle, count| {
            let options = options.clone();
            async move { churn_stopped(&handle, count, &options).await }
        })
        .await;
        assert!(
            large <= small + SLACK,
            "memory grows with history: {small} B after 2,000 children, {large} B after 20,000"
        );
    });
}

#[test]
fn children_with_a_heartbeat_timeout_leave_no_timers_behind() {
    measure(async {
        let options = ChildOptions::new().heartbeat_timeout(Duration::from_secs(3600));
        let (small, large) = growth_of_churn(|handle, count| {
            let options = options.clone();
            async move { churn_brief(&handle, count, &options).await }
        })
        .await;
        assert!(
            large <= small + SLACK,
            "memory grows with history: {small} B after 2,000 children, {large} B after 20,000"
        );
    });
}

/// A manager named `root`, kept running by one idle child, once it is
/// ready: its handle and its run.
async fn running_root() -> (
    ManagerHandle,
    tokio::task::JoinHandle<Result<procmgr::Exit, procmgr::RunError>>,
) {
    let root = ProcessManager::builder().name("root").build();
    let handle = root.handle();
    root.insert(IdleProcess).expect("accepted");
    let run = tokio::spawn(root.into_future());
    handle.ready().await;
    (handle, run)
}

/// Each manager's share, in bytes, of what `count` managers cost.
fn per(bytes: isize, count: usize) -> isize {
    bytes / isize::try_from(count).expect("fits")
}

#[test]
fn a_thousand_nested_managers_nobody_subscribes_to_are_cheap() {
    const MANAGERS: usize = 1_000;
    measure(async {
        let (handle, run) = running_root().await;
        let base = in_use();
        for n in 0..MANAGERS {
            let nested = ProcessManager::builder()
                .name(format!("nested-{n}"))
                .child(IdleProcess)
                .build();
            handle.insert(nested).expect("accepted");
        }
        // Every nested manager runs and has started its child.
        tokio::task::yield_now().await;
        handle.ready().await;
        let each = per(in_use() - base, MANAGERS);
        handle.shutdown().await;
        run.await.expect("joined").expect("clean stop");
        // Far below the 82 KB an event buffer allocated up front costs; what
        // is left is mostly the first chunk of the manager's record storage
        // and its task.
        assert!(
            each <= 32 * 1024,
            "a running nested manager with one child costs {each} B"
        );
    });
}

#[test]
fn a_burst_of_children_gives_its_bookkeeping_back_once_they_have_ended() {
    const BURST: usize = 100_000;
    measure(async {
        grow_runtime_queues(BURST).await;
        let manager = ProcessManager::builder().child(IdleProcess).build();
        let handle = manager.handle();
        let run = tokio::spawn(manager.into_future());
        churn_brief(&handle, 1_000, &ChildOptions::new()).await;
        let base = in_use();

        // Registered at once: the manager's loop gets no turn in between.
        let children: Vec<ChildHandle> = (0..BURST)
            .map(|_| handle.insert(Brief).expect("accepted"))
            .collect();
        for child in &children {
            child.wait().await;
        }
        drop(children);
        // Let it settle: time passes and the loop has more turns.
        tokio::time::sleep(Duration::from_secs(60)).await;
        churn_brief(&handle, 1_000, &ChildOptions::new()).await;
        tokio::time::sleep(Duration::from_secs(60)).await;

        let kept = per(in_use() - base, BURST);
        handle.shutdown().await;
        run.await.expect("joined").expect("clean stop");
        assert!(
            kept <= 8,
            "after a burst of {BURST} children the manager keeps {kept} B per child"
        );
    });
}

/// Counts down to zero, and wakes who waits for that.
struct Countdown {
    left: AtomicUsize,
    done: Notify,
}

impl Countdown {
    fn new(count: usize) -> Arc<Self> {
        Arc::new(Countdown {
            left: AtomicUsize::new(count),
            done: Notify::new(),
        })
    }

    fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::Relaxed) == 1 {
            // `notify_one` keeps the wake-up if no one waits yet.
            self.done.notify_one();
        }
    }

    async fn wait(&self) {
        while self.left.load(Ordering::Relaxed) != 0 {
            self.done.notified().await;
        }
    }
}

/// Ends at once, and arrives at its countdown when it is dropped. A
/// manager holds a child's runnable in the child's record until it removes
/// the record, so once every `Reaped` of a burst has arrived, every child
/// of the burst has ended and been reaped, and no one had to hold a
/// `ChildHandle` for that (100,000 of them would be memory of their own).
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

/// Grows the runtime's own queues to `count` tasks before a measurement:
/// they keep their capacity, and they are not the manager's.
async fn grow_runtime_queues(count: usize) {
    let tasks: Vec<_> = (0..count).map(|_| tokio::spawn(async {})).collect();
    for task in tasks {
        task.await.expect("joined");
    }
}

/// What a running manager (kept alive by one idle child) keeps, per child
/// of the burst, after `burst` children that end at once were inserted all
/// at once, with `options`, and all have been reaped.
///
/// Only with auto-cleanup on (the default): with it off a manager keeps
/// every ended child's record on purpose, until its handle is dropped.
async fn kept_after_a_burst(
    manager: ProcessManager,
    burst: usize,
    options: &ChildOptions,
) -> isize {
    grow_runtime_queues(burst).await;
    let handle = manager.handle();
    manager.insert(IdleProcess).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    let warm_up = Countdown::new(1_000);
    for _ in 0..1_000 {
        drop(handle.insert_with(Reaped(Arc::clone(&warm_up)), options.clone()));
    }
    warm_up.wait().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let base = in_use();

    // Inserted in one go: the manager's loop gets no turn in between, so
    // every child of the burst is in its books at once.
    let reaped = Countdown::new(burst);
    for _ in 0..burst {
        drop(handle.insert_with(Reaped(Arc::clone(&reaped)), options.clone()));
    }
    reaped.wait().await;
    drop(reaped);
    // Time passes and the loop has its turns; nothing else happens.
    tokio::time::sleep(Duration::from_secs(60)).await;

    let kept = per(in_use() - base, burst);
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    kept
}

/// An ordered start of many children: once they have all started and
/// ended, the manager keeps no room for them (its start queue held 16 bytes
/// per child, doubled as it grew, for the rest of the run).
#[test]
fn an_ordered_start_of_10_000_leaves_at_most_8_bytes_per_child_once_reaped() {
    const CHILDREN: usize = 10_000;
    measure(async {
        grow_runtime_queues(CHILDREN).await;
        let manager = ProcessManager::builder()
            .ordered_start(Duration::from_secs(1))
            .build();
        let handle = manager.handle();
        let base = in_use();
        let reaped = Countdown::new(CHILDREN);
        for _ in 0..CHILDREN {
            manager
                .insert(Reaped(Arc::clone(&reaped)))
                .expect("accepted");
        }
        // Last in the order: keeps the run going once the others ended.
        manager.insert(IdleProcess).expect("accepted");
        let run = tokio::spawn(manager.into_future());
        reaped.wait().await;
        drop(reaped);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let kept = per(in_use() - base, CHILDREN);
        handle.shutdown().await;
        run.await.expect("joined").expect("clean stop");
        assert!(
            kept <= KEPT_PER_BURST_CHILD,
            "{kept} B kept per child of an ordered start"
        );
    });
}

/// The target of issue 11; a bare `JoinSet` keeps about 0.2 B.
const KEPT_PER_BURST_CHILD: isize = 8;

#[test]
fn a_burst_inserted_at_once_leaves_at_most_8_bytes_per_child_once_reaped() {
    const BURST: usize = 100_000;
    measure(async {
        let kept = kept_after_a_burst(ProcessManager::new(), BURST, &ChildOptions::new()).await;
        assert!(
            kept <= KEPT_PER_BURST_CHILD,
            "after a burst of {BURST} children the manager keeps {kept} B per child"
        );
    });
}

/// The same for a burst of 10,000: what the manager keeps whatever the
/// burst's size (lists it keeps room in between turns) must stay small
/// next to it too.
#[test]
fn a_burst_of_10_000_leaves_at_most_8_bytes_per_child_once_reaped() {
    const BURST: usize = 10_000;
    measure(async {
        let kept = kept_after_a_burst(ProcessManager::new(), BURST, &ChildOptions::new()).await;
        assert!(
            kept <= KEPT_PER_BURST_CHILD,
            "after a burst of {BURST} children the manager keeps {kept} B per child"
        );
    });
}

/// The same with the bookkeeping a group strategy (the id-ordered list)
/// and a liveness timer per child add.
#[test]
fn a_burst_under_a_group_strategy_with_heartbeat_timeouts_leaves_at_most_8_bytes_per_child() {
    const BURST: usize = 100_000;
    measure(async {
        let manager = ProcessManager::builder()
            .strategy(Strategy::RestForOne)
            .build();
        let options = ChildOptions::new().heartbeat_timeout(Duration::from_secs(3600));
        let kept = kept_after_a_burst(manager, BURST, &options).await;
        assert!(
            kept <= KEPT_PER_BURST_CHILD,
            "after a burst of {BURST} children the manager keeps {kept} B per child"
        );
    });
}

/// Arrives at its countdown once it runs, then waits for shutdown; under
/// its type's default name.
struct Waits(Arc<Countdown>);

impl Runnable for Waits {
    type Error = std::convert::Infallible;

    async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
        self.0.arrive();
        ctx.shutdown_requested().await;
        Ok(())
    }
}

/// Heap in use per idle child, for 10,000 idle children under one default
/// name (each after the first gets a suffix) on a running manager. What
/// the figure holds: the task cell (256 bytes: the process's future with
/// its one-pointer `Context`, whose fields are the next 24), the
/// `ChildCore` behind every handle (184 bytes with its `Arc`), the
/// runnable's `Arc`, its record (80 bytes) and its entry in the name map;
/// the suffixed name (`Waits-4711`) is kept inside the `ChildCore`, a task
/// reports its end through it, with no `JoinSet` entry, and a child has no
/// token unless its process asks for one (597 bytes here). A task cell that
/// grows past tokio's next 128-byte step (as a wait for shutdown 8 bytes
/// larger did), a name allocated again, a token made for every child, or a
/// field added to every child, fails it.
/// With the `tracing` feature each task also holds the child's span, which
/// takes its cell to the next step (725 bytes here).
#[test]
fn an_idle_child_costs_at_most_620_bytes_of_heap() {
    const CHILDREN: usize = 10_000;
    measure(async {
        let (handle, run) = running_root().await;
        let running = Countdown::new(CHILDREN);
        let base = in_use();
        for _ in 0..CHILDREN {
            handle
                .insert(Waits(Arc::clone(&running)))
                .expect("accepted");
        }
        running.wait().await;
        let each = per(in_use() - base, CHILDREN);
        handle.shutdown().await;
        run.await.expect("joined").expect("clean stop");
        // A few bytes of room (the `metrics` feature adds 8), not a step of
        // malloc's size classes.
        let limit = if cfg!(feature = "tracing") { 750 } else { 620 };
        assert!(each <= limit, "an idle child costs {each} B of heap");
    });
}

/// Bytes allocated (including what was freed since) while a child under
/// `Restart::Always` restarts `restarts` times, each attempt taking its
/// token through `Context::token` if `hands_out`.
async fn allocated_by_restarts(restarts: u32, hands_out: bool) -> usize {
    let done = Arc::new(Notify::new());
    let told = Arc::clone(&done);
    let manager = ProcessManager::new();
    manager
        .insert_with(
            procmgr::process_fn("restarts", move |ctx| {
                let told = Arc::clone(&told);
                async move {
                    if hands_out {
                        drop(ctx.token());
                    }
                    if ctx.attempt() > restarts {
                        told.notify_one();
                        ctx.shutdown_requested().await;
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            }),
            ChildOptions::new()
                .restart(procmgr::Restart::Always)
                .backoff(procmgr::Backoff::none())
                .restart_limit(procmgr::RestartLimit::new(restarts, Duration::from_secs(1))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let before = ALLOCATOR.total_allocated();
    let run = tokio::spawn(manager.into_future());
    done.notified().await;
    let allocated = ALLOCATOR.total_allocated() - before;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    allocated
}

/// A restart hands the ended attempt's token on to the next attempt when
/// nothing else can hold it (its context is gone and never handed the
/// token out, and nobody cancelled it): only a child that hands its token
/// out pays for a new one, a tree node of about 100 bytes, per restart.
#[test]
fn a_restart_makes_a_new_token_only_for_a_child_that_handed_its_token_out() {
    const RESTARTS: u32 = 200;
    measure(async {
        // Grows the runtime's and the manager's buffers.
        allocated_by_restarts(RESTARTS, false).await;
        let keeps = allocated_by_restarts(RESTARTS, false).await;
        let hands_out = allocated_by_restarts(RESTARTS, true).await;
        let per_restart = (hands_out - keeps) / RESTARTS as usize;
        assert!(
            (64..=256).contains(&per_restart),
            "a token handed out costs {per_restart} B per restart"
        );
    });
}

/// Runs a restartable subtree (a nested manager restarted whenever its run
/// ends) whose one spec child returns after a millisecond in each run but
/// the `runs`th, where it waits for shutdown, while a handle to that child
/// taken before the first run is kept. Returns the heap in use once the
/// last run has started, less what it was before.
async fn kept_by_a_handle_across_reruns(runs: u32) -> isize {
    let (root, mut root_run) = running_root().await;
    let base = in_use();
    let started = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(Notify::new());
    let sub = ProcessManager::builder().name("sub").build();
    let leaf = {
        let (started, reached) = (Arc::clone(&started), Arc::clone(&reached));
        sub.insert(procmgr::process_fn("leaf", move |ctx| {
            let (started, reached) = (Arc::clone(&started), Arc::clone(&reached));
            async move {
                if started.fetch_add(1, Ordering::SeqCst) + 1 >= runs as usize {
                    reached.notify_one();
                    ctx.shutdown_requested().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<(), std::convert::Infallible>(())
            }
        }))
        .expect("accepted")
    };
    let first = leaf.id();
    // A run takes a millisecond and the limit's window is ten: it
    // remembers at most ten restarts, whatever the number of runs.
    root.insert_with(
        sub,
        ChildOptions::new()
            .restart(procmgr::Restart::Always)
            .backoff(procmgr::Backoff::none())
            .restart_limit(procmgr::RestartLimit::new(20, Duration::from_millis(10))),
    )
    .expect("accepted");
    tokio::select! {
        () = reached.notified() => {}
        ended = &mut root_run => panic!("the tree ended before the last run: {ended:?}"),
    }
    let kept = in_use() - base;
    // The handle taken before the first run speaks for the child of the
    // last.
    assert_ne!(leaf.id(), first, "the handle follows the latest run");
    assert!(
        !leaf.is_finished(),
        "the child of the latest run is running"
    );
    root.shutdown().await;
    root_run.await.expect("joined").expect("clean stop");
    drop(leaf);
    kept
}

/// A handle into a restartable subtree follows the child into each new run
/// of its manager; what it keeps for that does not grow with the runs.
#[test]
fn a_handle_kept_across_a_subtree_s_restarts_keeps_no_memory_per_restart() {
    const FEW: u32 = 100;
    const MANY: u32 = 1_100;
    measure(async {
        // Grows the runtime's and the managers' reusable buffers.
        kept_by_a_handle_across_reruns(FEW).await;
        let few = kept_by_a_handle_across_reruns(FEW).await;
        let many = kept_by_a_handle_across_reruns(MANY).await;
        let per_run = (many - few) / isize::try_from(MANY - FEW).expect("fits");
        assert!(
            per_run <= 8,
            "a kept handle holds {per_run} B per run of its subtree ({few} B after {FEW} runs, \
             {many} B after {MANY})"
        );
    });
}
