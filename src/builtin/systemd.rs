//! [`SystemdNotifier`]: a manager's tree told to systemd through the
//! `sd_notify` protocol (`Type=notify` services).
//!
//! A notification is one datagram of `KEY=VALUE` lines sent to the socket
//! named by `NOTIFY_SOCKET` (a path, or `@name` for Linux's abstract
//! namespace). The datagram is sent without blocking: if systemd's queue is
//! full, the notification is dropped (and logged with the `tracing` or `log`
//! feature) rather than stalling the runtime.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ffi::OsString;
use std::time::Duration;

use crate::{ChildOptions, ChildState, Context, ControlMessage, ManagerHandle, Outcome, Runnable};

/// How much longer than its drain and grace periods a stop may take in
/// systemd's eyes (`EXTEND_TIMEOUT_USEC`): room for the background children,
/// which stop last, and for the process to exit.
pub const STOP_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// How long [`SystemdNotifier`] waits, by default, for every child to take
/// a reload before it tells systemd `READY=1` all the same.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A process that tells systemd how its manager's tree is doing, for a
/// service with `Type=notify` (or `Type=notify-reload`).
///
/// | when | it sends |
/// | --- | --- |
/// | the tree is ready ([`ManagerHandle::ready`]) | `READY=1`, `STATUS=` |
/// | a reload reaches it (the whole tree's, such as on `SIGHUP`) | `RELOADING=1`, `MONOTONIC_USEC=`, `STATUS=`, in one message |
/// | every child has taken that reload ([`ManagerHandle::reloaded`]) and the tree is ready, or the [reload timeout](SystemdNotifier::reload_timeout) is over | `READY=1`, `STATUS=` |
/// | shutdown starts, drain included ([`ManagerHandle::shutdown_requested`]) | `STOPPING=1`, `STATUS=`; then `EXTEND_TIMEOUT_USEC=` with the drain and grace periods plus [`STOP_TIMEOUT_MARGIN`] |
/// | every half `WATCHDOG_USEC`, while no heartbeat is stale ([`ManagerHandle::is_live`]) | `WATCHDOG=1` |
/// | a heartbeat goes stale, and when none is any more | `STATUS=` naming the stale children, then the summary again |
///
/// `STATUS=` is one line: what the tree is doing (`starting`, `ready`,
/// `reloading`, `stopping`, `wedged`) and how many processes run, wait for a
/// restart, and have failed (ended children are listed only with
/// auto-cleanup off), such as `ready: 3 running, 1 restarting, 0 failed`.
///
/// A child takes a reload when its [`Context`] hands it
/// [`ControlMessage::Reload`] (through [`recv`](Context::recv) or
/// [`try_recv`](Context::try_recv)). Only children that have looked at
/// their messages before are waited for (see
/// [`ManagerHandle::is_reloading`]); one that looks but is slow to look
/// again holds the `READY=1` after a reload back, at most until the reload
/// timeout.
///
/// Without `NOTIFY_SOCKET` (the service does not run under systemd, or not
/// with `Type=notify`) it sends nothing, and nothing fails. It reads
/// `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be this process's, when
/// it is set) to pace the watchdog. It changes no environment variable.
///
/// It runs as a background child ([`ChildOptions::background`]), so that it
/// does not keep its manager running and is stopped last, after it has told
/// systemd about the stop; it does not report readiness (it waits for it).
/// [`ProcessManagerBuilder::notify_systemd`](crate::ProcessManagerBuilder::notify_systemd)
/// inserts one in a single line. Requires the `systemd` feature; on
/// platforms other than Unix it sends nothing.
///
/// # Example
///
/// ```no_run
/// use procmgr::ProcessManager;
/// use procmgr::builtin::SystemdNotifier;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::new();
/// // Or: ProcessManager::builder().notify_systemd(true).build()
/// manager.insert(SystemdNotifier::new(manager.handle()))?;
/// // ... insert the service's processes ...
/// manager.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SystemdNotifier {
    manager: ManagerHandle,
    socket: Option<OsString>,
    watchdog: Option<Duration>,
    reload_timeout: Duration,
}

