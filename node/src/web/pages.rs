//! The pages, as `maud` templates: every value is escaped unless it is
//! fixed text of this file.

use clps_model::CentreId;
use clps_model::docs::catalogue::{Availability, Record, ReviewerRole};
use clps_model::vocab;
use maud::{DOCTYPE, Markup, html};

use super::{SearchParams, fr};
use crate::app::Node;
use crate::app::accounts::{Account, JournalLine, Role, Session};
use crate::app::catalogue::{
    self, Facets, Field, FieldError, RecordForm, RecordView, SETTLEABLE, SearchPage,
};
use crate::app::sync::{SyncDone, SyncOverview};

/// A message above a page's content.
#[derive(Debug, Clone)]
pub enum Notice {
    Done(String),
    Error(String, Vec<FieldError>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Home,
    Catalogue,
    Import,
    Duplicates,
    Requests,
    Contacts,
    Activities,
    Loans,
    Report,
    Sync,
    Accounts,
    Journal,
    None,
}

pub(super) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub(super) fn layout(
    node: &Node,
    session: Option<&Session>,
    title: &str,
    nav: Nav,
    body: Markup,
) -> Markup {
    layout_refreshing(node, session, title, nav, None, body)
}

/// A page that reloads itself every `refresh` seconds (work in progress),
/// without a script.
pub(super) fn layout_refreshing(
    node: &Node,
    session: Option<&Session>,
    title: &str,
    nav: Nav,
    refresh: Option<u32>,
    body: Markup,
) -> Markup {
    let centre = fr::centre_name(node.centre());
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                // htmx must not add an inline style (the CSP forbids it).
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false}"#;
                title { (title) " — " (centre) }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/htmx.min.js" defer {}
            }
            body {
                a class="skip" href="#contenu" { "Aller au contenu" }
                header class="top" {
                    p class="centre" { (centre) }
                    @if let Some(s) = session {
                        nav aria-label="Menu principal" {
                            ul {
                                (item("/", "Accueil", nav == Nav::Home))
                                (item("/catalogue", "Outilthèque", nav == Nav::Catalogue))
                                (item("/doublons", "Doublons", nav == Nav::Duplicates))
                                (item("/demandes", "Demandes", nav == Nav::Requests))
                                (item("/organisations", "Contacts", nav == Nav::Contacts))
                                (item("/accompagnements", "Activités", nav == Nav::Activities))
                                (item("/pret", "Prêts", nav == Nav::Loans))
                                (item("/rapport", "Rapport d'activité", nav == Nav::Report))
                                @if s.staff.role.can_edit() {
                                    (item("/import", "Import", nav == Nav::Import))
                                }
                                (item("/synchronisation", "Synchronisation", nav == Nav::Sync))
                                @if s.staff.role.is_admin() {
                                    (item("/comptes", "Comptes", nav == Nav::Accounts))
                                    (item("/journal", "Journal", nav == Nav::Journal))
                                }
                            }
                        }
                        form class="who" method="post" action="/deconnexion" {
                            (csrf(s))
                            span { (s.staff.login) " · " (fr::role_label(s.staff.role)) }
                            button type="submit" class="link" { "Se déconnecter" }
                        }
                    }
                }
                main id="contenu" {
                    (body)
                }
            }
        }
    }
}

fn item(href: &str, label: &str, current: bool) -> Markup {
    html! {
        li {
            @if current {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}

pub(super) fn notice(n: Option<&Notice>) -> Markup {
    html! {
        @match n {
            Some(Notice::Done(text)) => p class="notice done" role="status" { (text) },
            Some(Notice::Error(text, _)) => p class="notice error" role="alert" { (text) },
            None => {},
        }
    }
}

/// A page that only says something.
pub fn message(session: Option<&Session>, title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                main id="contenu" {
                    h1 { (title) }
                    p { (text) }
                    p {
                        @if session.is_some() {
                            a href="/" { "Retour à l'accueil" }
                        } @else {
                            a href="/connexion" { "Se connecter" }
                        }
                    }
                }
            }
        }
    }
}

pub fn login(node: &Node, token: &str, next: &str, error: Option<&str>, login: &str) -> Markup {
    layout(
        node,
        None,
        "Connexion",
        Nav::None,
        html! {
            section class="narrow" {
                h1 { "Connexion" }
                @if let Some(e) = error {
                    p class="notice error" role="alert" id="erreur-connexion" { (e) }
                }
                form method="post" action="/connexion" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="suite" value=(next);
                    p {
                        label for="identifiant" { "Identifiant" }
                        input id="identifiant" name="identifiant" type="text" value=(login)
                            autocomplete="username" autocapitalize="none" required autofocus;
                    }
                    p {
                        label for="mot_de_passe" { "Mot de passe" }
                        input id="mot_de_passe" name="mot_de_passe" type="password"
                            autocomplete="current-password" required;
                    }
                    p { button type="submit" { "Se connecter" } }
                }
            }
        },
    )
}

