//! A SentencePiece unigram tokenizer: reads a `.model` file (protobuf), normalises text with
//! the model's precompiled character map (a darts-clone double-array trie, as SentencePiece's
//! `nmt_nfkc` rules are shipped), and segments it with the unigram model's Viterbi search.
//!
//! Only what the USE multilingual v3 vocabulary uses is implemented: unigram pieces with
//! scores, the precompiled map, a dummy prefix, escaped and collapsed whitespace. Reading is
//! checked: a truncated or malformed file is an error naming what is wrong, never a panic.

use std::collections::HashMap;

use crate::ModelError;

/// Ids USE multilingual v3 adds around every text.
pub(crate) const UNK: u32 = 0;
pub(crate) const BOS: u32 = 1;
pub(crate) const EOS: u32 = 2;

/// Ids of the unknown piece and the markers around every text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Specials {
    pub unk: u32,
    pub bos: u32,
    pub eos: u32,
}

/// SentencePiece's escaped space, U+2581.
const SPACE: &str = "\u{2581}";

/// Piece types in the model file that never come out of segmentation.
const TYPE_UNKNOWN: u64 = 2;
const TYPE_CONTROL: u64 = 3;

/// A loaded tokenizer.
pub struct Tokenizer {
    scores: Vec<f32>,
    /// Every piece and every prefix of a piece: the value is the piece id + 1, or 0 for a
    /// prefix that is not a piece itself (the walk goes on past it).
    prefixes: HashMap<Box<str>, u32>,
    /// Longest piece, in characters.
    max_chars: usize,
    unk_score: f64,
    specials: Specials,
    normalizer: Normalizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("pieces", &self.scores.len())
            .finish()
    }
}

fn bad(what: impl Into<String>) -> ModelError {
    ModelError::Format {
        file: "sp.model".into(),
        message: what.into(),
    }
}

/// One field of a protobuf message: its number and its value.
enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Other,
}

