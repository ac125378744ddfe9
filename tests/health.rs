//! The health example's probes, asked over real HTTP: `/readyz` follows
//! readiness and the drain, `/livez` follows heartbeats.
#![cfg(feature = "signal")]

#[path = "../examples/health.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::time::Duration;

use procmgr::{ChildOptions, ProcessManager, process_fn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The status code and body of `GET path`.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Real time: the probes run on real sockets, which paused time would skip
/// past (the drain would be over before the request arrived). The drain is
/// a minute, which the test never waits for: a force ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_follow_readiness_the_drain_and_heartbeats() {
    let manager = ProcessManager::builder()
        .name("svc")
        .drain_period(Duration::from_secs(60))
        .build();
    let handle = manager.handle();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (wedge_tx, wedge_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let channels = std::sync::Mutex::new(Some((ready_rx, wedge_rx, release_rx)));
    manager
        .insert_with(
            process_fn("worker", move |ctx| {
                let channels = channels.lock().expect("lock").take();
                async move {
                    let (ready, wedge, release) = channels.expect("one attempt");
                    while !ctx.is_shutdown_requested() {
                        ctx.heartbeat();
                        if ready.try_recv().is_ok() {
                            ctx.mark_ready();
                        }
                        if wedge.try_recv().is_ok() {
                            // Stuck in blocking code, out of the abort's reach.
                            tokio::task::block_in_place(|| release.recv().ok());
                            tokio::task::yield_now().await;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok::<_, std::io::Error>(())
                }
            }),
            ChildOptions::new()
                .reports_ready(true)
                .heartbeat_timeout(Duration::from_millis(200)),
        )
        .expect("accepted");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(axum::serve(listener, example::probes(handle.clone())).into_future());
    let run = tokio::spawn(manager.into_future());

    assert_eq!(
        get(address, "/readyz").await,
        (503, "not ready\n".to_owned())
    );
    assert_eq!(get(address, "/livez").await, (200, "live\n".to_owned()));

    ready_tx.send(()).expect("the worker runs");
    handle.ready().await;
    assert_eq!(get(address, "/readyz").await, (200, "ready\n".to_owned()));

    // The drain: unready at once, while the worker runs on.
    handle.request_shutdown().expect("running");
    assert_eq!(
        get(address, "/readyz").await,
        (503, "shutting down\n".to_owned())
    );
    assert_eq!(get(address, "/livez").await, (200, "live\n".to_owned()));

    wedge_tx.send(()).expect("the worker runs");
    loop {
        let (status, body) = get(address, "/livez").await;
        if status == 503 {
            assert_eq!(body, "stale heartbeat: svc/worker\n");
            break;
        }
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    release_tx.send(()).expect("the worker waits");
    let _ = handle.force_shutdown(procmgr::ShutdownReason::Requested);
    assert!(
        run.await.expect("joined").is_err(),
        "the wedged worker failed"
    );
    server.abort();
}
