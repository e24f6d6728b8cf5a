//! Phrase libraries: Lookout's own format, e2guardian weighted phrase lists, and the libraries
//! shipped with Lookout.
//!
//! Lookout's format, one rule a line (see `phrases/README.md`):
//!
//! ```text
//! # comment
//! category: suicide
//! language: en
//! danger 80 kill myself | end my life | kms
//! caution 30 suicid*
//! danger 90 how many | how much & paracetamol* & die | overdose
//! except killing it | exam is killing me
//! ```
//!
//! A term is whole words unless it starts or ends with `*` (`suicid*` matches the start of a
//! word, `*cide` its end, `*cunt*` anywhere). `|` separates alternatives; `&` requires every
//! part within [`WINDOW`] words of each other. `except` lines name innocent phrases: a match
//! that overlaps one is dropped. A file with `category: any` holds exceptions for every
//! category.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::normalize::Normalized;
use crate::{Risk, Severity};

/// How many words apart the parts of an `a & b` rule may be.
pub(crate) const WINDOW: usize = 20;

/// The libraries shipped with Lookout: (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("en/suicide.txt", include_str!("../phrases/en/suicide.txt")),
    (
        "en/self-harm.txt",
        include_str!("../phrases/en/self-harm.txt"),
    ),
    (
        "en/eating-disorders.txt",
        include_str!("../phrases/en/eating-disorders.txt"),
    ),
    (
        "en/extremism.txt",
        include_str!("../phrases/en/extremism.txt"),
    ),
    ("en/hate.txt", include_str!("../phrases/en/hate.txt")),
    (
        "en/bullying.txt",
        include_str!("../phrases/en/bullying.txt"),
    ),
    (
        "en/grooming.txt",
        include_str!("../phrases/en/grooming.txt"),
    ),
    ("en/sexual.txt", include_str!("../phrases/en/sexual.txt")),
    ("en/drugs.txt", include_str!("../phrases/en/drugs.txt")),
    ("en/weapons.txt", include_str!("../phrases/en/weapons.txt")),
    (
        "en/gambling.txt",
        include_str!("../phrases/en/gambling.txt"),
    ),
    ("en/scams.txt", include_str!("../phrases/en/scams.txt")),
    (
        "en/innocent.txt",
        include_str!("../phrases/en/innocent.txt"),
    ),
    ("pl/risks.txt", include_str!("../phrases/pl/risks.txt")),
    ("ur/risks.txt", include_str!("../phrases/ur/risks.txt")),
    ("cy/risks.txt", include_str!("../phrases/cy/risks.txt")),
];

/// A weighted rule: every part (conjunct) must match, each by one of its alternatives.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) risk: Risk,
    pub(crate) severity: Severity,
    pub(crate) weight: u32,
    pub(crate) parts: Vec<Vec<u32>>,
    pub(crate) phrase: Arc<str>,
    pub(crate) language: Arc<str>,
    /// Where the rule came from: `file:line`, written once so that every match shares it.
    pub(crate) source: Arc<str>,
}

/// An innocent phrase: matches overlapping it are dropped (for one category or all).
#[derive(Clone, Debug)]
pub(crate) struct Exception {
    pub(crate) risk: Option<Risk>,
    pub(crate) term: u32,
}

/// Phrases and exceptions, before compilation. Adding a file is all-or-nothing: a file with
/// any problem adds nothing, and the error lists every problem with its line.
#[derive(Clone, Debug, Default)]
pub struct Library {
    /// Normalised patterns, as the automaton will search them (outer spaces mark word edges).
    pub(crate) terms: Vec<Vec<u8>>,
    term_ids: HashMap<Vec<u8>, u32>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) exceptions: Vec<Exception>,
}

/// One problem in a phrase file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// Every problem found in a file (or config), so they can be fixed in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LibraryError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", p.file, p.line, p.message)?;
        }
        Ok(())
    }
}

/// A rule's parts, each a list of alternative patterns.
type Parts = Vec<Vec<Vec<u8>>>;

