//! Canonical form of a requested URL (or a list entry), so that trivial spelling tricks cannot
//! bypass a list.
//!
//! The canonical form is one ASCII string, `host[/path][?query]`:
//! - the host is lower-case; Unicode names are IDNA-mapped to punycode; trailing dots, user
//!   info and any port are dropped; percent-encoded hosts are decoded; IPv4 in any WHATWG
//!   spelling (`0x7f.1`, `2130706433`, `0177.0.0.1`) becomes a dotted quad and IPv6 its
//!   compressed bracketed form;
//! - the path is split on `/` and `\`, empty and `.` segments are dropped, `..` pops a segment,
//!   unreserved percent-escapes are decoded and the rest re-encoded in one spelling, and the
//!   whole path is lower-cased (list entries are matched case-insensitively, as squidGuard
//!   does); there is no trailing slash, and the root path is empty;
//! - the query is kept (canonicalised the same way) only for exact URL entries; the fragment
//!   is dropped.
//!
//! Ordinary host names take a fast path that does not allocate; anything unusual (percent
//! signs, non-ASCII, a numeric last label) goes through the `url` crate's WHATWG host parser.
//! The `url_normalize` fuzz target checks that both paths agree.

use std::fmt;

use crate::blocks;

/// Why a URL or host could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Nothing but whitespace was given.
    Empty,
    /// The host part is empty, e.g. `http:///path`.
    MissingHost,
    /// The host is not a valid domain name or IP address.
    InvalidHost(String),
    /// The port is not a number from 0 to 65535.
    InvalidPort(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Empty => f.write_str("empty URL"),
            UrlError::MissingHost => f.write_str("the URL has no host name"),
            UrlError::InvalidHost(h) => {
                write!(
                    f,
                    "`{}` is not a valid host name or IP address",
                    truncate(h)
                )
            }
            UrlError::InvalidPort(p) => write!(f, "`{}` is not a valid port", truncate(p)),
        }
    }
}

impl std::error::Error for UrlError {}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What kind of host a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A domain name: list entries match it and its parent domains.
    Domain,
    /// An IP address: only an entry for the same address matches.
    Ip,
}

/// A URL in canonical form. Reuse one with [`NormUrl::parse_into`] to avoid allocating.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NormUrl {
    buf: String,
    host_end: usize,
    path_end: usize,
    ip: bool,
    port: Option<u16>,
}

impl fmt::Debug for NormUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.buf)
    }
}

impl fmt::Display for NormUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.buf)
    }
}

impl NormUrl {
    /// Normalises a URL, a `host/path` or a bare host.
    pub fn parse(input: &str) -> Result<NormUrl, UrlError> {
        // Sized once: the canonical form is seldom longer than what it is made from, and a
        // buffer grown as it is written was reallocated twice a request in the proxy.
        let mut url = NormUrl {
            buf: String::with_capacity(input.len()),
            ..NormUrl::default()
        };
        url.parse_into(input)?;
        Ok(url)
    }

    /// Like [`NormUrl::parse`], reusing this value's buffer.
    pub fn parse_into(&mut self, input: &str) -> Result<(), UrlError> {
        // Most requests are `http(s)://` and a plain host: those skip the general steps.
        if let Some(rest) = input
            .strip_prefix("http://")
            .or_else(|| input.strip_prefix("https://"))
        {
            if self.set_plain_url(rest) {
                return Ok(());
            }
        }
        self.parse_general(input)
    }

    /// [`NormUrl::parse_into`] without its fast path.
    fn parse_general(&mut self, input: &str) -> Result<(), UrlError> {
        self.buf.clear();
        self.port = None;
        self.ip = false;
        let input = trim_c0(input);
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if memchr::memchr3(b'\t', b'\n', b'\r', input.as_bytes()).is_some() {
            // WHATWG URL parsing removes tabs and newlines anywhere in the input.
            let cleaned: String = input
                .chars()
                .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                .collect();
            return self.parse_clean(&cleaned);
        }
        self.parse_clean(input)
    }

    /// Sets this value to the bare host `host` when it is a plain domain name (ASCII letters,
    /// digits, `-`, `_` and `.`, not a number, no punycode: see `plain_domain`) or an IPv4
    /// address in dotted decimal, and says whether it was. What [`NormUrl::parse_into`] would
    /// give for such a host, without its general steps: list files are mostly such lines.
    /// When false, the value is unspecified; parse the host with [`NormUrl::parse_into`].
    pub fn set_plain_host(&mut self, host: &str) -> bool {
        self.set_plain_host_of(host, host.len())
    }

    /// [`NormUrl::set_plain_host`] of `text[..len]`; what follows in `text` (the rest of a
    /// URL) is not part of the host, but is there to be read with its last bytes.
    fn set_plain_host_of(&mut self, text: &str, len: usize) -> bool {
        let len = text[..len].trim_end_matches('.').len();
        self.buf.clear();
        if len == 0 {
            return false;
        }
        match push_plain_host(text, len, &mut self.buf) {
            Some(kind) => self.ip = kind == HostKind::Ip,
            None => return false,
        }
        self.host_end = self.buf.len();
        self.path_end = self.buf.len();
        self.port = None;
        true
    }

    /// Like [`NormUrl::set_plain_host`] for a `host/path[?query]` (as UT1 `urls` lists hold
    /// them, or a request without its scheme): takes a plain host followed by nothing, or by
    /// a path and query without spaces or control characters (which the general steps would
    /// trim, drop or reject), and handles the path and query as the general steps do. When
    /// false, the value is unspecified.
    pub fn set_plain_url(&mut self, text: &str) -> bool {
        let slash = blocks::find(text.as_bytes(), blocks::byte(b'/')).unwrap_or(text.len());
        // `slash` is at an ASCII byte or the end, so a character boundary.
        let (host, rest) = text.split_at(slash);
        let plain = plain_rest(text.as_bytes(), slash);
        // A plain path and query has no space or control character (see `plain_rest`).
        // No early exit, so the compiler can check many bytes at once.
        if (plain.is_none() && rest.bytes().fold(false, |low, c| low | (c <= b' ')))
            || !self.set_plain_host_of(text, host.len())
        {
            return false;
        }
        match plain {
            Some(shape) => self.push_plain_rest(rest, shape),
            None => self.push_path_and_query(rest),
        }
        true
    }

