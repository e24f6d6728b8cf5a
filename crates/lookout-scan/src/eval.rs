//! Measuring a library against a labelled corpus: precision, recall and false alerts per
//! category, severity and language.
//!
//! Corpus format, one sample a line, tab-separated: language, labels, text. Labels are `none`
//! for innocent text or `category:severity` items joined by commas
//! (`suicide:danger,self-harm:caution`). `#` starts a comment line.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Risk, Scanner, Scratch, Severity};

/// One labelled text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub file: String,
    pub line: u32,
    pub language: String,
    pub labels: Vec<(Risk, Severity)>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CorpusError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// Parses a corpus file; the first malformed line is an error naming it.
pub fn parse_corpus(file: &str, text: &str) -> Result<Vec<Sample>, CorpusError> {
    let mut samples = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n as u32 + 1;
        let err = |message: String| CorpusError {
            file: file.to_owned(),
            line,
            message,
        };
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut cols = raw.splitn(3, '\t');
        let (Some(language), Some(labels), Some(text)) = (cols.next(), cols.next(), cols.next())
        else {
            return Err(err(
                "expected three tab-separated columns: language, labels, text".into(),
            ));
        };
        let mut parsed = Vec::new();
        if labels != "none" {
            for l in labels.split(',') {
                let (r, s) = l.split_once(':').unwrap_or((l, ""));
                let risk = Risk::from_slug(r.trim())
                    .ok_or_else(|| err(format!("unknown category {r:?} in labels {labels:?}")))?;
                let sev = Severity::from_slug(s.trim()).ok_or_else(|| {
                    err(format!(
                        "expected category:advisory|caution|danger, found {l:?}"
                    ))
                })?;
                parsed.push((risk, sev));
            }
        }
        if text.trim().is_empty() {
            return Err(err("empty text".into()));
        }
        samples.push(Sample {
            file: file.to_owned(),
            line,
            language: language.trim().to_owned(),
            labels: parsed,
            text: text.to_owned(),
        });
    }
    Ok(samples)
}

/// Counts for precision and recall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub true_pos: usize,
    pub false_pos: usize,
    pub false_neg: usize,
}

impl Tally {
    /// `None` when nothing was predicted.
    pub fn precision(&self) -> Option<f64> {
        let p = self.true_pos + self.false_pos;
        (p > 0).then(|| self.true_pos as f64 / p as f64)
    }

    /// `None` when nothing was expected.
    pub fn recall(&self) -> Option<f64> {
        let e = self.true_pos + self.false_neg;
        (e > 0).then(|| self.true_pos as f64 / e as f64)
    }
}

/// Innocent texts and how many of them raised a finding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Innocent {
    pub samples: usize,
    pub alerted: usize,
}

impl Innocent {
    pub fn rate(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.alerted as f64 / self.samples as f64)
    }
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub samples: usize,
    pub by_risk: BTreeMap<Risk, Tally>,
    /// A sample labelled `c:danger` is found only by a danger finding of `c`; a danger finding
    /// of `c` is right only where the label says `c:danger`.
    pub by_severity: BTreeMap<Severity, Tally>,
    /// Per language: risky samples found (any right category), and false alerts.
    pub by_language: BTreeMap<String, (Tally, Innocent)>,
    pub innocent: Innocent,
    /// Samples the scanner got wrong (index into the samples), with what it said.
    pub mistakes: Vec<(usize, String)>,
}

/// Scans every sample; a finding counts when its severity is at least `min_severity`.
pub fn evaluate(scanner: &Scanner, samples: &[Sample], min_severity: Severity) -> Evaluation {
    let mut scratch = Scratch::default();
    evaluate_with(samples, min_severity, |_, sample| {
        scanner
            .scan_with(&mut scratch, &sample.text)
            .into_iter()
            .map(|f| (f.risk, f.severity))
            .collect()
    })
}

