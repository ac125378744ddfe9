//! The manager-wide restart limit (OTP's intensity and period): more than R
//! restarts among all of a manager's children within T fail the manager,
//! and its parent decides. All on paused time, so every instant is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, FailureCause, ProcessManager, Restart, RestartLimit, RunError, Runnable,
    Strategy, process_fn,
};

const MS: Duration = Duration::from_millis(1);

/// The attempts each child started, by name, in the order they started.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<(&'static str, u32)>>>);

impl Starts {
    fn record(&self, name: &'static str, attempt: u32) {
        self.0.lock().expect("lock").push((name, attempt));
    }

    fn of(&self, name: &str) -> u32 {
        let starts = self.0.lock().expect("lock");
        starts.iter().filter(|(n, _)| *n == name).count() as u32
    }
}

/// Runs for `runs_for`, then fails, on each of its first `failures`
/// attempts; the next attempt returns `Ok` at once.
fn fails_after(
    name: &'static str,
    runs_for: Duration,
    failures: u32,
    starts: &Starts,
) -> impl Runnable + use<> {
    let starts = starts.clone();
    process_fn(name, move |ctx| {
        let starts = starts.clone();
        async move {
            starts.record(name, ctx.attempt());
            if ctx.attempt() > failures {
                return Ok(());
            }
            tokio::time::sleep(runs_for).await;
            Err(format!("attempt {} failed", ctx.attempt()))
        }
    })
}

/// Waits for shutdown, then returns `Ok`.
fn steady(name: &'static str, starts: &Starts) -> impl Runnable + use<> {
    let starts = starts.clone();
    process_fn(name, move |ctx| {
        let starts = starts.clone();
        async move {
            starts.record(name, ctx.attempt());
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }
    })
}

/// Awaits a manager's run; one still going after an hour of paused time
/// would go on for ever, and fails the test instead of hanging it.
async fn finish<F: IntoFuture>(run: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), run.into_future())
        .await
        .expect("the run ends")
}

/// Restarted on failure at once, with an own limit that never trips here.
fn restarted() -> ChildOptions {
    ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::none())
        .restart_limit(RestartLimit::new(100, Duration::from_secs(3600)))
}

/// A manager `root` with a limit of 3 restarts within 9 s and one child `w`
/// whose attempts each run for `runs_for` and fail, ten times.
async fn run_with_failures_every(runs_for: Duration, starts: &Starts) -> Result<(), RunError> {
    let manager = ProcessManager::builder()
        .name("root")
        .restart_limit(RestartLimit::new(3, Duration::from_secs(9)))
        .build();
    manager
        .insert_with(fails_after("w", runs_for, 10, starts), restarted())
        .expect("accepted");
    finish(manager).await.map(drop)
}