    /// Appends a path and query that [`plain_rest`] found plain, as
    /// [`NormUrl::push_path_and_query`] would: copied whole (lower-cased if it has an
    /// upper-case letter), without the path's one trailing slash or an empty query.
    fn push_plain_rest(&mut self, rest: &str, shape: PlainRest) {
        let start = self.buf.len();
        let (path, query) = match shape.query {
            Some(q) => (&rest[..q], &rest[q + 1..]),
            None => (rest, ""),
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        if !query.is_empty() && path.len() + 1 + query.len() == rest.len() {
            // `path?query` as written (no trailing slash dropped): one copy, where two and a
            // `?` cost 8 instructions a request more (`bench/decide-instructions.sh`, uniform
            // mix: 2,006 against 2,014).
            self.buf.push_str(rest);
            self.path_end = start + path.len();
        } else {
            self.buf.push_str(path);
            self.path_end = self.buf.len();
            if !query.is_empty() {
                self.buf.push('?');
                self.buf.push_str(query);
            }
        }
        if shape.upper {
            self.buf[start..].make_ascii_lowercase();
        }
    }

    fn parse_clean(&mut self, input: &str) -> Result<(), UrlError> {
        let rest = strip_scheme(input);
        let auth_end = {
            let b = rest.as_bytes();
            let end = memchr::memchr3(b'/', b'?', b'#', b).unwrap_or(b.len());
            memchr::memchr(b'\\', &b[..end]).unwrap_or(end)
        };
        let (authority, rest) = rest.split_at(auth_end);
        let hostport = match memchr::memrchr(b'@', authority.as_bytes()) {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        let (host, port) = split_port(hostport)?;
        self.port = port;
        self.ip = push_host(host, &mut self.buf)? == HostKind::Ip;
        self.host_end = self.buf.len();

        self.push_path_and_query(rest);
        Ok(())
    }

    /// Appends the canonical path and query of `rest`, what follows the authority.
    fn push_path_and_query(&mut self, rest: &str) {
        let (path, query) = match memchr::memchr2(b'?', b'#', rest.as_bytes()) {
            Some(q) if rest.as_bytes()[q] == b'?' => {
                let query = &rest[q + 1..];
                let end = memchr::memchr(b'#', query.as_bytes()).unwrap_or(query.len());
                (&rest[..q], Some(&query[..end]))
            }
            Some(f) => (&rest[..f], None),
            None => (rest, None),
        };
        push_path(path, self.host_end, &mut self.buf);
        self.path_end = self.buf.len();
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            self.buf.push('?');
            push_run(query, &mut self.buf);
        }
    }

    /// The whole canonical form, `host[/path][?query]`.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// The canonical host.
    pub fn host(&self) -> &str {
        &self.buf[..self.host_end]
    }

    /// Whether the host is an IP address rather than a domain name.
    pub fn host_kind(&self) -> HostKind {
        if self.ip {
            HostKind::Ip
        } else {
            HostKind::Domain
        }
    }

    /// The canonical path: empty for the root, otherwise `/segment[/segment...]`.
    pub fn path(&self) -> &str {
        &self.buf[self.host_end..self.path_end]
    }

    /// The canonical query without `?`, if there was a non-empty one.
    pub fn query(&self) -> Option<&str> {
        self.buf.get(self.path_end + 1..)
    }

    /// The explicit port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Host and path without the query.
    pub fn host_and_path(&self) -> &str {
        &self.buf[..self.path_end]
    }

    /// The last path segment (the file name a download would be saved as), if any. Its `/` is
    /// looked for 16 bytes at a time: backwards a byte at a time cost ~90 instructions a
    /// request (callgrind, `normalise+decide`'s uniform mix: 2,027 → 1,995 in all).
    pub fn file_name(&self) -> Option<&str> {
        // The host before the path has no `/`, so a search back from the path's end that
        // runs into it finds nothing there.
        let slash = blocks::rfind(self.buf.as_bytes(), self.path_end, blocks::byte(b'/'))?;
        (slash >= self.host_end).then(|| &self.buf[slash + 1..self.path_end])
    }

    /// Number of labels of a domain host (`www.example.com` has 3), 1 for an IP host; the
    /// number of parent domains [`NormUrl::each_domain`] gives. The dots are counted 16
    /// bytes at a time: a byte iterator's count cost ~100 instructions a lookup (callgrind,
    /// `normalise+decide`'s uniform mix: 2,082 → 2,027 instructions a request).
    #[inline]
    pub fn host_labels(&self) -> usize {
        if self.ip {
            1
        } else {
            1 + blocks::count(self.buf.as_bytes(), self.host_end, blocks::byte(b'.'))
        }
    }

    /// Calls `f` with where each of the host's parent domains starts, most specific first,
    /// and its number of labels, until `f` returns false: for `a.b.example.com` that is
    /// (0, 4) for `a.b.example.com`, (2, 3), (4, 2) and (12, 1) for `com`; an IP host gives
    /// (0, 1) only. Each start follows a dot that is not the host's last byte. A loop from
    /// dot to dot: through iterator adapters the host lookup cost ~50 instructions a request
    /// more (callgrind, `normalise+decide`'s uniform mix: 2,485 → 2,437).
    #[inline]
    pub fn each_domain(&self, mut f: impl FnMut(usize, usize) -> bool) {
        let host = self.host().as_bytes();
        let mut labels = self.host_labels();
        let mut start = 0;
        while f(start, labels) && !self.ip {
            match host[start..].iter().position(|&b| b == b'.') {
                Some(dot) if start + dot + 1 < host.len() => {
                    start += dot + 1;
                    labels -= 1;
                }
                _ => return,
            }
        }
    }

    /// Calls `f` with the ends (exclusive byte offsets) of the first `depth` path prefixes at
    /// a segment boundary, shortest first (for `/a/b` the ends of `/a` and `/a/b`), then of
    /// the first `params` query prefixes at a parameter boundary, `&` or `;` (for `?a=1&b=2`
    /// the ends of `?a=1` and `?a=1&b=2`), until `f` returns true; returns that end. Loops
    /// from separator to separator: with [`NormUrl::each_domain`], 2,485 → 2,398
    /// instructions a request against iterator adapters.
    #[inline]
    pub fn find_prefix_end(
        &self,
        depth: usize,
        params: usize,
        mut f: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let text = self.buf.as_bytes();
        let (host_end, path_end) = (self.host_end, self.path_end);
        // Segment ends: each `/` after the first byte, then the path's end.
        let mut left = depth;
        let mut from = host_end + 1;
        while left > 0 && host_end < path_end {
            let end = text[from.min(path_end)..path_end]
                .iter()
                .position(|&b| b == b'/')
                .map_or(path_end, |slash| from + slash);
            if f(end) {
                return Some(end);
            }
            if end == path_end {
                break;
            }
            left -= 1;
            from = end + 1;
        }
        // Parameter ends: each `&` or `;`, then the query's end.
        let mut left = params;
        let mut from = path_end + 1;
        let query = from < text.len();
        while left > 0 && query {
            let end = text[from..]
                .iter()
                .position(|&b| b == b'&' || b == b';')
                .map_or(text.len(), |at| from + at);
            if f(end) {
                return Some(end);
            }
            if end == text.len() {
                break;
            }
            left -= 1;
            from = end + 1;
        }
        None
    }

    /// The end of the host part (start of the path).
    pub fn host_end(&self) -> usize {
        self.host_end
    }

    /// The end of the path part (start of `?query`, or the end).
    pub fn path_end(&self) -> usize {
        self.path_end
    }
}

/// Drops `scheme://` or a leading `//`.
fn strip_scheme(input: &str) -> &str {
    let b = input.as_bytes();
    // A scheme is a letter followed by letters, digits, `+`, `-` or `.`, then `://`.
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        let len = b
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
            .unwrap_or(b.len());
        if b[len..].starts_with(b"://") {
            return &input[len + 3..];
        }
    }
    // Backslashes count as slashes in special-scheme URLs (WHATWG), and a scheme-relative URL
    // starts with two of them.
    if b.len() >= 2 && matches!(b[0], b'/' | b'\\') && matches!(b[1], b'/' | b'\\') {
        return &input[2..];
    }
    input
}

