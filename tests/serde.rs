//! With the `serde` feature a snapshot serializes to the versioned JSON shape
//! `TreeSnapshot`'s docs describe; this file pins that shape field by field.
#![cfg(feature = "serde")]

use std::time::Duration;

use procmgr::{Backoff, ChildOptions, IdleProcess, Jitter, ProcessManager, Restart, process_fn};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_tree_serializes_to_the_documented_json_shape() {
    let consumers = ProcessManager::builder()
        .name("consumers")
        .auto_cleanup(false)
        .build();
    consumers
        .insert_with(
            process_fn("kafka-0", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("broker down");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(5), Duration::from_secs(5))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    consumers
        .insert_with(
            process_fn("once", |_ctx| async { Ok::<_, std::io::Error>(()) }),
            ChildOptions::new().escalate(false),
        )
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(
        process_fn("http", |ctx| async move {
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        })
        .reporting_ready(),
    )
    .expect("accepted");
    root.insert(consumers).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());

    // kafka-0 failed at 1 s and restarts at 6 s.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let tree = serde_json::to_value(handle.tree()).expect("serializes");
    assert_eq!(
        tree,
        json!({
            "version": 1,
            "path": "root",
            "children": [
                {
                    "id": 0, "name": "http", "path": "root/http",
                    "state": "ready", "restart_in_ms": null, "outcome": null,
                    "restarts": 0, "uptime_ms": 2500, "last_error": null,
                    "slow_polls": 0, "longest_poll_ms": null, "blocking_ms": null
                },
                {
                    "id": 1, "name": "consumers", "path": "root/consumers",
                    "state": "ready", "restart_in_ms": null, "outcome": null,
                    "restarts": 0, "uptime_ms": 2500, "last_error": null,
                    "slow_polls": 0, "longest_poll_ms": null, "blocking_ms": null,
                    "children": [
                        {
                            "id": 0, "name": "kafka-0", "path": "root/consumers/kafka-0",
                            "state": "restarting", "restart_in_ms": 3500, "outcome": null,
                            "restarts": 0, "uptime_ms": null, "last_error": "broker down",
                            "slow_polls": 0, "longest_poll_ms": null, "blocking_ms": null
                        },
                        {
                            "id": 1, "name": "once", "path": "root/consumers/once",
                            "state": "ended", "restart_in_ms": null, "outcome": "completed",
                            "restarts": 0, "uptime_ms": null, "last_error": null,
                            "slow_polls": 0, "longest_poll_ms": null, "blocking_ms": null
                        }
                    ]
                }
            ]
        })
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[test]
fn a_child_info_serializes_alone_as_the_same_object_without_children() {
    let manager = ProcessManager::builder().name("root").build();
    manager.insert(IdleProcess).expect("accepted");
    let info = manager.handle().snapshot().remove(0);
    assert_eq!(
        serde_json::to_value(&info).expect("serializes"),
        json!({
            "id": 0, "name": "idle", "path": "root/idle",
            "state": "starting", "restart_in_ms": null, "outcome": null,
            "restarts": 0, "uptime_ms": null, "last_error": null,
            "slow_polls": 0, "longest_poll_ms": null, "blocking_ms": null
        })
    );
}
