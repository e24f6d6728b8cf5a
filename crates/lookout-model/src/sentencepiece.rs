//! A SentencePiece unigram tokenizer as XLM-RoBERTa (and so multilingual-e5) uses it: each
//! character replaced through the model's normalisation map, runs of spaces made one, a space
//! put before the text, spaces escaped as `▁`, then the unigram model's Viterbi search over
//! the pieces. Built from the pieces and map the encoder's file carries ([`crate::Encoder`]
//! reads them, checked); segmentation never fails: a character no piece covers becomes the
//! unknown piece.

use std::collections::HashMap;

use crate::ModelError;

/// Ids of the unknown piece and the markers around every text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Specials {
    pub unk: u32,
    pub bos: u32,
    pub eos: u32,
}

/// SentencePiece's escaped space, U+2581.
const SPACE: &str = "\u{2581}";

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
        file: crate::WEIGHTS.into(),
        message: what.into(),
    }
}

impl Tokenizer {
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

/// Each character replaced by its entry in the map (other characters kept), runs of spaces
/// made one, a space put before the text unless it starts with one, spaces escaped as `▁`.
pub(crate) struct Normalizer(HashMap<char, Box<str>>);

impl Normalizer {
    pub(crate) fn new(map: HashMap<char, Box<str>>) -> Normalizer {
        Normalizer(map)
    }

    fn normalize(&self, text: &str) -> String {
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
            match self.0.get(&c) {
                Some(rep) => rep.chars().for_each(|r| push(r, &mut out)),
                None => push(c, &mut out),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let pieces = [
            ("<s>", 0.0, false),
            ("</s>", 0.0, false),
            ("<unk>", 0.0, false),
            ("\u{2581}a", -1.0, true),
            ("b", -2.0, true),
            ("\u{2581}ab", -1.5, true),
            ("\u{2581}", -3.0, true),
        ];
        let map = HashMap::from([('\t', " ".into()), ('Ａ', "a".into()), ('\u{1}', "".into())]);
        let specials = Specials {
            bos: 0,
            eos: 1,
            unk: 2,
        };
        Tokenizer::from_pieces(pieces, specials, Normalizer::new(map)).unwrap()
    }

    #[test]
    fn normalises_and_segments() {
        let t = tokenizer();
        for (text, normal, want) in [
            ("ab", "▁ab", &[0, 5, 1][..]),
            ("a b", "▁a▁b", &[0, 3, 6, 4, 1]),
            ("  a \t b", "▁a▁b", &[0, 3, 6, 4, 1]),
            ("Ａb", "▁ab", &[0, 5, 1]),
            ("a\u{1}b", "▁ab", &[0, 5, 1]),
            ("x", "▁x", &[0, 6, 2, 1]),
            ("<s>", "▁<s>", &[0, 6, 2, 2, 2, 1]),
            ("", "", &[0, 2, 1]),
        ] {
            assert_eq!(t.normalize(text), normal, "{text:?}");
            let mut ids = Vec::new();
            t.encode(text, &mut ids);
            assert_eq!(ids, want, "{text:?}");
        }
    }

    #[test]
    fn a_marker_outside_the_pieces_is_an_error() {
        let specials = Specials {
            bos: 0,
            eos: 1,
            unk: 9,
        };
        let e = Tokenizer::from_pieces(
            [("a", 0.0, true), ("b", 0.0, true)],
            specials,
            Normalizer::new(HashMap::new()),
        );
        assert!(e.unwrap_err().to_string().contains("marker id"));
    }
}
