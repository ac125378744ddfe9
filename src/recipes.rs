//! Recipes: whole programs for the jobs a service asks of procmgr, each a
//! doctest that runs.
//!
//! - [A worker pool that may shrink to nothing](#a-worker-pool-that-may-shrink-to-nothing)
//! - [Reloading configuration on `SIGHUP`](#reloading-configuration-on-sighup)
//! - [A server whose graceful shutdown follows its child's token](#a-server-whose-graceful-shutdown-follows-its-childs-token)
//! - [A server whose end ends the service](#a-server-whose-end-ends-the-service)
//! - [Work that blocks its thread](#work-that-blocks-its-thread)
//!
//! # A worker pool that may shrink to nothing
//!
//! A nested manager is the pool: insert a worker to grow it, stop one
//! through its handle to shrink it. Built with
//! [`keep_running`](crate::ProcessManagerBuilder::keep_running), the pool
//! runs on with no worker at all, so it can grow again later; without it, a
//! pool scaled to zero would end, and the next insert would be refused.
//! Every worker may share one name: the second and later live ones get
//! their id as a suffix (see [`ManagerHandle::insert`](crate::ManagerHandle::insert)).
//!
//! ```
//! use procmgr::{ChildHandle, ManagerHandle, ProcessManager, process_fn};
//!
//! fn worker() -> impl procmgr::Runnable {
//!     process_fn("worker", async |ctx| -> procmgr::Result {
//!         // Take jobs from a queue until asked to stop.
//!         ctx.shutdown_requested().await;
//!         Ok(())
//!     })
//! }
//!
//! /// Grows or shrinks `pool` to `size` workers.
//! async fn scale(
//!     pool: &ManagerHandle,
//!     workers: &mut Vec<ChildHandle>,
//!     size: usize,
//! ) -> Result<(), procmgr::BoxError> {
//!     while workers.len() < size {
//!         workers.push(pool.insert(worker())?);
//!     }
//!     while workers.len() > size {
//!         if let Some(extra) = workers.pop() {
//!             extra.shutdown().await; // graceful, within its grace period
//!         }
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procmgr::BoxError> {
//! let pool = ProcessManager::builder().name("pool").keep_running(true).build();
//! let pool_handle = pool.handle();
//! let root = ProcessManager::builder().name("service").build();
//! root.insert(pool)?;
//! let root_handle = root.handle();
//! let run = tokio::spawn(root.into_future());
//!
//! let mut workers = Vec::new();
//! scale(&pool_handle, &mut workers, 4).await?;
//! assert_eq!(workers[1].name(), format!("worker-{}", workers[1].id()));
//! scale(&pool_handle, &mut workers, 0).await?;
//! // Empty, and still running: it grows again.
//! assert!(!pool_handle.is_finished());
//! scale(&pool_handle, &mut workers, 2).await?;
//! assert_eq!(pool_handle.children().len(), 2);
//!
//! root_handle.shutdown().await;
//! run.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Reloading configuration on `SIGHUP`
//!
//! With the `signal` feature,
//! [`handle_signals(true)`](crate::ProcessManagerBuilder::handle_signals)
//! turns `SIGHUP` into a reload of the whole tree: every child receives
//! [`ControlMessage::Reload`](crate::ControlMessage::Reload) from
//! [`Context::recv`](crate::Context::recv), once even if several came while
//! it was busy. A child reloads by reading its configuration again, and
//! keeps the old one if the new one does not parse, so a typo does not take
//! the service down. [`ManagerHandle::request_reload`](crate::ManagerHandle::request_reload)
//! does from code what `SIGHUP` does; the example uses it so that it runs
//! anywhere.
//!
//! ```
//! use std::path::PathBuf;
//! use procmgr::{Context, ControlMessage, ProcessManager, process_fn_with};
//! use tokio::sync::mpsc;
//!
//! #[derive(Debug, PartialEq)]
//! struct Config {
//!     greeting: String,
//! }
//!
//! fn load(path: &PathBuf) -> Result<Config, procmgr::BoxError> {
//!     let text = std::fs::read_to_string(path)?;
//!     let greeting = text.strip_prefix("greeting=").ok_or("expected greeting=...")?;
//!     Ok(Config { greeting: greeting.trim().to_owned() })
//! }
//!
//! async fn greeter(
//!     path: PathBuf,
//!     mut ctx: Context,
//!     applied: mpsc::UnboundedSender<String>,
//! ) -> procmgr::Result {
//!     // A bad file at start fails the child: there is nothing to run with.
//!     let mut config = load(&path)?;
//!     applied.send(config.greeting.clone())?;
//!     while let Some(message) = ctx.recv().await {
//!         match message {
//!             ControlMessage::Reload => match load(&path) {
//!                 Ok(new) => {
//!                     config = new;
//!                     applied.send(config.greeting.clone())?;
//!                 }
//!                 // Keep serving with the old configuration; a real
//!                 // service would log this.
//!                 Err(error) => applied.send(format!("kept {:?}: {error}", config.greeting))?,
//!             },
//!             ControlMessage::Shutdown => break,
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procmgr::BoxError> {
//! let path = std::env::temp_dir().join(format!("procmgr-recipe-{}.conf", std::process::id()));
//! std::fs::write(&path, "greeting=hello")?;
//!
//! let (applied, mut seen) = mpsc::unbounded_channel();
//! let builder = ProcessManager::builder().name("service");
//! // SIGINT and SIGTERM stop the tree, SIGHUP reloads it.
//! #[cfg(feature = "signal")]
//! let builder = builder.handle_signals(true);
//! let manager = builder.build();
//! manager.insert(process_fn_with("greeter", (path.clone(), applied), |(path, applied), ctx| {
//!     greeter(path, ctx, applied)
//! }))?;
//! let handle = manager.handle();
//! let run = tokio::spawn(manager.into_future());
//! assert_eq!(seen.recv().await.as_deref(), Some("hello"));
//!
//! std::fs::write(&path, "greeting=bonjour")?;
//! handle.request_reload()?; // what `kill -HUP <pid>` does
//! assert_eq!(seen.recv().await.as_deref(), Some("bonjour"));
//!
//! std::fs::write(&path, "oops")?;
//! handle.request_reload()?;
//! let kept = seen.recv().await.unwrap_or_default();
//! assert!(kept.starts_with("kept \"bonjour\""), "{kept}");
//!
//! handle.shutdown().await;
//! run.await??;
//! std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```
//!
//! # A server whose graceful shutdown follows its child's token
//!
//! Server libraries take a future or a token that says when to stop
//! accepting and drain (axum's `with_graceful_shutdown`, hyper's
//! `GracefulShutdown`, tonic's `serve_with_shutdown`). Give them
//! [`Context::child_token`](crate::Context::child_token): it is cancelled
//! when shutdown of the child is requested, and if the library cancels it
//! itself, the child is not stopped by that. With axum, for example:
//!
//! ```text
//! let token = ctx.child_token();
//! axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await?;
//! ```
//!
//! The same with nothing but tokio: stop accepting once the token is
//! cancelled, then let the connections in flight finish. Whatever is still
//! running when the grace period ends is aborted by the manager.
//!
//! ```
//! use procmgr::{CancellationToken, ProcessManager, process_fn};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use tokio::sync::oneshot;
//! use tokio::task::JoinSet;
//!
//! /// Serves until `stop` is cancelled, then drains: the shape of a
//! /// server library's graceful shutdown.
//! async fn serve(listener: TcpListener, stop: CancellationToken) -> std::io::Result<()> {
//!     let mut connections = JoinSet::new();
//!     loop {
//!         tokio::select! {
//!             () = stop.cancelled() => break,
//!             accepted = listener.accept() => {
//!                 let (mut stream, _) = accepted?;
//!                 connections.spawn(async move {
//!                     let mut request = [0; 64];
//!                     let n = stream.read(&mut request).await?;
//!                     stream.write_all(&request[..n]).await // echo
//!                 });
//!             }
//!         }
//!     }
//!     drop(listener); // new connections are refused from here on
//!     while let Some(done) = connections.join_next().await {
//!         // One connection's error is not the server's.
//!         let _ = done;
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procmgr::BoxError> {
//! let (bound, address) = oneshot::channel();
//! let manager = ProcessManager::builder().name("service").build();
//! let http = procmgr::process_fn_once("http", move |ctx| async move {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     bound.send(listener.local_addr()?).map_err(|_| "nobody waits for the address")?;
//!     ctx.mark_ready();
//!     serve(listener, ctx.child_token()).await?;
//!     Ok(())
//! })
//! .reporting_ready();
//! manager.insert(http)?;
//! let handle = manager.handle();
//! let run = tokio::spawn(manager.into_future());
//!
//! let address = address.await?;
//! handle.ready().await;
//! let mut client = TcpStream::connect(address).await?;
//! client.write_all(b"ping").await?;
//! let mut reply = [0; 4];
//! client.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"ping");
//!
//! handle.shutdown().await; // the token is cancelled, the server drains
//! run.await??;
//! assert!(TcpStream::connect(address).await.is_err(), "no longer listening");
//! # Ok(())
//! # }
//! ```
//!
//! # A server whose end ends the service
//!
//! A service is often one main server with helpers around it (a metrics
//! exporter, a cache refresher). When the server returns, even with `Ok`,
//! the service has nothing left to do; insert it with
//! [`significant(true)`](crate::ChildOptions::significant) and its end stops
//! the whole manager. The run then returns `Ok` with
//! [`ShutdownReason::ChildEnded`](crate::ShutdownReason::ChildEnded), and
//! the helpers see the same reason. (Were the server to fail, the run would
//! return its error, significant or not.)
//!
//! ```
//! use std::time::Duration;
//! use procmgr::{ChildOptions, ProcessManager, ShutdownReason, process_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procmgr::BoxError> {
//! let manager = ProcessManager::builder().name("service").build();
//! manager.insert_with(
//!     process_fn("server", async |_ctx| -> procmgr::Result {
//!         // Serve until the work is done (here, at once).
//!         Ok(())
//!     }),
//!     ChildOptions::new().significant(true),
//! )?;
//! manager.insert(process_fn("metrics", async |ctx| -> procmgr::Result {
//!     let mut ticks = tokio::time::interval(Duration::from_secs(10));
//!     while ctx.run_until_shutdown(ticks.tick()).await.is_some() {
//!         // export
//!     }
//!     Ok(())
//! }))?;
//! let exit = manager.await?;
//! assert_eq!(
//!     exit.shutdown_reason(),
//!     Some(&ShutdownReason::ChildEnded { path: "service/server".into() }),
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Work that blocks its thread
//!
//! Tokio stops a task only at an `.await`. A child that computes, sleeps
//! with `std::thread::sleep` or does blocking I/O without awaiting cannot
//! be aborted, not even after its grace period: it holds the shutdown (and
//! the thread it runs on) until it returns by itself. Move such work off
//! the async threads with [`tokio::task::spawn_blocking`] and await its
//! handle: the child then stays abortable, and the work itself checks
//! [`CancellationToken::is_cancelled`](crate::CancellationToken::is_cancelled)
//! between steps so that it stops too. (An aborted child leaves a blocking
//! task running until it returns; the runtime waits for it when it shuts
//! down.)
//!
//! ```
//! use procmgr::{ProcessManager, process_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), procmgr::BoxError> {
//! let manager = ProcessManager::new();
//! manager.insert(process_fn("crunch", async |ctx| -> procmgr::Result {
//!     let stop = ctx.child_token();
//!     let steps = tokio::task::spawn_blocking(move || {
//!         let mut steps = 0_u64;
//!         while !stop.is_cancelled() && steps < 1_000 {
//!             steps += 1; // one bounded step of blocking work
//!         }
//!         steps
//!     });
//!     let steps = steps.await?;
//!     println!("{} did {steps} steps", ctx.path());
//!     Ok(())
//! }))?;
//! manager.await?;
//! # Ok(())
//! # }
//! ```