/// Trims C0 controls and spaces at both ends, as WHATWG URL parsing does.
fn trim_c0(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| c > b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c > b' ').map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are character boundaries.
    &s[start..end]
}

fn split_port(hostport: &str) -> Result<(&str, Option<u16>), UrlError> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => {
                let after = &hostport[end + 1..];
                match after.strip_prefix(':') {
                    Some(p) => (&hostport[..=end], Some(p)),
                    None if after.is_empty() => (hostport, None),
                    None => return Err(UrlError::InvalidHost(hostport.to_owned())),
                }
            }
            None => return Err(UrlError::InvalidHost(hostport.to_owned())),
        }
    } else {
        match memchr::memrchr(b':', hostport.as_bytes()) {
            Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| UrlError::InvalidPort(p.to_owned()))?,
        ),
    };
    Ok((host, port))
}

/// Appends the canonical form of `host` to `out` and says what kind of host it is.
pub fn push_host(host: &str, out: &mut String) -> Result<HostKind, UrlError> {
    let trimmed = host.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(if host.is_empty() {
            UrlError::MissingHost
        } else {
            UrlError::InvalidHost(host.to_owned())
        });
    }
    if let Some(kind) = push_plain_host(trimmed, trimmed.len(), out) {
        return Ok(kind);
    }
    // Trailing dots go first, so that `2.....` and `2` are one host (IPv4 0.0.0.2) and the
    // canonical form is a fixed point.
    slow_host(trimmed, out)
}

/// Appends the host `text[..len]` (trailing dots already trimmed) if it needs no WHATWG
/// parsing, and says what kind it is: a plain domain name (`plain_domain`), lower-cased, or an
/// IPv4 address in dotted decimal, as written. `None` (nothing appended) for anything else.
/// What follows the host in `text` is only read by `plain_domain`, not judged.
fn push_plain_host(text: &str, len: usize, out: &mut String) -> Option<HostKind> {
    let host = &text[..len];
    if let Some(upper) = plain_domain(text.as_bytes(), len) {
        let start = out.len();
        out.push_str(host);
        if upper {
            out[start..].make_ascii_lowercase();
        }
        Some(HostKind::Domain)
    } else if host.parse::<std::net::Ipv4Addr>().is_ok() {
        // The standard parser takes four decimal parts from 0 to 255 without leading zeros
        // (which WHATWG would read as octal), so the address is the one WHATWG reads, and the
        // text is already its canonical spelling.
        out.push_str(host);
        Some(HostKind::Ip)
    } else {
        None
    }
}

