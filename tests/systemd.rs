//! The systemd notifier against a real Unix datagram socket the test binds,
//! standing in for systemd's `NOTIFY_SOCKET`: the exact messages, in order,
//! for start, reload, stop, a drain, and a watchdog that a stale heartbeat
//! holds back.
#![cfg(all(feature = "systemd", unix))]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::builtin::SystemdNotifier;
use procmgr::{ChildOptions, ControlMessage, ManagerHandle, ProcessManager, process_fn};
use tokio::net::UnixDatagram;
use tokio::time::Instant;

/// The test's end of the notification socket; removes its file when dropped.
struct FakeSystemd {
    socket: UnixDatagram,
    path: PathBuf,
}

impl FakeSystemd {
    fn bind() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "procmgr-notify-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
        FakeSystemd { socket, path }
    }

    fn notifier(&self, manager: ManagerHandle) -> SystemdNotifier {
        SystemdNotifier::new(manager)
            .socket(Some(&self.path))
            .watchdog(None)
    }

    async fn next(&self) -> String {
        let mut buffer = vec![0; 4096];
        let len = self.socket.recv(&mut buffer).await.expect("a notification");
        String::from_utf8(buffer[..len].to_vec()).expect("UTF-8")
    }

    /// Asserts that nothing else was sent.
    fn assert_quiet(&self) {
        let mut buffer = vec![0; 4096];
        match self.socket.try_recv(&mut buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("unexpected notification: {other:?}"),
        }
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A child that looks at its inbox when it starts, reports ready after a
/// second, and then looks only every three seconds, recording when it took
/// a reload.
fn slow_to_reload(taken: Arc<Mutex<Vec<Instant>>>) -> impl procmgr::Runnable {
    process_fn("config", move |mut ctx| {
        let taken = Arc::clone(&taken);
        async move {
            let look = |ctx: &mut procmgr::Context| match ctx.try_recv() {
                Some(ControlMessage::Reload) => {
                    taken.lock().expect("lock").push(Instant::now());
                    false
                }
                Some(ControlMessage::Shutdown) => true,
                _ => false,
            };
            look(&mut ctx);
            tokio::time::sleep(Duration::from_secs(1)).await;
            ctx.mark_ready();
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if look(&mut ctx) {
                    return Ok::<_, std::io::Error>(());
                }
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn start_reload_and_stop_are_told_in_order() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(10))
        .build();
    let handle = manager.handle();
    let taken = Arc::new(Mutex::new(Vec::new()));
    manager
        .insert_with(
            slow_to_reload(Arc::clone(&taken)),
            ChildOptions::new().reports_ready(true),
        )
        .expect("accepted");
    manager
        .insert(systemd.notifier(handle.clone()))
        .expect("accepted");
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());

    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "once the child is ready"
    );

    handle.request_reload().expect("running");
    let reloading = systemd.next().await;
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines.len(), 3, "{reloading}");
    assert_eq!(lines[0], "RELOADING=1");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .expect("MONOTONIC_USEC in the same message")
        .parse()
        .expect("a number");
    assert!(usec > 0);
    assert_eq!(
        lines[2],
        "STATUS=reloading: 2 running, 0 restarting, 0 failed"
    );
    assert!(taken.lock().expect("lock").is_empty());

    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );
    // Not before the child took the reload, at its next look.
    assert_eq!(
        *taken.lock().expect("lock"),
        [started + Duration::from_secs(4)]
    );
    assert!(!handle.is_reloading());

    handle.request_shutdown().expect("running");
    assert_eq!(
        systemd.next().await,
        "STOPPING=1\nSTATUS=stopping: 2 running, 0 restarting, 0 failed"
    );
    // Grace period plus the margin.
    assert_eq!(systemd.next().await, "EXTEND_TIMEOUT_USEC=15000000");
    run.await.expect("joined").expect("graceful");
    systemd.assert_quiet();
}