/// A parsed rule before its terms get ids.
enum Rule {
    Entry {
        risk: Risk,
        severity: Severity,
        weight: u32,
        parts: Parts,
        phrase: String,
    },
    Except {
        risk: Option<Risk>,
        terms: Vec<Vec<u8>>,
    },
}

impl Library {
    pub fn new() -> Library {
        Library::default()
    }

    /// Every library shipped with Lookout.
    pub fn builtin() -> Library {
        let mut lib = Library::new();
        for (file, text) in BUILTIN {
            // The shipped files are checked by a test; a broken one is a build defect.
            lib.add(file, text).expect("shipped phrase library");
        }
        lib
    }

    /// Adds a file in Lookout's format; returns how many rules it added.
    pub fn add(&mut self, file: &str, text: &str) -> Result<usize, LibraryError> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        let mut risk: Option<Option<Risk>> = None;
        let mut language: Option<String> = None;
        let mut norm = Normalized::default();
        for (n, raw) in text.lines().enumerate() {
            let line = n as u32 + 1;
            let mut problem = |message: String| {
                problems.push(Problem {
                    file: file.to_owned(),
                    line,
                    message,
                })
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(v) = l.strip_prefix("category:") {
                let v = v.trim();
                risk = match v {
                    "any" => Some(None),
                    _ => match Risk::from_slug(v) {
                        Some(r) => Some(Some(r)),
                        None => {
                            problem(format!(
                                "unknown category {v:?} (expected any or one of: {})",
                                Risk::ALL.map(Risk::slug).join(", ")
                            ));
                            None
                        }
                    },
                };
                continue;
            }
            if let Some(v) = l.strip_prefix("language:") {
                language = Some(v.trim().to_owned());
                continue;
            }
            let Some(current) = risk else {
                problem("a rule before any `category:` line".into());
                continue;
            };
            if let Some(rest) = l.strip_prefix("except ") {
                match parse_alternatives(rest, &mut norm) {
                    Ok(terms) => rules.push((
                        line,
                        Rule::Except {
                            risk: current,
                            terms,
                        },
                    )),
                    Err(e) => problem(e),
                }
                continue;
            }
            let Some(r) = current else {
                problem("a `category: any` file holds only `except` lines".into());
                continue;
            };
            let mut words = l.splitn(3, char::is_whitespace);
            let (sev, weight, expr) = (words.next(), words.next(), words.next());
            let Some(severity) = sev.and_then(Severity::from_slug) else {
                problem(format!(
                    "expected `advisory`, `caution`, `danger` or `except` at the start of the line, found {:?}",
                    sev.unwrap_or("")
                ));
                continue;
            };
            let weight = match weight.map(str::parse::<u32>) {
                Some(Ok(w)) if (1..=1000).contains(&w) => w,
                _ => {
                    problem(format!(
                        "expected a weight from 1 to 1000 after {severity}, found {:?}",
                        weight.unwrap_or("")
                    ));
                    continue;
                }
            };
            let Some(expr) = expr.map(str::trim).filter(|e| !e.is_empty()) else {
                problem("a rule needs a phrase after its weight".into());
                continue;
            };
            match parse_expression(expr, &mut norm) {
                Ok(parts) => rules.push((
                    line,
                    Rule::Entry {
                        risk: r,
                        severity,
                        weight,
                        parts,
                        phrase: expr.to_owned(),
                    },
                )),
                Err(e) => problem(e),
            }
        }
        if language.is_none() && rules.iter().any(|(_, r)| matches!(r, Rule::Entry { .. })) {
            problems.push(Problem {
                file: file.to_owned(),
                line: 1,
                message: "missing `language:` line (e.g. `language: en`)".into(),
            });
        }
        if !problems.is_empty() {
            return Err(LibraryError { problems });
        }
        let language: Arc<str> = language.unwrap_or_default().into();
        Ok(self.push_rules(file, &language, rules))
    }

