//! [`SignalReceiver`]: operating-system signals turned into shutdown, forced
//! shutdown and reload of a manager.
//!
//! On Unix the receiver listens through signal-hook. While any receiver
//! listens for a signal, that signal's default action is suppressed; when the
//! last one stops, a permanently registered signal-hook action runs the
//! default action again (terminate, for the signals used here). That is how
//! "the handlers are removed" is done without unsafe code: signal-hook cannot
//! put the operating system's own handler back.

use std::borrow::Cow;
use std::io;

use crate::{
    ChildOptions, Context, ControlMessage, ManagerHandle, Runnable, ShutdownReason, Signal,
};

/// A process that turns operating-system signals into control of a manager.
///
/// By default, on Unix:
///
/// | signal | action |
/// | --- | --- |
/// | `SIGINT`, `SIGTERM`, `SIGQUIT` | graceful shutdown; the manager returns `Ok` if every child stops in time |
/// | `SIGINT`, `SIGTERM` while a shutdown runs (a second signal, or the first during a shutdown for another reason, such as a failed child) | forced shutdown: every child still running is aborted at once and reported as [`FailureCause::Forced`](crate::FailureCause::Forced) with the signal (exit status 3, see [`RunError::exit_code`](crate::RunError::exit_code)) |
/// | `SIGHUP` | reload: every child receives [`ControlMessage::Reload`] |
///
/// On Windows, Ctrl-C, Ctrl-Break, closing the console and system shutdown
/// request a graceful shutdown and a second Ctrl-C forces it.
///
/// It runs as a background child (see [`ChildOptions::background`]): it does
/// not keep its manager running, and it is stopped after every other child,
/// so that it still hears the second signal during a slow shutdown. It
/// reports readiness: its manager's [`ready`](ManagerHandle::ready) means
/// the signal handlers are installed. When it ends, the signals it handled
/// get their default action back, so a later Ctrl-C in the same program
/// terminates it as usual; a program with a `tokio::signal` listener of its
/// own turns that off with
/// [`restore_default_actions(false)`](SignalReceiver::restore_default_actions).
/// (On Windows tokio keeps its handlers installed, so there Ctrl-C is
/// ignored once the receiver has ended.)
///
/// [`ProcessManagerBuilder::handle_signals`](crate::ProcessManagerBuilder::handle_signals)
/// inserts one in a single line.
///
/// Requires the `signal` feature.
///
/// # Example
///
/// ```no_run
/// use procmgr::ProcessManager;
/// use procmgr::builtin::SignalReceiver;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::new();
/// // Or: ProcessManager::builder().handle_signals(true).build()
/// manager.insert(SignalReceiver::new(manager.handle()))?;
/// // ... insert the service's processes ...
/// manager.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SignalReceiver {
    manager: ManagerHandle,
    shutdown: Vec<Signal>,
    reload: Vec<Signal>,
    force: Vec<Signal>,
    restore_default_actions: bool,
}

impl SignalReceiver {
    /// A receiver that controls `manager` (usually the manager it is
    /// inserted into) with the default mapping above.
    pub fn new(manager: ManagerHandle) -> Self {
        SignalReceiver {
            manager,
            shutdown: platform::DEFAULT_SHUTDOWN.to_vec(),
            reload: platform::DEFAULT_RELOAD.to_vec(),
            force: platform::DEFAULT_FORCE.to_vec(),
            restore_default_actions: true,
        }
    }

    /// Whether the signals it handled get their default action back when it
    /// ends (Unix). Default: `true`, so a program without a signal listener
    /// of its own still terminates on a Ctrl-C after its manager has ended.
    ///
    /// Set it to `false` in a program that listens with `tokio::signal`
    /// itself (before or after the receiver): the default action would
    /// otherwise terminate the program before its own listener sees the
    /// signal. With `false` the signals stay with the program's own
    /// listeners, and are ignored while it has none.
    #[must_use]
    pub fn restore_default_actions(mut self, restore: bool) -> Self {
        self.restore_default_actions = restore;
        self
    }

    /// The signals that request a graceful shutdown, replacing the default.
    #[must_use]
    pub fn shutdown_on(mut self, signals: impl IntoIterator<Item = Signal>) -> Self {
        self.shutdown = signals.into_iter().collect();
        self
    }

    /// The signals that request a reload, replacing the default.
    #[must_use]
    pub fn reload_on(mut self, signals: impl IntoIterator<Item = Signal>) -> Self {
        self.reload = signals.into_iter().collect();
        self
    }

    /// The signals that force a shutdown when they arrive while one is
    /// already running, replacing the default. An empty list turns forcing
    /// off.
    #[must_use]
    pub fn force_on(mut self, signals: impl IntoIterator<Item = Signal>) -> Self {
        self.force = signals.into_iter().collect();
        self
    }

