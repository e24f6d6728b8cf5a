//! Text normalisation: the one function that phrase patterns and scanned text both go through,
//! so that a pattern written `kill myself` also finds `K1LL   mys3lf`, `ｋｉｌｌ myself`,
//! `k.i.l.l myself`, `kiiill myself` and `kіll myself` (with a Cyrillic `і`).
//!
//! The output is a list of tokens separated by single spaces, with one space before the first
//! token and one after the last, so a whole-word pattern is simply the pattern's own output
//! (spaces included) and a substring pattern is the output without its outer spaces.
//!
//! Steps, per character: compatibility decomposition (NFKD: full-width, ligatures, maths
//! alphabets, circled letters) with combining marks removed (diacritics: `samobójstwo` →
//! `samobojstwo`); lower case; letters with no decomposition mapped by hand (`ł`, `ß`, `ø`…);
//! confusable Cyrillic and Greek letters mapped to the Latin letters they imitate; Arabic-script
//! letter variants (Arabic and Urdu forms of alef, yeh, kaf, heh, teh marbuta) unified and
//! tatweel removed; zero-width characters removed without splitting the word. Per token: leet
//! digits and symbols read as letters when the token also has letters (`k1ll`, `$uicide`,
//! `sh00t`; `2019` stays a number and a trailing `!` is punctuation); runs of the same letter
//! collapsed to one (`diiie` → `die`, and also `kill` → `kil`, which is why patterns are
//! normalised the same way). Across tokens: a run of three or more single letters with short
//! separators is joined (`s u i c i d e`, `s.u.i.c.i.d.e` → `suicide`).

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// One token of the normalised text and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// Offset of the token's first byte in the normalised text.
    pub(crate) norm: u32,
    /// Byte range of the token in the original text.
    pub(crate) orig: u32,
    pub(crate) orig_end: u32,
}

/// Reusable buffers: normalising into the same `Normalized` again allocates nothing once the
/// buffers have grown to the size of the texts seen.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    pub(crate) text: Vec<u8>,
    pub(crate) tokens: Vec<Token>,
    scratch: Vec<(char, Class)>,
    chars: CharCache,
}

/// Slots in [`CharCache`] (a power of two).
const CHAR_SLOTS: usize = 512;

/// Non-ASCII characters' mappings ([`map_char`]), remembered by the character's low bits: a
/// text in one script uses a few dozen letters again and again, and each costs a
/// decomposition, a lower-casing and a Unicode class lookup. Made at the first non-ASCII
/// character (16 KiB), so ASCII-only scanning pays nothing.
#[derive(Debug, Default)]
struct CharCache {
    slots: Option<Box<[CachedChar]>>,
    /// What each character of two UTF-8 bytes (U+0080 to U+07FF: Latin letters with marks,
    /// Greek, Cyrillic, Armenian, Hebrew, Arabic) comes to in a word of letters, by code
    /// point less 0x80, learnt as the characters are first read (24 bytes an entry, 45 KiB
    /// in all, made at the first one). Read by [`Normalized::letters_token`] without the
    /// key check, class tests and encoding of the general mapping.
    two_byte: Option<Box<[Letters]>>,
}

/// Characters of two UTF-8 bytes.
const TWO_BYTE: usize = 0x800 - 0x80;

/// What a character comes to in a token of letters ([`Normalized::letters_token`]). Plain
/// fields and a kind byte, read where the entry lies: as an enum with data, or returned by
/// value, the entry was copied out to the stack and read back in pieces the processor could
/// not forward from the copy's wider writes (a third of the function's samples in a perf
/// profile of the corpora's non-English lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Letters {
    kind: Kind,
    /// [`Kind::Letters`]: their UTF-8 (little-endian, repeats within them already dropped),
    /// `len` bytes, the first of them `first_len` bytes long; the first and last letter.
    len: u8,
    first_len: u8,
    first: char,
    last: char,
    utf8: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Not yet learnt.
    Unknown,
    /// One or more letters.
    Letters,
    /// Nothing (a zero-width character, tatweel, a lone combining mark).
    Nothing,
    /// Punctuation or a space: the token ends before it.
    Ends,
    /// A digit or a symbol (read as leet, or trimmed, by the general steps), or letters
    /// longer than eight bytes.
    Other,
}

impl Letters {
    const UNKNOWN: Letters = Letters::only(Kind::Unknown);

    const fn only(kind: Kind) -> Letters {
        Letters {
            kind,
            len: 0,
            first_len: 0,
            first: '\0',
            last: '\0',
            utf8: 0,
        }
    }
}

/// A mapping of up to three characters (longer ones, such as ligatures, are not kept).
#[derive(Clone, Copy, Debug)]
struct CachedChar {
    /// `'\0'`: empty (ASCII is never looked up here).
    key: char,
    len: u8,
    out: [(char, Class); 3],
}

impl CharCache {
    /// What the character U+0080 + `k` comes to in a token of letters, learnt from
    /// [`CharCache::map`] at its first reading. Read where it lies, not copied out (see
    /// [`Letters`]).
    #[inline]
    fn two_byte(&mut self, k: usize) -> &Letters {
        const OTHER: &Letters = &Letters::only(Kind::Other);
        let known = self
            .two_byte
            .as_deref()
            .and_then(|t| t.get(k))
            .is_some_and(|l| l.kind != Kind::Unknown);
        if !known {
            self.learn(k);
        }
        self.two_byte
            .as_deref()
            .and_then(|t| t.get(k))
            .unwrap_or(OTHER)
    }

