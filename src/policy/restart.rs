//! Restart policy, backoff, restart limit and strategy: the settings that
//! decide whether, when and with which siblings a child starts again.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// When a child is started again after it ends.
///
/// # Example
///
/// ```
/// use procmgr::{ChildOptions, IdleProcess, ProcessManager, Restart};
///
/// let manager = ProcessManager::new();
/// // A consumer that reconnects after a failure, but may finish for good.
/// manager.insert_with(IdleProcess, ChildOptions::new().restart(Restart::OnFailure))?;
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Restart {
    /// Never: the child's end is final (the default).
    #[default]
    Never,
    /// After it fails (returns `Err`, panics, or misses its start timeout),
    /// not after it returns `Ok`.
    OnFailure,
    /// After any end. A clean end restarts without the failure backoff.
    Always,
}

/// How much random delay is added to each backoff delay, so that children
/// failing together do not restart together.
///
/// Jitter only ever adds: a delay is never shorter than the exponential
/// value it starts from, so never shorter than the floor given to
/// [`Backoff::exponential`], and it never goes beyond the cap. With `d`
/// the exponential value of a restart (see [`Backoff`]):
///
/// | jitter | the delay lies in |
/// | --- | --- |
/// | `None` | exactly `d` |
/// | `Half` (the default) | `d ..= min(d + d/2, cap)` |
/// | `Full` | `d ..= min(2 d, cap)` |
///
/// Once `d` has reached the cap, no jitter is left: the delay is the cap.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Backoff, Jitter};
///
/// // Exactly 1 s, 2 s, 4 s, ... (tests and examples want exact delays).
/// let exact = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60))
///     .jitter(Jitter::None);
/// # let _ = exact;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The exact delay.
    None,
    /// Adds anywhere from nothing up to half the delay (the default).
    #[default]
    Half,
    /// Adds anywhere from nothing up to the whole delay.
    Full,
}

/// The delay before a failed child is restarted: exponential from a floor to
/// a cap, with jitter, reset once the child has run stably for a while.
///
/// The delay after the `n`-th failure in a row starts from
/// `d = min(floor * 2^(n-1), cap)`, and [`Jitter`] adds a random part on
/// top, never going beyond `cap`. So every delay lies between `floor` and
/// `cap`, both included: the numbers mean what they say.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Backoff, Jitter};
///
/// // The first restart comes after 200 to 300 ms, the second after 400 to
/// // 600 ms, ..., and none later than 10 s after its failure.
/// let backoff = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10))
///     .reset_after(Duration::from_secs(60));
/// // The first restart comes after 200 to 400 ms.
/// let wider = backoff.jitter(Jitter::Full);
/// # let _ = wider;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    floor: Duration,
    cap: Duration,
    jitter: Jitter,
    reset_after: Duration,
}

impl Backoff {
    /// Exponential backoff from `floor` to `cap` (a `cap` below `floor` is
    /// taken as `floor`), with [`Jitter::Half`] and a reset after 60 seconds
    /// of stable running. No delay is shorter than `floor` or longer than
    /// `cap`.
    pub fn exponential(floor: Duration, cap: Duration) -> Self {
        Backoff {
            floor,
            cap: cap.max(floor),
            jitter: Jitter::Half,
            reset_after: Duration::from_secs(60),
        }
    }

    /// No delay at all.
    pub fn none() -> Self {
        Backoff::exponential(Duration::ZERO, Duration::ZERO).jitter(Jitter::None)
    }

    /// How much random delay is added to each delay. Default:
    /// [`Jitter::Half`].
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long a child must run before its failures in a row are counted
    /// from zero again. Default: 60 seconds.
    #[must_use]
    pub fn reset_after(mut self, stable: Duration) -> Self {
        self.reset_after = stable;
        self
    }

    /// The delay after `failures` failures in a row (at least 1), with
    /// `random` as the source of jitter.
    pub(crate) fn delay(&self, failures: u32, random: u64) -> Duration {
        let doublings = failures.saturating_sub(1);
        let exact = match 1_u32.checked_shl(doublings) {
            Some(factor) => self
                .floor
                .checked_mul(factor)
                .map_or(self.cap, |delay| delay.min(self.cap)),
            None => self.cap,
        };
        let most = match self.jitter {
            Jitter::None => return exact,
            Jitter::Half => exact / 2,
            Jitter::Full => exact,
        };
        // `exact <= cap`, so the span is never negative.
        let span = most.min(self.cap - exact);
        exact + fraction(span, random)
    }
}

/// Default: exponential from 100 ms to 30 seconds, with [`Jitter::Half`]
/// (the first restart after 100 to 150 ms) and a reset after 60 seconds.
impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30))
    }
}

