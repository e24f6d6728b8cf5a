//! The Rust encoder against the Python package's own output on the same texts
//! (`scripts/model-reference.py` wrote the fixture), with the real weights.

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
        encoder.tokenizer().encode(text, &mut ids);
        assert_eq!(ids, want_ids, "tokens of {text:?}");
        let want: Vec<f32> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = encoder.encode(text);
        let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9999, "embedding of {text:?}: cosine {cos}");
    }
}
