//! A minimal slab: records addressed by a reusable index, so inserting and
//! removing a child are O(1) and the storage of ended children is reused.

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    next_free: usize,
}

enum Entry<T> {
    Vacant { next_free: usize },
    Occupied(T),
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            next_free: 0,
        }
    }

    /// The key the next [`insert`](Slab::insert) will use.
    pub(crate) fn vacant_key(&self) -> usize {
        self.next_free
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.next_free;
        match self.entries.get_mut(key) {
            Some(entry) => {
                let Entry::Vacant { next_free } = *entry else {
                    unreachable!("the free list only holds vacant entries");
                };
                self.next_free = next_free;
                *entry = Entry::Occupied(value);
            }
            None => {
                self.entries.push(Entry::Occupied(value));
                self.next_free = self.entries.len();
            }
        }
        key
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let entry = self.entries.get_mut(key)?;
        if matches!(entry, Entry::Vacant { .. }) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(
            entry,
            Entry::Vacant {
                next_free: self.next_free,
            },
        ) else {
            unreachable!("checked above");
        };
        self.next_free = key;
        Some(value)
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        match self.entries.get(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant { .. } => None,
        })
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(key, entry)| match entry {
                Entry::Occupied(value) => Some((key, value)),
                Entry::Vacant { .. } => None,
            })
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.next_free = 0;
        self.entries.drain(..).filter_map(|entry| match entry {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

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
        let mut rest: Vec<_> = slab.drain().collect();
        rest.sort_unstable();
        assert_eq!(rest, ["b", "c"]);
        assert_eq!(slab.insert("d"), 0);
    }
}
