//! Restart policies, backoff, restart limits, significant and let-go
//! children. All on paused time, so every delay is exact.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, ControlMessage, FailureCause, Jitter, Outcome, ProcessManager, Restart,
    RestartLimit, Runnable, ShutdownReason, process_fn,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const MS: Duration = Duration::from_millis(1);

/// Records when each attempt started, relative to `origin`.
#[derive(Clone)]
struct Starts {
    origin: Instant,
    log: Arc<Mutex<Vec<(u32, Duration)>>>,
}

impl Starts {
    fn new() -> Self {
        Starts {
            origin: Instant::now(),
            log: Arc::default(),
        }
    }

    fn record(&self, attempt: u32) {
        self.log
            .lock()
            .expect("lock")
            .push((attempt, self.origin.elapsed()));
    }

    fn times(&self) -> Vec<Duration> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .map(|&(_, t)| t)
            .collect()
    }

    fn attempts(&self) -> Vec<u32> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .map(|&(a, _)| a)
            .collect()
    }
}

/// Fails at once on its first `failures` attempts, then waits for shutdown.
fn flaky(name: &'static str, failures: u32, starts: Starts) -> impl Runnable {
    process_fn(name, move |ctx| {
        let starts = starts.clone();
        async move {
            starts.record(ctx.attempt());
            if ctx.attempt() <= failures {
                return Err(format!("attempt {} failed", ctx.attempt()));
            }
            ctx.shutdown_requested().await;
            Ok(())
        }
    })
}