pub fn home(
    node: &Node,
    session: &Session,
    o: &SyncOverview,
    records: i64,
    arrivals: &[crate::catalogue::Activity],
    journal: &[JournalLine],
) -> Markup {
    let pending: i64 = o.pending.iter().map(|(_, n)| n).sum();
    layout(
        node,
        Some(session),
        "Accueil",
        Nav::Home,
        html! {
            h1 { "Bonjour " (session.staff.login) }
            section class="cards" aria-label="La journée du centre" {
                div class="card" {
                    h2 { "Outilthèque" }
                    p { (fr::count(records, "notice", "notices")) " dans le catalogue partagé du réseau." }
                    form method="get" action="/catalogue" role="search" {
                        label for="q-accueil" { "Chercher un outil" }
                        input id="q-accueil" type="search" name="q" placeholder="titre, auteur, thème…";
                        button type="submit" { "Rechercher" }
                    }
                    @if session.staff.role.can_edit() {
                        p { a href="/notices/nouvelle" { "Ajouter une notice" } }
                    }
                }
                div class="card" {
                    h2 { "Synchronisation" }
                    @if pending == 0 {
                        p { "Aucune modification en attente d'envoi." }
                    } @else {
                        p { (fr::count(pending, "modification attend", "modifications attendent")) " d'être envoyée" @if pending > 1 { "s" } " au hub." }
                    }
                    @if !o.blocked.is_empty() {
                        p class="notice error" { (fr::count(o.blocked.len() as i64, "document est bloqué", "documents sont bloqués")) " par un refus du hub." }
                    }
                    p {
                        @match o.last_sync {
                            Some((at, _, _)) => { "Dernière synchronisation le " (fr::date_time(at)) "." },
                            None => { "Jamais synchronisé." },
                        }
                    }
                    p { a href="/synchronisation" { "Voir la synchronisation" } }
                }
            }
            section {
                h2 { "Reçu des autres centres" }
                @if arrivals.is_empty() {
                    p { "Aucune notice créée ou modifiée par un autre centre n'est encore arrivée par la synchronisation." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Quand" } th scope="col" { "Centre" } th scope="col" { "Quoi" } th scope="col" { "Notice" } } }
                        tbody {
                            @for (id, title, centre, action, at) in arrivals {
                                tr {
                                    td { (fr::date_time(*at)) }
                                    td { (fr::centre_short(centre)) }
                                    td { (fr::history_action(action)) }
                                    td { a href={ "/notices/" (id) } { (title) } }
                                }
                            }
                        }
                    }
                }
            }
            @if !journal.is_empty() {
                section {
                    h2 { "Dernières actions au centre" }
                    (journal_table(journal))
                }
            }
        },
    )
}

