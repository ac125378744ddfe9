//! The names of a manager's live children, for lookups by name and to keep
//! siblings' names unique.
//!
//! An insert and a lookup each hash the name once; an end reuses the hash
//! its record keeps. The map is keyed by that hash (SipHash with keys of its
//! own, as `std`'s maps are, so that names taken from outside cannot be
//! chosen to collide, folded to 32 bits) and holds the record's slot; the
//! record holds the name, which a lookup compares. The map rehashes nothing
//! when it grows and stores no copy of a name: an entry is 8 bytes. Two live
//! names with the same hash are rare (about one pair among 100,000 names);
//! the second goes to a map keyed by the name itself, empty otherwise.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// `name-number`, or `name-number-extra` with an `extra` above 1: the name
/// of a child whose own name a sibling has. Written by hand: `format!` costs
/// several times as much, and a manager of many children of one type makes
/// one for nearly every child.
pub(crate) fn suffixed(name: &str, number: u64, extra: u32) -> String {
    // Sized exactly: the string lives as long as its child, and malloc's
    // size classes go in steps of 16 bytes (`Idle-4711` takes 32 bytes of
    // heap, 48 with room for the longest number).
    let extra = (extra > 1).then_some(u64::from(extra));
    let length = name.len() + 1 + digits(number) + extra.map_or(0, |extra| 1 + digits(extra));
    let mut text = String::with_capacity(length);
    text.push_str(name);
    push_number(&mut text, number);
    if let Some(extra) = extra {
        push_number(&mut text, extra);
    }
    text
}