/// Like [`evaluate`], for any detector: `detect` is given each sample's index and the sample,
/// and says which categories it found at which severity.
pub fn evaluate_with(
    samples: &[Sample],
    min_severity: Severity,
    mut detect: impl FnMut(usize, &Sample) -> Vec<(Risk, Severity)>,
) -> Evaluation {
    let mut ev = Evaluation {
        samples: samples.len(),
        ..Evaluation::default()
    };
    for r in Risk::ALL {
        ev.by_risk.insert(r, Tally::default());
    }
    for s in Severity::ALL {
        ev.by_severity.insert(s, Tally::default());
    }
    for (index, sample) in samples.iter().enumerate() {
        let found: Vec<(Risk, Severity)> = detect(index, sample)
            .into_iter()
            .filter(|f| f.1 >= min_severity)
            .collect();
        // A label below the counted severity is not expected to alert.
        let expected_labels: Vec<(Risk, Severity)> = sample
            .labels
            .iter()
            .copied()
            .filter(|l| l.1 >= min_severity)
            .collect();
        let (lang_tally, lang_innocent) =
            ev.by_language.entry(sample.language.clone()).or_default();
        let mut wrong = false;
        for risk in Risk::ALL {
            let expected = expected_labels.iter().find(|l| l.0 == risk).map(|l| l.1);
            let got = found.iter().find(|f| f.0 == risk).map(|f| f.1);
            let t = ev.by_risk.get_mut(&risk).expect("every risk");
            match (expected, got) {
                (Some(_), Some(_)) => t.true_pos += 1,
                (Some(_), None) => {
                    t.false_neg += 1;
                    wrong = true;
                }
                (None, Some(_)) => {
                    t.false_pos += 1;
                    wrong = true;
                }
                (None, None) => {}
            }
            for sev in Severity::ALL {
                let t = ev.by_severity.get_mut(&sev).expect("every severity");
                match (expected == Some(sev), got == Some(sev)) {
                    (true, true) => t.true_pos += 1,
                    (true, false) => t.false_neg += 1,
                    (false, true) => t.false_pos += 1,
                    (false, false) => {}
                }
            }
        }
        if sample.labels.is_empty() {
            ev.innocent.samples += 1;
            lang_innocent.samples += 1;
            if !found.is_empty() {
                ev.innocent.alerted += 1;
                lang_innocent.alerted += 1;
            }
        } else if expected_labels.is_empty() {
            // Labelled below the counted severity: neither risky nor innocent here.
        } else if found
            .iter()
            .any(|f| expected_labels.iter().any(|l| l.0 == f.0))
        {
            lang_tally.true_pos += 1;
        } else {
            lang_tally.false_neg += 1;
        }
        if wrong {
            let said = if found.is_empty() {
                "nothing".to_owned()
            } else {
                found
                    .iter()
                    .map(|(r, s)| format!("{r}:{s}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            ev.mistakes.push((index, said));
        }
    }
    ev
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "   -  ".to_owned(), |v| format!("{:6.3}", v))
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} samples, {} innocent",
            self.samples, self.innocent.samples
        )?;
        writeln!(
            f,
            "\n{:<18} {:>5} {:>5} {:>5} {:>9} {:>7}",
            "category", "tp", "fp", "fn", "precision", "recall"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, t: &Tally| {
            writeln!(
                f,
                "{:<18} {:>5} {:>5} {:>5} {:>9} {:>7}",
                name,
                t.true_pos,
                t.false_pos,
                t.false_neg,
                pct(t.precision()),
                pct(t.recall())
            )
        };
        for (r, t) in &self.by_risk {
            row(f, r.slug(), t)?;
        }
        let total = self.by_risk.values().fold(Tally::default(), |a, t| Tally {
            true_pos: a.true_pos + t.true_pos,
            false_pos: a.false_pos + t.false_pos,
            false_neg: a.false_neg + t.false_neg,
        });
        row(f, "all", &total)?;
        writeln!(
            f,
            "\n{:<18} {:>5} {:>5} {:>5} {:>9} {:>7}",
            "severity (exact)", "tp", "fp", "fn", "precision", "recall"
        )?;
        for (s, t) in self.by_severity.iter().rev() {
            row(f, s.slug(), t)?;
        }
        writeln!(
            f,
            "\n{:<18} {:>7} {:>7} {:>14}",
            "language", "risky", "recall", "false alerts"
        )?;
        for (lang, (t, inn)) in &self.by_language {
            writeln!(
                f,
                "{:<18} {:>7} {:>7} {:>6}/{:<3} {}",
                lang,
                t.true_pos + t.false_neg,
                pct(t.recall()),
                inn.alerted,
                inn.samples,
                pct(inn.rate())
            )?;
        }
        writeln!(
            f,
            "\nfalse alerts on innocent text: {}/{} = {}",
            self.innocent.alerted,
            self.innocent.samples,
            pct(self.innocent.rate())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Library;

    #[test]
    fn corpus_lines_are_checked() {
        let ok = parse_corpus(
            "c.tsv",
            "# x\nen\tnone\thello\nen\tsuicide:danger,drugs:caution\tkms\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[1].labels,
            [
                (Risk::Suicide, Severity::Danger),
                (Risk::Drugs, Severity::Caution)
            ]
        );
        for (bad, want) in [
            (
                "en none hello",
                "c.tsv:1: expected three tab-separated columns",
            ),
            (
                "en\tsuicde:danger\tx",
                "c.tsv:1: unknown category \"suicde\"",
            ),
            (
                "en\tsuicide\tx",
                "c.tsv:1: expected category:advisory|caution|danger",
            ),
            ("en\tnone\t ", "c.tsv:1: empty text"),
        ] {
            let e = parse_corpus("c.tsv", bad).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn counts_are_right() {
        let mut lib = Library::new();
        lib.add(
            "t",
            "category: suicide\nlanguage: en\ndanger 80 kms\ncaution 20 suicide\n",
        )
        .unwrap();
        let s = lib.compile().unwrap();
        let corpus = "en\tsuicide:danger\tkms\n\
                      en\tsuicide:danger\tsuicide\n\
                      en\tsuicide:caution\tnothing here\n\
                      en\tnone\tsuicide squad\n\
                      en\tnone\thello\n";
        let ev = evaluate(&s, &parse_corpus("c", corpus).unwrap(), Severity::Advisory);
        let t = ev.by_risk[&Risk::Suicide];
        assert_eq!((t.true_pos, t.false_pos, t.false_neg), (2, 1, 1));
        let d = ev.by_severity[&Severity::Danger];
        assert_eq!((d.true_pos, d.false_pos, d.false_neg), (1, 0, 1));
        assert_eq!(
            ev.innocent,
            Innocent {
                samples: 2,
                alerted: 1
            }
        );
        assert_eq!(ev.mistakes.iter().map(|m| m.0).collect::<Vec<_>>(), [2, 3]);
        assert!(ev
            .to_string()
            .contains("false alerts on innocent text: 1/2 =  0.500"));
    }
}
