//! The index in use while serving, replaced whole when the lists change (a subscription
//! downloaded a new copy, or an operator asked for a reload). Readers take a snapshot per
//! request, so a request is judged by one index from start to end and a swap never waits for
//! or drops a request in flight.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::Index;

/// The shared, replaceable index, with what is known about the lists behind it.
#[derive(Clone, Debug)]
pub struct LiveIndex {
    index: Arc<ArcSwap<Index>>,
    status: Arc<ArcSwap<ListsStatus>>,
}

/// What the lists in use are and how their subscriptions fare, for `/status`, the console
/// and `/metrics`. Plain values: whoever loads the lists fills it in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListsStatus {
    /// Bumped on every swap; 1 for the index the server started with.
    pub version: u64,
    /// When the index in use was built (ms since the Unix epoch; 0 if not known).
    pub loaded_at_ms: i64,
    /// Entries accepted from the list files (before de-duplication).
    pub entries: u64,
    /// The last reload that failed, if it failed after the index in use was built: the old
    /// index stays in use.
    pub reload_error: Option<String>,
    /// List sources fetched from a URL.
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// One list source kept up to date from a URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// The source's configured name.
    pub name: String,
    pub url: String,
    /// When a copy was last found current or downloaded (ms since the Unix epoch).
    pub checked_at_ms: Option<i64>,
    /// When the copy in use was downloaded.
    pub fetched_at_ms: Option<i64>,
    /// Entries in the copy in use (0: no copy, the source is not loaded).
    pub entries: u64,
    /// Why the last attempt failed, if it did (the copy in use, if any, stays).
    pub error: Option<String>,
    /// When the failing began (the first failed attempt since the last success).
    pub failing_since_ms: Option<i64>,
}

impl LiveIndex {
    /// Serves `index` until it is replaced.
    pub fn new(index: Index, status: ListsStatus) -> LiveIndex {
        LiveIndex {
            index: Arc::new(ArcSwap::from_pointee(index)),
            status: Arc::new(ArcSwap::from_pointee(ListsStatus {
                version: 1,
                ..status
            })),
        }
    }

    /// The index in use now; keep the snapshot for the whole request.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Index>> {
        self.index.load()
    }

    /// The index in use now, as an owned handle (for work that outlives a request).
    pub fn snapshot(&self) -> Arc<Index> {
        self.index.load_full()
    }

    /// Puts `index` in use for every request that starts from now on; requests already
    /// being judged finish on the index they started with.
    pub fn replace(&self, index: Index, loaded_at_ms: i64, entries: u64) {
        self.index.store(Arc::new(index));
        self.update(|s| {
            s.version += 1;
            s.loaded_at_ms = loaded_at_ms;
            s.entries = entries;
            s.reload_error = None;
        });
    }

    /// The lists' status now.
    pub fn status(&self) -> Arc<ListsStatus> {
        self.status.load_full()
    }

    /// Changes the status (one writer at a time is the caller's business; concurrent
    /// updates are applied one after the other, none lost).
    pub fn update(&self, change: impl Fn(&mut ListsStatus)) {
        self.status.rcu(|old| {
            let mut s = ListsStatus::clone(old);
            change(&mut s);
            s
        });
    }
}

impl From<Index> for LiveIndex {
    fn from(index: Index) -> LiveIndex {
        LiveIndex::new(index, ListsStatus::default())
    }
}

impl From<Arc<Index>> for LiveIndex {
    fn from(index: Arc<Index>) -> LiveIndex {
        LiveIndex {
            index: Arc::new(ArcSwap::new(index)),
            status: Arc::new(ArcSwap::from_pointee(ListsStatus {
                version: 1,
                ..ListsStatus::default()
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EntryKind, EntrySink, IndexBuilder, NormUrl, SourceInfo};

    fn index_of(host: &str) -> Index {
        let mut b = IndexBuilder::new();
        let id = b
            .add_source(SourceInfo {
                name: "test".into(),
                labels: 1,
            })
            .expect("one source");
        let mut sink = EntrySink::new();
        sink.add(id, EntryKind::Block, &NormUrl::parse(host).expect("a host"));
        b.build(vec![sink])
    }

    fn listed(live: &LiveIndex, host: &str) -> bool {
        let url = NormUrl::parse(host).expect("a host");
        live.load().lookup(&url) != 0
    }

    #[test]
    fn a_replacement_serves_new_requests_and_a_snapshot_keeps_the_old() {
        let live = LiveIndex::new(index_of("old.example"), ListsStatus::default());
        assert_eq!(live.status().version, 1);
        let before = live.snapshot();
        live.replace(index_of("new.example"), 42, 1);
        assert!(listed(&live, "new.example"));
        assert!(!listed(&live, "old.example"));
        // A request that took its snapshot before the swap is judged by the old index.
        assert_eq!(
            before.lookup(&NormUrl::parse("old.example").expect("host")),
            1
        );
        let s = live.status();
        assert_eq!((s.version, s.loaded_at_ms, s.entries), (2, 42, 1));
    }

    #[test]
    fn concurrent_status_updates_are_all_applied() {
        let live = LiveIndex::from(index_of("a.example"));
        std::thread::scope(|scope| {
            for t in 0..4 {
                let live = live.clone();
                scope.spawn(move || {
                    for _ in 0..250 {
                        live.update(|s| s.entries += 1);
                    }
                    t
                });
            }
        });
        assert_eq!(live.status().entries, 1000);
    }
}
