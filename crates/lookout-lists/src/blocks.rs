//! Bytes searched 16 at a time: a block is one vector (the `wide` crate's `u8x16`; the
//! workspace forbids `unsafe`, so not `core::arch`), a class of bytes is a function that marks
//! each lane of a block in the class, and a block's marks are read as 16 bits, bit 0 for its
//! first byte. For the short texts of a request (a host, a path, a file name, a word of a
//! line) this costs a few instructions a block where memchr's set-up or a byte loop costs
//! tens to hundreds (callgrind figures in `NormUrl`'s and `lookout check`'s comments).
//!
//! The last piece of a text, fewer than 16 bytes, is read as a whole block where the bytes
//! around it allow (the bytes already judged, or that are not the text's, shifted or masked
//! out), and copied into a padded block only when the whole text is shorter than 16 bytes.

pub use wide::u8x16;

/// The class of the one byte `b`.
pub fn byte(b: u8) -> impl Fn(u8x16) -> u8x16 + Copy {
    move |v| v.simd_eq(u8x16::from(b))
}

/// The lanes of `v` that are at most `c` as unsigned bytes: a minimum compared for equality,
/// two instructions (SSE2 compares bytes as signed numbers).
#[inline(always)]
pub fn at_most(v: u8x16, c: u8) -> u8x16 {
    v.min(u8x16::from(c)).simd_eq(v)
}

/// Bit `i` set where byte `i` of `block` is in `class`.
#[inline(always)]
fn marks(block: &[u8; 16], class: &impl Fn(u8x16) -> u8x16) -> u32 {
    class(u8x16::from(*block)).to_bitmask()
}

/// Calls `f` with where each block of `text[..len]` starts and the marks of its bytes in
/// `class`, in order, until `f` returns true; returns that block's start and marks. The last
/// block may be shorter than 16 bytes (its marks have no bit past `len`); what follows `len`
/// in `text` may be read, never marked.
#[inline(always)]
pub fn each(
    text: &[u8],
    len: usize,
    class: impl Fn(u8x16) -> u8x16,
    mut f: impl FnMut(usize, u32) -> bool,
) -> Option<(usize, u32)> {
    let bytes = &text[..len];
    let mut blocks = bytes.chunks_exact(16);
    for (k, b) in (&mut blocks).enumerate() {
        let m = marks(b.try_into().expect("16 bytes"), &class);
        if f(k * 16, m) {
            return Some((k * 16, m));
        }
    }
    let left = blocks.remainder();
    if left.is_empty() {
        return None;
    }
    let m = if let Some(last) = bytes.last_chunk::<16>() {
        // The text's last 16 bytes, those already judged shifted out.
        marks(last, &class) >> (16 - left.len())
    } else if let Some(first) = text.first_chunk::<16>() {
        marks(first, &class) & ((1 << len) - 1)
    } else {
        let mut first = [0; 16];
        first[..left.len()].copy_from_slice(left);
        marks(&first, &class) & ((1 << left.len()) - 1)
    };
    let at = len - left.len();
    f(at, m).then_some((at, m))
}

/// Where the first byte of `text` in `class` is.
#[inline(always)]
pub fn find(text: &[u8], class: impl Fn(u8x16) -> u8x16) -> Option<usize> {
    each(text, text.len(), class, |_, m| m != 0).map(|(at, m)| at + m.trailing_zeros() as usize)
}

/// How many bytes of `text[..len]` are in `class`.
#[inline(always)]
pub fn count(text: &[u8], len: usize, class: impl Fn(u8x16) -> u8x16) -> usize {
    let mut n = 0;
    each(text, len, class, |_, m| {
        n += m.count_ones() as usize;
        false
    });
    n
}

/// Where the last byte of `text[..len]` in `class` is, looked for from the end (the first
/// piece read as the first 16 bytes of `text` where `text` has them).
#[inline(always)]
pub fn rfind(text: &[u8], len: usize, class: impl Fn(u8x16) -> u8x16) -> Option<usize> {
    let bytes = &text[..len];
    let mut blocks = bytes.rchunks_exact(16);
    let mut end = len;
    for b in &mut blocks {
        let m = marks(b.try_into().expect("16 bytes"), &class);
        if m != 0 {
            return Some(end - 16 + (31 - m.leading_zeros() as usize));
        }
        end -= 16;
    }
    let left = blocks.remainder();
    if left.is_empty() {
        return None;
    }
    let m = match text.first_chunk::<16>() {
        Some(first) => marks(first, &class),
        None => {
            let mut first = [0; 16];
            first[..left.len()].copy_from_slice(left);
            marks(&first, &class)
        }
    } & ((1 << left.len()) - 1);
    (m != 0).then(|| 31 - m.leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// `find` and `rfind` find what memchr and memrchr find, and `count` counts what a
        /// byte loop counts, in any leading part of texts of every length around a block's.
        #[test]
        fn blocks_agree_with_memchr_and_a_loop(
            text in proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'a'), Just(0), any::<u8>()], 0..70),
            cut in 0usize..70,
        ) {
            let slash = byte(b'/');
            prop_assert_eq!(find(&text, slash), memchr::memchr(b'/', &text), "{:?}", text);
            let len = cut.min(text.len());
            let want = text[..len].iter().filter(|&&b| b == b'/').count();
            prop_assert_eq!(count(&text, len, slash), want, "{:?} {}", text, len);
            let want = memchr::memrchr(b'/', &text[..len]);
            prop_assert_eq!(rfind(&text, len, slash), want, "{:?} {}", text, len);
            // A class that holds the padding's zero byte: padding never marks.
            let zero = byte(0);
            prop_assert_eq!(find(&text[..len], zero), memchr::memchr(0, &text[..len]), "{:?} {}", text, len);
            prop_assert_eq!(rfind(&text, len, zero), memchr::memrchr(0, &text[..len]), "{:?} {}", text, len);
        }
    }
}
