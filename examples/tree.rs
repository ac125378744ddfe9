//! The tree view: a service with a nested manager, printed like `pstree`
//! while its children start, fail, restart and stop.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example tree
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use procmgr::{
    Backoff, BoxError, ChildOptions, IdleProcess, Jitter, ProcessManager, Restart, process_fn,
};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let consumers = ProcessManager::builder().name("consumers").build();
    consumers.insert_with(
        process_fn("kafka-0", |ctx| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if ctx.attempt() <= 2 {
                return Err("broker down");
            }
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            Ok(())
        })
        .reporting_ready(),
        ChildOptions::new().restart(Restart::OnFailure).backoff(
            Backoff::exponential(Duration::from_millis(400), Duration::from_secs(2))
                .jitter(Jitter::None),
        ),
    )?;
    consumers.insert(
        process_fn("kafka-1", |ctx| async move {
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        })
        .reporting_ready(),
    )?;

    let root = ProcessManager::builder().name("service").build();
    root.insert(
        process_fn("http", |ctx| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            // Draining takes a moment, so the view shows it stopping.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::io::Error>(())
        })
        .reporting_ready(),
    )?;
    root.insert(consumers)?;
    root.insert(IdleProcess)?;

    let handle = root.handle();
    println!("before the run:\n{}", handle.tree());
    let run = tokio::spawn(root.into_future());
    for step in 1..=6 {
        tokio::time::sleep(Duration::from_millis(350)).await;
        println!("after {} ms:\n{}", step * 350, handle.tree());
    }
    handle.request_shutdown()?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("shutting down:\n{}", handle.tree());
    run.await??;
    println!("stopped.");
    Ok(())
}