/// `random / 2^64` of `span`.
fn fraction(span: Duration, random: u64) -> Duration {
    let nanos = span.as_nanos();
    let scaled = (nanos * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// At most `restarts` restarts within any `window`; one more and the child
/// is given up on, as if it had no restart policy.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{ChildOptions, Restart, RestartLimit};
///
/// // Give up (and let the failure escalate) after the 4th failure within a minute.
/// let limit = RestartLimit::new(3, Duration::from_secs(60));
/// assert_eq!(limit.to_string(), "3 restarts within 60s");
/// let options = ChildOptions::new().restart(Restart::OnFailure).restart_limit(limit);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    restarts: u32,
    window: Duration,
}

impl RestartLimit {
    /// At most `restarts` restarts within any `window`.
    pub fn new(restarts: u32, window: Duration) -> Self {
        RestartLimit { restarts, window }
    }

    /// How many restarts the window allows.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// Default: 5 restarts within 60 seconds.
impl Default for RestartLimit {
    fn default() -> Self {
        RestartLimit::new(5, Duration::from_secs(60))
    }
}

impl fmt::Display for RestartLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} restarts within {:?}", self.restarts, self.window)
    }
}

/// Which children a manager restarts when one of them is restarted.
///
/// # Example
///
/// ```
/// use procmgr::{ChildOptions, IdleProcess, ProcessManager, Restart, Strategy};
///
/// // A connection pool and the workers that use it: when the pool restarts,
/// // the workers inserted after it restart too, the ones before it do not.
/// let always = || ChildOptions::new().restart(Restart::Always);
/// let manager = ProcessManager::builder()
///     .strategy(Strategy::RestForOne)
///     .child_with(IdleProcess, always().name("metrics"))
///     .child_with(IdleProcess, always().name("pool"))
///     .child_with(IdleProcess, always().name("worker"))
///     .build();
/// # let _ = manager;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Only the child that ended (the default).
    #[default]
    OneForOne,
    /// Every child: the others are stopped gracefully, then all start again.
    OneForAll,
    /// The child that ended and every child inserted after it.
    RestForOne,
}

/// The restart bookkeeping of one child with a restart policy.
#[derive(Debug)]
pub(crate) struct RestartState {
    /// When the child is restarted; never `Restart::Never`, whose children
    /// have no restart state.
    pub(crate) policy: Restart,
    pub(crate) backoff: Backoff,
    pub(crate) limit: RestartLimit,
    failures_in_a_row: u32,
    window: RestartWindow,
}

impl RestartState {
    pub(crate) fn new(policy: Restart, backoff: Backoff, limit: RestartLimit) -> Self {
        RestartState {
            policy,
            backoff,
            limit,
            failures_in_a_row: 0,
            window: RestartWindow::default(),
        }
    }

    /// The same policy with no history, for a child started anew.
    pub(crate) fn fresh(&self) -> Self {
        RestartState::new(self.policy, self.backoff, self.limit)
    }

    /// Records a restart at `now`; `false` if it would exceed the limit.
    pub(crate) fn allow_restart(&mut self, now: Instant) -> bool {
        self.window.allow(self.limit, now)
    }

    /// The delay before the next attempt, after an attempt that ran for
    /// `ran_for`.
    pub(crate) fn next_delay(&mut self, failed: bool, ran_for: Duration, random: u64) -> Duration {
        if ran_for >= self.backoff.reset_after {
            self.failures_in_a_row = 0;
        }
        if !failed {
            self.failures_in_a_row = 0;
            return Duration::ZERO;
        }
        self.failures_in_a_row += 1;
        self.backoff.delay(self.failures_in_a_row, random)
    }
}