    /// Learns what U+0080 + `k` comes to (see [`CharCache::two_byte`]); `k` not below
    /// [`TWO_BYTE`] is no such character and learns nothing.
    #[cold]
    fn learn(&mut self, k: usize) {
        let Some(c) = (k < TWO_BYTE)
            .then(|| char::from_u32(0x80 + k as u32))
            .flatten()
        else {
            return;
        };
        let mut out = Vec::with_capacity(4);
        self.map(c, &mut out);
        // Made on the heap: an array made on the stack first would cost every call a probe of
        // each of its twelve pages.
        self.two_byte
            .get_or_insert_with(|| vec![Letters::UNKNOWN; TWO_BYTE].into_boxed_slice())[k] =
            Letters::of(&out);
    }

    /// What a character of three or four bytes comes to in a token of letters, if the
    /// general mapping's slots hold it.
    #[inline]
    fn cached_letters(&self, c: char) -> Option<Letters> {
        let slot = self.slots.as_deref()?.get(c as usize & (CHAR_SLOTS - 1))?;
        (slot.key == c).then(|| Letters::of(&slot.out[..usize::from(slot.len)]))
    }

    /// [`map_char`]`(c, out)`, from the cache when it has `c`.
    fn map(&mut self, c: char, out: &mut Vec<(char, Class)>) {
        // Made on the heap: `Box::new` of an array makes it on the stack first, and so gave
        // every call a stack frame of 16 KiB, each page of it probed.
        let slots = self.slots.get_or_insert_with(|| {
            let empty = CachedChar {
                key: '\0',
                len: 0,
                out: [('\0', Class::Sep); 3],
            };
            vec![empty; CHAR_SLOTS].into_boxed_slice()
        });
        let slot = &mut slots[c as usize & (CHAR_SLOTS - 1)];
        if slot.key == c {
            // All three then the unused ones dropped: a copy of known length is a few moves,
            // where one of a varying length is a call to memcpy.
            let before = out.len();
            out.extend_from_slice(&slot.out);
            out.truncate(before + usize::from(slot.len));
            return;
        }
        let before = out.len();
        map_char(c, out);
        let mapped = &out[before..];
        if mapped.len() <= slot.out.len() {
            slot.key = c;
            slot.len = mapped.len() as u8;
            slot.out[..mapped.len()].copy_from_slice(mapped);
        }
    }
}

impl Letters {
    /// What a character whose mapping is `mapped` comes to in a token of letters.
    fn of(mapped: &[(char, Class)]) -> Letters {
        if mapped
            .iter()
            .any(|&(_, k)| matches!(k, Class::Digit | Class::Sym))
        {
            return Letters::only(Kind::Other);
        }
        if mapped.iter().any(|&(_, k)| k == Class::Sep) {
            return Letters::only(Kind::Ends);
        }
        let (mut utf8, mut len, mut first, mut last) = (0u64, 0u32, None, '\0');
        for &(c, k) in mapped {
            if k != Class::Letter || first.is_some() && c == last {
                continue;
            }
            let n = c.len_utf8() as u32;
            if len + n > 8 {
                return Letters::only(Kind::Other);
            }
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf);
            utf8 |= u64::from(u32::from_le_bytes(buf)) << (8 * len);
            len += n;
            first.get_or_insert((c, n));
            last = c;
        }
        match first {
            None => Letters::only(Kind::Nothing),
            Some((first, first_len)) => Letters {
                kind: Kind::Letters,
                len: len as u8,
                first_len: first_len as u8,
                first,
                last,
                utf8,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Sep,
    Letter,
    Digit,
    /// `$ @ ! | +`: read as letters inside a word, punctuation elsewhere.
    Sym,
    /// Zero-width and combining characters: removed, without ending the word.
    Drop,
}

const fn ascii_classes() -> [Class; 128] {
    let mut t = [Class::Sep; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Digit
        } else if matches!(c, b'$' | b'@' | b'!' | b'|' | b'+') {
            Class::Sym
        } else {
            Class::Sep
        };
        b += 1;
    }
    t
}

static ASCII: [Class; 128] = ascii_classes();

/// Leet reading of an ASCII digit or symbol in a word that has letters; `None` keeps it as is.
fn leet(b: u8) -> Option<u8> {
    Some(match b {
        b'0' => b'o',
        b'1' | b'!' => b'i',
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' | b'+' => b't',
        b'8' => b'b',
        b'9' => b'g',
        b'|' => b'l',
        _ => return None,
    })
}

/// `$` and `@` begin words in leetspeak (`$uicide`, `@ss`); `! | +` only ever sit inside one.
fn may_lead(b: u8) -> bool {
    matches!(b, b'$' | b'@')
}

/// Maps a lower-case character that has no useful decomposition: Latin letters written as
/// their own code points, confusable Cyrillic and Greek letters, Arabic-script variants.
/// `None` keeps the character; an empty string removes it.
fn special(c: char) -> Option<&'static str> {
    Some(match c {
        'ł' => "l",
        'đ' | 'ð' => "d",
        'ø' => "o",
        'æ' => "ae",
        'œ' => "oe",
        'ß' => "ss",
        'þ' => "th",
        'ı' => "i",
        'ſ' => "s",
        // Cyrillic look-alikes.
        'а' => "a",
        'в' => "b",
        'е' | 'ё' => "e",
        'к' => "k",
        'м' => "m",
        'н' => "h",
        'о' => "o",
        'р' => "p",
        'с' => "c",
        'т' => "t",
        'у' => "y",
        'х' => "x",
        'ѕ' => "s",
        'і' | 'ї' => "i",
        'ј' => "j",
        'ԁ' => "d",
        'һ' => "h",
        'ӏ' => "l",
        'ԛ' => "q",
        'ԝ' => "w",
        // Greek look-alikes.
        'α' => "a",
        'β' => "b",
        'ε' => "e",
        'η' => "n",
        'ι' => "i",
        'κ' => "k",
        'ν' => "v",
        'ο' => "o",
        'ρ' => "p",
        'τ' => "t",
        'υ' => "u",
        'χ' => "x",
        'ω' => "w",
        // Arabic script: Arabic and Urdu spellings of the same letters, and the
        // decorative stretch (tatweel).
        'أ' | 'إ' | 'آ' | 'ٱ' => "ا",
        'ى' | 'ی' | 'ې' | 'ے' => "ي",
        'ک' => "ك",
        'ہ' | 'ۃ' | 'ة' | 'ھ' => "ه",
        'ـ' => "",
        _ => return None,
    })
}

