//! Inserting children: before the run, while it runs, from other tasks, and
//! into a manager that is stopping or has stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use procmgr::{
    ChildHandle, IdleProcess, InsertErrorKind, ManagerHandle, Outcome, ProcessManager, Runnable,
    process_fn,
};
use tokio::sync::mpsc;

/// A child that reports its start, then waits for shutdown.
fn waiter(name: &'static str, started: mpsc::UnboundedSender<&'static str>) -> impl Runnable {
    process_fn(name, move |ctx| {
        let started = started.clone();
        async move {
            started.send(name).expect("test is listening");
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }
    })
}

#[test]
fn build_insert_and_clone_handles_outside_a_runtime() {
    let manager = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    let handle = manager.handle();
    let child = handle
        .insert_with(IdleProcess, procmgr::ChildOptions::new().name("idle-2"))
        .expect("manager accepts before it runs");
    let clone = child.clone();
    assert_eq!(clone.id(), child.id());
    assert_eq!(handle.children().len(), 2);
    assert!(!clone.is_finished());
    // A shutdown requested before the run is remembered, also outside a
    // runtime.
    handle.request_shutdown().expect("not ended");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(manager.into_future())
        .expect("stops cleanly");
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn children_inserted_before_the_run_start_with_it() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager
        .insert(waiter("a", started.clone()))
        .expect("accepted");
    manager.insert(waiter("b", started)).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let mut seen = vec![starts.recv().await, starts.recv().await];
    seen.sort();
    assert_eq!(seen, [Some("a"), Some("b")]);
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn insert_from_another_task_through_a_cloned_handle() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let remote = handle.clone();
    let inserted = tokio::spawn(async move { remote.insert(waiter("late", started)) })
        .await
        .expect("joined")
        .expect("a running manager accepts");
    assert_eq!(starts.recv().await, Some("late"));
    assert_eq!(inserted.name(), "late");

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(inserted.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn insert_right_after_spawning_the_manager() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let child = handle
        .insert(waiter("early", started))
        .expect("a manager with a live child accepts");
    assert_eq!(starts.recv().await, Some("early"));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(child.is_finished());
}

#[tokio::test(start_paused = true)]
async fn insert_during_shutdown_hands_the_runnable_back() {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    let manager = ProcessManager::new();
    // A child that takes its time to stop keeps the manager in its stopping
    // phase until the test lets it go.
    manager
        .insert(process_fn("slow", move |ctx| {
            let released = released.lock().expect("lock").take();
            async move {
                ctx.shutdown_requested().await;
                if let Some(released) = released {
                    let _ = released.await;
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.request_shutdown().expect("running");
    tokio::task::yield_now().await;

    let refused = handle.insert(IdleProcess).expect_err("stopping refuses");
    assert_eq!(refused.kind(), InsertErrorKind::ShuttingDown);
    let _idle: IdleProcess = refused.into_inner();

    release.send(()).expect("child waits");
    run.await.expect("joined").expect("clean stop");

    let refused = handle.insert(IdleProcess).expect_err("stopped refuses");
    assert_eq!(refused.kind(), InsertErrorKind::Stopped);
    assert!(refused.to_string().contains("stopped"));
}

#[tokio::test(start_paused = true)]
async fn a_manager_without_children_ends_and_then_refuses_inserts() {
    let manager = ProcessManager::new();
    let handle = manager.handle();
    manager.await.expect("nothing to fail");
    assert!(matches!(handle.outcome(), Some(Outcome::Completed)));
    let refused = handle.insert(IdleProcess).expect_err("stopped");
    assert_eq!(refused.kind(), InsertErrorKind::Stopped);
}

/// Counts runs of the child and whether each run ended.
struct Counted {
    runs: Arc<AtomicUsize>,
    ends: Arc<AtomicUsize>,
}

impl Runnable for Counted {
    type Error = std::io::Error;

    async fn run(&self, ctx: procmgr::Context) -> Result<(), Self::Error> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        ctx.shutdown_requested().await;
        self.ends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn race_inserts_with(
    handle: ManagerHandle,
    runs: &Arc<AtomicUsize>,
    ends: &Arc<AtomicUsize>,
) -> (usize, usize) {
    let mut inserters = Vec::new();
    for _ in 0..4 {
        let handle = handle.clone();
        let (runs, ends) = (Arc::clone(runs), Arc::clone(ends));
        inserters.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (0, 0);
            for _ in 0..8 {
                let child = Counted {
                    runs: Arc::clone(&runs),
                    ends: Arc::clone(&ends),
                };
                match handle.insert(child) {
                    Ok(_) => accepted += 1,
                    Err(error) => {
                        let _back: Counted = error.into_inner();
                        refused += 1;
                    }
                }
                tokio::task::yield_now().await;
            }
            (accepted, refused)
        }));
    }
    let mut totals = (0, 0);
    for inserter in inserters {
        let (accepted, refused) = inserter.await.expect("joined");
        totals.0 += accepted;
        totals.1 += refused;
    }
    totals
}

/// Under any interleaving of inserts with shutdown and exit, every accepted
/// child ran and was stopped before the run returned, and every refused one
/// came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_racing_shutdown_never_leave_a_child_running() {
    for iteration in 0..200 {
        let runs = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        let manager = ProcessManager::builder().child(IdleProcess).build();
        let handle = manager.handle();
        let run = tokio::spawn(manager.into_future());

        let racing = tokio::spawn({
            let (handle, runs, ends) = (handle.clone(), Arc::clone(&runs), Arc::clone(&ends));
            async move { race_inserts_with(handle, &runs, &ends).await }
        });
        if iteration % 2 == 0 {
            tokio::task::yield_now().await;
        }
        handle.request_shutdown().expect("not ended yet");
        run.await.expect("joined").expect("clean stop");
        let ends_at_return = ends.load(Ordering::SeqCst);
        let (accepted, refused) = racing.await.expect("joined");

        assert_eq!(accepted + refused, 32);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            accepted,
            "iteration {iteration}"
        );
        assert_eq!(ends_at_return, accepted, "iteration {iteration}");
    }
}

/// Inserts racing the natural end of a manager whose last child returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_racing_the_managers_exit_never_leave_a_child_running() {
    for iteration in 0..200 {
        let runs = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        let manager = ProcessManager::builder()
            .child(process_fn("short", |_ctx| async {
                tokio::task::yield_now().await;
                Ok::<_, std::io::Error>(())
            }))
            .build();
        let handle = manager.handle();
        let run = tokio::spawn(manager.into_future());
        let racing = tokio::spawn({
            let (handle, runs, ends) = (handle.clone(), Arc::clone(&runs), Arc::clone(&ends));
            async move { race_inserts_with(handle, &runs, &ends).await }
        });
        // Accepted children wait for shutdown, so stop the manager once the
        // inserting is over; the race is with the short child's end.
        let (accepted, refused) = racing.await.expect("joined");
        // Err only when the manager has already ended.
        let _ = handle.request_shutdown();
        run.await.expect("joined").expect("clean stop");
        assert_eq!(accepted + refused, 32);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            accepted,
            "iteration {iteration}"
        );
        assert_eq!(
            ends.load(Ordering::SeqCst),
            accepted,
            "iteration {iteration}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn inserted_children_get_distinct_ids_and_their_names() {
    let manager = ProcessManager::new();
    let a = manager.insert(IdleProcess).expect("accepted");
    let b = manager
        .insert_with(IdleProcess, procmgr::ChildOptions::new().name("named"))
        .expect("accepted");
    assert_ne!(a.id(), b.id());
    assert_eq!(a.name(), "idle");
    assert_eq!(b.name(), "named");
    let handle = manager.handle();
    handle.request_shutdown().expect("not ended");
    tokio::time::timeout(Duration::from_secs(1), manager.into_future())
        .await
        .expect("stops at once")
        .expect("clean stop");
}

/// A burst larger than the loop's spawn batch (256) lands in one turn: the
/// loop prepares and spawns it a batch per lock. Every child runs, in the
/// order it was inserted, and one stopped through its handle before the
/// loop took it ends stopped, with the rest running on.
#[tokio::test(start_paused = true)]
async fn a_burst_larger_than_a_spawn_batch_starts_in_insert_order() {
    const BURST: usize = 1_000;
    let manager = ProcessManager::new();
    let handle = manager.handle();
    manager.insert(IdleProcess).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;

    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut children = Vec::new();
    for n in 0..BURST {
        let order = Arc::clone(&order);
        let child = handle
            .insert(process_fn("burst", move |ctx| {
                let order = Arc::clone(&order);
                async move {
                    order.lock().expect("not poisoned").push(n);
                    ctx.shutdown_requested().await;
                    Ok::<_, std::io::Error>(())
                }
            }))
            .expect("accepted");
        children.push(child);
    }
    // Stopped before the loop has taken the burst: in the last batch.
    let stopped = &children[BURST - 10];
    stopped.request_shutdown().expect("not ended");

    let stopped_end = tokio::time::timeout(Duration::from_secs(1), stopped.wait())
        .await
        .expect("the stopped child ends");
    assert!(matches!(stopped_end, Outcome::Stopped), "{stopped_end:?}");
    // The current-thread runtime polls tasks in the order they were
    // spawned, so the first polls follow the order of the spawns.
    for _ in 0..100 {
        if order.lock().expect("not poisoned").len() >= BURST - 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let started = order.lock().expect("not poisoned").clone();
    let expected: Vec<usize> = (0..BURST).filter(|&n| n != BURST - 10).collect();
    let mut others: Vec<usize> = started
        .iter()
        .copied()
        .filter(|&n| n != BURST - 10)
        .collect();
    assert_eq!(others, expected, "started out of insert order");
    others.dedup();
    assert_eq!(others.len(), BURST - 1);
    assert!(
        children
            .iter()
            .enumerate()
            .all(|(n, child)| n == BURST - 10 || !child.is_finished())
    );

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(children.iter().all(ChildHandle::is_finished));
}

/// Bursts of 3,000 inserts (a dozen spawn batches) on two workers, raced
/// by stops through the children's handles, a reload and the manager's
/// stop: every child ends stopped, the run returns cleanly, and no reload
/// is left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_raced_by_stops_and_a_reload_end_every_child() {
    for round in 0..5 {
        let manager = ProcessManager::builder()
            .name("root")
            .grace_period(Duration::from_secs(5))
            .child(IdleProcess)
            .build();
        let handle = manager.handle();
        let run = tokio::spawn(manager.into_future());
        tokio::task::yield_now().await;
        let children: Vec<ChildHandle> = (0..3_000)
            .map(|_| handle.insert(IdleProcess).expect("accepted"))
            .collect();
        for child in children.iter().step_by(7) {
            let _ = child.request_shutdown();
        }
        let _ = handle.request_reload();
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        handle.request_shutdown().expect("running");
        let result = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the run returns")
            .expect("joined");
        assert!(result.is_ok(), "{result:?}");
        for child in &children {
            let outcome = tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .expect("the child's end is known");
            assert!(matches!(outcome, Outcome::Stopped), "{outcome:?}");
        }
        assert!(!handle.is_reloading());
    }
}
