//! Risk detection in text, without I/O.
//!
//! A [`Library`] holds weighted phrases per risk category (the shipped libraries under
//! `phrases/`, operators' own files, imported e2guardian lists); [`Library::compile`] turns it
//! into a [`Scanner`], one Aho-Corasick automaton over the normalised patterns. Scanning a text
//! normalises it the same way (see [`normalize`]), finds every pattern, drops matches inside an
//! exception ("breast cancer", "shoot a video"), checks co-occurrence rules, and returns one
//! [`Finding`] per risk category with a severity, a score and the evidence in context.
//!
//! Invariants: scanning never panics and never allocates per byte of input; the same text
//! always gives the same findings; evidence and context are slices of the original text (cut
//! at character boundaries), never of the normalised form.

mod eval;
mod normalize;
mod phrases;
mod scanner;

use std::fmt;

pub use eval::{evaluate, evaluate_with, parse_corpus, CorpusError, Evaluation, Sample, Tally};
pub use normalize::normalize;
pub use phrases::{Library, LibraryError, Problem, BUILTIN};
pub use scanner::{Finding, Match, Scanner, Scratch};

/// Risk categories, after the UK Safer Internet Centre's monitoring categories, grouped by
/// KCSIE's four areas of risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Risk {
    Suicide,
    SelfHarm,
    EatingDisorders,
    Extremism,
    Hate,
    Bullying,
    Grooming,
    Sexual,
    Drugs,
    Weapons,
    Gambling,
    Scams,
}

/// KCSIE's four areas of online risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Content,
    Contact,
    Conduct,
    Commerce,
}

impl Risk {
    pub const ALL: [Risk; 12] = [
        Risk::Suicide,
        Risk::SelfHarm,
        Risk::EatingDisorders,
        Risk::Extremism,
        Risk::Hate,
        Risk::Bullying,
        Risk::Grooming,
        Risk::Sexual,
        Risk::Drugs,
        Risk::Weapons,
        Risk::Gambling,
        Risk::Scams,
    ];

    /// The name used in files, config, the log and the API.
    pub fn slug(self) -> &'static str {
        match self {
            Risk::Suicide => "suicide",
            Risk::SelfHarm => "self-harm",
            Risk::EatingDisorders => "eating-disorders",
            Risk::Extremism => "extremism",
            Risk::Hate => "hate",
            Risk::Bullying => "bullying",
            Risk::Grooming => "grooming",
            Risk::Sexual => "sexual",
            Risk::Drugs => "drugs",
            Risk::Weapons => "weapons",
            Risk::Gambling => "gambling",
            Risk::Scams => "scams",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Risk::Suicide => "Suicide",
            Risk::SelfHarm => "Self-harm",
            Risk::EatingDisorders => "Eating disorders",
            Risk::Extremism => "Radicalisation and extremism",
            Risk::Hate => "Hate and discrimination",
            Risk::Bullying => "Bullying",
            Risk::Grooming => "Grooming and child sexual exploitation",
            Risk::Sexual => "Sexual content and sexting",
            Risk::Drugs => "Drugs",
            Risk::Weapons => "Weapons and violence",
            Risk::Gambling => "Gambling",
            Risk::Scams => "Scams and fraud",
        }
    }

    pub fn area(self) -> Area {
        match self {
            Risk::Suicide
            | Risk::SelfHarm
            | Risk::EatingDisorders
            | Risk::Extremism
            | Risk::Hate
            | Risk::Sexual
            | Risk::Drugs
            | Risk::Weapons => Area::Content,
            Risk::Grooming => Area::Contact,
            Risk::Bullying => Area::Conduct,
            Risk::Gambling | Risk::Scams => Area::Commerce,
        }
    }

    pub fn from_slug(slug: &str) -> Option<Risk> {
        Risk::ALL.into_iter().find(|r| r.slug() == slug)
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.slug())
    }
}

impl Area {
    pub fn slug(self) -> &'static str {
        match self {
            Area::Content => "content",
            Area::Contact => "contact",
            Area::Conduct => "conduct",
            Area::Commerce => "commerce",
        }
    }
}

/// How urgently a finding needs a person: `Danger` is for a risk to life or of serious harm
/// (stated intent, a grooming approach, a plan), which reaches the DSL team at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Advisory,
    Caution,
    Danger,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Advisory, Severity::Caution, Severity::Danger];

    pub fn slug(self) -> &'static str {
        match self {
            Severity::Advisory => "advisory",
            Severity::Caution => "caution",
            Severity::Danger => "danger",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.slug() == slug)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.slug())
    }
}
