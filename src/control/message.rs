use std::any::Any;
use std::fmt;

/// A control message a running process receives through
/// [`Context::recv`](crate::Context::recv).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Context, ControlMessage};
///
/// async fn poller(mut ctx: Context) -> procmgr::Result {
///     let mut every = Duration::from_secs(1);
///     let mut ticks = tokio::time::interval(every);
///     loop {
///         tokio::select! {
///             _ = ticks.tick() => { /* poll */ }
///             message = ctx.recv() => match message {
///                 Some(ControlMessage::Reload) => {
///                     every = Duration::from_secs(5); // re-read the configuration
///                     ticks = tokio::time::interval(every);
///                 }
///                 Some(ControlMessage::Custom(custom)) => {
///                     if let Some(text) = custom.downcast_ref::<&str>() {
///                         println!("told: {text}");
///                     }
///                 }
///                 Some(ControlMessage::Shutdown) | None => return Ok(()),
///                 Some(_) => {}
///             },
///         }
///     }
/// }
/// # let _ = poller;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlMessage {
    /// Shutdown was requested: finish up and return.
    Shutdown,
    /// A reload was requested: re-read configuration, reconnect, and so on.
    /// Reloads sent while the process was busy arrive as one.
    Reload,
    /// A message sent with [`ChildHandle::send`](crate::ChildHandle::send).
    Custom(CustomMessage),
}

/// A value of any type sent to a process with
/// [`ChildHandle::send`](crate::ChildHandle::send).
///
/// # Example
///
/// ```
/// # use procmgr::CustomMessage;
/// fn handle(message: CustomMessage) {
///     match message.downcast::<String>() {
///         Ok(text) => println!("got {text}"),
///         Err(other) => println!("unexpected message: {other:?}"),
///     }
/// }
/// ```
pub struct CustomMessage(Box<dyn Any + Send>);

impl CustomMessage {
    pub(crate) fn new<T: Any + Send>(value: T) -> Self {
        CustomMessage(Box::new(value))
    }

    /// Whether the message holds a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.0.is::<T>()
    }

    /// The message as a `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }

    /// Takes the `T` out of the message.
    ///
    /// # Errors
    ///
    /// Hands the message back unchanged when it does not hold a `T`.
    pub fn downcast<T: Any>(self) -> Result<T, CustomMessage> {
        self.0.downcast().map(|value| *value).map_err(CustomMessage)
    }
}

impl fmt::Debug for CustomMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomMessage").finish_non_exhaustive()
    }
}