    fn handled(&self) -> Vec<Signal> {
        let mut all: Vec<Signal> = Vec::new();
        for signal in self.shutdown.iter().chain(&self.reload).chain(&self.force) {
            if !all.contains(signal) {
                all.push(*signal);
            }
        }
        all
    }

    fn act_on(&self, signal: Signal) {
        #[cfg(feature = "tracing")]
        tracing::info!(%signal, manager = self.manager.name(), "signal received");
        #[cfg(feature = "log")]
        log::info!(
            "{signal} received for process manager {}",
            self.manager.name()
        );
        // Each request fails only once the manager has ended, and then there
        // is nothing left to stop or reload.
        if self.manager.is_shutdown_requested() && self.force.contains(&signal) {
            let _ = self.manager.force_shutdown(ShutdownReason::Forced(signal));
        } else if self.shutdown.contains(&signal) {
            let _ = self
                .manager
                .request_shutdown_with(ShutdownReason::Signal(signal));
        } else if self.reload.contains(&signal) {
            let _ = self.manager.request_reload();
        }
    }
}

impl Runnable for SignalReceiver {
    type Error = io::Error;

    async fn run(&self, mut ctx: Context) -> Result<(), io::Error> {
        let mut listener = platform::Listener::new(&self.handled(), self.restore_default_actions)?;
        ctx.mark_ready();
        loop {
            tokio::select! {
                // Takes reloads too (it has nothing to reload), so that it
                // never holds a tree's reload back (`ManagerHandle::reloaded`).
                message = ctx.recv() => match message {
                    Some(ControlMessage::Shutdown) | None => return Ok(()),
                    Some(_) => {}
                },
                signal = listener.next() => match signal {
                    Some(signal) => self.act_on(signal),
                    None => return Ok(()),
                },
            }
        }
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("signals")
    }

    /// A background child.
    fn child_options(&self) -> ChildOptions {
        ChildOptions::new().background(true)
    }

    /// It reports readiness: its manager is ready only once the signal
    /// handlers are installed.
    fn reports_ready(&self) -> bool {
        true
    }
}

#[cfg(unix)]
mod platform {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use futures::StreamExt;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook_tokio::Signals;

    use crate::Signal;

    pub(super) const DEFAULT_SHUTDOWN: &[Signal] =
        &[Signal::Interrupt, Signal::Terminate, Signal::Quit];
    pub(super) const DEFAULT_RELOAD: &[Signal] = &[Signal::Hangup];
    pub(super) const DEFAULT_FORCE: &[Signal] = &[Signal::Interrupt, Signal::Terminate];

    fn number(signal: Signal) -> Option<i32> {
        match signal {
            Signal::Interrupt => Some(SIGINT),
            Signal::Terminate => Some(SIGTERM),
            Signal::Quit => Some(SIGQUIT),
            Signal::Hangup => Some(SIGHUP),
            Signal::Other(number) => Some(number),
            _ => None,
        }
    }

    fn signal(number: i32) -> Signal {
        match number {
            SIGINT => Signal::Interrupt,
            SIGTERM => Signal::Terminate,
            SIGQUIT => Signal::Quit,
            SIGHUP => Signal::Hangup,
            other => Signal::Other(other),
        }
    }

    /// Per signal number: how many listeners are active, and the flag that
    /// turns the default action back on when none is.
    type Defaults = HashMap<i32, (usize, Arc<AtomicBool>)>;

    static DEFAULTS: Mutex<Option<Defaults>> = Mutex::new(None);

