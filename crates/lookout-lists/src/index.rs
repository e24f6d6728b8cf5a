//! The compiled in-memory index of list entries.
//!
//! Design (see ARCHITECTURE.md): every entry is reduced to a 64-bit xxh3 hash of its canonical
//! text (`casino.com`, `example.org/casino`) and a 32-bit *tag*. A tag is an interned
//! combination of "which sources list this, as a block or an exception, and does this host have
//! URL entries under it"; real lists produce only a few thousand distinct combinations, so the
//! tags are a small table that stays in cache. Hash and tag live together in one 8-byte slot
//! of an open-addressing table (linear probing, load ≤ 0.7, about 12.5 bytes per entry with
//! the filter), so a probe costs about one cache miss.
//!
//! A lookup hashes each parent domain of the request's host (`a.b.c.com`, `b.c.com`, `c.com`,
//! `com`) and probes the host table; where a host has URL entries it also probes the path table
//! with every path prefix at a segment boundary. The entry text is not stored: when a decision
//! needs to say which entry matched, [`Index::explain`] re-runs the lookup and reports the
//! matching prefix of the request itself, which *is* the entry's canonical text.
//!
//! Two different entries with the same 64-bit hash would merge; with 1.6 million entries the
//! chance that any pair collides is about 1 in 10^7, and the chance that a given unlisted
//! request hits an entry's hash is about 10^-13 per probe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::normalize::{HostKind, NormUrl};
use crate::parse::EntryKind;

const SEED: u64 = 0x6c6f_6f6b_6f75_7421; // "lookout!"

/// The key of an entry's or a request's canonical text. Its low 32 bits are never all 0,
/// so that a table slot holding it is never 0, the mark of an empty slot (see [`Table`]).
fn hash(bytes: &[u8]) -> u64 {
    let h = xxh3_64_with_seed(bytes, SEED);
    h | u64::from(h as u32 == 0)
}

/// Identifies one list source (one file) within an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(u16);

impl SourceId {
    /// Position in the index's source table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A list source as the index knows it: a name for explanations and the label bits (category
/// set) its entries carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Shown in explanations, e.g. `ut1/gambling/domains`; shared, so that a decision can
    /// name its source without copying it.
    pub name: Arc<str>,
    /// Bits this source's entries set (a `CategorySet`'s bits, or any labels for other uses).
    pub labels: u64,
}

/// Registers sources and gathers entries from any number of [`EntrySink`]s (one per thread).
#[derive(Debug, Default)]
pub struct IndexBuilder {
    sources: Vec<SourceInfo>,
    /// Hosts the host cache remembers, if not [`DEFAULT_HOST_CACHE`].
    host_cache: Option<usize>,
}

/// How many recently requested hosts a large index remembers unless told otherwise
/// ([`IndexBuilder::host_cache`]): 16 bytes each, 1 MiB in all.
pub const DEFAULT_HOST_CACHE: usize = 1 << 16;

/// The most hosts a host cache can be asked to remember (256 MiB).
pub const MAX_HOST_CACHE: usize = 1 << 24;

/// Below this many hosts an index has no host cache: its table stays in the processor's
/// cache anyway.
pub const HOST_CACHE_MIN_HOSTS: usize = 4096;

/// Too many sources for one index (the limit is 16,383).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many list sources: an index holds at most {} files", MAX_SOURCES)]
pub struct TooManySources;

const MAX_SOURCES: usize = (1 << 14) - 1;

/// Provisional value kinds: what one source says about one key.
const KIND_BLOCK: u32 = 0;
const KIND_EXCEPT: u32 = 1;
const KIND_HAS_PATHS: u32 = 2;

impl IndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a source; entries added with the returned id carry its labels.
    pub fn add_source(&mut self, info: SourceInfo) -> Result<SourceId, TooManySources> {
        if self.sources.len() >= MAX_SOURCES {
            return Err(TooManySources);
        }
        self.sources.push(info);
        Ok(SourceId((self.sources.len() - 1) as u16))
    }

    /// The sources registered so far.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// How many recently requested hosts the index remembers (what probing found for each),
    /// rounded up to a power of two and at most [`MAX_HOST_CACHE`]; 0 turns the cache off.
    /// An index of fewer than [`HOST_CACHE_MIN_HOSTS`] hosts has no cache whatever this says.
    pub fn host_cache(&mut self, hosts: usize) -> &mut Self {
        self.host_cache = Some(hosts);
        self
    }

    /// Compiles the entries of every sink into an index.
    pub fn build(self, sinks: Vec<EntrySink>) -> Index {
        // The sinks' blocks of pairs are handed on, not copied into one vector.
        let (mut hosts, mut paths) = (Pairs::default(), Pairs::default());
        let (mut max_depth, mut max_params) = (0, 0);
        let mut labels = LabelRange::default();
        for sink in sinks {
            hosts.blocks.extend(sink.hosts.blocks);
            paths.blocks.extend(sink.paths.blocks);
            max_depth = max_depth.max(sink.max_depth);
            max_params = max_params.max(sink.max_params);
            labels.merge(sink.labels);
        }
        let mut interner = Interner::new(&self.sources);
        let hosts = Table::build(hosts, &mut interner);
        let paths = Table::build(paths, &mut interner);
        let tags = interner.tags;
        let mut host_labels = vec![0u64; 64];
        let mut path_labels = vec![0u64; 64];
        count_labels(&hosts, &tags, &mut host_labels);
        count_labels(&paths, &tags, &mut path_labels);
        let cache = HostCache::for_index(hosts.len, self.host_cache.unwrap_or(DEFAULT_HOST_CACHE));
        Index {
            hosts,
            paths,
            cache,
            tags,
            sources: self.sources,
            max_depth,
            max_params,
            labels,
            host_labels,
            path_labels,
        }
    }
}

fn count_labels(table: &Table, tags: &[Tag], out: &mut [u64]) {
    for &slot in &table.slots {
        if slot != 0 {
            let mut bits = tags[table.tag(slot) as usize].block;
            while bits != 0 {
                out[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }
    }
}

/// Collects hashed entries; fill one per thread and hand them all to [`IndexBuilder::build`].
#[derive(Debug, Default)]
pub struct EntrySink {
    hosts: Pairs,
    paths: Pairs,
    max_depth: usize,
    max_params: usize,
    labels: LabelRange,
}

/// A hashed entry: the hash of its canonical text and its provisional value
/// (`source << 2 | kind`), in 12 bytes (a `(u64, u32)` takes 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Pair {
    key: u64,
    value: u32,
}

impl Pair {
    #[inline]
    fn key(self) -> u64 {
        self.key
    }

    #[inline]
    fn value(self) -> u32 {
        self.value
    }
}

/// Pairs as a sink gathers them: in blocks of at most [`Pairs::BLOCK`], so that a growing
/// sink never copies what it holds into a vector twice the size (which, for millions of
/// entries, briefly holds both), and sinks are joined by moving blocks, not pairs.
#[derive(Debug, Default)]
struct Pairs {
    blocks: Vec<Vec<Pair>>,
}

impl Pairs {
    /// Pairs per block (12 MiB); a sink's first block grows to it as a vector does.
    const BLOCK: usize = 1 << 20;

    fn push(&mut self, key: u64, value: u32) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < Pairs::BLOCK => block.push(Pair { key, value }),
            _ => {
                let mut block = Vec::with_capacity(if self.blocks.is_empty() {
                    0
                } else {
                    Pairs::BLOCK
                });
                block.push(Pair { key, value });
                self.blocks.push(block);
            }
        }
    }

    fn len(&self) -> usize {
        self.blocks.iter().map(Vec::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = Pair> + '_ {
        self.blocks.iter().flatten().copied()
    }
}

