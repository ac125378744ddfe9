//! Background children: they do not keep a manager running and are stopped
//! only after every other child has ended.

use std::time::Duration;

use procmgr::{
    ChildOptions, Context, IdleProcess, InsertErrorKind, Outcome, ProcessManager, Runnable,
    process_fn,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A background helper that says when it is asked to stop.
struct Helper(mpsc::UnboundedSender<String>);

impl Runnable for Helper {
    type Error = std::io::Error;

    async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
        ctx.shutdown_requested().await;
        self.0
            .send(format!("helper stops ({:?})", ctx.shutdown_reason()))
            .expect("test listens");
        Ok(())
    }

    fn child_options(&self) -> ChildOptions {
        ChildOptions::new().background(true)
    }
}

#[tokio::test(start_paused = true)]
async fn background_children_stop_after_the_others() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let helper = manager.insert(Helper(tx.clone())).expect("accepted");
    manager
        .insert(process_fn("worker", move |ctx| {
            let tx = tx.clone();
            async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                tx.send("worker stops".to_owned()).expect("test listens");
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    assert_eq!(events.recv().await.as_deref(), Some("worker stops"));
    assert_eq!(
        events.recv().await.as_deref(),
        Some("helper stops (Some(Requested))")
    );
    run.await.expect("joined").expect("clean stop");
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    assert!(matches!(helper.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn background_children_do_not_keep_the_manager_running() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager.insert(Helper(tx)).expect("accepted");
    let worker = manager
        .insert(process_fn("worker", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let exit = manager.await.expect("clean end");
    assert_eq!(exit.shutdown_reason(), None);
    assert!(matches!(worker.outcome(), Some(Outcome::Completed)));
    assert_eq!(
        events.recv().await.as_deref(),
        Some("helper stops (Some(Requested))")
    );
}

#[tokio::test(start_paused = true)]
async fn options_given_at_insert_win_over_the_runnables_own() {
    let (tx, _events) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    // Inserted as a foreground child after all, it keeps the manager alive.
    let helper = manager
        .insert_with(Helper(tx), ChildOptions::new().background(false))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!handle.is_finished());
    assert!(!helper.is_finished());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_background_child_that_ignores_shutdown_is_aborted_after_its_grace() {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(3))
        .build();
    let stuck = manager
        .insert_with(
            process_fn("stuck", |_ctx| async {
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().background(true),
        )
        .expect("accepted");
    manager
        .insert(process_fn("short", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let started = Instant::now();
    let error = manager.await.expect_err("the abort is reported");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(error.failures().expect("failures").first().id(), stuck.id());
}

#[tokio::test(start_paused = true)]
async fn a_background_child_with_its_own_grace_is_asked_to_stop_after_the_others() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(10))
        .build();
    // Its own grace period is shorter than the other children take to stop:
    // it counts from when it is asked, which is after they have ended.
    let helper = manager
        .insert_with(
            Helper(tx.clone()),
            ChildOptions::new()
                .background(true)
                .grace_period(Duration::from_secs(1)),
        )
        .expect("accepted");
    manager
        .insert(process_fn("worker", move |ctx| {
            let tx = tx.clone();
            async move {
                ctx.shutdown_requested().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                tx.send("worker stops".to_owned()).expect("test listens");
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let result = run.await.expect("joined");
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(result.is_ok(), "a clean shutdown failed: {result:?}");
    assert_eq!(seen, ["worker stops", "helper stops (Some(Requested))"]);
    assert_eq!(asked.elapsed(), Duration::from_secs(3));
    assert!(
        matches!(helper.outcome(), Some(Outcome::Stopped)),
        "{:?}",
        helper.outcome()
    );
}

#[tokio::test(start_paused = true)]
async fn inserts_while_background_children_stop_are_refused_for_the_reason_the_manager_reports() {
    let manager = ProcessManager::new();
    // Slow to stop, so that the manager stays in its last phase a while.
    manager
        .insert_with(
            process_fn("helper", |ctx| async move {
                ctx.shutdown_requested().await;
                // Within its grace period (the default, 5 s).
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().background(true),
        )
        .expect("accepted");
    manager
        .insert(process_fn("job", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    // The job ended by itself at 1 s; the helper is being stopped until 5 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = handle
        .insert(IdleProcess)
        .expect_err("a manager stopping its background children takes no new child");
    let requested = handle.is_shutdown_requested();
    assert_eq!(
        refused.kind() == InsertErrorKind::ShuttingDown,
        requested,
        "insert refused as {:?} while is_shutdown_requested() is {requested}",
        refused.kind()
    );
    run.await.expect("joined").expect("clean end");
}
