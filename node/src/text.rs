//! Small text helpers every part of the node uses once from here.

use clps_model::docs::normalize::fold;

/// A slug from a label: folded (no accents, lower case), runs of anything
/// but ASCII letters and digits as one `_`, at most 64 characters: what a
/// code of the shared documents may hold.
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in fold(label).chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_');
    out.chars().take(64).collect()
}

/// Seconds since the epoch by the system clock.
pub fn now() -> i64 {
    crate::app::Clock::System.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_accents_and_collapse_separators() {
        assert_eq!(slug("Éducation à la santé"), "education_a_la_sante");
        assert_eq!(slug("  Jeunes -- adultes "), "jeunes_adultes");
        assert_eq!(slug("«»"), "");
        assert_eq!(slug(&"a".repeat(80)).len(), 64);
    }
}