/// The fewest and most labels of any listed domain: a parent domain outside the range cannot
/// be in the table, so a lookup need not probe for it (typically the bare TLD, `com`).
#[derive(Debug, Clone, Copy)]
struct LabelRange {
    min: usize,
    max: usize,
}

impl Default for LabelRange {
    fn default() -> Self {
        LabelRange {
            min: usize::MAX,
            max: 0,
        }
    }
}

impl LabelRange {
    fn add(&mut self, labels: usize) {
        self.min = self.min.min(labels);
        self.max = self.max.max(labels);
    }

    fn merge(&mut self, other: LabelRange) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

impl EntrySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one normalised entry of `source`. A URL with no path is a domain entry.
    pub fn add(&mut self, source: SourceId, kind: EntryKind, url: &NormUrl) {
        let kind = match kind {
            EntryKind::Block => KIND_BLOCK,
            EntryKind::Exception => KIND_EXCEPT,
        };
        let value = |k: u32| ((source.0 as u32) << 2) | k;
        let host = url.host().as_bytes();
        if url.host_kind() == HostKind::Domain {
            self.labels.add(url.host_labels());
        }
        if url.path().is_empty() && url.query().is_none() {
            self.hosts.push(hash(host), value(kind));
        } else {
            self.hosts.push(hash(host), value(KIND_HAS_PATHS));
            self.paths.push(hash(url.as_str().as_bytes()), value(kind));
            let (mut depth, mut params) = (0, 0);
            url.find_prefix_end(usize::MAX, 0, |_| {
                depth += 1;
                false
            });
            url.find_prefix_end(0, usize::MAX, |_| {
                params += 1;
                false
            });
            self.max_depth = self.max_depth.max(depth);
            self.max_params = self.max_params.max(params);
        }
    }
}

/// One interned combination of sources.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    /// Labels of the sources listing the key.
    block: u64,
    /// Labels of the sources excepting the key.
    except: u64,
    /// Whether URL entries exist under this host.
    has_paths: bool,
    /// The provisional values (source << 2 | kind), sorted, deduplicated.
    members: Box<[u32]>,
}

struct Interner<'a> {
    sources: &'a [SourceInfo],
    tags: Vec<Tag>,
    by_members: HashMap<Box<[u32]>, u32>,
    /// The tag of each single provisional value (`source << 2 | kind`, below 2^16), or
    /// `u32::MAX`: most keys have one, so they skip hashing.
    single: Vec<u32>,
}

impl<'a> Interner<'a> {
    fn new(sources: &'a [SourceInfo]) -> Self {
        Interner {
            sources,
            tags: Vec::new(),
            by_members: HashMap::new(),
            single: vec![u32::MAX; (MAX_SOURCES + 1) << 2],
        }
    }

    fn intern_one(&mut self, value: u32) -> u32 {
        match self.single[value as usize] {
            u32::MAX => {
                let t = self.intern(&[value]);
                self.single[value as usize] = t;
                t
            }
            t => t,
        }
    }

    fn intern(&mut self, members: &[u32]) -> u32 {
        if let Some(&t) = self.by_members.get(members) {
            return t;
        }
        let mut tag = Tag {
            block: 0,
            except: 0,
            has_paths: false,
            members: members.into(),
        };
        for &m in members {
            let labels = self.sources[(m >> 2) as usize].labels;
            match m & 3 {
                KIND_BLOCK => tag.block |= labels,
                KIND_EXCEPT => tag.except |= labels,
                _ => tag.has_paths = true,
            }
        }
        let id = self.tags.len() as u32;
        self.tags.push(tag);
        self.by_members.insert(members.into(), id);
        id
    }
}

/// An open-addressing hash table from 64-bit keys (hashes of entries' text) to tag ids, in
/// one word a slot: the key's fingerprint above, the tag below (`tag_bits` wide, as few as
/// the tags of the index need: 10 bits for the ~1,000 tags of the shared lists), 0 for an
/// empty slot. Eight bytes a slot rather than twelve (key and tag side by side): a third less
/// memory, and a third fewer of the cache lines and pages a lookup of a host nobody asked for
/// lately has to wait for.
///
/// The fingerprint is the key shifted left by `tag_bits` (at most 32): the key's low
/// `64 - tag_bits` bits, never all 0 (see [`hash`]), so no used slot is 0. The bits shifted
/// out are the top ones, those a key's home slot is chosen by, so a key that differs only
/// there starts probing elsewhere. A key not in the table matches a slot it is compared
/// with when the kept bits are equal, a chance of 2^-54 per slot compared for the shared
/// lists (one to three slots a probe), below the chance that two different hosts hash to
/// one 64-bit key in the first place (the number of entries in 2^64).
#[derive(Debug)]
struct Table {
    slots: Vec<u64>,
    len: usize,
    filter: Filter,
    tag_bits: u32,
}

/// A blocked Bloom filter over a table's keys: one 64-bit word per key with four bits set,
/// eight bits per key, so about 1 byte per entry and small enough to stay in the L2/L3 cache.
/// Most probes of a lookup are for parent domains that are not listed (`www.example.com` when
/// only `example.com` is); the filter turns away about 96.6% of those without touching the
/// table (3.4% false positives, measured by `filter_false_positive_rate_is_a_few_percent`).
#[derive(Debug)]
struct Filter {
    words: Vec<u64>,
}

impl Filter {
    fn new(keys: usize) -> Filter {
        Filter {
            words: vec![0; (keys / 8).max(1)],
        }
    }

    /// The word (from the key's low half; the table's home uses the high bits) and the mask
    /// of four bits (from the key's high half).
    #[inline]
    fn locate(&self, key: u64) -> (usize, u64) {
        let word = ((key as u32 as u64 * self.words.len() as u64) >> 32) as usize;
        let h = key >> 32;
        let mask = (1 << (h & 63))
            | (1 << ((h >> 6) & 63))
            | (1 << ((h >> 12) & 63))
            | (1 << ((h >> 18) & 63));
        (word, mask)
    }

