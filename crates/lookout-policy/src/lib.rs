//! Lookout's policy engine: given a canonical URL, a group and the local time, decide allow,
//! warn or block, and say why. Sans-I/O: the caller supplies the index, the clock reading and
//! the group.
//!
//! Precedence, first match wins:
//! 1. illegal-content categories: always block, whatever else is configured;
//! 2. the group's deny list;
//! 3. the group's forbidden download types (an allow-listed site still may not serve `.exe`);
//! 4. the group's allow list;
//! 5. category rules: the strictest action over the URL's categories, where a schedule that is
//!    active now replaces the group's action for the categories it names;
//! 6. otherwise allow.

mod destinations;
mod networks;
mod schedule;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use lookout_lists::{
    Category, CategorySet, EntryKind, EntrySink, Index, IndexBuilder, Matches, NormUrl, SourceInfo,
    UrlError,
};

pub use destinations::{effective, AddrClass, Destinations, Internal, Refused, RefusedWhy};
pub use networks::Networks;

/// Reads the local wall clock, for schedules (injected so that tests can fix it).
pub type Clock = std::sync::Arc<dyn Fn() -> LocalTime + Send + Sync>;
pub use schedule::{LocalTime, Schedule, Weekday, WeekdaySet};

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Let it through.
    Allow,
    /// Show a click-through warning page; the click-through is logged.
    Warn,
    /// Refuse it with a block page.
    Block,
}

impl Action {
    /// `allow`, `warn` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Block => "block",
        }
    }

    /// Every action, in order.
    pub const ALL: [Action; 3] = [Action::Allow, Action::Warn, Action::Block];
}

/// Decisions counted by action, for a server's metrics (relaxed atomics: a count, not a
/// synchronisation point).
#[derive(Debug, Default)]
pub struct ActionCounts([std::sync::atomic::AtomicU64; 3]);

