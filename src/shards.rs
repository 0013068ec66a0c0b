//! A map split into independently locked shards, for the small in-memory
//! caches on request paths (verified logins, verified tokens): requests for
//! different keys almost never wait on each other, and no lock is held
//! across an `.await`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 32;

pub struct Sharded<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    hasher: RandomState,
    /// Entries per shard at most; a full shard is cleared (these are caches).
    per_shard: usize,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    /// A map holding about `capacity` entries at most.
    pub fn new(capacity: usize) -> Sharded<K, V> {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get_cloned(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        self.shard(key).get(key).cloned()
    }

    /// Insert, first dropping the entries `stale` rejects when the shard is
    /// full, and everything if that frees nothing.
    pub fn insert(&self, key: K, value: V, stale: impl Fn(&V) -> bool) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard {
            shard.retain(|_, v| !stale(v));
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, value);
    }

    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_clearable() {
        let m: Sharded<u32, u32> = Sharded::new(64);
        for i in 0..10_000 {
            m.insert(i, i, |_| false);
        }
        let held = (0..10_000).filter(|i| m.get_cloned(i).is_some()).count();
        assert!(held <= 64 + SHARDS, "{held}");
        assert_eq!(m.get_cloned(&9_999), Some(9_999));
        m.clear();
        assert_eq!(m.get_cloned(&9_999), None);
    }
}