    fn insert(&mut self, key: u64) {
        let (w, mask) = self.locate(key);
        self.words[w] |= mask;
    }

    #[inline]
    fn may_contain(&self, key: u64) -> bool {
        let (w, mask) = self.locate(key);
        self.words[w] & mask == mask
    }
}

impl Default for Table {
    /// An empty table still has one (empty) slot, so that probing has somewhere to end.
    fn default() -> Self {
        Table {
            slots: vec![0],
            len: 0,
            filter: Filter::new(0),
            tag_bits: 0,
        }
    }
}

impl Table {
    fn build(pairs: Pairs, interner: &mut Interner<'_>) -> Table {
        let mut pairs = sorted(pairs);
        pairs.dedup();
        let same_key = |a: &Pair, b: &Pair| a.key() == b.key();
        // Each key's tag first, kept in its first pair, so that the slots' layout can be
        // chosen for the most tags there are.
        let mut unique = 0;
        let mut most = 0;
        let mut members = Vec::new();
        for run in pairs.chunk_by_mut(same_key) {
            let tag = if let [pair] = run {
                interner.intern_one(pair.value())
            } else {
                members.clear();
                members.extend(run.iter().map(|p| p.value()));
                interner.intern(&members)
            };
            run[0].value = tag;
            most = most.max(tag);
            unique += 1;
        }
        // At most 70% full (an unsuccessful probe, the common case for unlisted hosts,
        // then scans about six slots: one or two cache lines), and always one empty slot so
        // that probing ends. The capacity need not be a power of two: see `home`.
        let capacity = unique + unique * 3 / 7 + 1;
        let mut table = Table {
            slots: vec![0; capacity],
            len: unique,
            filter: Filter::new(unique),
            tag_bits: u32::BITS - most.leading_zeros(),
        };
        for run in pairs.chunk_by(same_key) {
            table.insert(run[0].key(), run[0].value());
        }
        table
    }

    /// What a slot holding `key` holds above its tag: see [`Table`].
    #[inline]
    fn fingerprint(&self, key: u64) -> u64 {
        key << self.tag_bits
    }

    /// Whether `slot` (not empty) holds `key`.
    #[inline]
    fn holds(&self, slot: u64, key: u64) -> bool {
        slot & !self.tag_mask() == self.fingerprint(key)
    }

    #[inline]
    fn tag_mask(&self) -> u64 {
        (1 << self.tag_bits) - 1
    }

    /// The tag of a used slot.
    #[inline]
    fn tag(&self, slot: u64) -> u32 {
        (slot & self.tag_mask()) as u32
    }