    fn defaults() -> MutexGuard<'static, Option<Defaults>> {
        DEFAULTS.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) struct Listener {
        signals: Signals,
        numbers: Vec<i32>,
        restore: bool,
    }

    impl Listener {
        /// Installs the handlers, in this order:
        /// 1. once per signal for the life of the program, the conditional
        ///    default action, switched off while a listener is active;
        /// 2. this listener's stream.
        ///
        /// signal-hook runs a signal's actions in the order they were
        /// registered. So within one delivery the default action's flag is
        /// read before the stream is woken: a shutdown that the signal
        /// starts, and that ends by switching the default back on, cannot
        /// complete in between and have the same signal kill the program.
        pub(super) fn new(handled: &[Signal], restore: bool) -> io::Result<Listener> {
            let numbers: Vec<i32> = handled.iter().copied().filter_map(number).collect();
            suppress_defaults(&numbers)?;
            let signals = match Signals::new(&numbers) {
                Ok(signals) => signals,
                Err(error) => {
                    if let Some(defaults) = defaults().as_mut() {
                        release(defaults, &numbers, restore);
                    }
                    return Err(error);
                }
            };
            Ok(Listener {
                signals,
                numbers,
                restore,
            })
        }

        pub(super) async fn next(&mut self) -> Option<Signal> {
            self.signals.next().await.map(signal)
        }
    }

    /// Step 1 of [`Listener::new`]: one listener more for each of
    /// `numbers`, whose default actions are off from now on.
    fn suppress_defaults(numbers: &[i32]) -> io::Result<()> {
        {
            let mut defaults = defaults();
            let defaults = defaults.get_or_insert_with(HashMap::new);
            for (registered, &number) in numbers.iter().enumerate() {
                let entry = match defaults.entry(number) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let flag = Arc::new(AtomicBool::new(false));
                        // Registered once per signal for the life of the
                        // program; it acts only while the flag is set.
                        if let Err(error) = signal_hook::flag::register_conditional_default(
                            number,
                            Arc::clone(&flag),
                        ) {
                            // Those counted so far go back as they were.
                            release(defaults, &numbers[..registered], true);
                            return Err(error);
                        }
                        entry.insert((0, flag))
                    }
                };
                entry.0 += 1;
                entry.1.store(false, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            // Default actions first, then stop listening: a signal arriving
            // in between gets its default action, not silence.
            if let Some(defaults) = defaults().as_mut() {
                release(defaults, &self.numbers, self.restore);
            }
            self.signals.handle().close();
        }
    }

    /// One listener fewer for each of `numbers`; with `restore`, the last
    /// one gone turns the default action back on.
    fn release(defaults: &mut Defaults, numbers: &[i32], restore: bool) {
        for number in numbers {
            if let Some((active, flag)) = defaults.get_mut(number) {
                *active -= 1;
                if *active == 0 && restore {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        }
    }
}

#[cfg(windows)]
mod platform {
    use std::io;

    use tokio::signal::windows;

    use crate::Signal;

    pub(super) const DEFAULT_SHUTDOWN: &[Signal] = &[
        Signal::Interrupt,
        Signal::CtrlBreak,
        Signal::CtrlClose,
        Signal::CtrlShutdown,
    ];
    pub(super) const DEFAULT_RELOAD: &[Signal] = &[];
    pub(super) const DEFAULT_FORCE: &[Signal] = &[Signal::Interrupt];

    pub(super) struct Listener {
        ctrl_c: Option<windows::CtrlC>,
        ctrl_break: Option<windows::CtrlBreak>,
        ctrl_close: Option<windows::CtrlClose>,
        ctrl_shutdown: Option<windows::CtrlShutdown>,
    }

    async fn recv_or_pending<F: std::future::Future<Output = Option<()>>>(
        listener: Option<F>,
    ) -> Option<()> {
        match listener {
            Some(future) => future.await,
            None => std::future::pending().await,
        }
    }

    impl Listener {
        pub(super) fn new(handled: &[Signal], _restore: bool) -> io::Result<Listener> {
            Ok(Listener {
                ctrl_c: handled
                    .contains(&Signal::Interrupt)
                    .then(windows::ctrl_c)
                    .transpose()?,
                ctrl_break: handled
                    .contains(&Signal::CtrlBreak)
                    .then(windows::ctrl_break)
                    .transpose()?,
                ctrl_close: handled
                    .contains(&Signal::CtrlClose)
                    .then(windows::ctrl_close)
                    .transpose()?,
                ctrl_shutdown: handled
                    .contains(&Signal::CtrlShutdown)
                    .then(windows::ctrl_shutdown)
                    .transpose()?,
            })
        }

        pub(super) async fn next(&mut self) -> Option<Signal> {
            tokio::select! {
                Some(()) = recv_or_pending(self.ctrl_c.as_mut().map(|s| s.recv())) => Some(Signal::Interrupt),
                Some(()) = recv_or_pending(self.ctrl_break.as_mut().map(|s| s.recv())) => Some(Signal::CtrlBreak),
                Some(()) = recv_or_pending(self.ctrl_close.as_mut().map(|s| s.recv())) => Some(Signal::CtrlClose),
                Some(()) = recv_or_pending(self.ctrl_shutdown.as_mut().map(|s| s.recv())) => Some(Signal::CtrlShutdown),
                else => None,
            }
        }
    }
}

#[cfg(not(any(unix, windows)))]
mod platform {
    use std::io;

    use crate::Signal;

    pub(super) const DEFAULT_SHUTDOWN: &[Signal] = &[Signal::Interrupt];
    pub(super) const DEFAULT_RELOAD: &[Signal] = &[];
    pub(super) const DEFAULT_FORCE: &[Signal] = &[Signal::Interrupt];

    /// This target has no signals tokio can listen to: the receiver only
    /// waits for shutdown.
    pub(super) struct Listener;

    impl Listener {
        pub(super) fn new(_handled: &[Signal], _restore: bool) -> io::Result<Listener> {
            Ok(Listener)
        }

        pub(super) async fn next(&mut self) -> Option<Signal> {
            std::future::pending().await
        }
    }
}
