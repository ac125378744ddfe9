//! A service that tells systemd how it is doing (`Type=notify-reload`):
//! `READY=1` once its workers are ready, `RELOADING=1` and `READY=1` around
//! `systemctl reload` (`SIGHUP`), `STOPPING=1` on `systemctl stop`
//! (`SIGTERM`), and `WATCHDOG=1` while every worker's heartbeat is fresh.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example systemd --features systemd,signal -- --run-for 3
//! ```
//!
//! Outside systemd (no `NOTIFY_SOCKET`) it sends nothing and runs as usual.
//! Options: `--run-for SECONDS` (default 3; 0 runs until a signal).
//!
//! # The unit file
//!
//! Build it (`cargo build --release --example systemd --features
//! systemd,signal`), then save as `/etc/systemd/system/procmgr-demo.service`
//! and `systemctl daemon-reload && systemctl start procmgr-demo`:
//!
//! ```ini
//! [Unit]
//! Description=procmgr systemd example
//!
//! [Service]
//! # notify-reload (systemd 253+): SIGHUP reloads and systemd waits for
//! # READY=1; use Type=notify with ExecReload=kill -HUP $MAINPID before that.
//! Type=notify-reload
//! ExecStart=/path/to/target/release/examples/systemd --run-for 0
//! # The tree's grace period is 10 s; the notifier extends the stop timeout
//! # (EXTEND_TIMEOUT_USEC) by its drain and grace periods plus 5 s.
//! TimeoutStopSec=20
//! # WATCHDOG=1 every 5 s while no heartbeat is stale; a wedged worker makes
//! # systemd restart the service after 10 s.
//! WatchdogSec=10
//! Restart=on-failure
//!
//! [Install]
//! WantedBy=multi-user.target
//! ```
//!
//! Then `systemctl reload procmgr-demo`, `systemctl status procmgr-demo`
//! (its `Status:` line is the tree's summary) and `systemctl stop
//! procmgr-demo`.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use procmgr::{BoxError, ChildOptions, Context, ControlMessage, ProcessManager, process_fn};

/// A worker that is ready after a short start, beats while it works, and
/// reloads on request.
async fn worker(mut ctx: Context) -> Result<(), BoxError> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctx.mark_ready();
    println!("{}: ready", ctx.name());
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = interval.tick() => ctx.heartbeat(),
            message = ctx.recv() => match message {
                Some(ControlMessage::Reload) => println!("{}: reloading", ctx.name()),
                Some(ControlMessage::Shutdown) | None => break,
                Some(_) => {}
            },
        }
    }
    println!("{}: stopped", ctx.name());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut run_for = Duration::from_secs(3);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--run-for" => {
                let seconds: u64 = args.next().ok_or("--run-for needs a number")?.parse()?;
                run_for = Duration::from_secs(seconds);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let manager = ProcessManager::builder()
        .name("demo")
        .handle_signals(true)
        .notify_systemd(true)
        .grace_period(Duration::from_secs(10))
        .build();
    let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    println!(
        "demo: pid {}, {}",
        std::process::id(),
        if under_systemd {
            "notifying systemd"
        } else {
            "not under systemd (no NOTIFY_SOCKET): nothing to notify"
        }
    );
    for name in ["worker-1", "worker-2"] {
        manager.insert_with(
            process_fn(name, worker),
            ChildOptions::new()
                .reports_ready(true)
                .heartbeat_timeout(Duration::from_secs(3)),
        )?;
    }
    if !run_for.is_zero() {
        let handle = manager.handle();
        manager.insert(process_fn("stopper", move |ctx| {
            let handle = handle.clone();
            async move {
                if ctx
                    .run_until_shutdown(tokio::time::sleep(run_for))
                    .await
                    .is_some()
                {
                    println!("stopper: {run_for:?} have passed");
                    handle.request_shutdown()?;
                }
                Ok::<_, BoxError>(())
            }
        }))?;
    }
    let exit = manager.await?;
    match exit.shutdown_reason() {
        Some(reason) => println!("demo: stopped ({reason})"),
        None => println!("demo: stopped"),
    }
    Ok(())
}