    /// The slot a key starts probing at: the key scaled onto `0..capacity` by a widening
    /// multiply (Lemire's "fastrange"), which needs no power-of-two capacity.
    #[inline]
    fn home(&self, key: u64) -> usize {
        ((key as u128 * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    fn insert(&mut self, key: u64, tag: u32) {
        self.filter.insert(key);
        debug_assert!(u64::from(tag) < 1 << self.tag_bits && key as u32 != 0);
        let mut i = self.home(key);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = self.fingerprint(key) | u64::from(tag);
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        if !self.filter.may_contain(key) {
            return None;
        }
        self.get_unfiltered(key)
    }

    /// Looks up to [`PROBES`] keys up at once: first every filter word, then the home slot of
    /// every key the filter lets through, then the rest of each probe. Each step's memory
    /// reads are independent of one another, so a processor that runs ahead of a cache miss
    /// has them in flight together (one miss's latency for all, rather than one each).
    #[inline]
    fn get_all(&self, keys: &[u64], tags: &mut [Option<u32>; PROBES]) {
        let keys = &keys[..keys.len().min(PROBES)];
        let mut words = [0u64; PROBES];
        let mut masks = [0u64; PROBES];
        for (i, &key) in keys.iter().enumerate() {
            let (w, mask) = self.filter.locate(key);
            words[i] = self.filter.words[w];
            masks[i] = mask;
        }
        let mut homes = [usize::MAX; PROBES];
        let mut first = [0u64; PROBES];
        for (i, &key) in keys.iter().enumerate() {
            if words[i] & masks[i] == masks[i] {
                homes[i] = self.home(key);
                first[i] = self.slots[homes[i]];
            }
        }
        for (i, &key) in keys.iter().enumerate() {
            tags[i] = match homes[i] {
                usize::MAX => None,
                _ if first[i] == 0 => None,
                _ if self.holds(first[i], key) => Some(self.tag(first[i])),
                home => self.probe_from(self.next(home), key),
            };
        }
    }

    /// Probes the table itself, for a key the filter may contain.
    #[inline]
    fn get_unfiltered(&self, key: u64) -> Option<u32> {
        self.probe_from(self.home(key), key)
    }

    /// Probes from slot `i` on until the key or an empty slot.
    #[inline]
    fn probe_from(&self, mut i: usize, key: u64) -> Option<u32> {
        loop {
            match self.slots[i] {
                0 => return None,
                slot if self.holds(slot, key) => return Some(self.tag(slot)),
                _ => i = self.next(i),
            }
        }
    }

    fn memory(&self) -> usize {
        self.slots.len() * 8 + self.filter.words.len() * 8
    }
}

/// What probing the host table found for one host: up to two parent domains that matched
/// (where each starts in the host, and its tag), most specific first, or that more matched
/// than the cache can hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Found {
    /// Two hits of 32 bits, the first in the low half; a hit is `(tag + 1) << 8 | start`, and
    /// 0 means none.
    packed: u64,
    len: u8,
    /// More hits than fit, or a tag or start too large to pack: not cached.
    uncachable: bool,
}

impl Found {
    const MAX_TAG: u32 = (1 << 24) - 2;

    #[inline]
    fn push(&mut self, start: usize, tag: u32) {
        if self.len >= 2 || start > 255 || tag > Found::MAX_TAG {
            self.uncachable = true;
            return;
        }
        let hit = (u64::from(tag) + 1) << 8 | start as u64;
        self.packed |= hit << (32 * self.len);
        self.len += 1;
    }

    /// The hits of `packed` (a `Found`'s, as the cache keeps it), most specific first.
    #[inline]
    fn hits(packed: u64) -> impl Iterator<Item = (usize, u32)> {
        [packed as u32, (packed >> 32) as u32]
            .into_iter()
            .take_while(|&hit| hit != 0)
            .map(|hit| ((hit & 0xff) as usize, (hit >> 8) - 1))
    }
}

/// A direct-mapped cache, shared by every thread that uses the index, of what probing the
/// host table found for recently requested hosts. Web traffic is mostly a few popular hosts
/// (each probed for two or three parent domains, in a table of tens of megabytes); a hit
/// costs one hash of the host and one read from a table small enough (1 MiB) to stay in
/// the processor's cache.
///
/// Lock-free: an entry is two words, `check = key ^ value` and `value`, each written and read
/// on its own (Hyatt's lockless transposition table, as chess engines use). A reader that
/// sees one word of one write and the other of another finds `check ^ value != key` (but
/// for a chance of 2^-64) and treats it as a miss. The index itself is immutable, so an
/// entry is never stale: a new index has a new, empty cache.
#[derive(Debug, Default)]
struct HostCache {
    entries: Box<[CacheEntry]>,
}

#[derive(Debug, Default)]
struct CacheEntry {
    check: AtomicU64,
    value: AtomicU64,
}

impl HostCache {
    /// The cache for an index of `hosts` host entries asked to remember `wanted` hosts (see
    /// [`IndexBuilder::host_cache`]).
    fn for_index(hosts: usize, wanted: usize) -> HostCache {
        HostCache::with_entries(if hosts < HOST_CACHE_MIN_HOSTS || wanted == 0 {
            0
        } else {
            wanted.min(MAX_HOST_CACHE).next_power_of_two()
        })
    }

    /// A cache of `len` entries, a power of two (or none at all).
    fn with_entries(len: usize) -> HostCache {
        debug_assert!(len == 0 || len.is_power_of_two());
        HostCache {
            entries: (0..len).map(|_| CacheEntry::default()).collect(),
        }
    }

    /// The entry for `key`, a host's hash; the bits above those the table and its filter
    /// start from are used, though any bits of the hash would do.
    #[inline]
    fn entry(&self, key: u64) -> Option<&CacheEntry> {
        let mask = self.entries.len().checked_sub(1)?;
        self.entries.get((key >> 40) as usize & mask)
    }

    /// The packed hits kept for `key` (see [`Found::hits`]), counted as a hit or a miss
    /// (`counts.rs`); an index without a cache counts neither.
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        let entry = self.entry(key)?;
        let value = entry.value.load(Ordering::Relaxed);
        let check = entry.check.load(Ordering::Relaxed);
        let hit = check ^ value == key;
        crate::counts::count(hit);
        hit.then_some(value)
    }

    #[inline]
    fn put(&self, key: u64, found: Found) {
        if found.uncachable {
            return;
        }
        if let Some(entry) = self.entry(key) {
            entry.check.store(key ^ found.packed, Ordering::Relaxed);
            entry.value.store(found.packed, Ordering::Relaxed);
        }
    }
}

/// The pairs in order of key, then value, as `sort_unstable` would order `(key, value)`
/// tuples, faster for many and in less memory: the keys are uniform hashes, so one pass
/// moves each pair from the sink's blocks straight to its bucket of the output (by the key's
/// top bits, about 32 pairs a bucket), letting each block go once it is read, and then each
/// bucket, a few cache lines, is sorted where it lies. The pairs (12 bytes each) are held at
/// most twice over, and then only while the blocks are read.
fn sorted(pairs: Pairs) -> Vec<Pair> {
    let len = pairs.len();
    let by_key_and_value = |p: &Pair| (p.key(), p.value());
    if len < 4096 {
        let mut all: Vec<Pair> = pairs.blocks.concat();
        all.sort_unstable_by_key(by_key_and_value);
        return all;
    }
    let bits = (len / 32).ilog2().clamp(7, 20);
    let bucket = |key: u64| (key >> (64 - bits)) as usize;
    let mut starts = vec![0usize; (1 << bits) + 1];
    for pair in pairs.iter() {
        starts[bucket(pair.key()) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut out = vec![Pair::default(); len];
    let mut next = starts.clone();
    for block in pairs.blocks {
        for pair in block {
            let b = bucket(pair.key());
            out[next[b]] = pair;
            next[b] += 1;
        }
    }
    for w in starts.windows(2) {
        out[w[0]..w[1]].sort_unstable_by_key(by_key_and_value);
    }
    out
}

/// The compiled, immutable index. Cheap to share between threads (`Arc<Index>`).
#[derive(Debug, Default)]
pub struct Index {
    hosts: Table,
    paths: Table,
    /// What probing the host table found for recently requested hosts.
    cache: HostCache,
    tags: Vec<Tag>,
    sources: Vec<SourceInfo>,
    /// The most path segments of any URL entry: deeper prefixes cannot match.
    max_depth: usize,
    /// The most query parameters of any URL entry.
    max_params: usize,
    /// The fewest and most labels of any listed domain.
    labels: LabelRange,
    host_labels: Vec<u64>,
    path_labels: Vec<u64>,
}

/// How many matching entries a lookup remembers for explanations; beyond that,
/// [`Index::explain_matches`] probes again.
const MAX_HITS: usize = 8;

/// How many parent domains of a host are probed together (`Table::get_all`); a host with
/// more probe-worthy parents is looked up in groups of this many.
const PROBES: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct RawHit {
    tag: u32,
    start: u32,
    end: u32,
}

/// What a lookup found: the labels, and which entries gave them.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    block: u64,
    except: u64,
    hits: [RawHit; MAX_HITS],
    len: u8,
    overflow: bool,
}

impl Matches {
    /// The labels: those of matching entries minus those of matching exceptions.
    #[inline]
    pub fn labels(&self) -> u64 {
        self.block & !self.except
    }

    #[inline]
    fn push(&mut self, tag: &Tag, id: u32, start: usize, end: usize) {
        if tag.block | tag.except == 0 {
            return; // only marks a host with URL entries
        }
        self.block |= tag.block;
        self.except |= tag.except;
        match self.hits.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = RawHit {
                    tag: id,
                    start: start as u32,
                    end: end as u32,
                };
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }
}

/// Which entry of which source made a request carry a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The source that lists the entry.
    pub source: SourceId,
    /// The entry's canonical text, e.g. `casino.com` or `example.org/casino`.
    pub entry: String,
}

impl Index {
    /// The label bits (category set) the request carries: the union of the labels of every
    /// matching entry, minus those of matching exceptions.
    #[inline]
    pub fn lookup(&self, url: &NormUrl) -> u64 {
        self.matches(url).labels()
    }

    /// Whether the index holds no entries.
    pub fn is_empty(&self) -> bool {
        self.hosts.len == 0
    }

