//! The [`Runnable`] trait every process implements, and the closure
//! adapters for one-off workers: [`process_fn`], [`process_fn_with`] and
//! [`process_fn_once`].

use std::borrow::Cow;
use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::control::Context;
use crate::policy::ChildOptions;

/// The error a process may fail with: any error type, boxed.
///
/// Every `E: Into<BoxError>` converts with `?` or [`Into::into`]: `std::io::Error`,
/// `anyhow::Error`, `String`, your own error types.
///
/// # Example
///
/// ```
/// use procmgr::BoxError;
///
/// fn parse_port(text: &str) -> Result<u16, BoxError> {
///     let port: u16 = text.parse()?; // ParseIntError, boxed by `?`
///     if port == 0 {
///         return Err("port 0 is not a port".into()); // a &str works too
///     }
///     Ok(port)
/// }
/// assert_eq!(parse_port("8080")?, 8080);
/// assert!(parse_port("0").is_err());
/// # Ok::<_, BoxError>(())
/// ```
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What a process returns: `Ok(())`, or any error, boxed; `T` and `E` can
/// be given for other uses.
///
/// Annotating a process with it spares the turbofish a closure would need
/// (`Ok::<_, std::io::Error>(())`), and `?` converts any error into it:
///
/// ```
/// use procmgr::{Context, ProcessManager, process_fn};
///
/// async fn fetch(ctx: Context) -> procmgr::Result {
///     let body = std::fs::read_to_string("Cargo.toml")?; // io::Error boxed by `?`
///     println!("{} read {} bytes", ctx.path(), body.len());
///     Ok(())
/// }
///
/// let manager = ProcessManager::new();
/// manager.insert(process_fn("fetch", fetch))?;
/// // An async closure takes the annotation too, as long as it captures
/// // nothing (it is then an `Fn`); for captured state, see
/// // `process_fn_with` and `process_fn_once`.
/// manager.insert(process_fn("inline", async |ctx| -> procmgr::Result {
///     ctx.shutdown_requested().await;
///     Ok(())
/// }))?;
/// # Ok::<_, procmgr::BoxError>(())
/// ```
pub type Result<T = (), E = BoxError> = std::result::Result<T, E>;

/// One supervised unit of async work: a server, a queue consumer, a periodic
/// job, or a whole [`ProcessManager`](crate::ProcessManager).
///
/// Implement it with an `async fn` that runs until the work is done or the
/// [`Context`] says that shutdown was requested. The manager calls
/// [`run`](Runnable::run) on a task of its own; `run` takes `&self` so that a
/// process can be started again by a supervisor that restarts it, so keep
/// per-run state in local variables.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Context, ControlMessage, Runnable};
///
/// struct Ticker;
///
/// impl Runnable for Ticker {
///     type Error = std::io::Error;
///
///     async fn run(&self, mut ctx: Context) -> Result<(), Self::Error> {
///         let mut interval = tokio::time::interval(Duration::from_secs(1));
///         loop {
///             tokio::select! {
///                 _ = interval.tick() => { /* do the work */ }
///                 msg = ctx.recv() => match msg {
///                     Some(ControlMessage::Reload) => { /* re-read configuration */ }
///                     Some(ControlMessage::Shutdown) | None => return Ok(()),
///                     Some(_) => {}
///                 },
///             }
///         }
///     }
/// }
/// ```
pub trait Runnable: Send + Sync + 'static {
    /// The error the process fails with; anything that converts into a
    /// [`BoxError`].
    type Error: Into<BoxError>;

    /// Runs the process until it is done or asked to stop.
    ///
    /// Returning `Ok(())` ends the process normally; returning `Err` or
    /// panicking makes it a failed child of its manager.
    fn run(&self, ctx: Context) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The process's name, shown in paths, errors and events.
    ///
    /// Defaults to the type's name without its module path and generic
    /// arguments (`Ticker` for `my_service::workers::Ticker<T>`).
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name(std::any::type_name::<Self>()))
    }

    /// The settings this process asks for when it is inserted; the options
    /// given to [`insert_with`](crate::ManagerHandle::insert_with) win over
    /// them. Default: none, so the manager's defaults apply.
    fn child_options(&self) -> ChildOptions {
        ChildOptions::new()
    }

    /// Whether this process says when it is ready
    /// ([`Context::mark_ready`](crate::Context::mark_ready)): its manager
    /// then counts it as unready in each attempt until it has
    /// ([`ManagerHandle::is_ready`](crate::ManagerHandle::is_ready)).
    /// Declare it here, next to the code that calls `mark_ready`, so that a
    /// readiness probe cannot answer "ready" before this process is.
    /// [`ChildOptions::reports_ready`] overrides it for one insert.
    /// Default: `false`.
    ///
    /// Calling `mark_ready` in a process that does not report readiness is
    /// a mistake that debug builds catch: see
    /// [`Context::mark_ready`](crate::Context::mark_ready).
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{Context, Runnable};
    ///
    /// struct Http;
    ///
    /// impl Runnable for Http {
    ///     type Error = std::io::Error;
    ///
    ///     async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
    ///         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    ///         ctx.mark_ready(); // bound: ready for traffic
    ///         ctx.run_until_shutdown(listener.accept()).await.transpose()?;
    ///         Ok(())
    ///     }
    ///
    ///     fn reports_ready(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    fn reports_ready(&self) -> bool {
        false
    }
}