/// Whether the fast path gives the same answer as the WHATWG parser: only ASCII letters,
/// digits, `-`, `_` and `.`, and a last label that is not a number (which would make it an
/// IPv4 address in WHATWG's rules). `Some(whether it has an upper-case letter)` when it does
/// (most hosts have none, and need no lower-casing). The host is `text[..len]`.
fn plain_domain(text: &[u8], len: usize) -> Option<bool> {
    let bytes = &text[..len];
    // In blocks of 16, a few vector instructions per block even for a host shorter than one
    // block; only the first `live` bytes of a block are judged.
    let block = |b: &[u8; 16], live: usize| {
        use blocks::{at_most, u8x16};
        let v = u8x16::from(*b);
        let splat = u8x16::from;
        let on = (1u32 << live) - 1;
        let mask = |m: u8x16| m.to_bitmask() & on;
        let dash = v.simd_eq(splat(b'-'));
        let ok = at_most((v | splat(0x20)) - splat(b'a'), 25)
            | at_most(v - splat(b'0'), 9)
            | dash
            | v.simd_eq(splat(b'_'))
            | v.simd_eq(splat(b'.'));
        (
            u8::from(mask(ok) != on),
            u8::from(mask(dash) != 0),
            u8::from(mask(at_most(v - splat(b'A'), 25)) != 0),
        )
    };
    let mut blocks = bytes.chunks_exact(16);
    let (mut odd, mut dashes, mut upper) = (0, 0, 0);
    for b in &mut blocks {
        let (o, d, u) = block(b.try_into().expect("16 bytes"), 16);
        (odd, dashes, upper) = (odd | o, dashes | d, upper | u);
    }
    // The last piece, read as a whole block where there are 16 bytes to read (the host's
    // last 16, judged again, or its first ones and what follows it in `text`); copied into
    // a padded block otherwise. A copy is read back only after it is written: in a request,
    // a wait of some 15 cycles (the store buffer cannot forward pieces of several writes).
    let rest = blocks.remainder().len();
    let (o, d, u) = if rest == 0 {
        (0, 0, 0)
    } else if let Some(last) = bytes.last_chunk::<16>() {
        block(last, 16)
    } else if let Some(first) = text.first_chunk::<16>() {
        block(first, len)
    } else {
        let mut last = [b'a'; 16];
        last[..rest].copy_from_slice(blocks.remainder());
        block(&last, 16)
    };
    (odd, dashes, upper) = (odd | o, dashes | d, upper | u);
    if odd != 0 {
        return None;
    }
    let dash = dashes != 0;
    // "xn--" starts a punycode label, which the IDNA path validates. Most hosts have no `-`.
    let punycode = dash
        && bytes
            .windows(4)
            .any(|w| w[2] == b'-' && w[3] == b'-' && w[..2].eq_ignore_ascii_case(b"xn"));
    // A last label that is a number (decimal, or hex after `0x`) must end in a hex digit or
    // be `0x`; most end in another letter (`.com`, `.org`, `.net`) and need no closer look.
    let ends = bytes.last().copied().unwrap_or(b'.');
    if !ends.is_ascii_hexdigit() && ends | 0x20 != b'x' {
        return (!punycode).then_some(upper != 0);
    }
    let last = &bytes[memchr::memrchr(b'.', bytes).map_or(0, |i| i + 1)..];
    let numeric = !last.is_empty() && last.iter().all(u8::is_ascii_digit);
    let hex = last.len() >= 2
        && last[0] == b'0'
        && (last[1] | 0x20) == b'x'
        && last[2..].iter().all(u8::is_ascii_hexdigit);
    (!punycode && !numeric && !hex).then_some(upper != 0)
}

fn slow_host(host: &str, out: &mut String) -> Result<HostKind, UrlError> {
    let invalid = || UrlError::InvalidHost(host.to_owned());
    match url::Host::parse(host).map_err(|_| invalid())? {
        url::Host::Domain(d) => {
            let trimmed = d.trim_end_matches('.');
            if trimmed.is_empty() {
                return Err(invalid());
            }
            if trimmed.len() != d.len() {
                // Percent-decoding produced trailing dots (`56.%2e`): parse what is left, so
                // the canonical form is what parsing it again would give. No `%` is left, so
                // this recursion ends here.
                return slow_host(trimmed, out).map_err(|_| invalid());
            }
            out.push_str(trimmed);
            Ok(HostKind::Domain)
        }
        url::Host::Ipv4(ip) => {
            use std::fmt::Write;
            let _ = write!(out, "{ip}");
            Ok(HostKind::Ip)
        }
        url::Host::Ipv6(ip) => {
            use std::fmt::Write;
            let _ = write!(out, "[{ip}]");
            Ok(HostKind::Ip)
        }
    }
}

/// What [`plain_rest`] found of a plain path and query.
#[derive(Clone, Copy, Debug)]
struct PlainRest {
    /// Where its first `?` is, if it has one.
    query: Option<usize>,
    /// Whether it has an upper-case letter.
    upper: bool,
}

/// Per byte of a block of 16 (bit `i` for byte `i`): the marks [`plain_rest`] reads.
#[derive(Clone, Copy, Default)]
struct Marks {
    /// Not printable ASCII, or `%`, `\` or `#`: escapes, separators and fragments the
    /// general steps handle.
    odd: u16,
    question: u16,
    slash: u16,
    slash_or_dot: u16,
    upper: u16,
}

#[inline(always)]
fn marks(b: &[u8; 16]) -> Marks {
    use blocks::{at_most, u8x16};
    let v = u8x16::from(*b);
    let splat = u8x16::from;
    let eq = |c: u8| v.simd_eq(splat(c));
    let mask = |m: u8x16| m.to_bitmask() as u16;
    let control_or_space = at_most(v, b' ');
    // At least 0x7f: a maximum compared for equality (see `blocks::at_most`).
    let not_ascii_printable = v.max(splat(0x7f)).simd_eq(v);
    let slash = eq(b'/');
    Marks {
        odd: mask(control_or_space | not_ascii_printable | eq(b'%') | eq(b'\\') | eq(b'#')),
        question: mask(eq(b'?')),
        slash: mask(slash),
        slash_or_dot: mask(slash | eq(b'.')),
        upper: mask(at_most(v - splat(b'A'), 25)),
    }
}

