//! The drain: after a graceful shutdown request, a manager with a drain
//! period reports unready for that long and only then asks its children to
//! stop; a force or a failure cuts it short.

mod common;

use std::time::Duration;

use common::stops_when_asked;
use procmgr::{
    ChildOptions, EventKind, Events, ManagerHandle, Outcome, ProcessManager, ShutdownReason,
    process_fn,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

const DRAIN: Duration = Duration::from_secs(10);

/// A child that reports readiness, is ready at once, then sends the instant it was asked
/// to stop.
fn ready_then_stops(name: &'static str, asked: oneshot::Sender<Instant>) -> impl procmgr::Runnable {
    let asked = std::sync::Mutex::new(Some(asked));
    process_fn(name, move |ctx| {
        let asked = asked.lock().expect("lock").take();
        async move {
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            if let Some(asked) = asked {
                // The test may have stopped listening; nothing to do then.
                let _ = asked.send(Instant::now());
            }
            Ok::<_, std::io::Error>(())
        }
    })
    .reporting_ready()
}

/// Waits for the manager's drain event.
async fn drain_begins(events: &mut Events) -> (Duration, ShutdownReason) {
    loop {
        let event = events.recv().await.expect("the run goes on");
        if let EventKind::Draining { period, reason } = event.kind() {
            return (*period, reason.clone());
        }
    }
}

fn draining_manager() -> (ProcessManager, ManagerHandle) {
    let manager = ProcessManager::builder()
        .name("root")
        .drain_period(DRAIN)
        .build();
    let handle = manager.handle();
    (manager, handle)
}

#[tokio::test(start_paused = true)]
async fn the_tree_is_unready_for_the_drain_before_its_children_are_asked_to_stop() {
    let (manager, handle) = draining_manager();
    let (tx, asked) = oneshot::channel();
    let child = manager
        .insert_with(
            ready_then_stops("http", tx),
            ChildOptions::new().reports_ready(true),
        )
        .expect("accepted");
    let mut events = handle.subscribe();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    assert!(handle.is_ready());

    let requested = Instant::now();
    handle.request_shutdown().expect("running");
    assert!(handle.is_shutdown_requested());
    let (period, reason) = drain_begins(&mut events).await;
    assert_eq!(period, DRAIN);
    assert_eq!(reason, ShutdownReason::Requested);
    assert!(!handle.is_ready(), "unready while draining");
    assert!(!child.is_finished());

    // Still draining just before the end: unready, the child not asked.
    tokio::time::sleep(DRAIN - Duration::from_millis(1)).await;
    assert!(!handle.is_ready());
    assert!(!child.is_finished());

    let exit = run.await.expect("joined").expect("graceful");
    assert_eq!(exit.shutdown_reason(), Some(&ShutdownReason::Requested));
    assert_eq!(asked.await.expect("asked") - requested, DRAIN);
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
    // The drain's hold on readiness ends with the run.
    assert!(handle.is_ready());
}

#[tokio::test(start_paused = true)]
async fn children_run_and_are_inserted_as_usual_while_draining() {
    let (manager, handle) = draining_manager();
    let mut events = handle.subscribe();
    manager
        .insert(stops_when_asked("steady"))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.request_shutdown().expect("running");
    drain_begins(&mut events).await;

    let late = handle
        .insert(stops_when_asked("late"))
        .expect("inserts are accepted while draining");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    handle
        .insert(process_fn("sees-nothing", move |ctx| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                // The request has not reached the children's contexts.
                let _ = tx.send((ctx.is_shutdown_requested(), ctx.shutdown_reason()));
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    assert_eq!(rx.recv().await.expect("looked"), (false, None));

    run.await.expect("joined").expect("graceful");
    assert!(matches!(late.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_cuts_the_drain_short() {
    let (manager, handle) = draining_manager();
    let mut events = handle.subscribe();
    // It ignores the stop; the force aborts it at once.
    let child = manager
        .insert(process_fn("stubborn", |_ctx| {
            std::future::pending::<Result<(), std::io::Error>>()
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.request_shutdown().expect("running");
    drain_begins(&mut events).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let forced = Instant::now();
    handle
        .force_shutdown(ShutdownReason::Forced(procmgr::Signal::Terminate))
        .expect("running");
    let result = run.await.expect("joined");
    assert_eq!(forced.elapsed(), Duration::ZERO);
    assert!(result.is_err());
    assert!(matches!(child.outcome(), Some(Outcome::Aborted)));
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_draining_stops_the_tree_at_once() {
    let (manager, handle) = draining_manager();
    let mut events = handle.subscribe();
    let (tx, asked) = oneshot::channel();
    manager
        .insert(ready_then_stops("steady", tx))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.request_shutdown().expect("running");
    drain_begins(&mut events).await;

    let failed = Instant::now() + Duration::from_secs(2);
    handle
        .insert(process_fn("flaky", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err::<(), _>("broke")
        }))
        .expect("accepted");
    let error = run.await.expect("joined").expect_err("the failure");
    assert_eq!(asked.await.expect("asked"), failed);
    assert_eq!(
        error.failures().expect("failures").first().path(),
        "root/flaky"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_any_request_stops_without_a_drain() {
    let (manager, handle) = draining_manager();
    let mut events = handle.subscribe();
    let (tx, asked) = oneshot::channel();
    manager
        .insert(ready_then_stops("steady", tx))
        .expect("accepted");
    manager
        .insert(process_fn("flaky", |_ctx| async { Err::<(), _>("broke") }))
        .expect("accepted");
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());
    assert!(run.await.expect("joined").is_err());
    assert_eq!(asked.await.expect("asked"), started);
    while let Ok(event) = events.recv().await {
        assert!(!matches!(event.kind(), EventKind::Draining { .. }));
    }
}

#[tokio::test(start_paused = true)]
async fn a_draining_nested_manager_makes_the_root_unready_and_asks_for_its_drain_in_its_grace() {
    let inner = ProcessManager::builder()
        .name("inner")
        .drain_period(DRAIN)
        .grace_period(Duration::from_secs(1))
        .build();
    let inner_handle = inner.handle();
    let mut inner_events = inner_handle.subscribe();
    let (tx, asked) = oneshot::channel();
    inner
        .insert_with(
            ready_then_stops("http", tx),
            ChildOptions::new().reports_ready(true),
        )
        .expect("accepted");
    let root = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(1))
        .build();
    root.insert(inner).expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    root_handle.ready().await;

    // The root asks the nested manager to stop; it drains first, and the
    // root waits for it beyond its own grace period.
    let requested = Instant::now();
    root_handle.request_shutdown().expect("running");
    drain_begins(&mut inner_events).await;
    tokio::task::yield_now().await;
    assert!(!root_handle.is_ready());
    run.await.expect("joined").expect("graceful, not aborted");
    assert_eq!(asked.await.expect("asked") - requested, DRAIN);
}

#[tokio::test(start_paused = true)]
async fn without_a_drain_period_shutdown_reaches_the_children_at_once() {
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    let (tx, asked) = oneshot::channel();
    manager
        .insert(ready_then_stops("http", tx))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    let requested = Instant::now();
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("graceful");
    assert_eq!(asked.await.expect("asked"), requested);
}