/// Sharing a process between owners keeps it a process.
impl<R: Runnable> Runnable for Arc<R> {
    type Error = R::Error;

    fn run(&self, ctx: Context) -> impl Future<Output = Result<(), Self::Error>> + Send {
        R::run(self, ctx)
    }

    fn name(&self) -> Cow<'static, str> {
        R::name(self)
    }

    fn child_options(&self) -> ChildOptions {
        R::child_options(self)
    }

    fn reports_ready(&self) -> bool {
        R::reports_ready(self)
    }
}

/// Wraps a closure into a named [`Runnable`], so a one-off worker is one
/// expression.
///
/// The closure is called once each time the process is started (again on
/// each restart) and must return a fresh future, which is why it is an `Fn`.
/// Two neighbours spare the usual ceremony:
///
/// - [`process_fn_with`] hands the closure a clone of a shared state on
///   every start, so nothing needs cloning inside it;
/// - [`process_fn_once`] takes an `FnOnce`, which may move what it
///   captures into its future, for a child that is never restarted.
///
/// The closure's error can be any type that converts into [`BoxError`]; an
/// `async` block cannot name it, so either annotate the function or async
/// closure with [`procmgr::Result`](crate::Result) or write
/// `Ok::<_, MyError>(())`. `process_fn_with` and `process_fn_once` fix the
/// error to [`BoxError`], so a plain `Ok(())` compiles there.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::new();
/// manager.insert(process_fn("greeter", |ctx| async move {
///     println!("hello from {}", ctx.path());
///     Ok::<_, std::io::Error>(())
/// }))?;
/// // The same without the turbofish:
/// manager.insert(process_fn("annotated", async |ctx| -> procmgr::Result {
///     println!("hello from {}", ctx.path());
///     Ok(())
/// }))?;
/// manager.await?;
/// # Ok(())
/// # }
/// ```
pub fn process_fn<F, Fut, E>(name: impl Into<Cow<'static, str>>, f: F) -> ProcessFn<F>
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    ProcessFn {
        name: name.into(),
        f,
        reports_ready: false,
    }
}

/// Like [`process_fn`], with a state handed to the closure on every start:
/// a clone of `state` (make it an [`Arc`] to share one value) and the
/// context. Restarts get a fresh clone, so the child may restart.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use procmgr::{ProcessManager, process_fn_with};
///
/// struct App {
///     greeting: String,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let app = Arc::new(App { greeting: "hello".into() });
/// let manager = ProcessManager::new();
/// for name in ["en", "fr"] {
///     manager.insert(process_fn_with(name, Arc::clone(&app), |app, ctx| async move {
///         println!("{} from {}", app.greeting, ctx.path());
///         Ok(())
///     }))?;
/// }
/// manager.await?;
/// # Ok(())
/// # }
/// ```
pub fn process_fn_with<S, F, Fut>(
    name: impl Into<Cow<'static, str>>,
    state: S,
    f: F,
) -> ProcessFn<impl Fn(Context) -> Fut + Send + Sync + 'static>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    process_fn(name, move |ctx| f(state.clone(), ctx))
}