/// Whether the path and query `text[from..]` (empty, or starting with `/`) needs no work but
/// lower-casing and dropping the path's one trailing slash and an empty query: printable
/// ASCII without `%`, `\` or `#`, and no empty (`//`) or dot (`/.`) segment before the first
/// `?`. One pass over blocks of 16 bytes for all that, where the general steps search for `?`
/// and `#`, check the path, then check the query, each a pass of its own: most requests'
/// paths and queries are plain.
fn plain_rest(text: &[u8], from: usize) -> Option<PlainRest> {
    let rest = &text[from..];
    match rest.first() {
        None => {
            return Some(PlainRest {
                query: None,
                upper: false,
            })
        }
        Some(b'/') => {}
        Some(_) => return None,
    }
    let (mut odd, mut upper) = (0u16, 0u16);
    let (mut question, mut pair) = (None, None);
    // Whether the byte before the block is a `/`.
    let mut slash_before = false;
    let mut note = |at: usize, m: Marks, slash_before: bool| {
        odd |= m.odd;
        upper |= m.upper;
        if question.is_none() && m.question != 0 {
            question = Some(at + m.question.trailing_zeros() as usize);
        }
        // Where a `/` is followed by `/` or `.`: within the block, or across its start.
        let pairs = m.slash & (m.slash_or_dot >> 1);
        if pair.is_none() {
            if slash_before && m.slash_or_dot & 1 != 0 {
                pair = Some(at - 1);
            } else if pairs != 0 {
                pair = Some(at + pairs.trailing_zeros() as usize);
            }
        }
    };
    let mut blocks = rest.chunks_exact(16);
    let mut at = 0;
    for b in &mut blocks {
        let m = marks(b.try_into().expect("16 bytes"));
        note(at, m, slash_before);
        slash_before = m.slash >> 15 != 0;
        at += 16;
    }
    let left = blocks.remainder().len();
    if left > 0 {
        // The last bytes, read as the last 16 of `text` (what comes before them was judged
        // already, or is the host) and shifted so that bit 0 is the first byte not yet
        // judged; copied into a padded block when `text` is shorter. Not `blocks::each`: five
        // marks come from each block, and a path shorter than a block (most are) is read
        // with the host before it, where `each` would copy it into a padded block.
        let m = match text.last_chunk::<16>() {
            Some(last) => marks(last),
            None => {
                let mut last = [b'a'; 16];
                last[16 - left..].copy_from_slice(blocks.remainder());
                marks(&last)
            }
        };
        let k = 16 - left;
        let m = Marks {
            odd: m.odd >> k,
            question: m.question >> k,
            slash: m.slash >> k,
            slash_or_dot: m.slash_or_dot >> k,
            upper: m.upper >> k,
        };
        note(at, m, slash_before);
    }
    if odd != 0 {
        return None;
    }
    // A pair in the query is plain there.
    if pair.is_some_and(|p| question.is_none_or(|q| p < q)) {
        return None;
    }
    Some(PlainRest {
        query: question,
        upper: upper != 0,
    })
}

/// Appends the canonical path: segments split on `/` and `\`, dot-segments resolved.
fn push_path(path: &str, floor: usize, out: &mut String) {
    match plain_path(path) {
        // Already canonical but for case and one trailing slash.
        Some(upper) => push_lowercase(path.strip_suffix('/').unwrap_or(path), upper, out),
        None => push_path_by_segments(path, floor, out),
    }
}

/// Appends ASCII `text`, lower-cased if it has an upper-case letter (`upper`). Most paths and
/// queries have none, and then the bytes just copied are not read back (a read of bytes just
/// written by the copy, in pieces of another size, waits for the writes to finish).
#[inline]
fn push_lowercase(text: &str, upper: bool, out: &mut String) {
    let start = out.len();
    out.push_str(text);
    if upper {
        out[start..].make_ascii_lowercase();
    }
}

/// The general case of [`push_path`]: segment by segment, decoding escapes and resolving dots.
fn push_path_by_segments(path: &str, floor: usize, out: &mut String) {
    let ends =
        memchr::memchr2_iter(b'/', b'\\', path.as_bytes()).chain(std::iter::once(path.len()));
    let mut start = 0;
    for end in ends {
        // `start` and `end` sit next to ASCII separators, so they are character boundaries.
        let seg = &path[start..end];
        start = end + 1;
        if seg.is_empty() {
            continue;
        }
        let mark = out.len();
        out.push('/');
        push_run(seg, out);
        match &out[mark + 1..] {
            "." => out.truncate(mark),
            ".." => {
                out.truncate(mark);
                let parent = out[floor..].rfind('/').map_or(floor, |i| floor + i);
                out.truncate(parent);
            }
            _ => {}
        }
    }
}

/// Whether a path needs no work but lower-casing: it starts with `/`, holds only printable
/// ASCII without `%` or `\`, and has no empty (`//`) or dot (`/.`) segment. `Some(whether it
/// has an upper-case letter)` when it does.
fn plain_path(path: &str) -> Option<bool> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return b.is_empty().then_some(false);
    }
    // No early exit, so the compiler can check many bytes at once.
    let (printable, upper) = b.iter().fold((true, false), |(ok, upper), &c| {
        (
            ok & (c > b' ') & (c < 0x7f) & (c != b'%') & (c != b'\\'),
            upper | c.is_ascii_uppercase(),
        )
    });
    // Pairs of neighbours as two slices zipped rather than `windows(2)`, which the compiler
    // left a byte at a time.
    let segments = b.iter().zip(&b[1..]).fold(true, |ok, (&x, &y)| {
        ok & !((x == b'/') & ((y == b'/') | (y == b'.')))
    });
    (printable && segments).then_some(upper)
}