/// Zero-width and formatting characters that people insert inside words to dodge filters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// Feeds the normalised form of one non-ASCII character, classified, to `out`.
fn map_char(c: char, out: &mut Vec<(char, Class)>) {
    if is_invisible(c) {
        return;
    }
    let push = |c: char, out: &mut Vec<(char, Class)>| {
        for l in c.to_lowercase() {
            if let Some(s) = special(l) {
                out.extend(s.chars().map(|c| (c, classify(c))));
            } else {
                out.push((l, classify(l)));
            }
        }
    };
    if let Some(s) = special(c) {
        out.extend(s.chars().map(|c| (c, classify(c))));
        return;
    }
    let before = out.len();
    decompose_compatible(c, |d| {
        if !is_combining_mark(d) && !is_invisible(d) {
            push(d, out);
        }
    });
    if out.len() == before && is_combining_mark(c) {
        // A lone combining mark: part of the word it follows.
        out.push((c, Class::Drop));
    }
}

/// Whether the byte `b` is an ASCII separator (a byte of a non-ASCII character is not: the
/// character decides).
#[inline(always)]
fn ascii_sep(b: u8) -> bool {
    b < 0x80 && ASCII[b as usize] == Class::Sep
}

fn classify(c: char) -> Class {
    if c.is_ascii() {
        ASCII[c as usize]
    } else if c.is_alphanumeric() {
        Class::Letter
    } else {
        Class::Sep
    }
}

impl Normalized {
    /// Normalises `input`, replacing what the buffers held. Inputs longer than 4 GiB are cut
    /// (offsets are 32-bit); callers bound what they scan far below that.
    pub(crate) fn normalize(&mut self, input: &str) {
        self.normalize_with(input, true);
    }