fn no_jitter(floor: Duration, cap: Duration) -> Backoff {
    Backoff::exponential(floor, cap).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn a_failing_child_is_restarted_with_exponential_backoff() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            flaky("flaky", 4, starts.clone()),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(no_jitter(100 * MS, 300 * MS)),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(starts.attempts(), [1, 2, 3, 4, 5]);
    // 100, 200, then capped at 300.
    assert_eq!(
        starts.times(),
        [Duration::ZERO, 100 * MS, 300 * MS, 600 * MS, 900 * MS]
    );
    assert_eq!(child.restarts(), 4);
    assert!(!child.is_finished(), "restarting is not ending");

    handle.shutdown().await;
    run.await
        .expect("joined")
        .expect("restarted failures are not run failures");
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_never_restarts_before_the_floor_nor_beyond_half_again() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    manager
        .insert_with(
            flaky("flaky", 5, starts.clone()),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::exponential(100 * MS, 10_000 * MS).jitter(Jitter::Half))
                .restart_limit(RestartLimit::new(10, Duration::from_secs(60))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(10)).await;

    let times = starts.times();
    assert_eq!(times.len(), 6);
    for (n, pair) in times.windows(2).enumerate() {
        let delay = pair[1] - pair[0];
        let exact = 100 * MS * (1 << n);
        assert!(
            delay >= exact && delay <= exact + exact / 2,
            "delay {n}: {delay:?} not within {exact:?}..={:?}",
            exact + exact / 2
        );
    }
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn the_backoff_resets_after_a_stable_run() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    // Fails at once twice, then after running 10 s, then at once again.
    let runs = starts.clone();
    manager
        .insert_with(
            process_fn("moody", move |ctx| {
                let runs = runs.clone();
                async move {
                    runs.record(ctx.attempt());
                    if ctx.attempt() == 3 {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    if ctx.attempt() <= 4 {
                        return Err("moody");
                    }
                    ctx.shutdown_requested().await;
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(no_jitter(100 * MS, 10_000 * MS).reset_after(Duration::from_secs(5))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(30)).await;

    let times = starts.times();
    let delays: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // 100 ms, 200 ms, then 10 s of running plus a delay back at the floor,
    // then doubling again from there.
    assert_eq!(
        delays,
        [100 * MS, 200 * MS, 10_000 * MS + 100 * MS, 200 * MS]
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn the_restart_limit_trips_at_exactly_r_plus_one_failures_in_the_window() {
    let starts = Starts::new();
    let manager = ProcessManager::builder().name("root").build();
    let sibling = manager.insert(procmgr::IdleProcess).expect("accepted");
    let child = manager
        .insert_with(
            flaky("flaky", u32::MAX, starts.clone()),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none())
                .restart_limit(RestartLimit::new(3, Duration::from_secs(10))),
        )
        .expect("accepted");

    let error = manager.await.expect_err("the limit escalates");
    // The first run and exactly 3 restarts.
    assert_eq!(starts.attempts(), [1, 2, 3, 4]);
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/flaky");
    assert_eq!(
        failure.exceeded_restart_limit(),
        Some(&RestartLimit::new(3, Duration::from_secs(10)))
    );
    assert!(
        matches!(failure.cause(), FailureCause::Error(e) if e.to_string() == "attempt 4 failed")
    );
    assert_eq!(
        error.to_string(),
        "process root/flaky failed (attempt 4), more often than its restart limit of 3 restarts within 10s"
    );
    assert!(matches!(child.outcome(), Some(Outcome::Failed(_))));
    assert!(matches!(sibling.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_out_beyond_the_window_never_trip_the_limit() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    let runs = starts.clone();
    // Runs 4 s before each failure: at most 3 restarts fall in any 10 s.
    manager
        .insert_with(
            process_fn("slow-flaky", move |ctx| {
                let runs = runs.clone();
                async move {
                    runs.record(ctx.attempt());
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    if ctx.attempt() < 10 {
                        return Err("again");
                    }
                    ctx.shutdown_requested().await;
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none())
                .restart_limit(RestartLimit::new(3, Duration::from_secs(10))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(starts.attempts().len(), 10);
    assert!(!handle.is_finished());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn always_restarts_a_clean_exit_without_the_failure_backoff() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    let runs = starts.clone();
    manager
        .insert_with(
            process_fn("job", move |ctx| {
                let runs = runs.clone();
                async move {
                    runs.record(ctx.attempt());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if ctx.attempt() == 2 {
                        return Err("one bad run");
                    }
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::Always)
                .backoff(no_jitter(Duration::from_secs(5), Duration::from_secs(60)))
                .restart_limit(RestartLimit::new(100, Duration::from_secs(60))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    // Clean exits restart at once; the failure of attempt 2 waits 5 s.
    assert_eq!(
        starts.times(),
        [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(7),
            Duration::from_secs(8),
            Duration::from_secs(9),
        ]
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn on_failure_does_not_restart_a_clean_exit() {
    let starts = Starts::new();
    let manager = ProcessManager::builder()
        .child(procmgr::IdleProcess)
        .build();
    let runs = starts.clone();
    let child = manager
        .insert_with(
            process_fn("once", move |ctx| {
                let runs = runs.clone();
                async move {
                    runs.record(ctx.attempt());
                    Ok::<_, std::io::Error>(())
                }
            }),
            ChildOptions::new().restart(Restart::OnFailure),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert!(matches!(child.wait().await, Outcome::Completed));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(starts.attempts(), [1]);
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_backoff_cancels_the_restart_at_once() {
    let starts = Starts::new();
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            flaky("flaky", u32::MAX, starts.clone()),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(no_jitter(Duration::from_secs(60), Duration::from_secs(60))),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(starts.attempts(), [1], "waiting in its 60 s backoff");

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    run.await
        .expect("joined")
        .expect("a cancelled restart is no failure");
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert!(matches!(child.outcome(), Some(Outcome::Failed(_))));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(starts.attempts(), [1], "never started again");
}

#[tokio::test(start_paused = true)]
async fn the_handle_keeps_controlling_a_restarted_child() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    let child = manager
        .insert_with(
            process_fn("worker", move |mut ctx| {
                let tx = tx.clone();
                async move {
                    ctx.mark_ready();
                    tx.send(format!("attempt {} at {}", ctx.attempt(), ctx.path()))
                        .expect("test listens");
                    while let Some(message) = ctx.recv().await {
                        match message {
                            ControlMessage::Custom(custom) if custom.is::<&str>() => {
                                return Err("told to fail");
                            }
                            ControlMessage::Reload => {
                                tx.send(format!("reload in attempt {}", ctx.attempt()))
                                    .expect("test listens");
                            }
                            ControlMessage::Shutdown => break,
                            _ => {}
                        }
                    }
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .reports_ready(true)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    assert_eq!(
        seen.recv().await.as_deref(),
        Some("attempt 1 at root/worker")
    );
    let id = child.id();
    child.send("fail").expect("running");
    assert_eq!(
        seen.recv().await.as_deref(),
        Some("attempt 2 at root/worker")
    );
    assert_eq!(child.id(), id);
    assert_eq!(child.restarts(), 1);
    child.request_reload().expect("running again");
    assert_eq!(seen.recv().await.as_deref(), Some("reload in attempt 2"));

    // Stopping through the handle is for good: no restart, and the manager,
    // left without children, ends.
    assert!(matches!(child.shutdown().await, Outcome::Stopped));
    run.await.expect("joined").expect("clean end");
    assert_eq!(child.restarts(), 1);
    assert!(matches!(handle.outcome(), Some(Outcome::Completed)));
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_ending_stops_the_manager() {
    let manager = ProcessManager::builder().name("root").build();
    let sibling = manager.insert(procmgr::IdleProcess).expect("accepted");
    manager
        .insert_with(
            process_fn("server", |_ctx| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().significant(true),
        )
        .expect("accepted");
    let started = Instant::now();
    let exit = manager.await.expect("a clean end is no failure");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::ChildEnded {
            path: "root/server".to_owned()
        })
    );
    assert!(matches!(sibling.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_let_go_child_fails_alone_and_its_siblings_carry_on() {
    let manager = ProcessManager::builder()
        .child(procmgr::IdleProcess)
        .build();
    let loner = manager
        .insert_with(
            process_fn("loner", |_ctx| async { Err::<(), _>("gone") }),
            ChildOptions::new().escalate(false),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert!(matches!(loner.wait().await, Outcome::Failed(_)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!handle.is_finished());
    handle.shutdown().await;
    run.await
        .expect("joined")
        .expect("the let-go failure is not the run's");
}

#[tokio::test(start_paused = true)]
async fn a_restart_limit_escalates_through_a_three_level_tree() {
    let starts = Starts::new();
    let leaf_manager = ProcessManager::builder().name("consumers").build();
    leaf_manager
        .insert_with(
            flaky("kafka-0", u32::MAX, starts.clone()),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none())
                .restart_limit(RestartLimit::new(2, Duration::from_secs(10))),
        )
        .expect("accepted");
    let middle = ProcessManager::builder().name("backend").build();
    middle.insert(leaf_manager).expect("accepted");
    middle.insert(procmgr::IdleProcess).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let backend = root.insert(middle).expect("accepted");
    let http = root.insert(procmgr::IdleProcess).expect("accepted");

    let error = root.await.expect_err("escalated to the root");
    assert_eq!(starts.attempts(), [1, 2, 3]);
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/backend/consumers/kafka-0");
    assert!(failure.exceeded_restart_limit().is_some());
    assert!(matches!(backend.outcome(), Some(Outcome::Failed(_))));
    assert!(matches!(http.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_is_restarted_by_its_parent_up_to_its_limit() {
    // A nested manager runs again when its parent restarts it, with the
    // children it was built with; its restart limit still applies. (Before
    // restartable subtrees, the second run failed with `AlreadyStarted`.)
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let nested = ProcessManager::builder()
        .name("inner")
        .child(process_fn("short", move |_ctx| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("boom") }
        }))
        .build();
    let root = ProcessManager::builder().name("root").build();
    let limit = RestartLimit::new(1, Duration::from_secs(10));
    root.insert_with(
        nested,
        ChildOptions::new()
            .restart(Restart::OnFailure)
            .backoff(Backoff::none())
            .restart_limit(limit),
    )
    .expect("accepted");
    let error = root.await.expect_err("gives up");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the first run and one restart"
    );
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/inner");
    assert_eq!(failure.exceeded_restart_limit(), Some(&limit));
    assert!(
        matches!(failure.cause(), FailureCause::Error(e) if e.to_string().contains("root/inner/short")),
        "{failure}"
    );
}

/// Stops a significant child through its handle at 1 s, while it runs or,
/// with `in_backoff`, while it waits 10 s for its restart; how the manager's
/// run ended within a minute, or `None` if it runs on.
async fn stop_a_significant_child(in_backoff: bool) -> Option<Option<ShutdownReason>> {
    let manager = ProcessManager::builder()
        .name("root")
        .child(procmgr::IdleProcess)
        .build();
    let server = manager
        .insert_with(
            process_fn("server", move |ctx| async move {
                if in_backoff {
                    return Err("down");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .significant(true)
                .restart(Restart::OnFailure)
                .backoff(
                    Backoff::exponential(Duration::from_secs(10), Duration::from_secs(10))
                        .jitter(Jitter::None),
                ),
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.shutdown().await;
    let ended = timeout(Duration::from_secs(60), run).await.ok()?;
    let exit = ended.expect("joined").expect("no failure");
    Some(exit.shutdown_reason().cloned())
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_stopped_through_its_handle_ends_the_manager_running_or_in_backoff() {
    let running = stop_a_significant_child(false).await;
    let in_backoff = stop_a_significant_child(true).await;
    let ended = Some(Some(ShutdownReason::ChildEnded {
        path: "root/server".to_owned(),
    }));
    assert_eq!(running, ended, "stopped while running");
    assert_eq!(in_backoff, ended, "stopped while waiting for its restart");
}

#[test]
fn a_restart_limit_reports_what_it_was_given() {
    let limit = RestartLimit::new(3, Duration::from_secs(10));
    assert_eq!(limit.restarts(), 3);
    assert_eq!(limit.window(), Duration::from_secs(10));
    assert_eq!(limit.to_string(), "3 restarts within 10s");
    let default = RestartLimit::default();
    assert_eq!(
        (default.restarts(), default.window()),
        (5, Duration::from_secs(60))
    );
}

/// A manager `root` whose strategy is one-for-all, with a significant child
/// `side` (restarted on failure if `restarts`) that waits for shutdown, and
/// `w`, which fails once after 1 s and so restarts its group. How `side`
/// ended (if it did), how many times it started, and whether its manager
/// still ran 10 s later; then the manager is stopped through its handle and
/// must end cleanly, as requested.
async fn a_group_restart_of_a_significant_member(restarts: bool) -> (Option<Outcome>, u32, bool) {
    let starts = Starts::new();
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(procmgr::Strategy::OneForAll)
        .build();
    let side_starts = starts.clone();
    let side = process_fn("side", move |ctx| {
        let starts = side_starts.clone();
        async move {
            starts.record(ctx.attempt());
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }
    });
    let mut options = ChildOptions::new().significant(true);
    if restarts {
        options = options.restart(Restart::OnFailure).backoff(Backoff::none());
    }
    let side = manager.insert_with(side, options).expect("accepted");
    manager
        .insert_with(
            process_fn("w", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("first attempt fails");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let runs_on = !handle.is_shutdown_requested() && !handle.is_finished();
    let outcome = side.outcome();
    handle.shutdown().await;
    let exit = run.await.expect("joined").expect("no failure");
    assert_eq!(exit.shutdown_reason(), Some(&ShutdownReason::Requested));
    (outcome, starts.attempts().len() as u32, runs_on)
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_stopped_for_good_by_its_group_restart_does_not_end_the_manager() {
    let (outcome, starts, runs_on) = a_group_restart_of_a_significant_member(false).await;
    assert!(matches!(outcome, Some(Outcome::Stopped)), "{outcome:?}");
    assert_eq!(starts, 1);
    assert!(runs_on, "the group stopped it: not an end of its own");
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_restarted_with_its_group_does_not_end_the_manager() {
    let (outcome, starts, runs_on) = a_group_restart_of_a_significant_member(true).await;
    assert!(outcome.is_none(), "it runs again: {outcome:?}");
    assert_eq!(starts, 2);
    assert!(runs_on);
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_stopped_by_its_managers_stop_keeps_the_stops_reason() {
    let manager = ProcessManager::builder().name("root").build();
    let server = manager
        .insert_with(
            process_fn("server", |ctx| async move {
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().significant(true),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.request_shutdown().expect("it runs");
    let exit = run.await.expect("joined").expect("no failure");
    assert!(matches!(server.outcome(), Some(Outcome::Stopped)));
    assert_eq!(exit.shutdown_reason(), Some(&ShutdownReason::Requested));
}

#[tokio::test(start_paused = true)]
async fn a_significant_group_member_that_ends_by_itself_ends_the_manager() {
    // Queued by an ordered stop of its group, it completes before it is
    // asked: its own end, not the group's doing.
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(procmgr::Strategy::OneForAll)
        .ordered_stop(true)
        .grace_period(Duration::from_secs(30))
        .build();
    let early = manager
        .insert_with(
            process_fn("early", |ctx| async move {
                // Asked last by the ordered stop, which waits 5 s for `slow`.
                tokio::select! {
                    () = ctx.shutdown_requested() => {}
                    () = tokio::time::sleep(Duration::from_secs(3)) => {}
                }
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().significant(true),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("slow", |ctx| async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("w", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("first attempt fails");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    // An hour of paused time: a manager that runs on fails the test.
    let exit = timeout(Duration::from_secs(3600), manager)
        .await
        .expect("its significant child's end ends the manager")
        .expect("no failure");
    assert!(matches!(early.outcome(), Some(Outcome::Completed)));
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::ChildEnded {
            path: "root/early".to_owned()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_stopped_through_its_handle_while_held_for_its_group_ends_the_manager()
{
    // `w` fails at 1 s; `main` (no restart policy) stops at once and is held
    // while `slow` takes 5 s; at 3 s `main` is stopped through its handle.
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(procmgr::Strategy::OneForAll)
        .build();
    let main = manager
        .insert_with(
            process_fn("main", |ctx| async move {
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().significant(true),
        )
        .expect("accepted");
    let restartable = ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::none());
    manager
        .insert_with(
            process_fn("slow", |ctx| async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, std::io::Error>(())
            }),
            restartable.clone(),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("w", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("first attempt fails");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            restartable,
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(3)).await;
    main.request_shutdown().expect("held, not ended");
    let exit = timeout(Duration::from_secs(3600), run)
        .await
        .expect("a stop through its handle ends the manager")
        .expect("joined")
        .expect("no failure");
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::ChildEnded {
            path: "root/main".to_owned()
        })
    );
}

/// `Context::token` belongs to the attempt of a child with a restart policy:
/// cancelling it ends that attempt as if it were asked to stop, and under
/// `Restart::Always` the child starts again; the child's own token, which a
/// handle's stop cancels, is untouched.
#[tokio::test(start_paused = true)]
async fn cancelling_its_own_token_ends_only_the_attempt_of_a_restarted_child() {
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&attempts);
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            process_fn("cancels-once", move |ctx| {
                let counted = Arc::clone(&counted);
                async move {
                    if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                        ctx.token().cancel();
                    }
                    ctx.shutdown_requested().await;
                    Ok::<(), std::io::Error>(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::Always)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    // Paused time: each sleep lets the loop and the child run to idle.
    for _ in 0..100 {
        if attempts.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "the child ran again");
    assert!(!child.is_finished(), "the child runs again");
    handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

/// What the first attempt of [`restarted_after_letting_go`] leaves behind.
enum Left {
    /// Its token, handed out through `Context::token`.
    Token(tokio_util::sync::CancellationToken),
    /// Its context, moved out of the attempt and still alive.
    Context(procmgr::Context),
}

/// A child under `Restart::Always` whose first attempt hands the test its
/// token (or its context, if `keep_context`) and fails; each later attempt
/// hands the test its token and waits to be stopped. Cancelling attempt
/// 2's token stops attempt 2 alone; once attempt 3 runs, what attempt 1
/// left must not have been stopped with it.
async fn restarted_after_letting_go(keep_context: bool) {
    let (left_tx, mut left) = mpsc::unbounded_channel();
    let (tokens_tx, mut tokens) = mpsc::unbounded_channel();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager
        .insert_with(
            process_fn("restarts", move |ctx| {
                let left_tx = left_tx.clone();
                let tokens_tx = tokens_tx.clone();
                let seen_tx = seen_tx.clone();
                async move {
                    if ctx.attempt() == 1 {
                        let left = if keep_context {
                            Left::Context(ctx)
                        } else {
                            Left::Token(ctx.token())
                        };
                        left_tx.send(left).expect("the test listens");
                        return Err(std::io::Error::other("the first attempt fails"));
                    }
                    tokens_tx.send(ctx.token()).expect("the test listens");
                    ctx.shutdown_requested().await;
                    let _ = seen_tx.send(ctx.is_shutdown_requested());
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::Always)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let first = left.recv().await.expect("attempt 1 ran");
    let second = tokens.recv().await.expect("attempt 2 ran");
    second.cancel();
    assert_eq!(seen.recv().await, Some(true), "attempt 2 saw its stop");
    let third = tokens.recv().await.expect("attempt 3 ran");
    assert!(!third.is_cancelled(), "attempt 3 was not asked to stop");
    match &first {
        Left::Token(token) => assert!(!token.is_cancelled(), "attempt 1's token"),
        Left::Context(ctx) => {
            assert!(!ctx.is_shutdown_requested(), "attempt 1's context");
            assert_eq!(ctx.attempt(), 1);
            // Its token is its own: it neither is attempt 3's nor takes
            // its place.
            assert!(!ctx.token().is_cancelled());
        }
    }
    third.cancel();
    assert_eq!(
        seen.recv().await,
        Some(true),
        "attempt 3 sees its token cancelled as a stop"
    );
    let fourth = timeout(Duration::from_secs(60), tokens.recv()).await;
    assert!(
        matches!(fourth, Ok(Some(ref token)) if !token.is_cancelled()),
        "cancelling attempt 3's token ended it, and attempt 4 ran"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
    // A stop of the child reaches every attempt's token.
    match &first {
        Left::Token(token) => assert!(token.is_cancelled()),
        Left::Context(ctx) => assert!(ctx.is_shutdown_requested()),
    }
}

/// A restart hands an attempt's token on to the next attempt only when
/// nothing else can hold it: a token the attempt handed out is never
/// stopped with a later attempt.
#[tokio::test(start_paused = true)]
async fn a_token_an_attempt_handed_out_is_not_stopped_with_a_later_attempt() {
    restarted_after_letting_go(false).await;
}

/// Nor is the token of a context that outlives its attempt (moved into
/// another task, here to the test); a token that context makes later is
/// its own, and does not take the running attempt's place.
#[tokio::test(start_paused = true)]
async fn a_context_that_outlives_its_attempt_is_not_stopped_with_a_later_attempt() {
    restarted_after_letting_go(true).await;
}
