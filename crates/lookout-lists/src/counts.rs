//! How often the host cache answered, counted over the whole process, for a server's metrics.
//!
//! Every lookup of a large index counts a hit or a miss, and at millions of lookups a second
//! a shared atomic counter would cost a locked instruction per lookup and move its cache line
//! between the cores. So each thread counts in counters of its own, which only it writes (a
//! load and a store, no lock prefix); reading sums every thread's under a mutex. A thread that
//! ends adds its counts to a total kept for ended threads under that same mutex, so no count
//! is lost or counted twice, and the list of threads does not grow with threads long gone.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Lookups of indexes that have a host cache (those of 4,096 hosts or more), since the
/// process started. IP hosts and the lookups of smaller indexes are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCacheCounts {
    /// Answered from the cache.
    pub hits: u64,
    /// Not in the cache: the host's parent domains were probed.
    pub misses: u64,
}

#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Counts {
    fn read(&self) -> HostCacheCounts {
        HostCacheCounts {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        }
    }
}

/// The counts of running threads, and the sum of those of ended ones.
struct Registry {
    running: Vec<Arc<Counts>>,
    ended: HostCacheCounts,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    running: Vec::new(),
    ended: HostCacheCounts { hits: 0, misses: 0 },
});

fn registry() -> MutexGuard<'static, Registry> {
    // The registry holds plain numbers: a panic elsewhere while it was held leaves it usable.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's counters, registered at its first count.
struct Mine(Arc<Counts>);

impl Mine {
    fn new() -> Mine {
        let counts = Arc::new(Counts::default());
        registry().running.push(Arc::clone(&counts));
        Mine(counts)
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        let mut r = registry();
        r.running.retain(|c| !Arc::ptr_eq(c, &self.0));
        let mine = self.0.read();
        r.ended.hits += mine.hits;
        r.ended.misses += mine.misses;
    }
}

thread_local! {
    static MINE: Mine = Mine::new();
}

/// Counts one lookup: answered from the cache or not.
#[inline]
pub(crate) fn count(hit: bool) {
    // While the thread is ending its counters may be gone: that lookup is not counted.
    let _ = MINE.try_with(|m| {
        let c = if hit { &m.0.hits } else { &m.0.misses };
        // Only this thread writes `c`: no read-modify-write needs to be atomic.
        c.store(c.load(Relaxed) + 1, Relaxed);
    });
}

/// The host cache's hits and misses so far, over every thread.
pub fn host_cache_counts() -> HostCacheCounts {
    let r = registry();
    r.running
        .iter()
        .map(|c| c.read())
        .fold(r.ended, |a, b| HostCacheCounts {
            hits: a.hits + b.hits,
            misses: a.misses + b.misses,
        })
}
