//! The compiled library: one Aho-Corasick automaton over every normalised pattern, searched
//! with overlapping matches so that a phrase inside a longer one (and an exception around a
//! phrase) are all seen.

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::automaton::Automaton;
use aho_corasick::automaton::StateID;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use wide::u8x16;

use crate::normalize::Normalized;
use crate::phrases::{Entry, Library, LibraryError, Problem, WINDOW};
use crate::{Risk, Severity};

/// Matches kept per scan; a hostile text repeating a phrase a million times gives the same
/// findings as one repeating it ten thousand times.
const MAX_HITS: usize = 10_000;

/// Matches shown per finding (the score counts them all).
const MAX_MATCHES: usize = 10;

/// Bytes of original text shown either side of the evidence.
const CONTEXT: usize = 80;

#[derive(Clone, Copy, Debug)]
enum Use {
    Part { entry: u32, part: u8 },
    Except { risk: Option<Risk> },
}

/// Every pattern's uses in one array, pattern `p`'s at `list[at[p]..at[p + 1]]`: read for
/// every hit, they are then a few neighbouring lines of memory rather than a heap block
/// each.
#[derive(Debug)]
struct Uses {
    at: Vec<u32>,
    list: Vec<Use>,
}

impl Uses {
    fn new(per_pattern: Vec<Vec<Use>>) -> Uses {
        let mut at = Vec::with_capacity(per_pattern.len() + 1);
        let mut list = Vec::new();
        at.push(0);
        for uses in per_pattern {
            list.extend(uses);
            // A library's uses number a few thousand (every part of every rule, and each
            // exception), far below `u32::MAX`.
            at.push(list.len() as u32);
        }
        Uses { at, list }
    }

    fn of(&self, pattern: u32) -> &[Use] {
        let p = pattern as usize;
        &self.list[self.at[p] as usize..self.at[p + 1] as usize]
    }
}

/// A compiled phrase library, shared by every scanning thread.
#[derive(Debug)]
pub struct Scanner {
    /// The automaton's transitions, walked byte by byte (overlapping matches), without a
    /// prefilter: in normalised text every word starts with a space, so there is nothing rare
    /// to skip to. Repacked from `aho-corasick`'s DFA (see [`Table`]), which is then dropped.
    walks: Walks,
    /// The automaton itself, for tests to compare the repacked tables with.
    #[cfg(test)]
    dfa: DFA,
    /// Every byte as the automaton reads it: the bytes the patterns use numbered 1, 2, ... in
    /// order, every other byte 0, except that the digits share one number, and so do the
    /// bytes inside and at the start of a non-ASCII character (see [`fold`]). The built-in
    /// library's alphabet is then 32 classes, a row stride of 32, a table of 3.0 MB (1.5 MB
    /// repacked): each of its bytes numbered gave 57 (a stride of 64, 6.0 MB), the patterns'
    /// bytes interleaved with the gaps between them a stride of 128 (11.8 MB). `scan_pages` on
    /// risky text, five runs each alternately: 1.44-1.51 s before, 1.39-1.43 s after; prose the
    /// same.
    alphabet: [u8; 256],
    /// What each match state of the automaton matches, read with one look-up.
    states: MatchStates,
    /// Per pattern, what it means: parts of entries and/or exceptions.
    uses: Uses,
    entries: Vec<Entry>,
    patterns: Vec<Vec<u8>>,
    /// Length of the longest exception pattern.
    longest_exception: usize,
    /// Length of the longest pattern: a match ending at `p` starts at `p - longest` or later.
    longest: usize,
}

/// An exception's match: the risk it excuses (any if `None`) and its byte range in the
/// normalised text.
type Except = (Option<Risk>, usize, usize);

/// Buffers reused between scans by one thread.
#[derive(Debug, Default)]
pub struct Scratch {
    norm: Normalized,
    hits: Vec<Hit>,
    excepts: Vec<Except>,
    parts: Vec<PartHit>,
    /// Where each entry of one part has its one [`PartHit`] in `parts`.
    singles: Singles,
    /// The matches of each part but the first while a long text is walked in parts.
    later: [Later; WALKS - 1],
}

/// The matches of one part of a text walked in parts, and its exceptions with the number of
/// the part's matches before each.
#[derive(Debug, Default)]
struct Later {
    hits: Vec<Hit>,
    excepts: Vec<(usize, Except)>,
}