impl SystemdNotifier {
    /// A notifier for `manager` (usually the manager it is inserted into),
    /// with the socket from `NOTIFY_SOCKET` and the watchdog period from
    /// `WATCHDOG_USEC`, as systemd sets them.
    pub fn new(manager: ManagerHandle) -> Self {
        SystemdNotifier {
            manager,
            socket: std::env::var_os("NOTIFY_SOCKET").filter(|socket| !socket.is_empty()),
            watchdog: platform::watchdog_from_env(),
            reload_timeout: DEFAULT_RELOAD_TIMEOUT,
        }
    }

    /// How long to wait after a reload for every child to take it before
    /// telling systemd `READY=1` all the same. Default:
    /// [`DEFAULT_RELOAD_TIMEOUT`] (30 seconds).
    #[must_use]
    pub fn reload_timeout(mut self, timeout: Duration) -> Self {
        self.reload_timeout = timeout;
        self
    }

    /// The socket to notify instead of `NOTIFY_SOCKET`'s: a path, or
    /// `@name` for an abstract socket (Linux); `None` sends nothing.
    #[must_use]
    pub fn socket(mut self, socket: Option<impl Into<OsString>>) -> Self {
        self.socket = socket.map(Into::into);
        self
    }

    /// systemd's watchdog period instead of `WATCHDOG_USEC`'s: `WATCHDOG=1`
    /// is sent every half of it; `None` sends none.
    #[must_use]
    pub fn watchdog(mut self, period: Option<Duration>) -> Self {
        self.watchdog = period.filter(|period| !period.is_zero());
        self
    }
}

/// What systemd was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Starting,
    Ready,
    Reloading,
    Stopping,
}

impl Runnable for SystemdNotifier {
    type Error = Infallible;

