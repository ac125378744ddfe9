//! The names of a manager's live children, for lookups by name and to keep
//! siblings' names unique.
//!
//! An insert and a lookup each hash the name once; an end reuses the hash
//! its record keeps. The map is keyed by that hash (a keyed multiply hash,
//! with keys of its own, folded to 32 bits) and holds the record's slot; the
//! record holds the name, which a lookup compares. The map rehashes nothing
//! when it grows and stores no copy of a name: an entry is 8 bytes. Two live
//! names with the same hash are rare (about one pair among 100,000 names);
//! the second goes to a map keyed by the name itself (with `std`'s SipHash),
//! empty otherwise.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// The hash of the name map: a multiply-and-fold over the name's bytes,
/// eight at a time, with keys drawn per map. About a tenth of what a
/// SipHash costs on a name this short, and hashed once or twice per insert.
/// It is not made to resist names chosen to collide by someone who can see
/// the hashes, and need not be: names whose hashes collide go to a map of
/// their own, keyed by the name with `std`'s SipHash, so a collision costs
/// a lookup there, never a wrong answer or a slow map.
struct NameHasher {
    keys: [u64; 2],
}

impl NameHasher {
    fn new() -> Self {
        // `std`'s per-process random keys, drawn through a SipHash of two
        // numbers: once per manager.
        let random = RandomState::new();
        NameHasher {
            keys: [random.hash_one(1_u8), random.hash_one(2_u8)],
        }
    }

    fn hash(&self, bytes: &[u8]) -> u32 {
        let [first, second] = self.keys;
        // The length goes in, so that a name and the same name with zero
        // bytes after it (the last word is padded with zeros) differ.
        let mut state = first ^ (bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut word_bytes = [0; 8];
            word_bytes.copy_from_slice(word);
            state = folded_multiply(state ^ u64::from_le_bytes(word_bytes), second);
        }
        let rest = words.remainder();
        let mut last = [0; 8];
        last[..rest.len()].copy_from_slice(rest);
        state = folded_multiply(state ^ u64::from_le_bytes(last), second);
        // A last round, so that every input bit reaches both halves.
        let hash = folded_multiply(state, first | 1);
        (hash ^ (hash >> 32)) as u32
    }
}

/// The 128-bit product of `a` and `b`, its halves xored together.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

pub(crate) struct Names {
    hasher: NameHasher,
    by_hash: HashMap<u32, u32, BuildHasherDefault<Prehashed>>,
    /// Names whose hash a live name in `by_hash` has too.
    collided: HashMap<Box<[u8]>, usize>,
}

impl Names {
    pub(crate) fn new() -> Self {
        Names {
            hasher: NameHasher::new(),
            by_hash: HashMap::default(),
            collided: HashMap::new(),
        }
    }

    /// The hash every other method takes along with the name.
    pub(crate) fn hash(&self, name: &(impl AsRef<[u8]> + ?Sized)) -> u32 {
        self.hasher.hash(name.as_ref())
    }

    /// The slot of the live child named `name`; `name_at` reads a live
    /// child's name from its slot.
    pub(crate) fn get<'a>(
        &self,
        name: &(impl AsRef<[u8]> + ?Sized),
        hash: u32,
        name_at: impl Fn(usize) -> &'a [u8],
    ) -> Option<usize> {
        let name = name.as_ref();
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
    pub(crate) fn insert(&mut self, name: &(impl AsRef<[u8]> + ?Sized), hash: u32, slot: usize) {
        match (self.by_hash.entry(hash), u32::try_from(slot)) {
            (std::collections::hash_map::Entry::Vacant(entry), Ok(slot)) => {
                entry.insert(slot);
            }
            // Taken, or (past four billion live children) a slot too large.
            _ => {
                // Rare enough that a copy of the name does not matter.
                self.collided.insert(Box::from(name.as_ref()), slot);
            }
        }
    }

    /// Removes the name of the live child in `slot`.
    pub(crate) fn remove(&mut self, name: &(impl AsRef<[u8]> + ?Sized), hash: u32, slot: usize) {
        if self
            .by_hash
            .get(&hash)
            .is_some_and(|&held| held as usize == slot)
        {
            self.by_hash.remove(&hash);
        } else {
            self.collided.remove(name.as_ref());
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
        fn at(&self) -> impl Fn(usize) -> &'static [u8] + '_ {
            |slot| self.0[slot].as_bytes()
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

    /// Distinct names get distinct hashes, as random 32-bit numbers would:
    /// among 100,000 names that differ only in their suffix (the names a
    /// manager of one type of child makes) about one pair shares a hash,
    /// and ten pairs are allowed.
    #[test]
    fn distinct_names_hash_apart() {
        let names = Names::new();
        for prefix in ["c", "Idle-", "a_rather_longer_type_name-"] {
            let hashes: std::collections::HashSet<u32> = (0..100_000)
                .map(|n| names.hash(&format!("{prefix}{n}")))
                .collect();
            assert!(
                hashes.len() >= 99_990,
                "{} distinct hashes for {prefix}",
                hashes.len()
            );
        }
    }

    /// The hash, with fixed keys, of names around the word length: any
    /// change to how words are read, mixed or folded changes these.
    #[test]
    fn a_name_hash_with_fixed_keys_is_known() {
        let hasher = NameHasher {
            keys: [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210],
        };
        let names = [
            "",
            "a",
            "Idle",
            "Idle-4711",
            "12345678",
            "a_rather_longer_name-17",
        ];
        let hashes: Vec<u32> = names
            .iter()
            .map(|name| hasher.hash(name.as_bytes()))
            .collect();
        // Little-endian words and 128-bit products: the same on every
        // platform.
        assert_eq!(
            hashes,
            [
                1_339_248_983,
                319_530_326,
                280_728_928,
                2_480_175_863,
                3_108_897_403,
                4_201_482_466
            ]
        );
    }

    /// Every byte of a name counts, in every word and in the last, short
    /// one; so do trailing zero bytes, which the last word is padded with.
    #[test]
    fn a_name_hash_depends_on_every_byte_and_the_length() {
        let names = Names::new();
        let name = "abcdefghijklmnopqrs";
        let hash = names.hash(name);
        for index in 0..name.len() {
            let mut changed = name.as_bytes().to_vec();
            changed[index] ^= 1;
            let changed = String::from_utf8(changed).expect("ASCII");
            assert_ne!(names.hash(&changed), hash, "byte {index}");
        }
        assert_ne!(names.hash("Idle"), names.hash("Idle\0"));
        assert_ne!(names.hash(""), names.hash("\0"));
        assert_ne!(names.hash("12345678"), names.hash("12345678\0"));
    }

    /// Each map draws keys of its own: the same names hash differently in
    /// two maps.
    #[test]
    fn each_map_hashes_with_keys_of_its_own() {
        let (one, other) = (Names::new(), Names::new());
        let same = (0..100)
            .filter(|n| {
                let name = format!("c{n}");
                one.hash(&name) == other.hash(&name)
            })
            .count();
        assert!(same < 5, "{same} of 100 names hash alike in two maps");
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
            let at = |slot: usize| in_slot[slot].unwrap_or("").as_bytes();
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
