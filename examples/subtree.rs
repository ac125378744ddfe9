//! A restartable subtree: a manager of consumers, nested in the service's
//! root manager, fails when one consumer loses its connection, and the root
//! restarts it with its consumers, as Erlang/OTP restarts a supervisor.
//!
//! - `consumers` is built with two consumers, `orders` and `payments`; it is
//!   inserted into the root with `Restart::OnFailure`.
//! - `payments` fails on its first run. Its failure ends `consumers` (the
//!   first failure stops a tree), and the root restarts `consumers` 200 ms
//!   later: both consumers start again, once each.
//! - An `audit` consumer inserted while `consumers` ran is not part of what
//!   it was built with, so it is not started again.
//! - The handles taken before the restart keep working: the example stops
//!   `orders` through the handle it got at the insert, and looks `payments`
//!   up by path, in the new run.
//! - A crash loop: `jobs` allows 2 restarts among its children within 10 s
//!   (`ProcessManagerBuilder::restart_limit`, OTP's intensity and period).
//!   Its `crashy` child fails every 50 ms; the third restart would exceed
//!   the limit, so `jobs` stops and fails, and its parent's policy decides
//!   (here `escalate(false)`: the service lets it go and carries on).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example subtree
//! ```

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use procmgr::{
    Backoff, BoxError, ChildOptions, Jitter, Outcome, ProcessManager, Restart, RestartLimit,
    process_fn_with,
};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let log = move |path: &str, what: &str| {
        println!("{:>5} ms  {path}: {what}", started.elapsed().as_millis());
    };
    static PAYMENTS_FAILED: AtomicBool = AtomicBool::new(false);

    let consumers = ProcessManager::builder().name("consumers").build();
    let orders = consumers.insert(process_fn_with("orders", log, |log, ctx| async move {
        log(&ctx.path(), "consuming");
        ctx.shutdown_requested().await;
        log(&ctx.path(), "stopped");
        Ok(())
    }))?;
    consumers.insert(process_fn_with("payments", log, |log, ctx| async move {
        if !PAYMENTS_FAILED.swap(true, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            log(&ctx.path(), "lost the connection");
            return Err("connection reset".into());
        }
        log(&ctx.path(), "consuming again");
        ctx.shutdown_requested().await;
        log(&ctx.path(), "stopped");
        Ok(())
    }))?;
    let consumers_handle = consumers.handle();

    let root = ProcessManager::builder().name("service").build();
    let subtree = root.insert_with(
        consumers,
        ChildOptions::new().restart(Restart::OnFailure).backoff(
            Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5))
                .jitter(Jitter::None),
        ),
    )?;

    let jobs = ProcessManager::builder()
        .name("jobs")
        .restart_limit(RestartLimit::new(2, Duration::from_secs(10)))
        .build();
    jobs.insert_with(
        process_fn_with("crashy", log, |log, ctx| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            log(&ctx.path(), &format!("attempt {} crashes", ctx.attempt()));
            Err("crashed".into())
        }),
        ChildOptions::new().restart(Restart::Always).backoff(
            Backoff::exponential(Duration::from_millis(50), Duration::from_millis(50))
                .jitter(Jitter::None),
        ),
    )?;
    let jobs = root.insert_with(jobs, ChildOptions::new().escalate(false))?;

    let root_handle = root.handle();
    let run = tokio::spawn(root.into_future());

    tokio::time::sleep(Duration::from_millis(100)).await;
    consumers_handle.insert(process_fn_with("audit", log, |log, ctx| async move {
        log(&ctx.path(), "consuming (inserted at run time)");
        ctx.shutdown_requested().await;
        log(&ctx.path(), "stopped");
        Ok(())
    }))?;

    if let Outcome::Failed(error) = jobs.wait().await {
        println!(
            "{:>5} ms  jobs gave up: {error}",
            started.elapsed().as_millis()
        );
    }

    // `payments` fails at 300 ms; the subtree is back at about 500 ms.
    tokio::time::sleep_until(started + Duration::from_millis(700)).await;
    println!(
        "{:>5} ms  consumers restarted {} time(s); audit is {}",
        started.elapsed().as_millis(),
        subtree.restarts(),
        if consumers_handle.child("audit").is_some() {
            "back"
        } else {
            "gone"
        },
    );
    print!("{}", root_handle.tree());

    // Handles from before the restart control the new run.
    orders.shutdown().await;
    let payments = root_handle
        .find("consumers/payments")
        .ok_or("payments is running")?;
    println!(
        "{:>5} ms  payments found by path: id {}, finished: {}",
        started.elapsed().as_millis(),
        payments.id(),
        payments.is_finished()
    );

    root_handle.shutdown().await;
    let exit = run.await??;
    println!(
        "{:>5} ms  service stopped: {:?}",
        started.elapsed().as_millis(),
        exit.shutdown_reason()
    );
    Ok(())
}