impl Later {
    fn record(&mut self, scanner: &Scanner, t: &[u8], c: Cursor) -> bool {
        let excepts = &mut self.excepts;
        scanner.record(t, c.sid, c.pos, &mut self.hits, |x, n| excepts.push((n, x)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    pattern: u32,
    /// The match without its word-edge spaces, in the normalised text.
    start: usize,
    end: usize,
}

/// The entries of one part (most of a library) found in the text being scanned: each keeps
/// one [`PartHit`] in the scan's list, its first in the text, and a count of its hits, rather
/// than a hit each for the list to sort (risky text: 60,636 part hits a 4 MiB pass, 42,885 of
/// them of such entries). A slot belongs to the scan whose number it holds, so none is
/// cleared between scans.
#[derive(Debug, Default)]
struct Singles {
    scan: u32,
    slots: Vec<Single>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Single {
    scan: u32,
    /// Its hits in this scan.
    count: u32,
    /// Its place in the scan's list of part hits.
    at: u32,
}

impl Singles {
    /// Starts a scan of a library of `entries` entries.
    fn start(&mut self, entries: usize) {
        if self.slots.len() < entries {
            self.slots.resize(entries, Single::default());
        }
        self.scan = self.scan.wrapping_add(1);
        if self.scan == 0 {
            // Numbers start again: no slot may seem to be of this scan.
            self.slots.fill(Single::default());
            self.scan = 1;
        }
    }

    /// Adds `hit`, of an entry of one part, to `parts`: as its entry's first, or in place of
    /// that one if it comes before it, counted either way.
    fn add(&mut self, parts: &mut Vec<PartHit>, hit: PartHit) {
        let slot = &mut self.slots[hit.entry() as usize];
        if slot.scan == self.scan {
            slot.count += 1;
            let kept = &mut parts[slot.at as usize];
            *kept = (*kept).min(hit);
        } else {
            *slot = Single {
                scan: self.scan,
                count: 1,
                at: parts.len() as u32,
            };
            parts.push(hit);
        }
    }

    /// How many hits `entry`, of one part, had in this scan.
    fn count(&self, entry: u32) -> usize {
        self.slots[entry as usize].count as usize
    }
}

/// A hit of one part of an entry: entry, token, part and hit number packed in one integer
/// that orders as that tuple would, so that sorting compares (and moves) 16 bytes once per
/// step. Tokens and hits are below 2^32 (a scanned text is shorter than 4 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PartHit(u128);

impl PartHit {
    fn new(entry: u32, token: usize, part: u8, hit: usize) -> PartHit {
        PartHit(
            u128::from(entry) << 96
                | (token as u128 & 0xffff_ffff) << 64
                | u128::from(part) << 32
                | (hit as u128 & 0xffff_ffff),
        )
    }

    fn entry(self) -> u32 {
        (self.0 >> 96) as u32
    }

    fn token(self) -> usize {
        (self.0 >> 64) as u32 as usize
    }

    fn part(self) -> usize {
        (self.0 >> 32) as u8 as usize
    }

    fn hit(self) -> usize {
        self.0 as u32 as usize
    }
}

/// What one category's rules found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub risk: Risk,
    /// The highest severity of the rules that matched.
    pub severity: Severity,
    /// The sum of the weights of the distinct rules that matched.
    pub score: u32,
    /// The rules that matched, most severe first (at most ten).
    pub matches: Vec<Match>,
}

/// One rule that matched, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The rule as written in its file.
    pub phrase: Arc<str>,
    /// `file:line` of the rule.
    pub source: Arc<str>,
    pub language: Arc<str>,
    pub severity: Severity,
    pub weight: u32,
    /// The words that matched, as written in the text.
    pub evidence: String,
    /// The evidence with up to 80 bytes either side, whitespace collapsed.
    pub context: String,
    /// Byte range of the evidence in the text.
    pub start: usize,
    pub end: usize,
    /// How many times the rule matched.
    pub count: usize,
}

impl Library {
    /// Builds the automaton. Fails only if the patterns exceed the automaton's limits.
    pub fn compile(&self) -> Result<Scanner, LibraryError> {
        let mut uses = vec![Vec::new(); self.terms.len()];
        for (i, e) in self.entries.iter().enumerate() {
            for (p, alts) in e.parts.iter().enumerate() {
                for &t in alts {
                    uses[t as usize].push(Use::Part {
                        entry: i as u32,
                        part: p as u8,
                    });
                }
            }
        }
        for x in &self.exceptions {
            uses[x.term as usize].push(Use::Except { risk: x.risk });
        }
        let alphabet = alphabet(&self.terms);
        let mapped = self.terms.iter().map(|t| {
            t.iter()
                .map(|&b| alphabet[usize::from(b)])
                .collect::<Vec<u8>>()
        });
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(mapped)
            .map_err(|e| LibraryError {
                problems: vec![Problem {
                    file: "(library)".into(),
                    line: 0,
                    message: format!("the phrases do not fit in one automaton: {e}"),
                }],
            })?;
        let excepts: Vec<bool> = uses
            .iter()
            .map(|u| u.iter().any(|u| matches!(u, Use::Except { .. })))
            .collect();
        let too_big = |what: &str| LibraryError {
            problems: vec![Problem {
                file: "(library)".into(),
                line: 0,
                message: format!("the phrases do not fit in one automaton: {what}"),
            }],
        };
        let reachable = Reachable::new(&dfa, &alphabet).ok_or_else(|| too_big("no start state"))?;
        let states = MatchStates::new(&dfa, &reachable, &self.terms, &excepts);
        let walks = Walks::new(&dfa, &reachable).ok_or_else(|| too_big("more than 2^32 states"))?;
        Ok(Scanner {
            walks,
            #[cfg(test)]
            dfa,
            alphabet,
            uses: Uses::new(uses),
            entries: self.entries.clone(),
            states,
            patterns: self.terms.clone(),
            longest_exception: self
                .exceptions
                .iter()
                .map(|x| self.terms[x.term as usize].len())
                .max()
                .unwrap_or(0),
            longest: self.terms.iter().map(Vec::len).max().unwrap_or(0),
        })
    }
}

/// The states a walk can be in: every state the automaton reaches from the start state over
/// the numbers the alphabet gives (the walk reads no other), numbered densely. The automaton's
/// ids are multiples of its row length; a state's number here is its id divided by that.
struct Reachable {
    start: StateID,
    /// In the order first seen, the start first.
    all: Vec<StateID>,
    /// Ids are multiples of `1 << shift`.
    shift: u32,
    /// The highest number of the alphabet.
    symbols: u8,
}

impl Reachable {
    fn new(dfa: &DFA, alphabet: &[u8; 256]) -> Option<Reachable> {
        let start = dfa.start_state(Anchored::No).ok()?;
        let symbols = alphabet.iter().copied().max().unwrap_or(0);
        // A bit per id seen (ids are below the length of the automaton's own table, so this
        // is at most a 32nd of its size); the built-in library's ~23,000 states take ~3 ms.
        let mut seen: Vec<u64> = Vec::new();
        let mut first_sight = |sid: StateID| {
            let i = sid.as_usize();
            if seen.len() <= i / 64 {
                seen.resize(i / 64 + 1, 0);
            }
            let new = seen[i / 64] & 1 << (i % 64) == 0;
            seen[i / 64] |= 1 << (i % 64);
            new
        };
        first_sight(start);
        let mut all = vec![start];
        // The largest power of two every id is a multiple of.
        let mut shift = start.as_u32().trailing_zeros();
        let mut next_to_visit = 0;
        while let Some(&sid) = all.get(next_to_visit) {
            next_to_visit += 1;
            for symbol in 0..=symbols {
                let next = dfa.next_state(Anchored::No, sid, symbol);
                if first_sight(next) {
                    shift = shift.min(next.as_u32().trailing_zeros());
                    all.push(next);
                }
            }
        }
        // 32 only if every id seen were 0 (the dead state, which an unanchored search never
        // enters): a shift must be below 32.
        Some(Reachable {
            start,
            all,
            shift: shift.min(31),
            symbols,
        })
    }

    /// A state's number.
    fn number(&self, sid: StateID) -> usize {
        (sid.as_u32() >> self.shift) as usize
    }
}

/// What each match state of the automaton matches, in the order the automaton lists it, with
/// what the scan needs of each pattern beside it: by the state's number, one look-up, then
/// neighbouring entries. Through the automaton's own accessors a match cost four dependent
/// reads (the state's list, the list's heap block, the pattern's length, the pattern's uses),
/// most of them cache misses in risky text, where a walk enters a match state every few words.
#[derive(Debug)]
struct MatchStates {
    /// By a state's number ([`Reachable::number`]): its first entry in `list`, and how many
    /// it has (none past the highest match state).
    at: Vec<(u32, u32)>,
    list: Vec<StateMatch>,
}

#[derive(Clone, Copy, Debug)]
struct StateMatch {
    pattern: u32,
    len: u32,
    /// The pattern holds a byte that shares its number with others (see [`fold`]): a match
    /// of the numbers is kept only where the text's bytes are the pattern's.
    checked: bool,
    /// The pattern is an exception (as well as, or instead of, a part of an entry).
    except: bool,
}

impl MatchStates {
    /// Each match state's patterns. `excepts` says, per pattern, whether it is an exception.
    fn new(dfa: &DFA, states: &Reachable, patterns: &[Vec<u8>], excepts: &[bool]) -> Self {
        let matching: Vec<StateID> = states
            .all
            .iter()
            .copied()
            .filter(|&sid| dfa.is_match(sid))
            .collect();
        let size = matching
            .iter()
            .map(|&sid| states.number(sid) + 1)
            .max()
            .unwrap_or(0);
        let mut out = MatchStates {
            at: vec![(0, 0); size],
            list: Vec::new(),
        };
        for sid in matching {
            let first = out.list.len() as u32;
            for k in 0..dfa.match_len(sid) {
                let pid = dfa.match_pattern(sid, k);
                let p = pid.as_usize();
                out.list.push(StateMatch {
                    pattern: pid.as_u32(),
                    len: dfa.pattern_len(pid) as u32,
                    checked: patterns[p].iter().any(|&b| fold(b).is_some()),
                    except: excepts[p],
                });
            }
            out.at[states.number(sid)] = (first, out.list.len() as u32 - first);
        }
        out
    }

    /// What the state numbered `sid` matches (nothing if it is not a match state).
    fn of(&self, sid: u32) -> &[StateMatch] {
        let (first, n) = self.at.get(sid as usize).copied().unwrap_or((0, 0));
        &self.list[first as usize..(first + n) as usize]
    }
}

/// The automaton's transitions as the walks read them: a row per state, by its number
/// ([`Reachable::number`]), a column per number of the alphabet, each cell the next state's
/// number. The automaton's own table holds 32-bit ids; numbers fit in 16 bits while a library
/// has at most 65,536 states (the built-in one has ~23,000), which halves the table the walks
/// wait on (3.0 MB to 1.5 MB; a row is 64 bytes, one cache line where the table is aligned to
/// them, as jemalloc's large allocations are). A larger library gets 32-bit cells
/// ([`Walks::Wide`]).
#[derive(Debug)]
struct Table<T> {
    next: Vec<T>,
    /// A row is `1 << bits` cells.
    bits: u32,
    start: u32,
    /// Numbers up to this are the automaton's special states: match states, and the dead
    /// and fail states a walk never enters. The automaton numbers them first.
    last_special: u32,
}

/// A cell of a [`Table`].
trait Cell: Copy + std::fmt::Debug {
    fn new(number: usize) -> Option<Self>;
    fn get(self) -> u32;
}

impl Cell for u16 {
    fn new(number: usize) -> Option<Self> {
        u16::try_from(number).ok()
    }
    #[inline(always)]
    fn get(self) -> u32 {
        u32::from(self)
    }
}

impl Cell for u32 {
    fn new(number: usize) -> Option<Self> {
        u32::try_from(number).ok()
    }
    #[inline(always)]
    fn get(self) -> u32 {
        self
    }
}

impl<T: Cell> Table<T> {
    /// `None` if a state's number does not fit in a cell.
    fn new(dfa: &DFA, states: &Reachable) -> Option<Table<T>> {
        let rows = states
            .all
            .iter()
            .map(|&sid| states.number(sid) + 1)
            .max()
            .unwrap_or(0);
        T::new(rows.saturating_sub(1))?;
        let bits = (u32::from(states.symbols) + 1)
            .next_power_of_two()
            .trailing_zeros();
        let mut table = Table {
            next: vec![T::new(0)?; rows << bits],
            bits,
            start: states.number(states.start) as u32,
            last_special: 0,
        };
        for &sid in &states.all {
            let row = states.number(sid);
            if dfa.is_special(sid) {
                table.last_special = table.last_special.max(row as u32);
            }
            for symbol in 0..=states.symbols {
                let next = states.number(dfa.next_state(Anchored::No, sid, symbol));
                table.next[row << bits | usize::from(symbol)] = T::new(next)?;
            }
        }
        Some(table)
    }

    /// The state after reading `symbol` in state `sid`.
    #[inline(always)]
    fn step(&self, sid: u32, symbol: u8) -> u32 {
        self.next[(sid << self.bits | u32::from(symbol)) as usize].get()
    }

    /// Whether the walk stops at state `sid` (a special state; see [`Table::last_special`]).
    #[inline(always)]
    fn is_special(&self, sid: u32) -> bool {
        sid <= self.last_special
    }
}

/// The table the walks read: 16-bit cells where the states allow it.
#[derive(Debug)]
enum Walks {
    Narrow(Table<u16>),
    Wide(Table<u32>),
}

impl Walks {
    fn new(dfa: &DFA, states: &Reachable) -> Option<Walks> {
        Table::new(dfa, states)
            .map(Walks::Narrow)
            .or_else(|| Table::new(dfa, states).map(Walks::Wide))
    }

    /// The table's heap bytes.
    fn bytes(&self) -> usize {
        match self {
            Walks::Narrow(t) => t.next.len() * 2,
            Walks::Wide(t) => t.next.len() * 4,
        }
    }
}

/// Steps the automaton over `t[from..]` until it enters a special state (a match) or the
/// text ends; returns the state and the position after the last byte read. Small and out of
/// line so that the state stays in a register: in the scanner's big loop it was spilled to
/// the stack, adding a store-to-load round trip to every byte's dependent table load.
#[inline(never)]
fn walk<T: Cell>(
    table: &Table<T>,
    alphabet: &[u8; 256],
    mut sid: u32,
    t: &[u8],
    from: usize,
) -> (u32, usize) {
    for (k, &b) in t[from..].iter().enumerate() {
        sid = table.step(sid, alphabet[usize::from(b)]);
        if table.is_special(sid) {
            return (sid, from + k + 1);
        }
    }
    (sid, t.len())
}

/// Long texts are walked in this many parts at once.
const WALKS: usize = 4;

/// Normalised texts at least this long are walked in parts, each of 512 bytes or more.
const SPLIT: usize = WALKS * 512;

/// One walk through part of the text: its state's number, the next byte to read, and where
/// it stops.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    sid: u32,
    pos: usize,
    end: usize,
}

/// Steps the walks in turn, a byte each, until one enters a special state or one reaches its
/// end. The walks do not depend on each other, so the processor waits for the table rows
/// they need at the same time: in normalised text most rows are not in cache.
#[inline(never)]
fn walk_all<T: Cell>(table: &Table<T>, alphabet: &[u8; 256], t: &[u8], c: &mut [Cursor; WALKS]) {
    let n = c.iter().map(|c| c.end - c.pos).min().unwrap_or(0);
    let texts: [&[u8]; WALKS] = std::array::from_fn(|i| &t[c[i].pos..c[i].pos + n]);
    let mut sids = c.map(|c| c.sid);
    let mut k = 0;
    while k < n {
        for (sid, text) in sids.iter_mut().zip(texts) {
            *sid = table.step(*sid, alphabet[usize::from(text[k])]);
        }
        k += 1;
        if sids.iter().any(|&sid| table.is_special(sid)) {
            break;
        }
    }
    for (c, sid) in c.iter_mut().zip(sids) {
        c.sid = sid;
        c.pos += k;
    }
}

/// Which bytes share one number in the automaton's alphabet (see [`Scanner::alphabet`]): the
/// ten digits, UTF-8's continuation bytes, and the bytes that lead a character of two or
/// more. A match of a pattern holding such a byte is checked against the text.
fn fold(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b'0'),
        0x80..=0xbf => Some(0x80),
        0xc0.. => Some(0xc0),
        _ => None,
    }
}

