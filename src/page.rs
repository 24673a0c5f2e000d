//! Paging a large table without sorting it: the `limit` smallest keys after a cursor, found
//! in one pass over the table with a heap of at most `limit` items.
//!
//! A page costs one walk of the table (O(n log limit) comparisons at worst, O(n) when the
//! keys come in no particular order) and memory for one page, never a copy or a sort of the
//! whole table. The order is the keys' order, so a key present during a whole listing shows
//! up exactly once, whatever is added or removed meanwhile. No I/O and no clock here.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// An item ordered by its key only.
struct ByKey<K, T>(K, T);

impl<K: Ord, T> PartialEq for ByKey<K, T> {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl<K: Ord, T> Eq for ByKey<K, T> {}
impl<K: Ord, T> PartialOrd for ByKey<K, T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<K: Ord, T> Ord for ByKey<K, T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp(&o.0)
    }
}

/// Collects the `limit` smallest keys greater than `after` among those offered.
pub struct Smallest<K: Ord, T> {
    after: Option<K>,
    limit: usize,
    /// A max-heap: its top is the largest key kept, the first to go.
    heap: BinaryHeap<ByKey<K, T>>,
}

impl<K: Ord, T> Smallest<K, T> {
    /// Keeps at most `limit` items with keys greater than `after` (all keys if `None`).
    pub fn new(after: Option<K>, limit: usize) -> Self {
        Smallest {
            after,
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1 << 16) + 1),
        }
    }

    /// Whether an item with this key would be kept now (so `make` is worth calling).
    pub fn wants(&self, key: &K) -> bool {
        if self.limit == 0 || self.after.as_ref().is_some_and(|a| key <= a) {
            return false;
        }
        self.heap.len() < self.limit || self.heap.peek().is_some_and(|top| *key < top.0)
    }

    /// Offers an item; `make` builds it only if it is kept.
    pub fn offer(&mut self, key: K, make: impl FnOnce() -> T) {
        if !self.wants(&key) {
            return;
        }
        if self.heap.len() == self.limit {
            self.heap.pop();
        }
        self.heap.push(ByKey(key, make()));
    }

    /// The items kept, by key.
    pub fn into_sorted(self) -> Vec<(K, T)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ByKey(k, t)| (k, t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_key_once_in_order() {
        // keys in a scrambled order, as a hash table yields them
        let keys: Vec<u32> = (0..1000u32).map(|i| (i * 7919) % 1000).collect();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let mut s = Smallest::new(after, 64);
            for k in &keys {
                s.offer(*k, || k * 2);
            }
            let page = s.into_sorted();
            if page.is_empty() {
                break;
            }
            assert!(page.iter().all(|(k, v)| *v == k * 2));
            after = page.last().map(|(k, _)| *k);
            seen.extend(page.into_iter().map(|(k, _)| k));
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn builds_only_what_it_might_keep() {
        let mut built = 0;
        let mut s = Smallest::new(Some(10), 3);
        for k in [5, 11, 50, 12, 40, 13, 60, 70, 80] {
            s.offer(k, || {
                built += 1;
            });
        }
        assert_eq!(
            s.into_sorted().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [11, 12, 13]
        );
        assert_eq!(
            built, 5,
            "11, 50, 12, 40, 13; not 5 (before the cursor) or 60.. (too big)"
        );
        assert!(Smallest::<u8, ()>::new(None, 0).into_sorted().is_empty());
    }
}
