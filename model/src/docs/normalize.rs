//! Folding of titles, publishers and organisation names into comparison keys.
//!
//! Two centres rarely type a title the same way: « Les Assuétudes, à l'école ! »
//! and « les assuetudes a l ecole » are the same tool. Duplicate detection and
//! the services directory compare folded forms: Unicode-decomposed, combining
//! accents dropped, ligatures expanded, lower-cased, every run of punctuation
//! or white space turned into one space. Folding is pure and deterministic, so
//! every replica derives the same key from the same name, which is what lets
//! two offline centres land on the same directory entry.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Folds accents, case and punctuation: `"L'Été, à Liège !"` → `"l ete a liege"`.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // A pending separator is written only before the next word, so the result
    // never starts or ends with a space and never holds two in a row.
    let mut pending_space = false;
    for c in text.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        let expanded: &str = match c {
            'œ' | 'Œ' => "oe",
            'æ' | 'Æ' => "ae",
            'ß' => "ss",
            'ø' | 'Ø' => "o",
            'đ' | 'Đ' => "d",
            'ł' | 'Ł' => "l",
            _ => "",
        };
        if !expanded.is_empty() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push_str(expanded);
        } else if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

/// Legal-form words that do not distinguish one organisation from another.
const ORG_NOISE_WORDS: [&str; 4] = ["asbl", "vzw", "a s b l", "sprl"];

/// The key under which an organisation is listed in a services directory:
/// folded words joined by `-`, legal forms (« ASBL ») dropped. Only ASCII
/// letters, digits and `-` remain, so the key is safe inside composite keys.
pub fn org_key(name: &str) -> String {
    let mut folded = format!(" {} ", fold(name));
    for noise in ORG_NOISE_WORDS {
        folded = folded.replace(&format!(" {noise} "), " ");
    }
    folded
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// True when `text` holds something shaped like an e-mail address. Free-text
/// fields of shared documents refuse those: Automerge keeps every value
/// forever, and an address in a description is almost always a person's.
pub fn contains_email(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '(' | ')'))
        .any(looks_like_email)
}

/// True when `text` holds something shaped like a telephone number: a run
/// that starts with `0` or `+` (not inside a word or a longer number), made
/// of digits with single spaces, dots, slashes or dashes between groups, and
/// 9 to 12 digits in all (Belgian numbers: 9 or 10 digits from `0`, 11 with
/// `+32`). ISBNs (from 978/979 or 2…) and years do not start that way.
pub fn contains_phone(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = (c == '0' || (c == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '+'));
        if !starts {
            i += 1;
            continue;
        }
        let mut digits = 0;
        let mut j = if c == '+' { i + 1 } else { i };
        let mut last_was_separator = false;
        while j < chars.len() {
            let d = chars[j];
            if d.is_ascii_digit() {
                digits += 1;
                last_was_separator = false;
            } else if matches!(d, ' ' | '.' | '/' | '-')
                && !last_was_separator
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                last_was_separator = true;
            } else {
                break;
            }
            j += 1;
        }
        let glued = chars.get(j).is_some_and(|d| d.is_alphanumeric());
        if (9..=12).contains(&digits) && !glued {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

fn looks_like_email(token: &str) -> bool {
    let token = token.trim_matches(|c: char| !c.is_alphanumeric());
    match token.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_phone_numbers_not_isbns_or_years() {
        for phone in [
            "appeler le 071 33 02 29",
            "GSM : 0470/12.34.56",
            "(+32 71 33 02 29)",
            "tél. 04-223-00-00",
            "0478123456",
        ] {
            assert!(contains_phone(phone), "{phone}");
        }
        for other in [
            "ISBN 978-2-7011-6213-6",
            "ISBN 2-7011-6213-X",
            "de 2019-2021, 6 à 12 ans",
            "réf. 0123",
            "1 000 000 exemplaires",
            "version 0.9.1",
            "",
        ] {
            assert!(!contains_phone(other), "{other}");
        }
    }

    #[test]
    fn folds_accents_case_and_punctuation() {
        assert_eq!(fold("L'Été, à Liège !"), "l ete a liege");
        assert_eq!(fold("  Assuétudes  "), "assuetudes");
        assert_eq!(fold("Œuvre — CŒUR"), "oeuvre coeur");
        assert_eq!(fold("Je me sens bien quand..."), "je me sens bien quand");
        assert_eq!(fold("Le Covid-19 et nous"), "le covid 19 et nous");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn org_keys_ignore_spelling_and_legal_form() {
        assert_eq!(org_key("Infor-Drogues ASBL"), "infor-drogues");
        assert_eq!(org_key("infor drogues"), "infor-drogues");
        assert_eq!(
            org_key("Centre de Planning Familial « Les Haies »"),
            "centre-de-planning-familial-les-haies"
        );
        assert_eq!(org_key("Sida SOS a.s.b.l."), "sida-sos");
    }

    #[test]
    fn spots_email_addresses() {
        assert!(contains_email(
            "écrire à marie.dupont@example.org pour réserver"
        ));
        assert!(contains_email("<info@clps.be>"));
        assert!(!contains_email("6 séances, 9 à 12 ans @ l'école"));
        assert!(!contains_email("see https://example.org/a@b"));
    }
}