/// The automaton's byte numbering (see [`Scanner::alphabet`]): 0 for a byte no pattern uses,
/// one number for each other byte, or for each of [`fold`]'s groups. Normalised text holds
/// letters, digits, spaces and non-ASCII characters, so the built-in library's alphabet is
/// the letters, the space and three groups; at most 121 numbers are ever used.
fn alphabet(patterns: &[Vec<u8>]) -> [u8; 256] {
    let mut used = [false; 256];
    for p in patterns {
        for &b in p {
            used[usize::from(fold(b).unwrap_or(b))] = true;
        }
    }
    let mut map = [0u8; 256];
    let mut next = 0u8;
    for (b, _) in used.iter().enumerate().filter(|(_, &u)| u) {
        next += 1;
        map[b] = next;
    }
    for b in 0..=255u8 {
        if let Some(to) = fold(b) {
            map[usize::from(b)] = map[usize::from(to)];
        }
    }
    map
}

/// A satisfied entry before its strings are built: entry index, original byte range, count.
type Matched = (u32, usize, usize, usize);

impl Scanner {
    /// Scans one text (allocating fresh buffers; see [`Scanner::scan_with`]).
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scan_with(&mut Scratch::default(), text)
    }

    /// Heap bytes of the automaton (its transition table is most of the scanner's memory).
    pub fn automaton_bytes(&self) -> usize {
        self.walks.bytes()
    }

    /// The normalised patterns, as searched (for comparing with a plain automaton).
    pub fn patterns(&self) -> &[Vec<u8>] {
        &self.patterns
    }

    /// Every match in the normalised text `t`, in the order of their ends (at most
    /// [`MAX_HITS`]), and the exceptions among them. A long text is walked in [`WALKS`] parts
    /// at once: part `i` reports the matches ending in it, and all but the first start early
    /// enough (the longest pattern's length before the part) to find those in full; so the
    /// matches, and their order, are those of one walk from the start.
    fn find(
        &self,
        t: &[u8],
        hits: &mut Vec<Hit>,
        excepts: &mut Vec<Except>,
        later: &mut [Later; WALKS - 1],
    ) {
        match &self.walks {
            Walks::Narrow(table) => self.find_in(table, t, hits, excepts, later),
            Walks::Wide(table) => self.find_in(table, t, hits, excepts, later),
        }
    }

    /// [`Scanner::find`] with the table of cells `T`.
    fn find_in<T: Cell>(
        &self,
        table: &Table<T>,
        t: &[u8],
        hits: &mut Vec<Hit>,
        excepts: &mut Vec<Except>,
        later: &mut [Later; WALKS - 1],
    ) {
        let start = table.start;
        let is_match = |sid| table.is_special(sid) && !self.states.of(sid).is_empty();
        let mut first = Cursor {
            sid: start,
            pos: 0,
            end: t.len(),
        };
        let mut full = false;
        if t.len() >= SPLIT {
            // Part `i` holds the matches ending after `from(i)`, up to `from(i + 1)`.
            let from = |i: usize| t.len() * i / WALKS;
            let mut c: [Cursor; WALKS] = std::array::from_fn(|i| Cursor {
                sid: start,
                pos: if i == 0 {
                    0
                } else {
                    (from(i) + 1).saturating_sub(self.longest)
                },
                end: from(i + 1),
            });
            for l in later.iter_mut() {
                l.hits.clear();
                l.excepts.clear();
            }
            while !full && c.iter().all(|c| c.pos < c.end) {
                walk_all(table, &self.alphabet, t, &mut c);
                if is_match(c[0].sid) {
                    full = !self.record(t, c[0].sid, c[0].pos, hits, |x, _| excepts.push(x));
                }
                for (i, l) in later.iter_mut().enumerate() {
                    let c = c[i + 1];
                    if is_match(c.sid) && c.pos > from(i + 1) {
                        l.record(self, t, c);
                    }
                }
            }
            // Each walk's last bytes (they differ in length by up to the longest pattern).
            for (i, l) in later.iter_mut().enumerate() {
                let mut c = c[i + 1];
                while !full && c.pos < c.end {
                    (c.sid, c.pos) = walk(table, &self.alphabet, c.sid, &t[..c.end], c.pos);
                    if is_match(c.sid) && c.pos > from(i + 1) && !l.record(self, t, c) {
                        break;
                    }
                }
            }
            first = c[0];
        }
        while !full && first.pos < first.end {
            (first.sid, first.pos) =
                walk(table, &self.alphabet, first.sid, &t[..first.end], first.pos);
            if is_match(first.sid) {
                full = !self.record(t, first.sid, first.pos, hits, |x, _| excepts.push(x));
            }
        }
        if full || t.len() < SPLIT {
            return;
        }
        for l in later.iter() {
            let kept = l.hits.len().min(MAX_HITS - hits.len());
            hits.extend_from_slice(&l.hits[..kept]);
            excepts.extend(l.excepts.iter().filter(|x| x.0 < kept).map(|x| x.1));
        }
    }

    /// Records the matches of match state `sid`, entered on reading the byte before `pos`,
    /// each exception through `except` (with the number of matches before it). False once
    /// [`MAX_HITS`] matches are kept.
    fn record(
        &self,
        t: &[u8],
        sid: u32,
        pos: usize,
        hits: &mut Vec<Hit>,
        mut except: impl FnMut(Except, usize),
    ) -> bool {
        for m in self.states.of(sid) {
            if hits.len() == MAX_HITS {
                return false;
            }
            let (mut start, mut end) = (pos - m.len as usize, pos);
            let pattern = m.pattern;
            if m.checked && t[start..end] != self.patterns[pattern as usize] {
                continue;
            }
            if t[start] == b' ' {
                start += 1;
            }
            if end > start && t[end - 1] == b' ' {
                end -= 1;
            }
            if m.except {
                for u in self.uses.of(pattern) {
                    if let Use::Except { risk } = *u {
                        except((risk, start, end), hits.len());
                    }
                }
            }
            hits.push(Hit {
                pattern,
                start,
                end,
            });
        }
        true
    }

    /// Scans one text, reusing `scratch`. Findings come most severe first.
    pub fn scan_with(&self, scratch: &mut Scratch, text: &str) -> Vec<Finding> {
        let Scratch {
            norm,
            hits,
            excepts,
            parts,
            singles,
            later,
        } = scratch;
        norm.normalize(text);
        hits.clear();
        excepts.clear();
        parts.clear();
        let t = &norm.text;
        self.find(t, hits, excepts, later);
        if hits.is_empty() {
            return Vec::new();
        }
        excepts.sort_unstable_by_key(|x| x.1);
        singles.start(self.entries.len());
        // Both found by stepping from the last hit's (see `step_to`).
        let (mut after_token, mut first_except) = (0, 0);
        for (i, h) in hits.iter().enumerate() {
            // Exceptions overlapping the hit start at most `longest` bytes before it.
            let from = step_to(excepts, &mut first_except, |x| {
                x.1 + self.longest_exception < h.start
            });
            let mut token = None;
            for u in self.uses.of(h.pattern) {
                let Use::Part { entry, part } = *u else {
                    continue;
                };
                let rule = &self.entries[entry as usize];
                let risk = rule.risk;
                let excused = excepts[from..]
                    .iter()
                    .take_while(|x| x.1 < h.end)
                    .any(|&(r, _, e)| r.is_none_or(|r| r == risk) && h.start < e);
                if !excused {
                    let token = *token.get_or_insert_with(|| {
                        step_to(&norm.tokens, &mut after_token, |t| {
                            t.norm as usize <= h.start
                        })
                        .saturating_sub(1)
                    });
                    let hit = PartHit::new(entry, token, part, i);
                    if rule.parts.len() == 1 {
                        singles.add(parts, hit);
                    } else {
                        parts.push(hit);
                    }
                }
            }
        }
        // The hit's number last: the order a stable sort on the rest would give, for less.
        parts.sort_unstable();
        // First the cheap part: which entries matched, where (byte ranges), and each
        // category's score; the strings only for the matches that will be shown.
        let mut by_risk: BTreeMap<Risk, (Severity, u32, Vec<Matched>)> = BTreeMap::new();
        for group in parts.chunk_by(|a, b| a.entry() == b.entry()) {
            let entry = &self.entries[group[0].entry() as usize];
            let found = if entry.parts.len() == 1 {
                // Its first hit, and all of them counted (see `Singles`).
                Some((0, 0, singles.count(group[0].entry())))
            } else {
                satisfied(entry, group)
            };
            let Some((first, last, count)) = found else {
                continue;
            };
            let (first, last) = (group[first], group[last]);
            let (a, b) = (&hits[first.hit()], &hits[last.hit()]);
            // The tokens of the evidence's first and last byte: the first is the first hit's
            // own; the last is the last hit's, or a token or two after it (a pattern of
            // several words). Found by stepping, not by a search of all the text's tokens.
            let start = norm.tokens[first.token()].orig as usize;
            let last_byte = b.end.max(a.start + 1) - 1;
            let mut k = last.token();
            while norm
                .tokens
                .get(k + 1)
                .is_some_and(|t| t.norm as usize <= last_byte)
            {
                k += 1;
            }
            let end = norm.tokens[k].orig_end as usize;
            let f = by_risk
                .entry(entry.risk)
                .or_insert((entry.severity, 0, Vec::new()));
            f.0 = f.0.max(entry.severity);
            f.1 = f.1.saturating_add(entry.weight);
            f.2.push((group[0].entry(), start, end.max(start), count));
        }
        let mut findings: Vec<Finding> = by_risk
            .into_iter()
            .map(|(risk, (severity, score, mut matched))| {
                matched.sort_by(|x, y| {
                    let (ex, ey) = (&self.entries[x.0 as usize], &self.entries[y.0 as usize]);
                    (ey.severity, ey.weight, x.1).cmp(&(ex.severity, ex.weight, y.1))
                });
                matched.truncate(MAX_MATCHES);
                let matches = matched
                    .into_iter()
                    .map(|(e, start, end, count)| {
                        let entry = &self.entries[e as usize];
                        Match {
                            phrase: Arc::clone(&entry.phrase),
                            source: Arc::clone(&entry.source),
                            language: Arc::clone(&entry.language),
                            severity: entry.severity,
                            weight: entry.weight,
                            evidence: collapse_space(&text[start..end]),
                            context: context(text, start, end),
                            start,
                            end,
                            count,
                        }
                    })
                    .collect();
                Finding {
                    risk,
                    severity,
                    score,
                    matches,
                }
            })
            .collect();
        findings.sort_by(|a, b| (b.severity, b.score, a.risk).cmp(&(a.severity, a.score, b.risk)));
        findings
    }
}