    async fn run(&self, mut ctx: Context) -> Result<(), Infallible> {
        let Some(socket) = self.socket.as_deref().and_then(platform::Socket::open) else {
            // Takes reloads all the same, so that it never holds one back.
            while let Some(message) = ctx.recv().await {
                if let ControlMessage::Shutdown = message {
                    break;
                }
            }
            return Ok(());
        };
        let manager = &self.manager;
        let mut told = Told::Starting;
        // When the READY=1 after a reload is due at the latest.
        let reload_deadline = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(reload_deadline);
        let mut wedged = false;
        let mut watchdog = self.watchdog.map(|period| {
            let mut interval = tokio::time::interval(period / 2);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            tokio::select! {
                biased;
                () = manager.shutdown_requested(), if told != Told::Stopping => {
                    told = Told::Stopping;
                    socket.send(&format!("STOPPING=1\nSTATUS={}", summary(manager, "stopping")));
                    let budget = manager
                        .drain_period()
                        .saturating_add(manager.grace_period())
                        .saturating_add(STOP_TIMEOUT_MARGIN);
                    let usec = u64::try_from(budget.as_micros()).unwrap_or(u64::MAX);
                    socket.send(&format!("EXTEND_TIMEOUT_USEC={usec}"));
                }
                message = ctx.recv() => match message {
                    // A reload before the first READY=1 only delays it.
                    Some(ControlMessage::Reload) if told == Told::Ready => {
                        told = Told::Reloading;
                        reload_deadline
                            .as_mut()
                            .reset(tokio::time::Instant::now() + self.reload_timeout);
                        let mut message = String::from("RELOADING=1\n");
                        if let Some(usec) = platform::monotonic_usec() {
                            message.push_str(&format!("MONOTONIC_USEC={usec}\n"));
                        }
                        message.push_str("STATUS=");
                        message.push_str(&summary(manager, "reloading"));
                        socket.send(&message);
                    }
                    Some(ControlMessage::Shutdown) | None => break,
                    Some(_) => {}
                },
                () = settled(manager), if matches!(told, Told::Starting | Told::Reloading) => {
                    told = Told::Ready;
                    socket.send(&format!("READY=1\nSTATUS={}", summary(manager, "ready")));
                }
                () = &mut reload_deadline, if told == Told::Reloading => {
                    told = Told::Ready;
                    socket.send(&format!(
                        "READY=1\nSTATUS={}",
                        summary(manager, "ready (a child did not take the reload)")
                    ));
                }
                _ = tick(watchdog.as_mut()), if watchdog.is_some() => {
                    let stale = manager.stale_children();
                    if stale.is_empty() {
                        socket.send("WATCHDOG=1");
                        if std::mem::take(&mut wedged) {
                            let state = match told {
                                Told::Starting => "starting",
                                Told::Ready => "ready",
                                Told::Reloading => "reloading",
                                Told::Stopping => "stopping",
                            };
                            socket.send(&format!("STATUS={}", summary(manager, state)));
                        }
                    } else if !wedged {
                        wedged = true;
                        let state = format!("wedged ({} without a heartbeat)", stale.join(", "));
                        socket.send(&format!("STATUS={}", summary(manager, &state)));
                    }
                }
            }
        }
        Ok(())
    }

    fn child_options(&self) -> ChildOptions {
        ChildOptions::new().background(true)
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("systemd-notify")
    }
}

/// Completes once the tree is ready and every child has taken the last
/// reload.
async fn settled(manager: &ManagerHandle) {
    loop {
        manager.reloaded().await;
        manager.ready().await;
        if !manager.is_reloading() {
            return;
        }
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `state: N running, N restarting, N failed` over the whole tree.
fn summary(manager: &ManagerHandle, state: &str) -> String {
    let (mut running, mut restarting, mut failed) = (0, 0, 0);
    let mut managers = vec![manager.tree()];
    while let Some(tree) = managers.pop() {
        for node in tree.children() {
            match node.info().state() {
                ChildState::Restarting { .. } => restarting += 1,
                ChildState::Ended(Outcome::Failed(_) | Outcome::Panicked(_) | Outcome::Aborted) => {
                    failed += 1;
                }
                ChildState::Ended(_) => {}
                _ => running += 1,
            }
            if let Some(subtree) = node.subtree() {
                managers.push(subtree.clone());
            }
        }
    }
    format!("{state}: {running} running, {restarting} restarting, {failed} failed")
}

#[cfg(unix)]
mod platform {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::time::Duration;

    pub(super) struct Socket {
        socket: UnixDatagram,
        address: SocketAddr,
    }

    impl Socket {
        /// The socket to notify; `None` (logged) if it cannot be used.
        pub(super) fn open(name: &OsStr) -> Option<Self> {
            match Self::try_open(name) {
                Ok(socket) => Some(socket),
                Err(error) => {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(socket = ?name, %error, "cannot notify systemd");
                    #[cfg(feature = "log")]
                    log::warn!("cannot notify systemd at {name:?}: {error}");
                    let _ = error;
                    None
                }
            }
        }

        fn try_open(name: &OsStr) -> std::io::Result<Self> {
            let address = match name.as_bytes().strip_prefix(b"@") {
                Some(abstract_name) => abstract_address(abstract_name)?,
                None => SocketAddr::from_pathname(name)?,
            };
            let socket = UnixDatagram::unbound()?;
            // systemd's queue may be full: drop the notification rather
            // than block the runtime.
            socket.set_nonblocking(true)?;
            Ok(Socket { socket, address })
        }

        pub(super) fn send(&self, message: &str) {
            if let Err(error) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
                #[cfg(feature = "tracing")]
                tracing::warn!(%error, message, "systemd notification not sent");
                #[cfg(feature = "log")]
                log::warn!("systemd notification {message:?} not sent: {error}");
                let _ = error;
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn abstract_address(name: &[u8]) -> std::io::Result<SocketAddr> {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn abstract_address(_name: &[u8]) -> std::io::Result<SocketAddr> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "abstract sockets exist only on Linux",
        ))
    }

    /// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC` wants it.
    pub(super) fn monotonic_usec() -> Option<i128> {
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(sd_notify::NotifyState::MonotonicUsec(usec)) => Some(usec),
            _ => None,
        }
    }

    pub(super) fn watchdog_from_env() -> Option<Duration> {
        sd_notify::watchdog_enabled().filter(|period| !period.is_zero())
    }
}

#[cfg(not(unix))]
mod platform {
    use std::ffi::OsStr;
    use std::time::Duration;

    pub(super) enum Socket {}

    impl Socket {
        pub(super) fn open(_name: &OsStr) -> Option<Self> {
            None
        }

        pub(super) fn send(&self, _message: &str) {
            match *self {}
        }
    }

    pub(super) fn monotonic_usec() -> Option<i128> {
        None
    }

    pub(super) fn watchdog_from_env() -> Option<Duration> {
        None
    }
}
