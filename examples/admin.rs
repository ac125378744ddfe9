//! An admin endpoint that serves the live process tree as JSON: `GET /tree`
//! answers with [`TreeSnapshot`](procmgr::TreeSnapshot)'s versioned JSON
//! shape (feature `serde`), so a dashboard or `curl` can see what runs.
//!
//! The endpoint is a child of the tree it shows, written against a plain
//! `tokio::net::TcpListener` to stay free of web frameworks; with axum it
//! would be a route returning `Json(handle.tree())`. The example asks its
//! own endpoint once, prints the answer, and stops after `--run-for`
//! seconds (default 2).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example admin --features serde
//! cargo run --example admin --features serde -- --run-for 60 --listen 127.0.0.1:8080
//! curl -s localhost:8080/tree      # in another terminal
//! ```

#![allow(clippy::print_stdout)]

use std::borrow::Cow;
use std::time::Duration;

use procmgr::{BoxError, Context, ManagerHandle, ProcessManager, Runnable, process_fn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves `GET /tree` with the tree of the manager it holds.
struct Admin {
    listener: TcpListener,
    tree: ManagerHandle,
}

impl Runnable for Admin {
    type Error = std::io::Error;

    /// Ready once it listens.
    fn reports_ready(&self) -> bool {
        true
    }

    /// Answers connections one at a time, each within a second, until the
    /// tree stops: an admin endpoint sees little traffic, and a slow client
    /// cannot hold up the shutdown for longer than that.
    async fn run(&self, ctx: Context) -> std::io::Result<()> {
        ctx.mark_ready();
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => accepted?,
                () = ctx.shutdown_requested() => return Ok(()),
            };
            let answered =
                tokio::time::timeout(Duration::from_secs(1), answer(stream, &self.tree)).await;
            if let Ok(Err(error)) = answered {
                // A client that goes away mid-request is not the server's
                // failure.
                println!("admin: {error}");
            }
        }
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("admin")
    }
}

async fn answer(stream: TcpStream, tree: &ManagerHandle) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let mut request_line = String::new();
    stream.read_line(&mut request_line).await?;
    // The headers are not needed; read them so the client is not reset.
    let mut header = String::new();
    while stream.read_line(&mut header).await? > 2 {
        header.clear();
    }
    let (status, body) = match request_line.split_whitespace().take(2).collect::<Vec<_>>()[..] {
        ["GET", "/tree"] => {
            // The snapshot is taken first; serializing it holds no lock of
            // the manager's.
            let snapshot = tree.tree();
            ("200 OK", serde_json::to_vec_pretty(&snapshot)?)
        }
        _ => ("404 Not Found", b"{\"error\":\"not found\"}".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let stream = stream.get_mut();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// What `curl -s http://{address}/tree` would print.
async fn fetch_tree(address: std::net::SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /tree HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut run_for = Duration::from_secs(2);
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--run-for" => {
                let seconds: u64 = args.next().ok_or("--run-for needs a number")?.parse()?;
                run_for = Duration::from_secs(seconds);
            }
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let workers = ProcessManager::builder().name("workers").build();
    for n in 0..2 {
        workers.insert(
            process_fn(format!("worker-{n}"), |ctx| async move {
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            })
            .reporting_ready(),
        )?;
    }
    let root = ProcessManager::builder().name("service").build();
    root.insert(workers)?;

    let listener = TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    println!("admin: serving http://{address}/tree for {run_for:?}");
    root.insert(Admin {
        listener,
        tree: root.handle(),
    })?;

    let handle = root.handle();
    root.insert(process_fn("stopper", move |ctx| {
        let handle = handle.clone();
        async move {
            // Once everything is up, ask the endpoint what it sees.
            handle.ready().await;
            println!("{}", fetch_tree(address).await?);
            tokio::select! {
                () = tokio::time::sleep(run_for) => {}
                () = ctx.shutdown_requested() => return Ok(()),
            }
            handle.request_shutdown()?;
            Ok::<_, BoxError>(())
        }
    }))?;
    root.await?;
    Ok(())
}
