//! Parsers for the list formats colleges load: UT1/squidGuard `domains` and `urls` files,
//! hosts files, plain domain lists and the common adblock subset.
//!
//! Parsers take the bytes of one file (whole, [`parse`], or a piece of whole lines at a time,
//! [`Parser`]) and hand each accepted entry, already normalised, to a callback. Malformed
//! lines are counted and the first few kept with their line numbers; a bad line never stops
//! the rest of the file from loading.

use std::fmt;

use crate::normalize::{NormUrl, UrlError};

/// A list file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// One domain per line (UT1 `domains`, Block List Project `domains-format`).
    Domains,
    /// One `host/path` per line (UT1 `urls`); bare domains are accepted too.
    Urls,
    /// Hosts file: `0.0.0.0 name [name...]`.
    Hosts,
    /// Adblock subset: `||example.com^`, `@@||example.com^` exceptions, `!` comments.
    Adblock,
}

impl Format {
    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Domains => "domains",
            Format::Urls => "urls",
            Format::Hosts => "hosts",
            Format::Adblock => "adblock",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an entry lists something or makes an exception to listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// The host (and its subdomains), or the URL prefix, is in the list's categories.
    Block,
    /// An adblock `@@` exception: the host or URL prefix is taken out of the list's categories.
    Exception,
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The host or URL does not normalise.
    Url(UrlError),
    /// A domains list holds something with a path; it belongs in a `urls` list.
    PathInDomainList,
    /// A hosts line does not start with an IP address followed by names.
    NotHostsLine,
    /// A line holds spaces where one entry was expected.
    UnexpectedSpace,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NotUtf8 => f.write_str("not valid UTF-8"),
            RejectReason::Url(e) => e.fmt(f),
            RejectReason::PathInDomainList => {
                f.write_str("a path in a domains list (put URL entries in a `urls` list)")
            }
            RejectReason::NotHostsLine => {
                f.write_str("expected `<address> <name>...` (hosts format)")
            }
            RejectReason::UnexpectedSpace => f.write_str("unexpected space inside an entry"),
        }
    }
}

/// One rejected line, kept as an example for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: u64,
    /// The line (shortened to 120 characters).
    pub text: String,
    /// What is wrong with it.
    pub reason: RejectReason,
}

/// How many rejected lines a report keeps as examples.
pub const REJECT_SAMPLES: usize = 5;

/// What parsing one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Lines read, including comments and blank lines.
    pub lines: u64,
    /// Entries handed to the callback (a hosts line can hold several).
    pub accepted: u64,
    /// Lines deliberately ignored: hosts-file boilerplate (`localhost`), adblock rules outside
    /// the supported subset (cosmetic, regex, wildcard, modifiers).
    pub skipped: u64,
    /// Malformed lines.
    pub rejected: u64,
    /// The first [`REJECT_SAMPLES`] malformed lines.
    pub samples: Vec<Rejected>,
}

impl ParseReport {
    fn reject(&mut self, line: u64, text: &[u8], reason: RejectReason) {
        self.rejected += 1;
        if self.samples.len() < REJECT_SAMPLES {
            let text = String::from_utf8_lossy(text);
            let text: String = text.chars().take(120).collect();
            self.samples.push(Rejected { line, text, reason });
        }
    }

    /// Adds another report's counts (for totals over several files).
    pub fn absorb(&mut self, other: &ParseReport) {
        self.lines += other.lines;
        self.accepted += other.accepted;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
    }
}

/// Guesses the format of a list from its first meaningful lines.
pub fn detect(text: &[u8]) -> Format {
    let text = strip_bom(text);
    let mut urls = false;
    for line in text.split(|&b| b == b'\n').take(2000) {
        let line = trim(line);
        if line.starts_with(b"[Adblock") || line.starts_with(b"!") {
            return Format::Adblock;
        }
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        if line.starts_with(b"||") || line.starts_with(b"@@") {
            return Format::Adblock;
        }
        let mut words = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        if let (Some(first), Some(_)) = (words.next(), words.next()) {
            if is_ip(first) {
                return Format::Hosts;
            }
        }
        urls |= line.contains(&b'/');
    }
    if urls {
        Format::Urls
    } else {
        Format::Domains
    }
}

