//! Lookup by name and by path, and the uniqueness of given names among live
//! siblings.

use std::sync::Arc;
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, Context, IdleProcess, InsertErrorKind, ProcessManager, Restart,
    Runnable, process_fn,
};

/// A process under its type's default name.
struct Worker;

impl Runnable for Worker {
    type Error = std::convert::Infallible;

    async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
        ctx.shutdown_requested().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn children_are_found_by_name_and_by_path_through_nested_managers() {
    let consumers = ProcessManager::builder().name("consumers").build();
    let kafka = consumers
        .insert_with(
            process_fn("kafka-0", |ctx| async move {
                if ctx.attempt() == 1 {
                    return Err("flaky");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let inner = root.insert(consumers).expect("accepted");
    root.insert(IdleProcess).expect("accepted");
    let handle = root.handle();

    assert_eq!(handle.child("consumers").map(|c| c.id()), Some(inner.id()));
    assert_eq!(
        handle.find("consumers/kafka-0").map(|c| c.id()),
        Some(kafka.id())
    );
    assert!(handle.find("consumers/nope").is_none());
    assert!(
        handle.find("idle/deeper").is_none(),
        "idle is not a manager"
    );

    let run = tokio::spawn(root.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restarted, and still the same child under the same name.
    let found = handle.find("consumers/kafka-0").expect("still there");
    assert_eq!(found.id(), kafka.id());
    assert_eq!(found.restarts(), 1);

    // Once it has ended it is gone.
    kafka.shutdown().await;
    assert!(handle.find("consumers/kafka-0").is_none());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_second_live_child_with_a_given_name_is_refused_and_handed_back() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let first = manager
        .insert(process_fn("api", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let refused = manager
        .insert_with(IdleProcess, ChildOptions::new().name("api"))
        .expect_err("the name is taken");
    assert_eq!(refused.kind(), InsertErrorKind::DuplicateName);
    assert_eq!(
        refused.to_string(),
        "cannot insert `api` into process manager `manager`: a live child has that name"
    );
    let _back: IdleProcess = refused.into_inner();

    // A repeated default name gets the child's id as a suffix.
    let a = manager.insert(Worker).expect("accepted");
    let b = manager.insert(Worker).expect("accepted");
    assert_eq!(a.name(), "Worker");
    assert_eq!(b.name(), format!("Worker-{}", b.id()));
    assert_eq!(
        manager.handle().child("Worker").map(|c| c.id()),
        Some(a.id())
    );
    assert_eq!(
        manager.handle().child(b.name()).map(|c| c.id()),
        Some(b.id())
    );

    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    // Once the first has ended, its name is free again.
    first.shutdown().await;
    handle
        .insert_with(IdleProcess, ChildOptions::new().name("api"))
        .expect("the name is free");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[test]
fn an_arc_under_its_default_name_is_named_like_what_it_holds() {
    let manager = ProcessManager::new();
    let a = manager.insert(Arc::new(Worker)).expect("accepted");
    let b = manager
        .insert(Arc::new(Worker))
        .expect("a repeated default name gets a suffix, as for a Worker by value");
    assert_eq!(a.name(), "Worker");
    assert_eq!(b.name(), format!("Worker-{}", b.id()));
}

#[test]
fn a_default_name_suffix_never_collides_with_a_name_the_user_chose() {
    let manager = ProcessManager::new();
    let first = manager.insert(Worker).expect("accepted");
    // Ids follow insertion order: the next default-named child would get
    // the id two past the first's, so the user takes that suffix first.
    let taken = format!("Worker-{}", first.id() + 2);
    let chosen = manager
        .insert_with(Worker, ChildOptions::new().name(taken.clone()))
        .expect("accepted");
    let second = manager
        .insert(Worker)
        .expect("a repeated default name is never refused");
    assert_eq!(first.name(), "Worker");
    assert_eq!(chosen.name(), taken);
    assert!(second.name().starts_with("Worker-"), "{}", second.name());
    assert_ne!(second.name(), chosen.name());
    assert_eq!(manager.handle().children().len(), 3);
}
