//! Lookup by name and by path, and the one naming rule: names are unique
//! among live siblings, a taken one gets a suffix, and only an exact name
//! is refused.

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
async fn a_second_live_child_with_an_exact_name_is_refused_and_handed_back() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let first = manager
        .insert(process_fn("api", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let refused = manager
        .insert_with(
            IdleProcess,
            ChildOptions::new().name("api").exact_name(true),
        )
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
        .insert_with(
            IdleProcess,
            ChildOptions::new().name("api").exact_name(true),
        )
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

/// A child that waits for shutdown, named at the insert.
fn named(name: impl Into<std::borrow::Cow<'static, str>>) -> impl Runnable {
    process_fn(name, async |ctx| -> procmgr::Result {
        ctx.shutdown_requested().await;
        Ok(())
    })
}

#[tokio::test(start_paused = true)]
async fn names_given_at_the_insert_follow_the_same_suffix_rule_as_default_names() {
    let manager = ProcessManager::new();
    let handle = manager.handle();
    let first = handle.insert(named("worker")).expect("accepted");
    let second = handle
        .insert(named("worker"))
        .expect("a taken name is no refusal");
    let third = handle
        .insert_with(Worker, ChildOptions::new().name("worker"))
        .expect("nor through the options");
    assert_eq!(first.name(), "worker");
    assert_eq!(second.name(), format!("worker-{}", second.id()));
    assert_eq!(third.name(), format!("worker-{}", third.id()));
    for child in [&first, &second, &third] {
        assert_eq!(handle.child(child.name()).map(|c| c.id()), Some(child.id()));
    }

    let run = tokio::spawn(manager.into_future());
    // Once the holder of the plain name has ended, the next child gets it.
    first.shutdown().await;
    let fourth = handle.insert(named("worker")).expect("accepted");
    assert_eq!(fourth.name(), "worker");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[test]
fn a_suffixed_given_name_never_takes_a_name_a_live_sibling_chose() {
    let manager = ProcessManager::new();
    let handle = manager.handle();
    let first = handle.insert(named("worker")).expect("accepted");
    // Ids are handed out in insert order.
    let id = |n: u64| first.id() + n;
    // The child after next would be suffixed `worker-{id(2)}`: a sibling
    // chooses that name first.
    let chosen = handle
        .insert(named(format!("worker-{}", id(2))))
        .expect("accepted");
    assert_eq!(chosen.id(), id(1));
    let next = handle.insert(named("worker")).expect("accepted");
    assert_eq!(next.id(), id(2));
    assert_eq!(next.name(), format!("worker-{}-2", id(2)));
    assert_eq!(
        handle.child(chosen.name()).map(|c| c.id()),
        Some(chosen.id()),
        "the chosen name still finds the sibling that chose it"
    );
    let names: std::collections::HashSet<_> = handle
        .children()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(names.len(), 3, "every live name is unique: {names:?}");
}