/// Appends a path segment or a query in canonical spelling. Runs of plain printable ASCII,
/// the common case, are copied and lower-cased in one go.
fn push_run(run: &str, out: &mut String) {
    // No early exit, so the compiler can check many bytes at once.
    let (plain, upper) = run.bytes().fold((true, false), |(ok, upper), b| {
        (
            ok & (b > b' ') & (b < 0x7f) & (b != b'%'),
            upper | b.is_ascii_uppercase(),
        )
    });
    if plain {
        push_lowercase(run, upper, out);
        return;
    }
    let b = run.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten();
        match escaped {
            Some(v) => {
                push_canonical(out, v, true);
                i += 3;
            }
            None => {
                push_canonical(out, b[i], false);
                i += 1;
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Appends one byte in its canonical spelling: printable ASCII literally and lower-cased,
/// everything else (and a decoded `/ ? # %`, which would change the URL's structure) as a
/// lower-case percent-escape.
fn push_canonical(out: &mut String, b: u8, decoded: bool) {
    let escape =
        b <= b' ' || b >= 0x7f || b == b'%' || (decoded && matches!(b, b'/' | b'?' | b'#' | b'\\'));
    if escape {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push('%');
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    } else {
        out.push(b.to_ascii_lowercase() as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: input, expected canonical form (or error).
    fn check(input: &str, want: &str) {
        let got = match NormUrl::parse(input) {
            Ok(u) => u.as_str().to_owned(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, want, "input: {input:?}");
    }

    #[test]
    fn hosts() {
        check("example.com", "example.com");
        check("EXAMPLE.Com", "example.com");
        check("example.com.", "example.com");
        check("example.com...", "example.com");
        check("http://example.com:80/", "example.com");
        check("https://example.com:443", "example.com");
        check("example.com:8080", "example.com");
        check("http://user:pw@example.com/", "example.com");
        check("http://evil.com@example.com/", "example.com");
        check("//example.com/a", "example.com/a");
        check("  http://example.com/ \n", "example.com");
        check("ht\ttp://exa\nmple.com/", "example.com");
        check("___id___.c.mystat-in.net", "___id___.c.mystat-in.net");
    }

    #[test]
    fn idn() {
        check("bücher.example", "xn--bcher-kva.example");
        check("BÜCHER.example", "xn--bcher-kva.example");
        check("xn--bcher-kva.example", "xn--bcher-kva.example");
        check("XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example");
        // Full-width letters and the ideographic full stop map to ASCII under UTS 46.
        check("ｃａｓｉｎｏ。com", "casino.com");
    }

    #[test]
    fn ip_literals() {
        check("http://127.0.0.1/", "127.0.0.1");
        check("http://0x7f.1/", "127.0.0.1");
        check("http://2130706433/", "127.0.0.1");
        check("http://0177.0.0.1/", "127.0.0.1");
        check("http://[::FFFF:7f00:1]:80/", "[::ffff:127.0.0.1]");
        check("http://[0:0::1]/x", "[::1]/x");
        check(
            "http://1.2.3.4.5/",
            "error: `1.2.3.4.5` is not a valid host name or IP address",
        );
        // Regression (fuzz): trailing dots made `2.....` a domain `2`, which re-parses as IPv4.
        check("2.....", "0.0.0.2");
        // Regression (fuzz): dots decoded from `%2e` were trimmed after the IPv4 check.
        check("2.%2e", "0.0.0.2");
        check(
            "a.56.%2e",
            "error: `a.56.%2e` is not a valid host name or IP address",
        );
        check("casino.com%2e", "casino.com");
        check("127.0.0.1.", "127.0.0.1");
    }

    #[test]
    fn percent_encoded_hosts() {
        check("http://%63asino.com/", "casino.com");
        check("http://ca%73ino.COM/", "casino.com");
    }

    #[test]
    fn paths() {
        check("http://example.com/A/B/", "example.com/a/b");
        check("http://example.com//a///b", "example.com/a/b");
        check("http://example.com/a/./b/../c", "example.com/a/c");
        check("http://example.com/../../a", "example.com/a");
        check("http://example.com/%2e%2E/a", "example.com/a");
        check("http://example.com/%63asino/", "example.com/casino");
        check("http://example.com\\casino\\x", "example.com/casino/x");
        check("http://example.com/a%2fb", "example.com/a%2fb");
        check("http://example.com/caf%C3%A9", "example.com/caf%c3%a9");
        check("http://example.com/café", "example.com/caf%c3%a9");
        check("http://example.com/a b", "example.com/a%20b");
        check("http://example.com/a%20b", "example.com/a%20b");
        check("http://example.com/100%", "example.com/100%25");
        check("http://example.com/a#frag", "example.com/a");
        check("http://example.com/a?Q=1#frag", "example.com/a?q=1");
        // Upper case only past the first 16 bytes of a path or query: still lower-cased.
        check(
            "http://example.com/abcdefghijklmnopqrstuvwxyZ?abcdefghijklmnopqrstuvwxyZ=1",
            "example.com/abcdefghijklmnopqrstuvwxyz?abcdefghijklmnopqrstuvwxyz=1",
        );
        check("http://example.com/?", "example.com");
    }

    #[test]
    fn errors() {
        check("", "error: empty URL");
        check("   ", "error: empty URL");
        check("http:///path", "error: the URL has no host name");
        check(
            "http://example.com:99999/",
            "error: `99999` is not a valid port",
        );
        check(
            "http://exa mple.com/",
            "error: `exa mple.com` is not a valid host name or IP address",
        );
        check(
            "http://[::1/",
            "error: `[::1` is not a valid host name or IP address",
        );
        check(
            "http://.../",
            "error: `...` is not a valid host name or IP address",
        );
    }

    #[test]
    fn parts() {
        let u = NormUrl::parse("http://www.Example.com:8080/dl/Setup.EXE?x=1").unwrap();
        assert_eq!(u.host(), "www.example.com");
        assert_eq!(u.path(), "/dl/setup.exe");
        assert_eq!(u.query(), Some("x=1"));
        assert_eq!(u.port(), Some(8080));
        assert_eq!(u.file_name(), Some("setup.exe"));
        let mut starts = Vec::new();
        u.each_domain(|i, labels| {
            starts.push((&u.host()[i..], labels));
            true
        });
        assert_eq!(
            starts,
            [("www.example.com", 3), ("example.com", 2), ("com", 1)]
        );
        assert_eq!(u.host_labels(), 3);
        let odd = NormUrl::parse("a..b").unwrap();
        let mut n = 0;
        odd.each_domain(|_, _| {
            n += 1;
            true
        });
        assert_eq!(odd.host_labels(), n);
        let mut ends = Vec::new();
        u.find_prefix_end(usize::MAX, usize::MAX, |i| {
            ends.push(&u.as_str()[u.host_end()..i]);
            false
        });
        assert_eq!(ends, ["/dl", "/dl/setup.exe", "/dl/setup.exe?x=1"]);

        let ip = NormUrl::parse("10.1.2.3/x").unwrap();
        assert_eq!(ip.host_kind(), HostKind::Ip);
        let mut starts = Vec::new();
        ip.each_domain(|i, labels| {
            starts.push((i, labels));
            true
        });
        assert_eq!(starts, [(0, 1)]);
        assert_eq!(NormUrl::parse("example.com").unwrap().file_name(), None);
    }

    /// The file name, whatever the lengths of host and path around `file_name`'s blocks.
    #[test]
    fn file_names() {
        for (url, want) in [
            ("a.io", None),
            ("a.io/", None),
            ("a.io/x", Some("x")),
            ("a.io/dir/", Some("dir")),
            ("a.io/d/Setup.EXE", Some("setup.exe")),
            ("a-much-longer-host.example.com/f.zip", Some("f.zip")),
            (
                "a.io/a-path-of-more-than-sixteen-bytes/and-a-name-as-long.msi",
                Some("and-a-name-as-long.msi"),
            ),
            (
                "a.io/the-name-alone-is-longer-than-sixteen.bat",
                Some("the-name-alone-is-longer-than-sixteen.bat"),
            ),
            ("a.io/sixteen-bytes.", Some("sixteen-bytes.")),
            ("10.0.0.1/run.sh?x=/y", Some("run.sh")),
        ] {
            let u = NormUrl::parse(url).unwrap();
            assert_eq!(u.file_name(), want, "{url}");
        }
    }

    /// `plain_domain` judges the host's bytes only, however much of what follows it is read
    /// with them: hosts shorter than a block with a path after them, hosts of a block or more
    /// (their last block read again), and hosts with nothing after them.
    #[test]
    fn plain_domain_judges_only_the_host() {
        let rows: &[(&str, usize, Option<bool>)] = &[
            ("example.com/%7E?Q=1 with spaces", 11, Some(false)),
            ("EXAMPLE.com/x", 11, Some(true)),
            ("example.com/X", 11, Some(false)),
            ("example.com", 11, Some(false)),
            ("ex ample.com/abcdefghijkl", 12, None),
            ("example.co%/abcdefghijkl", 11, None),
            ("example.xn--p1ai/abcdefghijkl", 16, None),
            ("a-b.example/--xn", 11, Some(false)),
            ("0x1f/abcdefghijklmnop", 4, None),
            ("www.example-site.com/ÜÜÜ", 20, Some(false)),
            ("www.example-site.coM/abc", 20, Some(true)),
            ("www.example-sitE.com", 20, Some(true)),
            ("www.example-si%e.com/abc", 20, None),
            ("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.example/%", 39, Some(false)),
            ("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.exampl%/a", 39, None),
        ];
        for &(text, len, want) in rows {
            assert_eq!(plain_domain(text.as_bytes(), len), want, "{text:?} {len}");
        }
    }

    #[test]
    fn reuse_clears_previous_state() {
        let mut u = NormUrl::parse("http://a.com:81/x?y").unwrap();
        u.parse_into("b.org").unwrap();
        assert_eq!(u.as_str(), "b.org");
        assert_eq!(u.port(), None);
        assert_eq!(u.query(), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The lookups' loops written the plain way (`NormUrl::each_domain`'s starts): what
    /// the property test below holds them to.
    fn domain_starts(url: &NormUrl) -> impl Iterator<Item = usize> + '_ {
        let host = url.host().as_bytes();
        let ip = url.host_kind() == HostKind::Ip;
        std::iter::once(0).chain(
            host.iter()
                .enumerate()
                .filter(move |&(i, &b)| !ip && b == b'.' && i + 1 < host.len())
                .map(|(i, _)| i + 1),
        )
    }

    /// `NormUrl::find_prefix_end`'s path ends, the plain way.
    fn path_ends(url: &NormUrl) -> impl Iterator<Item = usize> + '_ {
        let path = url.path().as_bytes();
        let start = url.host_end();
        path.iter()
            .enumerate()
            .skip(1)
            .filter(|&(_, &b)| b == b'/')
            .map(move |(i, _)| start + i)
            .chain((!path.is_empty()).then_some(url.path_end()))
    }

    /// `NormUrl::find_prefix_end`'s query ends, the plain way.
    fn query_ends(url: &NormUrl) -> impl Iterator<Item = usize> + '_ {
        let start = url.path_end() + 1;
        let query = url.as_str().as_bytes().get(start..).unwrap_or_default();
        query
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'&' || b == b';')
            .map(move |(i, _)| start + i)
            .chain((!query.is_empty()).then_some(url.as_str().len()))
    }

    /// `input` parsed with the request fast path (where it applies) and with the general steps
    /// alone gives the same outcome and the same value (host, path and query ends included).
    fn fast_path_agrees(input: &str) -> Result<(), TestCaseError> {
        let mut fast = NormUrl::default();
        let mut general = NormUrl::default();
        let got = fast.parse_into(input);
        let want = general.parse_general(input);
        prop_assert_eq!(&got, &want, "{:?}", input);
        if got.is_ok() {
            prop_assert_eq!(&fast, &general, "{:?}", input);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The canonical form is a fixed point: normalising it again changes nothing.
        #[test]
        fn canonical_form_is_a_fixed_point(input in "(https?://)?([a-zA-Z0-9._%-]|\\PC){1,20}(:[0-9]{1,5})?(/([a-zA-Z0-9._%?#&;=\\\\-]|\\PC){0,12}){0,4}") {
            if let Ok(url) = NormUrl::parse(&input) {
                let again = NormUrl::parse(url.as_str());
                prop_assert_eq!(again.as_ref().map(NormUrl::as_str), Ok(url.as_str()), "{:?}", input);
                prop_assert!(url.as_str().is_ascii());
            }
        }

        /// A path the fast path takes comes out as segment-by-segment processing gives it.
        #[test]
        fn plain_path_fast_path_agrees(path in "(/[a-zA-Z0-9_~;=&,+!$'()*:@-][a-zA-Z0-9._~;=&,+!$'()*:@-]{0,6}){0,5}/?") {
            prop_assume!(plain_path(&path).is_some());
            let (mut fast, mut slow) = (String::new(), String::new());
            push_path(&path, 0, &mut fast);
            push_path_by_segments(&path, 0, &mut slow);
            prop_assert_eq!(fast, slow, "{:?}", path);
        }

        /// The lookups' loops visit what the reference iterators give, in order: every parent domain
        /// with its number of labels, and the first `depth` path ends then the first `params`
        /// query ends, stopping where asked.
        #[test]
        fn lookup_loops_agree_with_the_iterators(
            input in "(https?://)?(([a-c0-9]{0,3}\\.){0,4}[a-c]{1,3}\\.?|1[0-9]\\.[0-9]\\.[0-9]\\.[0-9])(/[a-c./;&=?]{0,5}){0,4}(\\?[a-c&;=]{0,8})?",
            depth in 0usize..6,
            params in 0usize..6,
            stop in 0usize..12,
        ) {
            let Ok(url) = NormUrl::parse(&input) else { return Ok(()) };
            let total = url.host_labels();
            let want: Vec<(usize, usize)> =
                domain_starts(&url).enumerate().map(|(i, s)| (s, total - i)).collect();
            let mut got = Vec::new();
            url.each_domain(|s, labels| {
                got.push((s, labels));
                true
            });
            prop_assert_eq!(&got, &want, "{:?}", url);
            // Stopping after `stop` of them stops there.
            let mut seen = 0;
            url.each_domain(|_, _| {
                seen += 1;
                seen <= stop
            });
            prop_assert_eq!(seen, want.len().min(stop + 1), "{:?}", url);

            let want: Vec<usize> = path_ends(&url)
                .take(depth)
                .chain(query_ends(&url).take(params))
                .collect();
            let mut got = Vec::new();
            let found = url.find_prefix_end(depth, params, |end| {
                got.push(end);
                got.len() > stop
            });
            prop_assert_eq!(&got[..], &want[..want.len().min(stop + 1)], "{:?}", url);
            prop_assert_eq!(found, want.get(stop).copied(), "{:?}", url);
        }

        /// Wherever a request takes the fast path, the general steps give the same.
        #[test]
        fn request_fast_path_agrees(input in "https?://([a-zA-Z0-9._-]|xn--|0x|[:@%\\\\ ]){1,12}(/([a-zA-Z0-9._~!$&'()*+,;=:@?#%\\\\\t\x01 -]|\u{fc}){0,6}){0,3}") {
            fast_path_agrees(&input)?;
        }

        /// Paths and queries long enough to fill several of `plain_rest`'s blocks, with
        /// what makes one not plain (`//` and `/.` before or after the `?`, escapes, `\\`,
        /// `#`, spaces, non-ASCII) anywhere, a block edge included: the fast path gives what
        /// the general steps give.
        #[test]
        fn plain_rest_agrees_with_the_general_steps(
            host in "[a-zA-Z0-9]{1,20}\\.[a-z]{2,3}",
            rest in "(/[a-zA-Z0-9._~=&-]{0,15}){0,5}/?(\\?[a-zA-Z0-9._~=&/?-]{0,30})?",
            odd in "(//|/\\.|/\\.\\.|%2[fF]|%41|\\\\|#|\\?|/| |\t|\u{e9}|[A-Z])?",
            at in 0usize..80,
        ) {
            let mut rest = rest;
            let at = at.min(rest.len());
            rest.insert_str(at, &odd);
            fast_path_agrees(&format!("http://{host}{rest}"))?;
        }

        /// The allocation-free host path (plain names, dotted IPv4) gives what the WHATWG
        /// parser gives.
        #[test]
        fn fast_host_path_agrees_with_whatwg(host in "([a-zA-Z0-9_-]|[xX][nN]--|0[xX]){0,8}(\\.([a-zA-Z0-9_-]|[xX][nN]--|0[xX]){0,8}){0,4}\\.{0,2}|([0-9]{1,4}\\.){0,4}[0-9]{1,4}\\.{0,2}") {
            // Hosts outside the fast path (punycode, numbers not in dotted decimal) are
            // generated often on purpose, to test the boundary; they are not compared.
            let trimmed = host.trim_end_matches('.');
            if !trimmed.is_empty() && push_plain_host(trimmed, trimmed.len(), &mut String::new()).is_some() {
                let mut fast = String::new();
                let mut slow = String::new();
                let f = push_host(&host, &mut fast);
                let s = slow_host(&host, &mut slow);
                prop_assert_eq!(f, s, "{:?}", host);
                prop_assert_eq!(fast, slow, "{:?}", host);
            }
        }
    }
}