#[tokio::test(start_paused = true)]
async fn stopping_is_told_when_the_drain_starts_and_the_stop_budget_includes_it() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder()
        .name("root")
        .drain_period(Duration::from_secs(20))
        .grace_period(Duration::from_secs(10))
        .child(procmgr::IdleProcess)
        .build();
    let handle = manager.handle();
    manager
        .insert(systemd.notifier(handle.clone()))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );

    let requested = Instant::now();
    handle.request_shutdown().expect("running");
    assert_eq!(
        systemd.next().await,
        "STOPPING=1\nSTATUS=stopping: 2 running, 0 restarting, 0 failed"
    );
    assert_eq!(requested.elapsed(), Duration::ZERO, "at the drain's start");
    assert_eq!(systemd.next().await, "EXTEND_TIMEOUT_USEC=35000000");
    run.await.expect("joined").expect("graceful");
    assert_eq!(requested.elapsed(), Duration::from_secs(20));
    systemd.assert_quiet();
}

#[tokio::test(start_paused = true)]
async fn a_reload_before_the_tree_is_ready_only_delays_ready() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    let taken = Arc::new(Mutex::new(Vec::new()));
    manager
        .insert_with(
            slow_to_reload(Arc::clone(&taken)),
            ChildOptions::new().reports_ready(true),
        )
        .expect("accepted");
    manager
        .insert(systemd.notifier(handle.clone()))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.request_reload().expect("running");
    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );
    assert_eq!(taken.lock().expect("lock").len(), 1);
    handle.request_shutdown().expect("running");
    assert!(systemd.next().await.starts_with("STOPPING=1\n"));
    assert!(systemd.next().await.starts_with("EXTEND_TIMEOUT_USEC="));
    run.await.expect("joined").expect("graceful");
    systemd.assert_quiet();
}

#[tokio::test(start_paused = true)]
async fn ready_follows_a_reload_after_the_timeout_when_a_child_never_takes_it() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    manager.insert(deaf_child()).expect("accepted");
    manager
        .insert(
            systemd
                .notifier(handle.clone())
                .reload_timeout(Duration::from_secs(7)),
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    assert!(systemd.next().await.starts_with("READY=1\n"));
    handle.request_reload().expect("running");
    let reloaded = Instant::now();
    assert!(systemd.next().await.starts_with("RELOADING=1\n"));
    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready (a child did not take the reload): 2 running, 0 restarting, 0 failed"
    );
    assert_eq!(reloaded.elapsed(), Duration::from_secs(7));
    assert!(handle.is_reloading(), "the deaf child still has it");
    handle.request_shutdown().expect("running");
    assert!(systemd.next().await.starts_with("STOPPING=1\n"));
    assert!(systemd.next().await.starts_with("EXTEND_TIMEOUT_USEC="));
    run.await.expect("joined").expect("graceful");
    assert!(!handle.is_reloading(), "an ended child no longer holds it");
}