impl ActionCounts {
    /// Counts one decision.
    pub fn count(&self, action: Action) {
        self.0[action as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Decisions counted with `action` so far.
    pub fn get(&self, action: Action) -> u64 {
        self.0[action as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The list entry behind a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The list source, e.g. `ut1/gambling/domains` or `groups.staff.allow`.
    pub source: Arc<str>,
    /// The entry in canonical form, e.g. `casino.com`.
    pub entry: String,
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` in {}", self.entry, self.source)
    }
}

/// Why a decision was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// An illegal-content list matched; nothing can override this.
    Illegal {
        /// The illegal category.
        category: Category,
        /// The matching list entry.
        matched: Option<Matched>,
    },
    /// The group's deny list matched.
    Denied(Matched),
    /// The file type may not be downloaded by this group.
    Download {
        /// The forbidden extension, without the dot.
        extension: String,
    },
    /// The group's allow list matched.
    Allowed(Matched),
    /// A category rule decided.
    Category {
        /// The category whose rule decided.
        category: Category,
        /// The matching list entry.
        matched: Option<Matched>,
        /// The schedule that set this action, if one was active.
        schedule: Option<String>,
    },
    /// No rule matched.
    NoRule,
    /// The URL could not be understood; blocked rather than guessed at.
    InvalidUrl(UrlError),
    /// The address the host resolved to may not be reached from this group (the gateway
    /// itself, internal networks): the refusal, in words.
    Destination(String),
}

/// [`Reason::NoRule`] in words.
const NO_RULE: &str = "no rule matched";

impl Reason {
    /// Short machine name of the rule kind, for logs and JSON.
    pub fn rule(&self) -> &'static str {
        match self {
            Reason::Illegal { .. } => "illegal",
            Reason::Denied(_) => "deny-list",
            Reason::Download { .. } => "download",
            Reason::Allowed(_) => "allow-list",
            Reason::Category {
                schedule: Some(_), ..
            } => "schedule",
            Reason::Category { .. } => "category",
            Reason::NoRule => "default",
            Reason::InvalidUrl(_) => "invalid-url",
            Reason::Destination(_) => "destination",
        }
    }

    /// The reason in words, as `to_string` spells it; borrowed when it has no detail (no rule
    /// matched, most requests), so that logging it allocates nothing.
    pub fn text(&self) -> Cow<'static, str> {
        match self {
            Reason::NoRule => Cow::Borrowed(NO_RULE),
            _ => Cow::Owned(self.to_string()),
        }
    }

    /// The list entry behind the decision, if one was.
    pub fn matched(&self) -> Option<&Matched> {
        match self {
            Reason::Illegal { matched, .. } | Reason::Category { matched, .. } => matched.as_ref(),
            Reason::Denied(m) | Reason::Allowed(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = |f: &mut fmt::Formatter<'_>, m: &Option<Matched>| match m {
            Some(m) => write!(f, " ({m})"),
            None => Ok(()),
        };
        match self {
            Reason::Illegal { category, matched } => {
                write!(f, "illegal content: {}", category.info().title)?;
                via(f, matched)
            }
            Reason::Denied(m) => write!(f, "on the group's deny list ({m})"),
            Reason::Download { extension } => {
                write!(
                    f,
                    "downloading .{extension} files is not allowed for this group"
                )
            }
            Reason::Allowed(m) => write!(f, "on the group's allow list ({m})"),
            Reason::Category {
                category,
                matched,
                schedule,
            } => {
                write!(f, "category {}", category.info().title)?;
                if let Some(s) = schedule {
                    write!(f, " under schedule `{s}`")?;
                }
                via(f, matched)
            }
            Reason::NoRule => f.write_str(NO_RULE),
            Reason::InvalidUrl(e) => write!(f, "invalid URL: {e}"),
            Reason::Destination(why) => write!(f, "destination refused: {why}"),
        }
    }
}

/// A decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Every category the lists give the URL (after exceptions).
    pub categories: CategorySet,
    /// Why.
    pub reason: Reason,
}

/// `name` as text that lives as long as the process: the one copy made for it the first time
/// any group had that name. A policy is built again whenever the configuration is reloaded,
/// and each of its groups names every event it decides; interning keeps that name one copy
/// (never freed, as few as the distinct group names the configuration has ever held) instead
/// of an allocation each event.
pub fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match names.get(name.as_str()) {
        Some(&known) => known,
        None => {
            let new: &'static str = Box::leak(name.into_boxed_str());
            names.insert(new);
            new
        }
    }
}

/// One group's rules.
#[derive(Debug)]
pub struct Group {
    name: &'static str,
    block: CategorySet,
    warn: CategorySet,
    allow: Index,
    deny: Index,
    /// Entries allowed after an IT admin approved a review request: replaced while serving
    /// (one atomic pointer load per decision), never able to allow illegal content.
    reviewed: arc_swap::ArcSwap<Index>,
    /// Whether `reviewed` has any entries: a plain load, read before `reviewed` itself, whose
    /// load and release cost two atomic read-modify-writes per decision (arc_swap's debt
    /// slots) even when it is empty, as it mostly is. Set after each store.
    reviewed_any: AtomicBool,
    /// Held while `reviewed` and `reviewed_any` are replaced, so that two replacements at
    /// once cannot leave the flag saying "none" over a list with entries.
    reviewed_writer: Mutex<()>,
    extensions: Extensions,
    schedules: Vec<Schedule>,
    /// Whether search engines are forced into safe search for this group.
    pub safe_search: bool,
    /// Whether YouTube is forced into restricted mode for this group.
    pub youtube_restricted: bool,
}

/// A group's forbidden file extensions, lower-case. Most requests are for a file name with an
/// extension that is not forbidden (`html`, `php`): most are turned away by a set of 256 bits
/// keyed by length and first and last bytes, the rest by one integer per step of a binary
/// search rather than a string comparison a byte at a time.
#[derive(Debug, Default)]
struct Extensions {
    /// Extensions of up to [`Extensions::PACKED`] bytes, [`Extensions::pack`]ed, sorted.
    packed: Vec<u128>,
    /// Longer ones (none of the defaults).
    long: Vec<String>,
    /// Bit [`Extensions::key`] of every extension: one clear turns an extension away.
    keys: [u64; 4],
}

impl Extensions {
    const PACKED: usize = 15;

    fn new(extensions: &[String]) -> Extensions {
        let mut e = Extensions::default();
        for ext in extensions {
            let ext = ext.trim_start_matches('.').to_ascii_lowercase();
            let key = Extensions::key(ext.as_bytes());
            e.keys[key / 64] |= 1 << (key % 64);
            match Extensions::pack(ext.as_bytes()) {
                Some(v) => e.packed.push(v),
                None => e.long.push(ext),
            }
        }
        e.packed.sort_unstable();
        e.packed.dedup();
        e
    }

    /// An extension of up to 15 bytes as one number: its length, then its bytes lower-cased.
    /// The length keeps names apart that differ only by leading zero bytes.
    fn pack(ext: &[u8]) -> Option<u128> {
        (ext.len() <= Extensions::PACKED).then(|| {
            ext.iter().fold(ext.len() as u128, |v, &b| {
                (v << 8) | u128::from(b.to_ascii_lowercase())
            })
        })
    }

    fn is_empty(&self) -> bool {
        self.packed.is_empty() && self.long.is_empty()
    }

    /// A number below 256 from the length and the first and last bytes (their letters in
    /// either case alike), the same for two extensions that are equal but for case.
    #[inline]
    fn key(ext: &[u8]) -> usize {
        let byte = |b: Option<&u8>| b.map_or(0, |&b| usize::from(b | 0x20));
        (7 * byte(ext.first()) + byte(ext.last()) + 37 * ext.len()) % 256
    }

    /// Whether `ext` (any case) is one of them.
    fn contains(&self, ext: &str) -> bool {
        let key = Extensions::key(ext.as_bytes());
        if self.keys[key / 64] & (1 << (key % 64)) == 0 {
            return false;
        }
        match Extensions::pack(ext.as_bytes()) {
            Some(v) => self.packed.binary_search(&v).is_ok(),
            None => self.long.iter().any(|e| e.eq_ignore_ascii_case(ext)),
        }
    }
}

/// A policy the engine refuses to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A group tries to warn on or allow an illegal-content category.
    #[error(
        "group `{group}`: {category} is illegal content and is always blocked; it cannot be {what}"
    )]
    IllegalOverride {
        /// The group.
        group: String,
        /// The illegal category.
        category: Category,
        /// What the configuration tried (e.g. "warned", "allowed by schedule `x`").
        what: String,
    },
    /// An allow or deny entry is not a valid host or URL.
    #[error("group `{group}`: {list} entry `{entry}`: {error}")]
    BadEntry {
        /// The group.
        group: String,
        /// `allow` or `deny`.
        list: &'static str,
        /// The entry as written.
        entry: String,
        /// What is wrong.
        error: UrlError,
    },
    /// Two groups share a name.
    #[error("group `{0}` is defined twice")]
    DuplicateGroup(String),
}

/// The rules of a group, as given to [`Group::new`].
#[derive(Debug, Clone, Default)]
pub struct GroupSpec {
    /// Group name, e.g. `learners-u18`.
    pub name: String,
    /// Categories blocked (illegal ones are added whatever this says).
    pub block: CategorySet,
    /// Categories that show a click-through warning.
    pub warn: CategorySet,
    /// Hosts or `host/path` prefixes always allowed (except illegal content).
    pub allow: Vec<String>,
    /// Hosts or `host/path` prefixes always blocked.
    pub deny: Vec<String>,
    /// File extensions (without dot, any case) this group may not download.
    pub blocked_extensions: Vec<String>,
    /// Time-based changes to category actions.
    pub schedules: Vec<Schedule>,
    /// Force safe search.
    pub safe_search: bool,
    /// Force YouTube restricted mode.
    pub youtube_restricted: bool,
}

impl Group {
    /// Checks and compiles a group's rules.
    pub fn new(spec: GroupSpec) -> Result<Group, PolicyError> {
        let illegal = CategorySet::illegal();
        let refuse = |category: Category, what: String| PolicyError::IllegalOverride {
            group: spec.name.clone(),
            category,
            what,
        };
        if let Some(c) = spec.warn.intersection(illegal).first() {
            return Err(refuse(c, "warned (only blocked)".into()));
        }
        for s in &spec.schedules {
            if s.action != Action::Block {
                if let Some(c) = s.categories.intersection(illegal).first() {
                    return Err(refuse(c, format!("changed by schedule `{}`", s.name)));
                }
            }
        }
        let list = |name: &'static str, entries: &[String]| entry_index(&spec.name, name, entries);
        Ok(Group {
            block: spec.block.union(illegal),
            warn: spec.warn,
            allow: list("allow", &spec.allow)?,
            deny: list("deny", &spec.deny)?,
            reviewed: arc_swap::ArcSwap::from_pointee(entry_index(&spec.name, "reviewed", &[])?),
            reviewed_any: AtomicBool::new(false),
            reviewed_writer: Mutex::new(()),
            extensions: Extensions::new(&spec.blocked_extensions),
            schedules: spec.schedules.clone(),
            safe_search: spec.safe_search,
            youtube_restricted: spec.youtube_restricted,
            name: intern(spec.name),
        })
    }

    /// Replaces the entries allowed after review (hosts or `host/path` prefixes). All are
    /// checked first: a bad entry changes nothing.
    pub fn set_reviewed_allows(&self, entries: &[String]) -> Result<(), PolicyError> {
        let index = entry_index(self.name, "reviewed", entries)?;
        let _one_at_a_time = self
            .reviewed_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let any = !index.is_empty();
        self.reviewed.store(Arc::new(index));
        // After the store: a decision that sees `true` loads the new list.
        self.reviewed_any.store(any, Ordering::Release);
        Ok(())
    }

    /// The group's name, interned for the life of the process ([`intern`]), so that an
    /// event can name its group without an allocation.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the group may not download some file types.
    pub fn blocks_downloads(&self) -> bool {
        !self.extensions.is_empty()
    }

    /// The forbidden extension of `file_name` for this group, if it has one. Trailing dots and
    /// spaces (which Windows ignores) and `;parameters` do not hide the extension.
    pub fn forbidden_extension<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        // Byte loops and slice patterns rather than `split`, `rsplit_once` or `strip_suffix`:
        // names are short, memchr's set-up costs more than the search, and `strip_suffix`
        // with character patterns decodes characters from the end on every call.
        let b = file_name.as_bytes();
        let mut name = &b[..b.iter().position(|&c| c == b';').unwrap_or(b.len())];
        while let [rest @ .., b'.' | b' '] | [rest @ .., b'%', b'2', b'0'] = name {
            name = rest;
        }
        // `name` ends before an ASCII byte or at the end: a character boundary.
        let name = &file_name[..name.len()];
        let ext = &name[name.bytes().rposition(|b| b == b'.')? + 1..];
        self.extensions.contains(ext).then_some(ext)
    }

    fn category_action(
        &self,
        categories: CategorySet,
        at: LocalTime,
    ) -> Option<(Action, Category, Option<&str>)> {
        let mut best: Option<(Action, Category, Option<&str>)> = None;
        for c in categories.iter() {
            let mut action = if self.block.contains(c) {
                Action::Block
            } else if self.warn.contains(c) {
                Action::Warn
            } else {
                Action::Allow
            };
            let mut by = None;
            for s in &self.schedules {
                if s.categories.contains(c) && s.is_active(at) {
                    action = s.action;
                    by = Some(s.name.as_str());
                }
            }
            if c.is_illegal() {
                action = Action::Block; // belt and braces: Group::new already refuses otherwise
            }
            if best.is_none_or(|(a, _, _)| action > a) {
                best = Some((action, c, by));
            }
        }
        best
    }
}

/// An index of one group's `allow`, `deny` or `reviewed` entries.
fn entry_index(group: &str, name: &'static str, entries: &[String]) -> Result<Index, PolicyError> {
    let mut builder = IndexBuilder::new();
    let info = SourceInfo {
        name: format!("groups.{group}.{name}").into(),
        labels: 1,
    };
    let Ok(source) = builder.add_source(info) else {
        unreachable!("a new builder has room for one source");
    };
    let mut sink = EntrySink::new();
    for entry in entries {
        let trimmed = entry.trim().trim_start_matches("*.");
        let url = NormUrl::parse(trimmed).map_err(|error| PolicyError::BadEntry {
            group: group.to_owned(),
            list: name,
            entry: entry.clone(),
            error,
        })?;
        sink.add(source, EntryKind::Block, &url);
    }
    Ok(builder.build(vec![sink]))
}

/// Every group's rules. Shared read-only between request handlers (only the entries allowed
/// after review change while serving).
#[derive(Debug)]
pub struct Policy {
    groups: Vec<Group>,
}

/// Index of a group within a [`Policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(usize);

impl Policy {
    /// A policy of these groups.
    pub fn new(groups: Vec<Group>) -> Result<Policy, PolicyError> {
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].iter().any(|h| h.name == g.name) {
                return Err(PolicyError::DuplicateGroup(g.name.to_owned()));
            }
        }
        Ok(Policy { groups })
    }

    /// Finds a group by name.
    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.groups.iter().position(|g| g.name == name).map(GroupId)
    }

    /// The group's rules.
    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.0]
    }

