//! Supervision: a flaky worker restarted with backoff, a worker that fails so
//! often that it hits its restart limit and is let go, and an ordered stop.
//!
//! - `flaky` fails on its first three attempts and is restarted after 100,
//!   200 and 400 ms (exponential backoff, no jitter so the output is stable),
//!   then runs fine.
//! - `doomed` fails every time; after 2 restarts within 10 seconds it exceeds
//!   its restart limit. It is marked `escalate(false)`, so it is let go and
//!   its siblings carry on.
//! - After two seconds the tree shuts down: children stop one by one, in
//!   reverse start order (`ordered_stop`), each saying so.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example restart
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use procmgr::{
    Backoff, BoxError, ChildOptions, Jitter, ProcessManager, Restart, RestartLimit, process_fn,
};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let manager = ProcessManager::builder()
        .name("restart")
        .ordered_stop(true)
        .build();

    manager.insert(process_fn("database", move |ctx| async move {
        println!(
            "{:>5} ms  {}: up",
            started.elapsed().as_millis(),
            ctx.path()
        );
        ctx.shutdown_requested().await;
        println!(
            "{:>5} ms  {}: closing connections",
            started.elapsed().as_millis(),
            ctx.path()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(())
    }))?;

    manager.insert_with(
        process_fn("flaky", move |ctx| async move {
            let at = started.elapsed().as_millis();
            if ctx.attempt() <= 3 {
                println!(
                    "{at:>5} ms  {}: attempt {} fails",
                    ctx.path(),
                    ctx.attempt()
                );
                return Err(format!("attempt {} failed", ctx.attempt()));
            }
            println!("{at:>5} ms  {}: attempt {} runs", ctx.path(), ctx.attempt());
            ctx.shutdown_requested().await;
            println!(
                "{:>5} ms  {}: stopping",
                started.elapsed().as_millis(),
                ctx.path()
            );
            Ok(())
        }),
        ChildOptions::new().restart(Restart::OnFailure).backoff(
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5))
                .jitter(Jitter::None),
        ),
    )?;

    let doomed = manager.insert_with(
        process_fn("doomed", move |ctx| async move {
            println!(
                "{:>5} ms  {}: attempt {} fails",
                started.elapsed().as_millis(),
                ctx.path(),
                ctx.attempt()
            );
            Err::<(), _>("always broken")
        }),
        ChildOptions::new()
            .restart(Restart::OnFailure)
            .backoff(Backoff::exponential(
                Duration::from_millis(50),
                Duration::from_secs(1),
            ))
            .restart_limit(RestartLimit::new(2, Duration::from_secs(10)))
            .escalate(false),
    )?;

    manager.insert(process_fn("http", move |ctx| async move {
        println!(
            "{:>5} ms  {}: serving",
            started.elapsed().as_millis(),
            ctx.path()
        );
        ctx.shutdown_requested().await;
        println!(
            "{:>5} ms  {}: draining requests",
            started.elapsed().as_millis(),
            ctx.path()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(())
    }))?;

    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let outcome = doomed.wait().await;
    println!(
        "{:>5} ms  doomed gave up after {} restarts: {outcome}",
        started.elapsed().as_millis(),
        doomed.restarts()
    );

    tokio::time::sleep_until(started + Duration::from_secs(2)).await;
    println!(
        "{:>5} ms  shutting down, newest first",
        started.elapsed().as_millis()
    );
    handle.request_shutdown()?;
    let exit = run.await??;
    println!(
        "{:>5} ms  stopped: {}",
        started.elapsed().as_millis(),
        exit.shutdown_reason()
            .map_or("no reason".into(), |r| r.to_string())
    );
    Ok(())
}
