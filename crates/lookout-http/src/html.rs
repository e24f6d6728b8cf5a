//! Page text for monitoring: the title and the visible text of an HTML page, without scripts,
//! styles or markup. Not a full HTML parser: it reads tags and entities well enough for
//! scanning words, on any bytes, in one pass, never panicking.

/// What a page says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageText {
    pub title: String,
    /// Visible text, whitespace collapsed.
    pub text: String,
}

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &["script", "style", "noscript", "template", "svg", "head"];

/// Bit `n` set for the length `n` of each name in [`HIDDEN`] and of `title`: a tag whose name
/// has none of these lengths (`p`, `a`, `br`, `div`, `li`, most tags) is compared with none.
const SPECIAL_LENGTHS: u32 = {
    let mut bits = 1 << "title".len();
    let mut i = 0;
    while i < HIDDEN.len() {
        bits |= 1 << HIDDEN[i].len();
        i += 1;
    }
    bits
};

/// Extracts the title and visible text of an HTML document (bytes as UTF-8, lossily).
pub fn html_text(html: &[u8]) -> PageText {
    // Validated first: `from_utf8` reads ASCII a word at a time, `from_utf8_lossy` (here) a
    // byte at a time, which cost a fifth of this function on an ASCII page. Only a page that
    // is not UTF-8 pays for both.
    let s = match std::str::from_utf8(html) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(html),
    };
    // Raw text first (entities and whitespace as written), then decoded and collapsed in one
    // pass: an entity may be split by a comment, which adds nothing between its halves.
    let (mut title, mut text) = (String::new(), String::with_capacity(s.len() / 2));
    let mut hidden: Option<&'static str> = None;
    let mut in_title = false;
    let mut rest: &str = &s;
    while !rest.is_empty() {
        let Some(lt) = find(b'<', rest.as_bytes()) else {
            push_text(&mut title, &mut text, rest, hidden.is_some(), in_title);
            break;
        };
        push_text(
            &mut title,
            &mut text,
            &rest[..lt],
            hidden.is_some(),
            in_title,
        );
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.find("-->").map_or("", |e| &r[e + 3..]);
            continue;
        }
        let Some(gt) = find(b'>', rest.as_bytes()) else {
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let named = tag.trim_start_matches('/');
        let name = &named[..named.bytes().take_while(u8::is_ascii_alphanumeric).count()];
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if let Some(h) = hidden {
            // Inside a hidden element only its own end tag matters (the title lives in head).
            if closing && is(h) {
                hidden = None;
            } else if is("title") && h == "head" {
                in_title = !closing;
            }
            continue;
        }
        let special = name.len() < 32 && SPECIAL_LENGTHS & (1 << name.len()) != 0;
        if special && is("title") {
            in_title = !closing;
            continue;
        }
        if special && !closing && !tag.ends_with('/') {
            if let Some(h) = HIDDEN.iter().find(|h| is(h)) {
                hidden = Some(h);
                continue;
            }
        }
        if !text.is_empty() && !text.ends_with(' ') {
            // Block-level tags separate words: one space, not one a tag (which collapsing
            // would undo, a byte at a time).
            text.push(' ');
        }
    }
    PageText {
        title: decode_collapsed(&title),
        text: decode_collapsed(&text),
    }
}

fn push_text(title: &mut String, text: &mut String, t: &str, hidden: bool, in_title: bool) {
    if in_title {
        title.push_str(t);
    } else if !hidden {
        text.push_str(t);
    }
}

/// `s` with its entities decoded and its whitespace collapsed: words (after decoding) joined
/// by single spaces, none at either end.
fn decode_collapsed(s: &str) -> String {
    let mut out = Collapsed {
        out: String::with_capacity(s.len()),
        space: false,
    };
    let mut rest = s;
    while let Some(amp) = memchr::memchr(b'&', rest.as_bytes()) {
        out.run(&rest[..amp]);
        rest = &rest[amp..];
        match entity(rest) {
            Some((c, len)) => {
                out.char(c);
                rest = &rest[len..];
            }
            None => {
                out.word("&");
                rest = &rest[1..];
            }
        }
    }
    out.run(rest);
    out.out
}

/// Text being collapsed: `space` when whitespace came after the last word.
struct Collapsed {
    out: String,
    space: bool,
}

impl Collapsed {
    #[cfg(test)]
    fn of(run: &str) -> String {
        let mut c = Collapsed {
            out: String::new(),
            space: false,
        };
        c.run(run);
        c.out
    }

