//! A minimal slab: records addressed by a reusable index, so inserting and
//! removing a child are O(1) and the storage of ended children is reused.
//!
//! Entries live in fixed-size chunks rather than one growing `Vec`: a `Vec`
//! that doubles keeps up to half its capacity unused, which at 80 bytes a
//! record was a sixth of a child's memory. Each chunk keeps its own list of
//! vacant entries, so that a chunk whose last entry is removed can be given
//! back at once, wherever it lies, without touching the other chunks: after
//! a burst of children, the chunks they filled go as their last child ends,
//! not only those at the end, and with no look over every entry.

/// Entries per chunk: big enough that the chunk table stays short, small
/// enough that a partly used chunk costs little.
const CHUNK: usize = 256;

pub(crate) struct Slab<T> {
    /// Indexed by `key / CHUNK`. A chunk given back has no entries and no
    /// allocation; its index is in `spare`.
    chunks: Vec<Chunk<T>>,
    /// Chunks with a vacant entry; inserts go into the last. Chunks that
    /// have filled up or been given back since they were listed may still
    /// be listed below the last, and are skipped once they come up: the
    /// last is always one with room (see [`settle_open`](Slab::settle_open)).
    open: Vec<usize>,
    /// Indexes of chunks given back, taken again before the table grows.
    spare: Vec<usize>,
    len: usize,
    /// Chunks that hold an allocation.
    allocated: usize,
}

struct Chunk<T> {
    /// Empty, with no allocation, once given back; else allocated for
    /// `CHUNK` entries up front and filled by `push`.
    entries: Vec<Entry<T>>,
    used: usize,
    /// The first vacant entry, or `entries.len()` when every entry pushed
    /// so far is occupied.
    next_free: usize,
    /// Whether the chunk is in `Slab::open`.
    listed: bool,
}

enum Entry<T> {
    Vacant { next_free: usize },
    Occupied(T),
}

impl<T> Chunk<T> {
    const fn given_back() -> Self {
        Chunk {
            entries: Vec::new(),
            used: 0,
            next_free: 0,
            listed: false,
        }
    }

    /// Whether it holds memory. (Records are never zero-sized, whose `Vec`
    /// would report a capacity without one.)
    fn is_allocated(&self) -> bool {
        self.entries.capacity() != 0
    }

    fn has_room(&self) -> bool {
        self.is_allocated() && self.used < CHUNK
    }

    fn insert(&mut self, value: T) -> usize {
        let index = self.next_free;
        self.used += 1;
        match self.entries.get_mut(index) {
            Some(entry) => {
                let Entry::Vacant { next_free } = *entry else {
                    unreachable!("the free list only holds vacant entries");
                };
                *entry = Entry::Occupied(value);
                self.next_free = next_free;
            }
            None => {
                // The free list is empty, so `index` is one past the last
                // entry pushed.
                self.entries.push(Entry::Occupied(value));
                self.next_free = index + 1;
            }
        }
        index
    }

