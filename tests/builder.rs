//! The builder: children given up front are inserted by the same rules as
//! `insert`, and none is dropped silently.

use procmgr::{Context, IdleProcess, ProcessManager, Runnable};

/// A process under its type's default name.
struct Worker;

impl Runnable for Worker {
    type Error = std::convert::Infallible;

    async fn run(&self, ctx: Context) -> Result<(), Self::Error> {
        ctx.shutdown_requested().await;
        Ok(())
    }
}

fn names(manager: &ProcessManager) -> Vec<String> {
    manager
        .handle()
        .children()
        .iter()
        .map(|child| child.name().to_owned())
        .collect()
}

#[test]
fn the_builder_keeps_every_idle_process_it_is_given() {
    let manager = ProcessManager::builder()
        .child(IdleProcess)
        .child(IdleProcess)
        .build();
    let names = names(&manager);
    assert_eq!(names.len(), 2, "the builder dropped a child: {names:?}");
    assert_ne!(names[0], names[1]);
}

#[test]
fn the_builder_keeps_repeated_children_under_their_types_default_name() {
    let manager = ProcessManager::builder()
        .child(Worker)
        .child(Worker)
        .build();
    let names = names(&manager);
    assert_eq!(names.len(), 2, "the builder dropped a child: {names:?}");
    assert_eq!(names[0], "Worker");
    assert!(names[1].starts_with("Worker-"), "{names:?}");
}

#[test]
fn a_taken_exact_name_makes_try_build_fail_naming_both_ends() {
    use procmgr::{ChildOptions, InsertErrorKind};
    let refused = ProcessManager::builder()
        .name("api")
        .child_with(IdleProcess, ChildOptions::new().name("http"))
        .child_with(Worker, ChildOptions::new().name("http").exact_name(true))
        .try_build()
        .expect_err("insert would refuse the second `http`");
    assert_eq!(refused.kind(), InsertErrorKind::DuplicateName);
    assert_eq!((refused.manager(), refused.child()), ("api", "http"));
    assert_eq!(
        refused.to_string(),
        "process manager `api` was given two children named `http`"
    );
}

#[test]
#[should_panic(expected = "process manager `api` was given two children named `http`")]
fn build_panics_where_try_build_would_fail() {
    use procmgr::ChildOptions;
    let _ = ProcessManager::builder()
        .name("api")
        .child_with(IdleProcess, ChildOptions::new().name("http"))
        .child_with(Worker, ChildOptions::new().name("http").exact_name(true))
        .build();
}
