//! A bounded cache of upstream replies by question, for as long as their TTL allows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A question: lower-case name and record type.
pub type Key = (String, u16);

/// Upstream replies by question.
#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<Key, (Instant, Vec<u8>)>>,
    capacity: usize,
}

impl Cache {
    /// A cache of at most `capacity` replies (0 disables it).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A reply still within its TTL.
    pub fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((expires, reply)) if *expires > Instant::now() => Some(reply.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps a reply for as long as `lookout_dns::cache_ttl` allows (not at all if it says no).
    pub fn put(&self, key: Key, reply: &[u8]) {
        let Some(ttl) = lookout_dns::cache_ttl(reply).filter(|&t| t > 0) else {
            return;
        };
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop an eighth (in the map's arbitrary order)
                // rather than grow, keeping the rest warm.
                let drop: Vec<Key> = entries
                    .keys()
                    .take((self.capacity / 8).max(1))
                    .cloned()
                    .collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            key,
            (
                Instant::now() + Duration::from_secs(ttl.into()),
                reply.to_vec(),
            ),
        );
    }
}