    fn remove(&mut self, index: usize) -> Option<T> {
        let next_free = self.next_free;
        let entry = self.entries.get_mut(index)?;
        if matches!(entry, Entry::Vacant { .. }) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant { next_free }) else {
            unreachable!("checked above");
        };
        self.next_free = index;
        self.used -= 1;
        Some(value)
    }
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            open: Vec::new(),
            spare: Vec::new(),
            len: 0,
            allocated: 0,
        }
    }

    /// Occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key the next [`insert`](Slab::insert) will use.
    pub(crate) fn vacant_key(&self) -> usize {
        match self.open.last() {
            Some(&chunk) => chunk * CHUNK + self.chunks[chunk].next_free,
            None => self.spare.last().copied().unwrap_or(self.chunks.len()) * CHUNK,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        let chunk = match self.open.last() {
            Some(&chunk) => chunk,
            None => self.allocate(),
        };
        let index = self.chunks[chunk].insert(value);
        self.len += 1;
        if self.chunks[chunk].used == CHUNK {
            self.settle_open();
        }
        chunk * CHUNK + index
    }

    /// Allocates a chunk, in a spare index if there is one, and lists it.
    /// Only called with no chunk listed.
    fn allocate(&mut self) -> usize {
        let index = self.spare.pop().unwrap_or_else(|| {
            self.chunks.push(Chunk::given_back());
            self.chunks.len() - 1
        });
        let chunk = &mut self.chunks[index];
        chunk.entries = Vec::with_capacity(CHUNK);
        chunk.listed = true;
        self.open.push(index);
        self.allocated += 1;
        index
    }

    /// Unlists the chunks at the end of `open` that have no room, so that
    /// its last has. Each chunk is unlisted once per listing: O(1)
    /// amortized.
    fn settle_open(&mut self) {
        while let Some(&index) = self.open.last() {
            let chunk = &mut self.chunks[index];
            if chunk.has_room() {
                return;
            }
            chunk.listed = false;
            self.open.pop();
        }
    }

    /// Removes the entry; a chunk left empty is given back unless the other
    /// chunks have fewer than half a chunk of room. That margin keeps a
    /// manager whose live count moves around a chunk's edge from giving a
    /// chunk back and taking it again on every other child: between giving
    /// one back and allocating the next there are at least half a chunk of
    /// inserts.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let index = key / CHUNK;
        let chunk = self.chunks.get_mut(index)?;
        let value = chunk.remove(key % CHUNK)?;
        self.len -= 1;
        if chunk.used == 0 && (self.allocated - 1) * CHUNK - self.len >= CHUNK / 2 {
            *chunk = Chunk {
                listed: chunk.listed,
                ..Chunk::given_back()
            };
            self.allocated -= 1;
            self.spare.push(index);
            self.settle_open();
        } else if !chunk.listed {
            chunk.listed = true;
            self.open.push(index);
        }
        Some(value)
    }

    /// Gives back the room the chunk table and its lists grew to, once the
    /// chunks at its end have been given back. Cheap when there is nothing
    /// to do; otherwise O(table), which the chunks given back since have
    /// paid for.
    pub(crate) fn shrink(&mut self) {
        if self.chunks.last().is_none_or(Chunk::is_allocated) {
            return;
        }
        while self
            .chunks
            .last()
            .is_some_and(|chunk| !chunk.is_allocated())
        {
            self.chunks.pop();
        }
        let table = self.chunks.len();
        let chunks = &mut self.chunks;
        self.open.retain(|&index| {
            let keep = index < table && chunks[index].has_room();
            if let Some(chunk) = chunks.get_mut(index) {
                chunk.listed = keep;
            }
            keep
        });
        self.spare.retain(|&index| index < table);
        // Lowest first, so that the table grows at its end only when full.
        self.spare.sort_unstable_by(|a, b| b.cmp(a));
        for list in [&mut self.open, &mut self.spare] {
            if list.capacity() > 2 * list.len() + 16 {
                list.shrink_to_fit();
            }
        }
        if self.chunks.capacity() > 2 * table + 16 {
            self.chunks.shrink_to_fit();
        }
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        match self.chunks.get(key / CHUNK)?.entries.get(key % CHUNK) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self
            .chunks
            .get_mut(key / CHUNK)?
            .entries
            .get_mut(key % CHUNK)
        {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flat_map(|chunk| &chunk.entries)
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant { .. } => None,
            })
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.chunks
            .iter_mut()
            .enumerate()
            .flat_map(|(index, chunk)| {
                chunk
                    .entries
                    .iter_mut()
                    .enumerate()
                    .map(move |(entry, value)| (index * CHUNK + entry, value))
            })
            .filter_map(|(key, entry)| match entry {
                Entry::Occupied(value) => Some((key, value)),
                Entry::Vacant { .. } => None,
            })
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.open.clear();
        self.spare.clear();
        self.len = 0;
        self.allocated = 0;
        self.chunks
            .drain(..)
            .flat_map(|chunk| chunk.entries)
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Slab};

    #[test]
    fn removed_keys_are_reused() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.vacant_key(), a);
        assert_eq!(slab.insert("c"), a);
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        assert_eq!(slab.get(a), Some(&"c"));
        let mut rest: Vec<_> = slab.drain().collect();
        rest.sort_unstable();
        assert_eq!(rest, ["b", "c"]);
        assert_eq!(slab.insert("d"), 0);
    }

    #[test]
    fn keys_span_chunks() {
        let mut slab = Slab::new();
        let keys: Vec<usize> = (0..CHUNK * 2 + 3).map(|n| slab.insert(n)).collect();
        assert_eq!(keys, (0..CHUNK * 2 + 3).collect::<Vec<_>>());
        assert_eq!(slab.get(CHUNK + 1), Some(&(CHUNK + 1)));
        assert_eq!(slab.remove(CHUNK), Some(CHUNK));
        assert_eq!(slab.insert(999), CHUNK);
        let seen: Vec<usize> = slab.iter_mut().map(|(key, _)| key).collect();
        assert_eq!(seen.len(), CHUNK * 2 + 3);
        assert_eq!(seen[CHUNK], CHUNK);
        assert_eq!(slab.iter().count(), CHUNK * 2 + 3);
    }

    /// A slab of `chunks` full chunks, with only the keys `keep` says left.
    fn burst(chunks: usize, keep: impl Fn(usize) -> bool) -> Slab<usize> {
        let mut slab = Slab::new();
        for n in 0..chunks * CHUNK {
            slab.insert(n);
        }
        for key in (0..chunks * CHUNK).filter(|&key| !keep(key)) {
            slab.remove(key);
        }
        slab
    }

    fn allocated(slab: &Slab<usize>) -> Vec<usize> {
        (0..slab.chunks.len())
            .filter(|&index| slab.chunks[index].is_allocated())
            .collect()
    }

    #[test]
    fn a_chunk_left_empty_is_given_back_wherever_it_lies_and_keys_stay_valid() {
        // One entry kept in the first chunk and one in the last: the three
        // between are given back as they empty.
        let last = 5 * CHUNK - 1;
        let slab = burst(5, |key| key == 5 || key == last);
        assert_eq!(allocated(&slab), [0, 4]);
        assert_eq!(slab.allocated, 2);
        assert_eq!(slab.len, 2);
        assert_eq!(slab.get(5), Some(&5));
        assert_eq!(slab.get(last), Some(&last));
        assert_eq!(slab.get(CHUNK), None);
        assert_eq!(slab.iter().count(), 2);
        let seen: Vec<usize> = burst(5, |key| key == 5 || key == last)
            .iter_mut()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(seen, [5, last]);
    }

    #[test]
    fn inserts_fill_the_room_left_before_taking_a_chunk_given_back() {
        let last = 5 * CHUNK - 1;
        let mut slab = burst(5, |key| key == 5 || key == last);
        // The room in the first and last chunk first, then a chunk given
        // back.
        let keys: Vec<usize> = (0..2 * CHUNK).map(|n| slab.insert(n)).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let expected: Vec<usize> = (0..CHUNK)
            .filter(|&key| key != 5)
            .chain(3 * CHUNK..3 * CHUNK + 2)
            .chain(4 * CHUNK..last)
            .collect();
        assert_eq!(sorted, expected);
        assert_eq!(allocated(&slab), [0, 3, 4]);
        for key in keys {
            assert!(slab.get(key).is_some());
        }
    }

    #[test]
    fn the_key_an_insert_will_use_is_known_before() {
        let mut slab = burst(3, |key| key % 7 == 0);
        for n in 0..3 * CHUNK {
            let key = slab.vacant_key();
            assert_eq!(slab.insert(n), key);
            if n % 3 == 0 {
                slab.remove(key);
            }
        }
    }

    #[test]
    fn an_empty_chunk_is_kept_while_the_others_have_less_than_half_a_chunk_of_room() {
        // The first chunk has exactly half a chunk of room: the second is
        // given back as it empties.
        let half = CHUNK / 2;
        let slab = burst(2, |key| key < half);
        assert_eq!(allocated(&slab), [0]);
        // One entry more in the first chunk: the second is kept.
        let mut slab = burst(2, |key| key <= half);
        assert_eq!(allocated(&slab), [0, 1]);
        // and reused before the table grows.
        let keys: Vec<usize> = (0..CHUNK + half - 1).map(|n| slab.insert(n)).collect();
        assert!(keys.iter().all(|&key| key < 2 * CHUNK), "{keys:?}");
        assert_eq!(slab.chunks.len(), 2);
    }

    #[test]
    fn the_last_chunk_is_kept_when_nothing_is_left() {
        let slab = burst(3, |_| false);
        assert_eq!(slab.allocated, 1);
        assert_eq!(slab.len, 0);
    }

    #[test]
    fn shrink_trims_the_table_to_its_last_chunk_in_use() {
        let mut slab = burst(40, |key| key == 3 * CHUNK);
        assert_eq!(slab.chunks.len(), 40);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 4);
        assert!(slab.chunks.capacity() <= 2 * 4 + 16);
        assert!(slab.spare.iter().all(|&index| index < 4));
        assert!(slab.open.iter().all(|&index| index < 4));
        assert_eq!(slab.get(3 * CHUNK), Some(&(3 * CHUNK)));
        // The table grows again from its end.
        let keys: Vec<usize> = (0..5 * CHUNK).map(|n| slab.insert(n)).collect();
        assert_eq!(slab.iter().count(), 5 * CHUNK + 1);
        assert!(keys.iter().all(|&key| key < 6 * CHUNK));
        // With the last chunk in use it does nothing.
        let before = slab.chunks.len();
        slab.shrink();
        assert_eq!(slab.chunks.len(), before);
    }

    #[test]
    fn len_counts_the_occupied_entries() {
        let mut slab = burst(2, |key| key % 2 == 0);
        assert_eq!(slab.len(), CHUNK);
        slab.remove(0);
        assert_eq!(slab.len(), CHUNK - 1);
    }

    /// With no chunk that has room, the next key is the first of a chunk:
    /// of the last given back if there is one, else one past the table.
    #[test]
    fn the_key_an_insert_will_use_starts_a_chunk_when_none_has_room() {
        let mut slab = Slab::new();
        assert_eq!(slab.vacant_key(), 0);
        for n in 0..3 * CHUNK {
            assert_eq!(slab.insert(n), n);
        }
        assert_eq!(slab.vacant_key(), 3 * CHUNK);
        // Half the last chunk, then all of the middle one: it is given back.
        for key in (2 * CHUNK..2 * CHUNK + CHUNK / 2).chain(CHUNK..2 * CHUNK) {
            slab.remove(key);
        }
        assert_eq!(allocated(&slab), [0, 2]);
        for n in 0..CHUNK / 2 {
            slab.insert(n);
        }
        assert!(slab.open.is_empty());
        assert_eq!(slab.vacant_key(), CHUNK);
        assert_eq!(slab.insert(0), CHUNK);
    }

    /// Gives `list` room for exactly `capacity` entries.
    fn set_capacity<T>(list: &mut Vec<T>, capacity: usize) {
        list.shrink_to_fit();
        list.reserve_exact(capacity - list.len());
        assert_eq!(list.capacity(), capacity);
    }

    /// Once the table is trimmed, it and the lists of open and spare chunks
    /// each keep their room up to twice their length plus 16, and past that
    /// give back all but their length.
    #[test]
    fn shrink_gives_back_room_past_twice_the_length_plus_16() {
        // Trimmed, the table has five chunks: the first (emptied while the
        // others were full) and the fifth open, the three between spare.
        let (table, open, spare) = (5, 2, 3);
        for extra in [0, 1] {
            let mut slab = burst(6, |key| key == 4 * CHUNK);
            set_capacity(&mut slab.chunks, 2 * table + 16 + extra);
            set_capacity(&mut slab.open, 2 * open + 16 + extra);
            set_capacity(&mut slab.spare, 2 * spare + 16 + extra);
            slab.shrink();
            assert_eq!(slab.open, [0, 4]);
            assert_eq!(slab.spare, [3, 2, 1]);
            let kept = |len| if extra == 0 { 2 * len + 16 } else { len };
            assert_eq!(
                (
                    slab.chunks.capacity(),
                    slab.open.capacity(),
                    slab.spare.capacity()
                ),
                (kept(table), kept(open), kept(spare)),
                "room for {extra} more than twice the length plus 16"
            );
        }
    }

    /// A chunk given back while lower in the open list than one with room
    /// stays listed; once the table is trimmed below it, shrink unlists it.
    #[test]
    fn shrink_unlists_chunks_given_back_past_the_trimmed_table() {
        let mut slab = Slab::new();
        for n in 0..3 * CHUNK {
            slab.insert(n);
        }
        // Open in turn: the second chunk, then the first (with half a chunk
        // of room), and the second is given back below it; then the third.
        slab.remove(CHUNK);
        for key in (0..CHUNK / 2).chain(CHUNK + 1..3 * CHUNK) {
            slab.remove(key);
        }
        assert_eq!(allocated(&slab), [0]);
        assert_eq!(slab.open, [1, 0]);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 1);
        assert_eq!(slab.open, [0]);
        assert!(slab.spare.is_empty());
        for n in 0..CHUNK / 2 {
            slab.insert(n);
        }
        assert_eq!(slab.vacant_key(), CHUNK);
    }

    /// Random inserts, removes and shrinks, in phases that grow, drain and
    /// churn, against a map: every key the slab hands out is the one
    /// `vacant_key` said, every value is found under its key, and the
    /// chunk bookkeeping holds after each step (the allocated count, at
    /// most one empty chunk kept, every chunk with room listed, the last
    /// listed one with room).
    #[test]
    fn random_operations_agree_with_a_map() {
        use std::collections::HashMap;
        // Seeded, so a failure repeats.
        let mut generator = crate::policy::Random::seeded(0x1234_5678_9abc_def1);
        let mut random = move || generator.next();
        for round in 0..4 {
            let mut slab = Slab::new();
            let mut model: HashMap<usize, u64> = HashMap::new();
            for step in 0..40_000_u64 {
                let roll = random() % 100;
                let inserts = match (step / 5_000) % 3 {
                    0 => 70,
                    1 => 25,
                    _ => 50,
                };
                if roll < inserts || model.is_empty() {
                    let expected = slab.vacant_key();
                    let key = slab.insert(step);
                    assert_eq!(key, expected, "round {round} step {step}");
                    assert!(
                        model.insert(key, step).is_none(),
                        "key {key} handed out twice"
                    );
                } else if roll < 99 {
                    let index = usize::try_from(random()).expect("64-bit") % model.len();
                    let key = *model.keys().nth(index).expect("in range");
                    let value = model.remove(&key);
                    assert_eq!(slab.remove(key), value);
                    assert_eq!(slab.remove(key), None);
                } else {
                    slab.shrink();
                }
                assert_eq!(slab.len(), model.len());
                assert_eq!(
                    slab.allocated,
                    slab.chunks
                        .iter()
                        .filter(|chunk| chunk.is_allocated())
                        .count()
                );
                let empty = slab
                    .chunks
                    .iter()
                    .filter(|chunk| chunk.is_allocated() && chunk.used == 0)
                    .count();
                assert!(empty <= 1, "{empty} empty chunks kept");
                if let Some(&last) = slab.open.last() {
                    assert!(slab.chunks[last].has_room());
                }
                for (index, chunk) in slab.chunks.iter().enumerate() {
                    if chunk.has_room() {
                        assert!(chunk.listed && slab.open.contains(&index), "chunk {index}");
                    }
                }
            }
            for (&key, value) in &model {
                assert_eq!(slab.get(key), Some(value));
            }
        }
    }
}
