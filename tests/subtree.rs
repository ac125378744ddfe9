//! Restartable subtrees: a nested manager inserted with a restart policy is
//! started again by its parent, with the children it was built with (its
//! spec), and the handles into it follow the new run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, ControlError, EventKind, Outcome, ProcessManager, Restart, Runnable,
    process_fn,
};
use tokio::sync::Notify;

/// A child that counts its attempts and waits for shutdown.
fn counted(name: &'static str, runs: &Arc<AtomicU32>) -> impl Runnable {
    let runs = Arc::clone(runs);
    process_fn(name, move |ctx| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }
    })
}

/// A child that counts its attempts and, in its first attempt only, fails
/// when `trigger` is notified; later attempts wait for shutdown.
fn fails_once_on(
    name: &'static str,
    runs: &Arc<AtomicU32>,
    trigger: &Arc<Notify>,
) -> impl Runnable {
    let runs = Arc::clone(runs);
    let trigger = Arc::clone(trigger);
    process_fn(name, move |ctx| {
        let runs = Arc::clone(&runs);
        let trigger = Arc::clone(&trigger);
        async move {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::select! {
                    () = trigger.notified() => return Err(std::io::Error::other("broke")),
                    () = ctx.shutdown_requested() => return Ok(()),
                }
            }
            ctx.shutdown_requested().await;
            Ok(())
        }
    })
}

fn restarted_on_failure() -> ChildOptions {
    ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
}

/// Lets every task run until none can make progress.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_subtree_restarts_its_spec_children_once_each_in_order_with_handles_intact() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    let sub_handle = sub.handle();
    let (a, b, c, late) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let trigger = Arc::new(Notify::new());
    let a_handle = sub.insert(counted("a", &a)).expect("accepted");
    let b_handle = sub
        .insert(fails_once_on("b", &b, &trigger))
        .expect("accepted");
    sub.insert(counted("c", &c)).expect("accepted");
    let sub_in_root = root
        .insert_with(sub, restarted_on_failure())
        .expect("accepted");
    let mut events = root.handle().subscribe();
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    settle().await;
    assert_eq!(
        [
            a.load(Ordering::SeqCst),
            b.load(Ordering::SeqCst),
            c.load(Ordering::SeqCst)
        ],
        [1, 1, 1]
    );

    // A child inserted while the subtree runs is not part of its spec.
    let late_handle = sub_handle.insert(counted("late", &late)).expect("accepted");
    settle().await;
    assert_eq!(late.load(Ordering::SeqCst), 1);
    let first_b = b_handle.id();

    trigger.notify_one();
    // The subtree's run fails and stops its children; its parent restarts
    // it after the backoff.
    assert!(matches!(late_handle.wait().await, Outcome::Stopped));
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;

    assert_eq!(
        [
            a.load(Ordering::SeqCst),
            b.load(Ordering::SeqCst),
            c.load(Ordering::SeqCst)
        ],
        [2, 2, 2],
        "each spec child ran once more"
    );
    assert_eq!(
        late.load(Ordering::SeqCst),
        1,
        "a runtime child is not restarted"
    );
    assert!(late_handle.is_finished());
    assert_eq!(sub_in_root.restarts(), 1);
    assert!(!sub_handle.is_finished(), "the subtree runs again");

    // The handles taken before the restart control the new run.
    assert_ne!(b_handle.id(), first_b, "the new run's child");
    assert!(!b_handle.is_finished());
    assert!(matches!(a_handle.shutdown().await, Outcome::Stopped));
    assert_eq!(
        a.load(Ordering::SeqCst),
        2,
        "a stopped child is not restarted"
    );
    let c_now = sub_handle.child("c").expect("found by name in the new run");
    assert!(!c_now.is_finished());
    assert!(sub_handle.child("late").is_none());

    // The restart is visible in the parent's tree and events.
    let tree = root_handle.tree().to_string();
    assert!(tree.contains("sub"), "{tree}");
    let info = root_handle
        .snapshot()
        .into_iter()
        .find(|info| info.name() == "sub")
        .expect("the subtree");
    assert_eq!(info.restarts(), 1);
    assert!(
        info.last_error()
            .is_some_and(|error| error.contains("root/sub/b")),
        "{:?}",
        info.last_error()
    );
    // The events, in order: the subtree failed, restarts, starts again.
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(1), events.recv()).await {
        if event.path() == "root/sub" {
            seen.push(match event.kind() {
                EventKind::Failed(_) => "failed",
                EventKind::Restarting { .. } => "restarting",
                EventKind::Started { attempt: 2 } => "started again",
                _ => "other",
            });
        }
    }
    seen.retain(|kind| *kind != "other");
    assert_eq!(seen, ["failed", "restarting", "started again"]);

    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
    assert!(b_handle.is_finished());
    assert!(sub_handle.is_finished());
}

