//! Small text helpers every crate of the federation uses: one definition
//! each, so that a digest or an escape means the same thing everywhere.

/// FNV-1a over bytes: a stable, dependency-free 64-bit digest for keys and
/// seeds (not for security).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The text with its first letter in upper case (« évras » → « Évras »).
pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// Escapes text for HTML element content and quoted attribute values, for
/// pages written without a template engine (exports, the hub's dashboard).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference: "" and "a".
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn capitalise_handles_accents_and_empty_text() {
        assert_eq!(capitalise("évras"), "Évras");
        assert_eq!(capitalise(""), "");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">l'&</a>"#),
            "&lt;a href=&quot;x&quot;&gt;l&#39;&amp;&lt;/a&gt;"
        );
    }
}