/// Drops a UTF-8 byte order mark, which Windows editors put at the start of text files.
fn strip_bom(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
}

fn is_ip(word: &[u8]) -> bool {
    std::str::from_utf8(word).is_ok_and(|w| w.parse::<std::net::IpAddr>().is_ok())
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// Strips a `#` comment that starts the line or follows whitespace.
fn strip_comment(line: &[u8]) -> &[u8] {
    if line.first() == Some(&b'#') {
        return &[];
    }
    let cut = line
        .windows(2)
        .position(|w| w[0].is_ascii_whitespace() && w[1] == b'#')
        .unwrap_or(line.len());
    trim(&line[..cut])
}

/// Names that hosts files list for the machine itself, not to block.
const HOSTS_BOILERPLATE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Parses one list file, calling `emit` for every accepted entry.
pub fn parse(format: Format, text: &[u8], emit: impl FnMut(EntryKind, &NormUrl)) -> ParseReport {
    Parser::new(format).finish(text, emit)
}

/// Parses a list file a piece at a time, so that a large file need not be held whole: feed it
/// the file's text up to a newline at a time, then finish with what follows the last newline.
/// The outcome is the same as [`parse`] on the whole text, line numbers included.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    report: ParseReport,
    url: NormUrl,
    /// Lines read so far.
    line: u64,
}

impl Parser {
    /// A parser at the start of a file in `format`.
    pub fn new(format: Format) -> Parser {
        Parser {
            format,
            report: ParseReport::default(),
            url: NormUrl::default(),
            line: 0,
        }
    }

    /// Parses `text`, the next whole lines of the file: it must end with a newline (or be
    /// empty); the text after the file's last newline goes to [`Parser::finish`].
    pub fn feed(&mut self, text: &[u8], emit: impl FnMut(EntryKind, &NormUrl)) {
        debug_assert!(text.last().is_none_or(|&b| b == b'\n'));
        self.lines(text, false, emit);
    }

    /// Parses the rest of the file (its last line, without a newline; often empty).
    pub fn finish(mut self, rest: &[u8], emit: impl FnMut(EntryKind, &NormUrl)) -> ParseReport {
        self.lines(rest, true, emit);
        self.report
    }

    /// Parses each line of `text`; the piece after its last newline is a line only at the
    /// end of the file (`last`).
    fn lines(&mut self, text: &[u8], last: bool, mut emit: impl FnMut(EntryKind, &NormUrl)) {
        let text = match (last, text) {
            (true, _) => text,
            (false, []) => return,
            // Whole lines: their last newline ends the last of them, not one more.
            (false, _) => text.strip_suffix(b"\n").unwrap_or(text),
        };
        let text = if self.line == 0 {
            strip_bom(text)
        } else {
            text
        };
        let (format, report, url) = (self.format, &mut self.report, &mut self.url);
        // Text that is UTF-8 throughout (the usual case) is checked once, not line by line.
        let lines: Box<dyn Iterator<Item = Result<&str, &[u8]>>> = match std::str::from_utf8(text) {
            Ok(text) => {
                let mut start = 0;
                let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]);
                Box::new(ends.map(move |end| {
                    // `start` and `end` sit next to newlines or the ends: character boundaries.
                    let line = &text[start..end];
                    start = end + 1;
                    Ok(line)
                }))
            }
            Err(_) => Box::new(
                text.split(|&b| b == b'\n')
                    .map(|line| std::str::from_utf8(line).map_err(|_| line)),
            ),
        };
        for raw in lines {
            self.line += 1;
            let n = self.line;
            report.lines = n;
            let line_str = match raw {
                Ok(line) => line.trim_ascii(),
                Err(line) => {
                    report.reject(n, trim(line), RejectReason::NotUtf8);
                    continue;
                }
            };
            if line_str.is_empty() {
                continue;
            }
            let line = line_str.as_bytes();
            // Most lines of a domains or urls list are a plain domain name (`casino.example`)
            // or an IPv4 address: those skip comment, space and URL handling, which cannot
            // change them.
            let plain = match format {
                Format::Domains => {
                    url.set_plain_host(line_str.strip_prefix('.').unwrap_or(line_str))
                }
                Format::Urls => url.set_plain_url(line_str.strip_prefix('.').unwrap_or(line_str)),
                _ => false,
            };
            if plain {
                report.accepted += 1;
                emit(EntryKind::Block, url);
                continue;
            }
            let outcome = match format {
                Format::Domains => domain_line(line_str, url, false),
                Format::Urls => domain_line(line_str, url, true),
                Format::Hosts => {
                    hosts_line(line_str, url, report, n, &mut emit);
                    continue;
                }
                Format::Adblock => adblock_line(line_str, url),
            };
            match outcome {
                Line::Comment => {}
                Line::Skip => report.skipped += 1,
                Line::Entry(kind) => {
                    report.accepted += 1;
                    emit(kind, url);
                }
                Line::Reject(reason) => report.reject(n, line, reason),
            }
        }
    }
}

