//! Strategies: one-for-one, one-for-all and rest-for-one restart exactly the
//! right siblings; ordered start and ordered stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, ChildState, FailureCause, Jitter, Outcome, ProcessManager,
    ProcessManagerBuilder, Restart, Runnable, ShutdownReason, Strategy, process_fn,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Per child: how many times it started, and the reasons its attempts were
/// stopped for.
type PerChild = HashMap<&'static str, (u32, Vec<String>)>;

#[derive(Clone, Default)]
struct Counters(Arc<Mutex<PerChild>>);

impl Counters {
    fn starts(&self, name: &'static str) -> u32 {
        self.0.lock().expect("lock").get(name).map_or(0, |c| c.0)
    }

    fn reasons(&self, name: &'static str) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .get(name)
            .map_or_else(Vec::new, |c| c.1.clone())
    }
}

/// Counts its starts; the child named `failing` fails on its first attempt
/// after 1 s.
fn counted(name: &'static str, counters: Counters, failing: bool) -> impl Runnable {
    process_fn(name, move |ctx| {
        let counters = counters.clone();
        async move {
            counters.0.lock().expect("lock").entry(name).or_default().0 += 1;
            if failing && ctx.attempt() == 1 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err("first attempt fails");
            }
            ctx.shutdown_requested().await;
            let reason = ctx
                .shutdown_reason()
                .map(|r| r.to_string())
                .unwrap_or_default();
            counters
                .0
                .lock()
                .expect("lock")
                .entry(name)
                .or_default()
                .1
                .push(reason);
            Ok(())
        }
    })
}

