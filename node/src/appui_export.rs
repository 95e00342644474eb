//! Publication of a point d'appui repository: a French, self-contained HTML
//! page (inline stylesheet, no script, no external resource) and the same
//! content in Markdown, for a centre's website.
//!
//! Rendering is pure: it takes an [`appui::Publication`] read beforehand and
//! returns text. Every value coming from the shared document is escaped,
//! since any member centre may have written it.

use std::fmt::Write as _;

use clps_model::vocab;

use crate::appui::{DocumentVersion, Publication, theme_label};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}
h1{color:#1d4e89;border-bottom:3px solid #1d4e89;padding-bottom:.3rem}
h2{color:#1d4e89;margin-top:2.5rem}
h3{margin-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #ccd;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#eef2f8}
.service{border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.meta{color:#555;font-size:.95rem}
.note{margin:.2rem 0 .2rem 1rem;font-style:italic}
.version{background:#f7f7f2;border-left:4px solid #1d4e89;padding:.5rem 1rem}
footer{margin-top:3rem;color:#666;font-size:.85rem}
";

pub use clps_model::text::escape_html;

/// Escapes the characters Markdown would read as markup in running text.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '!'
        ) {
            out.push('\\');
        }
        if c == '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn centre_name(centre: &clps_model::CentreId) -> String {
    centre.centre().name.clone()
}

fn sector_label(code: &str) -> String {
    vocab::get()
        .requester_sectors
        .label(code)
        .unwrap_or(code)
        .to_owned()
}

fn join_themes<'a>(themes: impl Iterator<Item = &'a String>) -> String {
    themes
        .map(|t| theme_label(t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The page for a repository.
pub fn html(p: &Publication) -> String {
    let e = escape_html;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{label} — répertoire et sélections</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>{label}</h1>\n",
        label = e(&p.scheme_label)
    );
    let members: Vec<String> = p.members.iter().map(centre_name).collect();
    let _ = writeln!(
        out,
        "<p class=\"meta\">Centres membres : {}</p>",
        e(&members.join(", "))
    );

    let _ = writeln!(
        out,
        "<section id=\"repertoire\">\n<h2>Répertoire des services ({})</h2>",
        p.services.len()
    );
    if p.services.is_empty() {
        out.push_str("<p>Aucun service répertorié.</p>\n");
    }
    for s in &p.services {
        let _ = writeln!(
            out,
            "<article class=\"service\" data-key=\"{}\">\n<h3>{}</h3>",
            e(&s.key),
            e(&s.name)
        );
        let mut facts: Vec<String> = Vec::new();
        if !s.org_type.is_empty() {
            facts.push(format!("Type : {}", e(&s.org_type)));
        }
        if !s.sector.is_empty() {
            facts.push(format!("Secteur : {}", e(&sector_label(&s.sector))));
        }
        if !s.communes.is_empty() {
            let communes: Vec<&str> = s.communes.iter().map(String::as_str).collect();
            facts.push(format!("Communes : {}", e(&communes.join(", "))));
        }
        if !s.themes.is_empty() {
            facts.push(format!(
                "Thématiques : {}",
                e(&join_themes(s.themes.iter()))
            ));
        }
        if !facts.is_empty() {
            let _ = writeln!(out, "<p class=\"meta\">{}</p>", facts.join(" · "));
        }
        if !s.offer_to_schools.is_empty() {
            let _ = writeln!(
                out,
                "<p><strong>Offre aux écoles :</strong> {}</p>",
                e(&s.offer_to_schools)
            );
        }
        let mut contact = Vec::new();
        if !s.email.is_empty() {
            contact.push(format!("<a href=\"mailto:{0}\">{0}</a>", e(&s.email)));
        }
        if !s.phone.is_empty() {
            contact.push(e(&s.phone));
        }
        if !contact.is_empty() {
            let _ = writeln!(out, "<p>Contact : {}</p>", contact.join(" — "));
        }
        let listed: Vec<String> = s.listed_by.iter().map(centre_name).collect();
        let _ = writeln!(
            out,
            "<p class=\"meta\">Répertorié par : {}</p>",
            e(&listed.join(", "))
        );
        for (centre, note) in &s.notes {
            let _ = writeln!(
                out,
                "<p class=\"note\">{} : {}</p>",
                e(&centre_name(centre)),
                e(note)
            );
        }
        out.push_str("</article>\n");
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"selections\">\n<h2>Sélections d'outils</h2>\n");
    if !p.counts.is_empty() {
        out.push_str(
            "<table class=\"comptes\">\n<thead><tr><th>Thématique</th><th>Outils pédagogiques au catalogue</th><th>Dont sélectionnés</th></tr></thead>\n<tbody>\n",
        );
        for c in &p.counts {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&c.label),
                c.tools_in_catalogue,
                c.selected
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    if p.selections.is_empty() {
        out.push_str("<p>Aucun outil sélectionné.</p>\n");
    }
    for (key, tools) in &p.selections {
        let _ = writeln!(
            out,
            "<h3>{} — public : {}</h3>\n<table class=\"selection\">\n<thead><tr><th>Outil</th><th>Pourquoi cet outil</th></tr></thead>\n<tbody>",
            e(&theme_label(&key.theme)),
            e(&key.public)
        );
        for (record, tool) in tools {
            let title = match p.tools.get(record) {
                Some(info) => {
                    let mut t = e(&info.title);
                    if !info.publisher.is_empty() {
                        let _ = write!(t, " <span class=\"meta\">({}", e(&info.publisher));
                        if let Some(y) = info.year {
                            let _ = write!(t, ", {y}");
                        }
                        t.push_str(")</span>");
                    }
                    t
                }
                None => format!("notice {} (pas encore reçue)", e(record.as_str())),
            };
            let why: Vec<String> = tool
                .why
                .iter()
                .map(|(c, w)| format!("<p class=\"note\">{} : {}</p>", e(&centre_name(c)), e(w)))
                .collect();
            let _ = writeln!(
                out,
                "<tr data-record=\"{}\"><td>{title}</td><td>{}</td></tr>",
                e(record.as_str()),
                why.join("")
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");

    if !p.events.is_empty() {
        out.push_str("<section id=\"rencontres\">\n<h2>Rencontres</h2>\n<ul>\n");
        for ev in &p.events {
            let place = match &ev.place {
                clps_model::docs::appui::Place::Venue(v) => e(v),
                clps_model::docs::appui::Place::Video => "visioconférence".to_owned(),
            };
            let present: Vec<String> = ev.centres_present.iter().map(centre_name).collect();
            let _ = writeln!(
                out,
                "<li><strong>{}</strong> — {} — {place} (centres présents : {})</li>",
                e(&ev.date),
                e(&ev.title),
                e(&present.join(", "))
            );
        }
        out.push_str("</ul>\n</section>\n");
    }

    if let Some(d) = &p.document {
        out.push_str(&html_document(d));
    }
    out.push_str(
        "<footer>Publié depuis le dépôt partagé du point d'appui (fédération des CLPS).</footer>\n</body>\n</html>\n",
    );
    out
}

fn version_caption(d: &DocumentVersion) -> String {
    match &d.version {
        Some(v) => format!("version « {v} »"),
        None => "version de travail".to_owned(),
    }
}

/// A co-written text: blank lines separate paragraphs, lines starting with
/// `#` are headings, lines starting with `- ` list items. Nothing else of
/// Markdown is interpreted; everything is escaped.
fn html_document(d: &DocumentVersion) -> String {
    let e = escape_html;
    let mut out = format!(
        "<section id=\"document\" class=\"version\">\n<h2>{}</h2>\n<p class=\"meta\">{}</p>\n",
        e(&d.title),
        e(&version_caption(d))
    );
    for block in d.text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        if lines.iter().all(|l| l.starts_with("- ")) {
            out.push_str("<ul>\n");
            for l in lines {
                let _ = writeln!(out, "<li>{}</li>", e(&l[2..]));
            }
            out.push_str("</ul>\n");
        } else if lines.len() == 1 && lines[0].starts_with('#') {
            let _ = writeln!(
                out,
                "<h3>{}</h3>",
                e(lines[0].trim_start_matches('#').trim())
            );
        } else {
            let _ = writeln!(
                out,
                "<p>{}</p>",
                lines
                    .iter()
                    .map(|l| e(l))
                    .collect::<Vec<_>>()
                    .join("<br>\n")
            );
        }
    }
    out.push_str("</section>\n");
    out
}

/// The same content in Markdown. The document version's text is copied as
/// written (it is Markdown already); everything else is escaped.
pub fn markdown(p: &Publication) -> String {
    let m = escape_markdown;
    let mut out = format!("# {}\n\n", m(&p.scheme_label));
    let members: Vec<String> = p.members.iter().map(centre_name).collect();
    let _ = writeln!(out, "Centres membres : {}\n", m(&members.join(", ")));

    let _ = writeln!(out, "## Répertoire des services ({})\n", p.services.len());
    if p.services.is_empty() {
        out.push_str("Aucun service répertorié.\n\n");
    }
    for s in &p.services {
        let _ = writeln!(out, "### {}\n", m(&s.name));
        if !s.org_type.is_empty() {
            let _ = writeln!(out, "- Type : {}", m(&s.org_type));
        }
        if !s.sector.is_empty() {
            let _ = writeln!(out, "- Secteur : {}", m(&sector_label(&s.sector)));
        }
        if !s.communes.is_empty() {
            let communes: Vec<&str> = s.communes.iter().map(String::as_str).collect();
            let _ = writeln!(out, "- Communes : {}", m(&communes.join(", ")));
        }
        if !s.themes.is_empty() {
            let _ = writeln!(out, "- Thématiques : {}", m(&join_themes(s.themes.iter())));
        }
        if !s.offer_to_schools.is_empty() {
            let _ = writeln!(out, "- Offre aux écoles : {}", m(&s.offer_to_schools));
        }
        if !s.email.is_empty() {
            let _ = writeln!(out, "- E-mail : {}", m(&s.email));
        }
        if !s.phone.is_empty() {
            let _ = writeln!(out, "- Téléphone : {}", m(&s.phone));
        }
        let listed: Vec<String> = s.listed_by.iter().map(centre_name).collect();
        let _ = writeln!(out, "- Répertorié par : {}", m(&listed.join(", ")));
        for (centre, note) in &s.notes {
            let _ = writeln!(out, "- Note de {} : {}", m(&centre_name(centre)), m(note));
        }
        out.push('\n');
    }

    out.push_str("## Sélections d'outils\n\n");
    if !p.counts.is_empty() {
        out.push_str("| Thématique | Outils pédagogiques au catalogue | Dont sélectionnés |\n|---|---:|---:|\n");
        for c in &p.counts {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                m(&c.label),
                c.tools_in_catalogue,
                c.selected
            );
        }
        out.push('\n');
    }
    if p.selections.is_empty() {
        out.push_str("Aucun outil sélectionné.\n\n");
    }
    for (key, tools) in &p.selections {
        let _ = writeln!(
            out,
            "### {} — public : {}\n",
            m(&theme_label(&key.theme)),
            m(&key.public)
        );
        for (record, tool) in tools {
            let title = match p.tools.get(record) {
                Some(info) => m(&info.title),
                None => format!("notice {} (pas encore reçue)", m(record.as_str())),
            };
            let _ = writeln!(out, "- **{title}**");
            for (centre, why) in &tool.why {
                let _ = writeln!(out, "  - {} : {}", m(&centre_name(centre)), m(why));
            }
        }
        out.push('\n');
    }

    if !p.events.is_empty() {
        out.push_str("## Rencontres\n\n");
        for ev in &p.events {
            let place = match &ev.place {
                clps_model::docs::appui::Place::Venue(v) => m(v),
                clps_model::docs::appui::Place::Video => "visioconférence".to_owned(),
            };
            let present: Vec<String> = ev.centres_present.iter().map(centre_name).collect();
            let _ = writeln!(
                out,
                "- {} — {} — {place} (centres présents : {})",
                m(&ev.date),
                m(&ev.title),
                m(&present.join(", "))
            );
        }
        out.push('\n');
    }

    if let Some(d) = &p.document {
        let _ = writeln!(out, "## {}\n\n*{}*\n", m(&d.title), m(&version_caption(d)));
        out.push_str(&d.text);
        if !d.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn html_and_markdown_escape_what_centres_wrote() {
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape_markdown("a*b_[c]|d"), "a\\*b\\_\\[c\\]\\|d");
    }

    #[test]
    fn a_document_renders_headings_lists_and_paragraphs() {
        let d = DocumentVersion {
            id: "ref".into(),
            title: "Texte <ref>".into(),
            version: Some("publié".into()),
            text: "# Titre\n\nUn paragraphe\nsur deux lignes.\n\n- un\n- deux".into(),
        };
        let html = html_document(&d);
        assert!(html.contains("<h2>Texte &lt;ref&gt;</h2>"), "{html}");
        assert!(html.contains("<h3>Titre</h3>"), "{html}");
        assert!(
            html.contains("<p>Un paragraphe<br>\nsur deux lignes.</p>"),
            "{html}"
        );
        assert!(html.contains("<li>deux</li>"), "{html}");
    }
}