/// Whether the parts of an entry of several all matched within [`WINDOW`] words of each
/// other: the first and last part hits of the evidence, and how many times it matched.
/// `group` is sorted by token.
fn satisfied(entry: &Entry, group: &[PartHit]) -> Option<(usize, usize, usize)> {
    let need = entry.parts.len();
    // Smallest window of tokens holding every part.
    let mut counts = [0usize; 8];
    let mut have = 0;
    let mut best: Option<(usize, usize)> = None;
    let mut lo = 0;
    for hi in 0..group.len() {
        let p = group[hi].part();
        counts[p] += 1;
        if counts[p] == 1 {
            have += 1;
        }
        while have == need {
            let span = group[hi].token() - group[lo].token();
            if best.is_none_or(|(a, b)| span < group[b].token() - group[a].token()) {
                best = Some((lo, hi));
            }
            let q = group[lo].part();
            counts[q] -= 1;
            if counts[q] == 0 {
                have -= 1;
            }
            lo += 1;
        }
    }
    let (a, b) = best?;
    (group[b].token() - group[a].token() < WINDOW).then_some((a, b, 1))
}

/// `items.partition_point(before)`, found by stepping from `*at` (the last answer) rather
/// than by a binary search: for the hits of one scan, whose starts mostly grow (each is at
/// most the longest pattern's length before the end that follows the last), that is a step
/// or two. `before` must hold for a prefix of `items` and not after it.
fn step_to<T>(items: &[T], at: &mut usize, before: impl Fn(&T) -> bool) -> usize {
    let mut i = (*at).min(items.len());
    while i > 0 && !before(&items[i - 1]) {
        i -= 1;
    }
    while items.get(i).is_some_and(&before) {
        i += 1;
    }
    *at = i;
    i
}

