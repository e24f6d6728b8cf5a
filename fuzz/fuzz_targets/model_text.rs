//! The model stage on hostile input: any bytes as a SentencePiece model file or a classifier
//! head file (an error, never a panic), and any text through the real tokenizer and encoder
//! (`scripts/fetch-model`; LOOKOUT_MODEL_DIR overrides where): ids in range between the begin
//! and end markers, sorted finite n-gram features, and (one input in 65,536, picked by a hash
//! of its bytes: the forward pass is slow) a finite unit-length embedding.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lookout_model::{Encoder, Features, Head, DEFAULT_DIR};

fn encoder() -> Option<&'static Encoder> {
    static E: OnceLock<Option<Encoder>> = OnceLock::new();
    E.get_or_init(|| {
        let dir = std::env::var_os("LOOKOUT_MODEL_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(DEFAULT_DIR),
            PathBuf::from,
        );
        Encoder::load(&dir).ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let _ = Encoder::from_bytes(data);
    let _ = Head::read("fuzz", data);
    let Some(encoder) = encoder() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let mut ids = Vec::new();
    encoder.token_ids(&text, &mut ids);
    // <s> query-prefix... </s>, at most the encoder's window.
    assert!(ids.len() >= 3 && ids[0] == 0 && ids[ids.len() - 1] == 2, "{ids:?}");
    assert!(ids.len() <= lookout_model::MAX_TOKENS);
    assert!(ids.iter().all(|&i| (i as usize) < encoder.tokenizer().vocab_size()));
    let mut sparse = Vec::new();
    lookout_model::features::sparse(&text, &mut sparse);
    assert!(sparse.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(sparse
        .iter()
        .all(|s| s.1.is_finite() && s.1 > 0.0 && (s.0 as usize) < lookout_model::features::BUCKETS));
    // The encoder's forward pass is slow: one input in 65,536 goes through it, so that the
    // tokenizer and feature paths get millions of runs (perf: at one in 1,024, and still at
    // one in 8,192 once the corpus held texts of hundreds of tokens, the forward pass took ~70%
    // of the time; runs held ~475 and ~1,000 executions/s). Its work depends on the text only
    // through the token ids and their count, checked above on every input. The pick is FNV-1a
    // of the bytes: the earlier `h * 31 + b` from 0 picked every all-zero input, which the
    // fuzzer makes often and long (half of a run's time went to them).
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    if hash >> 48 == 0x4c6f {
        let f = &Features::of_texts(encoder, &[&text])[0];
        let norm: f32 = f.dense.iter().map(|v| v * v).sum();
        assert!(f.dense.iter().all(|v| v.is_finite()) && (norm - 1.0).abs() < 1e-3, "{norm}");
    }
});