enum Line {
    Comment,
    Skip,
    Entry(EntryKind),
    Reject(RejectReason),
}

/// Parses a list entry (a domain, possibly `*.`/`.`-prefixed, or a `host/path`) into `url`.
fn entry(text: &str, url: &mut NormUrl, paths: bool) -> Result<(), RejectReason> {
    let text = text
        .strip_prefix("*.")
        .or_else(|| text.strip_prefix('.'))
        .unwrap_or(text);
    if text.contains(|c: char| c.is_whitespace()) {
        return Err(RejectReason::UnexpectedSpace);
    }
    if !paths && text.contains('/') {
        return Err(RejectReason::PathInDomainList);
    }
    url.parse_into(text).map_err(RejectReason::Url)
}

fn domain_line(line: &str, url: &mut NormUrl, paths: bool) -> Line {
    let line = match strip_comment(line.as_bytes()) {
        [] => return Line::Comment,
        l => std::str::from_utf8(l).unwrap_or(line),
    };
    match entry(line, url, paths) {
        Ok(()) => Line::Entry(EntryKind::Block),
        Err(e) => Line::Reject(e),
    }
}

fn hosts_line(
    line: &str,
    url: &mut NormUrl,
    report: &mut ParseReport,
    n: u64,
    emit: &mut impl FnMut(EntryKind, &NormUrl),
) {
    let body = match strip_comment(line.as_bytes()) {
        [] => return,
        l => std::str::from_utf8(l).unwrap_or(line),
    };
    let mut words = body.split_ascii_whitespace();
    let addr = words.next().unwrap_or("");
    let names: Vec<&str> = words.collect();
    if !is_ip(addr.as_bytes()) || names.is_empty() {
        report.reject(n, line.as_bytes(), RejectReason::NotHostsLine);
        return;
    }
    for name in names {
        if HOSTS_BOILERPLATE.contains(&name) {
            report.skipped += 1;
            continue;
        }
        match entry(name, url, false) {
            Ok(()) => {
                report.accepted += 1;
                emit(EntryKind::Block, url);
            }
            Err(e) => report.reject(n, line.as_bytes(), e),
        }
    }
}

/// Adblock modifiers that do not narrow a rule below "the whole host".
const HARMLESS_MODIFIERS: &[&str] = &["important", "all", "document", "doc", "first-party", "1p"];