    /// [`Normalized::normalize`]; `by_eight` off reads every letter one byte at a time (the
    /// reference the eight-byte reading is tested against).
    #[inline(always)]
    fn normalize_with(&mut self, input: &str, by_eight: bool) {
        let input = clamp(input);
        self.text.clear();
        self.tokens.clear();
        self.text.reserve(input.len() + 2);
        self.text.push(b' ');
        let bytes = input.as_bytes();
        let mut run = Run::default();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if ascii_sep(b) {
                i += 1;
                continue;
            }
            if by_eight {
                // Most words, and the separators after them, in one tight loop. It stops at
                // the start of a token it leaves to the steps below (or the text's end): that
                // token is read there at once, not offered to the loop a second time.
                i = self.plain_words(bytes, i, &mut run);
                if i == bytes.len() {
                    break;
                }
            }
            // A token starts here. Fast path: a word of ASCII letters only, written as it
            // is read; anything else (digits, symbols, non-ASCII) rewinds to the full path.
            let start = i;
            let norm = self.text.len();
            let mut j = i;
            let simple = if by_eight {
                self.ascii_letters(bytes, &mut j)
            } else {
                // The reference: a byte at a time.
                let mut last = 0u8;
                loop {
                    match bytes.get(j) {
                        Some(&b) if b < 0x80 && ASCII[b as usize] == Class::Letter => {
                            let l = b | 0x20;
                            if l != last {
                                self.text.push(l);
                                last = l;
                            }
                            j += 1;
                        }
                        Some(&b) => break ascii_sep(b),
                        None => break true,
                    }
                }
            };
            let end = if simple {
                j
            } else {
                self.text.truncate(norm);
                while j < bytes.len() && bytes[j] < 0x80 && !ascii_sep(bytes[j]) {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] >= 0x80 {
                    // The reference reads every such token the general way.
                    by_eight
                        .then(|| self.letters_token(input, start))
                        .flatten()
                        .unwrap_or_else(|| self.unicode_token(input, start))
                } else {
                    self.ascii_token(&bytes[start..j]);
                    j
                }
            };
            self.finish_token(input, (start, end), norm, simple, &mut run);
            i = end;
        }
    }

    /// Writes the words from `bytes[i]` on that are two or more ASCII letters (two or more
    /// once repeats are dropped) followed by a separator, each with the separators after it,
    /// and returns where the first other token starts (`i` itself if it is one; the text's
    /// end if none does; never a separator). What the
    /// general steps below do for such a word, without their branches for every other kind:
    /// one eight-byte read finds a word of up to seven letters and the byte after it; a
    /// longer one is read on as [`Normalized::ascii_letters`] reads it.
    #[inline(always)]
    fn plain_words(&mut self, bytes: &[u8], mut i: usize, run: &mut Run) -> usize {
        while let Some(piece) = bytes.get(i..i + 8) {
            let x = u64::from_le_bytes(piece.try_into().unwrap_or_default());
            let (lower, n) = letters(x);
            if n < 2 {
                break;
            }
            let norm = self.text.len();
            let (end, next) = if n < 8 {
                // The byte after the word, inside the eight read.
                let after = (x >> (8 * n)) as u8;
                if !ascii_sep(after) {
                    break;
                }
                let repeats = zero_bytes(lower ^ (lower << 8)) & low_bytes(n);
                let (out, len) = if repeats == 0 {
                    (lower, n)
                } else {
                    without(lower, n, repeats)
                };
                if len < 2 {
                    // A single letter (`aa`): the general steps join runs of those.
                    break;
                }
                self.text.extend_from_slice(&out.to_le_bytes());
                self.text.truncate(norm + len);
                // The separator after the word is known: the scan for more starts past it.
                (i + n, i + n + 1)
            } else {
                // Eight letters or more: the rest of the word as the general steps read it.
                let mut j = i;
                if !self.ascii_letters(bytes, &mut j) || self.text.len() - norm < 2 {
                    self.text.truncate(norm);
                    break;
                }
                (j, j)
            };
            self.tokens.push(Token {
                norm: norm as u32,
                orig: i as u32,
                orig_end: end as u32,
            });
            self.text.push(b' ');
            run.len = 0;
            // A separator or the text's end follows the word.
            i = next;
            while bytes.get(i).is_some_and(|&b| ascii_sep(b)) {
                i += 1;
            }
        }
        i
    }

    /// Writes the ASCII letters from `bytes[*j]` on, lower-cased and with repeats dropped,
    /// eight bytes at a time, and moves `*j` past them. True when the word ends there (at a
    /// separator or the end of the text), false when it goes on with a digit, a symbol or a
    /// non-ASCII character (and must be read again by the full path).
    #[inline(always)]
    fn ascii_letters(&mut self, bytes: &[u8], j: &mut usize) -> bool {
        let mut last = 0u8;
        loop {
            let x = match bytes.get(*j..*j + 8) {
                Some(piece) => u64::from_le_bytes(piece.try_into().unwrap_or_default()),
                None => {
                    // The text's last bytes, padded with spaces (which end the word).
                    let mut piece = [b' '; 8];
                    let rest = bytes.get(*j..).unwrap_or_default();
                    piece[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(piece)
                }
            };
            let (lower, n) = letters(x);
            if n == 0 {
                break;
            }
            // A letter repeating the one before it is dropped (`kill` -> `kil`).
            let repeats = zero_bytes(lower ^ (lower << 8 | u64::from(last))) & low_bytes(n);
            let (out, len) = if repeats == 0 {
                (lower, n)
            } else {
                without(lower, n, repeats)
            };
            // All eight bytes then the rest dropped (a copy of known length).
            let at = self.text.len();
            self.text.extend_from_slice(&out.to_le_bytes());
            self.text.truncate(at + len);
            last = (lower >> (8 * (n - 1))) as u8;
            *j += n;
            if n < 8 {
                break;
            }
        }
        // `bytes[*j]`, if any, is not an ASCII letter.
        bytes.get(*j).is_none_or(|&b| ascii_sep(b))
    }

    /// Writes an all-ASCII token (no separators inside).
    fn ascii_token(&mut self, token: &[u8]) {
        let mut t = token;
        // Punctuation at the edges is not leet: `die!`, `|me`, `$5` stays `5`.
        while let Some((&last, rest)) = t.split_last() {
            if ASCII[last as usize] == Class::Sym {
                t = rest;
            } else {
                break;
            }
        }
        while let Some((&first, rest)) = t.split_first() {
            if ASCII[first as usize] == Class::Sym && !(may_lead(first) && has_letter(rest)) {
                t = rest;
            } else {
                break;
            }
        }
        let letters = has_letter(t);
        let mut last = 0u8;
        for &b in t {
            let out = match ASCII[b as usize] {
                Class::Letter => b.to_ascii_lowercase(),
                Class::Digit | Class::Sym if letters => leet(b).unwrap_or(b),
                Class::Digit => b,
                _ => continue,
            };
            if !letters || out != last {
                self.text.push(out);
                last = out;
            }
        }
    }

    /// [`Normalized::unicode_token`] for a token of letters only: ASCII letters and
    /// characters that map to letters (or to nothing, or to a lone combining mark), as most
    /// words of a text in Arabic, Polish or Russian are. Each is written as it is read,
    /// repeats dropped; nothing needs trimming, and leet reading never applies. `None`, with
    /// nothing written, at anything else (a digit, a symbol, a character whose mapping is not
    /// yet known): the general steps then read the token, and learn the mapping.
    #[inline(never)]
    fn letters_token(&mut self, input: &str, start: usize) -> Option<usize> {
        let bytes = input.as_bytes();
        let norm = self.text.len();
        let mut last = '\0';
        let mut i = start;
        // What a character of three or four bytes comes to.
        let mut longer;
        let give_up = |text: &mut Vec<u8>| {
            text.truncate(norm);
            None
        };
        while let Some(&b) = bytes.get(i) {
            if b < 0x80 {
                match ASCII[b as usize] {
                    Class::Letter => {
                        let l = b | 0x20;
                        if char::from(l) != last {
                            self.text.push(l);
                            last = char::from(l);
                        }
                        i += 1;
                        continue;
                    }
                    Class::Sep => break,
                    _ => return give_up(&mut self.text),
                }
            }
            // A character of two bytes is looked up by its bits, without decoding it.
            let (mapped, width) = match bytes.get(i + 1) {
                Some(&next) if b & 0xE0 == 0xC0 => {
                    let k = usize::from(b & 0x1F) << 6 | usize::from(next & 0x3F);
                    (self.chars.two_byte(k.wrapping_sub(0x80)), 2)
                }
                _ => {
                    // `i` steps over whole characters, so it is a character boundary.
                    let c = input[i..].chars().next();
                    let Some((c, mapped)) =
                        c.and_then(|c| Some((c, self.chars.cached_letters(c)?)))
                    else {
                        return give_up(&mut self.text);
                    };
                    longer = mapped;
                    (&longer, c.len_utf8())
                }
            };
            match mapped.kind {
                Kind::Letters => {
                    // The first letter is dropped if it repeats the one before.
                    let (bytes, n) = if mapped.first == last {
                        (
                            mapped.utf8 >> (8 * mapped.first_len),
                            mapped.len - mapped.first_len,
                        )
                    } else {
                        (mapped.utf8, mapped.len)
                    };
                    // Eight bytes then the unused ones dropped (a copy of known length).
                    let at = self.text.len();
                    self.text.extend_from_slice(&bytes.to_le_bytes());
                    self.text.truncate(at + usize::from(n));
                    last = mapped.last;
                }
                Kind::Nothing => {}
                Kind::Ends => {
                    // Punctuation ends the token; one that starts with it is that character
                    // alone.
                    return Some(if i == start { i + width } else { i });
                }
                Kind::Other | Kind::Unknown => return give_up(&mut self.text),
            }
            i += width;
        }
        Some(i)
    }

    /// Writes a token that has non-ASCII characters; returns where it ends in `input`.
    fn unicode_token(&mut self, input: &str, start: usize) -> usize {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut end = input.len();
        for (off, c) in input[start..].char_indices() {
            let before = scratch.len();
            if c.is_ascii() {
                let class = ASCII[c as usize];
                if class == Class::Sep {
                    end = start + off;
                    break;
                }
                scratch.push((c.to_ascii_lowercase(), class));
            } else {
                self.chars.map(c, &mut scratch);
                if scratch[before..].iter().any(|&(_, k)| k == Class::Sep) {
                    // The character is (or decomposes to) punctuation or a space.
                    scratch.truncate(before);
                    // A token never starts with a separator: step over it.
                    end = start + if off == 0 { c.len_utf8() } else { off };
                    break;
                }
            }
        }
        let mut t = &scratch[..];
        while let Some((&(_, k), rest)) = t.split_last() {
            if matches!(k, Class::Sym | Class::Drop) {
                t = rest;
            } else {
                break;
            }
        }
        while let Some((&(c, k), rest)) = t.split_first() {
            let lead = k == Class::Sym
                && may_lead(c as u8)
                && rest.iter().any(|&(_, k)| k == Class::Letter);
            if matches!(k, Class::Sym | Class::Drop) && !lead {
                t = rest;
            } else {
                break;
            }
        }
        let letters = t.iter().any(|&(_, k)| k == Class::Letter);
        let mut last = '\0';
        let mut buf = [0u8; 4];
        for &(c, k) in t {
            let out = match k {
                Class::Letter => c,
                Class::Digit | Class::Sym if letters => leet(c as u8).map_or(c, char::from),
                Class::Digit => c,
                _ => continue,
            };
            if !letters || out != last {
                // Four bytes then the unused ones dropped (a copy of known length).
                let (at, n) = (self.text.len(), out.encode_utf8(&mut buf).len());
                self.text.extend_from_slice(&buf);
                self.text.truncate(at + n);
                last = out;
            }
        }
        self.scratch = scratch;
        end
    }

    /// Records the token just written (or removes it if it came out empty), and joins runs of
    /// single letters. `letters_only`: the token was written by the ASCII-letter fast path.
    #[inline]
    fn finish_token(
        &mut self,
        input: &str,
        (start, end): (usize, usize),
        norm: usize,
        letters_only: bool,
        run: &mut Run,
    ) {
        let written = &self.text[norm..];
        if written.is_empty() {
            return;
        }
        let single = if letters_only {
            written.len() == 1
        } else {
            written.len() <= 4 && is_one_letter(written)
        };
        let gap_ok = single
            && self
                .tokens
                .last()
                .is_some_and(|prev| short_gap(&input[prev.orig_end as usize..start]));
        self.tokens.push(Token {
            norm: norm as u32,
            orig: start as u32,
            orig_end: end as u32,
        });
        self.text.push(b' ');
        if !single {
            run.len = 0;
            return;
        }
        if run.len == 0 || !gap_ok {
            *run = Run {
                len: 1,
                token: self.tokens.len() - 1,
            };
            return;
        }
        run.len += 1;
        if run.len == 3 {
            // "s u i" → "sui": rewrite the tail without spaces, collapsing repeats.
            let from = self.tokens[run.token].norm as usize;
            let tail = String::from_utf8_lossy(&self.text[from..]).into_owned();
            self.text.truncate(from);
            let mut last = '\0';
            for c in tail.chars().filter(|&c| c != ' ') {
                if c != last {
                    let mut buf = [0u8; 4];
                    self.text
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    last = c;
                }
            }
            self.text.push(b' ');
            self.tokens.truncate(run.token + 1);
            self.tokens[run.token].orig_end = end as u32;
        } else if run.len > 3 {
            // Append the newest letter to the joined word.
            let cur = self.tokens.pop().expect("just pushed");
            let letter = self.text[cur.norm as usize..self.text.len() - 1].to_vec();
            // Remove " x " → the joined word's trailing space and the letter.
            self.text.truncate(cur.norm as usize - 1);
            let joined_end = self.text.len();
            let prev_len = last_char_len(&self.text[..joined_end]);
            if self.text[joined_end - prev_len..] != letter[..] {
                self.text.extend_from_slice(&letter);
            }
            self.text.push(b' ');
            let joined = self.tokens.last_mut().expect("run has tokens");
            joined.orig_end = end as u32;
        }
    }

    /// The normalised text as a string (tokens between single spaces, outer spaces trimmed).
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text)
            .unwrap_or_default()
            .trim_matches(' ')
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// How many of the eight bytes `x` (little-endian) are ASCII letters before the first byte
/// that is not, and the bytes lower-cased (meaningful up to there). Byte-wise range checks
/// in one register: for a byte below 0x80, `(b | 0x80) - lo` keeps the high bit exactly when
/// `b >= lo`, and never borrows from the next byte.
fn letters(x: u64) -> (u64, usize) {
    let lower = (x & !HIGH) | (ONES * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'z' + 1) & !(x & HIGH);
    (lower, leading(letter))
}

