//! Two workers under one manager, stopped gracefully on Ctrl-C or after about
//! three seconds.
//!
//! Each worker is a small struct implementing [`Runnable`]: it ticks every
//! 500 ms, prints a line when it is asked to reload, and returns `Ok` when it
//! is asked to stop. A third child, the stopper, shuts the tree down through a
//! clone of the manager's handle when the time is up.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example simple
//! cargo run --example simple --features signal   # SIGTERM, SIGHUP, Ctrl-C twice
//! ```
//!
//! With the `signal` feature a [`SignalReceiver`](procmgr::builtin::SignalReceiver)
//! handles the signals: Ctrl-C or `kill -TERM` stop the tree gracefully,
//! `kill -HUP` reloads it, and a second Ctrl-C aborts what is still running.
//! Without it, the stopper listens for Ctrl-C itself.
//!
//! Options: `--run-for SECONDS` (default 3), and `--stubborn`, which makes
//! `worker-2` ignore shutdown so that a second Ctrl-C has something to force.
//!
//! It ends like a service's `main` should: exit status 0 after a graceful
//! stop, and on a failure a report on standard error with status 1, or 3
//! when a second signal forced the shutdown.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use procmgr::{
    BoxError, Context, ControlMessage, ManagerHandle, ProcessManager, Runnable, process_fn,
};

struct Worker {
    name: &'static str,
    stubborn: bool,
}

impl Runnable for Worker {
    type Error = Infallible;

    async fn run(&self, mut ctx: Context) -> Result<(), Infallible> {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        let mut ticks = 0_u64;
        ctx.mark_ready();
        println!("{}: ready", ctx.name());
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
                    Some(ControlMessage::Shutdown) if self.stubborn => {
                        println!("{}: ignoring the request to stop", ctx.name());
                    }
                    Some(ControlMessage::Shutdown) => break,
                    // After shutdown, `recv` returns `None` at once; a
                    // stubborn worker just keeps ticking.
                    None if self.stubborn => std::future::pending::<()>().await,
                    None => break,
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

    /// It calls `mark_ready`, so its manager waits for it to be ready.
    fn reports_ready(&self) -> bool {
        true
    }
}

/// Shuts the tree down after `run_for`, or on Ctrl-C when no signal receiver
/// does that.
async fn stopper(ctx: Context, manager: ManagerHandle, run_for: Duration) -> Result<(), BoxError> {
    tokio::select! {
        signal = ctrl_c() => {
            // Failing to listen for Ctrl-C fails this child, which stops the
            // tree and makes `main` return the error.
            signal?;
            println!("{}: Ctrl-C received", ctx.name());
        }
        () = tokio::time::sleep(run_for) => println!("{}: {run_for:?} have passed", ctx.name()),
        // The tree is already stopping (a signal, a failed worker): nothing
        // left to do.
        () = ctx.shutdown_requested() => return Ok(()),
    }
    println!("{}: asking the tree to shut down", ctx.name());
    // Err means the manager has already ended, which this running child of
    // it rules out; if it happened anyway, failing loudly is right.
    manager.request_shutdown()?;
    Ok(())
}

#[cfg(not(feature = "signal"))]
async fn ctrl_c() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

#[cfg(feature = "signal")]
async fn ctrl_c() -> std::io::Result<()> {
    // The signal receiver handles Ctrl-C.
    std::future::pending().await
}

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let mut run_for = Duration::from_secs(3);
    let mut stubborn = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stubborn" => stubborn = true,
            "--run-for" => {
                let seconds: u64 = args.next().ok_or("--run-for needs a number")?.parse()?;
                run_for = Duration::from_secs(seconds);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let manager = ProcessManager::builder().name("simple").build();
    #[cfg(feature = "signal")]
    {
        manager.insert(procmgr::builtin::SignalReceiver::new(manager.handle()))?;
        // The receiver is ready once its handlers are installed: only then
        // does a signal stop the tree instead of killing the process.
        let handle = manager.handle();
        tokio::spawn(async move {
            handle.ready().await;
            println!(
                "simple: signals handled by procmgr (pid {})",
                std::process::id()
            );
        });
    }
    manager.insert(Worker {
        name: "worker-1",
        stubborn: false,
    })?;
    manager.insert(Worker {
        name: "worker-2",
        stubborn,
    })?;
    let handle = manager.handle();
    manager.insert(process_fn("stopper", move |ctx| {
        stopper(ctx, handle.clone(), run_for)
    }))?;

    // Runs until every child has ended. A failure prints as a report (the
    // child's path, its error and causes, later failures) and sets the exit
    // status: 1 for a failed child, 3 for a forced shutdown.
    let exit = match manager.await {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("Error: {error:?}");
            return Ok(error.exit_code());
        }
    };
    match exit.shutdown_reason() {
        Some(reason) => println!("simple: every process has stopped ({reason})"),
        None => println!("simple: every process has stopped"),
    }
    Ok(ExitCode::SUCCESS)
}
