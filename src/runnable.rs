//! The [`Runnable`] trait every process implements, and [`process_fn`], the
//! closure adapter for one-off workers.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::control::Context;
use crate::policy::ChildOptions;

/// The error a process may fail with: any error type, boxed.
///
/// Every `E: Into<BoxError>` converts with `?` or [`Into::into`]: `std::io::Error`,
/// `anyhow::Error`, `String`, your own error types.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

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
}

/// Wraps a closure into a named [`Runnable`], so a one-off worker is one
/// expression.
///
/// The closure is called once each time the process is started and must
/// return a fresh future; clone what the future needs inside the closure.
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
    }
}

/// A closure turned into a [`Runnable`] by [`process_fn`].
pub struct ProcessFn<F> {
    name: Cow<'static, str>,
    f: F,
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
}

/// Whether `R` is a [`ProcessFn`] (seen through `Arc`s), whose name is
/// given where it is made rather than by its type.
pub(crate) fn is_process_fn<R: Runnable>() -> bool {
    let mut full = std::any::type_name::<R>();
    while let Some(inner) = full
        .strip_prefix("alloc::sync::Arc<")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        full = inner;
    }
    full.starts_with(PROCESS_FN)
}

/// `ProcessFn`'s path as `type_name` spells it, generics cut off.
const PROCESS_FN: &str = "procmgr::runnable::ProcessFn<";

pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    // One pass over the bytes: this runs on every insert of a process with
    // the default name. `:` and `<` are ASCII, so every cut is at a char
    // boundary.
    let mut start = 0;
    for (index, byte) in full.bytes().enumerate() {
        match byte {
            b'<' => return &full[start..index],
            b':' => start = index + 1,
            _ => {}
        }
    }
    &full[start..]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{is_process_fn, process_fn, short_type_name};
    use crate::IdleProcess;

    #[test]
    fn short_type_name_strips_path_and_generics() {
        assert_eq!(short_type_name("a::b::Ticker<c::D>"), "Ticker");
        assert_eq!(short_type_name("Ticker"), "Ticker");
        assert_eq!(short_type_name("a::Ticker"), "Ticker");
    }

    fn is_process_fn_of<R: crate::Runnable>(_: &R) -> bool {
        is_process_fn::<R>()
    }

    #[test]
    fn process_fns_are_told_from_types_through_arcs() {
        let worker = process_fn("w", |_ctx| async { Ok::<_, std::io::Error>(()) });
        assert!(is_process_fn_of(&worker));
        assert!(is_process_fn_of(&Arc::new(Arc::new(worker))));
        assert!(!is_process_fn_of(&IdleProcess));
        assert!(!is_process_fn_of(&Arc::new(IdleProcess)));
    }
}