/// The restarts that happened within a [`RestartLimit`]'s window, oldest
/// first: a child's own, or all of a manager's children's. It holds at most
/// `limit.restarts()` instants.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    recent: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now`; `false`, recording nothing, if it would
    /// be more than `limit` allows.
    pub(crate) fn allow(&mut self, limit: RestartLimit, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.duration_since(oldest) >= limit.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= limit.restarts as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// A small, fast, non-cryptographic random source for jitter (SplitMix64),
/// seeded from the standard library's per-process random hash keys.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        Random(hasher.finish())
    }

    /// A generator that starts from `seed`, so that a test's sequence
    /// repeats.
    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> Self {
        Random(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_without_jitter_doubles_up_to_the_cap() {
        let backoff = Backoff::exponential(100 * MS, 1000 * MS).jitter(Jitter::None);
        let delays: Vec<_> = (1..=6).map(|n| backoff.delay(n, 0)).collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(backoff.delay(u32::MAX, 0), 1000 * MS);
    }

    /// The lowest and highest delay `backoff` gives after `n` failures: the
    /// extremes of the random source, and many draws in between.
    fn bounds(backoff: Backoff, n: u32) -> (Duration, Duration) {
        let mut random = Random::new();
        let (mut low, mut high) = (backoff.delay(n, 0), backoff.delay(n, u64::MAX));
        for _ in 0..10_000 {
            let delay = backoff.delay(n, random.next());
            assert!(
                (low..=high).contains(&delay),
                "{delay:?} outside {low:?}..={high:?}"
            );
            low = low.min(delay);
            high = high.max(delay);
        }
        (low, high)
    }

    #[test]
    fn half_jitter_adds_up_to_half_the_delay_and_never_goes_below_the_floor() {
        let backoff = Backoff::exponential(200 * MS, 10_000 * MS);
        // Half is the default.
        assert_eq!(backoff, backoff.jitter(Jitter::Half));
        assert_eq!(backoff.delay(1, 0), 200 * MS);
        let (low, high) = bounds(backoff, 1);
        assert!(low >= 200 * MS && high <= 300 * MS, "{low:?}..={high:?}");
        assert!(high > 299 * MS, "the jitter really spreads: {high:?}");
        let (low, high) = bounds(backoff, 3);
        assert!(low >= 800 * MS && high <= 1200 * MS, "{low:?}..={high:?}");
    }

    #[test]
    fn full_jitter_adds_up_to_the_whole_delay() {
        let backoff = Backoff::exponential(100 * MS, 1000 * MS).jitter(Jitter::Full);
        assert_eq!(backoff.delay(1, 0), 100 * MS);
        let (low, high) = bounds(backoff, 2);
        assert!(low >= 200 * MS && high <= 400 * MS, "{low:?}..={high:?}");
        assert!(high > 399 * MS, "the jitter really spreads: {high:?}");
    }

    #[test]
    fn jitter_never_goes_beyond_the_cap() {
        for jitter in [Jitter::Half, Jitter::Full] {
            let backoff = Backoff::exponential(100 * MS, 300 * MS).jitter(jitter);
            // 200 ms plus up to 100 or 200 ms, cut at 300 ms.
            let (low, high) = bounds(backoff, 2);
            assert!(low >= 200 * MS && high <= 300 * MS, "{low:?}..={high:?}");
            assert!(high > 299 * MS, "{high:?}");
            // At the cap there is nothing left to add.
            assert_eq!(bounds(backoff, 3), (300 * MS, 300 * MS));
            assert_eq!(bounds(backoff, u32::MAX), (300 * MS, 300 * MS));
        }
    }

    #[test]
    fn the_limit_allows_exactly_r_restarts_in_the_window() {
        let mut state = RestartState::new(
            Restart::Always,
            Backoff::none(),
            RestartLimit::new(3, 10 * 1000 * MS),
        );
        let start = Instant::now();
        assert!(state.allow_restart(start));
        assert!(state.allow_restart(start + 1000 * MS));
        assert!(state.allow_restart(start + 2000 * MS));
        assert!(!state.allow_restart(start + 3000 * MS));
        // Once the first falls out of the window, one more fits.
        assert!(state.allow_restart(start + 10_000 * MS));
    }

    #[test]
    fn failures_in_a_row_reset_after_a_stable_run_and_after_a_clean_end() {
        let backoff = Backoff::exponential(100 * MS, 10_000 * MS)
            .jitter(Jitter::None)
            .reset_after(5000 * MS);
        let mut state = RestartState::new(Restart::Always, backoff, RestartLimit::default());
        let quick = Duration::ZERO;
        let stable = 5000 * MS;
        assert_eq!(state.next_delay(true, quick, 0), 100 * MS);
        assert_eq!(state.next_delay(true, quick, 0), 200 * MS);
        assert_eq!(state.next_delay(true, quick, 0), 400 * MS);
        assert_eq!(state.next_delay(true, stable, 0), 100 * MS);
        assert_eq!(state.next_delay(false, stable, 0), Duration::ZERO);
        assert_eq!(state.next_delay(true, stable, 0), 100 * MS);
    }

    /// SplitMix64 as published (Vigna's reference `splitmix64.c`): these are
    /// its first outputs from state 0. A slip in the mixing still looks
    /// random, so only known values catch it.
    #[test]
    fn random_is_splitmix64() {
        let mut random = Random(0);
        assert_eq!(
            [random.next(), random.next(), random.next()],
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f
            ]
        );
    }
}