#[tokio::test(start_paused = true)]
async fn stopping_a_restartable_subtree_through_its_own_handle_stops_it_for_good() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    let runs = Arc::new(AtomicU32::new(0));
    let worker = sub.insert(counted("w", &runs)).expect("accepted");
    let sub_handle = sub.handle();
    let sub_in_root = root
        .insert_with(sub, ChildOptions::new().restart(Restart::Always))
        .expect("accepted");
    let keep = root
        .insert(counted("keep", &Arc::new(AtomicU32::new(0))))
        .expect("accepted");
    let run = tokio::spawn(root.into_future());
    settle().await;

    assert!(matches!(sub_handle.shutdown().await, Outcome::Stopped));
    assert!(matches!(sub_in_root.wait().await, Outcome::Stopped));
    assert!(matches!(worker.wait().await, Outcome::Stopped));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "not restarted");
    assert_eq!(sub_handle.request_shutdown(), Err(ControlError::Ended));

    keep.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_leafs_failure_restarts_only_its_own_subtree_three_levels_down() {
    let root = ProcessManager::builder().name("root").build();
    let mid = ProcessManager::builder().name("mid").build();
    let leaves = ProcessManager::builder().name("leaves").build();
    let (mid_sibling, leaf, leaf_sibling) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let trigger = Arc::new(Notify::new());
    leaves
        .insert(fails_once_on("leaf", &leaf, &trigger))
        .expect("accepted");
    leaves
        .insert(counted("leaf-sibling", &leaf_sibling))
        .expect("accepted");
    let leaves_handle = leaves.handle();
    mid.insert(counted("mid-sibling", &mid_sibling))
        .expect("accepted");
    mid.insert_with(leaves, restarted_on_failure())
        .expect("accepted");
    root.insert_with(mid, restarted_on_failure())
        .expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    settle().await;
    let leaf_path = root_handle.find("mid/leaves/leaf").expect("the leaf");

    trigger.notify_one();
    settle().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;

    assert_eq!(leaf.load(Ordering::SeqCst), 2);
    assert_eq!(leaf_sibling.load(Ordering::SeqCst), 2);
    assert_eq!(mid_sibling.load(Ordering::SeqCst), 1, "mid did not restart");
    assert!(
        !leaf_path.is_finished(),
        "the old handle follows the new leaf"
    );
    assert!(root_handle.find("mid/leaves/leaf-sibling").is_some());
    assert!(!leaves_handle.is_finished());

    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_subtree_restarted_by_an_ancestors_restart_starts_its_spec_again() {
    // `mid` fails as a whole (its leaf escalates); the root restarts it, and
    // with it `leaves`, a spec child of `mid` that had run before.
    let root = ProcessManager::builder().name("root").build();
    let mid = ProcessManager::builder().name("mid").build();
    let leaves = ProcessManager::builder().name("leaves").build();
    let (leaf, trigger_runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let trigger = Arc::new(Notify::new());
    leaves.insert(counted("leaf", &leaf)).expect("accepted");
    let leaves_handle = leaves.handle();
    mid.insert(leaves).expect("accepted");
    mid.insert(fails_once_on("flaky", &trigger_runs, &trigger))
        .expect("accepted");
    root.insert_with(mid, restarted_on_failure())
        .expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    settle().await;
    assert_eq!(leaf.load(Ordering::SeqCst), 1);

    trigger.notify_one();
    settle().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;

    assert_eq!(leaf.load(Ordering::SeqCst), 2, "the grandchild ran again");
    assert_eq!(trigger_runs.load(Ordering::SeqCst), 2);
    assert!(!leaves_handle.is_finished());
    let leaf_handle = root_handle.find("mid/leaves/leaf").expect("found");
    assert!(!leaf_handle.is_finished());

    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
    assert!(leaves_handle.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_subtree_without_a_restart_policy_still_fails_its_parent() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    sub.insert(process_fn("bad", |_ctx| async {
        Err::<(), _>(std::io::Error::other("broke"))
    }))
    .expect("accepted");
    let sub_handle = sub.handle();
    root.insert(sub).expect("accepted");
    let error = root.await.expect_err("the failure escalates");
    assert!(error.to_string().contains("root/sub"), "{error}");
    assert!(sub_handle.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_subtree_that_keeps_failing_is_given_up_with_its_restarts_in_the_failure() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    sub.insert(process_fn("bad", move |_ctx| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(std::io::Error::other("broke")) }
    }))
    .expect("accepted");
    root.insert_with(
        sub,
        ChildOptions::new()
            .restart(Restart::OnFailure)
            .backoff(Backoff::none())
            .restart_limit(procmgr::RestartLimit::new(2, Duration::from_secs(60))),
    )
    .expect("accepted");
    let error = root.await.expect_err("given up");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "the first run and two restarts"
    );
    let failure = error.failures().expect("a failure").first();
    assert_eq!(failure.path(), "root/sub");
    assert_eq!(failure.attempt(), 3);
    assert_eq!(
        failure.to_string(),
        "process root/sub failed (attempt 3), more often than its restart limit of 2 restarts within 60s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_subtree_that_keeps_records_lists_only_its_current_run() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder()
        .name("sub")
        .auto_cleanup(false)
        .build();
    let (steady, flaky, late) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let trigger = Arc::new(Notify::new());
    let steady_handle = sub.insert(counted("steady", &steady)).expect("accepted");
    sub.insert(fails_once_on("flaky", &flaky, &trigger))
        .expect("accepted");
    let sub_handle = sub.handle();
    root.insert_with(sub, restarted_on_failure())
        .expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    settle().await;
    sub_handle.insert(counted("late", &late)).expect("accepted");
    settle().await;
    assert_eq!(sub_handle.children().len(), 3);

    trigger.notify_one();
    settle().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;
    assert_eq!(steady.load(Ordering::SeqCst), 2, "the subtree ran again");

    // The ended run's records are gone: each spec child once, as the new
    // run's child, and no record of the runtime child.
    let mut names: Vec<String> = sub_handle
        .snapshot()
        .iter()
        .map(|info| info.name().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["flaky", "steady"]);
    let children = sub_handle.children();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|child| !child.is_finished()));
    assert!(
        children
            .iter()
            .any(|child| child.id() == steady_handle.id())
    );

    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
    assert_eq!(
        sub_handle.children().len(),
        2,
        "the last run's records stay, ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_through_its_own_handle_before_its_first_run_is_for_good() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    let runs = Arc::new(AtomicU32::new(0));
    sub.insert(counted("w", &runs)).expect("accepted");
    let sub_handle = sub.handle();
    let sub_in_root = root
        .insert_with(sub, ChildOptions::new().restart(Restart::Always))
        .expect("accepted");
    // Asked before its parent has started it: its run starts stopping.
    sub_handle.request_shutdown().expect("accepted");
    let keep = root
        .insert(counted("keep", &Arc::new(AtomicU32::new(0))))
        .expect("accepted");
    let run = tokio::spawn(root.into_future());
    settle().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;

    assert_eq!(runs.load(Ordering::SeqCst), 1, "not restarted");
    assert_eq!(sub_in_root.restarts(), 0);
    assert!(matches!(sub_in_root.outcome(), Some(Outcome::Stopped)));
    assert!(sub_handle.is_finished());

    keep.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_subtree_starts_its_spec_children_in_their_order() {
    // With an ordered start, each spec child starts once the one before it
    // is ready, in the first run and again in the run after the restart.
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = tokio::time::Instant::now();
    let trigger = Arc::new(Notify::new());
    let sub = ProcessManager::builder()
        .name("sub")
        .ordered_start(Duration::from_secs(5))
        .build();
    for name in ["a", "b", "c"] {
        let log = Arc::clone(&log);
        let trigger = Arc::clone(&trigger);
        sub.insert(
            process_fn(name, move |ctx| {
                let log = Arc::clone(&log);
                let trigger = Arc::clone(&trigger);
                async move {
                    log.lock().expect("log").push((name, origin.elapsed()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ctx.mark_ready();
                    let first_run = log.lock().expect("log").len() <= 3;
                    if name == "b" && first_run {
                        trigger.notified().await;
                        return Err(std::io::Error::other("broke"));
                    }
                    ctx.shutdown_requested().await;
                    Ok(())
                }
            })
            .reporting_ready(),
        )
        .expect("accepted");
    }
    let root = ProcessManager::builder().name("root").build();
    let sub_in_root = root
        .insert_with(sub, restarted_on_failure())
        .expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::time::sleep(Duration::from_millis(100)).await;
    fn names(log: &[(&'static str, Duration)]) -> Vec<&'static str> {
        log.iter().map(|(name, _)| *name).collect()
    }
    assert_eq!(names(&log.lock().expect("log")), ["a", "b", "c"]);

    trigger.notify_one();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sub_in_root.restarts(), 1);
    let log = log.lock().expect("log").clone();
    assert_eq!(names(&log), ["a", "b", "c", "a", "b", "c"]);
    // One at a time, each 10 ms after the one before said it was ready.
    let second: Vec<Duration> = log[3..].iter().map(|(_, at)| *at).collect();
    assert_eq!(second[1] - second[0], Duration::from_millis(10));
    assert_eq!(second[2] - second[1], Duration::from_millis(10));
    root_handle.ready().await;

    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}

/// A handle from any earlier run of a subtree, the first or one between,
/// controls the child of the latest run.
#[tokio::test(start_paused = true)]
async fn handles_from_every_earlier_run_control_the_latest_one() {
    let root = ProcessManager::builder().name("root").build();
    let sub = ProcessManager::builder().name("sub").build();
    let sub_handle = sub.handle();
    let (runs, trigger) = (Arc::new(AtomicU32::new(0)), Arc::new(Notify::new()));
    let first = {
        let (runs, trigger) = (Arc::clone(&runs), Arc::clone(&trigger));
        sub.insert(process_fn("w", move |ctx| {
            let (runs, trigger) = (Arc::clone(&runs), Arc::clone(&trigger));
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    () = trigger.notified() => Err(std::io::Error::other("broke")),
                    () = ctx.shutdown_requested() => Ok(()),
                }
            }
        }))
        .expect("accepted")
    };
    let original = first.id();
    root.insert_with(sub, restarted_on_failure())
        .expect("accepted");
    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());
    settle().await;
    // Two failures, two new runs of the subtree.
    trigger.notify_one();
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;
    let second = sub_handle.child("w").expect("the second run's child");
    let second_id = second.id();
    assert_ne!(second.id(), original, "a new run's child");
    assert_eq!(first.id(), second.id(), "the first handle follows");
    trigger.notify_one();
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let third = sub_handle.child("w").expect("the third run's child");
    assert_ne!(third.id(), second_id, "a new run's child");
    assert_eq!(first.id(), third.id());
    assert_eq!(second.id(), third.id());
    assert!(!third.is_finished());

    // A stop through the first run's handle stops the third run's child.
    assert!(matches!(first.shutdown().await, Outcome::Stopped));
    assert!(third.is_finished() && second.is_finished());
    assert_eq!(runs.load(Ordering::SeqCst), 3, "stopped for good");
    root_handle.shutdown().await;
    run.await.expect("joined").expect("a clean stop");
}
