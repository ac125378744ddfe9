//! Graceful, then forced: grace periods, aborts, and shutdown requested early,
//! twice, or from many handles.

use std::time::Duration;

use procmgr::{ChildOptions, FailureCause, Outcome, ProcessManager, Runnable, process_fn};
use tokio::time::Instant;

fn stops_when_asked(name: &'static str) -> impl Runnable {
    process_fn(name, |ctx| async move {
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

/// Never looks at its context.
fn stubborn(name: &'static str) -> impl Runnable {
    process_fn(name, |_ctx| async {
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    })
}

/// Takes `delay` to stop once asked.
fn slow_to_stop(name: &'static str, delay: Duration) -> impl Runnable {
    process_fn(name, move |ctx| async move {
        ctx.shutdown_requested().await;
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_shutdown_is_aborted_after_the_grace_period() {
    let manager = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(3))
        .build();
    let polite = manager
        .insert(stops_when_asked("polite"))
        .expect("accepted");
    let rude = manager.insert(stubborn("rude")).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let error = run
        .await
        .expect("joined")
        .expect_err("an abort is reported");
    assert_eq!(asked.elapsed(), Duration::from_secs(3));

    let failure = error.failures().expect("child failures").first();
    assert_eq!(failure.path(), "root/rude");
    assert!(
        matches!(failure.cause(), FailureCause::Aborted { grace } if *grace == Duration::from_secs(3))
    );
    assert!(matches!(rude.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(polite.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_within_its_grace_period_is_not_aborted() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(3))
        .build();
    let slow = manager
        .insert(slow_to_stop("slow", Duration::from_secs(2)))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("clean stop");
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    assert!(matches!(slow.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_child_grace_period_overrides_the_managers() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(1))
        .build();
    let patient = manager
        .insert_with(
            slow_to_stop("drain", Duration::from_secs(5)),
            ChildOptions::new().grace_period(Duration::from_secs(10)),
        )
        .expect("accepted");
    let short = manager
        .insert_with(
            stubborn("short"),
            ChildOptions::new().grace_period(Duration::from_millis(100)),
        )
        .expect("accepted");
    let default = manager.insert(stubborn("default")).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    assert!(matches!(short.wait().await, Outcome::Aborted));
    assert_eq!(asked.elapsed(), Duration::from_millis(100));
    assert!(matches!(default.wait().await, Outcome::Aborted));
    assert_eq!(asked.elapsed(), Duration::from_secs(1));
    assert!(matches!(patient.wait().await, Outcome::Stopped));
    assert_eq!(asked.elapsed(), Duration::from_secs(5));

    let error = run.await.expect("joined").expect_err("two aborts");
    let paths: Vec<_> = error
        .failures()
        .expect("child failures")
        .iter()
        .map(|f| f.path().to_owned())
        .collect();
    assert_eq!(paths, ["manager/short", "manager/default"]);
}

#[tokio::test(start_paused = true)]
async fn stopping_one_child_through_its_handle_is_bounded_by_its_grace_period() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(2))
        .build();
    let rude = manager.insert(stubborn("rude")).expect("accepted");
    let other = manager.insert(stops_when_asked("other")).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    assert!(matches!(rude.shutdown().await, Outcome::Aborted));
    assert_eq!(asked.elapsed(), Duration::from_secs(2));

    // It was asked to stop and it stopped: not a failure, so its siblings
    // carry on.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!other.is_finished());
    assert!(!handle.is_finished());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(other.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_child_that_cancelled_its_own_token_still_gets_a_bounded_stop() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(2))
        .child(procmgr::IdleProcess)
        .build();
    let (cancelled_tx, cancelled) = tokio::sync::oneshot::channel::<()>();
    let cancelled_tx = std::sync::Mutex::new(Some(cancelled_tx));
    let rude = manager
        .insert(process_fn("rude", move |ctx| {
            let cancelled_tx = cancelled_tx.lock().expect("lock").take();
            async move {
                // A library it handed the token to cancelled it.
                ctx.token().cancel();
                if let Some(tx) = cancelled_tx {
                    tx.send(()).expect("test waits");
                }
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    cancelled.await.expect("child ran");

    let asked = Instant::now();
    assert!(matches!(rude.shutdown().await, Outcome::Aborted));
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn shutdown_requested_before_the_run_is_remembered() {
    let manager = ProcessManager::new();
    let child = manager
        .insert(stops_when_asked("worker"))
        .expect("accepted");
    let handle = manager.handle();
    handle.request_shutdown().expect("not ended");
    assert!(handle.insert(stops_when_asked("refused")).is_err());

    let started = Instant::now();
    manager.await.expect("clean stop");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
    assert!(matches!(handle.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_many_handles_at_once_is_one_shutdown() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(3))
        .build();
    let slow = manager
        .insert(slow_to_stop("slow", Duration::from_secs(1)))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    let requesters: Vec<_> = (0..16)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.shutdown().await })
        })
        .collect();
    for requester in requesters {
        assert!(matches!(requester.await.expect("joined"), Outcome::Stopped));
    }
    // A second request does not restart the grace period.
    assert_eq!(asked.elapsed(), Duration::from_secs(1));
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(slow.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_child_inserted_with_the_manager_idle_during_stop_is_still_stopped() {
    // Stopping children keep the manager in its stopping phase; the child
    // inserted just before that began is started and stopped too.
    let manager = ProcessManager::new();
    let slow = manager
        .insert(slow_to_stop("slow", Duration::from_secs(1)))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let late = handle.insert(stops_when_asked("late")).expect("accepted");
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(slow.outcome(), Some(Outcome::Stopped)));
    assert!(matches!(late.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_an_ordered_start_starts_and_stops_the_children_still_queued() {
    let manager = ProcessManager::builder()
        .ordered_start(Duration::from_secs(60))
        .grace_period(Duration::from_secs(1))
        .build();
    // Never says it is ready, so `queued` waits in the start queue.
    manager
        .insert(stops_when_asked("slow-to-be-ready"))
        .expect("accepted");
    let queued = manager
        .insert(stops_when_asked("queued"))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run returns within the grace period");
    result.expect("joined").expect("a clean stop");
    assert!(asked.elapsed() <= Duration::from_secs(1));
    assert!(matches!(queued.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_ends_a_child_waiting_for_its_restart() {
    let manager = ProcessManager::new();
    let flaky = manager
        .insert_with(
            process_fn("flaky", |_ctx| async { Err::<(), _>("broke") }),
            ChildOptions::new()
                .restart(procmgr::Restart::OnFailure)
                .backoff(procmgr::Backoff::exponential(
                    Duration::from_secs(60),
                    Duration::from_secs(60),
                )),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(flaky.restarts(), 0);
    handle
        .force_shutdown(procmgr::ShutdownReason::Requested)
        .expect("running");
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("a forced shutdown returns at once");
    result.expect("joined").expect("nothing was aborted");
    assert!(matches!(flaky.outcome(), Some(Outcome::Failed(_))));
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_before_the_run_still_runs_the_stop() {
    let manager = ProcessManager::new();
    let worker = manager.insert(stubborn("stubborn")).expect("accepted");
    let handle = manager.handle();
    let mut events = handle.subscribe();
    handle
        .force_shutdown(procmgr::ShutdownReason::Requested)
        .expect("not ended");
    let result = tokio::time::timeout(Duration::from_secs(5), manager.into_future())
        .await
        .expect("a forced shutdown returns at once");
    let failures = result.expect_err("the stubborn child was aborted");
    assert!(matches!(
        failures.failures().map(|f| f.first().cause()),
        Some(FailureCause::Forced { signal: None })
    ));
    assert!(matches!(worker.outcome(), Some(Outcome::Aborted)));
    // The stop announced itself, as every stop does.
    let mut saw_request = false;
    while let Ok(event) = events.recv().await {
        saw_request |= matches!(event.kind(), procmgr::EventKind::ShutdownRequested(_));
    }
    assert!(saw_request);
}

/// A child inserted into a running manager just before a forced shutdown
/// is spawned and aborted before its task is ever polled: its end is still
/// reported (the task is dropped, not joined), as aborted, and the run
/// returns.
#[tokio::test(start_paused = true)]
async fn a_child_aborted_before_its_first_poll_still_ends_as_aborted() {
    let manager = ProcessManager::new();
    manager
        .insert(stops_when_asked("keeper"))
        .expect("accepted");
    let handle = manager.handle();
    let mut events = handle.subscribe();
    let run = tokio::spawn(manager.into_future());
    while !matches!(
        events.recv().await.map(|event| event.kind().clone()),
        Ok(procmgr::EventKind::Started { .. })
    ) {}
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::clone(&polled);
    let late = handle
        .insert(process_fn("late", move |_ctx| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            async {
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    // No `.await` between the two: the loop takes both in one turn.
    handle
        .force_shutdown(procmgr::ShutdownReason::Requested)
        .expect("running");
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("a forced shutdown returns at once");
    let failures = result
        .expect("joined")
        .expect_err("the late child was aborted");
    assert!(matches!(
        failures.failures().map(|f| f.first().cause()),
        Some(FailureCause::Forced { signal: None })
    ));
    assert!(matches!(late.outcome(), Some(Outcome::Aborted)));
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "its task was polled"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ordered_stop_gives_a_child_that_cancelled_its_own_token_its_grace_period() {
    let manager = ProcessManager::builder()
        .ordered_stop(true)
        .grace_period(Duration::from_secs(10))
        .build();
    let first = manager.insert(stops_when_asked("first")).expect("accepted");
    // Started last, so asked first; it cancelled its own token long before.
    manager
        .insert_with(
            process_fn("self-stopped", |ctx| async move {
                ctx.token().cancel();
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().grace_period(Duration::from_secs(1)),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let result = run.await.expect("joined");
    assert_eq!(
        asked.elapsed(),
        Duration::from_secs(1),
        "aborted after its own grace period, then the next was asked"
    );
    let failures = result.expect_err("the self-stopped child was aborted");
    assert_eq!(
        failures.failures().map(|f| f.first().path()),
        Some("manager/self-stopped")
    );
    assert!(matches!(first.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_grace_period_of_duration_max_never_aborts() {
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            stubborn("patient"),
            ChildOptions::new().grace_period(Duration::MAX),
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    child.request_shutdown().expect("running");
    let a_year = Duration::from_secs(60 * 60 * 24 * 365);
    assert!(
        tokio::time::timeout(a_year, child.wait()).await.is_err(),
        "aborted: {:?}",
        child.outcome()
    );
    run.abort();
    assert!(run.await.expect_err("aborted").is_cancelled());
}