/// The high bit of each byte of `x` whose low seven bits are `lo` or more.
fn at_least(x: u64, lo: u8) -> u64 {
    (x | HIGH).wrapping_sub(ONES * u64::from(lo)) & HIGH
}

/// How many bytes, from the lowest, have their high bit set in `flags` before one that has
/// not.
fn leading(flags: u64) -> usize {
    ((!flags & HIGH).trailing_zeros() / 8) as usize
}

/// The high bit of each zero byte of `v`. Exact in every byte: `(b & 0x7f) + 0x7f` sets the
/// high bit when the low seven bits are not all zero, never carrying into the next byte.
fn zero_bytes(v: u64) -> u64 {
    !(((v & !HIGH) + !HIGH) | v) & HIGH
}

/// Every bit of the lowest `n` bytes (`n` from 1 to 8).
fn low_bytes(n: usize) -> u64 {
    u64::MAX >> (64 - 8 * n)
}

/// The lowest `n` bytes of `x` without those whose high bit is set in `drop`, moved down
/// over the gaps, and how many are left.
fn without(x: u64, n: usize, mut drop: u64) -> (u64, usize) {
    let (mut out, mut len, mut from) = (0u64, 0usize, 0usize);
    loop {
        let to = if drop == 0 {
            n
        } else {
            (drop.trailing_zeros() / 8) as usize
        };
        if to > from {
            // `from` and `len` are below eight here: the shifts stay under 64.
            let piece = (x >> (8 * from)) & low_bytes(to - from);
            out |= piece << (8 * len);
            len += to - from;
        }
        if drop == 0 {
            return (out, len);
        }
        from = to + 1;
        drop &= drop - 1;
    }
}