    /// Looks the request up and remembers which entries matched, so that a decision can be
    /// explained with [`Index::explain_matches`] without probing again.
    #[inline]
    pub fn matches(&self, url: &NormUrl) -> Matches {
        let text = url.as_str().as_bytes();
        let host_end = url.host_end();
        let mut m = Matches::default();
        if url.host_kind() == HostKind::Ip {
            if let Some(t) = self.hosts.get(hash(&text[..host_end])) {
                self.collect(url, &mut m, 0, t);
            }
            return m;
        }
        // A recently requested host: what probing its parent domains found, without probing.
        let full = hash(&text[..host_end]);
        if let Some(packed) = self.cache.get(full) {
            for (start, t) in Found::hits(packed) {
                self.collect(url, &mut m, start, t);
            }
            return m;
        }
        // Only parent domains with a listed number of labels can match. Their keys are
        // gathered first and probed together (`Table::get_all`), so that the cache misses of
        // the probes overlap instead of following one another.
        let mut starts = [0; PROBES];
        let mut keys = [0; PROBES];
        let mut n = 0;
        let mut found = Found::default();
        url.each_domain(|start, labels| {
            if labels > self.labels.max {
                return true;
            }
            if labels < self.labels.min {
                return false;
            }
            if n == PROBES {
                self.collect_hosts(url, &mut m, &mut found, &starts, &keys);
                n = 0;
            }
            starts[n] = start;
            keys[n] = if start == 0 {
                full
            } else {
                hash(&text[start..host_end])
            };
            n += 1;
            true
        });
        self.collect_hosts(url, &mut m, &mut found, &starts[..n], &keys[..n]);
        self.cache.put(full, found);
        m
    }

    /// Probes the host table with the keys of parent domains starting at `starts` (longest
    /// first) and collects what matched, in that order.
    #[inline]
    fn collect_hosts(
        &self,
        url: &NormUrl,
        m: &mut Matches,
        found: &mut Found,
        starts: &[usize],
        keys: &[u64],
    ) {
        let mut tags = [None; PROBES];
        self.hosts.get_all(keys, &mut tags);
        for (&start, t) in starts.iter().zip(tags) {
            if let Some(t) = t {
                found.push(start, t);
                self.collect(url, m, start, t);
            }
        }
    }

    /// Adds a matched host's tag, and its matching URL entries, to `m`.
    #[inline]
    fn collect(&self, url: &NormUrl, m: &mut Matches, start: usize, t: u32) {
        let tag = &self.tags[t as usize];
        if tag.has_paths {
            self.for_each_path(url, start, |pt, end| {
                m.push(&self.tags[pt as usize], pt, start, end);
                false
            });
        }
        m.push(tag, t, start, url.host_end());
    }

    /// The most specific entry behind `labels` among the matches of a lookup of `url`.
    pub fn explain_matches(&self, url: &NormUrl, m: &Matches, labels: u64) -> Option<Hit> {
        for h in &m.hits[..m.len as usize] {
            if self.tags[h.tag as usize].block & labels != 0 {
                return self.hit(
                    h.tag,
                    labels,
                    url.as_str().get(h.start as usize..h.end as usize)?,
                );
            }
        }
        if m.overflow {
            return self.explain(url, labels);
        }
        None
    }

    /// Calls `f` with the tag id of every URL entry under the host suffix starting at `start`
    /// that matches the request, shortest first; stops when `f` returns true and returns the
    /// end of the matching prefix.
    #[inline]
    fn for_each_path(
        &self,
        url: &NormUrl,
        start: usize,
        mut f: impl FnMut(u32, usize) -> bool,
    ) -> Option<usize> {
        let text = url.as_str().as_bytes();
        // Path prefixes at segment boundaries; then, for entries with a query, the whole path
        // with each query prefix at a parameter boundary (so `&x=1` appended does not escape).
        url.find_prefix_end(self.max_depth, self.max_params, |end| {
            self.paths
                .get(hash(&text[start..end]))
                .is_some_and(|t| f(t, end))
        })
    }

    /// The most specific entry that gives the request one of `labels`, if any, found by
    /// probing again. Prefer [`Index::explain_matches`] when a lookup was just made.
    pub fn explain(&self, url: &NormUrl, labels: u64) -> Option<Hit> {
        let text = url.as_str();
        let host_end = url.host_end();
        let mut found = None;
        url.each_domain(|start, _| {
            let Some(t) = self.hosts.get(hash(&text.as_bytes()[start..host_end])) else {
                return true;
            };
            let tag = &self.tags[t as usize];
            if tag.has_paths {
                let mut path = None;
                let end = self.for_each_path(url, start, |t, _| {
                    path = Some(t);
                    self.tags[t as usize].block & labels != 0
                });
                if let (Some(end), Some(t)) = (end, path) {
                    found = self.hit(t, labels, &text[start..end]);
                    if found.is_some() {
                        return false;
                    }
                }
            }
            if tag.block & labels != 0 {
                found = self.hit(t, labels, &text[start..host_end]);
                return false;
            }
            true
        });
        found
    }

    fn hit(&self, tag: u32, labels: u64, entry: &str) -> Option<Hit> {
        let source = self.tags[tag as usize]
            .members
            .iter()
            .filter(|&&m| m & 3 == KIND_BLOCK)
            .map(|&m| SourceId((m >> 2) as u16))
            .find(|s| self.sources[s.index()].labels & labels != 0)?;
        Some(Hit {
            source,
            entry: entry.to_owned(),
        })
    }

    /// The registered sources.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// Number of distinct host entries (domain entries plus hosts that only have URL entries).
    pub fn host_entries(&self) -> usize {
        self.hosts.len
    }

    /// Number of distinct URL entries.
    pub fn path_entries(&self) -> usize {
        self.paths.len
    }

    /// How many distinct host and URL entries carry each label bit.
    pub fn label_counts(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        (0..64)
            .map(|b| {
                (
                    b,
                    self.host_labels[b as usize],
                    self.path_labels[b as usize],
                )
            })
            .filter(|&(_, h, p)| h + p > 0)
    }

    /// How many hosts the host cache remembers (0: no cache).
    pub fn host_cache_entries(&self) -> usize {
        self.cache.entries.len()
    }

    /// Heap bytes held by the host cache (part of [`Index::memory_bytes`]).
    pub fn host_cache_bytes(&self) -> usize {
        self.cache.entries.len() * std::mem::size_of::<CacheEntry>()
    }

    /// Number of interned source combinations.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// Heap bytes held by the index.
    pub fn memory_bytes(&self) -> usize {
        let tags: usize = self
            .tags
            .iter()
            .map(|t| std::mem::size_of::<Tag>() + t.members.len() * 4)
            .sum();
        let sources: usize = self
            .sources
            .iter()
            .map(|s| std::mem::size_of::<SourceInfo>() + s.name.len())
            .sum();
        self.hosts.memory() + self.paths.memory() + self.host_cache_bytes() + tags + sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, Format};

    /// Builds an index from `(source name, labels, format, text)` rows.
    fn index(lists: &[(&str, u64, Format, &str)]) -> Index {
        let mut builder = IndexBuilder::new();
        let mut sink = EntrySink::new();
        for &(name, labels, format, text) in lists {
            let id = builder
                .add_source(SourceInfo {
                    name: name.into(),
                    labels,
                })
                .unwrap();
            let report = parse(format, text.as_bytes(), |kind, url| sink.add(id, kind, url));
            assert_eq!(report.rejected, 0, "{name}: {:?}", report.samples);
        }
        let mut ix = builder.build(vec![sink]);
        // Small indexes have no host cache; these tests go through one all the same.
        ix.cache = HostCache::with_entries(64);
        ix
    }

