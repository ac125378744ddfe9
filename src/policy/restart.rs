//! Restart policy, backoff, restart limit and strategy: the settings that
//! decide whether, when and with which siblings a child starts again.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// When a child is started again after it ends.
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

/// How much of the backoff delay is randomised, so that children failing
/// together do not restart together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The exact delay.
    None,
    /// Anywhere between zero and the delay.
    Full,
    /// Half the delay plus anywhere up to the other half (the default).
    #[default]
    Equal,
}

/// The delay before a failed child is restarted: exponential from a floor to
/// a cap, with jitter, reset once the child has run stably for a while.
///
/// The delay after the `n`-th failure in a row is `floor * 2^(n-1)`, at most
/// `cap`, then jittered.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10))
///     .jitter(Jitter::Full)
///     .reset_after(Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    floor: Duration,
    cap: Duration,
    jitter: Jitter,
    reset_after: Duration,
}

impl Backoff {
    /// Exponential backoff from `floor` to `cap`, with equal jitter and a
    /// reset after 60 seconds of stable running.
    pub fn exponential(floor: Duration, cap: Duration) -> Self {
        Backoff {
            floor,
            cap: cap.max(floor),
            jitter: Jitter::Equal,
            reset_after: Duration::from_secs(60),
        }
    }

    /// No delay at all.
    pub fn none() -> Self {
        Backoff::exponential(Duration::ZERO, Duration::ZERO).jitter(Jitter::None)
    }

    /// How the delay is randomised. Default: [`Jitter::Equal`].
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
        match self.jitter {
            Jitter::None => exact,
            Jitter::Full => fraction(exact, random),
            Jitter::Equal => exact / 2 + fraction(exact - exact / 2, random),
        }
    }
}

/// Default: exponential from 100 ms to 30 seconds, with equal jitter and a
/// reset after 60 seconds.
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

    #[test]
    fn full_jitter_stays_between_zero_and_the_delay() {
        let backoff = Backoff::exponential(100 * MS, 1000 * MS).jitter(Jitter::Full);
        let mut random = Random::new();
        for n in 1..=5 {
            let exact = Backoff::exponential(100 * MS, 1000 * MS)
                .jitter(Jitter::None)
                .delay(n, 0);
            for _ in 0..1000 {
                assert!(backoff.delay(n, random.next()) <= exact);
            }
        }
        assert_eq!(backoff.delay(1, 0), Duration::ZERO);
        assert!(backoff.delay(1, u64::MAX) > 99 * MS);
    }

    #[test]
    fn equal_jitter_keeps_at_least_half_the_delay() {
        let backoff = Backoff::exponential(100 * MS, 1000 * MS).jitter(Jitter::Equal);
        let mut random = Random::new();
        let (mut low, mut high) = (Duration::MAX, Duration::ZERO);
        for _ in 0..10_000 {
            let delay = backoff.delay(3, random.next());
            assert!((200 * MS..=400 * MS).contains(&delay), "{delay:?}");
            low = low.min(delay);
            high = high.max(delay);
        }
        // The jitter really spreads the delays.
        assert!(low < 220 * MS && high > 380 * MS, "{low:?}..{high:?}");
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
}
