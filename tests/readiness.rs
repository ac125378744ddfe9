//! Readiness of the tree: the manager is ready when every child that reports
//! readiness is, nested managers included, and a restart makes it unready
//! again until the new attempt says it is ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, IdleProcess, Jitter, ProcessManager, Restart, Runnable, process_fn,
};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Ready after `after`; fails once, right after being ready, if `flaky`.
fn readies(name: &'static str, after: Duration, flaky: bool) -> impl Runnable {
    process_fn(name, move |ctx| async move {
        tokio::time::sleep(after).await;
        ctx.mark_ready();
        if flaky && ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Err("lost the connection");
        }
        ctx.shutdown_requested().await;
        Ok(())
    })
}

fn counted() -> ChildOptions {
    ChildOptions::new().reports_ready(true)
}

#[tokio::test(start_paused = true)]
async fn the_manager_is_ready_once_every_reporting_child_is() {
    let manager = ProcessManager::new();
    manager
        .insert_with(readies("db", Duration::from_secs(1), false), counted())
        .expect("accepted");
    manager
        .insert_with(readies("http", Duration::from_secs(3), false), counted())
        .expect("accepted");
    // Reports readiness, and is ready as soon as it starts.
    manager.insert(IdleProcess).expect("accepted");
    let handle = manager.handle();
    assert!(!handle.is_ready());
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());

    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(handle.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_restart_makes_the_manager_unready_until_the_new_attempt_is_ready() {
    let manager = ProcessManager::new();
    manager
        .insert_with(
            readies("consumer", Duration::from_secs(2), true),
            counted().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(1), Duration::from_secs(1))
                    .jitter(procmgr::Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await; // at 2 s
    tokio::time::sleep(Duration::from_secs(11)).await; // failed at 12 s, backoff until 13 s
    assert!(!handle.is_ready(), "restarting");
    let waiting = Instant::now();
    handle.ready().await; // ready again at 13 + 2 = 15 s
    assert_eq!(waiting.elapsed(), Duration::from_secs(2));
    assert!(handle.is_ready(), "ready again");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn marking_ready_twice_in_one_attempt_counts_once() {
    let manager = ProcessManager::new();
    manager
        .insert_with(
            process_fn("eager", |ctx| async move {
                ctx.mark_ready();
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }),
            counted(),
        )
        .expect("accepted");
    manager
        .insert_with(readies("slow", Duration::from_secs(5), false), counted())
        .expect("accepted");
    let handle = manager.handle();
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !handle.is_ready(),
        "the second mark_ready stood in for the slow child"
    );
    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_is_ready_when_its_children_are() {
    let nested = ProcessManager::builder().name("inner").build();
    nested
        .insert_with(readies("deep", Duration::from_secs(5), false), counted())
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let inner = root.insert(nested).expect("accepted");
    root.insert_with(readies("top", Duration::from_secs(1), false), counted())
        .expect("accepted");
    let handle = root.handle();
    let started = Instant::now();
    let run = tokio::spawn(root.into_future());
    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(inner.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ends_before_it_is_ready_no_longer_holds_readiness_back() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    manager
        .insert_with(
            process_fn("oneshot", |_ctx| async { Ok::<_, std::io::Error>(()) }),
            counted(),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    assert!(handle.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

fn fixed(delay: Duration) -> Backoff {
    Backoff::exponential(delay, delay).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn a_restarting_grandchild_makes_its_manager_and_the_root_unready_until_it_is_ready_again() {
    let mid = ProcessManager::builder().name("mid").build();
    // Ready at 1 s, fails at 11 s, restarts at 16 s, ready again at 17 s.
    mid.insert_with(
        readies("db", Duration::from_secs(1), true),
        counted()
            .restart(Restart::OnFailure)
            .backoff(fixed(Duration::from_secs(5))),
    )
    .expect("accepted");
    let mid_handle = mid.handle();
    let root = ProcessManager::builder().name("root").build();
    root.insert(mid).expect("accepted");
    let handle = root.handle();
    let origin = Instant::now();
    let run = tokio::spawn(root.into_future());

    tokio::time::sleep_until(origin + Duration::from_secs(2)).await;
    assert!(mid_handle.is_ready() && handle.is_ready(), "ready at first");
    tokio::time::sleep_until(origin + Duration::from_secs(12)).await;
    assert!(
        !mid_handle.is_ready(),
        "the grandchild's manager is unready"
    );
    assert!(
        !handle.is_ready(),
        "the root is unready while a grandchild restarts"
    );
    tokio::time::sleep_until(origin + Duration::from_secs(18)).await;
    assert!(
        mid_handle.is_ready(),
        "the grandchild's manager is ready again"
    );
    assert!(handle.is_ready(), "the root is ready again");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

/// A child whose first attempt moves its context into a task of its own,
/// which marks it ready when `go` is notified, long after that attempt
/// ended; the task's handle is sent on `kept`. Later attempts never say
/// they are ready.
fn leaks_its_context(
    go: Arc<Notify>,
    kept: mpsc::UnboundedSender<JoinHandle<()>>,
    fails_first: bool,
) -> impl Runnable {
    process_fn("leaky", move |ctx| {
        let (go, kept) = (Arc::clone(&go), kept.clone());
        async move {
            if ctx.attempt() > 1 {
                ctx.shutdown_requested().await;
                return Ok(());
            }
            let task = tokio::spawn(async move {
                go.notified().await;
                ctx.mark_ready();
            });
            kept.send(task).expect("test listens");
            if fails_first {
                Err("first attempt fails")
            } else {
                Ok(())
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_after_its_attempt_cannot_make_the_next_attempt_ready() {
    let go = Arc::new(Notify::new());
    let (kept, mut tasks) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            leaks_its_context(Arc::clone(&go), kept, true),
            counted()
                .restart(Restart::OnFailure)
                .backoff(fixed(Duration::from_secs(1))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let stale = tasks.recv().await.expect("the first attempt ran");

    tokio::time::sleep(Duration::from_secs(2)).await; // attempt 2 runs since 1 s
    assert_eq!(child.restarts(), 1);
    assert!(!handle.is_ready());
    go.notify_one();
    stale.await.expect("the kept context's task ends");
    assert!(
        !child.is_ready(),
        "the first attempt's context made the second ready"
    );
    assert!(
        !handle.is_ready(),
        "the first attempt's context made the manager ready"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_after_its_child_ended_leaves_the_manager_ready() {
    let go = Arc::new(Notify::new());
    let (kept, mut tasks) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let child = manager
        .insert_with(leaks_its_context(Arc::clone(&go), kept, false), counted())
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let stale = tasks.recv().await.expect("the child ran");
    child.wait().await;
    // Ended before it was ready: it no longer holds readiness back.
    handle.ready().await;

    go.notify_one();
    stale.await.expect("mark_ready on a kept context returns");
    assert!(
        handle.is_ready(),
        "a stale mark_ready took the readiness count below zero"
    );
    assert!(
        timeout(Duration::from_secs(1), handle.ready())
            .await
            .is_ok(),
        "ready() never completes again"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn idle_process_is_ready_so_an_ordered_start_goes_on_past_it() {
    let worker_started = Arc::new(AtomicBool::new(false));
    let started = Arc::clone(&worker_started);
    let manager = ProcessManager::builder()
        .ordered_start(Duration::from_secs(5))
        .child(IdleProcess)
        .child(process_fn("worker", move |ctx| {
            let started = Arc::clone(&started);
            async move {
                started.store(true, Ordering::SeqCst);
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    // Well before the start timeout.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker_started.load(Ordering::SeqCst),
        "the ordered start still waits for IdleProcess"
    );
    assert!(handle.is_ready());
    handle.shutdown().await;
    let result = run.await.expect("joined");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn an_ordered_start_waits_for_the_awaited_child_even_when_another_child_ends() {
    let manager = ProcessManager::builder()
        .ordered_start(Duration::from_secs(60))
        .build();
    // Ready at 5 s; `second` starts only then.
    manager
        .insert(process_fn("first", |ctx| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let started = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&started);
    manager
        .insert(process_fn("second", move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                seen.store(true, Ordering::SeqCst);
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    // Inserted while the manager runs, so it starts at once, and ends at 1 s.
    handle
        .insert(process_fn("brief", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("running")
        .wait()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !started.load(Ordering::SeqCst),
        "`second` started before `first` was ready"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(started.load(Ordering::SeqCst), "`first` is ready at 5 s");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

/// A process that declares, next to its `mark_ready`, that it reports
/// readiness.
struct Declares;

impl Runnable for Declares {
    type Error = std::convert::Infallible;

    async fn run(&self, ctx: procmgr::Context) -> Result<(), Self::Error> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        ctx.mark_ready();
        ctx.shutdown_requested().await;
        Ok(())
    }

    fn reports_ready(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn a_process_that_declares_it_reports_readiness_is_waited_for_without_options() {
    let manager = ProcessManager::new();
    manager.insert(Declares).expect("accepted");
    manager
        .insert(
            process_fn("closure", async |ctx| -> procmgr::Result {
                tokio::time::sleep(Duration::from_secs(3)).await;
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                Ok(())
            })
            .reporting_ready(),
        )
        .expect("accepted");
    // `Arc` passes the declaration on.
    manager.insert(Arc::new(Declares)).expect("accepted");
    let handle = manager.handle();
    assert!(!handle.is_ready(), "nobody is ready before the run");
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn the_insert_option_overrides_what_the_process_declares() {
    let manager = ProcessManager::new();
    let declares = manager
        .insert_with(Declares, ChildOptions::new().reports_ready(false))
        .expect("accepted");
    let handle = manager.handle();
    assert!(handle.is_ready(), "its readiness does not count");
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        declares.is_ready(),
        "its mark_ready still shows on its handle"
    );
    handle.shutdown().await;
    run.await
        .expect("joined")
        .expect("an opted-out mark_ready is no mistake");
}

#[tokio::test(start_paused = true)]
async fn a_manager_run_by_a_process_fn_that_does_not_report_readiness_runs_fine() {
    let root = ProcessManager::new();
    root.insert(process_fn("wrapper", async |ctx| -> procmgr::Result {
        let inner = ProcessManager::builder().name("inner").build();
        inner.insert(IdleProcess)?;
        // The nested manager tells its context when it is ready, which is
        // no mistake even though the wrapper does not report readiness.
        Ok(inner.run(ctx).await?)
    }))
    .expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[cfg(debug_assertions)]
#[tokio::test(start_paused = true)]
async fn mark_ready_in_a_process_that_does_not_report_readiness_fails_it_in_debug_builds() {
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert(readies("forgetful", Duration::from_secs(1), false))
        .expect("accepted");
    let handle = manager.handle();
    assert!(handle.is_ready(), "nothing declared, nothing to wait for");
    let error = manager
        .await
        .expect_err("the forgotten declaration is caught");
    let failure = error.failures().expect("a child failed").first();
    assert_eq!(failure.path(), "root/forgetful");
    let procmgr::FailureCause::Panic(message) = failure.cause() else {
        panic!("not a panic: {failure}");
    };
    assert!(
        message.contains(
            "`root/forgetful` called `Context::mark_ready` but does not report readiness"
        ),
        "{message}"
    );
}