    /// The radix sort orders pairs as the standard sort does: small and large inputs, keys
    /// that share digits (skipped passes), repeated keys with several values, duplicates.
    #[test]
    fn sorted_agrees_with_the_standard_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let cases: Vec<Vec<(u64, u32)>> = vec![
            vec![],
            vec![(3, 1), (1, 2), (3, 0)],
            (0..10_000)
                .map(|_| (rand(), rand() as u32 & 0xffff))
                .collect(),
            // Few distinct keys: long runs of one key with shuffled values, and duplicates.
            (0..10_000)
                .map(|_| (rand() % 50, rand() as u32 % 7))
                .collect(),
            // Keys that differ only in their low bits: most passes are skipped.
            (0..10_000)
                .map(|_| (0xabcd_0000_0000_0000 | (rand() % 1000), 1))
                .collect(),
            (0..100_000u64)
                .rev()
                .map(|k| (k << 40, (k % 3) as u32))
                .collect(),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let mut want = case.clone();
            want.sort_unstable();
            // As a sink gathers them (its blocks), and as several sinks' blocks joined.
            let mut one = Pairs::default();
            let mut joined = Pairs::default();
            for (n, &(key, value)) in case.iter().enumerate() {
                one.push(key, value);
                let mut sink = Pairs::default();
                sink.push(key, value);
                if n % 3 == 0 || joined.blocks.is_empty() {
                    joined.blocks.extend(sink.blocks);
                } else if let Some(last) = joined.blocks.last_mut() {
                    last.extend(sink.blocks.concat());
                }
            }
            assert!(one.blocks.iter().all(|b| b.len() <= Pairs::BLOCK));
            for pairs in [one, joined] {
                let got: Vec<(u64, u32)> =
                    sorted(pairs).iter().map(|p| (p.key(), p.value())).collect();
                assert!(got == want, "case {i}");
            }
        }
    }

    /// A sink's pairs fill blocks of at most `BLOCK` (the first one grown, the next ones
    /// made whole), in the order they came.
    #[test]
    fn pairs_fill_blocks_in_order() {
        let mut pairs = Pairs::default();
        let n = Pairs::BLOCK + 3;
        for i in 0..n as u64 {
            pairs.push(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i as u32);
        }
        let lens: Vec<usize> = pairs.blocks.iter().map(Vec::len).collect();
        assert_eq!(lens, [Pairs::BLOCK, 3]);
        assert_eq!(pairs.blocks[1].capacity(), Pairs::BLOCK);
        assert_eq!(pairs.len(), n);
        assert!(pairs.iter().enumerate().all(|(i, p)| p.value() == i as u32));
        let sorted = sorted(pairs);
        assert_eq!(sorted.len(), n);
        assert!(sorted
            .windows(2)
            .all(|w| (w[0].key(), w[0].value()) <= (w[1].key(), w[1].value())));
    }

    const GAMBLING: u64 = 1;
    const ADS: u64 = 2;
    const PORN: u64 = 4;

    fn fixture() -> Index {
        index(&[
            ("gambling/domains", GAMBLING, Format::Domains, "casino.com\nbet.co.uk\n10.0.0.7\n"),
            ("gambling/urls", GAMBLING, Format::Urls, "example.org/casino/\nsearch.example/q.php?id=7\n"),
            ("porn/urls", PORN, Format::Urls, "example.org/casino/adult\n"),
            ("ads", ADS, Format::Adblock, "||ads.example^\n@@||good.ads.example^\n||casino.com^\n@@||cdn.example.org/casino/static^\n||example.org/banner^\n@@||example.org/banner/ok^\n"),
        ])
    }

    /// One row: request, expected label bits; looked up twice, the second time (for a
    /// host with at most two matching parent domains) from the host cache.
    fn check(index: &Index, url: &str, want: u64) {
        let u = NormUrl::parse(url).unwrap();
        assert_eq!(index.lookup(&u), want, "{url}");
        assert_eq!(index.lookup(&u), want, "{url}, again");
    }

    #[test]
    fn matching_semantics() {
        let ix = fixture();
        let rows: &[(&str, u64)] = &[
            // A listed domain matches itself and its subdomains, not lookalike neighbours.
            ("casino.com", GAMBLING | ADS),
            ("http://WWW.Casino.com./poker", GAMBLING | ADS),
            ("a.b.c.casino.com", GAMBLING | ADS),
            ("notcasino.com", 0),
            ("casino.com.evil.net", 0),
            ("casino.co", 0),
            ("bet.co.uk", GAMBLING),
            ("co.uk", 0),
            // URL entries match at segment boundaries, on the host and its subdomains.
            ("http://example.org/casino", GAMBLING),
            ("http://example.org/casino/", GAMBLING),
            ("http://example.org/Casino/roulette?x=1", GAMBLING),
            ("http://www.example.org/casino/x", GAMBLING),
            ("http://example.org/casinos", 0),
            ("http://example.org/", 0),
            ("http://example.org/other/casino", 0),
            ("http://example.org/casino/adult/pics", GAMBLING | PORN),
            ("http://example.org/%63asino/../casino/./x", GAMBLING),
            // An entry with a query matches queries that start with it, at parameter boundaries.
            ("http://search.example/q.php?id=7", GAMBLING),
            ("http://search.example/q.php?id=7&x=1", GAMBLING),
            ("http://search.example/q.php?id=7;x", GAMBLING),
            ("http://search.example/q.php?id=70", 0),
            ("http://search.example/q.php?id=8", 0),
            ("http://search.example/q.php?x=1&id=7", 0),
            ("http://search.example/q.php", 0),
            // IP entries match the address in any spelling, not as a suffix.
            ("http://10.0.0.7/", GAMBLING),
            ("http://0xa.0.0.7/", GAMBLING),
            ("http://167772167/", GAMBLING),
            ("http://110.0.0.7/", 0),
            // Exceptions take their source's labels away, at any depth.
            ("ads.example", ADS),
            ("x.ads.example", ADS),
            ("good.ads.example", 0),
            ("x.good.ads.example", 0),
            ("http://example.org/banner/x", ADS),
            ("http://example.org/banner/ok/x", 0),
            // ...but only their own source's: gambling/urls still lists this.
            ("http://cdn.example.org/casino/static/a.png", GAMBLING),
        ];
        for &(url, want) in rows {
            check(&ix, url, want);
        }
    }

