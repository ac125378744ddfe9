//! Handles: cheap, shareable, aimed at one child or the whole subtree, and
//! well-behaved after the process has ended.

mod common;

use std::fmt::Debug;
use std::time::Duration;

use procmgr::{
    ChildHandle, ControlError, ControlMessage, IdleProcess, ManagerHandle, Outcome, ProcessManager,
    Runnable, process_fn,
};
use tokio::sync::mpsc;

use common::probed;

fn assert_handle<T: Clone + Send + Sync + Debug + 'static>() {}

#[test]
fn handles_are_clone_send_sync_and_debug() {
    assert_handle::<ChildHandle>();
    assert_handle::<ManagerHandle>();
    let manager = ProcessManager::builder().name("root").build();
    let child = manager.insert(IdleProcess).expect("accepted");
    assert!(format!("{child:?}").contains("idle"));
    assert!(format!("{:?}", manager.handle()).contains("root"));
}

/// Reports every control message it receives as `(name, message)`.
fn listener(
    name: &'static str,
    events: mpsc::UnboundedSender<(&'static str, String)>,
) -> impl Runnable {
    process_fn(name, move |mut ctx| {
        let events = events.clone();
        async move {
            ctx.mark_ready();
            events.send((name, "ready".into())).expect("test listens");
            while let Some(message) = ctx.recv().await {
                let text = match message {
                    ControlMessage::Shutdown => "shutdown".to_owned(),
                    ControlMessage::Reload => "reload".to_owned(),
                    ControlMessage::Custom(custom) => match custom.downcast::<u32>() {
                        Ok(n) => format!("custom {n}"),
                        Err(other) => format!("unexpected {other:?}"),
                    },
                    other => format!("unknown {other:?}"),
                };
                let stop = text == "shutdown";
                events.send((name, text)).expect("test listens");
                if stop {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        }
    })
    .reporting_ready()
}

#[tokio::test(start_paused = true)]
async fn a_child_handle_reaches_that_child_alone() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let a = manager.insert(listener("a", tx.clone())).expect("accepted");
    let b = manager.insert(listener("b", tx)).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let mut ready = [events.recv().await, events.recv().await];
    ready.sort();
    assert_eq!(
        ready,
        [Some(("a", "ready".into())), Some(("b", "ready".into()))]
    );
    assert!(a.is_ready() && b.is_ready());

    a.request_reload().expect("running");
    assert_eq!(events.recv().await, Some(("a", "reload".into())));
    a.send(7_u32).expect("running");
    assert_eq!(events.recv().await, Some(("a", "custom 7".into())));
    assert!(matches!(a.shutdown().await, Outcome::Stopped));
    assert_eq!(events.recv().await, Some(("a", "shutdown".into())));
    assert!(events.try_recv().is_err(), "b heard nothing");
    assert!(!b.is_finished());

    handle.request_reload().expect("running");
    assert_eq!(events.recv().await, Some(("b", "reload".into())));
    handle.shutdown().await;
    assert_eq!(events.recv().await, Some(("b", "shutdown".into())));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn controlling_an_ended_child_says_it_has_ended() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let child = manager
        .insert(process_fn("once", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    assert!(matches!(child.wait().await, Outcome::Completed));
    assert!(child.is_finished());
    assert_eq!(child.request_shutdown(), Err(ControlError::Ended));
    assert_eq!(child.request_reload(), Err(ControlError::Ended));
    assert_eq!(child.send("late").expect_err("ended").into_inner(), "late");
    assert!(matches!(child.shutdown().await, Outcome::Completed));
    assert_eq!(ControlError::Ended.to_string(), "process has already ended");

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert_eq!(handle.request_shutdown(), Err(ControlError::Ended));
    assert_eq!(handle.request_reload(), Err(ControlError::Ended));
    assert!(matches!(handle.shutdown().await, Outcome::Stopped));
}

#[tokio::test(start_paused = true)]
async fn many_tasks_can_wait_for_one_child() {
    let manager = ProcessManager::new();
    let child = manager.insert(IdleProcess).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let child = child.clone();
            tokio::spawn(async move { child.wait().await })
        })
        .collect();
    tokio::task::yield_now().await;
    child.request_shutdown().expect("running");
    for waiter in waiters {
        assert!(matches!(waiter.await.expect("joined"), Outcome::Stopped));
    }
    // The manager ends with its last child.
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(handle.outcome(), Some(Outcome::Completed)));
}

#[tokio::test(start_paused = true)]
async fn the_context_knows_id_name_path_and_token() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    let child = manager
        .insert(process_fn("worker", move |ctx| {
            let tx = tx.clone();
            async move {
                tx.send((ctx.id(), ctx.name().to_owned(), ctx.path()))
                    .expect("test listens");
                let token = ctx.token();
                token.cancelled().await;
                assert!(ctx.is_shutdown_requested());
                let late = ctx.run_until_shutdown(std::future::pending::<()>()).await;
                assert!(late.is_none());
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let (id, name, path) = rx.recv().await.expect("started");
    assert_eq!(
        (id, name.as_str(), path.as_str()),
        (child.id(), "worker", "root/worker")
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn run_until_shutdown_returns_the_output_of_a_future_that_finishes_first() {
    let (tx, mut outputs) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager
        .insert(process_fn("worker", move |ctx| {
            let tx = tx.clone();
            async move {
                let output = ctx
                    .run_until_shutdown(async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        7
                    })
                    .await;
                tx.send(output).expect("test listens");
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert_eq!(outputs.recv().await, Some(Some(7)));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn is_shutdown_requested_is_false_while_the_child_runs_and_true_after_a_stop_request() {
    let (worker, mut probe) = probed("worker", |ctx| ctx.is_shutdown_requested());
    let manager = ProcessManager::new();
    let child = manager.insert(worker).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    assert!(!probe.ask().await, "running and not asked to stop");
    child.request_shutdown().expect("running");
    assert!(probe.ask().await, "asked to stop");
    drop(probe);
    assert!(matches!(child.wait().await, Outcome::Stopped));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_contexts_debug_output_shows_its_path_and_whether_it_was_asked_to_stop() {
    let (worker, mut probe) = probed("worker", |ctx| format!("{ctx:?}"));
    let manager = ProcessManager::builder().name("root").build();
    let child = manager.insert(worker).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    let shown = probe.ask().await;
    assert!(shown.contains("root/worker"), "{shown}");
    assert!(shown.contains("shutdown_requested: false"), "{shown}");
    drop(probe);
    child.wait().await;
    run.await.expect("joined").expect("clean end");
}

#[tokio::test(start_paused = true)]
async fn each_context_knows_the_id_of_its_own_child() {
    let manager = ProcessManager::new();
    manager.insert(IdleProcess).expect("accepted");
    let (worker, mut probe) = probed("worker", |ctx| ctx.id());
    let child = manager.insert(worker).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert_ne!(child.id(), 0, "the second child has an id of its own");
    assert_eq!(probe.ask().await, child.id());
    drop(probe);
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_child_token_stops_nothing_but_a_stop_reaches_it() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("server", move |ctx| {
            let tx = std::sync::Arc::clone(&tx);
            async move {
                let given = ctx.child_token();
                given.cancel();
                let later = ctx.child_token();
                let still_running = !ctx.is_shutdown_requested();
                ctx.shutdown_requested().await;
                if let Some(tx) = tx.lock().expect("lock").take() {
                    let _ = tx.send((still_running, later.is_cancelled()));
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !child.is_finished(),
        "a cancelled child token stopped the child"
    );
    child.shutdown().await;
    let (still_running, later_cancelled) = rx.await.expect("reported");
    assert!(still_running);
    assert!(later_cancelled, "a stop reaches every child token");
    run.await.expect("joined").expect("clean stop");
}

/// A process has no token until it asks for one. A wait for shutdown that
/// began before the process made its token ends when the process cancels
/// that token: making the token wakes the wait, which then waits for the
/// token too.
#[tokio::test(start_paused = true)]
async fn a_token_made_while_shutdown_is_awaited_ends_the_wait_when_cancelled() {
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("cancels-itself", |ctx| async move {
            let waiting = ctx.shutdown_requested();
            tokio::pin!(waiting);
            assert!(futures::FutureExt::now_or_never(waiting.as_mut()).is_none());
            let token = ctx.token();
            assert!(futures::FutureExt::now_or_never(waiting.as_mut()).is_none());
            token.cancel();
            waiting.await;
            assert!(ctx.is_shutdown_requested());
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    let outcome = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the wait ended with the token");
    assert!(matches!(outcome, Outcome::Stopped), "{outcome:?}");
    run.await.expect("joined").expect("clean stop");
}

/// A token made after the stop was asked for is cancelled already, and so
/// is a child token of it.
#[tokio::test(start_paused = true)]
async fn a_token_made_after_the_stop_is_cancelled_already() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let manager = ProcessManager::new();
    let handle = manager.handle();
    manager
        .insert(process_fn("late", move |ctx| {
            let tx = tx.lock().expect("lock").take();
            async move {
                ctx.shutdown_requested().await;
                let (token, child) = (ctx.token(), ctx.child_token());
                if let Some(tx) = tx {
                    let _ = tx.send((token.is_cancelled(), child.is_cancelled()));
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    handle.shutdown().await;
    assert_eq!(rx.await.expect("reported"), (true, true));
    run.await.expect("joined").expect("clean stop");
}