/// How many decimal digits `number` has.
fn digits(number: u64) -> usize {
    number.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `-` and `number` in decimal.
fn push_number(text: &mut String, mut number: u64) {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let mut digits = [0; 20];
    let mut count = 0;
    loop {
        digits[count] = number % 10;
        count += 1;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    text.push('-');
    for &digit in digits[..count].iter().rev() {
        // Below 10: a `u64` remainder.
        text.push_str(DIGITS[digit as usize]);
    }
}

pub(crate) struct Names {
    hasher: RandomState,
    by_hash: HashMap<u32, u32, BuildHasherDefault<Prehashed>>,
    /// Names whose hash a live name in `by_hash` has too.
    collided: HashMap<String, usize>,
}

impl Names {
    pub(crate) fn new() -> Self {
        Names {
            hasher: RandomState::new(),
            by_hash: HashMap::default(),
            collided: HashMap::new(),
        }
    }

    /// The hash every other method takes along with the name.
    pub(crate) fn hash(&self, name: &str) -> u32 {
        let hash = self.hasher.hash_one(name);
        // Both halves count.
        (hash ^ (hash >> 32)) as u32
    }

    /// The slot of the live child named `name`; `name_at` reads a live
    /// child's name from its slot.
    pub(crate) fn get<'a>(
        &self,
        name: &str,
        hash: u32,
        name_at: impl Fn(usize) -> &'a str,
    ) -> Option<usize> {
        if let Some(&slot) = self.by_hash.get(&hash) {
            let slot = slot as usize;
            if name_at(slot) == name {
                return Some(slot);
            }
        }
        if self.collided.is_empty() {
            return None;
        }
        self.collided.get(name).copied()
    }

    /// Adds a name no live child has.
    pub(crate) fn insert(&mut self, name: &str, hash: u32, slot: usize) {
        match (self.by_hash.entry(hash), u32::try_from(slot)) {
            (std::collections::hash_map::Entry::Vacant(entry), Ok(slot)) => {
                entry.insert(slot);
            }
            // Taken, or (past four billion live children) a slot too large.
            _ => {
                // Rare enough that a copy of the name does not matter.
                self.collided.insert(name.to_owned(), slot);
            }
        }
    }

    /// Removes the name of the live child in `slot`.
    pub(crate) fn remove(&mut self, name: &str, hash: u32, slot: usize) {
        if self
            .by_hash
            .get(&hash)
            .is_some_and(|&held| held as usize == slot)
        {
            self.by_hash.remove(&hash);
        } else {
            self.collided.remove(name);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.by_hash.capacity()
    }

    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.by_hash.shrink_to(capacity);
        self.collided.shrink_to_fit();
    }

    pub(crate) fn clear(&mut self) {
        self.by_hash.clear();
        self.collided.clear();
    }
}

/// Hashes a `u32` that is a hash already: spread over 64 bits by an odd
/// multiplier (the map takes its buckets from the low bits and a tag from the
/// top seven).
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed with it; this folds anything else in
        // rather than losing it.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = u64::from(value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Names {
        /// Room for `additional` more names in the map by hash, as a burst
        /// of inserts leaves (for the registry's tests of `shrink`).
        pub(crate) fn reserve(&mut self, additional: usize) {
            self.by_hash.reserve(additional);
        }
    }

    /// Names in slots, as the registry's records hold them.
    struct Slots(Vec<&'static str>);

    impl Slots {
        fn at(&self) -> impl Fn(usize) -> &'static str + '_ {
            |slot| self.0[slot]
        }
    }

    #[test]
    fn names_are_found_by_name_and_forgotten_on_removal() {
        let slots = Slots(vec!["a", "b", "c"]);
        let mut names = Names::new();
        for (slot, name) in slots.0.iter().enumerate() {
            names.insert(name, names.hash(name), slot);
        }
        assert_eq!(names.len(), 3);
        assert_eq!(names.get("b", names.hash("b"), slots.at()), Some(1));
        assert_eq!(names.get("d", names.hash("d"), slots.at()), None);
        names.remove("b", names.hash("b"), 1);
        assert_eq!(names.get("b", names.hash("b"), slots.at()), None);
        assert_eq!(names.get("c", names.hash("c"), slots.at()), Some(2));
        assert_eq!(names.len(), 2);
    }

    /// Two names with one hash both stay findable, and each is removed
    /// alone, whichever goes first; the map for collisions empties again.
    #[test]
    fn names_with_the_same_hash_are_told_apart() {
        let slots = Slots(vec!["first", "second", "third"]);
        for removed_first in [0, 1] {
            let mut names = Names::new();
            // Every name gets hash 7: the worst case, forced.
            for (slot, name) in slots.0.iter().enumerate().take(2) {
                names.insert(name, 7, slot);
            }
            assert_eq!(names.len(), 2);
            assert_eq!(names.get("first", 7, slots.at()), Some(0));
            assert_eq!(names.get("second", 7, slots.at()), Some(1));
            assert_eq!(names.get("third", 7, slots.at()), None);

            let kept = 1 - removed_first;
            names.remove(slots.0[removed_first], 7, removed_first);
            assert_eq!(names.get(slots.0[removed_first], 7, slots.at()), None);
            assert_eq!(names.get(slots.0[kept], 7, slots.at()), Some(kept));
            // A third name with that hash, while one of the two lives.
            names.insert("third", 7, 2);
            assert_eq!(names.get("third", 7, slots.at()), Some(2));
            assert_eq!(names.get(slots.0[kept], 7, slots.at()), Some(kept));
            names.remove("third", 7, 2);
            names.remove(slots.0[kept], 7, kept);
            assert_eq!(names.len(), 0);
            assert!(names.collided.is_empty());
        }
    }

    /// A name whose hash no live name has is kept by its hash alone, with
    /// no copy of the name.
    #[test]
    fn a_name_with_a_hash_of_its_own_is_not_copied() {
        let mut names = Names::new();
        names.insert("first", 1, 0);
        names.insert("second", 2, 1);
        assert_eq!(names.len(), 2);
        assert!(names.collided.is_empty());
    }

    /// Distinct names get distinct hashes: two of a thousand names share
    /// one in about one run in 9,000, and five pairs are allowed.
    #[test]
    fn distinct_names_hash_apart() {
        let names = Names::new();
        let hashes: std::collections::HashSet<u32> =
            (0..1000).map(|n| names.hash(&format!("c{n}"))).collect();
        assert!(hashes.len() >= 995, "{} distinct hashes", hashes.len());
    }

    #[test]
    fn clear_forgets_every_name_collided_ones_too() {
        let slots = Slots(vec!["first", "second"]);
        let mut names = Names::new();
        names.insert("first", 7, 0);
        names.insert("second", 7, 1);
        names.clear();
        assert_eq!(names.len(), 0);
        assert_eq!(names.get("first", 7, slots.at()), None);
        assert_eq!(names.get("second", 7, slots.at()), None);
    }

    #[test]
    fn a_suffixed_name_is_the_name_a_dash_and_the_number() {
        let cases = [
            ("w", 0, 1, "w-0"),
            ("Idle", 4711, 1, "Idle-4711"),
            ("Idle", 4711, 2, "Idle-4711-2"),
            ("Idle", 4711, 10, "Idle-4711-10"),
            ("Idle", 9, 1, "Idle-9"),
            ("Idle", 10, 99, "Idle-10-99"),
            ("Idle", 999_999, 100, "Idle-999999-100"),
            ("ünïcode", 7, 1, "ünïcode-7"),
            ("x", u64::MAX, u32::MAX, "x-18446744073709551615-4294967295"),
        ];
        for (name, number, extra, expected) in cases {
            let suffixed = suffixed(name, number, extra);
            assert_eq!(suffixed, expected);
            // Sized exactly, so that no allocation is larger than it needs.
            assert_eq!(suffixed.capacity(), expected.len(), "{expected}");
        }
    }

    /// Distinct keys stay distinct, and keys reach the top bits the map
    /// takes its tags from.
    #[test]
    fn a_prehashed_key_is_spread_over_64_bits() {
        let build = BuildHasherDefault::<Prehashed>::default();
        let hashes: std::collections::HashSet<u64> =
            (0..1000_u32).map(|key| build.hash_one(key)).collect();
        assert_eq!(hashes.len(), 1000);
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|hash| hash >> 57).collect();
        assert!(tags.len() > 100, "{} tags", tags.len());
    }

    /// Bytes other than a `u32` key (no map hashes any) are folded in, not
    /// lost: each of them counts, even past the eighth.
    #[test]
    fn a_prehashed_byte_key_depends_on_every_byte() {
        let hash = |bytes: &[u8]| {
            let mut hasher = Prehashed::default();
            hasher.write(bytes);
            hasher.finish()
        };
        let ones = [0xff_u8; 16];
        for index in 0..ones.len() {
            let mut changed = ones;
            changed[index] = 0;
            assert_ne!(hash(&changed), hash(&ones), "byte {index}");
        }
    }

    /// Random inserts and removes of 64 names forced onto 3 hashes, so
    /// nearly every name collides with others, against a map: removing one
    /// of two names with the same hash never loses the other, whichever
    /// goes first and whatever arrives in between.
    #[test]
    fn colliding_names_agree_with_a_map() {
        use std::collections::HashMap;
        let mut generator = crate::policy::Random::seeded(0x9e37_79b9_7f4a_7c15);
        let mut random = move || usize::try_from(generator.next()).expect("64-bit");
        let pool: Vec<String> = (0..64).map(|n| format!("n{n}")).collect();
        let hash = |name: &str| {
            let last = u32::from(*name.as_bytes().last().expect("not empty"));
            (u32::try_from(name.len()).expect("short") + last) % 3
        };
        let mut in_slot: Vec<Option<&str>> = vec![None; 64];
        let mut free: Vec<usize> = (0..64).collect();
        let mut names = Names::new();
        let mut model: HashMap<&str, usize> = HashMap::new();
        for _ in 0..50_000 {
            let name = pool[random() % pool.len()].as_str();
            if let Some(&slot) = model.get(name) {
                if random() % 2 == 0 {
                    names.remove(name, hash(name), slot);
                    model.remove(name);
                    in_slot[slot] = None;
                    free.push(slot);
                }
            } else {
                let slot = free.swap_remove(random() % free.len());
                in_slot[slot] = Some(name);
                names.insert(name, hash(name), slot);
                model.insert(name, slot);
            }
            let at = |slot: usize| in_slot[slot].unwrap_or("");
            for name in &pool {
                assert_eq!(
                    names.get(name, hash(name), at),
                    model.get(name.as_str()).copied(),
                    "{name}"
                );
            }
            assert_eq!(names.len(), model.len());
        }
    }
}