    #[test]
    fn explain_names_source_and_entry() {
        let ix = fixture();
        let explain = |url: &str, labels: u64| {
            ix.explain(&NormUrl::parse(url).unwrap(), labels)
                .map(|h| format!("{} {}", ix.sources()[h.source.index()].name, h.entry))
        };
        assert_eq!(
            explain("www.casino.com/x", GAMBLING).as_deref(),
            Some("gambling/domains casino.com")
        );
        assert_eq!(
            explain("www.casino.com/x", ADS).as_deref(),
            Some("ads casino.com")
        );
        assert_eq!(
            explain("example.org/casino/adult/x", PORN).as_deref(),
            Some("porn/urls example.org/casino/adult")
        );
        assert_eq!(
            explain("www.example.org/casino/adult/x", GAMBLING).as_deref(),
            Some("gambling/urls example.org/casino")
        );
        assert_eq!(explain("other.org", GAMBLING), None);
    }

    #[test]
    fn remembered_matches_explain_like_a_fresh_probe() {
        let ix = fixture();
        for url in [
            "www.casino.com/x",
            "example.org/casino/adult/x",
            "x.ads.example",
            "good.ads.example",
            "z.org",
        ] {
            let u = NormUrl::parse(url).unwrap();
            // The first lookup probes; the second finds the host in the cache.
            for round in ["probed", "cached"] {
                let m = ix.matches(&u);
                assert_eq!(m.labels(), ix.lookup(&u), "{url}");
                for labels in [GAMBLING, ADS, PORN, GAMBLING | PORN] {
                    assert_eq!(
                        ix.explain_matches(&u, &m, labels),
                        ix.explain(&u, labels),
                        "{url} {labels} {round}"
                    );
                }
            }
        }
        // More matching entries than a lookup remembers: the explanation probes again.
        let deep: String = (0..12).map(|i| format!("l{i}.")).collect::<String>() + "deep.example";
        let entries: String = (0..12)
            .map(|i| format!("{}\n", &deep[deep.find(&format!("l{i}.")).unwrap()..]))
            .collect();
        let ix = index(&[
            ("a", ADS, Format::Domains, &entries),
            ("g", GAMBLING, Format::Domains, "deep.example\n"),
        ]);
        let u = NormUrl::parse(&deep).unwrap();
        let m = ix.matches(&u);
        assert!(m.overflow);
        assert_eq!(
            ix.explain_matches(&u, &m, GAMBLING)
                .map(|h| h.entry)
                .as_deref(),
            Some("deep.example")
        );
    }

    /// What the cache keeps of a host's probes: up to two hits, in order, and nothing it
    /// cannot pack.
    #[test]
    fn found_packs_two_hits_and_refuses_more() {
        type Hits = &'static [(usize, u32)];
        let rows: &[(Hits, Option<Hits>)] = &[
            (&[], Some(&[])),
            (&[(0, 0)], Some(&[(0, 0)])),
            (&[(4, 7), (12, 3)], Some(&[(4, 7), (12, 3)])),
            (&[(255, Found::MAX_TAG)], Some(&[(255, Found::MAX_TAG)])),
            (&[(0, 1), (2, 2), (4, 3)], None),
            (&[(256, 1)], None),
            (&[(0, Found::MAX_TAG + 1)], None),
        ];
        for &(hits, want) in rows {
            let mut found = Found::default();
            for &(start, tag) in hits {
                found.push(start, tag);
            }
            let got = (!found.uncachable).then(|| Found::hits(found.packed).collect::<Vec<_>>());
            assert_eq!(got.as_deref(), want, "{hits:?}");
        }
    }

    /// A host's first lookup fills its cache entry and the next is answered from it; hosts
    /// with more matches than an entry holds, and IP hosts, are probed every time.
    #[test]
    fn host_cache_is_filled_and_used() {
        let ix = fixture();
        let rows: &[(&str, bool)] = &[
            ("www.casino.com/x", true),
            ("example.org/casino/adult/x", true),
            ("x.good.ads.example", true),
            ("unlisted.example", true),
            ("http://10.0.0.7/", false),
        ];
        for &(url, cached) in rows {
            let u = NormUrl::parse(url).expect("url");
            let key = hash(u.host().as_bytes());
            assert!(ix.cache.get(key).is_none(), "{url}: cached before a lookup");
            let labels = ix.lookup(&u);
            assert_eq!(ix.cache.get(key).is_some(), cached, "{url}");
            assert_eq!(ix.lookup(&u), labels, "{url}");
        }
        // Three matching parent domains do not fit in an entry.
        let deep: String = (0..3).map(|i| format!("l{i}.")).collect::<String>() + "deep.example";
        let ix = index(&[(
            "a",
            ADS,
            Format::Domains,
            "l0.l1.l2.deep.example\nl1.l2.deep.example\nl2.deep.example\n",
        )]);
        let u = NormUrl::parse(&deep).expect("url");
        assert_eq!(ix.lookup(&u), ADS);
        assert!(ix.cache.get(hash(deep.as_bytes())).is_none());
    }

    /// The cache's size: none for a small index or when asked for none, otherwise what was
    /// asked for rounded up to a power of two, at most the limit.
    #[test]
    fn host_cache_size_follows_the_index_and_the_setting() {
        let min = HOST_CACHE_MIN_HOSTS;
        let rows: &[(usize, usize, usize)] = &[
            (100, DEFAULT_HOST_CACHE, 0),
            (min - 1, 1 << 20, 0),
            (min, DEFAULT_HOST_CACHE, DEFAULT_HOST_CACHE),
            (min, 0, 0),
            (min, 1, 1),
            (min, 1000, 1024),
            (min, 1024, 1024),
            (min, 1025, 2048),
            (10_000_000, MAX_HOST_CACHE, MAX_HOST_CACHE),
            (10_000_000, MAX_HOST_CACHE + 1, MAX_HOST_CACHE),
            (10_000_000, usize::MAX, MAX_HOST_CACHE),
        ];
        for &(hosts, wanted, want) in rows {
            let got = HostCache::for_index(hosts, wanted).entries.len();
            assert_eq!(got, want, "{hosts} hosts, {wanted} wanted");
        }
    }

    /// The builder's setting reaches the index, and an index with no cache answers as one
    /// with a cache does (every lookup probing).
    #[test]
    fn builder_sizes_the_host_cache() {
        let text: String = (0..HOST_CACHE_MIN_HOSTS)
            .map(|i| format!("host{i}.example\n"))
            .collect();
        let build = |setting: Option<usize>| {
            let mut builder = IndexBuilder::new();
            if let Some(n) = setting {
                builder.host_cache(n);
            }
            let id = builder
                .add_source(SourceInfo {
                    name: "a".into(),
                    labels: ADS,
                })
                .expect("source");
            let mut sink = EntrySink::new();
            parse(Format::Domains, text.as_bytes(), |kind, url| {
                sink.add(id, kind, url)
            });
            builder.build(vec![sink])
        };
        let rows: &[(Option<usize>, usize)] =
            &[(None, DEFAULT_HOST_CACHE), (Some(0), 0), (Some(3000), 4096)];
        for &(setting, want) in rows {
            let ix = build(setting);
            assert_eq!(ix.host_cache_entries(), want, "{setting:?}");
            for url in [
                "www.host7.example",
                "host4095.example/x",
                "host4096.example",
            ] {
                let u = NormUrl::parse(url).expect("url");
                let listed = url != "host4096.example";
                for _ in 0..2 {
                    assert_eq!(ix.lookup(&u) == ADS, listed, "{url}, {setting:?}");
                }
            }
        }
    }

