//! Signals sent the instant the tree is ready, to a real child process: the
//! test binary itself, run again with `PROCMGR_SIGNAL_SCENARIO` set, so that
//! `scenario_child` plays the service. Each scenario runs many times, and
//! not one run may end by the signal's default action (killed) instead of
//! the service's own graceful or forced stop. Real time, generous bounds.
//!
//! The default actions matter after the receiver too: with
//! `restore_default_actions(true)` (the default) a later `SIGINT` terminates
//! a program without a listener of its own; with `false` the program's own
//! `tokio::signal` listener receives it.

#![cfg(all(unix, feature = "signal"))]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use procmgr::builtin::SignalReceiver;
use procmgr::{ProcessManager, process_fn};
use signal_hook::consts::{SIGINT, SIGTERM};

/// How many times each race runs.
const RUNS: usize = 200;

const SCENARIO: &str = "PROCMGR_SIGNAL_SCENARIO";

/// The child's side: a small service that prints `READY` once its tree is
/// ready and exits with 0 after a clean stop, 1 after a failure.
#[test]
fn scenario_child() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async move {
        match scenario.as_str() {
            "graceful" | "forced" => serve(scenario == "forced").await,
            "restore" | "keep" => after_the_receiver(scenario == "restore").await,
            other => panic!("unknown scenario {other}"),
        }
    });
    std::process::exit(code);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

/// One worker that stops when asked (`graceful`) or ignores it (`forced`,
/// so only a second signal ends the run).
async fn serve(stubborn: bool) -> i32 {
    let manager = ProcessManager::builder()
        .grace_period(Duration::from_secs(30))
        .handle_signals(true)
        .build();
    manager
        .insert(process_fn("worker", move |ctx| async move {
            ctx.shutdown_requested().await;
            if stubborn {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    say("READY");
    match run.await.expect("joined") {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// A receiver runs and ends (its manager is stopped through the handle);
/// then a `SIGINT` comes. With `restore`, it terminates the program; without,
/// the program's own listener gets it.
async fn after_the_receiver(restore: bool) -> i32 {
    let manager = ProcessManager::new();
    manager
        .insert(SignalReceiver::new(manager.handle()).restore_default_actions(restore))
        .expect("accepted");
    manager
        .insert(process_fn("worker", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    let mut own = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .expect("a listener of its own");
    say("ENDED");
    match tokio::time::timeout(Duration::from_secs(20), own.recv()).await {
        Ok(Some(())) => {
            say("OWN LISTENER");
            0
        }
        _ => 2,
    }
}

/// The test's side: runs `scenario`, and on each line the child prints
/// calls `on_line` with the child's pid.
fn run_child(scenario: &str, mut on_line: impl FnMut(&str, i32)) -> (ExitStatus, Vec<String>) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "scenario_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs again");
    let pid = i32::try_from(child.id()).expect("a pid fits");
    let stdout = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        on_line(&line, pid);
        seen.push(line);
    }
    (child.wait().expect("the child ends"), seen)
}

fn kill(pid: i32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_sigterm_the_instant_the_tree_is_ready_stops_it_gracefully_every_time() {
    for run in 0..RUNS {
        let (status, seen) = run_child("graceful", |line, pid| {
            if line.ends_with("READY") {
                kill(pid, SIGTERM);
            }
        });
        assert_eq!(
            status.signal(),
            None,
            "run {run}: killed by a signal; printed {seen:?}"
        );
        assert_eq!(status.code(), Some(0), "run {run}: printed {seen:?}");
    }
}

#[test]
fn a_second_sigint_forces_the_stop_and_the_run_returns_every_time() {
    for run in 0..RUNS {
        let (status, seen) = run_child("forced", |line, pid| {
            if line.ends_with("READY") {
                kill(pid, SIGINT);
                // The second one while the shutdown runs (the worker ignores
                // it), as soon as the first has been handled.
                thread::sleep(Duration::from_millis(20));
                kill(pid, SIGINT);
            }
        });
        assert_eq!(
            status.signal(),
            None,
            "run {run}: killed by a signal; printed {seen:?}"
        );
        assert_eq!(
            status.code(),
            Some(1),
            "run {run}: a forced stop aborts the worker, a failure; printed {seen:?}"
        );
    }
}

#[test]
fn after_the_receiver_a_sigint_gets_its_default_action_back() {
    let (status, seen) = run_child("restore", |line, pid| {
        if line.ends_with("ENDED") {
            kill(pid, SIGINT);
        }
    });
    assert_eq!(
        status.signal(),
        Some(SIGINT),
        "the default action is back; printed {seen:?}"
    );
}

#[test]
fn without_restoring_defaults_the_programs_own_listener_gets_the_signal() {
    let (status, seen) = run_child("keep", |line, pid| {
        if line.ends_with("ENDED") {
            kill(pid, SIGINT);
        }
    });
    assert_eq!(status.code(), Some(0), "printed {seen:?}");
    assert!(
        seen.iter().any(|line| line.ends_with("OWN LISTENER")),
        "{seen:?}"
    );
}