/// Wraps an `FnOnce` closure into a named [`Runnable`] that runs once: what
/// it captures moves into its future, with no clone.
///
/// The child is meant never to restart (the default,
/// [`Restart::Never`](crate::Restart::Never)): the closure is gone after
/// the first start, so an attempt after it fails at once with an error that
/// says so. Use [`process_fn`] or [`process_fn_with`] for a child that
/// restarts.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn_once};
/// use tokio::sync::mpsc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let (jobs, mut queue) = mpsc::channel::<u32>(8);
/// let manager = ProcessManager::new();
/// // The receiver moves into the child; no `Arc<Mutex<..>>`, no clone.
/// manager.insert(process_fn_once("consumer", move |ctx| async move {
///     while let Some(Some(job)) = ctx.run_until_shutdown(queue.recv()).await {
///         println!("job {job}");
///     }
///     Ok(())
/// }))?;
/// jobs.send(7).await?;
/// drop(jobs); // the consumer ends once the queue is empty and closed
/// manager.await?;
/// # Ok(())
/// # }
/// ```
pub fn process_fn_once<F, Fut>(name: impl Into<Cow<'static, str>>, f: F) -> ProcessFnOnce<F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    ProcessFnOnce {
        name: name.into(),
        f: Mutex::new(Some(f)),
        reports_ready: false,
    }
}

/// A closure turned into a [`Runnable`] by [`process_fn`] or
/// [`process_fn_with`].
///
/// # Example
///
/// ```
/// use procmgr::{ChildOptions, ProcessFn, ProcessManager, Restart, process_fn};
///
/// let manager = ProcessManager::new();
/// let heartbeat = process_fn("heartbeat", async |ctx| -> procmgr::Result {
///     ctx.mark_ready();
///     ctx.shutdown_requested().await;
///     Ok(())
/// })
/// .reporting_ready();
/// manager.insert_with(heartbeat, ChildOptions::new().restart(Restart::Always))?;
/// # Ok::<_, procmgr::BoxError>(())
/// ```
pub struct ProcessFn<F> {
    name: Cow<'static, str>,
    f: F,
    reports_ready: bool,
}

impl<F> ProcessFn<F> {
    /// Declares that the closure says when it is ready
    /// ([`Context::mark_ready`](crate::Context::mark_ready)), as
    /// [`Runnable::reports_ready`] does for a type: its manager is unready
    /// until it has, in each attempt.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), procmgr::BoxError> {
    /// let manager = ProcessManager::new();
    /// let handle = manager.handle();
    /// manager.insert(
    ///     process_fn("http", async |ctx| -> procmgr::Result {
    ///         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    ///         ctx.mark_ready();
    ///         ctx.run_until_shutdown(listener.accept()).await.transpose()?;
    ///         Ok(())
    ///     })
    ///     .reporting_ready(),
    /// )?;
    /// assert!(!handle.is_ready(), "http has not bound its socket yet");
    /// let run = tokio::spawn(manager.into_future());
    /// handle.ready().await;
    /// handle.shutdown().await;
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn reporting_ready(mut self) -> Self {
        self.reports_ready = true;
        self
    }
}

/// An `FnOnce` closure turned into a [`Runnable`] by [`process_fn_once`].
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn_once};
///
/// let config = String::from("port = 8080"); // moved in, not cloned
/// let manager = ProcessManager::new();
/// manager.insert(process_fn_once("server", move |ctx| async move {
///     println!("{} starts with {config}", ctx.path());
///     ctx.shutdown_requested().await;
///     Ok(())
/// }))?;
/// # Ok::<_, procmgr::BoxError>(())
/// ```
pub struct ProcessFnOnce<F> {
    name: Cow<'static, str>,
    /// Taken by the first attempt.
    f: Mutex<Option<F>>,
    reports_ready: bool,
}

impl<F> ProcessFnOnce<F> {
    /// Declares that the closure says when it is ready; see
    /// [`ProcessFn::reporting_ready`].
    #[must_use]
    pub fn reporting_ready(mut self) -> Self {
        self.reports_ready = true;
        self
    }
}