#[tokio::test(start_paused = true)]
async fn the_limit_trips_at_the_restart_one_more_than_it_allows_within_the_window() {
    let starts = Starts::default();
    // Restarts at 2999, 5998 and 8997 ms are three within 9 s; the fourth,
    // at 11996 ms, is 8997 ms after the first.
    let error = run_with_failures_every(2999 * MS, &starts)
        .await
        .expect_err("the fourth restart within 9 s fails the manager");
    assert_eq!(starts.of("w"), 4, "three restarts, then the limit");
    let failures = error.failures().expect("a child failure");
    assert!(failures.later().is_empty());
    let failure = failures.first();
    assert_eq!(failure.path(), "root/w");
    assert_eq!(
        failure.exceeded_manager_restart_limit(),
        Some(&RestartLimit::new(3, Duration::from_secs(9)))
    );
    assert_eq!(failure.exceeded_restart_limit(), None);
    assert!(
        matches!(failure.cause(), FailureCause::Error(e) if e.to_string() == "attempt 4 failed")
    );
    assert_eq!(
        failure.to_string(),
        "process root/w failed (attempt 4), and restarting it would exceed its manager's restart limit \
         of 3 restarts within 9s"
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_wider_than_the_window_never_trip_the_limit() {
    let starts = Starts::default();
    // Every fourth restart comes exactly 9 s after the first of the three
    // before it: never four within 9 s.
    run_with_failures_every(3000 * MS, &starts)
        .await
        .expect("ten restarts, never four within 9 s");
    assert_eq!(starts.of("w"), 11);
}

/// `a` fails three times, a second apart; `b` and `c` are restarted with it.
async fn group_restarts(strategy: Strategy, starts: &Starts) -> Result<(), RunError> {
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(strategy)
        .restart_limit(RestartLimit::new(2, Duration::from_secs(60)))
        .build();
    manager
        .insert_with(fails_after("a", 1000 * MS, 3, starts), restarted())
        .expect("accepted");
    for name in ["b", "c"] {
        manager
            .insert_with(steady(name, starts), restarted())
            .expect("accepted");
    }
    finish(manager).await.map(drop)
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_counts_once_however_many_members_it_restarts() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let starts = Starts::default();
        let error = group_restarts(strategy, &starts)
            .await
            .expect_err("the third group restart is one too many");
        // Two group restarts of three children each were within the limit.
        assert_eq!(
            [starts.of("a"), starts.of("b"), starts.of("c")],
            [3, 3, 3],
            "{strategy:?}"
        );
        let failure = error.failures().expect("a child failure").first();
        assert_eq!(failure.path(), "root/a", "{strategy:?}");
        assert!(failure.exceeded_manager_restart_limit().is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn the_limit_escalates_through_three_levels_with_the_full_path() {
    let starts = Starts::default();
    let leaf = ProcessManager::builder()
        .name("leaf")
        .restart_limit(RestartLimit::new(1, Duration::from_secs(60)))
        .build();
    leaf.insert_with(fails_after("w", 10 * MS, 10, &starts), restarted())
        .expect("accepted");
    leaf.insert(steady("steady", &starts)).expect("accepted");
    let mid = ProcessManager::builder().name("mid").build();
    mid.insert(leaf).expect("accepted");
    mid.insert(steady("neighbour", &starts)).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(mid).expect("accepted");

    let error = finish(root)
        .await
        .expect_err("the leaf's limit fails the tree");
    assert_eq!(starts.of("w"), 2, "one restart allowed, the second not");
    let failures = error.failures().expect("a child failure");
    let failure = failures.first();
    assert_eq!(failure.path(), "root/mid/leaf/w");
    assert_eq!(
        failure.exceeded_manager_restart_limit(),
        Some(&RestartLimit::new(1, Duration::from_secs(60)))
    );
    assert!(failures.later().is_empty(), "everyone else stopped cleanly");
    assert_eq!(
        error.to_string(),
        "process root/mid/leaf/w failed (attempt 2), and restarting it would exceed its manager's \
         restart limit of 1 restarts within 60s"
    );
}

/// `w` fails every 10 ms with its own limit and its manager's set.
async fn both_limits(own: u32, managers: u32, escalate: bool) -> (u32, Option<RunError>) {
    let starts = Starts::default();
    let manager = ProcessManager::builder()
        .name("root")
        .restart_limit(RestartLimit::new(managers, Duration::from_secs(60)))
        .build();
    let options = restarted()
        .restart_limit(RestartLimit::new(own, Duration::from_secs(60)))
        .escalate(escalate);
    manager
        .insert_with(fails_after("w", 10 * MS, 10, &starts), options)
        .expect("accepted");
    let result = finish(manager).await;
    (starts.of("w"), result.err())
}

#[tokio::test(start_paused = true)]
async fn with_both_limits_the_one_reached_first_decides() {
    let (attempts, error) = both_limits(2, 5, true).await;
    assert_eq!(attempts, 3);
    let error = error.expect("the child's own limit escalates");
    let failure = error.failures().expect("a child failure").first();
    assert_eq!(
        failure.exceeded_restart_limit(),
        Some(&RestartLimit::new(2, Duration::from_secs(60)))
    );
    assert_eq!(failure.exceeded_manager_restart_limit(), None);

    let (attempts, error) = both_limits(5, 2, true).await;
    assert_eq!(attempts, 3);
    let error = error.expect("the manager's limit fails it");
    let failure = error.failures().expect("a child failure").first();
    assert_eq!(failure.exceeded_restart_limit(), None);
    assert_eq!(
        failure.exceeded_manager_restart_limit(),
        Some(&RestartLimit::new(2, Duration::from_secs(60)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_given_up_on_by_its_own_limit_does_not_count_a_restart() {
    // Its own limit lets it go after two restarts, which the manager allows;
    // the third, refused by its own limit, is not counted against the
    // manager's limit of two.
    let (attempts, error) = both_limits(2, 2, false).await;
    assert_eq!(attempts, 3);
    assert!(error.is_none(), "let go, not escalated: {error:?}");
}

#[tokio::test(start_paused = true)]
async fn the_managers_limit_fails_it_even_for_a_child_that_does_not_escalate() {
    let (attempts, error) = both_limits(5, 2, false).await;
    assert_eq!(attempts, 3);
    let error = error.expect("the manager's limit is the manager's own failure");
    let failure = error.failures().expect("a child failure").first();
    assert!(failure.exceeded_manager_restart_limit().is_some());
}

#[tokio::test(start_paused = true)]
async fn clean_exits_restarted_always_count_and_fail_as_exited() {
    let starts = Starts::default();
    let manager = ProcessManager::builder()
        .name("root")
        .restart_limit(RestartLimit::new(2, Duration::from_secs(60)))
        .build();
    let exits = {
        let starts = starts.clone();
        process_fn("exits", move |ctx| {
            let starts = starts.clone();
            async move {
                starts.record("exits", ctx.attempt());
                tokio::time::sleep(10 * MS).await;
                Ok::<_, std::io::Error>(())
            }
        })
    };
    manager
        .insert_with(exits, restarted().restart(Restart::Always))
        .expect("accepted");
    let error = finish(manager)
        .await
        .expect_err("the third restart is one too many");
    assert_eq!(starts.of("exits"), 3);
    let failure = error.failures().expect("a child failure").first();
    assert!(matches!(failure.cause(), FailureCause::Exited));
    assert_eq!(
        failure.to_string(),
        "process root/exits exited (attempt 3), and restarting it would exceed its manager's restart \
         limit of 2 restarts within 60s"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_manager_limit_only_the_childs_own_applies() {
    let starts = Starts::default();
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert_with(fails_after("w", 10 * MS, 10, &starts), restarted())
        .expect("accepted");
    finish(manager)
        .await
        .expect("ten restarts, then a clean exit");
    assert_eq!(starts.of("w"), 11);
}
