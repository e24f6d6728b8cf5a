//! The labelled corpora shipped with Lookout: the training corpus the built-in head is
//! trained on, and the held-out corpora it is measured on (never trained or tuned on).

use lookout_scan::{parse_corpus, Sample};

macro_rules! corpus {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../lookout-scan/corpus/", $name)))),*]
    };
}

/// Training files: the phrase libraries' tuning corpus and the model stage's corpus.
pub const TRAINING: &[(&str, &str)] = corpus!(
    "tune.tsv",
    "train/en.tsv",
    "train/pl.tsv",
    "train/ur.tsv",
    "train/ar.tsv",
    "train/ro.tsv",
    "train/cy.tsv",
    "train/es.tsv",
    "train/pt.tsv",
    "train/everyday.tsv",
    "train/everyday-2.tsv",
    "train/everyday-3.tsv",
    "train/danger-2.tsv",
    "train/more-languages.tsv",
    "train/methods.tsv",
);

/// Held-out files: report figures from these only.
pub const HELDOUT: &[(&str, &str)] = corpus!(
    "heldout.tsv",
    "heldout-2.tsv",
    "heldout-3.tsv",
    "heldout-4.tsv",
    "heldout-5.tsv"
);

fn parse_all(files: &[(&str, &str)]) -> Vec<Sample> {
    files
        .iter()
        .flat_map(|(name, text)| {
            parse_corpus(name, text).unwrap_or_else(|e| panic!("shipped corpus: {e}"))
        })
        .collect()
}

/// The built-in training samples.
pub fn training() -> Vec<Sample> {
    parse_all(TRAINING)
}

/// The built-in held-out samples.
pub fn heldout() -> Vec<Sample> {
    parse_all(HELDOUT)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn shipped_corpora_parse_and_do_not_overlap() {
        let train = super::training();
        let held = super::heldout();
        assert!(
            train.len() + held.len() >= 2000,
            "{}",
            train.len() + held.len()
        );
        let key = |t: &str| lookout_scan::normalize(t);
        let seen: HashSet<String> = train.iter().map(|s| key(&s.text)).collect();
        let leaked: Vec<&str> = held
            .iter()
            .filter(|s| seen.contains(&key(&s.text)))
            .map(|s| s.text.as_str())
            .collect();
        assert!(
            leaked.is_empty(),
            "held-out lines also in training: {leaked:?}"
        );
    }
}