fn adblock_line(line: &str, url: &mut NormUrl) -> Line {
    if line.starts_with('!') || line.starts_with('[') || line.starts_with('#') {
        return Line::Comment;
    }
    if line.contains("##") || line.contains("#@#") || line.contains("#?#") || line.contains("#$#") {
        return Line::Skip; // cosmetic (element hiding) rule
    }
    let (kind, rule) = match line.strip_prefix("@@") {
        Some(r) => (EntryKind::Exception, r),
        None => (EntryKind::Block, line),
    };
    if rule.starts_with('/') || rule.contains('*') {
        return Line::Skip; // regular expression or wildcard rule
    }
    let (rule, modifiers) = match rule.split_once('$') {
        Some((r, m)) => (r, m),
        None => (rule, ""),
    };
    if !modifiers.is_empty()
        && !modifiers
            .split(',')
            .all(|m| HARMLESS_MODIFIERS.contains(&m.trim()))
    {
        return Line::Skip; // narrower than a whole host: third-party, script, domain=...
    }
    let target = if let Some(r) = rule.strip_prefix("||") {
        r.trim_end_matches('|').trim_end_matches('^')
    } else if rule.starts_with('|') {
        return Line::Skip; // anchored full-URL rule
    } else {
        // A bare domain, or hosts syntax, which adblock-style DNS filters accept.
        let mut words = rule.split_ascii_whitespace();
        match (words.next(), words.next()) {
            (Some(addr), Some(name)) if is_ip(addr.as_bytes()) => name,
            _ => rule.trim_end_matches('^'),
        }
    };
    if target.contains('^') {
        return Line::Skip; // separator in the middle: a pattern, not a host/path
    }
    match entry(target, url, true) {
        Ok(()) => Line::Entry(kind),
        Err(e) => Line::Reject(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(format: Format, text: &str) -> (Vec<String>, ParseReport) {
        let mut got = Vec::new();
        let report = parse(format, text.as_bytes(), |kind, url| {
            let mark = if kind == EntryKind::Exception {
                "@@"
            } else {
                ""
            };
            got.push(format!("{mark}{url}"));
        });
        (got, report)
    }

    /// `text` fed to a `Parser` in pieces ending after the newlines at `cuts` (byte offsets of
    /// newlines), then finished with the rest.
    fn run_in_pieces(format: Format, text: &[u8], cuts: &[usize]) -> (Vec<String>, ParseReport) {
        let mut got = Vec::new();
        let mut emit = |kind: EntryKind, url: &NormUrl| {
            let mark = if kind == EntryKind::Exception {
                "@@"
            } else {
                ""
            };
            got.push(format!("{mark}{url}"));
        };
        let mut parser = Parser::new(format);
        let mut start = 0;
        for &cut in cuts {
            parser.feed(&text[start..=cut], &mut emit);
            start = cut + 1;
        }
        let report = parser.finish(&text[start..], &mut emit);
        (got, report)
    }

    /// A file parsed a piece at a time gives what it gives parsed whole: every entry, every
    /// count, every rejected line's number, whichever newlines the pieces end at (none, each,
    /// every other), with a byte order mark, bytes that are not UTF-8, empty lines and Windows
    /// line endings, in every format.
    #[test]
    fn a_file_in_pieces_parses_as_whole() {
        let mut text =
            "\u{feff}# list\r\ncasino.example\r\n\n0.0.0.0 a.example b.example\nbad line\n"
                .as_bytes()
                .to_vec();
        text.extend_from_slice(b"\xff\xfe.example\n||ads.example^\n@@||ok.example^\nx.org/path\n");
        text.extend_from_slice(b"\n\nlast.example");
        let ended = [&text[..], b"\n"].concat();
        for format in [
            Format::Domains,
            Format::Urls,
            Format::Hosts,
            Format::Adblock,
        ] {
            for text in [&text, &ended] {
                let newlines: Vec<usize> = (0..text.len()).filter(|&i| text[i] == b'\n').collect();
                let whole = run_in_pieces(format, text, &[]);
                assert_eq!(whole.1, parse(format, text, |_, _| {}));
                assert!(whole.1.rejected >= 1 && whole.1.accepted >= 2, "{whole:?}");
                for cuts in [
                    newlines.clone(),
                    newlines.iter().copied().step_by(2).collect(),
                    newlines[..1].to_vec(),
                    newlines[newlines.len() - 1..].to_vec(),
                ] {
                    let pieces = run_in_pieces(format, text, &cuts);
                    assert_eq!(pieces, whole, "{format:?}, cut after {cuts:?}");
                }
            }
        }
    }

    #[test]
    fn domains() {
        let (got, r) = run(
            Format::Domains,
            "# comment\nCasino.COM\n\n*.bet.example\n.poker.example\nbad domain\nx.org/path\nok.net # note\n",
        );
        assert_eq!(
            got,
            ["casino.com", "bet.example", "poker.example", "ok.net"]
        );
        assert_eq!((r.lines, r.accepted, r.rejected), (9, 4, 2));
        assert_eq!(r.samples[0].line, 6);
        assert_eq!(r.samples[0].reason, RejectReason::UnexpectedSpace);
        assert_eq!(r.samples[1].line, 7);
        assert_eq!(r.samples[1].reason, RejectReason::PathInDomainList);
    }

    #[test]
    fn urls() {
        let (got, r) = run(
            Format::Urls,
            "astrolabio.net/casino/\ntop-lasvegas.com/en\nexample.org\nadultcontent.quora.com/How-Do\n",
        );
        assert_eq!(
            got,
            [
                "astrolabio.net/casino",
                "top-lasvegas.com/en",
                "example.org",
                "adultcontent.quora.com/how-do"
            ]
        );
        assert_eq!(r.rejected, 0);
    }

    #[test]
    fn hosts() {
        let (got, r) = run(
            Format::Hosts,
            "# header\n127.0.0.1 localhost\n0.0.0.0 a.com b.com # two\n0.0.0.0 ___id___.c.mystat-in.net #[Wildcard DNS]\n::1 ip6-localhost\nnot-an-ip x.com\njustone\n0.0.0.0\n",
        );
        assert_eq!(got, ["a.com", "b.com", "___id___.c.mystat-in.net"]);
        assert_eq!(r.skipped, 2);
        assert_eq!(r.rejected, 3);
        assert!(r
            .samples
            .iter()
            .all(|s| s.reason == RejectReason::NotHostsLine));
        assert_eq!(
            r.samples.iter().map(|s| s.line).collect::<Vec<_>>(),
            [6, 7, 8]
        );
    }

    #[test]
    fn adblock() {
        let (got, r) = run(
            Format::Adblock,
            "[Adblock Plus 2.0]\n! comment\n||ads.example^\n@@||good.ads.example^\n||x.com^$important\n||y.com^$third-party\nexample.com##.banner\n/ads[0-9]/\n||t*.com^\n|https://z.com/\n||tracker.net/pixel^\nplain.org\n0.0.0.0 hosts.org\n",
        );
        assert_eq!(
            got,
            [
                "ads.example",
                "@@good.ads.example",
                "x.com",
                "tracker.net/pixel",
                "plain.org",
                "hosts.org"
            ]
        );
        assert_eq!((r.skipped, r.rejected), (5, 0));
    }

    #[test]
    fn bad_bytes_do_not_stop_the_file() {
        let mut text = b"a.com\n".to_vec();
        text.extend_from_slice(b"\xff\xfe.com\n");
        text.extend_from_slice(b"b.com");
        let mut got = Vec::new();
        let r = parse(Format::Domains, &text, |_, u| got.push(u.to_string()));
        assert_eq!(got, ["a.com", "b.com"]);
        assert_eq!(r.samples[0].reason, RejectReason::NotUtf8);
        assert_eq!(r.samples[0].line, 2);
    }

    #[test]
    fn windows_line_endings_and_byte_order_marks() {
        let (got, r) = run(
            Format::Domains,
            "\u{feff}bom.example\r\na.example\r\n\r\n# c\r\n",
        );
        assert_eq!(got, ["bom.example", "a.example"]);
        assert_eq!(r.rejected, 0);
        let (got, _) = run(Format::Hosts, "\u{feff}0.0.0.0 h.example\r\n");
        assert_eq!(got, ["h.example"], "a BOM before a hosts line");
    }

    #[test]
    fn samples_are_bounded() {
        let text = "bad line\n".repeat(100);
        let (_, r) = run(Format::Domains, &text);
        assert_eq!(r.rejected, 100);
        assert_eq!(r.samples.len(), REJECT_SAMPLES);
    }

    #[test]
    fn detection() {
        let t = |text: &str, want: Format| assert_eq!(detect(text.as_bytes()), want, "{text:?}");
        t("# x\n0.0.0.0 a.com\n", Format::Hosts);
        t("127.0.0.1 a.com\n", Format::Hosts);
        t("[Adblock Plus]\n||a^\n", Format::Adblock);
        t("||a.com^\n", Format::Adblock);
        t("a.com\nb.com\n", Format::Domains);
        t("a.com\nb.com/x\n", Format::Urls);
        t("", Format::Domains);
    }

    /// The plain-host and plain-URL fast paths of `parse`: which lines take them (the rest
    /// take the general path, which gives the same entry or a rejection).
    #[test]
    fn plain_host_fast_path() {
        let rows: &[(&str, Option<&str>)] = &[
            ("Casino.COM", Some("casino.com")),
            ("casino.example.", Some("casino.example")),
            ("my_host-1.example", Some("my_host-1.example")),
            ("a..b", Some("a..b")),
            ("...", None),
            ("", None),
            ("10.0.0.7", Some("10.0.0.7")),
            ("10.0.0.7.", Some("10.0.0.7")),
            ("0.0.0.0", Some("0.0.0.0")),
            ("255.255.255.255", Some("255.255.255.255")),
            ("10.0.0.07", None),
            ("010.0.0.7", None),             // octal to WHATWG: 8.0.0.7
            ("10.0.7", None),                // WHATWG: 10.0.0.7
            ("10.0.0.256", None),            // not an address
            ("example.0x7f", None),          // a hex number: IPv4 to WHATWG
            ("xn--bcher-kva.example", None), // punycode, validated by IDNA
            ("b\u{fc}cher.example", None),
            ("a.example:8080", None),
            ("*.a.example", None),
            ("a b", None),
            ("a.example/Casino/", Some("a.example/casino")),
            ("10.0.0.7/x", Some("10.0.0.7/x")),
            ("a.example/x/../y", Some("a.example/y")),
            ("a.example/x?q=1#f", Some("a.example/x?q=1")),
            ("a.example//x", Some("a.example/x")),
            ("a.example/%41", Some("a.example/a")),
            ("a.example/x y", None), // a space: rejected in a list, escaped in a request
            ("a.example/x\ty", None), // a tab: dropped by WHATWG
            ("a.example/x#a b", None), // a space, even in the fragment
            ("a.example?q", None),   // a query straight after the host
            ("user@a.example/", None),
        ];
        for &(host, want) in rows {
            let mut url = NormUrl::default();
            let fast = url.set_plain_url(host);
            assert_eq!(fast.then(|| url.as_str()), want, "{host:?}");
            if fast {
                assert_eq!(url, NormUrl::parse(host).expect("parses"), "{host:?}");
            }
            let host_only = fast && !host.contains('/');
            assert_eq!(url.set_plain_host(host), host_only, "{host:?}");
        }
    }

    /// Where a fast path took `line` (giving `fast`), the general path gives the same entry,
    /// for `urls` lists and, if the line has no `/`, for `domains` lists too.
    fn general_path_agrees(line: &str, fast: &NormUrl) -> Result<(), TestCaseError> {
        let formats: &[bool] = if line.contains('/') {
            &[true]
        } else {
            &[false, true]
        };
        for &paths in formats {
            let mut slow = NormUrl::default();
            let outcome = domain_line(line, &mut slow, paths);
            prop_assert!(matches!(outcome, Line::Entry(EntryKind::Block)), "{line:?}");
            prop_assert_eq!(fast, &slow, "{:?}", line);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..Default::default() })]
        /// Wherever a fast path takes a line, the general path gives the same entry.
        #[test]
        fn plain_line_fast_paths_agree(
            line in "\\.?([a-zA-Z0-9_-]|xn--|0x|\\.|[/:@%*# \u{fc}\u{2024}]){0,16}|([0-9]{1,4}\\.){0,4}[0-9]{1,4}\\.?|\\.?[a-zA-Z0-9._-]{1,8}(/([a-zA-Z0-9._~!$&'()*+,;=:@?#%\\\\ \t\x01-]|\u{fc}){0,4}){0,3}/?"
        ) {
            let text = line.strip_prefix('.').unwrap_or(&line);
            let mut fast = NormUrl::default();
            if fast.set_plain_host(text) {
                general_path_agrees(&line, &fast)?;
            }
            if fast.set_plain_url(text) {
                general_path_agrees(&line, &fast)?;
            }
        }
    }
}