/// Looks at its messages once, then only waits for shutdown.
fn deaf_child() -> impl procmgr::Runnable {
    process_fn("deaf", |mut ctx| async move {
        let _ = ctx.try_recv();
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test(start_paused = true)]
async fn a_child_that_never_reads_its_messages_does_not_hold_a_reload_back() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    manager
        .insert(common::stops_when_asked("never-reads"))
        .expect("accepted");
    manager
        .insert(systemd.notifier(handle.clone()))
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    assert!(systemd.next().await.starts_with("READY=1\n"));
    handle.request_reload().expect("running");
    let reloaded = Instant::now();
    assert!(systemd.next().await.starts_with("RELOADING=1\n"));
    assert_eq!(
        systemd.next().await,
        "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );
    assert_eq!(reloaded.elapsed(), Duration::ZERO);
    handle.request_shutdown().expect("running");
    assert!(systemd.next().await.starts_with("STOPPING=1\n"));
    assert!(systemd.next().await.starts_with("EXTEND_TIMEOUT_USEC="));
    run.await.expect("joined").expect("graceful");
}

#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn an_abstract_socket_is_notified() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;

    let name = format!("procmgr-notify-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract name");
    let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&address).expect("bind");
    std_socket.set_nonblocking(true).expect("non-blocking");
    let socket = UnixDatagram::from_std(std_socket).expect("into tokio");

    let manager = ProcessManager::builder()
        .name("root")
        .child(procmgr::IdleProcess)
        .build();
    let handle = manager.handle();
    manager
        .insert(
            SystemdNotifier::new(handle.clone())
                .socket(Some(format!("@{name}")))
                .watchdog(None),
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());
    let mut buffer = vec![0; 4096];
    let len = socket.recv(&mut buffer).await.expect("a notification");
    assert_eq!(
        &buffer[..len],
        b"READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("graceful");
}

#[tokio::test(start_paused = true)]
async fn without_a_socket_nothing_is_sent_and_nothing_fails() {
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    manager
        .insert(SystemdNotifier::new(handle.clone()).socket(None::<PathBuf>))
        .expect("accepted");
    // A socket nobody listens on: every send fails, quietly.
    let gone = std::env::temp_dir().join(format!("procmgr-nobody-{}.sock", std::process::id()));
    manager
        .insert(SystemdNotifier::new(handle.clone()).socket(Some(gone)))
        .expect("accepted");
    manager.insert(procmgr::IdleProcess).expect("accepted");
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    handle.request_reload().expect("running");
    handle.reloaded().await;
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("graceful");
}

/// The watchdog runs on real time: the wedged child blocks a thread, which
/// paused time cannot stand for. Repeated `WATCHDOG=1`s are counted as one,
/// since how many fit in a span of real time varies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_fed_only_while_no_heartbeat_is_stale() {
    let systemd = FakeSystemd::bind();
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    let (wedge, wedged) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let wedged = Mutex::new(Some((wedged, released)));
    manager
        .insert_with(
            process_fn("worker", move |ctx| {
                let channels = wedged.lock().expect("lock").take();
                async move {
                    let (wedged, released) = channels.expect("one attempt");
                    while wedged.try_recv().is_err() {
                        ctx.heartbeat();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // Stuck in blocking code, out of the abort's reach.
                    tokio::task::block_in_place(|| released.recv().ok());
                    tokio::task::yield_now().await;
                    Ok::<_, std::io::Error>(())
                }
            }),
            ChildOptions::new().heartbeat_timeout(Duration::from_millis(100)),
        )
        .expect("accepted");
    manager
        .insert(
            systemd
                .notifier(handle.clone())
                .watchdog(Some(Duration::from_millis(60))),
        )
        .expect("accepted");
    let run = tokio::spawn(manager.into_future());

    let mut seen = Vec::new();
    let mut push = |message: String| {
        if !(message == "WATCHDOG=1" && seen.last() == Some(&message)) {
            seen.push(message);
        }
    };
    push(systemd.next().await);
    push(systemd.next().await);
    wedge.send(()).expect("the worker listens");
    loop {
        let message = systemd.next().await;
        let stale = message.starts_with("STATUS=wedged");
        push(message);
        if stale {
            break;
        }
    }
    assert!(!handle.is_live());
    assert_eq!(handle.stale_children(), ["root/worker"]);
    release.send(()).expect("the worker waits");
    loop {
        let message = systemd.next().await;
        let last = message.starts_with("EXTEND_TIMEOUT_USEC=");
        push(message);
        if last {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "READY=1\nSTATUS=ready: 2 running, 0 restarting, 0 failed",
            "WATCHDOG=1",
            "STATUS=wedged (root/worker without a heartbeat): 2 running, 0 restarting, 0 failed",
            "STOPPING=1\nSTATUS=stopping: 1 running, 0 restarting, 0 failed",
            "EXTEND_TIMEOUT_USEC=10000000",
        ]
    );
    let error = run
        .await
        .expect("joined")
        .expect_err("the wedged worker failed");
    assert!(matches!(
        error.failures().expect("failures").first().cause(),
        procmgr::FailureCause::Wedged { .. }
    ));
}
