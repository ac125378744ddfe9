//! Reloads and custom messages never block the sender, coalesce for a busy
//! child, and are never missed.

mod common;

use procmgr::{ChildHandle, Context, ControlMessage, Outcome, ProcessManager, process_fn};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use common::{Probe, probed};

#[tokio::test(start_paused = true)]
async fn reloads_to_a_busy_child_coalesce_but_are_never_missed() {
    let (busy_tx, busy) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let pair = std::sync::Mutex::new(Some((busy_tx, released)));
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("busy", move |mut ctx| {
            let pair = pair.lock().expect("lock").take();
            let tx = tx.clone();
            async move {
                let (busy_tx, released) = pair.expect("runs once");
                busy_tx.send(()).expect("test waits");
                // Busy: not looking at its context until released.
                released.await.expect("test releases");
                while let Some(message) = ctx.recv().await {
                    let stop = matches!(message, ControlMessage::Shutdown);
                    tx.send(format!("{message:?}")).expect("test listens");
                    if stop {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    busy.await.expect("child started");

    for _ in 0..10_000 {
        child.request_reload().expect("never blocks, never fails");
    }
    release.send(()).expect("child waits");
    assert_eq!(seen.recv().await.as_deref(), Some("Reload"));
    // One more after it last looked is seen again.
    child.request_reload().expect("running");
    assert_eq!(seen.recv().await.as_deref(), Some("Reload"));

    handle.shutdown().await;
    assert_eq!(seen.recv().await.as_deref(), Some("Shutdown"));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn custom_messages_queue_in_order_without_blocking() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let (ready_tx, ready) = oneshot::channel::<()>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let child = manager
        .insert(process_fn("reader", move |mut ctx| {
            let tx = tx.clone();
            let ready_tx = ready_tx.lock().expect("lock").take();
            async move {
                ready_tx.expect("runs once").send(()).expect("test waits");
                let mut sum = 0_u64;
                let mut count = 0_u64;
                while let Some(message) = ctx.recv().await {
                    match message {
                        ControlMessage::Custom(custom) => {
                            sum += custom.downcast::<u64>().expect("u64 only");
                            count += 1;
                            if count == 100_000 {
                                tx.send(sum).expect("test listens");
                            }
                        }
                        ControlMessage::Shutdown => break,
                        _ => {}
                    }
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    ready.await.expect("started");
    for n in 0..100_000_u64 {
        child.send(n).expect("never blocks");
    }
    assert_eq!(seen.recv().await, Some((0..100_000).sum()));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn after_shutdown_recv_drains_what_is_queued_then_ends() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (go_tx, go) = oneshot::channel::<()>();
    let go = std::sync::Mutex::new(Some(go));
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("drainer", move |mut ctx| {
            let tx = tx.clone();
            let go = go.lock().expect("lock").take();
            async move {
                go.expect("runs once").await.expect("test starts us");
                let mut log = Vec::new();
                while let Some(message) = ctx.recv().await {
                    log.push(format!("{message:?}"));
                }
                tx.send(log).expect("test listens");
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    child.send(1_u8).expect("running");
    child.request_reload().expect("running");
    child.request_shutdown().expect("running");
    go_tx.send(()).expect("child waits");
    let log = seen.recv().await.expect("child reports");
    assert_eq!(log.len(), 3);
    assert_eq!(log[0], "Shutdown");
    assert_eq!(log[1], "Reload");
    assert!(log[2].starts_with("Custom"));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn reload_reaches_every_child_of_a_nested_manager() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let reporter = |name: &'static str| {
        let tx = tx.clone();
        let ready_tx = ready_tx.clone();
        process_fn(name, move |mut ctx| {
            let tx = tx.clone();
            let ready_tx = ready_tx.clone();
            async move {
                ready_tx.send(()).expect("test listens");
                while let Some(message) = ctx.recv().await {
                    match message {
                        ControlMessage::Reload => tx.send(ctx.path()).expect("test listens"),
                        ControlMessage::Shutdown => break,
                        _ => {}
                    }
                }
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let nested = ProcessManager::builder().name("inner").build();
    nested.insert(reporter("deep")).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(reporter("top")).expect("accepted");
    let inner = root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    ready.recv().await.expect("one ready");
    ready.recv().await.expect("two ready");

    handle.request_reload().expect("running");
    let mut paths = vec![
        seen.recv().await.expect("reloaded"),
        seen.recv().await.expect("reloaded"),
    ];
    paths.sort();
    assert_eq!(paths, ["root/inner/deep", "root/top"]);

    // Through the parent's handle for the nested manager: its subtree only.
    inner.request_reload().expect("running");
    assert_eq!(seen.recv().await.as_deref(), Some("root/inner/deep"));
    assert!(seen.try_recv().is_err());

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_reload_before_the_child_first_looks_is_delivered() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("late-reader", move |mut ctx| {
            let tx = tx.clone();
            async move {
                let first = ctx.recv().await;
                tx.send(format!("{first:?}")).expect("test listens");
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    // Before the manager even runs.
    child.request_reload().expect("not ended");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    assert_eq!(seen.recv().await.as_deref(), Some("Some(Reload)"));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

/// What `try_recv` hands out now, until it returns `None` (at most ten, so
/// that a `try_recv` that never runs dry fails the test instead of hanging
/// it).
fn drain(ctx: &mut Context) -> Vec<String> {
    std::iter::from_fn(|| ctx.try_recv())
        .take(10)
        .map(|message| match message {
            ControlMessage::Custom(custom) => match custom.downcast::<u32>() {
                Ok(n) => format!("custom {n}"),
                Err(other) => format!("unexpected {other:?}"),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

type Drained = (
    ChildHandle,
    Probe<Vec<String>>,
    JoinHandle<Result<procmgr::Exit, procmgr::RunError>>,
);

/// A running manager whose one child drains its inbox with `try_recv`
/// whenever the test asks.
fn run_a_drainer() -> Drained {
    let (drainer, probe) = probed("drainer", drain);
    let manager = ProcessManager::new();
    let child = manager.insert(drainer).expect("accepted");
    (child, probe, tokio::spawn(manager.into_future()))
}

#[tokio::test(start_paused = true)]
async fn try_recv_returns_none_when_no_message_waits() {
    let (child, mut probe, run) = run_a_drainer();
    assert!(probe.ask().await.is_empty());
    drop(probe);
    assert!(matches!(child.wait().await, Outcome::Completed));
    run.await.expect("joined").expect("clean end");
}

#[tokio::test(start_paused = true)]
async fn try_recv_returns_a_reload_then_custom_messages_in_order() {
    let (child, mut probe, run) = run_a_drainer();
    child.send(1_u32).expect("running");
    child.send(2_u32).expect("running");
    child.request_reload().expect("running");
    child.request_reload().expect("running");
    assert_eq!(probe.ask().await, ["Reload", "custom 1", "custom 2"]);
    assert!(probe.ask().await.is_empty(), "each was handed out once");
    child.send(3_u32).expect("running");
    assert_eq!(probe.ask().await, ["custom 3"]);
    drop(probe);
    child.wait().await;
    run.await.expect("joined").expect("clean end");
}

#[tokio::test(start_paused = true)]
async fn try_recv_returns_shutdown_first_and_only_once() {
    let (child, mut probe, run) = run_a_drainer();
    child.send(3_u32).expect("running");
    child.request_reload().expect("running");
    child.request_shutdown().expect("running");
    assert_eq!(probe.ask().await, ["Shutdown", "Reload", "custom 3"]);
    assert!(probe.ask().await.is_empty(), "shutdown was handed out once");
    drop(probe);
    assert!(matches!(child.wait().await, Outcome::Stopped));
    run.await.expect("joined").expect("clean stop");
}

/// Takes a message whenever the test says so, and tells what it took.
fn takes_when_told(
    name: &'static str,
) -> (
    impl procmgr::Runnable,
    mpsc::UnboundedSender<()>,
    mpsc::UnboundedReceiver<Option<bool>>,
) {
    let (poke, pokes) = mpsc::unbounded_channel::<()>();
    let (tx, took) = mpsc::unbounded_channel();
    let pokes = std::sync::Mutex::new(Some(pokes));
    let runnable = process_fn(name, move |mut ctx| {
        let mut pokes = pokes.lock().expect("lock").take();
        let tx = tx.clone();
        async move {
            let Some(pokes) = pokes.as_mut() else {
                ctx.shutdown_requested().await;
                return Ok::<_, std::io::Error>(());
            };
            // A first look, so that reloads wait for this child.
            let _ = tx.send(ctx.try_recv().map(|m| matches!(m, ControlMessage::Reload)));
            while pokes.recv().await.is_some() {
                let message = ctx.try_recv();
                let _ = tx.send(message.map(|m| matches!(m, ControlMessage::Reload)));
                if ctx.is_shutdown_requested() {
                    break;
                }
            }
            Ok(())
        }
    });
    (runnable, poke, took)
}

#[tokio::test(start_paused = true)]
async fn a_reload_is_taken_once_every_child_of_the_tree_has_taken_it() {
    let (outer_child, poke_outer, mut outer_took) = takes_when_told("outer");
    let (inner_child, poke_inner, mut inner_took) = takes_when_told("inner");
    let nested = ProcessManager::builder().name("nested").build();
    nested.insert(inner_child).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(nested).expect("accepted");
    root.insert(outer_child).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    assert_eq!(outer_took.recv().await, Some(None));
    assert_eq!(inner_took.recv().await, Some(None));
    assert!(!handle.is_reloading());

    handle.request_reload().expect("running");
    assert!(handle.is_reloading());
    let mut reloaded = Box::pin(handle.reloaded());
    assert!(futures::FutureExt::now_or_never(reloaded.as_mut()).is_none());

    poke_outer.send(()).expect("listens");
    assert_eq!(outer_took.recv().await, Some(Some(true)));
    // The nested manager has passed the reload on; its child has not taken
    // it yet.
    tokio::task::yield_now().await;
    assert!(handle.is_reloading());
    assert!(futures::FutureExt::now_or_never(reloaded.as_mut()).is_none());

    poke_inner.send(()).expect("listens");
    assert_eq!(inner_took.recv().await, Some(Some(true)));
    reloaded.await;
    assert!(!handle.is_reloading());

    handle.request_shutdown().expect("running");
    let _ = poke_outer.send(());
    let _ = poke_inner.send(());
    run.await.expect("joined").expect("graceful");
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ends_or_restarts_no_longer_holds_a_reload() {
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    // Each looks at its messages once, then never again.
    let deaf = manager
        .insert(process_fn("deaf", |mut ctx| async move {
            let _ = ctx.try_recv();
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    // Its first attempt fails after a second.
    let flaky = manager
        .insert_with(
            process_fn("flaky", |mut ctx| async move {
                let _ = ctx.try_recv();
                if ctx.attempt() == 1 {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return Err(std::io::Error::other("broke"));
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            procmgr::ChildOptions::new().restart(procmgr::Restart::OnFailure),
        )
        .expect("accepted");
    manager.insert(procmgr::IdleProcess).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    handle.request_reload().expect("running");
    assert!(handle.is_reloading());
    deaf.shutdown().await;
    assert!(handle.is_reloading(), "the flaky child still has it");
    // Its next attempt starts from fresh configuration.
    handle.reloaded().await;
    assert_eq!(
        handle.child("flaky").map(|child| child.is_finished()),
        Some(false)
    );
    assert_eq!(handle.snapshot()[0].restarts(), 1);
    let _ = flaky;
    handle.shutdown().await;
    run.await.expect("joined").expect("graceful");
}
