//! Hashed n-gram features of a text's normalised form: words, word pairs and character
//! 3- to 5-grams inside words. They let the head learn spellings, leetspeak (undone by
//! `lookout_scan::normalize`) and languages or scripts the encoder has few pieces for
//! (Welsh, Romanian, Roman Urdu, Urdu script), from the training corpus.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Number of hash buckets (2^17): the head's sparse weights per category.
pub const BUCKETS: usize = 1 << 17;
/// Characters of normalised text that are featurised (longer texts are split by the caller).
const MAX_CHARS: usize = 4096;

const SEED_WORD: u64 = 1;
const SEED_PAIR: u64 = 2;
const SEED_GRAM: u64 = 3;

/// Sparse features of `text`: sorted bucket indices with weights, L2-normalised. Empty
/// where the text has no word characters.
pub fn sparse(text: &str, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let mut cut = text.len().min(MAX_CHARS * 4);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let normalized = lookout_scan::normalize(&text[..cut]);
    let mut end = normalized.len();
    if let Some((i, _)) = normalized.char_indices().nth(MAX_CHARS) {
        end = i;
    }
    let normalized = &normalized[..end];
    let bucket = |h: u64| (h as usize & (BUCKETS - 1)) as u32;
    let mut prev: Option<&str> = None;
    let mut padded = String::new();
    let mut bounds = Vec::new();
    for word in normalized
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push((bucket(xxh3_64_with_seed(word.as_bytes(), SEED_WORD)), 1.0));
        if let Some(p) = prev {
            let mut pair = Vec::with_capacity(p.len() + word.len() + 1);
            pair.extend_from_slice(p.as_bytes());
            pair.push(b' ');
            pair.extend_from_slice(word.as_bytes());
            out.push((bucket(xxh3_64_with_seed(&pair, SEED_PAIR)), 1.0));
        }
        prev = Some(word);
        padded.clear();
        padded.push('<');
        padded.push_str(word);
        padded.push('>');
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(i, _)| i));
        bounds.push(padded.len());
        let chars = bounds.len() - 1;
        for n in 3..=5 {
            if chars < n {
                break;
            }
            for s in 0..=chars - n {
                let gram = &padded.as_bytes()[bounds[s]..bounds[s + n]];
                out.push((bucket(xxh3_64_with_seed(gram, SEED_GRAM + n as u64)), 0.5));
            }
        }
    }
    out.sort_unstable_by_key(|f| f.0);
    let mut merged: Vec<(u32, f32)> = Vec::with_capacity(out.len());
    for &(i, v) in out.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 += v,
            _ => merged.push((i, v)),
        }
    }
    let norm = merged.iter().map(|f| f.1 * f.1).sum::<f32>().sqrt();
    if norm > 0.0 {
        for f in &mut merged {
            f.1 /= norm;
        }
    }
    *out = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_normalised_and_sorted() {
        let mut f = Vec::new();
        for text in ["", "   ", "!!!", "😀😀"] {
            sparse(text, &mut f);
            assert!(f.is_empty(), "{text:?}");
        }
        sparse("I want to d1e, i want to die", &mut f);
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        let norm: f32 = f.iter().map(|x| x.1 * x.1).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        // Leetspeak and case are undone before hashing.
        let mut g = Vec::new();
        sparse("i want to die i want to die", &mut g);
        assert_eq!(f, g);
        // Any script, huge input: bounded work, no panic.
        sparse(&"مجھے مرنا ہے ".repeat(100_000), &mut f);
        assert!(!f.is_empty());
    }
}