    /// Adds an e2guardian / DansGuardian weighted phrase list for one category:
    /// `< word ><30>` (spaces mark word edges), `<a>,<b><50>` (all parts in the same text),
    /// negative weights as exceptions. Weights of 150 and more count as danger, 50 and more
    /// as caution, less as advisory.
    pub fn add_e2guardian(
        &mut self,
        file: &str,
        text: &str,
        risk: Risk,
    ) -> Result<usize, LibraryError> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        let mut norm = Normalized::default();
        for (n, raw) in text.lines().enumerate() {
            let line = n as u32 + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match parse_e2g_line(l, &mut norm) {
                Ok((parts, weight)) if weight < 0 => rules.push((
                    line,
                    Rule::Except {
                        risk: Some(risk),
                        // An exception combination is kept as its first part: dropping
                        // matches inside any of its parts would be too generous.
                        terms: parts.into_iter().next().unwrap_or_default(),
                    },
                )),
                Ok((_, 0)) => {}
                Ok((parts, weight)) => {
                    let weight = weight.unsigned_abs().min(1000) as u32;
                    let severity = match weight {
                        150.. => Severity::Danger,
                        50.. => Severity::Caution,
                        _ => Severity::Advisory,
                    };
                    let phrase = l.split('#').next().unwrap_or(l).trim().to_owned();
                    rules.push((
                        line,
                        Rule::Entry {
                            risk,
                            severity,
                            weight,
                            parts,
                            phrase,
                        },
                    ))
                }
                Err(message) => problems.push(Problem {
                    file: file.to_owned(),
                    line,
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(LibraryError { problems });
        }
        Ok(self.push_rules(file, &Arc::from("e2guardian"), rules))
    }

    fn push_rules(&mut self, file: &str, language: &Arc<str>, rules: Vec<(u32, Rule)>) -> usize {
        let file: Arc<str> = file.into();
        let count = rules.len();
        for (line, rule) in rules {
            match rule {
                Rule::Entry {
                    risk,
                    severity,
                    weight,
                    parts,
                    phrase,
                } => {
                    let parts = parts
                        .into_iter()
                        .map(|alts| {
                            let mut ids: Vec<u32> =
                                alts.into_iter().map(|t| self.term(t)).collect();
                            // `kill myself | kil myself` normalise alike: one term, one hit.
                            ids.sort_unstable();
                            ids.dedup();
                            ids
                        })
                        .collect();
                    self.entries.push(Entry {
                        risk,
                        severity,
                        weight,
                        parts,
                        phrase: phrase.into(),
                        language: language.clone(),
                        source: format!("{file}:{line}").into(),
                    });
                }
                Rule::Except { risk, terms } => {
                    for t in terms {
                        let term = self.term(t);
                        self.exceptions.push(Exception { risk, term });
                    }
                }
            }
        }
        count
    }

    fn term(&mut self, pattern: Vec<u8>) -> u32 {
        if let Some(&id) = self.term_ids.get(&pattern) {
            return id;
        }
        let id = self.terms.len() as u32;
        self.terms.push(pattern.clone());
        self.term_ids.insert(pattern, id);
        id
    }

    /// Rules per category and language: (category, language, rules).
    pub fn stats(&self) -> Vec<(Risk, String, usize)> {
        let mut counts: HashMap<(Risk, &str), usize> = HashMap::new();
        for e in &self.entries {
            *counts.entry((e.risk, &e.language)).or_default() += 1;
        }
        let mut v: Vec<_> = counts
            .into_iter()
            .map(|((r, l), n)| (r, l.to_owned(), n))
            .collect();
        v.sort();
        v
    }

    /// How many rules and exceptions the library holds.
    pub fn len(&self) -> (usize, usize) {
        (self.entries.len(), self.exceptions.len())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `a | b & c` → [[a, b], [c]].
fn parse_expression(expr: &str, norm: &mut Normalized) -> Result<Parts, String> {
    let parts: Vec<_> = expr
        .split('&')
        .map(|p| parse_alternatives(p, norm))
        .collect::<Result<_, _>>()?;
    if parts.len() > 8 {
        return Err("at most 8 parts joined by `&`".into());
    }
    Ok(parts)
}

fn parse_alternatives(alts: &str, norm: &mut Normalized) -> Result<Vec<Vec<u8>>, String> {
    alts.split('|')
        .map(|t| parse_term(t.trim(), norm))
        .collect()
}

/// One term → its pattern: the normalised words, with a space at each edge that must be a
/// word boundary.
fn parse_term(term: &str, norm: &mut Normalized) -> Result<Vec<u8>, String> {
    let (start_free, t) = match term.strip_prefix('*') {
        Some(t) => (true, t),
        None => (false, term),
    };
    let (end_free, t) = match t.strip_suffix('*') {
        Some(t) => (true, t),
        None => (false, t),
    };
    if t.contains('*') {
        return Err(format!(
            "`*` only at the start or end of a term, in {term:?}"
        ));
    }
    pattern(t, !start_free, !end_free, norm).ok_or_else(|| {
        if term.is_empty() {
            "empty term (two `|` or `&` in a row, or one at an edge)".to_owned()
        } else {
            format!("term {term:?} has no letters or digits")
        }
    })
}

fn pattern(text: &str, word_start: bool, word_end: bool, norm: &mut Normalized) -> Option<Vec<u8>> {
    norm.normalize(text);
    let core = norm.as_str();
    if core.is_empty() {
        return None;
    }
    let mut p = Vec::with_capacity(core.len() + 2);
    if word_start {
        p.push(b' ');
    }
    p.extend_from_slice(core.as_bytes());
    if word_end {
        p.push(b' ');
    }
    Some(p)
}

/// `<a>,< b ><30>` → ([[a], [b]], 30).
fn parse_e2g_line(line: &str, norm: &mut Normalized) -> Result<(Parts, i64), String> {
    if line.starts_with(".Include") || line.starts_with(".include") {
        return Err("`.Include` lines are not followed: import the included file itself".into());
    }
    let mut rest = line;
    let mut terms = Vec::new();
    loop {
        let Some(r) = rest.strip_prefix('<') else {
            return Err(format!("expected `<` in {line:?}"));
        };
        let Some(close) = r.find('>') else {
            return Err(format!("`<` without `>` in {line:?}"));
        };
        terms.push(&r[..close]);
        rest = r[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            continue;
        }
        if rest.starts_with('<') {
            continue;
        }
        break;
    }
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(format!("unexpected {rest:?} after the phrase"));
    }
    // The last bracket is the weight.
    let weight_text = terms.pop().unwrap_or_default();
    let Ok(weight) = weight_text.trim().parse::<i64>() else {
        return Err(format!(
            "expected a weight like <30> at the end, found <{weight_text}>"
        ));
    };
    if terms.is_empty() {
        return Err("a weight without a phrase".into());
    }
    let mut parts = Vec::new();
    for t in terms {
        let word_start = t.starts_with(' ');
        let word_end = t.ends_with(' ');
        match pattern(t, word_start, word_end, norm) {
            Some(p) => parts.push(vec![p]),
            None => return Err(format!("phrase <{t}> has no letters or digits")),
        }
    }
    Ok((parts, weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_libraries_parse() {
        let mut lib = Library::new();
        for (file, text) in BUILTIN {
            if let Err(e) = lib.add(file, text) {
                panic!("{e}");
            }
        }
        let (entries, exceptions) = lib.len();
        assert!(entries > 100, "{entries} rules");
        assert!(lib.terms.len() > 1500, "{} terms", lib.terms.len());
        assert!(exceptions > 30, "{exceptions} exceptions");
        for risk in Risk::ALL {
            for lang in ["en", "pl", "ur"] {
                assert!(
                    lib.stats().iter().any(|(r, l, _)| *r == risk && l == lang),
                    "no {lang} rules for {risk}"
                );
            }
        }
    }

    #[test]
    fn terms_become_patterns() {
        let mut lib = Library::new();
        lib.add(
            "t.txt",
            "category: suicide\nlanguage: en\ndanger 80 Kill Myself | suicid* | *cide | *unt*\n",
        )
        .unwrap();
        let terms: Vec<_> = lib
            .terms
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        assert_eq!(terms, [" kil myself ", " suicid", "cide ", "unt"]);
    }

    #[test]
    fn problems_are_named_with_their_lines() {
        let table = [
            (
                "danger 80 x\n",
                "t.txt:1: a rule before any `category:` line",
            ),
            ("category: suicde\n", "t.txt:1: unknown category \"suicde\""),
            (
                "category: suicide\nlanguage: en\ndangr 80 x\n",
                "t.txt:3: expected `advisory`, `caution`, `danger` or `except`",
            ),
            (
                "category: suicide\nlanguage: en\ndanger eighty x\n",
                "t.txt:3: expected a weight from 1 to 1000",
            ),
            (
                "category: suicide\nlanguage: en\ndanger 0 x\n",
                "t.txt:3: expected a weight from 1 to 1000",
            ),
            (
                "category: suicide\nlanguage: en\ndanger 80\n",
                "t.txt:3: a rule needs a phrase",
            ),
            (
                "category: suicide\nlanguage: en\ndanger 80 a || b\n",
                "t.txt:3: empty term",
            ),
            (
                "category: suicide\nlanguage: en\ndanger 80 a*b\n",
                "t.txt:3: `*` only at the start or end",
            ),
            (
                "category: suicide\nlanguage: en\ndanger 80 ...\n",
                "t.txt:3: term \"...\" has no letters or digits",
            ),
            (
                "category: suicide\ndanger 80 x\n",
                "t.txt:1: missing `language:` line",
            ),
            (
                "category: any\ndanger 80 x\n",
                "t.txt:2: a `category: any` file holds only `except` lines",
            ),
        ];
        for (text, want) in table {
            let mut lib = Library::new();
            let err = lib.add("t.txt", text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
            assert!(lib.is_empty(), "a file with problems adds nothing");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut lib = Library::new();
        let err = lib
            .add(
                "t.txt",
                "category: drugs\nlanguage: en\nbad 1 x\ncaution x y\ncaution 5 ok\n",
            )
            .unwrap_err();
        assert_eq!(
            err.problems.iter().map(|p| p.line).collect::<Vec<_>>(),
            [3, 4]
        );
    }

    #[test]
    fn e2guardian_lists_import() {
        let text = "#listcategory: \"Drugs\"\n\
                    < ganja ><50>\n\
                    <cocaine><30> # comment\n\
                    <buy>,< weed ><160>\n\
                    < weed killer ><-50>\n\
                    .Include</etc/x>\n";
        let mut lib = Library::new();
        let err = lib.add_e2guardian("w", text, Risk::Drugs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "w:6: `.Include` lines are not followed: import the included file itself"
        );
        let text = text.replace(".Include</etc/x>\n", "");
        assert_eq!(lib.add_e2guardian("w", &text, Risk::Drugs).unwrap(), 4);
        let e = &lib.entries;
        assert_eq!((e[0].severity, e[0].weight), (Severity::Caution, 50));
        assert_eq!((e[1].severity, e[1].weight), (Severity::Advisory, 30));
        assert_eq!((e[2].severity, e[2].parts.len()), (Severity::Danger, 2));
        assert_eq!(lib.exceptions.len(), 1);
        let terms: Vec<_> = lib
            .terms
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        assert_eq!(terms, [" ganja ", "cocaine", "buy", " wed ", " wed kiler "]);
        for bad in ["<x", "x<1>", "<x><y>", "<x><1> junk", "<30>"] {
            assert!(
                Library::new()
                    .add_e2guardian("w", bad, Risk::Drugs)
                    .is_err(),
                "{bad}"
            );
        }
    }
}
