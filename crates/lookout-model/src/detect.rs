//! The two stages together. The phrase stage is fast, explainable and edited by the
//! organisation; the model adds what the phrases miss and judges borderline phrase hits.
//!
//! - A phrase finding of danger severity always stands (the model cannot hide it).
//! - A phrase finding below danger (a borderline hit) stands unless the model gives its
//!   category a score under `veto`: then it is dropped as an innocent use of the words.
//!   Where the model scores it at or above `threshold` and its danger score is at or above
//!   `danger`, it is raised to danger.
//! - A category the phrases did not find, scored at or above `threshold`, is a model finding:
//!   danger where the danger score reaches `danger`, caution otherwise. Where no category
//!   reaches it but the text's "risky" score does, the top category is reported (the text is
//!   risky; which risk is less sure).

use lookout_scan::{Finding, Risk, Severity};
use serde::{Deserialize, Serialize};

use crate::Scores;

/// Which stage found something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Phrase,
    Model,
    Both,
}

impl Stage {
    pub fn slug(self) -> &'static str {
        match self {
            Stage::Phrase => "phrase",
            Stage::Model => "model",
            Stage::Both => "both",
        }
    }
}

/// Score thresholds for combining the stages (calibrated scores, 0 to 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub threshold: f32,
    pub danger: f32,
    pub veto: f32,
    /// "Risky" score at or above which the top category is reported even though no
    /// category reaches `threshold` (above 1: never).
    pub gate: f32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            threshold: 0.5,
            danger: 0.5,
            veto: 0.02,
            gate: 0.8,
        }
    }
}

/// One category found in a text, by either stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub risk: Risk,
    pub severity: Severity,
    pub stage: Stage,
    /// The phrase stage's finding, where it found this category.
    pub phrase: Option<Finding>,
    /// The model's calibrated score for the category, where the model read the text.
    pub score: Option<f32>,
    /// The model's calibrated danger score.
    pub danger: Option<f32>,
}

/// What both stages found, most severe first. Without scores (the model did not read the
/// text) the phrase findings stand as they are.
pub fn combine(phrase: Vec<Finding>, scores: Option<&Scores>, policy: &Policy) -> Vec<Detection> {
    let mut out = Vec::new();
    let Some(scores) = scores else {
        return phrase
            .into_iter()
            .map(|f| Detection {
                risk: f.risk,
                severity: f.severity,
                stage: Stage::Phrase,
                phrase: Some(f),
                score: None,
                danger: None,
            })
            .collect();
    };
    let (top, _) = scores.top();
    let gate = scores.risky >= policy.gate.max(policy.threshold)
        && Risk::ALL.iter().all(|r| scores.risk(*r) < policy.threshold);
    for risk in Risk::ALL {
        let score = scores.risk(risk);
        let model_severity = (score >= policy.threshold || (gate && risk == top)).then_some(
            if scores.danger >= policy.danger {
                Severity::Danger
            } else {
                Severity::Caution
            },
        );
        let found = phrase.iter().find(|f| f.risk == risk).cloned();
        let (severity, stage) = match (&found, model_severity) {
            (Some(f), _) if f.severity == Severity::Danger => (
                f.severity,
                if model_severity.is_some() {
                    Stage::Both
                } else {
                    Stage::Phrase
                },
            ),
            (Some(_), None) if score < policy.veto => continue,
            (Some(f), None) => (f.severity, Stage::Phrase),
            (Some(f), Some(m)) => (f.severity.max(m), Stage::Both),
            (None, Some(m)) => (m, Stage::Model),
            (None, None) => continue,
        };
        out.push(Detection {
            risk,
            severity,
            stage,
            phrase: found,
            score: Some(score),
            danger: Some(scores.danger),
        });
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(risk: Risk, severity: Severity) -> Finding {
        Finding {
            risk,
            severity,
            score: 50,
            matches: Vec::new(),
        }
    }

    fn scores(top: Option<(Risk, f32)>, danger: f32, risky: f32) -> Scores {
        let mut risks = [0.01; 12];
        if let Some((r, v)) = top {
            risks[Risk::ALL.iter().position(|x| *x == r).unwrap()] = v;
        }
        Scores::from_parts(risks, danger, risky)
    }

    #[test]
    fn combining_table() {
        use Risk::*;
        use Severity::*;
        let p = Policy::default();
        type Want = Vec<(Risk, Severity, Stage)>;
        let table: Vec<(&str, Vec<Finding>, Scores, Want)> = vec![
            ("nothing", vec![], scores(None, 0.9, 0.1), vec![]),
            (
                "model alone, caution",
                vec![],
                scores(Some((Grooming, 0.8)), 0.2, 0.8),
                vec![(Grooming, Caution, Stage::Model)],
            ),
            (
                "model alone, danger",
                vec![],
                scores(Some((Suicide, 0.7)), 0.9, 0.9),
                vec![(Suicide, Danger, Stage::Model)],
            ),
            (
                "risky but no category sure: the top one",
                vec![],
                scores(Some((Drugs, 0.3)), 0.1, 0.85),
                vec![(Drugs, Caution, Stage::Model)],
            ),
            (
                "not risky enough for the gate",
                vec![],
                scores(Some((Drugs, 0.3)), 0.1, 0.7),
                vec![],
            ),
            (
                "phrase danger stands whatever the model says",
                vec![phrase(Weapons, Danger)],
                scores(None, 0.0, 0.0),
                vec![(Weapons, Danger, Stage::Phrase)],
            ),
            (
                "borderline phrase vetoed",
                vec![phrase(Sexual, Caution)],
                scores(Some((Sexual, 0.01)), 0.0, 0.05),
                vec![],
            ),
            (
                "borderline phrase kept above the veto",
                vec![phrase(Sexual, Caution)],
                scores(Some((Sexual, 0.2)), 0.0, 0.3),
                vec![(Sexual, Caution, Stage::Phrase)],
            ),
            (
                "borderline phrase raised by the model",
                vec![phrase(SelfHarm, Caution)],
                scores(Some((SelfHarm, 0.9)), 0.8, 0.9),
                vec![(SelfHarm, Danger, Stage::Both)],
            ),
        ];
        for (name, found, s, want) in table {
            let got: Vec<_> = combine(found, Some(&s), &p)
                .into_iter()
                .map(|d| (d.risk, d.severity, d.stage))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // Without the model's scores the phrases stand as they are.
        let got = combine(vec![phrase(Gambling, Advisory)], None, &p);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].stage, Stage::Phrase);
    }
}