    /// Text without entities: its words, with whatever whitespace lies between them. Printable
    /// ASCII with single spaces between words is taken as it is (the usual case in prose),
    /// eight bytes at a time, up to the first byte that needs a closer look; that byte is read
    /// on its own: ASCII whitespace ends a word, the lead bytes of the few other whitespace
    /// characters (U+0085, U+00A0, U+1680, U+2000-U+3000) are decoded to see, and every other
    /// byte is part of a word.
    fn run(&mut self, run: &str) {
        let bytes = run.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            if let Some(eight) = bytes[i..].first_chunk::<8>() {
                // Bytes that need a closer look: one that may start whitespace other than a
                // space (`needs_look`), and a space not known to stand alone between word
                // bytes: one followed by a space or by such a byte, one that ends the eight
                // (the byte after it is unseen), and one that starts them before any word of
                // this run (a word taken in this run never ends in a space). Those before the
                // first are taken.
                let w = u64::from_le_bytes(*eight);
                let spaces = spaces(w);
                // Most eights in most pages are printable ASCII: the full test only for others.
                let odd = if unprintable(w) == 0 {
                    0
                } else {
                    needs_look(w)
                };
                let first = if start < i { 0 } else { 0x80 };
                let look = odd | (spaces & (((spaces | odd) >> 8) | (0x80 << 56) | first));
                if look == 0 {
                    i += 8;
                    continue;
                }
                let taken = (look.trailing_zeros() / 8) as usize;
                if taken > 0 {
                    i += taken;
                    continue;
                }
            }
            let width = match bytes[i] {
                b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => 1,
                0xc2 | 0xe1..=0xe3 => match run[i..].chars().next() {
                    Some(c) if c.is_whitespace() => c.len_utf8(),
                    _ => 0,
                },
                _ => 0,
            };
            if width == 0 {
                i += 1;
                continue;
            }
            if start < i {
                self.word(&run[start..i]);
            }
            self.space = true;
            i += width;
            start = i;
        }
        if start < bytes.len() {
            self.word(&run[start..]);
        }
    }

    /// Part of a word, after a space if whitespace came before it (and a word before that).
    fn word(&mut self, w: &str) {
        if self.space && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(w);
    }

    fn char(&mut self, c: char) {
        if c.is_whitespace() {
            self.space = true;
        } else {
            self.word(c.encode_utf8(&mut [0; 4]));
        }
    }
}

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = ONES * 0x80;

