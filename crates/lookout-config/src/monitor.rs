//! `[scan]`: the phrase libraries that risk detection uses.

use std::path::PathBuf;

use lookout_scan::Risk;
use serde::Deserialize;
use toml::Spanned;

use crate::{Checker, Config};

/// `[scan]`: risk detection in search terms, page text and agents' text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Use the phrase libraries shipped with Lookout.
    #[serde(default = "yes")]
    pub builtin: bool,
    /// The organisation's own phrase files, in Lookout's format (relative paths are relative
    /// to the configuration file).
    #[serde(default)]
    pub phrases: Vec<Spanned<PathBuf>>,
    /// e2guardian / DansGuardian weighted phrase lists, each for one category.
    #[serde(default)]
    pub e2guardian: Vec<E2guardianConfig>,
    /// Bytes of page text scanned per inspected response (text/html and text/plain).
    #[serde(default = "default_page_bytes")]
    pub page_bytes: usize,
}

/// `[[scan.e2guardian]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct E2guardianConfig {
    /// The weighted list file.
    pub file: Spanned<PathBuf>,
    /// The category its phrases count towards.
    pub category: Spanned<String>,
}

impl E2guardianConfig {
    /// The category (validated when the configuration was loaded).
    pub fn risk(&self) -> Option<Risk> {
        Risk::from_slug(self.category.get_ref())
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

fn yes() -> bool {
    true
}
fn default_page_bytes() -> usize {
    256 * 1024
}

impl Config {
    pub(crate) fn validate_monitor(&self, c: &mut Checker<'_>) {
        for (i, e) in self.scan.e2guardian.iter().enumerate() {
            if e.risk().is_none() {
                c.problem(
                    format!("scan.e2guardian[{i}].category"),
                    Some(&e.category),
                    format!(
                        "unknown category `{}` (expected one of: {})",
                        e.category.get_ref(),
                        Risk::ALL.map(Risk::slug).join(", ")
                    ),
                );
            }
        }
        if !self.scan.builtin && self.scan.phrases.is_empty() && self.scan.e2guardian.is_empty() {
            c.problem::<String>(
                "scan.builtin",
                None,
                "risk detection has no phrases: keep `builtin = true` or add `phrases` or `e2guardian` lists",
            );
        }
        if self.scan.page_bytes > 16 * 1024 * 1024 {
            c.problem::<String>("scan.page_bytes", None, "at most 16777216 (16 MiB)");
        }
    }

    pub(crate) fn resolve_monitor_paths(&mut self, base: &std::path::Path) {
        let resolve = |p: &mut Spanned<PathBuf>| {
            if p.get_ref().is_relative() {
                *p = Spanned::new(p.span(), base.join(p.get_ref()));
            }
        };
        self.scan.phrases.iter_mut().for_each(resolve);
        self.scan
            .e2guardian
            .iter_mut()
            .for_each(|e| resolve(&mut e.file));
    }
}
