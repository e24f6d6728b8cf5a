//! A bounded cache of upstream replies by question, for as long as their TTL allows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A question: lower-case name and record type.
pub type Key = (String, u16);

/// Upstream replies by question.
#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

#[derive(Debug)]
struct Entry {
    stored: Instant,
    expires: Instant,
    reply: Vec<u8>,
}

impl Cache {
    /// A cache of at most `capacity` replies (0 disables it).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A reply still within its TTL, and how many whole seconds it has been kept (which the
    /// answer's TTLs must lose: `lookout_dns::Pending::complete_aged`).
    pub fn get(&self, key: &Key) -> Option<(Vec<u8>, u32)> {
        let mut entries = self.entries.lock().ok()?;
        let now = Instant::now();
        match entries.get(key) {
            Some(e) if e.expires > now => {
                let age = now.duration_since(e.stored).as_secs();
                Some((e.reply.clone(), u32::try_from(age).unwrap_or(u32::MAX)))
            }
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
            entries.retain(|_, e| e.expires > now);
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
        let stored = Instant::now();
        entries.insert(
            key,
            Entry {
                stored,
                expires: stored + Duration::from_secs(ttl.into()),
                reply: reply.to_vec(),
            },
        );
    }
}
