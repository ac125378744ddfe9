//! `SignalReceiver` in-process: signals raised in this test binary (its own
//! binary, since signals are process-wide) reach the manager the receiver
//! runs in. The tests take turns through a lock.

#![cfg(all(unix, feature = "signal"))]
#![allow(clippy::print_stdout)] // the child process reports through stdout

use std::time::Duration;

use procmgr::builtin::SignalReceiver;
use procmgr::{
    ChildHandle, ControlMessage, FailureCause, Outcome, ProcessManager, Runnable, ShutdownReason,
    Signal, process_fn,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::low_level::raise;
use tokio::sync::{Mutex, mpsc};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Generous: real signals on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until the receiver has installed its handlers.
async fn until_ready(receiver: &ChildHandle) {
    tokio::time::timeout(PATIENCE, async {
        while !receiver.is_ready() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the receiver starts");
}

/// Reports the control messages it receives and the reason it stops for.
fn reporter(name: &'static str, events: mpsc::UnboundedSender<String>) -> impl Runnable {
    process_fn(name, move |mut ctx| {
        let events = events.clone();
        async move {
            ctx.mark_ready();
            while let Some(message) = ctx.recv().await {
                match message {
                    ControlMessage::Reload => {
                        events.send(format!("{name} reload")).expect("test listens");
                    }
                    ControlMessage::Shutdown => {
                        let reason = ctx.shutdown_reason().expect("requested");
                        events
                            .send(format!("{name} stop: {reason}"))
                            .expect("test listens");
                        break;
                    }
                    _ => {}
                }
            }
            Ok::<_, std::io::Error>(())
        }
    })
    .reporting_ready()
}

async fn graceful_shutdown_on(number: i32, signal: Signal) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    let receiver = manager
        .insert(SignalReceiver::new(manager.handle()))
        .expect("accepted");
    manager.insert(reporter("worker", tx)).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    until_ready(&receiver).await;

    raise(number).expect("raise");
    let exit = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("stops")
        .expect("joined")
        .expect("a signal is a clean stop");
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::Signal(signal))
    );
    assert_eq!(
        events.recv().await,
        Some(format!("worker stop: received {signal}"))
    );
    assert!(matches!(receiver.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test]
async fn sigterm_stops_the_tree_gracefully() {
    graceful_shutdown_on(SIGTERM, Signal::Terminate).await;
}

#[tokio::test]
async fn sigint_stops_the_tree_gracefully() {
    graceful_shutdown_on(SIGINT, Signal::Interrupt).await;
}

#[tokio::test]
async fn sigquit_stops_the_tree_gracefully() {
    graceful_shutdown_on(SIGQUIT, Signal::Quit).await;
}

#[tokio::test]
async fn sighup_reloads_every_child_including_nested_ones() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let nested = ProcessManager::builder().name("inner").build();
    nested
        .insert(reporter("deep", tx.clone()))
        .expect("accepted");
    let manager = ProcessManager::builder().name("root").build();
    let receiver = manager
        .insert(SignalReceiver::new(manager.handle()))
        .expect("accepted");
    let top = manager.insert(reporter("top", tx)).expect("accepted");
    manager.insert(nested).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    until_ready(&receiver).await;
    tokio::time::timeout(PATIENCE, async {
        while !top.is_ready() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("top starts");

    raise(SIGHUP).expect("raise");
    let mut reloads = vec![
        events.recv().await.expect("a reload"),
        events.recv().await.expect("a reload"),
    ];
    reloads.sort();
    assert_eq!(reloads, ["deep reload", "top reload"]);

    procmgr::ProcessControlHandler::shutdown(&handle).await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test]
async fn a_second_sigint_during_a_slow_shutdown_forces_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(3600))
        .build();
    let receiver = manager
        .insert(SignalReceiver::new(manager.handle()))
        .expect("accepted");
    let stubborn = manager
        .insert(process_fn("stubborn", move |ctx| {
            let tx = tx.clone();
            async move {
                ctx.shutdown_requested().await;
                tx.send("stubborn ignores the stop").expect("test listens");
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    until_ready(&receiver).await;

    raise(SIGINT).expect("raise");
    assert_eq!(events.recv().await, Some("stubborn ignores the stop"));
    raise(SIGINT).expect("raise");
    let error = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("returns promptly, long before the grace period")
        .expect("joined")
        .expect_err("the abort is reported");
    let failures = error.failures().expect("failures");
    assert_eq!(failures.first().path(), "root/stubborn");
    assert!(matches!(
        failures.first().cause(),
        FailureCause::Forced {
            signal: Some(Signal::Interrupt)
        }
    ));
    assert_eq!(
        failures.shutdown_reason(),
        Some(&ShutdownReason::Forced(Signal::Interrupt))
    );
    assert!(matches!(stubborn.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(receiver.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test]
async fn the_mapping_is_configurable() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    let receiver = manager
        .insert(
            SignalReceiver::new(manager.handle())
                .shutdown_on([Signal::Other(SIGUSR1)])
                .reload_on([Signal::Other(SIGUSR2)])
                .force_on([]),
        )
        .expect("accepted");
    manager.insert(reporter("worker", tx)).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    until_ready(&receiver).await;

    raise(SIGUSR2).expect("raise");
    assert_eq!(events.recv().await.as_deref(), Some("worker reload"));
    raise(SIGUSR1).expect("raise");
    let exit = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean stop");
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::Signal(Signal::Other(SIGUSR1)))
    );
    assert_eq!(
        events.recv().await.as_deref(),
        Some("worker stop: received signal 10")
    );
}

/// Runs only as the child process of the next test: stops a receiver, then
/// raises SIGTERM, which must now terminate the process.
#[tokio::test]
async fn after_the_receiver_ends_the_default_action_is_back_child() {
    if std::env::var_os("PROCMGR_SIGNAL_CHILD").is_none() {
        return;
    }
    let manager = ProcessManager::new();
    let receiver = manager
        .insert(SignalReceiver::new(manager.handle()))
        .expect("accepted");
    manager.insert(procmgr::IdleProcess).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    until_ready(&receiver).await;
    procmgr::ProcessControlHandler::shutdown(&handle).await;
    run.await.expect("joined").expect("clean stop");
    println!("receiver ended");
    raise(SIGTERM).expect("raise");
    // Reaching this line means SIGTERM was swallowed.
    println!("still alive");
}

#[test]
fn after_the_receiver_ends_the_default_action_is_back() {
    use std::os::unix::process::ExitStatusExt;

    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "after_the_receiver_ends_the_default_action_is_back_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROCMGR_SIGNAL_CHILD", "1")
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("receiver ended"), "{stdout}");
    assert!(!stdout.contains("still alive"), "{stdout}");
    assert_eq!(output.status.signal(), Some(SIGTERM), "{:?}", output.status);
}