    /// Threads looking up hosts whose cache entries are one and the same, with different
    /// results, all the time: a reader never takes half of one write and half of another
    /// for an answer.
    #[test]
    fn host_cache_shared_by_threads_answers_right() {
        let mut ix = fixture();
        ix.cache = HostCache::with_entries(1);
        let rows: Vec<(NormUrl, u64)> = [
            ("www.casino.com/x", GAMBLING | ADS),
            ("example.org/casino/adult/x", GAMBLING | PORN),
            ("x.ads.example", ADS),
            ("x.good.ads.example", 0),
            ("bet.co.uk", GAMBLING),
            ("unlisted.example", 0),
        ]
        .into_iter()
        .map(|(url, want)| (NormUrl::parse(url).expect("url"), want))
        .collect();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (ix, rows) = (&ix, &rows);
                scope.spawn(move || {
                    for i in 0..50_000 {
                        let (u, want) = &rows[(i * (t + 1)) % rows.len()];
                        assert_eq!(ix.lookup(u), *want, "{u}");
                    }
                });
            }
        });
    }

    /// Every key finds its own tag, and keys not in the table find nothing, whatever the
    /// width the tags take in a slot: one tag (no bits), 7 (3 bits), 600 (10 bits, as the
    /// shared lists need) and 5,858 (13 bits). Among the keys looked for and not there: each
    /// listed key with one bit flipped: the lowest and the highest the fingerprint keeps,
    /// and the highest of all, which the fingerprint drops (the key's home is then half the
    /// table away).
    #[test]
    fn table_keeps_each_keys_tag_whatever_the_tag_width() {
        for (sources, want_tags) in [(1, 1), (2, 7), (150, 600), (1500, 5858)] {
            let infos: Vec<SourceInfo> = (0..sources)
                .map(|i| SourceInfo {
                    name: format!("s{i}").into(),
                    labels: 1 << (i % 64),
                })
                .collect();
            let mut interner = Interner::new(&infos);
            let mut pairs = Pairs::default();
            let mut want = Vec::new();
            for i in 0..20_000u32 {
                let key = hash(format!("host-{i}.example").as_bytes());
                // One member (source, block or exception), or two for every seventh key.
                let kind = if sources == 1 { 0 } else { (i / sources) % 2 };
                let first = ((i % sources) << 2) | kind;
                pairs.push(key, first);
                let mut members = vec![first];
                if i % 7 == 0 && sources > 1 {
                    let second = ((i + 1) % sources) << 2;
                    pairs.push(key, second);
                    members.push(second);
                }
                members.sort_unstable();
                want.push((key, members));
            }
            let table = Table::build(pairs, &mut interner);
            let tags = interner.tags;
            let listed: std::collections::HashSet<u64> = want.iter().map(|(k, _)| *k).collect();
            let bits = u32::BITS - (tags.len() as u32 - 1).leading_zeros();
            assert_eq!(tags.len(), want_tags, "{sources} sources");
            assert_eq!(table.tag_bits, bits, "{sources} sources");
            assert_eq!(table.len, want.len());
            for (key, members) in &want {
                let t = table.get(*key).expect("listed key");
                assert_eq!(&*tags[t as usize].members, members.as_slice());
                for bit in [0, 63 - table.tag_bits, 63] {
                    let other = key ^ (1 << bit);
                    if other as u32 != 0 && !listed.contains(&other) {
                        assert_eq!(table.get_unfiltered(other), None, "bit {bit}");
                    }
                }
            }
            for i in 0..20_000 {
                let key = hash(format!("other-{i}.example").as_bytes());
                assert_eq!(table.get(key), None);
            }
        }
    }

    #[test]
    fn filter_false_positive_rate_is_a_few_percent() {
        let keys = 200_000;
        let mut filter = Filter::new(keys);
        for i in 0..keys {
            filter.insert(hash(format!("listed-{i}.example").as_bytes()));
        }
        for i in 0..keys {
            assert!(filter.may_contain(hash(format!("listed-{i}.example").as_bytes())));
        }
        let hits = (0..keys)
            .filter(|i| filter.may_contain(hash(format!("other-{i}.example").as_bytes())))
            .count();
        let rate = hits as f64 / keys as f64;
        eprintln!("filter false positives: {:.2}%", rate * 100.0);
        assert!(rate < 0.05, "{rate}");
    }

    #[test]
    fn label_range_skips_only_impossible_probes() {
        let ix = index(&[(
            "a",
            ADS,
            Format::Domains,
            "casino.com\na.b.c.d.e.f.example\n",
        )]);
        check(&ix, "1.2.3.4.5.6.7.8.9.casino.com", ADS);
        check(&ix, "x.a.b.c.d.e.f.example", ADS);
        check(&ix, "b.c.d.e.f.example", 0);
        check(&ix, "com", 0);
        // A single-label entry (a TLD) widens the range so that it is still probed.
        let ix = index(&[("a", ADS, Format::Domains, "casino.com\nzip\n")]);
        check(&ix, "www.evil.zip", ADS);
        check(&ix, "http://casino.com/", ADS);
        // IP entries are found whatever the domain range.
        let ix = index(&[("a", ADS, Format::Domains, "a.b.c.example\n10.1.2.3\n")]);
        check(&ix, "http://10.1.2.3/", ADS);
    }

    #[test]
    fn duplicates_merge_and_counts_are_distinct() {
        let ix = index(&[
            (
                "a",
                GAMBLING,
                Format::Domains,
                "casino.com\ncasino.com\nCASINO.com.\nbet.com\n",
            ),
            ("b", GAMBLING | ADS, Format::Domains, "casino.com\n"),
        ]);
        assert_eq!(ix.host_entries(), 2);
        let counts: Vec<_> = ix.label_counts().collect();
        assert_eq!(counts, [(0, 2, 0), (1, 1, 0)]);
        check(&ix, "casino.com", GAMBLING | ADS);
    }

    #[test]
    fn default_index_answers_nothing() {
        check(&Index::default(), "casino.com/x?y", 0);
        assert_eq!(
            Index::default().explain(&NormUrl::parse("a.b").unwrap(), u64::MAX),
            None
        );
    }

    #[test]
    fn empty_index_answers_nothing() {
        let ix = IndexBuilder::new().build(vec![]);
        check(&ix, "casino.com/x?y", 0);
        assert_eq!(ix.host_entries(), 0);
    }
}
