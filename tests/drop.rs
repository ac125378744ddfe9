//! No orphans: dropping a running manager, or aborting its task, aborts every
//! child it owns, nested managers' children included.

use procmgr::{Outcome, ProcessManager, Runnable, process_fn};
use tokio::sync::{mpsc, oneshot};

/// A child that says when it started, and whose future, once dropped, closes
/// `dropped`.
fn watched(
    name: &'static str,
    started: mpsc::UnboundedSender<&'static str>,
) -> (impl Runnable, oneshot::Receiver<()>) {
    let (guard, dropped) = oneshot::channel::<()>();
    let guard = std::sync::Mutex::new(Some(guard));
    let runnable = process_fn(name, move |_ctx| {
        let guard = guard.lock().expect("lock").take();
        let started = started.clone();
        async move {
            let _guard = guard;
            started.send(name).expect("test is listening");
            // Ignores shutdown: only an abort ends it.
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }
    });
    (runnable, dropped)
}

async fn assert_dropped(dropped: oneshot::Receiver<()>) {
    // The sender is never used, so the receiver ends only when the child's
    // future, which owns the sender, is dropped.
    assert!(dropped.await.is_err());
}

#[tokio::test(start_paused = true)]
async fn aborting_the_task_that_runs_a_manager_aborts_the_whole_tree() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let (top, top_dropped) = watched("top", started.clone());
    let (deep, deep_dropped) = watched("deep", started);

    let nested = ProcessManager::builder().name("nested").build();
    let deep_handle = nested.insert(deep).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let top_handle = root.insert(top).expect("accepted");
    let nested_handle = root.insert(nested).expect("accepted");
    let root_handle = root.handle();

    let run = tokio::spawn(root.into_future());
    starts.recv().await.expect("one started");
    starts.recv().await.expect("both started");

    run.abort();
    assert!(run.await.expect_err("aborted").is_cancelled());
    assert_dropped(top_dropped).await;
    assert_dropped(deep_dropped).await;

    for outcome in [
        top_handle.wait().await,
        nested_handle.wait().await,
        deep_handle.wait().await,
        root_handle.wait().await,
    ] {
        assert!(matches!(outcome, Outcome::Aborted), "{outcome:?}");
    }
    assert!(top_handle.request_shutdown().is_err());
    assert!(root_handle.insert(procmgr::IdleProcess).is_err());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_running_manager_future_aborts_its_children() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let (child, dropped) = watched("child", started);
    let manager = ProcessManager::new();
    let handle = manager.insert(child).expect("accepted");

    let mut run = manager.into_future();
    tokio::select! {
        _ = &mut run => panic!("the manager does not end by itself"),
        name = starts.recv() => assert_eq!(name, Some("child")),
    }
    drop(run);
    assert_dropped(dropped).await;
    assert!(matches!(handle.wait().await, Outcome::Aborted));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_manager_that_never_ran_releases_its_children() {
    let (started, _starts) = mpsc::unbounded_channel();
    let (child, dropped) = watched("child", started);
    let manager = ProcessManager::new();
    let handle = manager.insert(child).expect("accepted");
    let manager_handle = manager.handle();
    drop(manager);
    assert_dropped(dropped).await;
    assert!(matches!(handle.wait().await, Outcome::Aborted));
    assert!(manager_handle.is_finished());
    assert!(manager_handle.insert(procmgr::IdleProcess).is_err());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_nested_run_while_its_manager_lives_on_aborts_its_children() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let (child, dropped) = watched("child", started);
    let inner = std::sync::Arc::new(ProcessManager::builder().name("inner").build());
    let inner_child = inner.insert(child).expect("accepted");
    let inner_handle = inner.handle();
    // A process that runs a manager it owns for a while, then lets go of
    // the run but keeps the manager.
    let kept = std::sync::Arc::clone(&inner);
    let wrapper = process_fn("wrapper", move |ctx| {
        let inner = std::sync::Arc::clone(&kept);
        async move {
            tokio::select! {
                result = inner.run(ctx) => panic!("the inner run ended: {result:?}"),
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            Ok::<_, std::io::Error>(())
        }
    });
    let root = ProcessManager::new();
    let wrapper = root.insert(wrapper).expect("accepted");
    let run = tokio::spawn(root.into_future());
    assert_eq!(starts.recv().await, Some("child"));

    assert!(matches!(wrapper.wait().await, Outcome::Completed));
    assert_dropped(dropped).await;
    assert!(matches!(inner_child.outcome(), Some(Outcome::Aborted)));
    assert!(inner_handle.is_finished());
    assert!(inner_handle.insert(procmgr::IdleProcess).is_err());
    // Its only child has completed: the root ends.
    run.await.expect("joined").expect("no child failed");
}
