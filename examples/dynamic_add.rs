//! Changing a running tree from another task: insert workers while the
//! manager runs, reload them, send one a message, stop one through its own
//! handle, then shut the whole tree down.
//!
//! The manager starts with only an [`IdleProcess`], which keeps it running
//! until children arrive. A controller task does everything else through a
//! clone of the manager's handle and the handles that `insert` returns, and
//! prints each step; the example ends on its own.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example dynamic_add
//! cargo run --example dynamic_add --features signal
//! ```
//!
//! With the `signal` feature a [`SignalReceiver`](procmgr::builtin::SignalReceiver)
//! runs in the tree too: Ctrl-C or `kill -TERM` stop it early, `kill -HUP`
//! reloads every worker.

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::time::Duration;

use procmgr::{
    BoxError, ChildHandle, Context, ControlMessage, IdleProcess, ManagerHandle, ProcessManager,
    process_fn,
};
use tokio::sync::mpsc;

/// A worker that reports what it is told until it is asked to stop.
async fn worker(mut ctx: Context, ready: mpsc::UnboundedSender<u64>) -> Result<(), Infallible> {
    ctx.mark_ready();
    // The controller waits on the receiving end; if it is gone, nobody needs
    // to know that this worker is ready, and the worker runs on regardless.
    let _ = ready.send(ctx.id());
    while let Some(message) = ctx.recv().await {
        match message {
            ControlMessage::Reload => println!("{}: reloading configuration", ctx.path()),
            ControlMessage::Custom(custom) => match custom.downcast::<String>() {
                Ok(text) => println!("{}: got message {text:?}", ctx.path()),
                Err(other) => println!("{}: ignoring {other:?}", ctx.path()),
            },
            ControlMessage::Shutdown => println!("{}: stopping gracefully", ctx.path()),
            _ => {}
        }
    }
    Ok(())
}

/// Lets the workers print their reaction before the controller prints its
/// next step; the example works the same without it, only less readably.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Drives the running tree through every step, from a task of its own.
async fn control(manager: ManagerHandle) -> Result<(), BoxError> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut workers: Vec<ChildHandle> = Vec::new();
    for n in 1..=3 {
        let ready = ready_tx.clone();
        let child = manager.insert(
            process_fn(format!("worker-{n}"), move |ctx| worker(ctx, ready.clone()))
                .reporting_ready(),
        )?;
        println!("controller: inserted {} (id {})", child.name(), child.id());
        workers.push(child);
    }
    drop(ready_tx);

    // Wait until every worker runs and has said it is ready, so the output
    // below reads in order.
    for _ in &workers {
        ready_rx
            .recv()
            .await
            .ok_or("a worker ended before it was ready")?;
    }
    let all_ready = workers.iter().all(ChildHandle::is_ready);
    println!("controller: all workers ready: {all_ready}");

    println!("controller: reloading the whole tree through the manager handle");
    manager.request_reload()?;
    pause().await;

    let first = &workers[0];
    println!(
        "controller: reloading {} through its own handle",
        first.name()
    );
    first.request_reload()?;
    pause().await;

    let second = &workers[1];
    println!("controller: sending {} a message", second.name());
    second.send(String::from("hello from the controller"))?;
    pause().await;

    let third = &workers[2];
    println!(
        "controller: stopping {} through its own handle",
        third.name()
    );
    let outcome = third.shutdown().await;
    println!("controller: {} ended: {outcome}", third.name());

    println!("controller: shutting down the whole tree");
    let outcome = manager.shutdown().await;
    println!("controller: manager {} ended: {outcome}", manager.name());

    match manager.insert(IdleProcess) {
        Err(refused) => {
            let reason = refused.to_string();
            let returned: IdleProcess = refused.into_inner();
            println!("controller: {reason}; the insert handed back {returned:?}");
        }
        Ok(_) => return Err("a stopped manager accepted an insert".into()),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let manager = ProcessManager::builder()
        .name("service")
        .child(IdleProcess)
        .build();
    #[cfg(feature = "signal")]
    manager.insert(procmgr::builtin::SignalReceiver::new(manager.handle()))?;
    // Handles are cheap clones that work from any task, before and while the
    // manager runs.
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let controller = tokio::spawn(control(handle));
    controller.await??;

    // The run's result: `Ok` here, or the first child failure with its path.
    run.await??;
    println!("dynamic_add: done");
    Ok(())
}
