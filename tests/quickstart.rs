//! The README's quick start, tried as a new user would: its `Cargo.toml`
//! lines and its code are copied verbatim into a fresh cargo project (with
//! this checkout as the `procmgr` dependency), built, run, and sent a real
//! `SIGTERM`, which must stop it with exit status 0. The crate's front page
//! shows the same code.
//!
//! The fresh project lives in cargo's temporary directory for tests and
//! builds offline against the versions in this crate's `Cargo.lock`; its
//! first build compiles tokio once, later runs reuse it.

const README: &str = include_str!("../README.md");
const LIB: &str = include_str!("../src/lib.rs");

/// The first fenced block tagged `tag` after the heading `heading`.
fn block_after<'a>(text: &'a str, heading: &str, tag: &str) -> &'a str {
    let section = &text[text.find(heading).expect("the heading")..];
    let fence = format!("```{tag}\n");
    let start = section.find(&fence).expect("the block") + fence.len();
    let len = section[start..].find("```").expect("the block's end");
    &section[start..start + len]
}

#[test]
fn the_crate_front_page_shows_the_readme_quick_start() {
    let readme = block_after(README, "## Quick start", "rust");
    let front_page: String = block_after(
        &LIB.lines()
            .filter_map(|line| line.strip_prefix("//!"))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n"),
        "# Quick start",
        "",
    )
    .lines()
    // Lines rustdoc hides: the test's own scaffolding.
    .filter(|line| !(line.trim_start().starts_with("# ") || line.trim() == "#"))
    .map(|line| format!("{line}\n"))
    .collect();
    assert_eq!(front_page, readme);
}

#[cfg(all(target_os = "linux", feature = "signal"))]
mod fresh_binary {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    /// Generous: the first build compiles tokio.
    const BUILD_PATIENCE: Duration = Duration::from_secs(900);
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Writes the fresh project and builds it; returns its binary.
    fn build_quick_start() -> PathBuf {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-quick-start");
        std::fs::create_dir_all(project.join("src")).expect("project directory");

        let dependencies = block_after(README, "## Quick start", "toml");
        let procmgr_line = dependencies
            .lines()
            .find(|line| line.starts_with("procmgr "))
            .expect("the quick start depends on procmgr");
        let version = procmgr_line
            .split("version = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a version requirement");
        assert!(
            env!("CARGO_PKG_VERSION").starts_with(version),
            "the README asks for procmgr {version}, this is {}",
            env!("CARGO_PKG_VERSION")
        );
        let dependencies = dependencies.replace(
            &format!("version = \"{version}\""),
            &format!("path = {:?}", manifest_dir.display().to_string()),
        );
        let manifest = format!(
            "[package]\nname = \"quick-start\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[workspace]\n\n{dependencies}"
        );
        write_if_changed(&project.join("Cargo.toml"), &manifest);
        write_if_changed(
            &project.join("src/main.rs"),
            block_after(README, "## Quick start", "rust"),
        );
        if !project.join("Cargo.lock").exists() {
            std::fs::copy(manifest_dir.join("Cargo.lock"), project.join("Cargo.lock"))
                .expect("copy Cargo.lock");
        }

        let target = project.join("target");
        let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--offline", "--quiet", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .spawn()
            .expect("cargo runs");
        let status = wait_until(&mut build, BUILD_PATIENCE);
        assert!(status.success(), "the quick start does not build");
        target.join("debug").join("quick-start")
    }

    /// Keeps the file's time stamp, and so cargo's fingerprint, when nothing
    /// changed.
    fn write_if_changed(path: &Path, contents: &str) {
        if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
            std::fs::write(path, contents).expect("write");
        }
    }

    fn wait_until(child: &mut Child, patience: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{:?} did not exit within {patience:?}", child.id());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process catches `signal` (its `SigCgt` mask in
    /// `/proc/<pid>/status`).
    fn catches(pid: u32, signal: i32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
    }

    struct Running {
        child: Child,
        lines: mpsc::Receiver<String>,
        seen: Vec<String>,
    }

    impl Running {
        fn next_line(&mut self) -> String {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    line
                }
                Err(_) => panic!("no more output after {:#?}", self.seen),
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            // A failed test must not leave the service running; an error
            // means it has already exited.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn the_readme_quick_start_stops_with_exit_status_zero_on_sigterm() {
        use signal_hook::consts::SIGTERM;

        let binary = build_quick_start();
        let mut child = Command::new(binary)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the quick start runs");
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
        let mut running = Running {
            child,
            lines,
            seen: Vec::new(),
        };

        // The signal receiver installs its handlers while the workers run;
        // the quick start does not say when it is done. Once SIGTERM is
        // caught, the receiver has a few instructions left without an
        // `.await` (it registers its stream): two ticks of one worker after
        // that, a second or more, leave it ample time.
        let pid = running.child.id();
        let deadline = Instant::now() + PATIENCE;
        while !catches(pid, SIGTERM) {
            assert!(Instant::now() < deadline, "SIGTERM is never caught");
            thread::sleep(Duration::from_millis(5));
        }
        running.seen.extend(running.lines.try_iter());
        let mut ticks = 0;
        while ticks < 2 {
            if running.next_line() == "service/ingest works" {
                ticks += 1;
            }
        }

        let status = Command::new("kill")
            .arg(format!("-{SIGTERM}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        let status = wait_until(&mut running.child, PATIENCE);
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "{:#?}",
            running.seen
        );
        running.seen.extend(running.lines.try_iter());
        for path in ["service/ingest", "service/report"] {
            assert!(
                running.seen.contains(&format!("{path} works")),
                "{path} never worked: {:#?}",
                running.seen
            );
        }
    }
}