#[derive(Default)]
struct Run {
    /// Single-letter tokens in a row, separated by short gaps.
    len: usize,
    /// Index of the run's first token.
    token: usize,
}

fn has_letter(t: &[u8]) -> bool {
    t.iter().any(|&b| ASCII[b as usize] == Class::Letter)
}

fn is_one_letter(written: &[u8]) -> bool {
    match written {
        [b] => b.is_ascii_alphabetic(),
        _ => {
            last_char_len(written) == written.len()
                && std::str::from_utf8(written)
                    .ok()
                    .and_then(|s| s.chars().next())
                    .is_some_and(char::is_alphabetic)
        }
    }
}

/// One or two separator characters, as in `s u i`, `s.u.i`, `s. u. i`.
fn short_gap(gap: &str) -> bool {
    gap.len() <= 8 && (1..=2).contains(&gap.chars().count())
}

fn last_char_len(s: &[u8]) -> usize {
    let mut n = 0;
    for &b in s.iter().rev() {
        n += 1;
        if b & 0xC0 != 0x80 {
            break;
        }
    }
    n
}

fn clamp(input: &str) -> &str {
    let max = u32::MAX as usize - 8;
    if input.len() <= max {
        return input;
    }
    let mut end = max;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    &input[..end]
}

/// The normalised form of `text`, as Lookout matches it: for operators checking what a
/// phrase will match (`lookout scan --normalized`) and for tests.
pub fn normalize(text: &str) -> String {
    let mut n = Normalized::default();
    n.normalize(text);
    n.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn tricks_table() {
        let table = [
            // (input, normalised)
            ("Kill myself", "kil myself"),
            ("K1LL   mys3lf!!", "kil myself"),
            ("$uicide", "suicide"),
            ("sh00t", "shot"),
            ("diiiie", "die"),
            ("s u i c i d e", "suicide"),
            ("s.u.i.c.i.d.e now", "suicide now"),
            ("s-u-i-c-i-d-e", "suicide"),
            ("I a m", "iam"),
            ("u r ok", "u r ok"),
            ("u r a loser", "ura loser"),
            ("ｋｉｌｌ ｍｅ", "kil me"),
            ("kіll", "kil"), // Cyrillic і
            ("ѕuісіdе", "suicide"),
            ("sui\u{200B}cide", "suicide"),
            ("sui\u{00AD}cide", "suicide"),
            ("samobójstwo", "samobojstwo"),
            ("ŻYĆ", "zyc"),
            ("złość", "zlosc"),
            ("Straße", "strase"),
            ("𝐬𝐮𝐢𝐜𝐢𝐝𝐞", "suicide"),
            ("ⓚⓘⓛⓛ", "kil"),
            ("café", "cafe"),
            ("2019 was 100% fine", "2019 was 100 fine"),
            ("— dash", "dash"),
            ("x—y", "x y"),
            ("die!", "die"),
            ("|me", "me"),
            ("$5", "5"),
            ("don't", "don t"),
            ("don’t", "don t"),
            ("خودکشی", "خودكشي"),
            ("انتحار", "انتحار"),
            ("أنتحر", "انتحر"),
            ("", ""),
            ("  ...  ", ""),
            ("a", "a"),
        ];
        for (input, want) in table {
            assert_eq!(normalize(input), want, "input {input:?}");
        }
    }

    /// The cache answers exactly as `map_char` does, cold, warm, and after other characters
    /// with the same low bits took the slot (every non-ASCII character up to U+FFFF, and the
    /// mathematical letters, twice over in an order that makes them collide).
    #[test]
    fn the_character_cache_changes_nothing() {
        let mut cache = super::CharCache::default();
        let chars: Vec<char> = (0x80u32..0x1_0000)
            .chain(0x1_D400..0x1_D800)
            .filter_map(char::from_u32)
            .collect();
        for round in 0..2 {
            for (i, &c) in chars.iter().enumerate() {
                let c = if round == 1 {
                    chars[(i * 7919) % chars.len()]
                } else {
                    c
                };
                let (mut direct, mut cached) = (Vec::new(), Vec::new());
                super::map_char(c, &mut direct);
                cache.map(c, &mut cached);
                assert_eq!(direct, cached, "{c:?} (U+{:04X}), round {round}", c as u32);
                cached.clear();
                cache.map(c, &mut cached);
                assert_eq!(direct, cached, "{c:?} again");
            }
        }
    }

    /// What `normalize` writes for `text` (through the eight-byte reading and `plain_words`)
    /// and what reading it a byte at a time writes: the text and the token table.
    fn both_ways(text: &str) -> [(Vec<u8>, Vec<super::Token>); 2] {
        [true, false].map(|by_eight| {
            let mut n = super::Normalized::default();
            n.normalize_with(text, by_eight);
            (n.text, n.tokens)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Reading letters eight bytes at a time writes what reading them one by one does:
        /// words of every length, upper and lower case, doubled letters across the eight-byte
        /// boundary, words cut by digits, leet symbols, non-ASCII letters and separators.
        #[test]
        fn letters_by_eight_agree_with_one_by_one(
            text in "([a-zA-Z]{0,20}(ll|LL|Ll|oo)?[a-zA-Z]{0,12}[ .,!$1\\-]{0,2}(é|ß|і|\u{200b}|7|@)?){0,8}"
        ) {
            let [fast, slow] = both_ways(&text);
            proptest::prop_assert_eq!(fast, slow);
        }

        /// Runs of short words (`plain_words`' kind and the kinds next to it: single letters,
        /// doubled ones, eight letters or more, a word ending in a digit, a symbol or a
        /// non-ASCII letter) between every kind of separator, ending anywhere: the tight loop
        /// writes what reading a byte at a time does.
        #[test]
        fn plain_words_agree_with_one_by_one(
            text in "([a-zA-Z]{1,9}(oo|Ee)?[a-z]{0,2}(1|\\$|é|!)?[ \t\n.,;:()'\"\\-]{1,3}){0,30}[a-z]{0,7}"
        ) {
            let [fast, slow] = both_ways(&text);
            proptest::prop_assert_eq!(fast, slow);
        }

        /// Words in other scripts, read by `letters_token` once the cache holds their
        /// characters (the text is there twice, so the second reading finds them cached):
        /// it writes what the general steps do, or leaves the word to them. Letters that
        /// map to two (`æ`, `ﬁ`), to nothing (tatweel, zero-width) and to a digit (`①`),
        /// combining marks, doubled letters, punctuation that ends a word (`،`, `—`, `’`),
        /// digits and leet symbols, at the start, inside and at the end of words.
        #[test]
        fn letters_tokens_agree_with_the_general_steps(
            words in "([a-zA-Zéółßæœﬁіѕжπاليأةـ\u{0301}\u{200b}\u{00ad}ｋ①٣،—’1$@!]{1,8}[ .,\\-]{1,2}){1,12}"
        ) {
            let text = format!("{words} {words}");
            let [fast, slow] = both_ways(&text);
            proptest::prop_assert_eq!(fast, slow);
        }

        /// Any characters at all (controls, unassigned code points, every script), twice over
        /// so that the second reading finds them learnt: both readings agree, and neither
        /// panics.
        #[test]
        fn any_text_is_read_alike(text in "(?s:.){0,40}") {
            let text = format!("{text} {text}");
            let [fast, slow] = both_ways(&text);
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    /// The words of a few languages, read by `letters_token` once their letters are cached,
    /// as the general steps read them.
    #[test]
    fn letters_tokens_in_other_scripts() {
        agree_both_ways(&[
            "samobójstwo samobójstwo złość ŻYĆ żyć",
            "انتحار أنتحر خودکشی انتحار أنتحر خودکشی، قتل",
            "ѕuісіdе kіll убить убить себя",
            "sinucidere sinucidere mă omor ă ț ș",
            "café café caféé cafe\u{0301} ﬁnal ﬁnal æsir æsir",
            "ا ن ت ح ا ر ا ن ت ح ا ر",
        ]);
    }

    /// Words that collapse to one letter (`oo`, `Ll`, eleven `u`s) among single letters are
    /// joined with them as single letters are: the tight loop leaves them to the general
    /// steps; and long words ending at a separator, a digit or a symbol.
    #[test]
    fn plain_words_leave_single_letters_to_the_general_steps() {
        agree_both_ways(&[
            "s oo i c i d e and then some more words",
            "kk ii ll mm ee myself, said the text",
            "a bb c dd e ff g hh i jj and the rest",
            "Oo oO OO oo words after them all",
            "kill   myself.  Kill-myself (k i l l) yourself",
            "s Uuuuuuuuuuu i c i d e: ten u's and one",
            "Mississippi, Tennessee1 and Connecticut$ then Worcestershire words",
        ]);
    }

    /// `letters_token` itself takes words of letters in other scripts, at their first
    /// reading, and writes what the general steps write for them (the tests above would pass
    /// if it took none); it leaves a word with a digit or a symbol, writing nothing, and stops
    /// at punctuation (a word that starts with it is that character alone).
    #[test]
    fn letters_token_takes_words_of_letters() {
        for (text, end) in [
            ("samobójstwo dalej", Some(12)),
            ("انتحار،", Some(12)),
            ("убить", Some(10)),
            ("Straße", Some(7)),
            ("cafe\u{0301}", Some(6)),
            ("«x", Some(2)),
            // A character of three bytes is taken only once the general steps cached it.
            ("—", None),
            ("k1łł", None),
            ("żyć!", None),
        ] {
            let mut n = super::Normalized::default();
            let got = n.letters_token(text, 0);
            assert_eq!(got, end, "{text:?}");
            let written = std::str::from_utf8(&n.text).unwrap();
            let want = end.map_or(String::new(), |e| normalize(&text[..e]));
            assert_eq!(written, want, "{text:?}");
        }
    }

    fn agree_both_ways(texts: &[&str]) {
        for text in texts {
            let [fast, slow] = both_ways(text);
            assert_eq!(fast, slow, "{text}");
        }
    }

    /// The eight-byte helpers, each byte value in each place.
    #[test]
    fn letters_and_zero_bytes_flag_each_byte() {
        for fill in [b'a', b'Z', 0u8, b' ', 0xff] {
            for k in 0..8 {
                for b in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[k] = b;
                    let x = u64::from_le_bytes(bytes);
                    let (lower, n) = super::letters(x);
                    let want = bytes.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                    assert_eq!(n, want, "{bytes:?}");
                    for (i, c) in bytes.iter().enumerate().take(n) {
                        assert_eq!(lower.to_le_bytes()[i], c.to_ascii_lowercase(), "{bytes:?}");
                    }
                    let zeros = super::zero_bytes(x);
                    for (i, &c) in bytes.iter().enumerate() {
                        assert_eq!(zeros & (0x80 << (8 * i)) != 0, c == 0, "{bytes:?} {i}");
                    }
                }
            }
        }
    }

    /// Dropping bytes from a word of eight: every set of dropped places, every length.
    #[test]
    fn without_drops_exactly_the_flagged_bytes() {
        let x = u64::from_le_bytes(*b"abcdefgh");
        for n in 1..=8 {
            let want: [u8; 8] = std::array::from_fn(|i| if i < n { 0xff } else { 0 });
            assert_eq!(super::low_bytes(n).to_le_bytes(), want, "{n}");
            for places in 0..1u64 << n {
                let drop = (0..8)
                    .filter(|i| places >> i & 1 == 1)
                    .fold(0, |d, i| d | 0x80 << (8 * i));
                let want: Vec<u8> = (0..n)
                    .filter(|i| places >> i & 1 == 0)
                    .map(|i| b"abcdefgh"[i])
                    .collect();
                let (out, len) = super::without(x, n, drop);
                assert_eq!(&out.to_le_bytes()[..len], &want[..], "{n} {places:08b}");
                assert_eq!(
                    out.checked_shr(8 * len as u32).unwrap_or(0),
                    0,
                    "{n} {places:08b}: bytes past the end"
                );
            }
        }
    }

    #[test]
    fn long_runs_of_single_letters_stay_linear() {
        // Joining appends one letter at a time; a quadratic rewrite would not finish.
        let text = "a b ".repeat(200_000);
        assert_eq!(normalize(&text).len(), 400_000);
        assert_eq!(normalize(&"a ".repeat(400_000)), "a");
    }
}