fn journal_table(lines: &[JournalLine]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Quand" } th scope="col" { "Qui" } th scope="col" { "Quoi" } th scope="col" { "Sur" } } }
            tbody {
                @for l in lines {
                    tr {
                        td { (fr::date_time(l.at)) }
                        td { (l.login) }
                        td { (l.action) }
                        td {
                            @if l.target.starts_with("r-") || l.target.contains('.') && !l.target.contains(' ') {
                                a href={ "/notices/" (l.target) } { "notice" }
                            } @else {
                                (l.target)
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn journal(node: &Node, session: &Session, lines: &[JournalLine]) -> Markup {
    layout(
        node,
        Some(session),
        "Journal",
        Nav::Journal,
        html! {
            h1 { "Journal des actions du centre" }
            p { "Qui a fait quoi sur ce nœud. Ce journal reste au centre : les documents partagés ne nomment que les centres." }
            (journal_table(lines))
        },
    )
}

pub fn sync(
    node: &Node,
    session: &Session,
    o: &SyncOverview,
    reachable: Option<bool>,
    outcome: Option<Result<SyncDone, String>>,
) -> Markup {
    let pending: i64 = o.pending.iter().map(|(_, n)| n).sum();
    layout(
        node,
        Some(session),
        "Synchronisation",
        Nav::Sync,
        html! {
            h1 { "Synchronisation avec le réseau" }
            @match &outcome {
                Some(Ok(d)) => p class="notice done" role="status" {
                    "Synchronisé en " (format!("{:.1}", d.seconds).replace('.', ",")) " s : "
                    (fr::count(d.sent as i64, "modification envoyée", "modifications envoyées")) ", "
                    (fr::count(d.received as i64, "reçue", "reçues")) "."
                    @if !d.refused.is_empty() { " " (fr::count(d.refused.len() as i64, "document refusé", "documents refusés")) " par le hub (voir plus bas)." }
                },
                Some(Err(e)) => p class="notice error" role="alert" { (e) },
                None => {},
            }
            dl class="facts" {
                dt { "Hub" }
                dd {
                    @match (&o.hub, reachable) {
                        (None, _) => "Ce nœud n'a pas rejoint la fédération : il travaille seul.",
                        (Some(hub), Some(true)) => { "joignable (" (hub) ")" },
                        (Some(hub), Some(false)) => { "injoignable (" (hub) ") : le travail continue ici, et partira au retour du hub." },
                        (Some(hub), None) => { (hub) },
                    }
                }
                dt { "Dernière synchronisation réussie" }
                dd {
                    @match o.last_sync {
                        Some((at, up, down)) => { (fr::date_time(at)) " (" (fr::count(up as i64, "envoyée", "envoyées")) ", " (fr::count(down as i64, "reçue", "reçues")) ")" },
                        None => "jamais",
                    }
                }
                dt { "Documents partagés sur ce nœud" }
                dd { (o.documents) }
                dt { "Modifications en attente d'envoi" }
                dd { (pending) }
            }
            @if session.staff.role.can_edit() && o.hub.is_some() {
                form method="post" action="/synchronisation" {
                    (csrf(session))
                    button type="submit" { "Synchroniser maintenant" }
                }
            }
            @if !o.pending.is_empty() {
                h2 { "En attente, par document" }
                table {
                    thead { tr { th scope="col" { "Document" } th scope="col" { "Modifications" } } }
                    tbody {
                        @for (doc, n) in &o.pending {
                            tr { td { (doc_label(doc)) } td { (n) } }
                        }
                    }
                }
            }
            @if !o.blocked.is_empty() {
                h2 { "Documents bloqués" }
                p { "Le hub a refusé ces documents à la dernière synchronisation. Les autres documents continuent de passer. Pour repartir de la copie du hub en gardant ce qui peut l'être, la personne qui administre le nœud lance « clps-node recover DOCUMENT »." }
                table {
                    thead { tr { th scope="col" { "Document" } th scope="col" { "Depuis" } th scope="col" { "Raison donnée par le hub" } } }
                    tbody {
                        @for b in &o.blocked {
                            tr { td { (doc_label(&b.doc_id)) } td { (fr::date_time(b.since)) } td { (b.reason) } }
                        }
                    }
                }
            }
        },
    )
}

/// « catalogue/047 » → « Catalogue (partie 047) ».
fn doc_label(doc: &str) -> String {
    match doc.split_once('/') {
        Some(("catalogue", n)) => format!("Catalogue (partie {n})"),
        Some(("stats", c)) => format!(
            "Statistiques publiées ({})",
            CentreId::new(c)
                .map(|c| fr::centre_short(&c).to_owned())
                .unwrap_or_else(|_| c.to_owned())
        ),
        Some(("appui", k)) => format!("Point d'appui {k}"),
        Some(("survey", k)) => format!("Enquête {k}"),
        _ => doc.to_owned(),
    }
}

fn select_codes(name: &str, id: &str, list: &vocab::CodeList, current: &str, any: &str) -> Markup {
    html! {
        select name=(name) id=(id) {
            option value="" selected[current.is_empty()] { (any) }
            @for c in &list.0 {
                option value=(c.code) selected[c.code == current] { (c.label) }
            }
        }
    }
}

pub fn search(
    node: &Node,
    session: &Session,
    p: &SearchParams,
    results: &SearchPage,
    facets: &Facets,
    errors: &[(&'static str, String)],
) -> Markup {
    let v = vocab::get();
    let error_of = |name: &str| {
        errors
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.as_str())
    };
    let number = |name: &'static str, id: &str, label: &str, value: &str, max: u32| {
        let error = error_of(name);
        let error_id = format!("{id}-erreur");
        html! {
            p {
                label for=(id) { (label) }
                input type="number" id=(id) name=(name) value=(value) min="0" max=(max) inputmode="numeric"
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| error_id.as_str())];
                @if let Some(e) = error {
                    span class="field-error" id=(error_id) { (e) }
                }
            }
        }
    };
    let page_link = |page: usize| -> String {
        let pairs = [
            ("q", p.q.as_str()),
            ("type", p.doc_type.as_str()),
            ("theme", p.theme.as_str()),
            ("public", p.public.as_str()),
            ("centre", p.centre.as_str()),
            ("dispo", p.dispo.as_str()),
            ("age", p.age.as_str()),
            ("depuis", p.depuis.as_str()),
            ("jusque", p.jusque.as_str()),
        ];
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, val) in pairs {
            if !val.is_empty() {
                s.append_pair(k, val);
            }
        }
        s.append_pair("page", &page.to_string());
        format!("/catalogue?{}", s.finish())
    };
    layout(
        node,
        Some(session),
        "Outilthèque",
        Nav::Catalogue,
        html! {
            h1 { "Outilthèque du réseau" }
            form class="search" method="get" action="/catalogue" role="search"
                hx-get="/catalogue" hx-trigger="input changed delay:300ms from:#q, change, submit"
                hx-target="#resultats" hx-select="#resultats" hx-swap="outerHTML" hx-push-url="true" {
                p class="q" {
                    label for="q" { "Mots recherchés" }
                    input id="q" type="search" name="q" value=(p.q) placeholder="titre, auteur, éditeur, description, thème" autocomplete="off";
                    button type="submit" { "Rechercher" }
                }
                fieldset class="filters" {
                    legend { "Affiner" }
                    p {
                        label for="f-type" { "Type de document" }
                        (select_codes("type", "f-type", &v.document_types, &p.doc_type, "tous les types"))
                    }
                    p {
                        label for="f-theme" { "Thématique" }
                        (select_codes("theme", "f-theme", &v.themes, &p.theme, "toutes les thématiques"))
                    }
                    p {
                        label for="f-public" { "Public" }
                        select name="public" id="f-public" {
                            option value="" selected[p.public.is_empty()] { "tous les publics" }
                            @for (public, n) in &facets.publics {
                                option value=(public) selected[*public == p.public] { (public.replace('_', " ")) " (" (n) ")" }
                            }
                        }
                    }
                    p {
                        label for="f-centre" { "Centre qui le détient" }
                        select name="centre" id="f-centre" {
                            option value="" selected[p.centre.is_empty()] { "tous les centres" }
                            @for c in &facets.centres {
                                option value=(c.as_str()) selected[c.as_str() == p.centre] { (fr::centre_name(c)) }
                            }
                        }
                    }
                    (number("age", "f-age", "Âge du public", &p.age, 120))
                    (number("depuis", "f-depuis", "Paru à partir de", &p.depuis, 9999))
                    (number("jusque", "f-jusque", "Paru jusqu'en", &p.jusque, 9999))
                    p class="check" {
                        input type="checkbox" id="f-dispo" name="dispo" value="1" checked[p.dispo == "1"];
                        label for="f-dispo" { "Seulement ce qui est disponible" }
                    }
                }
            }
            section id="resultats" aria-live="polite" {
                h2 class="count" {
                    @if results.hits.is_empty() {
                        "Aucune notice ne correspond."
                    } @else {
                        "Résultats " ((results.page - 1) * 20 + 1) " à " ((results.page - 1) * 20 + results.hits.len())
                        @if results.has_more { " (il y en a d'autres)" }
                    }
                    span class="total" { " — " (fr::count(results.total_records, "notice", "notices")) " au catalogue" }
                }
                ol class="hits" start=((results.page - 1) * 20 + 1) {
                    @for h in &results.hits {
                        li {
                            a href={ "/notices/" (h.id) } class="title" { (h.title) }
                            span class="meta" {
                                (catalogue::doc_type_label(&h.doc_type))
                                @if !h.publisher.is_empty() { " · " (h.publisher) }
                                @if let Some(y) = h.year { " · " (y) }
                            }
                            @if !h.copies.is_empty() {
                                span class="copies" {
                                    @for (i, c) in h.copies.iter().enumerate() {
                                        @if i > 0 { " ; " }
                                        (fr::centre_short(&c.centre)) " : " (fr::count(i64::from(c.copies), "exemplaire", "exemplaires")) ", " (fr::availability_label(c.availability))
                                    }
                                }
                            }
                        }
                    }
                }
                nav class="pages" aria-label="Pages de résultats" {
                    @if results.page > 1 { a href=(page_link(results.page - 1)) rel="prev" { "← Page précédente" } }
                    @if results.has_more { a href=(page_link(results.page + 1)) rel="next" { "Page suivante →" } }
                }
            }
        },
    )
}

fn list_labels(codes: impl IntoIterator<Item = String>, label: impl Fn(&str) -> String) -> String {
    codes
        .into_iter()
        .map(|c| label(&c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn centre_or_unknown(c: &Option<CentreId>) -> String {
    c.as_ref()
        .map(|c| fr::centre_name(c).to_owned())
        .unwrap_or_else(|| "centre inconnu".into())
}

fn field_error(errors: &[FieldError], field: Field) -> Option<&FieldError> {
    errors.iter().find(|e| e.field == field)
}

pub fn record(
    node: &Node,
    session: &Session,
    view: &RecordView,
    n: Option<&Notice>,
    desk: Markup,
    has_copies: bool,
) -> Markup {
    let r: &Record = &view.record;
    let f = &r.fields;
    let own = r.holdings.get(node.centre());
    let errors: &[FieldError] = match n {
        Some(Notice::Error(_, e)) => e,
        _ => &[],
    };
    let own_reviews: Vec<_> = r
        .reviews
        .iter()
        .filter(|(k, _)| &k.centre == node.centre())
        .collect();
    layout(
        node,
        Some(session),
        &f.title,
        Nav::Catalogue,
        html! {
            (notice(n))
            article class="notice-record" {
                h1 { (f.title) }
                dl class="fields" {
                    dt { "Type de document" } dd { (catalogue::doc_type_label(&f.doc_type)) }
                    @if !f.creator.is_empty() { dt { "Auteurs" } dd { (f.creator) } }
                    @if !f.publisher.is_empty() { dt { "Éditeur" } dd { (f.publisher) } }
                    @if let Some(y) = f.year { dt { "Année" } dd { (y) } }
                    @if !f.themes.is_empty() { dt { "Thématiques" } dd { (list_labels(f.themes.iter().cloned(), catalogue::theme_label)) } }
                    @if !f.publics.is_empty() { dt { "Publics" } dd { (list_labels(f.publics.iter().cloned(), |p| p.replace('_', " "))) } }
                    @if f.age_min.is_some() || f.age_max.is_some() {
                        dt { "Âge" }
                        dd {
                            @match (f.age_min, f.age_max) {
                                (Some(a), Some(b)) => { "de " (a) " à " (b) " ans" },
                                (Some(a), None) => { "à partir de " (a) " ans" },
                                (None, Some(b)) => { "jusqu'à " (b) " ans" },
                                (None, None) => {},
                            }
                        }
                    }
                    @if !f.languages.is_empty() { dt { "Langues" } dd { (list_labels(f.languages.iter().cloned(), str::to_owned)) } }
                    @if !f.conditions_of_use.is_empty() { dt { "Conditions d'utilisation" } dd { (f.conditions_of_use) } }
                    @if !f.links.is_empty() {
                        dt { "Liens" }
                        dd { @for l in &f.links { a href=(l) rel="noopener noreferrer" { (l) } br; } }
                    }
                    @if let Some(c) = &r.created_by { dt { "Notice créée par" } dd { (fr::centre_name(c)) } }
                    @if let Some(c) = &r.last_edited_by { dt { "Dernière modification par" } dd { (fr::centre_name(c)) } }
                }
                @if !f.description.is_empty() {
                    h2 { "Description" }
                    @for para in f.description.split("\n\n") {
                        p class="description" { (para) }
                    }
                }
                h2 id="reseau" { "Exemplaires dans le réseau" }
                @if r.holdings.is_empty() {
                    p { "Aucun centre n'a encore indiqué d'exemplaire." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Centre" } th scope="col" { "Exemplaires" } th scope="col" { "Cote" } th scope="col" { "Disponibilité" } } }
                        tbody {
                            @for (c, h) in &r.holdings {
                                tr { td { (fr::centre_name(c)) } td { (h.copies) } td { (h.shelf_mark) } td { (fr::availability_label(h.availability)) } }
                            }
                        }
                    }
                }
                @if !r.reviews.is_empty() {
                    h2 { "Avis des centres" }
                    ul class="reviews" {
                        @for (k, review) in &r.reviews {
                            li {
                                strong { (fr::centre_short(&k.centre)) ", " (fr::reviewer_label(k.role)) } " — " (review.rating) " sur 5"
                                @if !review.text.is_empty() { " : " (review.text) }
                            }
                        }
                    }
                }
            }
            @if session.staff.role.can_edit() {
                p class="actions noprint" { a class="button" href={ "/notices/" (r.id) "/modifier" } { "Modifier la notice" } }
            }
            @if !view.conflicts.is_empty() {
                section class="noprint" {
                    h2 { "Valeurs en conflit" }
                    p { "Plusieurs centres ont écrit ces champs en même temps. Tous voient la première valeur ; choisissez celle à garder." }
                    @for c in &view.conflicts {
                        div class="conflict" {
                            h3 { (fr::conflict_field(&c.field)) }
                            ul {
                                @for value in &c.values {
                                    li {
                                        "« " (value) " »"
                                        @if session.staff.role.can_edit() && SETTLEABLE.contains(&c.field.as_str()) {
                                            form method="post" action={ "/notices/" (r.id) "/conflit" } class="inline" {
                                                (csrf(session))
                                                input type="hidden" name="field" value=(c.field);
                                                input type="hidden" name="value" value=(value);
                                                button type="submit" { "Garder cette valeur" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.duplicates.is_empty() {
                section class="noprint" {
                    h2 { "Doublons probables" }
                    ul {
                        @for (id, title) in &view.duplicates {
                            li {
                                a href={ "/notices/" (id) } { (title) }
                                @if session.staff.role.can_edit() {
                                    form method="post" action="/doublons/fusion" class="inline" {
                                        (csrf(session))
                                        input type="hidden" name="a" value=(r.id);
                                        input type="hidden" name="b" value=(id);
                                        button type="submit" { "Fusionner avec cette notice" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (desk)
            @if session.staff.role.can_edit() {
                section class="own noprint" {
                    h2 { "Les exemplaires de " (fr::centre_name(node.centre())) " dans le catalogue partagé" }
                    @if has_copies {
                        p class="hint" { "Le nombre d'exemplaires et la disponibilité que voient les autres centres suivent les exemplaires ci-dessus, à chaque prêt et à chaque retour." }
                    }
                    @if !has_copies {
                    form method="post" action={ "/notices/" (r.id) "/exemplaires" } {
                        (csrf(session))
                        (number_input("copies", "Nombre d'exemplaires", &own.map(|h| h.copies.to_string()).unwrap_or_else(|| "0".into()), field_error(errors, Field::Copies)))
                        (text_input("shelf_mark", "Cote", own.map(|h| h.shelf_mark.as_str()).unwrap_or(""), field_error(errors, Field::ShelfMark)))
                        p {
                            label for="availability" { "Disponibilité" }
                            select id="availability" name="availability" {
                                @for a in Availability::ALL {
                                    option value=(a.code()) selected[own.map(|h| h.availability) == Some(a)] { (fr::availability_label(a)) }
                                }
                            }
                        }
                        p { button type="submit" { "Enregistrer les exemplaires" } }
                    }
                    }
                    h2 { "L'avis de " (fr::centre_name(node.centre())) }
                    form method="post" action={ "/notices/" (r.id) "/avis" } {
                        (csrf(session))
                        p {
                            label for="role" { "Donné au nom de la fonction" }
                            select id="role" name="role" {
                                @for role in ReviewerRole::ALL {
                                    option value=(role.code()) selected[own_reviews.first().map(|(k, _)| k.role) == Some(role)] { (fr::reviewer_label(role)) }
                                }
                            }
                        }
                        (number_input("rating", "Appréciation (de 1 à 5)", &own_reviews.first().map(|(_, r)| r.rating.to_string()).unwrap_or_default(), field_error(errors, Field::Rating)))
                        (area("text", "Avis", own_reviews.first().map(|(_, r)| r.text.as_str()).unwrap_or(""), 3, field_error(errors, Field::ReviewText)))
                        p { button type="submit" { "Enregistrer l'avis" } }
                    }
                }
            }
            @if !view.history.is_empty() {
                section class="noprint" {
                    h2 { "Historique" }
                    table {
                        thead { tr { th scope="col" { "Date" } th scope="col" { "Centre" } th scope="col" { "Action" } } }
                        tbody {
                            @for h in &view.history {
                                tr { td { (fr::date_time(h.at)) } td { (centre_or_unknown(&h.centre)) } td { (fr::history_action(&h.action)) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn described(name: &str, error: Option<&FieldError>) -> Option<String> {
    error.map(|_| format!("{name}-erreur"))
}

fn error_text(name: &str, error: Option<&FieldError>) -> Markup {
    html! {
        @if let Some(e) = error {
            span class="field-error" id={ (name) "-erreur" } { (fr::problem(e)) }
        }
    }
}

fn text_input(name: &str, label: &str, value: &str, error: Option<&FieldError>) -> Markup {
    html! {
        p class={ "field" @if error.is_some() { " invalid" } } {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(value)
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described(name, error)];
            (error_text(name, error))
        }
    }
}

fn number_input(name: &str, label: &str, value: &str, error: Option<&FieldError>) -> Markup {
    html! {
        p class={ "field" @if error.is_some() { " invalid" } } {
            label for=(name) { (label) }
            input type="text" inputmode="numeric" id=(name) name=(name) value=(value) size="6"
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described(name, error)];
            (error_text(name, error))
        }
    }
}

fn area(name: &str, label: &str, value: &str, rows: u32, error: Option<&FieldError>) -> Markup {
    html! {
        p class={ "field" @if error.is_some() { " invalid" } } {
            label for=(name) { (label) }
            textarea id=(name) name=(name) rows=(rows)
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described(name, error)] { (value) }
            (error_text(name, error))
        }
    }
}

pub fn record_form(
    node: &Node,
    session: &Session,
    id: Option<&str>,
    form: &RecordForm,
    base: Option<&RecordForm>,
    errors: &[FieldError],
    message: Option<&str>,
) -> Markup {
    let v = vocab::get();
    let title = if id.is_some() {
        "Modifier la notice"
    } else {
        "Nouvelle notice"
    };
    let action = match id {
        Some(id) => format!("/notices/{id}"),
        None => "/notices".to_owned(),
    };
    let e = |field| field_error(errors, field);
    layout(
        node,
        Some(session),
        title,
        Nav::Catalogue,
        html! {
            h1 { (title) }
            @if let Some(m) = message {
                p class="notice error" role="alert" { (m) }
            } @else if !errors.is_empty() {
                p class="notice error" role="alert" {
                    (fr::count(errors.len() as i64, "champ est à corriger", "champs sont à corriger")) " : rien n'a été écrit."
                }
            }
            p class="hint" { "Le catalogue est partagé avec tous les centres et conservé à jamais : n'y mettez ni nom de personne, ni adresse e-mail, ni numéro de téléphone." }
            form method="post" action=(action) class="record-form" {
                (csrf(session))
                @if let Some(base) = base {
                    input type="hidden" name="base" value=(serde_json::to_string(base).unwrap_or_default());
                }
                (text_input("title", "Titre (obligatoire)", &form.title, e(Field::Title)))
                p class={ "field" @if e(Field::DocType).is_some() { " invalid" } } {
                    label for="doc_type" { "Type de document (obligatoire)" }
                    select id="doc_type" name="doc_type" aria-invalid=[e(Field::DocType).map(|_| "true")] aria-describedby=[described("doc_type", e(Field::DocType))] {
                        option value="" selected[form.doc_type.is_empty()] { "— choisir —" }
                        @for c in &v.document_types.0 {
                            option value=(c.code) selected[c.code == form.doc_type] { (c.label) }
                        }
                    }
                    (error_text("doc_type", e(Field::DocType)))
                }
                (text_input("creator", "Auteurs (tels qu'imprimés sur l'outil)", &form.creator, e(Field::Creator)))
                (text_input("publisher", "Éditeur", &form.publisher, e(Field::Publisher)))
                (number_input("year", "Année", &form.year, e(Field::Year)))
                fieldset class={ "themes" @if e(Field::Themes).is_some() { " invalid" } } {
                    legend { "Thématiques" }
                    @for c in &v.themes.0 {
                        span class="choice" {
                            input type="checkbox" name="themes" id={ "theme-" (c.code) } value=(c.code) checked[form.themes.contains(&c.code)];
                            label for={ "theme-" (c.code) } { (c.label) }
                        }
                    }
                    (error_text("themes", e(Field::Themes)))
                }
                (text_input("publics", "Publics (séparés par des virgules : enfants, adolescents, enseignants…)", &form.publics, e(Field::Publics)))
                (number_input("age_min", "Âge minimum", &form.age_min, e(Field::AgeMin)))
                (number_input("age_max", "Âge maximum", &form.age_max, e(Field::AgeMax)))
                (area("description", "Description", &form.description, 8, e(Field::Description)))
                (text_input("conditions", "Conditions d'utilisation", &form.conditions, e(Field::Conditions)))
                (text_input("languages", "Langues (codes séparés par des virgules : fr, nl, en…)", &form.languages, e(Field::Languages)))
                (area("links", "Liens (un par ligne)", &form.links, 2, e(Field::Links)))
                @if id.is_none() {
                    fieldset {
                        legend { "Exemplaires de " (fr::centre_name(node.centre())) }
                        (number_input("copies", "Nombre d'exemplaires", "", e(Field::Copies)))
                        (text_input("shelf_mark", "Cote", "", e(Field::ShelfMark)))
                    }
                }
                p class="actions" {
                    button type="submit" { @if id.is_some() { "Enregistrer les modifications" } @else { "Ajouter au catalogue" } }
                    " "
                    a href=(id.map(|i| format!("/notices/{i}")).unwrap_or_else(|| "/catalogue".into())) { "Annuler" }
                }
            }
        },
    )
}

pub fn duplicates(
    node: &Node,
    session: &Session,
    pairs: &[(Record, Record)],
    n: Option<&Notice>,
) -> Markup {
    let side = |r: &Record| -> Markup {
        html! {
            td {
                a href={ "/notices/" (r.id) } { (r.fields.title) } br;
                (catalogue::doc_type_label(&r.fields.doc_type))
                @if !r.fields.publisher.is_empty() { " · " (r.fields.publisher) }
                @if let Some(y) = r.fields.year { " · " (y) }
                br;
                @for (c, h) in &r.holdings { (fr::centre_short(c)) " : " (h.copies) " " }
            }
        }
    };
    layout(
        node,
        Some(session),
        "Doublons",
        Nav::Duplicates,
        html! {
            (notice(n))
            h1 { "Doublons probables" }
            p { "Notices au même titre, au même éditeur et à la même année. La fusion garde les exemplaires de chaque centre sur la notice conservée." }
            @if pairs.is_empty() {
                p { "Aucun doublon probable dans le catalogue." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Notice" } th scope="col" { "Doublon probable" } th scope="col" { "Action" } } }
                    tbody {
                        @for (a, b) in pairs.iter().take(200) {
                            tr {
                                (side(a)) (side(b))
                                td {
                                    @if session.staff.role.can_edit() {
                                        form method="post" action="/doublons/fusion" {
                                            (csrf(session))
                                            input type="hidden" name="a" value=(a.id);
                                            input type="hidden" name="b" value=(b.id);
                                            button type="submit" { "Fusionner" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn accounts(node: &Node, session: &Session, users: &[Account], n: Option<&Notice>) -> Markup {
    layout(
        node,
        Some(session),
        "Comptes",
        Nav::Accounts,
        html! {
            (notice(n))
            h1 { "Comptes du personnel" }
            table {
                thead { tr { th scope="col" { "Identifiant" } th scope="col" { "Rôle" } th scope="col" { "État" } th scope="col" { "Créé le" } th scope="col" { "Actions" } } }
                tbody {
                    @for u in users {
                        tr {
                            td { (u.login) }
                            td { (fr::role_label(u.role)) }
                            td { @if u.active { "actif" } @else { "désactivé" } }
                            td { (fr::date_time(u.created_at)) }
                            td {
                                form method="post" action={ "/comptes/" (u.login) "/etat" } class="inline" {
                                    (csrf(session))
                                    input type="hidden" name="actif" value=(if u.active { "0" } else { "1" });
                                    button type="submit" { @if u.active { "Désactiver" } @else { "Réactiver" } }
                                }
                                form method="post" action={ "/comptes/" (u.login) "/mot-de-passe" } class="inline" {
                                    (csrf(session))
                                    label for={ "mdp-" (u.login) } { "Nouveau mot de passe pour " (u.login) }
                                    input type="password" id={ "mdp-" (u.login) } name="mot_de_passe" autocomplete="new-password" minlength="10";
                                    button type="submit" { "Réinitialiser" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Ajouter un compte" }
            form method="post" action="/comptes" class="narrow" {
                (csrf(session))
                p {
                    label for="identifiant" { "Identifiant (lettres minuscules, chiffres, points, tirets)" }
                    input type="text" id="identifiant" name="identifiant" autocomplete="off" autocapitalize="none" required;
                }
                p {
                    label for="role" { "Rôle" }
                    select id="role" name="role" {
                        @for r in Role::ALL {
                            option value=(r.code()) selected[r == Role::Documentaliste] { (fr::role_label(r)) }
                        }
                    }
                }
                p {
                    label for="mot_de_passe" { "Mot de passe (au moins 10 caractères)" }
                    input type="password" id="mot_de_passe" name="mot_de_passe" autocomplete="new-password" minlength="10" required;
                }
                p { button type="submit" { "Créer le compte" } }
            }
        },
    )
}