    /// Every group.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Decides on a request that could not be normalised: block, fail closed.
    pub fn decide_invalid(error: UrlError) -> Decision {
        Decision {
            action: Action::Block,
            categories: CategorySet::EMPTY,
            reason: Reason::InvalidUrl(error),
        }
    }

    /// Decides on one request.
    pub fn decide(&self, index: &Index, group: GroupId, url: &NormUrl, at: LocalTime) -> Decision {
        self.decide_as(index, group, url, at, true)
    }

    /// Decides as [`Policy::decide`] does, without saying which list entry put the request in
    /// its category (`matched` is `None` in `Reason::Illegal` and `Reason::Category`), for
    /// callers that only pass on the action and category, such as a Squid helper: finding
    /// and copying the entry is a good part of a blocked request's cost.
    pub fn decide_briefly(
        &self,
        index: &Index,
        group: GroupId,
        url: &NormUrl,
        at: LocalTime,
    ) -> Decision {
        self.decide_as(index, group, url, at, false)
    }

    fn decide_as(
        &self,
        index: &Index,
        group: GroupId,
        url: &NormUrl,
        at: LocalTime,
        explained: bool,
    ) -> Decision {
        let group = &self.groups[group.0];
        let found = index.matches(url);
        let categories = CategorySet::from_bits(found.labels());
        let decision = |action, reason| Decision {
            action,
            categories,
            reason,
        };
        let explain = |ix: &Index, m: &Matches, labels: u64| {
            ix.explain_matches(url, m, labels).map(|hit| Matched {
                source: ix.sources()[hit.source.index()].name.clone(),
                entry: hit.entry,
            })
        };
        // A per-group list, if the group has one and it matches.
        let listed = |ix: &Index| {
            if ix.is_empty() {
                return None;
            }
            let m = ix.matches(url);
            (m.labels() != 0).then(|| explain(ix, &m, 1)).flatten()
        };

        if let Some(category) = categories.intersection(CategorySet::illegal()).first() {
            let matched = explained
                .then(|| explain(index, &found, CategorySet::one(category).bits()))
                .flatten();
            return decision(Action::Block, Reason::Illegal { category, matched });
        }
        if let Some(m) = listed(&group.deny) {
            return decision(Action::Block, Reason::Denied(m));
        }
        // A group that may download anything (IT staff, as a rule) skips the file name.
        let forbidden = if group.extensions.is_empty() {
            None
        } else {
            url.file_name().and_then(|f| group.forbidden_extension(f))
        };
        if let Some(ext) = forbidden {
            return decision(
                Action::Block,
                Reason::Download {
                    extension: ext.to_owned(),
                },
            );
        }
        if let Some(m) = listed(&group.allow) {
            return decision(Action::Allow, Reason::Allowed(m));
        }
        if group.reviewed_any.load(Ordering::Acquire) {
            if let Some(m) = listed(&group.reviewed.load()) {
                return decision(Action::Allow, Reason::Allowed(m));
            }
        }
        match group.category_action(categories, at) {
            Some((action, category, schedule)) => {
                // An allowed request needs no explanation (it costs an allocation).
                let matched = match action {
                    Action::Allow => None,
                    _ if !explained => None,
                    _ => explain(index, &found, CategorySet::one(category).bits()),
                };
                let schedule = schedule.map(str::to_owned);
                decision(
                    action,
                    Reason::Category {
                        category,
                        matched,
                        schedule,
                    },
                )
            }
            None => decision(Action::Allow, Reason::NoRule),
        }
    }
}

#[cfg(test)]
mod tests;
