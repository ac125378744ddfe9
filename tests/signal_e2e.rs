//! End to end: the `simple` example, built with the `signal` feature, run as
//! a child process and sent real signals. Real time, with generous bounds.

#![cfg(all(unix, feature = "signal"))]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// `cargo test` builds the examples, with the same features, next to the
/// test binaries: `target/<profile>/examples/simple`.
fn simple_example() -> PathBuf {
    let mut path = std::env::current_exe().expect("test binary");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join("simple")
}

/// Sends each line `output` prints, read on a thread of its own.
fn forward(output: impl Read + Send + 'static, lines: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
}

/// The example's output (standard output and error), line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(simple_example())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "the simple example was built; run the tests with `cargo test --features signal`",
            );
        let (tx, lines) = mpsc::channel();
        let stdout: ChildStdout = child.stdout.take().expect("piped");
        forward(stdout, tx.clone());
        let stderr: ChildStderr = child.stderr.take().expect("piped");
        forward(stderr, tx);
        let mut running = Running {
            child,
            lines,
            seen: Vec::new(),
        };
        // A binary built without the feature (say, by an earlier
        // `cargo build --examples`) never prints this line.
        running.wait_for("signals handled by procmgr");
        running.wait_for("worker-1: ready");
        running.wait_for("worker-2: ready");
        running
    }

    /// Waits until a line containing `text` has been printed.
    fn wait_for(&mut self, text: &str) {
        if self.seen.iter().any(|line| line.contains(text)) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?} in {:#?}; is {} built with the `signal` feature?",
                    self.seen,
                    simple_example().display()
                ),
            }
        }
    }

    fn signal(&self, number: i32) {
        let status = Command::new("kill")
            .arg(format!("-{number}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code and how long
    /// it took.
    fn exit(&mut self) -> (Option<i32>, Duration, Vec<String>) {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the example did not exit: {:#?}", self.seen);
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        self.seen.extend(self.lines.iter());
        (status.code(), elapsed, std::mem::take(&mut self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave the example running. An error means
        // it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_stops_the_example_gracefully_with_exit_code_zero() {
    let mut running = Running::start(&["--run-for", "60"]);
    running.signal(SIGTERM);
    let (code, elapsed, lines) = running.exit();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    for expected in [
        "worker-1: stopping gracefully",
        "worker-2: stopping gracefully",
        "simple: every process has stopped (received SIGTERM)",
    ] {
        assert!(
            lines.iter().any(|line| line.contains(expected)),
            "{expected:?} not in {lines:#?}"
        );
    }
}

#[test]
fn sighup_makes_the_workers_reload() {
    let mut running = Running::start(&["--run-for", "60"]);
    running.signal(SIGHUP);
    running.wait_for("worker-1: reloading configuration");
    running.wait_for("worker-2: reloading configuration");
    running.signal(SIGTERM);
    let (code, _, lines) = running.exit();
    assert_eq!(code, Some(0), "{lines:#?}");
}

#[test]
fn a_second_sigint_forces_a_stuck_shutdown() {
    let mut running = Running::start(&["--run-for", "60", "--stubborn"]);
    running.signal(SIGINT);
    running.wait_for("worker-2: ignoring the request to stop");
    running.wait_for("worker-1: stopping gracefully");
    running.signal(SIGINT);
    let (code, elapsed, lines) = running.exit();
    // The forced abort is reported as such, with the signal, and gives the
    // forced shutdown's exit status; the example did not wait for its
    // 5-second grace period.
    assert_eq!(code, Some(3), "{lines:#?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(
        lines
            .iter()
            .any(|line| line
                == "Error: process simple/worker-2 was aborted: SIGINT forced the shutdown"),
        "{lines:#?}"
    );
}