fn context(text: &str, start: usize, end: usize) -> String {
    let mut from = start.saturating_sub(CONTEXT);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let mut to = (end + CONTEXT).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    // Do not cut a word in half at either edge.
    if from > 0 {
        if let Some(sp) = text[from..start].find(char::is_whitespace) {
            from += sp;
        }
    }
    if to < text.len() {
        if let Some(sp) = text[end..to].rfind(char::is_whitespace) {
            to = end + sp;
        }
    }
    // One allocation: the text, both ellipses and the sixteen bytes collapsing may write
    // past its end fit.
    let mut s = Vec::with_capacity(to - from + 2 * '…'.len_utf8() + 16);
    if from > 0 {
        s.extend_from_slice("…".as_bytes());
    }
    collapse_space_into(&mut s, &text[from..to]);
    if to < text.len() {
        s.extend_from_slice("…".as_bytes());
    }
    into_string(s)
}

/// `s` with each run of whitespace and control characters made one space, and none at the
/// ends.
fn collapse_space(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 16);
    collapse_space_into(&mut out, s);
    into_string(out)
}

/// Text that [`collapse_space_into`] wrote: UTF-8, for it only drops ASCII bytes and writes
/// ASCII spaces for them. (Were it not, the text would be kept with replacement characters
/// rather than lost.)
fn into_string(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends [`collapse_space`]`(s)` to `out`, sixteen bytes at a time: each ASCII space or
/// control becomes a space, and a space after a space (or first) is dropped. A piece with
/// nothing to drop, as most of a sentence is, is copied whole; one with runs of spaces is
/// copied between them. Only a piece with a byte that may begin a non-ASCII space or control
/// ([`MAY_BE_SPACE`]) is read a character at a time. A space last is dropped at the end.
/// Writes up to sixteen bytes past what it leaves in `out` (reserve them to spare a copy).
fn collapse_space_into(out: &mut Vec<u8>, s: &str) {
    let start = out.len();
    let b = s.as_bytes();
    let splat = u8x16::splat;
    let at_most = |v: u8x16, c: u8| v.min(splat(c)).simd_eq(v);
    let mut i = 0;
    while i < b.len() {
        let n = (b.len() - i).min(16);
        let block = match b.get(i..i + 16) {
            Some(block) => <[u8; 16]>::try_from(block).unwrap_or_default(),
            None => {
                // The last bytes, padded (the padding is never kept).
                let mut block = [b'a'; 16];
                block[..n].copy_from_slice(&b[i..]);
                block
            }
        };
        let v = u8x16::from(block);
        let ours = (1u32 << n) - 1;
        let maybe = MAY_BE_SPACE
            .iter()
            .fold(splat(0), |m, &c| m | v.simd_eq(splat(c)))
            .to_bitmask()
            & ours;
        if maybe != 0 {
            i = collapse_chars(out, s, i, start);
            continue;
        }
        let space = at_most(v, b' ') | v.simd_eq(splat(0x7f));
        let spaces = space.to_bitmask() & ours;
        let after_space = out.len() == start || out.last() == Some(&b' ');
        let mut drop = spaces & (spaces << 1 | u32::from(after_space));
        // The block with its spaces made ` `, and room to copy sixteen bytes from any byte.
        let mut t = [b' '; 32];
        t[..16].copy_from_slice(&space.bitselect(splat(b' '), v).to_array());
        // The pieces between the runs dropped, sixteen bytes copied for each and the rest
        // cut off.
        let mut from = 0;
        while drop != 0 {
            let to = drop.trailing_zeros() as usize;
            let at = out.len();
            out.extend_from_slice(&t[from..from + 16]);
            out.truncate(at + to - from);
            from = to + (!(drop >> to)).trailing_zeros() as usize;
            drop &= u32::MAX << from;
        }
        let at = out.len();
        out.extend_from_slice(&t[from..from + 16]);
        out.truncate(at + n - from);
        i += n;
    }
    if out.len() > start && out.last() == Some(&b' ') {
        out.pop();
    }
}

/// [`collapse_space_into`] a character at a time, from `s[i]` to the first character
/// boundary at least sixteen bytes on (or the end), which it returns. `s[i]` may be inside a
/// character whose first bytes are written already: its other bytes are written as they are.
fn collapse_chars(out: &mut Vec<u8>, s: &str, mut i: usize, start: usize) -> usize {
    let b = s.as_bytes();
    let end = (i + 16).min(b.len());
    while i < end && b[i] & 0xC0 == 0x80 {
        out.push(b[i]);
        i += 1;
    }
    for c in s[i..].chars() {
        if i >= end {
            break;
        }
        if c.is_whitespace() || c.is_control() {
            if out.len() > start && out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        i += c.len_utf8();
    }
    i
}

/// The first bytes of the characters that may be whitespace or a control: every non-ASCII
/// one (U+0080 to U+009F, U+0085, U+00A0, U+1680, U+2000 to U+205F, U+3000) is in
/// U+0080..U+00BF, U+1000..U+1FFF, U+2000..U+2FFF or U+3000..U+3FFF.
const MAY_BE_SPACE: [u8; 4] = [0xC2, 0xE1, 0xE2, 0xE3];

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(rules: &str) -> Scanner {
        let mut lib = Library::new();
        lib.add("t.txt", rules).unwrap();
        lib.compile().unwrap()
    }

    const RULES: &str = "category: suicide\nlanguage: en\n\
        danger 80 kill myself | kms\n\
        caution 30 suicid*\n\
        danger 90 how many | how much & paracetamol* & die | overdose\n\
        except suicide squad\n\
        category: sexual\n\
        caution 40 *cunt*\n\
        except scunthorpe\n";

    #[test]
    fn findings_table() {
        let s = scanner(RULES);
        // (text, expected [(risk, severity, score)])
        type Want = &'static [(Risk, Severity, u32)];
        let table: &[(&str, Want)] = &[
            (
                "I want to kill myself",
                &[(Risk::Suicide, Severity::Danger, 80)],
            ),
            (
                "i wanna k1ll   mys3lf",
                &[(Risk::Suicide, Severity::Danger, 80)],
            ),
            ("kms", &[(Risk::Suicide, Severity::Danger, 80)]),
            ("skms", &[]),
            (
                "suicidal thoughts",
                &[(Risk::Suicide, Severity::Caution, 30)],
            ),
            ("watching suicide squad tonight", &[]),
            (
                "suicidal after suicide squad",
                &[(Risk::Suicide, Severity::Caution, 30)],
            ),
            (
                "suicide, kill myself",
                &[(Risk::Suicide, Severity::Danger, 110)],
            ),
            (
                "how many paracetamol to die",
                &[(Risk::Suicide, Severity::Danger, 90)],
            ),
            ("how many paracetamol are in a box", &[]),
            ("paracetamol dosage", &[]),
            ("Scunthorpe United", &[]),
            ("you c u n t", &[(Risk::Sexual, Severity::Caution, 40)]),
            ("", &[]),
        ];
        for (text, want) in table {
            let got: Vec<_> = s
                .scan(text)
                .iter()
                .map(|f| (f.risk, f.severity, f.score))
                .collect();
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn co_occurrence_needs_a_window() {
        let s = scanner(RULES);
        let far = format!("how many {} paracetamol die", "word ".repeat(WINDOW));
        assert!(s.scan(&far).is_empty());
        let near = format!("how many {} paracetamol die", "word ".repeat(WINDOW - 6));
        assert_eq!(s.scan(&near).len(), 1);
    }

    #[test]
    fn evidence_and_context_come_from_the_original_text() {
        let s = scanner(RULES);
        let text = format!(
            "{}Honestly I want to K1LL  MYSELF!!! today{}",
            "x ".repeat(100),
            " y".repeat(100)
        );
        let f = &s.scan(&text)[0];
        let m = &f.matches[0];
        assert_eq!(m.evidence, "K1LL MYSELF!!!");
        assert_eq!(&text[m.start..m.start + 4], "K1LL");
        assert!(
            m.context.starts_with('…') && m.context.ends_with('…'),
            "{}",
            m.context
        );
        assert!(
            m.context
                .contains("Honestly I want to K1LL MYSELF!!! today"),
            "{}",
            m.context
        );
        assert_eq!(&*m.source, "t.txt:3");
        assert_eq!(&*m.phrase, "kill myself | kms");
    }

    /// An entry of one part keeps its first hit in the text and a count of all (`Singles`),
    /// scan after scan with one `Scratch`, across libraries and when the scans' numbers
    /// start again.
    #[test]
    fn entries_of_one_part_keep_their_first_hit_and_count_all() {
        let s = scanner(
            "category: suicide\nlanguage: en\n\
             danger 80 kill myself now | myself\n\
             caution 30 kms\n",
        );
        let other = scanner(RULES);
        // (text, [(phrase's first word, evidence, count)]) in severity order.
        type Shown<'a> = &'a [(&'a str, &'a str, usize)];
        let table: &[(&str, Shown)] = &[
            // `myself` ends first, but the longer alternative starts first.
            ("i will kill myself now", &[("kill", "kill myself now", 2)]),
            ("myself, then kill myself now", &[("kill", "myself", 3)]),
            ("kms", &[("kms", "kms", 1)]),
            ("kms, kms and KMS", &[("kms", "kms", 3)]),
            ("nothing here", &[]),
            (
                "kms or kill myself now",
                &[("kill", "kill myself now", 2), ("kms", "kms", 1)],
            ),
        ];
        let check = |scratch: &mut Scratch| {
            for &(text, want) in table {
                let got: Vec<(String, String, usize)> = s
                    .scan_with(scratch, text)
                    .iter()
                    .flat_map(|f| &f.matches)
                    .map(|m| {
                        let first = m.phrase.split(' ').next().unwrap_or("").to_string();
                        (first, m.evidence.clone(), m.count)
                    })
                    .collect();
                let want: Vec<(String, String, usize)> = want
                    .iter()
                    .map(|&(p, e, n)| (p.to_string(), e.to_string(), n))
                    .collect();
                assert_eq!(got, want, "{text:?}");
                // Another library's scan in between leaves nothing behind.
                assert_eq!(other.scan_with(scratch, "kms kms")[0].matches[0].count, 2);
            }
        };
        let mut scratch = Scratch::default();
        check(&mut scratch);
        // The scans' numbers start again: a slot left by the scan that had the number the
        // count starts from again is not read as this scan's.
        let mut scratch = Scratch::default();
        s.scan_with(&mut scratch, "kms kms kms");
        assert_eq!(scratch.singles.scan, 1);
        scratch.singles.scan = u32::MAX;
        assert_eq!(s.scan_with(&mut scratch, "kms")[0].matches[0].count, 1);
        assert_eq!(scratch.singles.scan, 1);
        check(&mut scratch);
    }

    #[test]
    fn repeated_matches_count_once_in_the_score() {
        let s = scanner(RULES);
        let f = &s.scan("kms kms kms kms")[0];
        assert_eq!((f.score, f.matches.len(), f.matches[0].count), (80, 1, 4));
    }

    #[test]
    fn the_alphabet_numbers_used_bytes_and_nothing_else() {
        let map = alphabet(&[b" kil me 14 ".to_vec(), b"\xd8\xa7".to_vec()]);
        // The digits' number and the non-ASCII bytes' two numbers are those of '0', 0x80
        // and 0xc0, in the order of the bytes.
        let want = [
            (b' ', 1),
            (b'0', 2),
            (b'e', 3),
            (b'i', 4),
            (b'k', 5),
            (b'l', 6),
            (b'm', 7),
            (0x80, 8),
            (0xc0, 9),
        ];
        for (b, n) in want {
            assert_eq!(map[usize::from(b)], n, "{b:#x}");
        }
        for b in 0..=255u8 {
            let shared = match b {
                b'0'..=b'9' => 2,
                0x80..=0xbf => 8,
                0xc0.. => 9,
                _ => continue,
            };
            assert_eq!(map[usize::from(b)], shared, "{b:#x}");
        }
        assert_eq!(
            (0..128).filter(|&b| map[b] != 0).count(),
            16,
            "the other ASCII bytes read as 0"
        );
        // Every byte used: each ASCII byte but the digits has a number of its own.
        let all = alphabet(&[(0..=255u8).collect()]);
        let mut numbers: Vec<u8> = all.to_vec();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 128 - 10 + 3, "{numbers:?}");
        assert!(!numbers.contains(&0));
        // The built-in library's letters, space and three groups give a 32-wide row (it was
        // 64 with a number for each byte used, 6.0 MB, and 128 before that, 11.8 MB), of
        // 16-bit cells once repacked (1.5 MB; the automaton's own table is 3.0 MB).
        let builtin = Library::builtin().compile().unwrap();
        assert!(
            builtin.automaton_bytes() < 2_000_000,
            "{}",
            builtin.automaton_bytes()
        );
    }

    /// Patterns with digits or other scripts match where the automaton's numbers match: what
    /// the text holds there must be the pattern's own bytes.
    #[test]
    fn shared_numbers_match_only_the_patterns_own_bytes() {
        let s = scanner(
            "category: hate\nlanguage: en\n\
             danger 80 1488 | rule 34 | \u{645}\u{631}\u{646}\u{627}\n\
             except 1488 street\n\
             except 1488 9 lives\n",
        );
        let risks = |text: &str| -> Vec<(usize, usize)> {
            s.scan(text)
                .iter()
                .flat_map(|f| f.matches.iter().map(|m| (m.start, m.end)))
                .collect()
        };
        for (text, want) in [
            ("1488", vec![(0, 4)]),
            ("2599", vec![]),
            ("1489", vec![]),
            ("14881", vec![]),
            ("see rule 34 now", vec![(4, 11)]),
            ("see rule 43 now", vec![]),
            ("see rule 3 now", vec![]),
            // The same letters in another order, and another word of as many bytes.
            ("\u{645}\u{631}\u{646}\u{627}", vec![(0, 8)]),
            ("\u{627}\u{646}\u{631}\u{645}", vec![]),
            ("\u{434}\u{43e}\u{43c}\u{430}", vec![]),
            ("1488 street", vec![]),
            ("1488 avenue", vec![(0, 4)]),
            ("2222 street 1488", vec![(12, 16)]),
            // An exception with a digit excuses only where its own digit is.
            ("1488 9 lives", vec![]),
            ("1488 1 lives", vec![(0, 4)]),
        ] {
            assert_eq!(risks(text), want, "{text:?}");
        }
    }

    #[test]
    fn collapse_space_table() {
        for (s, want) in [
            ("kill myself", "kill myself"),
            ("a  b", "a b"),
            (" a", "a"),
            ("a ", "a"),
            ("a\tb\n", "a b"),
            ("a\u{a0}b", "a b"),
            ("a\u{7f}b", "a b"),
            ("انتحار  أنتحر\u{3000}قتل", "انتحار أنتحر قتل"),
            ("zły\u{85}dzień —\u{2003}ok", "zły dzień — ok"),
            ("убить\u{1680}\u{9f}себя ", "убить себя"),
            ("", ""),
        ] {
            assert_eq!(collapse_space(s), want, "{s:?}");
        }
    }

    /// The table of match states lists, for every match state a walk enters, what the
    /// automaton's own accessors list, in their order, with each pattern's flags.
    #[test]
    fn match_states_list_what_the_automaton_lists() {
        for s in [Library::builtin().compile().unwrap(), scanner(RULES)] {
            let dfa = &s.dfa;
            let start = dfa.start_state(Anchored::No).unwrap();
            let reachable = Reachable::new(dfa, &s.alphabet).expect("a start state");
            let mut used: Vec<u8> = s.patterns.concat();
            used.sort_unstable();
            used.dedup();
            // Every pattern, then 200,000 bytes drawn from the patterns' bytes.
            let mut texts = s.patterns.clone();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            texts.push(
                (0..200_000)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        used[(x % used.len() as u64) as usize]
                    })
                    .collect(),
            );
            let mut entered = 0;
            for t in &texts {
                let mut sid = start;
                for &b in t {
                    sid = dfa.next_state(Anchored::No, sid, s.alphabet[usize::from(b)]);
                    if !dfa.is_match(sid) {
                        continue;
                    }
                    entered += 1;
                    let want: Vec<(u32, u32, bool, bool)> = (0..dfa.match_len(sid))
                        .map(|k| {
                            let pid = dfa.match_pattern(sid, k);
                            let p = pid.as_usize();
                            (
                                pid.as_u32(),
                                dfa.pattern_len(pid) as u32,
                                s.patterns[p].iter().any(|&b| fold(b).is_some()),
                                s.uses
                                    .of(pid.as_u32())
                                    .iter()
                                    .any(|u| matches!(u, Use::Except { .. })),
                            )
                        })
                        .collect();
                    let got: Vec<(u32, u32, bool, bool)> = s
                        .states
                        .of(reachable.number(sid) as u32)
                        .iter()
                        .map(|m| (m.pattern, m.len, m.checked, m.except))
                        .collect();
                    assert_eq!(got, want, "state {sid:?}");
                }
            }
            assert!(entered > s.patterns.len(), "{entered}");
        }
    }

    /// One walk from the start to the end, as texts shorter than [`SPLIT`] are walked, but
    /// through the automaton itself rather than the walks' table: the reference the table's
    /// walks are held to.
    fn one_walk(s: &Scanner, t: &[u8]) -> (Vec<Hit>, Vec<Except>) {
        let (mut hits, mut excepts) = (Vec::new(), Vec::new());
        let dfa = &s.dfa;
        let reachable = Reachable::new(dfa, &s.alphabet).expect("a start state");
        let mut sid = dfa.start_state(Anchored::No).expect("start");
        for (pos, &b) in t.iter().enumerate() {
            sid = dfa.next_state(Anchored::No, sid, s.alphabet[usize::from(b)]);
            if dfa.is_match(sid) {
                let number = reachable.number(sid) as u32;
                if !s.record(t, number, pos + 1, &mut hits, |x, _| excepts.push(x)) {
                    break;
                }
            }
        }
        (hits, excepts)
    }

    /// The walks' table steps as the automaton does from every state a walk can be in, over
    /// every number of the alphabet, and stops (as special) at exactly the automaton's match
    /// states: 16-bit cells for the built-in library, and 32-bit ones when asked for.
    #[test]
    fn the_table_steps_as_the_automaton_does() {
        for s in [Library::builtin().compile().unwrap(), scanner(RULES)] {
            let dfa = &s.dfa;
            let reachable = Reachable::new(dfa, &s.alphabet).expect("a start state");
            let Walks::Narrow(narrow) = &s.walks else {
                panic!("32-bit cells for {} patterns", s.patterns.len());
            };
            let wide: Table<u32> = Table::new(dfa, &reachable).expect("32-bit cells");
            for &sid in &reachable.all {
                let n = reachable.number(sid) as u32;
                assert_eq!(narrow.is_special(n), dfa.is_match(sid), "{sid:?}");
                assert_eq!(wide.is_special(n), dfa.is_match(sid), "{sid:?}");
                for symbol in 0..=reachable.symbols {
                    let want = reachable.number(dfa.next_state(Anchored::No, sid, symbol)) as u32;
                    assert_eq!(narrow.step(n, symbol), want, "{sid:?} {symbol}");
                    assert_eq!(wide.step(n, symbol), want, "{sid:?} {symbol}");
                }
            }
            assert_eq!(narrow.start, reachable.number(reachable.start) as u32);
            assert!(s.automaton_bytes() == narrow.next.len() * 2);
        }
    }

    /// Walks through 32-bit cells (a library with more states than 16 bits number) find
    /// what walks through 16-bit ones do; a cell takes exactly the numbers that fit it.
    #[test]
    fn wide_cells_find_what_narrow_ones_do() {
        let mut s = Library::builtin().compile().unwrap();
        let mut n = Normalized::default();
        n.normalize(
            &"i want to kill myself, kms. Suicide squad tonight; cutting myself again \
              and the exam is killing me. "
                .repeat(60),
        );
        assert!(n.text.len() >= SPLIT);
        let narrow = walks_in_parts(&s, &n.text);
        assert!(narrow.0.len() > 100, "{}", narrow.0.len());
        let reachable = Reachable::new(&s.dfa, &s.alphabet).expect("a start state");
        s.walks = Walks::Wide(Table::new(&s.dfa, &reachable).expect("32-bit cells"));
        assert_eq!(walks_in_parts(&s, &n.text), narrow);
        assert_eq!(walks_in_parts(&s, &n.text), one_walk(&s, &n.text));
        assert_eq!(<u16 as Cell>::new(65_535), Some(65_535));
        assert_eq!(<u16 as Cell>::new(65_536), None);
        assert_eq!(<u32 as Cell>::new(65_536), Some(65_536));
    }

    fn walks_in_parts(s: &Scanner, t: &[u8]) -> (Vec<Hit>, Vec<Except>) {
        let (mut hits, mut excepts) = (Vec::new(), Vec::new());
        s.find(t, &mut hits, &mut excepts, &mut Default::default());
        (hits, excepts)
    }

    #[test]
    fn walks_in_parts_find_what_one_finds() {
        let s = scanner(RULES);
        let norm = |text: &str| {
            let mut n = Normalized::default();
            n.normalize(text);
            n.text
        };
        // A match across the middle, matches at both ends, an exception around the middle,
        // and more matches than are kept, found by either half or both.
        let filler = "nothing to see here ".repeat(60);
        let texts = [
            format!("kms {filler} i will kill myself {filler} kms"),
            format!("{filler}{filler} suicide squad is on, suicidal"),
            format!("{} kms", "kill myself ".repeat(MAX_HITS)),
            format!("{filler} {}", "kms ".repeat(MAX_HITS)),
            format!("{}{filler}", "kms ".repeat(MAX_HITS / 2 + 10)),
        ];
        for text in &texts {
            let t = norm(text);
            assert!(t.len() >= SPLIT, "{}", t.len());
            let want = one_walk(&s, &t);
            assert!(!want.0.is_empty());
            assert_eq!(walks_in_parts(&s, &t), want, "{text:.60}");
        }
        // Every place for each boundary between parts: a block of phrases repeats along the
        // text, and a growing pad moves the boundaries (at 1/4, 1/2 and 3/4 of the length)
        // across the blocks by at least a quarter of a byte per step.
        let block = format!("{} kill myself suicide squad scunthorpe kms", &filler[..80]);
        for pad in 0..4 * (block.len() + 1) {
            let text = format!("{}{}", "x".repeat(pad), block.repeat(20));
            let t = norm(&text);
            assert!(t.len() >= SPLIT);
            assert_eq!(walks_in_parts(&s, &t), one_walk(&s, &t), "pad {pad}");
        }
        // More matches than are kept, the last kept one in a later part: an exception (with
        // its match) or a plain match at the cut, with the exceptions of kept matches only.
        for kms in 0..4 {
            let text = format!("{}{}", "kms ".repeat(kms), "suicide squad ".repeat(6000));
            let t = norm(&text);
            let want = one_walk(&s, &t);
            assert_eq!(want.0.len(), MAX_HITS);
            assert_eq!(walks_in_parts(&s, &t), want, "kms {kms}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
        /// Two walks at once find the matches one walk finds, in the same order, whatever
        /// words fall across the middle.
        #[test]
        fn walks_in_parts_agree_with_one(
            words in proptest::collection::vec(
                "kill|myself|kms|suicide|squad|suicidal|scunthorpe|cunts|how|many|x|die|[a-z]{1,12}",
                400..900,
            )
        ) {
            let s = scanner(RULES);
            let mut n = Normalized::default();
            n.normalize(&words.join(" "));
            proptest::prop_assume!(n.text.len() >= SPLIT);
            proptest::prop_assert_eq!(walks_in_parts(&s, &n.text), one_walk(&s, &n.text));
        }
    }

    proptest::proptest! {
        /// Stepping from any earlier answer finds what a binary search finds, for any
        /// sorted list and any order of positions (forwards, back, jumps past either end).
        #[test]
        fn step_to_agrees_with_partition_point(
            mut items in proptest::collection::vec(0usize..200, 0..40),
            positions in proptest::collection::vec(0usize..220, 1..60),
        ) {
            items.sort_unstable();
            let mut at = 0;
            for pos in positions {
                let want = items.partition_point(|&x| x <= pos);
                proptest::prop_assert_eq!(step_to(&items, &mut at, |&x| x <= pos), want);
            }
        }
    }

    proptest::proptest! {
        /// A packed part hit gives back what it was made of, and packed ones sort as the
        /// tuples (entry, token, part, hit) do.
        #[test]
        fn part_hits_pack_and_order_as_tuples(
            raw in proptest::collection::vec(
                (0u32..=u32::MAX, 0usize..=u32::MAX as usize, 0u8..8, 0usize..=u32::MAX as usize),
                1..30,
            ),
        ) {
            let mut packed: Vec<PartHit> =
                raw.iter().map(|&(e, t, p, h)| PartHit::new(e, t, p, h)).collect();
            for (x, &(e, t, p, h)) in packed.iter().zip(&raw) {
                proptest::prop_assert_eq!((x.entry(), x.token(), x.part(), x.hit()), (e, t, usize::from(p), h));
            }
            let mut tuples = raw.clone();
            tuples.sort_unstable();
            packed.sort_unstable();
            let unpacked: Vec<_> =
                packed.iter().map(|x| (x.entry(), x.token(), x.part() as u8, x.hit())).collect();
            proptest::prop_assert_eq!(unpacked, tuples);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Copying words whole, and non-ASCII characters that cannot be spaces eight bytes at
        /// a time, collapses as looking at every character does: runs of spaces and words;
        /// ASCII, letters of two and three bytes and every kind of non-ASCII space and
        /// control in any order; any characters at all.
        #[test]
        fn collapse_space_agrees_with_a_character_loop(
            s in proptest::prop_oneof![
                "([ \t\n\r\u{0}\u{7f}\u{a0}\u{85}\u{2003}\u{9f}]{0,2}[a-z~!é字]{0,12}){0,6}",
                "[a-z!~ \t\n\u{7f}\u{1f}éłжبت\u{85}\u{a0}\u{9f}\u{1680}\u{2003}\u{2028}\u{202f}\u{3000}—’€あ]{0,40}",
                "(?s:.){0,40}",
                "([a-z]{1,7}[ .,]{1,2}[\t\n]?(é|—|\u{3000}|字)?){0,20}",
            ]
        ) {
            let mut want = String::new();
            let mut space = false;
            for c in s.chars() {
                if c.is_whitespace() || c.is_control() {
                    space = true;
                } else {
                    if space && !want.is_empty() {
                        want.push(' ');
                    }
                    space = false;
                    want.push(c);
                }
            }
            proptest::prop_assert_eq!(collapse_space(&s), want);
        }
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let s = scanner(RULES);
        for text in [
            "kms ".repeat(100_000),
            "\u{0301}\u{0301}k\u{0301}m\u{200B}s".into(),
            "$$$ @@@ !!! ||| +++".into(),
            "s u i c i d e ".repeat(1000),
            "💀 kill 💀 myself 💀".into(),
            "\0\u{7f}kms\u{feff}".into(),
        ] {
            let _ = s.scan(&text);
        }
        assert_eq!(s.scan("💀 kill 💀 myself 💀").len(), 1);
    }
}
