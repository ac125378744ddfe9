//! An HTTP service with Kubernetes-style health probes and a drain: `/livez`
//! answers 200 while no child's heartbeat is stale, `/readyz` answers 200
//! while the tree is ready and not shutting down. On `SIGTERM` (or after
//! `--run-for SECONDS`) the tree drains first: `/readyz` turns 503 and the
//! server keeps serving for the drain period, so the load balancer stops
//! sending traffic before the server stops accepting it.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example health --features signal -- --port 8080 --run-for 60
//! curl -i localhost:8080/readyz; kill -TERM <pid>; curl -i localhost:8080/readyz
//! ```
//!
//! Options: `--port PORT` (default 0: any free port, printed), `--run-for
//! SECONDS` (default 3; 0 runs until a signal), `--drain SECONDS` (default
//! 1).
//!
//! # Kubernetes
//!
//! The drain must outlast the time the readiness probe takes to fail
//! (`periodSeconds` × `failureThreshold`) plus the time the endpoint takes
//! to leave the load balancer; `terminationGracePeriodSeconds` must cover
//! the drain, the grace period (10 s here) and a margin, or the kubelet
//! kills the pod mid-stop with `SIGKILL`. With `--drain 15`:
//!
//! ```yaml
//! spec:
//!   terminationGracePeriodSeconds: 30   # drain 15 + grace 10 + 5 margin
//!   containers:
//!     - name: service
//!       args: ["--port", "8080", "--run-for", "0", "--drain", "15"]
//!       ports: [{ containerPort: 8080 }]
//!       readinessProbe:
//!         httpGet: { path: /readyz, port: 8080 }
//!         periodSeconds: 2
//!         failureThreshold: 2      # unready within 4 s of SIGTERM
//!       livenessProbe:
//!         httpGet: { path: /livez, port: 8080 }
//!         periodSeconds: 10
//!         failureThreshold: 3      # restarted after 30 s wedged
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use procmgr::{
    BoxError, ChildOptions, Context, ControlMessage, ManagerHandle, ProcessManager, process_fn,
};

/// The grace period each child has to stop once asked.
const GRACE: Duration = Duration::from_secs(10);

/// The probes, answering for `manager`'s tree.
pub fn probes(manager: ManagerHandle) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(manager)
}

/// 200 while no child's heartbeat is stale; 503 naming the stale ones.
async fn livez(State(manager): State<ManagerHandle>) -> (StatusCode, String) {
    let stale = manager.stale_children();
    if stale.is_empty() {
        (StatusCode::OK, "live\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale heartbeat: {}\n", stale.join(", ")),
        )
    }
}

/// 200 while the tree is ready and not shutting down (draining included).
async fn readyz(State(manager): State<ManagerHandle>) -> (StatusCode, &'static str) {
    if manager.is_shutdown_requested() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if manager.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves the probes (a real service would merge its own routes in) until
/// asked to stop, which comes after the drain.
async fn http(ctx: Context, manager: ManagerHandle, port: u16) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("http: listening on http://{}", listener.local_addr()?);
    ctx.mark_ready();
    let stop = ctx.child_token();
    axum::serve(listener, probes(manager))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    println!("http: stopped");
    Ok(())
}

/// A background job that says it is alive after each round of work.
async fn worker(mut ctx: Context) -> Result<(), BoxError> {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = interval.tick() => ctx.heartbeat(),
            message = ctx.recv() => match message {
                Some(ControlMessage::Reload) => println!("worker: reloading"),
                Some(ControlMessage::Shutdown) | None => break,
                Some(_) => {}
            },
        }
    }
    println!("worker: stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut port = 0;
    let mut run_for = Duration::from_secs(3);
    let mut drain = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a number"));
        match arg.as_str() {
            "--port" => port = value()?.parse()?,
            "--run-for" => run_for = Duration::from_secs(value()?.parse()?),
            "--drain" => drain = Duration::from_secs(value()?.parse()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let manager = ProcessManager::builder()
        .name("health")
        .handle_signals(true)
        .drain_period(drain)
        .grace_period(GRACE)
        .build();
    let handle = manager.handle();
    println!(
        "health: pid {}, SIGTERM drains for {drain:?}",
        std::process::id()
    );
    let probes_for = handle.clone();
    manager.insert_with(
        process_fn("http", move |ctx| http(ctx, probes_for.clone(), port)),
        ChildOptions::new().reports_ready(true),
    )?;
    manager.insert_with(
        process_fn("worker", worker),
        ChildOptions::new().heartbeat_timeout(Duration::from_secs(5)),
    )?;
    if !run_for.is_zero() {
        let stopper = handle.clone();
        manager.insert(process_fn("stopper", move |ctx| {
            let stopper = stopper.clone();
            async move {
                if ctx
                    .run_until_shutdown(tokio::time::sleep(run_for))
                    .await
                    .is_some()
                {
                    println!("stopper: {run_for:?} have passed, draining");
                    stopper.request_shutdown()?;
                }
                Ok::<_, BoxError>(())
            }
        }))?;
    }
    let exit = manager.await?;
    match exit.shutdown_reason() {
        Some(reason) => println!("health: stopped ({reason})"),
        None => println!("health: stopped"),
    }
    Ok(())
}
