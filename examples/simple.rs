//! Two workers under one manager, stopped gracefully on Ctrl-C or after about
//! three seconds.
//!
//! Each worker is a small struct implementing [`Runnable`]: it ticks every
//! 500 ms, prints a line when it is asked to reload, and returns `Ok` when it
//! is asked to stop. A third child, the stopper, asks the whole tree to
//! reload halfway through and to shut down at the end (or as soon as you
//! press Ctrl-C), through a clone of the manager's handle.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example simple
//! ```

#![allow(clippy::print_stdout)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::time::Duration;

use procmgr::{
    BoxError, Context, ControlMessage, ManagerHandle, ProcessControlHandler, ProcessManager,
    Runnable, process_fn,
};
use tokio::time::{Instant, sleep, sleep_until};

/// How long the example runs unless Ctrl-C stops it earlier.
const RUN_FOR: Duration = Duration::from_secs(3);

struct Worker {
    name: &'static str,
}

impl Runnable for Worker {
    type Error = Infallible;

    async fn run(&self, mut ctx: Context) -> Result<(), Infallible> {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        let mut ticks = 0_u64;
        ctx.mark_ready();
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    ticks += 1;
                    println!("{}: tick {ticks}", ctx.name());
                }
                message = ctx.recv() => match message {
                    Some(ControlMessage::Reload) => {
                        println!("{}: reloading configuration", ctx.name());
                    }
                    Some(ControlMessage::Shutdown) | None => break,
                    Some(_) => {}
                },
            }
        }
        println!("{}: stopping gracefully after {ticks} ticks", ctx.name());
        Ok(())
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
}

/// Reloads the tree halfway through and shuts it down after [`RUN_FOR`] or on
/// Ctrl-C, whichever comes first.
async fn stopper(ctx: Context, manager: ManagerHandle) -> Result<(), BoxError> {
    let started = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let reload_at = sleep(RUN_FOR / 2);
    tokio::pin!(reload_at);
    let mut reloaded = false;
    loop {
        tokio::select! {
            signal = &mut ctrl_c => {
                // Failing to listen for Ctrl-C fails this child, which stops
                // the tree and makes `main` return the error.
                signal?;
                println!("{}: Ctrl-C received", ctx.name());
                break;
            }
            () = &mut reload_at, if !reloaded => {
                reloaded = true;
                println!("{}: asking every process to reload", ctx.name());
                manager.request_reload()?;
            }
            () = sleep_until(started + RUN_FOR) => {
                println!("{}: {RUN_FOR:?} have passed", ctx.name());
                break;
            }
            // The tree is already stopping, for example because a worker
            // failed: there is nothing left to do.
            () = ctx.shutdown_requested() => return Ok(()),
        }
    }
    println!("{}: asking the tree to shut down", ctx.name());
    // Err means the manager has already ended, which this running child of
    // it rules out; if it happened anyway, failing loudly is right.
    manager.request_shutdown()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let manager = ProcessManager::builder().name("simple").build();
    manager.insert(Worker { name: "worker-1" })?;
    manager.insert(Worker { name: "worker-2" })?;
    let handle = manager.handle();
    manager.insert(process_fn("stopper", move |ctx| {
        stopper(ctx, handle.clone())
    }))?;

    // Runs until every child has ended; the first child failure, if any,
    // comes back as the error with the child's path.
    manager.await?;
    println!("simple: every process has stopped");
    Ok(())
}