/// The first `byte` of `hay`: eight bytes at a time for its first 32 bytes, memchr after
/// them. Tags, and the text between them, are mostly shorter than memchr's set-up is worth
/// (memchr was two fifths of `html_text`'s time on a page of short paragraphs).
fn find(byte: u8, hay: &[u8]) -> Option<usize> {
    let pattern = ONES * u64::from(byte);
    let mut i = 0;
    while let Some(eight) = hay.get(i..i + 8).filter(|_| i < 32) {
        let t = u64::from_le_bytes(eight.try_into().expect("8 bytes")) ^ pattern;
        // Bytes equal to `byte` are 0 in `t`; the lowest flagged byte is the first of them
        // (a borrow only flags bytes above a 0 byte).
        let zero = t.wrapping_sub(ONES) & !t & HIGH;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = hay.get(i..)?;
    let found = if i < 32 {
        rest.iter().position(|&b| b == byte)
    } else {
        memchr::memchr(byte, rest)
    };
    found.map(|f| i + f)
}

/// The high bit of each byte of `v` that is 0, and no other bit: `(b & 0x7f) + 0x7f` sets the
/// high bit when the low seven bits are not all 0, never carrying into the next byte.
fn zero_bytes(v: u64) -> u64 {
    !(((v & !HIGH) + !HIGH) | v) & HIGH
}

/// The high bit of each byte of `w` that is a space, and no other bit.
fn spaces(w: u64) -> u64 {
    zero_bytes(w ^ (ONES * b' ' as u64))
}

/// Bit 7 of each byte of `w` outside printable ASCII and space (0x20-0x7e), 0 when none is:
/// exact up to the first such byte; after it, a borrow or carry from it may mark other bytes
/// too.
fn unprintable(w: u64) -> u64 {
    let below = w.wrapping_sub(ONES * 0x20) & !w;
    let above = w.wrapping_add(ONES) | w;
    (below | above) & HIGH
}

/// The high bit of each byte of `w` that the byte loop of `Collapsed::run` must read: an ASCII
/// control character (0x00-0x1f, 0x7f; tabs and line ends among them) and the lead bytes of
/// the other whitespace characters (0xc2, 0xe1-0xe3). Every other byte, the rest of UTF-8
/// included, is a word byte or a space. Exact in every byte.
fn needs_look(w: u64) -> u64 {
    // Below 0x20: the low seven bits plus 0x60 reach the high bit from 0x20 on, never carrying.
    let control = !((w & !HIGH) + ONES * 0x60) & !w & HIGH;
    let delete = zero_bytes(w ^ (ONES * 0x7f));
    let c2 = zero_bytes(w ^ (ONES * 0xc2));
    let e0 = w ^ (ONES * 0xe0);
    let e1_e3 = zero_bytes(e0 & (ONES * 0xfc)) & !zero_bytes(e0);
    control | delete | c2 | e1_e3
}

/// The character of the entity `s` starts with (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`
/// `&nbsp;` and numeric references) and the entity's length; others are kept as written.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s[1..].find(';').map(|e| e + 1).filter(|&e| e <= 10)?;
    let name = &s[1..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        "nbsp" => ' ',
        _ => {
            let n = name.strip_prefix('#')?;
            let v = match n.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok(),
                None => n.parse().ok(),
            };
            char::from_u32(v?)?
        }
    };
    Some((c, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decoding and collapsing in two passes, as `html_text` first did: the one-pass
    /// `decode_collapsed` must agree with it on every input.
    fn two_passes(s: &str) -> String {
        let mut decoded = String::new();
        let mut rest = s;
        while let Some(amp) = rest.find('&') {
            decoded.push_str(&rest[..amp]);
            rest = &rest[amp..];
            let (c, len) = entity(rest).unwrap_or(('&', 1));
            decoded.push(c);
            rest = &rest[len..];
        }
        decoded.push_str(rest);
        decoded.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `Collapsed::run` decodes only characters starting with these bytes: every whitespace
    /// character the standard library knows must start with one.
    #[test]
    fn every_whitespace_character_starts_with_a_byte_run_looks_at() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            if c.is_whitespace() {
                let first = c.encode_utf8(&mut [0; 4]).as_bytes()[0];
                assert!(
                    matches!(first, b'\t'..=b'\r' | b' ' | 0xc2 | 0xe1..=0xe3),
                    "{c:?}"
                );
                assert_eq!(Collapsed::of(&format!("a{c}b")), "a b", "{c:?}");
            }
        }
    }

    /// `find` finds what a byte search finds, wherever the byte falls among the eight-byte
    /// steps, the bytes after them and the rest memchr searches, with other bytes equal but
    /// for one bit, and 0x80 and 0xff bytes (whose borrows might be taken for a match) before.
    #[test]
    fn find_finds_the_first_byte() {
        for len in 0..80 {
            for at in (0..len).chain([len]) {
                for filler in [b'a', b'<' ^ 1, b'<' ^ 0x80, 0x80, 0xff, 0] {
                    let mut hay = vec![filler; len];
                    if at < len {
                        hay[at] = b'<';
                        if at + 1 < len {
                            hay[at + 1] = b'<';
                        }
                    }
                    let want = hay.iter().position(|&b| b == b'<');
                    assert_eq!(
                        find(b'<', &hay),
                        want,
                        "len {len}, at {at}, filler {filler:#x}"
                    );
                }
            }
        }
    }

    /// The eight-byte masks, byte by byte, against the byte loop's own view.
    #[test]
    fn eight_byte_masks_are_exact() {
        let look = |b: u8| matches!(b, 0..=0x1f | 0x7f | 0xc2 | 0xe1..=0xe3);
        for fill in [
            b'a', b' ', 0, 0x1f, 0x20, 0x7f, 0x80, 0xc2, 0xe0, 0xe3, 0xe4, 0xff,
        ] {
            for b in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[at] = b;
                    let w = u64::from_le_bytes(bytes);
                    let (mut want_space, mut want_look) = (0, 0);
                    for (i, &x) in bytes.iter().enumerate() {
                        want_space |= u64::from(x == b' ') << (8 * i + 7);
                        want_look |= u64::from(look(x)) << (8 * i + 7);
                    }
                    assert_eq!(spaces(w), want_space, "{b:#x} at {at} in {fill:#x}");
                    assert_eq!(needs_look(w), want_look, "{b:#x} at {at} in {fill:#x}");
                    let printable = bytes.iter().all(|x| (0x20..=0x7e).contains(x));
                    assert_eq!(
                        unprintable(w) == 0,
                        printable,
                        "{b:#x} at {at} in {fill:#x}"
                    );
                }
            }
        }
    }

    proptest! {
        /// Runs of words and whitespace of every kind collapse as splitting on whitespace and
        /// joining with spaces does, however they fall on eight-byte boundaries.
        #[test]
        fn runs_collapse_as_split_and_join(
            run in "([a-z~]{1,9}( |  |\t|\n|\u{a0}|\u{2003}| \u{7f}|\u{e9}| \u{e9}|\r\n)){0,24}[ a-z]{0,9}"
        ) {
            let want = run.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(Collapsed::of(&run), want);
        }
    }

    /// HTML-ish text: tags (hidden, title, others, closing, self-closing), comments,
    /// entities (known, numeric, unknown, cut short), whitespace of several kinds, any char.
    fn htmlish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("</".to_owned()),
            Just("/>".to_owned()),
            Just("<!--".to_owned()),
            Just("-->".to_owned()),
            prop::sample::select(vec![
                "title", "TITLE", "head", "Script", "style", "svg", "p", "br", "div", "noscript",
            ])
            .prop_map(str::to_owned),
            prop::sample::select(vec![
                "&amp;",
                "&nbsp;",
                "&#10;",
                "&#x2003;",
                "&#65;",
                "&#xZZ;",
                "&bogus;",
                "&",
                "&lt",
                "&#1114112;",
                ";",
            ])
            .prop_map(str::to_owned),
            prop::sample::select(vec![" ", "  ", "\t", "\n", "\r", "\u{b}", "\u{c}"])
                .prop_map(str::to_owned),
            // Every non-ASCII whitespace character, and others sharing their lead bytes.
            prop::sample::select(vec![
                "\u{85}", "\u{a0}", "\u{1680}", "\u{2000}", "\u{200a}", "\u{2028}", "\u{2029}",
                "\u{202f}", "\u{205f}", "\u{3000}", "\u{a9}", "\u{1681}", "\u{200b}", "\u{2030}",
                "\u{3001}", "\u{1c}",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z0-9 ]{1,6}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn decoding_and_collapsing_in_one_pass_agrees_with_two(html in htmlish()) {
            prop_assert_eq!(decode_collapsed(&html), two_passes(&html));
        }

        #[test]
        fn any_bytes_are_read_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let p = html_text(&bytes);
            prop_assert!(!p.text.starts_with(' ') && !p.text.ends_with(' ') && !p.text.contains("  "));
        }
    }

    #[test]
    fn title_and_visible_text() {
        let table = [
            (
                "<html><head><title>How &amp; why</title><style>p{}</style></head><body><p>Hello<br>world</p><script>var x='hidden';</script></body></html>",
                ("How & why", "Hello world"),
            ),
            ("<title>T</title>no head", ("T", "no head")),
            ("<p>a<!-- secret -->b</p>", ("", "ab")),
            ("<svg><text>icon</text></svg>visible", ("", "visible")),
            ("caf&#233; &#x41; &bogus; &", ("", "café A &bogus; &")),
            ("<p unclosed", ("", "")),
            ("plain text", ("", "plain text")),
            ("<div>one</div><div>two</div>", ("", "one two")),
            // Tag names in any case.
            ("<SCRIPT>x</script>y<Style>z</STYLE>", ("", "y")),
            ("<HEAD><Title>T</TITLE><meta></Head>body", ("T", "body")),
            ("<svg/>shown<br/>too", ("", "shown too")),
            ("<scripts>shown</scripts>", ("", "shown")),
            // Entities between words, as words, and as whitespace.
            ("a&nbsp;&nbsp;b &amp; c&#10;d&#x2003;", ("", "a b & c d")),
            ("&nbsp;lead and trail&#32;", ("", "lead and trail")),
            ("x&am<!-- -->p;y", ("", "x&y")),
        ];
        for (html, (title, text)) in table {
            let p = html_text(html.as_bytes());
            assert_eq!((p.title.as_str(), p.text.as_str()), (title, text), "{html}");
        }
        // Bytes that are not UTF-8 or not HTML do not panic.
        let _ = html_text(&[
            0xff, b'<', 0xfe, b'>', b'&', b'#', b'9', b'9', b'9', b'9', b'9', b'9', b'9', b';',
        ]);
    }
}