/// Four restartable children a, b, c, d in insertion order; b fails once.
async fn run_with(strategy: Strategy) -> Counters {
    let counters = Counters::default();
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(strategy)
        .build();
    for (name, failing) in [("a", false), ("b", true), ("c", false), ("d", false)] {
        manager
            .insert_with(
                counted(name, counters.clone(), failing),
                ChildOptions::new()
                    .restart(Restart::OnFailure)
                    .backoff(Backoff::none()),
            )
            .expect("accepted");
    }
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let snapshot = Counters(Arc::new(Mutex::new(
        counters.0.lock().expect("lock").clone(),
    )));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    snapshot
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let counters = run_with(Strategy::OneForOne).await;
    let starts: Vec<u32> = ["a", "b", "c", "d"].map(|n| counters.starts(n)).to_vec();
    assert_eq!(starts, [1, 2, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_child() {
    let counters = run_with(Strategy::OneForAll).await;
    let starts: Vec<u32> = ["a", "b", "c", "d"].map(|n| counters.starts(n)).to_vec();
    assert_eq!(starts, [2, 2, 2, 2]);
    // The siblings were told why they stopped.
    assert_eq!(counters.reasons("a"), ["process root/b failed"]);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_inserted_after_it() {
    let counters = run_with(Strategy::RestForOne).await;
    let starts: Vec<u32> = ["a", "b", "c", "d"].map(|n| counters.starts(n)).to_vec();
    assert_eq!(starts, [1, 2, 2, 2]);
    assert!(counters.reasons("a").is_empty());
    assert_eq!(counters.reasons("c"), ["process root/b failed"]);
}

#[tokio::test(start_paused = true)]
async fn restarted_siblings_get_the_graceful_stop_and_a_stuck_one_is_aborted() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .grace_period(Duration::from_secs(2))
        .build();
    let tx_slow = tx.clone();
    let slow = manager
        .insert_with(
            process_fn("slow", move |ctx| {
                let tx = tx_slow.clone();
                async move {
                    tx.send(format!("slow starts attempt {}", ctx.attempt()))
                        .expect("test listens");
                    ctx.shutdown_requested().await;
                    if ctx.attempt() == 1 {
                        // Ignores this stop: only the abort ends it.
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, std::io::Error>(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("failing", move |ctx| {
                let tx = tx.clone();
                async move {
                    tx.send(format!("failing starts attempt {}", ctx.attempt()))
                        .expect("test listens");
                    if ctx.attempt() == 1 {
                        return Err("boom");
                    }
                    ctx.shutdown_requested().await;
                    Ok(())
                }
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let mut first = [
        events.recv().await.expect("started"),
        events.recv().await.expect("started"),
    ];
    first.sort();
    assert_eq!(first, ["failing starts attempt 1", "slow starts attempt 1"]);
    let stopping = Instant::now();
    let mut second = [
        events.recv().await.expect("restarted"),
        events.recv().await.expect("restarted"),
    ];
    second.sort();
    assert_eq!(
        second,
        ["failing starts attempt 2", "slow starts attempt 2"]
    );
    // The group waited for the stuck sibling's grace period.
    assert_eq!(stopping.elapsed(), Duration::from_secs(2));
    assert_eq!(slow.restarts(), 1);

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn siblings_without_a_restart_policy_stay_stopped_under_one_for_all() {
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .child(procmgr::IdleProcess)
        .build();
    let plain = manager
        .insert(process_fn("plain", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let counters = Counters::default();
    manager
        .insert_with(
            counted("flaky", counters.clone(), true),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert!(matches!(plain.wait().await, Outcome::Stopped));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(counters.starts("flaky"), 2);
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

fn ordered(builder: ProcessManagerBuilder) -> ProcessManagerBuilder {
    builder.ordered_start(Duration::from_secs(5))
}

#[tokio::test(start_paused = true)]
async fn ordered_start_waits_for_each_child_to_be_ready() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ordered(ProcessManager::builder()).build();
    for (name, ready_after) in [("db", 2), ("cache", 1), ("http", 0)] {
        let tx = tx.clone();
        manager
            .insert(process_fn(name, move |ctx| {
                let tx = tx.clone();
                async move {
                    tx.send((name, "start", Instant::now()))
                        .expect("test listens");
                    tokio::time::sleep(Duration::from_secs(ready_after)).await;
                    ctx.mark_ready();
                    ctx.shutdown_requested().await;
                    Ok::<_, std::io::Error>(())
                }
            }))
            .expect("accepted");
    }
    let handle = manager.handle();
    let origin = Instant::now();
    let run = tokio::spawn(manager.into_future());
    let mut starts = Vec::new();
    for _ in 0..3 {
        let (name, _, at) = events.recv().await.expect("started");
        starts.push((name, at - origin));
    }
    assert_eq!(
        starts,
        [
            ("db", Duration::ZERO),
            ("cache", Duration::from_secs(2)),
            ("http", Duration::from_secs(3)),
        ]
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn ordered_start_fails_a_child_that_is_not_ready_in_time() {
    let manager = ordered(ProcessManager::builder().name("root")).build();
    let slow = manager
        .insert(process_fn("slow", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let next = manager
        .insert(process_fn("next", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let started = Instant::now();
    let error = manager.await.expect_err("the start timeout is a failure");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/slow");
    assert!(matches!(
        failure.cause(),
        FailureCause::StartTimeout { timeout } if *timeout == Duration::from_secs(5)
    ));
    assert!(matches!(slow.outcome(), Some(Outcome::Aborted)));
    // Accepted, so it ran, and stopped at once.
    assert!(matches!(next.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn ordered_stop_stops_children_in_reverse_start_order() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder()
        .ordered_stop(true)
        .grace_period(Duration::from_secs(30))
        .build();
    for name in ["db", "cache", "http"] {
        let tx = tx.clone();
        manager
            .insert(process_fn(name, move |ctx| {
                let tx = tx.clone();
                async move {
                    ctx.shutdown_requested().await;
                    tx.send((name, "asked", Instant::now()))
                        .expect("test listens");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    tx.send((name, "stopped", Instant::now()))
                        .expect("test listens");
                    Ok::<_, std::io::Error>(())
                }
            }))
            .expect("accepted");
    }
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    let origin = Instant::now();
    handle.request_shutdown().expect("running");
    let mut log = Vec::new();
    for _ in 0..6 {
        let (name, what, at) = events.recv().await.expect("event");
        log.push((name, what, (at - origin).as_secs()));
    }
    assert_eq!(
        log,
        [
            ("http", "asked", 0),
            ("http", "stopped", 1),
            ("cache", "asked", 1),
            ("cache", "stopped", 2),
            ("db", "asked", 2),
            ("db", "stopped", 3),
        ]
    );
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn ordered_stop_is_bounded_by_the_managers_grace_period() {
    let manager = ProcessManager::builder()
        .name("root")
        .ordered_stop(true)
        .grace_period(Duration::from_secs(3))
        .build();
    let stuck = |name: &'static str| {
        process_fn(name, |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        })
    };
    let first = manager.insert(stuck("first")).expect("accepted");
    let second = manager.insert(stuck("second")).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let error = run.await.expect("joined").expect_err("aborts are reported");
    // Not 3 s each: 3 s for the whole sequence.
    assert_eq!(asked.elapsed(), Duration::from_secs(3));
    assert!(matches!(first.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(second.outcome(), Some(Outcome::Aborted)));
    assert_eq!(error.failures().expect("failures").iter().count(), 2);
    assert_eq!(
        error.failures().expect("failures").shutdown_reason(),
        Some(&ShutdownReason::Requested)
    );
}

/// What happened when, in whole seconds since the test began.
#[derive(Clone)]
struct Timeline {
    origin: Instant,
    log: Arc<Mutex<Vec<(String, u64)>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            origin: Instant::now(),
            log: Arc::default(),
        }
    }

    fn push(&self, what: String) {
        let at = self.origin.elapsed().as_secs();
        self.log.lock().expect("lock").push((what, at));
    }

    fn entries(&self) -> Vec<(String, u64)> {
        self.log.lock().expect("lock").clone()
    }
}

/// Logs each start (`start a#1`) and each stop request (`stop a`), and takes
/// 1 s to stop; with `fails_after`, its first attempt fails after that long.
fn logged(name: &'static str, timeline: &Timeline, fails_after: Option<Duration>) -> impl Runnable {
    let timeline = timeline.clone();
    process_fn(name, move |ctx| {
        let timeline = timeline.clone();
        async move {
            timeline.push(format!("start {name}#{}", ctx.attempt()));
            if let (Some(after), 1) = (fails_after, ctx.attempt()) {
                tokio::time::sleep(after).await;
                return Err("first attempt fails");
            }
            ctx.shutdown_requested().await;
            timeline.push(format!("stop {name}"));
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    })
}

fn restartable() -> ChildOptions {
    ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::none())
}

fn entries(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter()
        .map(|&(what, at)| (what.to_owned(), at))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_with_ordered_stop_stops_members_one_by_one_in_reverse_start_order() {
    let timeline = Timeline::new();
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .ordered_stop(true)
        .grace_period(Duration::from_secs(30))
        .build();
    for (name, fails) in [("a", false), ("b", true), ("c", false), ("d", false)] {
        let fails_after = fails.then_some(Duration::from_secs(1));
        manager
            .insert_with(logged(name, &timeline, fails_after), restartable())
            .expect("accepted");
    }
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seen = timeline.entries();
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    assert_eq!(
        seen,
        entries(&[
            ("start a#1", 0),
            ("start b#1", 0),
            ("start c#1", 0),
            ("start d#1", 0),
            // b failed at 1 s: its siblings stop one at a time, last
            // started first, ...
            ("stop d", 1),
            ("stop c", 2),
            ("stop a", 3),
            // ... and the group starts again in start order.
            ("start a#2", 4),
            ("start b#2", 4),
            ("start c#2", 4),
            ("start d#2", 4),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_orders_its_members_by_start_not_by_reused_slots() {
    let timeline = Timeline::new();
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .ordered_stop(true)
        .grace_period(Duration::from_secs(30))
        .build();
    // Ends at once, so that the next child inserted takes its place in the
    // manager's storage.
    manager
        .insert(process_fn("once", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    manager
        .insert_with(
            logged("b", &timeline, Some(Duration::from_secs(2))),
            restartable(),
        )
        .expect("accepted");
    manager
        .insert_with(logged("c", &timeline, None), restartable())
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle
        .insert_with(logged("d", &timeline, None), restartable())
        .expect("accepted");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let seen = timeline.entries();
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    assert_eq!(
        seen,
        entries(&[
            ("start b#1", 0),
            ("start c#1", 0),
            ("start d#1", 1),
            // b failed at 2 s; d started last, so it stops first.
            ("stop d", 2),
            ("stop c", 3),
            ("start b#2", 4),
            ("start c#2", 4),
            ("start d#2", 4),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_inserted_during_a_group_restart_does_not_run_beside_its_stopped_siblings() {
    let timeline = Timeline::new();
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .build();
    // a fails at 1 s; b takes until 2 s to stop; the group starts again
    // after a's backoff, at 7 s.
    manager
        .insert_with(
            logged("a", &timeline, Some(Duration::from_secs(1))),
            restartable().backoff(
                Backoff::exponential(Duration::from_secs(5), Duration::from_secs(5))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    manager
        .insert_with(logged("b", &timeline, None), restartable())
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let c = handle
        .insert_with(logged("c", &timeline, None), restartable())
        .expect("accepted");

    let state_of = |id: u64| {
        handle
            .snapshot()
            .into_iter()
            .find(|info| info.id() == id)
            .map(|info| info.state().clone())
    };
    let runs = |state: &Option<ChildState>| {
        matches!(
            state,
            Some(ChildState::Running | ChildState::Ready | ChildState::Stopping)
        )
    };
    tokio::time::sleep_until(timeline.origin + Duration::from_secs(4)).await;
    let siblings: Vec<_> = handle
        .snapshot()
        .into_iter()
        .map(|info| info.state().clone())
        .collect();
    let c_state = state_of(c.id());
    tokio::time::sleep_until(timeline.origin + Duration::from_secs(10)).await;
    let c_later = state_of(c.id());
    let seen = timeline.entries();
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    assert!(
        siblings
            .iter()
            .filter(|state| matches!(state, ChildState::Restarting { .. }))
            .count()
            >= 2,
        "a and b wait for the group's restart: {siblings:?}"
    );
    assert!(
        !runs(&c_state),
        "c runs while its siblings are stopped: {c_state:?}; {seen:?}"
    );
    assert!(
        runs(&c_later),
        "c runs with the group: {c_later:?}; {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_member_stopped_through_its_handle_ends_without_escalating_its_failure() {
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .build();
    let flaky = manager
        .insert_with(
            process_fn("flaky", |ctx| async move {
                if ctx.attempt() == 1 {
                    return Err("broke");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    // Takes 2 s to stop, so the group holds `flaky` meanwhile.
    let slow = manager
        .insert_with(
            process_fn("slow", |ctx| async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().restart(Restart::OnFailure),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    flaky.request_shutdown().expect("held, not ended");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !handle.is_shutdown_requested(),
        "its failure was answered by its policy: {:?}",
        handle.shutdown_reason()
    );
    assert!(matches!(flaky.outcome(), Some(Outcome::Failed(_))));
    assert_eq!(slow.restarts(), 1, "the rest of the group started again");
    handle.shutdown().await;
    run.await.expect("joined").expect("no failure escalated");
}

#[tokio::test(start_paused = true)]
async fn a_child_started_during_an_ordered_stop_gets_its_grace_period_when_its_turn_comes() {
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .ordered_stop(true)
        .grace_period(Duration::from_secs(10))
        .build();
    let stops_in = |name: &'static str, delay: Duration| {
        process_fn(name, move |ctx| async move {
            ctx.shutdown_requested().await;
            tokio::time::sleep(delay).await;
            Ok::<_, std::io::Error>(())
        })
    };
    // `slow` takes 2 s to stop; `flaky` fails at once, so the group asks
    // `slow` to stop, and a child inserted meanwhile waits for the group.
    manager
        .insert_with(
            stops_in("slow", Duration::from_secs(2)),
            ChildOptions::new().restart(Restart::OnFailure),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("flaky", |_ctx| async { Err::<(), _>("broke") }),
            ChildOptions::new()
                .restart(Restart::Always)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let late = handle
        .insert_with(
            stops_in("late", Duration::from_millis(100)),
            ChildOptions::new().grace_period(Duration::from_secs(1)),
        )
        .expect("accepted");
    // The stop starts `late`, newest, so it is asked once `slow` has ended
    // (at 2 s): its own 1 s grace period runs from then, not from its start.
    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    run.await
        .expect("joined")
        .expect("every child stopped in time");
    assert!(asked.elapsed() >= Duration::from_secs(2));
    assert!(matches!(late.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_sibling_outside_the_group_ending_does_not_release_inserts_held_for_the_group() {
    let manager = ProcessManager::builder()
        .strategy(Strategy::RestForOne)
        .build();
    // Before the trigger, so not in its group; ends by itself at 3 s.
    manager
        .insert(process_fn("outside", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    // Fails at 1 s; restarts after 5 s, at 6 s.
    manager
        .insert_with(
            process_fn("trigger", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("broke");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(5), Duration::from_secs(5))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&started);
    handle
        .insert(process_fn("held", move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    tokio::time::sleep(Duration::from_secs(2)).await; // 4 s: `outside` ended
    assert!(
        !started.load(std::sync::atomic::Ordering::SeqCst),
        "`held` started while the group's trigger still waits"
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // 7 s
    assert!(started.load(std::sync::atomic::Ordering::SeqCst));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn ordered_start_goes_on_when_the_awaited_child_ends_before_it_is_ready() {
    let (tx, mut starts) = mpsc::unbounded_channel();
    let manager = ordered(ProcessManager::builder()).build();
    let brief = manager
        .insert(process_fn("brief", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    manager
        .insert(process_fn("next", move |ctx| {
            let tx = tx.clone();
            async move {
                tx.send(Instant::now()).expect("test listens");
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let origin = Instant::now();
    let run = tokio::spawn(manager.into_future());
    let started = timeout(Duration::from_secs(60), starts.recv())
        .await
        .expect("`next` starts once `brief` has ended")
        .expect("started");
    assert_eq!(started - origin, Duration::from_secs(1));
    assert!(matches!(brief.outcome(), Some(Outcome::Completed)));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_held_member_without_a_restart_policy_fails_a_manager_that_stops_meanwhile() {
    let always = || {
        ChildOptions::new()
            .restart(Restart::Always)
            .backoff(Backoff::none())
    };
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(Strategy::OneForAll)
        .grace_period(Duration::from_secs(30))
        .build();
    manager
        .insert_with(
            process_fn("trigger", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("trigger fails");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            always(),
        )
        .expect("accepted");
    // No restart policy: asked to stop with its group, it fails.
    let member = manager
        .insert(process_fn("member", |ctx| async move {
            ctx.shutdown_requested().await;
            Err::<(), _>("failed as it stopped")
        }))
        .expect("accepted");
    // Keeps the group restart going for 5 s.
    manager
        .insert_with(
            process_fn("slow", |ctx| async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, std::io::Error>(())
            }),
            always(),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !member.is_finished(),
        "held for its group, which is still stopping"
    );

    handle.request_shutdown().expect("running");
    let error = run.await.expect("joined").expect_err("the member failed");
    let paths: Vec<_> = error
        .failures()
        .expect("child failures")
        .iter()
        .map(|failure| failure.path().to_owned())
        .collect();
    assert_eq!(paths, ["root/member"]);
    assert!(matches!(member.outcome(), Some(Outcome::Failed(_))));
}

/// One-for-all with ordered start: `a`, `b` and `c` say they are ready 2 s,
/// 1 s and 3 s after they start; `b`'s first attempt fails 10 s after it is
/// ready; with `c_stalls`, `c`'s second attempt never says it is ready (and
/// `c` may not restart on its own). The starts as (what, second), and the
/// run's result once it is stopped at 60 s (if it still runs).
async fn ordered_group_restart(
    c_stalls: bool,
) -> (Vec<(String, u64)>, Result<(), procmgr::RunError>) {
    let timeline = Timeline::new();
    let manager = ordered(ProcessManager::builder().name("root"))
        .strategy(Strategy::OneForAll)
        .build();
    for (name, ready_after) in [("a", 2), ("b", 1), ("c", 3)] {
        let timeline = timeline.clone();
        let child = process_fn(name, move |ctx| {
            let timeline = timeline.clone();
            async move {
                timeline.push(format!("start {name}#{}", ctx.attempt()));
                if !(c_stalls && name == "c" && ctx.attempt() == 2) {
                    tokio::time::sleep(Duration::from_secs(ready_after)).await;
                    ctx.mark_ready();
                }
                if name == "b" && ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    return Err("first attempt fails");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }
        });
        let mut options = restartable();
        if name == "c" {
            options = options.restart_limit(procmgr::RestartLimit::new(0, Duration::from_secs(60)));
        }
        manager.insert_with(child, options).expect("accepted");
    }
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(60)).await;
    // Ended already after a failure: nothing to ask.
    let _ = handle.request_shutdown();
    let result = run.await.expect("joined").map(drop);
    (timeline.entries(), result)
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_with_ordered_start_starts_each_member_once_the_one_before_is_ready() {
    let (starts, result) = ordered_group_restart(false).await;
    result.expect("clean stop");
    // b fails at 13 s; the group starts again at once, one member at a time.
    assert_eq!(
        starts,
        entries(&[
            ("start a#1", 0),
            ("start b#1", 2),
            ("start c#1", 3),
            ("start a#2", 13),
            ("start b#2", 15),
            ("start c#2", 16),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_restarted_with_its_group_under_ordered_start_has_the_start_timeout() {
    let (starts, result) = ordered_group_restart(true).await;
    assert_eq!(starts.last(), Some(&("start c#2".to_owned(), 16)));
    let error = result.expect_err("c was not ready in time");
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/c");
    assert!(matches!(
        failure.cause(),
        FailureCause::StartTimeout { timeout } if *timeout == Duration::from_secs(5)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_background_childs_own_restarts_do_not_end_the_wait_for_a_group_restart() {
    // One-for-all: `a` fails at 1 s and its group waits 10 s for the
    // restart. Meanwhile the background child `bg`, which restarts alone,
    // fails and restarts each second until 3 s; an insert at 5 s must still
    // wait for the group, until 11 s.
    let group_restart = || {
        ChildOptions::new().restart(Restart::OnFailure).backoff(
            Backoff::exponential(Duration::from_secs(10), Duration::from_secs(10))
                .jitter(Jitter::None),
        )
    };
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(Strategy::OneForAll)
        .build();
    manager
        .insert_with(
            process_fn("a", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("a fails once");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            group_restart(),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("b", |ctx| async move {
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }),
            group_restart(),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("bg", |ctx| async move {
                if ctx.attempt() <= 3 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("bg fails three times");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .background(true)
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let origin = Instant::now();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (tx, mut started) = mpsc::unbounded_channel();
    handle
        .insert(process_fn("late", move |ctx| {
            let tx = tx.clone();
            async move {
                tx.send(Instant::now()).expect("the test listens");
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let at = timeout(Duration::from_secs(60), started.recv())
        .await
        .expect("late starts")
        .expect("started");
    assert_eq!(
        at - origin,
        Duration::from_secs(11),
        "after the group restarted"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}

/// An attempt that finishes on its own in the very poll during which the
/// loop aborts it (here: it is blocked in that poll, on another worker,
/// until the test has seen the abort) ends as it returned, and its abort
/// is forgotten: the child's next attempt, which has the same key, can be
/// aborted in turn. Real threads and real time: the race needs a task
/// mid-poll on one worker while the loop runs on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_returns_as_it_is_aborted_leaves_the_next_attempt_abortable() {
    const GRACE: Duration = Duration::from_millis(20);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release));
    let (fail_tx, fail) = mpsc::unbounded_channel::<()>();
    let fail = Arc::new(tokio::sync::Mutex::new(fail));
    let manager = ProcessManager::builder()
        .strategy(Strategy::OneForAll)
        .grace_period(GRACE)
        .build();
    let restartable = || {
        ChildOptions::new()
            .restart(Restart::Always)
            .backoff(Backoff::none())
    };
    manager
        .insert_with(
            process_fn("stuck", move |ctx| {
                let started = started_tx.clone();
                let release = Arc::clone(&release);
                async move {
                    started.send(ctx.attempt()).expect("the test listens");
                    ctx.shutdown_requested().await;
                    if ctx.attempt() == 1 {
                        // Blocks inside the poll (its worker's other tasks
                        // move to another thread) until the test has seen
                        // the loop abort this attempt; then returns all the
                        // same.
                        tokio::task::block_in_place(|| {
                            release
                                .lock()
                                .expect("lock")
                                .recv()
                                .expect("the test releases it");
                        });
                        return Ok(());
                    }
                    if ctx.attempt() == 2 {
                        // Ignores the stop: only an abort ends it.
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), std::io::Error>(())
                }
            }),
            restartable(),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("trigger", move |ctx| {
                let fail = Arc::clone(&fail);
                async move {
                    tokio::select! {
                        _ = async { fail.lock().await.recv().await } => {
                            Err(std::io::Error::other("asked to fail"))
                        }
                        () = ctx.shutdown_requested() => Ok(()),
                    }
                }
            }),
            restartable(),
        )
        .expect("accepted");
    let handle = manager.handle();
    let mut events = handle.subscribe();
    let run = tokio::spawn(manager.into_future());
    let bound = Duration::from_secs(10);

    assert_eq!(started.recv().await, Some(1));
    fail_tx.send(()).expect("trigger listens");
    // The group stops `stuck`, which blocks; its grace period ends and the
    // loop aborts it mid-poll.
    timeout(bound, async {
        loop {
            let event = events.recv().await.expect("events go on");
            if event.path() == "manager/stuck"
                && matches!(event.kind(), procmgr::EventKind::Aborted)
            {
                break;
            }
        }
    })
    .await
    .expect("attempt 1 is aborted after its grace period");
    release_tx.send(()).expect("attempt 1 waits");
    let second = timeout(bound, started.recv()).await;
    assert_eq!(second, Ok(Some(2)), "the group restarted");

    // Attempt 2 ignores the next group stop: the loop must abort it too.
    fail_tx.send(()).expect("trigger listens");
    let third = timeout(bound, started.recv()).await;
    assert_eq!(
        third,
        Ok(Some(3)),
        "attempt 2 was aborted, and the group restarted"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}
