//! Auto-cleanup: a child that ends leaves no record behind, unless cleanup is
//! off, in which case the records stay for inspection.

use procmgr::{Context, IdleProcess, Outcome, ProcessManager, Runnable, process_fn};

/// Ends at once. Inserted many at a time under its type's default name,
/// which gets the child's id as a suffix when repeated.
struct Short;

impl Runnable for Short {
    type Error = std::convert::Infallible;

    async fn run(&self, _ctx: Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_million_short_children_leave_no_records() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    let mut most_records = 0;
    for round in 0..1_000 {
        let mut batch = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let child = handle.insert(Short).expect("running");
            batch.push(child);
        }
        for child in batch {
            assert!(matches!(child.wait().await, Outcome::Completed));
        }
        let records = handle.children().len();
        most_records = most_records.max(records);
        assert_eq!(
            records, 1,
            "only the idle child is left after round {round}"
        );
    }
    assert_eq!(most_records, 1);

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn with_cleanup_off_ended_children_stay_listed_with_their_outcome() {
    let manager = ProcessManager::builder()
        .auto_cleanup(false)
        .child(IdleProcess)
        .build();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    let short = handle
        .insert(process_fn("short", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("running");
    let failing = handle
        .insert(process_fn("failing", |ctx| async move {
            ctx.shutdown_requested().await;
            Err::<(), _>("bad stop")
        }))
        .expect("running");
    short.wait().await;

    let children = handle.children();
    assert_eq!(children.len(), 3);
    let short_record = children
        .iter()
        .find(|child| child.id() == short.id())
        .expect("kept");
    assert!(matches!(short_record.outcome(), Some(Outcome::Completed)));

    handle.request_shutdown().expect("running");
    assert!(run.await.expect("joined").is_err());
    let outcomes: Vec<_> = handle
        .children()
        .iter()
        .map(|child| {
            (
                child.name().to_owned(),
                child.outcome().map(|o| o.to_string()),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("idle".to_owned(), Some("stopped".to_owned())),
            ("short".to_owned(), Some("completed".to_owned())),
            ("failing".to_owned(), Some("failed: bad stop".to_owned())),
        ]
    );
    assert!(failing.is_finished());
}
