//! A minimal slab: records addressed by a reusable index, so inserting and
//! removing a child are O(1) and the storage of ended children is reused.
//!
//! Entries live in fixed-size chunks rather than one growing `Vec`: a `Vec`
//! that doubles keeps up to half its capacity unused, which at 80 bytes a
//! record was a sixth of a child's memory.

/// Entries per chunk: big enough that the chunk list stays short, small
/// enough that the last, partly used chunk costs little.
const CHUNK: usize = 256;

pub(crate) struct Slab<T> {
    chunks: Vec<Vec<Entry<T>>>,
    next_free: usize,
    len: usize,
    /// [`shrink`](Slab::shrink) looks again once `len` is at most this.
    look_below: usize,
}

enum Entry<T> {
    Vacant { next_free: usize },
    Occupied(T),
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            next_free: 0,
            len: 0,
            look_below: 0,
        }
    }

    /// The key the next [`insert`](Slab::insert) will use.
    pub(crate) fn vacant_key(&self) -> usize {
        self.next_free
    }

    fn entry_mut(&mut self, key: usize) -> Option<&mut Entry<T>> {
        self.chunks.get_mut(key / CHUNK)?.get_mut(key % CHUNK)
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.next_free;
        self.len += 1;
        self.look_below = self.look_below.max(self.len / 2);
        match self.entry_mut(key) {
            Some(entry) => {
                let Entry::Vacant { next_free } = *entry else {
                    unreachable!("the free list only holds vacant entries");
                };
                *entry = Entry::Occupied(value);
                self.next_free = next_free;
            }
            None => {
                // The free list is empty, so `key` is one past the last
                // entry ever made.
                if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                if let Some(chunk) = self.chunks.last_mut() {
                    chunk.push(Entry::Occupied(value));
                }
                self.next_free = key + 1;
            }
        }
        key
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let next_free = self.next_free;
        let entry = self.entry_mut(key)?;
        if matches!(entry, Entry::Vacant { .. }) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant { next_free }) else {
            unreachable!("checked above");
        };
        self.next_free = key;
        self.len -= 1;
        Some(value)
    }

    /// Frees the chunks at the end that hold nothing, once at most a quarter
    /// of the entries are occupied. It looks each time the number occupied
    /// has halved since it last looked, so its cost is amortized over the
    /// removals in between.
    pub(crate) fn shrink(&mut self) {
        if self.chunks.len() < 2 || self.len * 4 >= self.chunks.len() * CHUNK {
            return;
        }
        if self.len > self.look_below {
            return;
        }
        self.look_below = self.len / 2;
        let before = self.chunks.len();
        while self.chunks.len() > 1
            && self.chunks.last().is_some_and(|chunk| {
                chunk
                    .iter()
                    .all(|entry| matches!(entry, Entry::Vacant { .. }))
            })
        {
            self.chunks.pop();
        }
        if self.chunks.len() == before {
            return;
        }
        self.chunks.shrink_to_fit();
        // The free list may point into the freed chunks: thread it anew,
        // lowest key first, ending one past the last entry.
        let mut next_free = self.chunks.iter().map(Vec::len).sum::<usize>();
        for (chunk_index, chunk) in self.chunks.iter_mut().enumerate().rev() {
            for (index, entry) in chunk.iter_mut().enumerate().rev() {
                if let Entry::Vacant { next_free: next } = entry {
                    *next = next_free;
                    next_free = chunk_index * CHUNK + index;
                }
            }
        }
        self.next_free = next_free;
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        match self.chunks.get(key / CHUNK)?.get(key % CHUNK) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entry_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flatten()
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant { .. } => None,
            })
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.chunks
            .iter_mut()
            .flatten()
            .enumerate()
            .filter_map(|(key, entry)| match entry {
                Entry::Occupied(value) => Some((key, value)),
                Entry::Vacant { .. } => None,
            })
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.next_free = 0;
        self.len = 0;
        self.chunks
            .drain(..)
            .flatten()
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

    #[test]
    fn shrink_frees_empty_chunks_at_the_end_and_keeps_keys_valid() {
        let mut slab = Slab::new();
        for n in 0..CHUNK * 4 {
            slab.insert(n);
        }
        for key in (1..CHUNK * 4).filter(|&key| key != 5) {
            slab.remove(key);
        }
        slab.shrink();
        assert_eq!(slab.chunks.len(), 1);
        assert_eq!(slab.get(0), Some(&0));
        assert_eq!(slab.get(5), Some(&5));
        // Free keys are handed out lowest first, then past the end.
        let reused: Vec<usize> = (0..CHUNK).map(|n| slab.insert(n)).collect();
        assert_eq!(reused[..4], [1, 2, 3, 4]);
        assert_eq!(reused[4], 6);
        assert_eq!(reused[CHUNK - 2..], [CHUNK, CHUNK + 1]);
        assert_eq!(slab.iter().count(), CHUNK + 2);
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

    #[test]
    fn shrink_gives_chunks_back_only_below_a_quarter_occupied() {
        // Exactly a quarter: kept, though three chunks hold nothing.
        let mut slab = burst(4, |key| key < CHUNK);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 4);
        // One fewer: given back.
        slab.remove(CHUNK - 1);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 1);
        assert_eq!(slab.iter().count(), CHUNK - 1);
    }

    #[test]
    fn shrink_gives_back_the_second_of_two_chunks() {
        let mut slab = burst(2, |key| key == 0);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 1);
        assert_eq!(slab.get(0), Some(&0));
    }

    #[test]
    fn shrink_looks_again_once_the_occupied_count_has_halved() {
        // 101 occupied, the last in the last chunk: nothing to give back.
        let last = 4 * CHUNK - 1;
        let mut slab = burst(4, |key| key < 100 || key == last);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 4);
        // Down to 51: not half of 101 yet, so it does not look.
        slab.remove(last);
        for key in 51..100 {
            slab.remove(key);
        }
        slab.shrink();
        assert_eq!(slab.chunks.len(), 4);
        // Down to 50, half of 101: it looks, and frees the empty chunks.
        slab.remove(50);
        slab.shrink();
        assert_eq!(slab.chunks.len(), 1);
        assert_eq!(slab.iter().count(), 50);
    }
}