/// The fields of one protobuf message, in order; an error where the bytes end early.
fn fields(mut data: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ModelError> {
    fn varint(data: &mut &[u8]) -> Result<u64, ModelError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data
                .split_first()
                .ok_or_else(|| bad("a number runs past the end of the file"))?;
            *data = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("a number is longer than ten bytes"))
    }
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], ModelError> {
        if data.len() < n {
            return Err(bad("a field runs past the end of the file"));
        }
        let (head, rest) = data.split_at(n);
        *data = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = varint(&mut data)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut data)?),
            1 => {
                take(&mut data, 8)?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(varint(&mut data)?)
                    .map_err(|_| bad("a field length does not fit in memory"))?;
                Field::Bytes(take(&mut data, len)?)
            }
            5 => {
                let b = take(&mut data, 4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(bad(format!("unsupported protobuf wire type {w}"))),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

impl Tokenizer {
    /// Reads a SentencePiece `.model` file's bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Tokenizer, ModelError> {
        let mut pieces = Vec::new();
        let mut charsmap: &[u8] = &[];
        for (number, field) in fields(data)? {
            match (number, field) {
                // ModelProto.pieces
                (1, Field::Bytes(piece)) => {
                    let id = pieces.len();
                    let (mut text, mut score, mut kind) = (None, 0.0f32, 1u64);
                    for (n, f) in fields(piece)? {
                        match (n, f) {
                            (1, Field::Bytes(t)) => {
                                text =
                                    Some(std::str::from_utf8(t).map_err(|_| {
                                        bad(format!("piece {id} is not valid UTF-8"))
                                    })?)
                            }
                            (2, Field::Fixed32(s)) => score = f32::from_bits(s),
                            (3, Field::Varint(k)) => kind = k,
                            _ => {}
                        }
                    }
                    let text = text.ok_or_else(|| bad(format!("piece {id} has no text")))?;
                    pieces.push((text, score, kind != TYPE_UNKNOWN && kind != TYPE_CONTROL));
                }
                // ModelProto.normalizer_spec.precompiled_charsmap
                (3, Field::Bytes(spec)) => {
                    for (n, f) in fields(spec)? {
                        if let (2, Field::Bytes(map)) = (n, f) {
                            charsmap = map;
                        }
                    }
                }
                _ => {}
            }
        }
        let normalizer = Normalizer::trie(charsmap)?;
        if pieces.len() <= EOS as usize {
            return Err(bad("the vocabulary has fewer than three pieces"));
        }
        let specials = Specials {
            unk: UNK,
            bos: BOS,
            eos: EOS,
        };
        Tokenizer::from_pieces(pieces, specials, normalizer)
    }

    /// A tokenizer from its pieces in id order: (text, score, whether segmentation may
    /// produce it).
    pub(crate) fn from_pieces<'a>(
        pieces: impl IntoIterator<Item = (&'a str, f32, bool)>,
        specials: Specials,
        normalizer: Normalizer,
    ) -> Result<Tokenizer, ModelError> {
        let mut scores = Vec::new();
        let mut prefixes: HashMap<Box<str>, u32> = HashMap::new();
        let mut max_chars = 0;
        for (text, score, segmentable) in pieces {
            let id = u32::try_from(scores.len()).map_err(|_| bad("too many pieces"))?;
            scores.push(score);
            if !segmentable || text.is_empty() {
                continue;
            }
            let mut chars = 0;
            for (i, _) in text.char_indices().skip(1) {
                prefixes.entry(text[..i].into()).or_insert(0);
                chars += 1;
            }
            max_chars = max_chars.max(chars + 1);
            prefixes.insert(text.into(), id + 1);
        }
        let n = scores.len();
        if [specials.unk, specials.bos, specials.eos]
            .iter()
            .any(|&s| s as usize >= n)
        {
            return Err(bad("a marker id is not a piece"));
        }
        let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
        Ok(Tokenizer {
            unk_score: f64::from(min) - 10.0,
            scores,
            prefixes,
            max_chars,
            specials,
            normalizer,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.scores.len()
    }

    /// The text as the model sees it: normalised, spaces escaped as `▁`.
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    /// Piece ids for `text`, with the begin and end markers around them.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        ids.clear();
        ids.push(self.specials.bos);
        let normalized = self.normalize(text);
        if normalized.is_empty() {
            ids.push(self.specials.unk);
        } else {
            self.viterbi(&normalized, ids);
        }
        ids.push(self.specials.eos);
    }

    /// The best segmentation under the unigram model: for each position, the best-scoring
    /// piece ending there, scanning left to right (ties go to the earlier start, as in
    /// SentencePiece); a character no piece covers becomes one unknown piece.
    fn viterbi(&self, s: &str, ids: &mut Vec<u32>) {
        let bounds: Vec<usize> = s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect();
        let len = bounds.len() - 1;
        let mut best = vec![f64::NEG_INFINITY; len + 1];
        let mut start_of = vec![0usize; len + 1];
        let unk = self.specials.unk;
        let mut piece_of = vec![unk; len + 1];
        best[0] = 0.0;
        for i in 0..len {
            let base = best[i];
            let stop = (i + self.max_chars).min(len);
            let mut single = false;
            for j in i + 1..=stop {
                let Some(&v) = self.prefixes.get(&s[bounds[i]..bounds[j]]) else {
                    break;
                };
                if v == 0 {
                    continue;
                }
                let score = base + f64::from(self.scores[(v - 1) as usize]);
                if score > best[j] {
                    best[j] = score;
                    start_of[j] = i;
                    piece_of[j] = v - 1;
                }
                single |= j == i + 1;
            }
            if !single {
                let score = base + self.unk_score;
                if score > best[i + 1] {
                    best[i + 1] = score;
                    start_of[i + 1] = i;
                    piece_of[i + 1] = unk;
                }
            }
        }
        let first = ids.len();
        let mut p = len;
        while p > 0 {
            ids.push(piece_of[p]);
            p = start_of[p];
        }
        ids[first..].reverse();
    }
}

/// How text is normalised before segmentation.
pub(crate) enum Normalizer {
    Trie(Trie),
    /// Each character replaced by its entry (other characters kept), runs of spaces made one,
    /// a space put before the text unless it starts with one, spaces escaped as `▁` (as the
    /// XLM-RoBERTa tokenizer of multilingual-e5 does).
    Chars(HashMap<char, Box<str>>),
}

impl Normalizer {
    fn trie(charsmap: &[u8]) -> Result<Normalizer, ModelError> {
        Trie::new(charsmap).map(Normalizer::Trie)
    }

    pub(crate) fn chars(map: HashMap<char, Box<str>>) -> Normalizer {
        Normalizer::Chars(map)
    }

    fn normalize(&self, text: &str) -> String {
        match self {
            Normalizer::Trie(t) => t.normalize(text),
            Normalizer::Chars(map) => {
                let mut out = String::with_capacity(text.len() + 8);
                let mut prev_space = false;
                let mut push = |c: char, out: &mut String| {
                    if c == ' ' {
                        if !prev_space {
                            out.push_str(SPACE);
                        }
                    } else {
                        if out.is_empty() {
                            out.push_str(SPACE);
                        }
                        out.push(c);
                    }
                    prev_space = c == ' ';
                };
                for c in text.chars() {
                    match map.get(&c) {
                        Some(rep) => rep.chars().for_each(|r| push(r, &mut out)),
                        None => push(c, &mut out),
                    }
                }
                out
            }
        }
    }
}

/// SentencePiece's normaliser over a precompiled map: at each position the longest key of
/// the trie that matches is replaced by its value; other characters are kept.
pub(crate) struct Trie {
    units: Vec<u32>,
    /// NUL-terminated replacement strings, indexed by the trie's values.
    replacements: Vec<u8>,
}

impl Trie {
    fn new(charsmap: &[u8]) -> Result<Trie, ModelError> {
        if charsmap.is_empty() {
            return Ok(Trie {
                units: Vec::new(),
                replacements: Vec::new(),
            });
        }
        let err = || bad("the normalisation map is truncated");
        let size = charsmap.get(..4).ok_or_else(err)?;
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let trie = charsmap.get(4..4 + size).ok_or_else(err)?;
        if size % 4 != 0 || size == 0 {
            return Err(bad("the normalisation map's trie is not whole units"));
        }
        let units = trie
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Trie {
            units,
            replacements: charsmap[4 + size..].to_vec(),
        })
    }

    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
    }

    /// The replacement for the longest key at the start of `data`, and how many bytes it
    /// covers; `None` where no key matches.
    fn longest(&self, data: &[u8]) -> Option<(&[u8], usize)> {
        let mut node = Self::offset(*self.units.first()?);
        let mut found = None;
        for (i, &c) in data.iter().enumerate() {
            node ^= usize::from(c);
            let unit = *self.units.get(node)?;
            if unit & 0x8000_00ff != u32::from(c) {
                break;
            }
            node ^= Self::offset(unit);
            if unit & 0x100 != 0 {
                let value = (*self.units.get(node)? & 0x7fff_ffff) as usize;
                found = Some((value, i + 1));
            }
        }
        let (value, len) = found?;
        let rest = self.replacements.get(value..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some((&rest[..end], len))
    }

    /// The normalised form of the text at `pos`, and how many bytes of it that consumes.
    fn prefix<'a>(&'a self, text: &'a str, pos: usize) -> (&'a str, usize) {
        if let Some((rep, len)) = self.longest(&text.as_bytes()[pos..]) {
            // A replacement must end on a character boundary of the input and be UTF-8.
            if text.is_char_boundary(pos + len) {
                if let Ok(rep) = std::str::from_utf8(rep) {
                    return (rep, len);
                }
            }
        }
        let len = text[pos..].chars().next().map_or(1, char::len_utf8);
        (&text[pos..pos + len], len)
    }

    fn normalize(&self, text: &str) -> String {
        let mut pos = 0;
        while pos < text.len() {
            let (p, adv) = self.prefix(text, pos);
            if p != " " {
                break;
            }
            pos += adv;
        }
        let mut out = String::with_capacity(text.len() + 8);
        if pos >= text.len() {
            return out;
        }
        out.push_str(SPACE);
        let mut prev_space = true;
        while pos < text.len() {
            let (mut p, adv) = self.prefix(text, pos);
            pos += adv;
            if prev_space {
                p = p.trim_start_matches(' ');
            }
            if p.is_empty() {
                continue;
            }
            if p.contains(' ') {
                for c in p.chars() {
                    if c == ' ' {
                        out.push_str(SPACE);
                    } else {
                        out.push(c);
                    }
                }
                prev_space = p.ends_with(' ');
            } else {
                out.push_str(p);
                prev_space = false;
            }
        }
        while out.ends_with(SPACE) {
            out.truncate(out.len() - SPACE.len());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_files_are_errors() {
        for (data, want) in [
            (&b""[..], "fewer than three pieces"),
            (&[0x0a, 0x05, 0x0a][..], "runs past the end"),
            (&[0x0a][..], "runs past the end"),
            (&[0x0b][..], "wire type 3"),
            (&[0x0a, 0x02, 0x0a, 0x00][..], "fewer than three pieces"),
            (&[0x0a, 0x02, 0x15, 0x00][..], "runs past the end"),
            (&[0x0a, 0x00][..], "piece 0 has no text"),
            (&[0x1a, 0x03, 0x12, 0x01, 0x01][..], "truncated"),
        ] {
            let e = Tokenizer::from_bytes(data).unwrap_err().to_string();
            assert!(e.contains(want), "{data:?}: {e}");
        }
    }

    #[test]
    fn without_a_map_spaces_are_escaped_and_collapsed() {
        // Pieces: <unk>, <s>, </s> (control), then ▁a, b, ▁ab.
        let mut model = Vec::new();
        for (text, score, kind) in [
            ("<unk>", 0.0f32, 2u8),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("\u{2581}a", -1.0, 1),
            ("b", -2.0, 1),
            ("\u{2581}ab", -1.5, 1),
        ] {
            let mut piece = vec![0x0a, text.len() as u8];
            piece.extend_from_slice(text.as_bytes());
            piece.push(0x15);
            piece.extend_from_slice(&score.to_le_bytes());
            piece.extend_from_slice(&[0x18, kind]);
            model.push(0x0a);
            model.push(piece.len() as u8);
            model.extend_from_slice(&piece);
        }
        let t = Tokenizer::from_bytes(&model).unwrap();
        assert_eq!(t.normalize("  a   b  "), "\u{2581}a\u{2581}b");
        let mut ids = Vec::new();
        t.encode("ab", &mut ids);
        assert_eq!(ids, [BOS, 5, EOS]);
        t.encode("a b", &mut ids);
        // ▁a ▁ b: "▁" alone is no piece, so it is unknown.
        assert_eq!(ids, [BOS, 3, UNK, 4, EOS]);
        t.encode("<s>", &mut ids);
        assert!(ids[1..ids.len() - 1].iter().all(|&i| i == UNK), "{ids:?}");
        t.encode("", &mut ids);
        assert_eq!(ids, [BOS, UNK, EOS]);
    }
}
