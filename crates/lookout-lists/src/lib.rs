//! Lookout's list engine: the category taxonomy, URL normalisation, list-format parsers and
//! the compiled index. Sans-I/O: callers hand in bytes and get values back.

pub mod blocks;
pub mod category;
pub mod counts;
pub mod index;
pub mod live;
pub mod normalize;
pub mod parse;

pub use category::{Category, CategorySet};
pub use counts::{host_cache_counts, HostCacheCounts};
pub use index::{
    EntrySink, Hit, Index, IndexBuilder, Matches, SourceId, SourceInfo, DEFAULT_HOST_CACHE,
    HOST_CACHE_MIN_HOSTS, MAX_HOST_CACHE,
};
pub use live::{ListsStatus, LiveIndex, SubscriptionStatus};
pub use normalize::{HostKind, NormUrl, UrlError};
pub use parse::{EntryKind, Format, ParseReport, RejectReason, Rejected};