impl<F> fmt::Debug for ProcessFnOnce<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessFnOnce")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F, Fut> Runnable for ProcessFnOnce<F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    type Error = BoxError;

    fn run(&self, ctx: Context) -> impl Future<Output = Result> + Send {
        // Only the closure is taken under the lock; it runs after it.
        let f = self
            .f
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let name = self.name.clone();
        async move {
            match f {
                Some(f) => f(ctx).await,
                None => Err(format!(
                    "`{name}` was made with process_fn_once and cannot run a second attempt"
                )
                .into()),
            }
        }
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    fn reports_ready(&self) -> bool {
        self.reports_ready
    }
}

impl<F> fmt::Debug for ProcessFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessFn")
            .field("name", &self.name)
            .finish()
    }
}

impl<F, Fut, E> Runnable for ProcessFn<F>
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    type Error = E;

    fn run(&self, ctx: Context) -> impl Future<Output = Result<(), E>> + Send {
        (self.f)(ctx)
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    fn reports_ready(&self) -> bool {
        self.reports_ready
    }
}

thread_local! {
    /// The address and length of the last full type name cut on this
    /// thread, and what it was cut to.
    static LAST_CUT: Cell<(usize, usize, &'static str)> = const { Cell::new((0, 0, "")) };
}

/// A type's name without its module path and generic arguments. Many
/// inserts of one type in a row (a pool of workers) cut its name once per
/// thread: a full name is `'static`, and one at the same address with the
/// same length is the same name.
pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    let key = (full.as_ptr().addr(), full.len());
    LAST_CUT.with(|last| {
        let (address, length, short) = last.get();
        if (address, length) == key {
            return short;
        }
        let short = cut_type_name(full);
        last.set((key.0, key.1, short));
        short
    })
}

fn cut_type_name(full: &'static str) -> &'static str {
    // This runs on every insert of a process with the default name: cut at
    // the first `<` (before the `:`s of generic parameters, wherever they
    // are: `&dyn a::Trait<u8> + Sync` is a `Trait`), then take what follows
    // the last `:` before it. Byte loops, because `str::find` with a `char`
    // costs several times as much on names this short.
    let path = full
        .bytes()
        .position(|byte| byte == b'<')
        .map_or(full, |generics| &full[..generics]);
    let start = path
        .bytes()
        .rposition(|byte| byte == b':')
        .map_or(0, |colon| colon + 1);
    &path[start..]
}

#[cfg(test)]
mod tests {
    use super::{cut_type_name, short_type_name};

    #[test]
    fn short_type_name_strips_path_and_generics() {
        assert_eq!(short_type_name("a::b::Ticker<c::D>"), "Ticker");
        assert_eq!(short_type_name("Ticker"), "Ticker");
        assert_eq!(short_type_name("a::Ticker"), "Ticker");
        assert_eq!(short_type_name("a::b::Pair<c::D, e::F<g::H>>"), "Pair");
        assert_eq!(short_type_name("&a::b::Ticker"), "Ticker");
        assert_eq!(short_type_name("a::Ticker<'_>"), "Ticker");
        assert_eq!(
            short_type_name("&dyn a::b::Trait<u8> + core::marker::Sync"),
            "Trait"
        );
        assert_eq!(short_type_name(""), "");
    }

    /// The name cut last is remembered by where it lies: a different name,
    /// even one with the same length, is cut anew, and a name cut before
    /// is cut again correctly.
    #[test]
    fn a_short_name_is_remembered_only_for_its_own_type() {
        let first = "a::b::Ticker<c::D>";
        let second = "z::y::Worker<c::D>";
        assert_eq!(first.len(), second.len());
        for _ in 0..2 {
            assert_eq!(short_type_name(first), "Ticker");
            assert_eq!(short_type_name(first), "Ticker");
            assert_eq!(short_type_name(second), "Worker");
        }
        assert_eq!(short_type_name(&first[..12]), "Ticker");
        assert_eq!(short_type_name(&first[..7]), "T");
        assert_eq!(cut_type_name("a::Ticker"), "Ticker");
    }
}
