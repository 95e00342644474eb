//! The centre's own records in the browser: demandes (fast entry, list,
//! edit, delete), organisations and persons (with a person's export and
//! erasure on request). All of it stays on the node.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clps_model::vocab;
use maud::{Markup, html};

use super::pages::{Nav, Notice, csrf, layout, notice};
use super::{
    Form, Signed, Web, editor_form, error_page, fr, page, require_editor, see_other, status_of,
};
use crate::app::local::{
    self, Choices, Field, FieldError, LocalError, OrganisationForm, OrganisationRow, PersonForm,
    PersonRequests, PersonRow, RequestFilter, RequestForm, RequestList, RequestRow,
};
use crate::records::List;

pub(super) type Params = Query<HashMap<String, String>>;

pub(super) fn param<'a>(q: &'a HashMap<String, String>, key: &str) -> &'a str {
    q.get(key).map(|s| s.trim()).unwrap_or("")
}

pub(super) fn id_of(text: &str) -> Option<i64> {
    text.parse().ok().filter(|n| *n > 0)
}

pub(super) fn failure(signed: &Signed, title: &str, e: &LocalError) -> Response {
    error_page(
        status_of(e.kind()),
        Some(&signed.session),
        title,
        &fr::local_error(e),
    )
}

pub(super) fn missing(signed: &Signed, what: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        Some(&signed.session),
        what,
        "Cette adresse ne correspond à aucune fiche du centre.",
    )
}

// ---- Field helpers -----------------------------------------------------------

pub(super) fn error_of(errors: &[FieldError], field: Field) -> Option<&FieldError> {
    errors.iter().find(|e| e.field == field)
}

fn error_id(field: Field) -> String {
    format!("{}-erreur", field.name())
}

pub(super) fn field_error(field: Field, errors: &[FieldError]) -> Markup {
    html! {
        @if let Some(e) = error_of(errors, field) {
            span class="field-error" id=(error_id(field)) { (fr::local_problem(e)) }
        }
    }
}

pub(super) fn wrap(field: Field, errors: &[FieldError]) -> &'static str {
    if error_of(errors, field).is_some() {
        "field invalid"
    } else {
        "field"
    }
}

pub(super) fn described(field: Field, errors: &[FieldError], hint: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint {
        ids.push(format!("{}-aide", field.name()));
    }
    if error_of(errors, field).is_some() {
        ids.push(error_id(field));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub(super) fn invalid(field: Field, errors: &[FieldError]) -> Option<&'static str> {
    error_of(errors, field).map(|_| "true")
}

pub(super) fn text(
    field: Field,
    label: &str,
    value: &str,
    errors: &[FieldError],
    extra: Markup,
) -> Markup {
    let name = field.name();
    html! {
        p class=(wrap(field, errors)) {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(value)
                aria-invalid=[invalid(field, errors)] aria-describedby=[described(field, errors, false)];
            (extra)
            (field_error(field, errors))
        }
    }
}

pub(super) fn codes(
    field: Field,
    label: &str,
    list: &vocab::CodeList,
    current: &str,
    errors: &[FieldError],
    autofocus: bool,
) -> Markup {
    let name = field.name();
    html! {
        p class=(wrap(field, errors)) {
            label for=(name) { (label) }
            select id=(name) name=(name) required autofocus[autofocus]
                aria-invalid=[invalid(field, errors)] aria-describedby=[described(field, errors, false)] {
                option value="" selected[current.is_empty()] { "— choisir —" }
                @for c in &list.0 {
                    option value=(c.code) selected[c.code == current] { (c.label) }
                }
            }
            (field_error(field, errors))
        }
    }
}

fn filter_codes(name: &str, label: &str, list: &vocab::CodeList, current: &str) -> Markup {
    html! {
        p {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" selected[current.is_empty()] { "Tous" }
                @for c in &list.0 {
                    option value=(c.code) selected[c.code == current] { (c.label) }
                }
            }
        }
    }
}

/// A date as staff write it (« 02/12/2026 »), or the text as typed when it
/// is no date (so the person sees what to correct).
pub(super) fn shown_date(text: &str) -> String {
    match local::parse_date(text) {
        Some(iso) => fr::date(&iso),
        None => text.to_owned(),
    }
}

pub(super) fn labels(list: List, codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| local::label(list, c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn form_errors_notice(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            p class="notice error" role="alert" {
                (fr::count(errors.len() as i64, "champ est à corriger", "champs sont à corriger")) " : rien n'a été écrit."
            }
        }
    }
}

// ---- Demandes ----------------------------------------------------------------

fn request_form_of(form: &Form) -> RequestForm {
    RequestForm {
        date: form.get("date"),
        service_type: form.get("service"),
        sector: form.get("secteur"),
        profession: form.get("profession"),
        contact_mode: form.get("contact"),
        themes: form.all("themes"),
        organisation: form.get("organisation"),
        person: form.get("personne"),
        note: form.get("note"),
    }
}

/// The values « enregistrer et nouvelle » keeps for the next demande.
fn kept_values(f: &RequestForm) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("date", &f.date)
        .append_pair("service", &f.service_type)
        .append_pair("secteur", &f.sector)
        .append_pair("profession", &f.profession)
        .append_pair("contact", &f.contact_mode);
    for t in &f.themes {
        s.append_pair("themes", t);
    }
    s.finish()
}

pub(super) fn datalists(choices: &Choices) -> Markup {
    html! {
        datalist id="organisations-liste" {
            @for name in &choices.organisations {
                option value=(name) {}
            }
        }
        datalist id="personnes-liste" {
            @for (name, org) in &choices.persons {
                @match org {
                    Some(o) => option value=(name) label={ (name) " — " (o) } {},
                    None => option value=(name) {},
                }
            }
        }
    }
}

struct RequestPage<'a> {
    id: Option<i64>,
    form: &'a RequestForm,
    errors: &'a [FieldError],
    notice: Option<Notice>,
    choices: &'a Choices,
}

fn request_page(web: &Web, signed: &Signed, p: RequestPage<'_>) -> Markup {
    let v = vocab::get();
    let (title, action) = match p.id {
        Some(id) => (format!("Demande n° {id}"), format!("/demandes/{id}")),
        None => ("Nouvelle demande".to_owned(), "/demandes".to_owned()),
    };
    let f = p.form;
    let e = p.errors;
    let can_edit = signed.session.staff.role.can_edit();
    layout(
        &web.node,
        Some(&signed.session),
        &title,
        Nav::Requests,
        html! {
            h1 { (title) }
            (notice(p.notice.as_ref()))
            (form_errors_notice(e))
            p class="hint" { "Une demande reste au centre : seuls des comptages quittent le nœud." }
            form method="post" action=(action) class="request-form" {
                (csrf(&signed.session))
                div class="grid" {
                    p class=(wrap(Field::Date, e)) {
                        label for="date" { "Date" }
                        input type="text" id="date" name="date" value=(shown_date(&f.date)) required
                            size="10" placeholder="jj/mm/aaaa" autocomplete="off"
                            aria-invalid=[invalid(Field::Date, e)] aria-describedby=[described(Field::Date, e, false)];
                        (field_error(Field::Date, e))
                    }
                    (codes(Field::ServiceType, "Type de service", &v.service_types, &f.service_type, e, p.id.is_none()))
                    p class=(wrap(Field::Organisation, e)) {
                        label for="organisation" { "Organisation" }
                        input type="text" id="organisation" name="organisation" value=(f.organisation)
                            list="organisations-liste" autocomplete="off"
                            aria-invalid=[invalid(Field::Organisation, e)]
                            aria-describedby=[described(Field::Organisation, e, true)];
                        span class="hint" id="organisation-aide" { "Tapez quelques lettres et choisissez ; un nom nouveau crée l'organisation." }
                        (field_error(Field::Organisation, e))
                    }
                    p class=(wrap(Field::Person, e)) {
                        label for="personne" { "Personne" }
                        input type="text" id="personne" name="personne" value=(f.person)
                            list="personnes-liste" autocomplete="off"
                            aria-invalid=[invalid(Field::Person, e)]
                            aria-describedby=[described(Field::Person, e, true)];
                        span class="hint" id="personne-aide" { "Prénom et nom ; facultatif." }
                        (field_error(Field::Person, e))
                    }
                    (codes(Field::Sector, "Secteur du demandeur", &v.requester_sectors, &f.sector, e, false))
                    (codes(Field::Profession, "Profession du demandeur", &v.requester_professions, &f.profession, e, false))
                    (codes(Field::ContactMode, "Mode de contact", &v.contact_modes, &f.contact_mode, e, false))
                }
                fieldset class={ "themes" @if error_of(e, Field::Themes).is_some() { " invalid" } }
                    aria-describedby=[described(Field::Themes, e, false)] {
                    legend { "Thématiques (une ou plusieurs)" }
                    @for c in &v.themes.0 {
                        span class="choice" {
                            input type="checkbox" name="themes" id={ "theme-" (c.code) } value=(c.code)
                                checked[f.themes.contains(&c.code)];
                            label for={ "theme-" (c.code) } { (c.label) }
                        }
                    }
                    (field_error(Field::Themes, e))
                }
                p class=(wrap(Field::Note, e)) {
                    label for="note" { "Note (reste au centre)" }
                    textarea id="note" name="note" rows="3"
                        aria-invalid=[invalid(Field::Note, e)] aria-describedby=[described(Field::Note, e, false)] { (f.note) }
                    (field_error(Field::Note, e))
                }
                (datalists(p.choices))
                @if can_edit {
                    @if p.id.is_none() {
                        p class="hint" { "Au clavier : Tab passe d'un champ à l'autre, une lettre choisit dans une liste, Espace coche une thématique ; Entrée dans un champ de texte (ou Alt+N) enregistre et ouvre la suivante." }
                    }
                    p class="actions" {
                        @if p.id.is_none() {
                            button type="submit" name="suite" value="nouvelle" accesskey="n" { "Enregistrer et nouvelle" }
                            " "
                            button type="submit" name="suite" value="liste" class="secondary" { "Enregistrer" }
                        } @else {
                            button type="submit" { "Enregistrer les modifications" }
                            " "
                            a href={ "/demandes/" (p.id.unwrap_or(0)) "/supprimer" } { "Supprimer cette demande…" }
                        }
                        " "
                        a href="/demandes" { "Retour à la liste" }
                    }
                }
            }
        },
    )
}

/// A form's themes come as repeated `themes` keys; a query string too.
fn themes_of_query(raw: &str) -> Vec<String> {
    form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| k == "themes")
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub(super) async fn new_request(
    State(web): State<Web>,
    signed: Signed,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let raw = Form(
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    let mut form = request_form_of(&raw);
    form.themes = themes_of_query(uri.query().unwrap_or(""));
    form.organisation.clear();
    form.person.clear();
    form.note.clear();
    if form.date.is_empty() {
        form.date = fr::today(web.node.now());
    }
    let notice = id_of(&raw.get("fait")).map(|n| {
        let created = raw.get("cree");
        Notice::Done(format!(
            "Demande n° {n} ajoutée{}. La suivante garde la date, le service, le secteur, la profession, le mode de contact et les thématiques.",
            if created.is_empty() {
                String::new()
            } else {
                format!(" ({created})")
            }
        ))
    });
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        StatusCode::OK,
        request_page(
            &web,
            &signed,
            RequestPage {
                id: None,
                form: &form,
                errors: &[],
                notice,
                choices: &choices,
            },
        ),
    )
}

fn created_text(c: &local::Created) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &c.organisation {
        parts.push(format!("organisation « {o} » ajoutée aux contacts"));
    }
    if let Some(p) = &c.person {
        parts.push(format!("personne « {p} » ajoutée aux contacts"));
    }
    parts.join(", ")
}

pub(super) async fn create_request(
    State(web): State<Web>,
    signed: Signed,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = request_form_of(&raw);
    match web
        .node
        .save_request(None, &form, Some(&signed.session.staff.login))
        .await
    {
        Ok((id, created)) => {
            if raw.get("suite") == "liste" {
                see_other(&format!("/demandes?fait={id}"))
            } else {
                let mut to = format!("/demandes/nouvelle?fait={id}&{}", kept_values(&form));
                let c = created_text(&created);
                if !c.is_empty() {
                    let c: String = form_urlencoded::byte_serialize(c.as_bytes()).collect();
                    to.push_str(&format!("&cree={c}"));
                }
                see_other(&to)
            }
        }
        Err(LocalError::Invalid(errors)) => {
            let choices = web.node.choices().await.unwrap_or_default();
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                request_page(
                    &web,
                    &signed,
                    RequestPage {
                        id: None,
                        form: &form,
                        errors: &errors,
                        notice: None,
                        choices: &choices,
                    },
                ),
            )
        }
        Err(e) => failure(&signed, "Demande non ajoutée", &e),
    }
}

pub(super) async fn request(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Demande introuvable");
    };
    let form = match web.node.request_form(id).await {
        Ok(f) => f,
        Err(e) => return failure(&signed, "Demande introuvable", &e),
    };
    let notice =
        (param(&q, "fait") == "modifiee").then(|| Notice::Done("Demande modifiée.".to_owned()));
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        StatusCode::OK,
        request_page(
            &web,
            &signed,
            RequestPage {
                id: Some(id),
                form: &form,
                errors: &[],
                notice,
                choices: &choices,
            },
        ),
    )
}

pub(super) async fn save_request(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Demande introuvable");
    };
    let form = request_form_of(&raw);
    match web
        .node
        .save_request(Some(id), &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(_) => see_other(&format!("/demandes/{id}?fait=modifiee")),
        Err(LocalError::Invalid(errors)) => {
            let choices = web.node.choices().await.unwrap_or_default();
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                request_page(
                    &web,
                    &signed,
                    RequestPage {
                        id: Some(id),
                        form: &form,
                        errors: &errors,
                        notice: None,
                        choices: &choices,
                    },
                ),
            )
        }
        Err(e) => failure(&signed, "Demande non modifiée", &e),
    }
}

fn request_summary(r: &RequestRow) -> Markup {
    html! {
        dl class="facts" {
            dt { "Date" } dd { (fr::date(&r.date)) }
            dt { "Type de service" } dd { (local::label(List::ServiceType, &r.service_type)) }
            dt { "Secteur" } dd { (local::label(List::Sector, &r.sector)) }
            dt { "Thématiques" } dd { (labels(List::Theme, &r.themes)) }
            @if let Some(o) = &r.organisation { dt { "Organisation" } dd { (o) } }
            @if let Some(p) = &r.person { dt { "Personne" } dd { (p) } }
        }
    }
}

pub(super) async fn confirm_delete_request(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Demande introuvable");
    };
    let row = match web.node.request_row(id).await {
        Ok(r) => r,
        Err(e) => return failure(&signed, "Demande introuvable", &e),
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Supprimer une demande",
            Nav::Requests,
            html! {
                h1 { "Supprimer la demande n° " (id) " ?" }
                (request_summary(&row))
                p { "Elle ne sera plus comptée dans le rapport d'activité ni dans les chiffres publiés à la prochaine synchronisation. Cette suppression est définitive." }
                form method="post" action={ "/demandes/" (id) "/supprimer" } class="actions" {
                    (csrf(&signed.session))
                    button type="submit" class="danger" { "Supprimer définitivement" }
                    " "
                    a href={ "/demandes/" (id) } { "Annuler" }
                }
            },
        ),
    )
}

pub(super) async fn delete_request(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Demande introuvable");
    };
    match web
        .node
        .delete_request(id, Some(&signed.session.staff.login))
        .await
    {
        Ok(()) => see_other(&format!("/demandes?supprimee={id}")),
        Err(e) => failure(&signed, "Demande non supprimée", &e),
    }
}

/// The list's filters, as typed, and what the operation got from them.
fn list_filter(q: &HashMap<String, String>) -> RequestFilter {
    let date = |k: &str| {
        let v = param(q, k);
        (!v.is_empty()).then(|| local::parse_date(v).unwrap_or_else(|| v.to_owned()))
    };
    let code = |k: &str| {
        let v = param(q, k);
        (!v.is_empty()).then(|| v.to_owned())
    };
    RequestFilter {
        from: date("du"),
        to: date("au"),
        service_type: code("service"),
        theme: code("theme"),
        sector: code("secteur"),
        organisation_id: id_of(param(q, "organisation")),
        person_id: id_of(param(q, "personne")),
        page: param(q, "page").parse().unwrap_or(1),
        per_page: 50,
    }
}

pub(super) async fn requests(State(web): State<Web>, signed: Signed, q: Params) -> Response {
    let mut filter = list_filter(&q);
    let mut errors = Vec::new();
    let list = match web.node.requests(filter.clone()).await {
        Ok(l) => l,
        Err(LocalError::Invalid(e)) => {
            // Drop the filters that cannot apply, say so next to them, and
            // show the rest.
            for err in &e {
                match err.field {
                    Field::From => filter.from = None,
                    Field::To => filter.to = None,
                    Field::ServiceType => filter.service_type = None,
                    Field::Sector => filter.sector = None,
                    Field::Themes => filter.theme = None,
                    _ => {}
                }
            }
            errors = e;
            match web.node.requests(filter.clone()).await {
                Ok(l) => l,
                Err(e) => return failure(&signed, "Demandes", &e),
            }
        }
        Err(e) => return failure(&signed, "Demandes", &e),
    };
    let notice = if let Some(n) = id_of(param(&q, "fait")) {
        Some(Notice::Done(format!("Demande n° {n} ajoutée.")))
    } else {
        id_of(param(&q, "supprimee")).map(|n| Notice::Done(format!("Demande n° {n} supprimée.")))
    };
    page(
        StatusCode::OK,
        requests_page(&web, &signed, &q, &list, &errors, notice),
    )
}

fn requests_page(
    web: &Web,
    signed: &Signed,
    q: &HashMap<String, String>,
    list: &RequestList,
    errors: &[FieldError],
    notice_: Option<Notice>,
) -> Markup {
    let v = vocab::get();
    let date_filter = |field: Field, label: &str| {
        let name = field.name();
        html! {
            p class=(wrap(field, errors)) {
                label for=(name) { (label) }
                input type="text" id=(name) name=(name) value=(shown_date(param(q, name)))
                    size="10" placeholder="jj/mm/aaaa" autocomplete="off"
                    aria-invalid=[invalid(field, errors)] aria-describedby=[described(field, errors, false)];
                @if let Some(e) = error_of(errors, field) {
                    span class="field-error" id=(error_id(field)) { (fr::local_problem(e)) " Ce filtre n'est pas appliqué." }
                }
            }
        }
    };
    let page_link = |n: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for k in [
            "du",
            "au",
            "service",
            "theme",
            "secteur",
            "organisation",
            "personne",
        ] {
            if !param(q, k).is_empty() {
                s.append_pair(k, param(q, k));
            }
        }
        s.append_pair("page", &n.to_string());
        format!("/demandes?{}", s.finish())
    };
    layout(
        &web.node,
        Some(&signed.session),
        "Demandes",
        Nav::Requests,
        html! {
            h1 { "Demandes" }
            (notice(notice_.as_ref()))
            @if signed.session.staff.role.can_edit() {
                p { a class="button" href="/demandes/nouvelle" { "Nouvelle demande" } }
            }
            form class="filters" method="get" action="/demandes" {
                (date_filter(Field::From, "Du"))
                (date_filter(Field::To, "Au"))
                (filter_codes("service", "Type de service", &v.service_types, param(q, "service")))
                (filter_codes("theme", "Thématique", &v.themes, param(q, "theme")))
                (filter_codes("secteur", "Secteur", &v.requester_sectors, param(q, "secteur")))
                @for k in ["organisation", "personne"] {
                    @if !param(q, k).is_empty() {
                        input type="hidden" name=(k) value=(param(q, k));
                    }
                }
                p { button type="submit" { "Filtrer" } }
            }
            p class="count" role="status" {
                span class="total" { (fr::count(list.total as i64, "demande", "demandes")) }
                @if list.pages > 1 { " · page " (list.page) " sur " (list.pages) }
            }
            @if !list.rows.is_empty() {
                table class="list" {
                    caption class="visually-hidden" { "Demandes, les plus récentes d'abord" }
                    thead {
                        tr {
                            th scope="col" { "Date" }
                            th scope="col" { "Type de service" }
                            th scope="col" { "Secteur" }
                            th scope="col" { "Profession" }
                            th scope="col" { "Contact" }
                            th scope="col" { "Thématiques" }
                            th scope="col" { "Organisation" }
                            th scope="col" { "Personne" }
                        }
                    }
                    tbody {
                        @for r in &list.rows {
                            tr {
                                td { a href={ "/demandes/" (r.id) } { (fr::date(&r.date)) } }
                                td { (local::label(List::ServiceType, &r.service_type)) }
                                td { (local::label(List::Sector, &r.sector)) }
                                td { (local::label(List::Profession, &r.profession)) }
                                td { (local::label(List::ContactMode, &r.contact_mode)) }
                                td { (labels(List::Theme, &r.themes)) }
                                td { (r.organisation.clone().unwrap_or_default()) }
                                td { (r.person.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if list.pages > 1 {
                nav class="pages" aria-label="Pages" {
                    @if list.page > 1 { a href=(page_link(list.page - 1)) rel="prev" { "← Précédentes" } " " }
                    @if list.page < list.pages { a href=(page_link(list.page + 1)) rel="next" { "Suivantes →" } }
                }
            }
        },
    )
}

// ---- Organisations -----------------------------------------------------------

fn organisation_form_of(form: &Form) -> OrganisationForm {
    OrganisationForm {
        name: form.get("nom"),
        org_type: form.get("type"),
        sector: form.get("secteur"),
        commune: form.get("commune"),
    }
}

fn contacts_tabs(current: &str) -> Markup {
    html! {
        nav class="tabs" aria-label="Contacts" {
            ul {
                li { a href="/organisations" aria-current=[(current == "org").then_some("page")] { "Organisations" } }
                li { a href="/personnes" aria-current=[(current == "pers").then_some("page")] { "Personnes" } }
            }
        }
    }
}

pub(super) async fn organisations(State(web): State<Web>, signed: Signed, q: Params) -> Response {
    let text = param(&q, "q").to_owned();
    let rows = match web.node.organisations(&text, 200).await {
        Ok(r) => r,
        Err(e) => return failure(&signed, "Organisations", &e),
    };
    let notice_ = id_of(param(&q, "supprimee")).map(|_| {
        Notice::Done(
            "Organisation supprimée ; ses personnes et ses demandes restent, sans elle.".into(),
        )
    });
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Organisations",
            Nav::Contacts,
            html! {
                h1 { "Contacts du centre" }
                (contacts_tabs("org"))
                (notice(notice_.as_ref()))
                p class="hint" { "Les contacts restent au centre : ils ne sont jamais envoyés au réseau." }
                form class="filters" method="get" action="/organisations" role="search" {
                    p {
                        label for="q" { "Rechercher une organisation (nom ou commune)" }
                        input type="search" id="q" name="q" value=(text);
                    }
                    p { button type="submit" { "Rechercher" } }
                }
                @if signed.session.staff.role.can_edit() {
                    p { a class="button" href="/organisations/nouvelle" { "Nouvelle organisation" } }
                }
                p class="count" role="status" { (fr::count(rows.len() as i64, "organisation", "organisations")) @if rows.len() == 200 { " (les 200 premières)" } }
                @if !rows.is_empty() {
                    table class="list" {
                        thead { tr {
                            th scope="col" { "Nom" } th scope="col" { "Type" } th scope="col" { "Secteur" }
                            th scope="col" { "Commune" } th scope="col" { "Personnes" } th scope="col" { "Demandes" }
                            th scope="col" { "Prêts" } th scope="col" { "Accompagnements" }
                        } }
                        tbody {
                            @for o in &rows {
                                tr {
                                    td { a href={ "/organisations/" (o.id) } { (o.name) } }
                                    td { (o.org_type) }
                                    td { (local::label(List::Sector, &o.sector)) }
                                    td { (o.commune) }
                                    td class="num" { (o.persons) }
                                    td class="num" { (o.requests) }
                                    td class="num" { (o.loans) }
                                    td class="num" { (o.accompaniments) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

fn organisation_page(
    web: &Web,
    signed: &Signed,
    row: Option<&OrganisationRow>,
    form: &OrganisationForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
    (persons, recent): (&[PersonRow], &[RequestRow]),
) -> Markup {
    let v = vocab::get();
    let title = row.map_or_else(|| "Nouvelle organisation".to_owned(), |o| o.name.clone());
    let action = row.map_or_else(
        || "/organisations".to_owned(),
        |o| format!("/organisations/{}", o.id),
    );
    let can_edit = signed.session.staff.role.can_edit();
    layout(
        &web.node,
        Some(&signed.session),
        &title,
        Nav::Contacts,
        html! {
            h1 { (title) }
            (notice(notice_.as_ref()))
            (form_errors_notice(errors))
            form method="post" action=(action) {
                (csrf(&signed.session))
                (text(Field::Name, "Nom", &form.name, errors, html! {}))
                (text(Field::OrgType, "Type (école, CPAS, service…)", &form.org_type, errors, html! {}))
                (codes(Field::Sector, "Secteur", &v.requester_sectors, &form.sector, errors, false))
                (text(Field::Commune, "Commune", &form.commune, errors, html! {}))
                @if can_edit {
                    p class="actions" {
                        button type="submit" { @if row.is_some() { "Enregistrer les modifications" } @else { "Ajouter l'organisation" } }
                        @if let Some(o) = row { " " a href={ "/organisations/" (o.id) "/supprimer" } { "Supprimer…" } }
                        " " a href="/organisations" { "Retour à la liste" }
                    }
                }
            }
            @if let Some(o) = row {
                h2 { "Liée à" }
                ul {
                    li { (fr::count(o.persons, "personne", "personnes")) }
                    li { a href={ "/demandes?organisation=" (o.id) } { (fr::count(o.requests, "demande", "demandes")) } }
                    li { (fr::count(o.loans, "prêt", "prêts")) }
                    li { (fr::count(o.accompaniments, "accompagnement", "accompagnements")) }
                }
                @if !persons.is_empty() {
                    h3 { "Personnes" }
                    ul {
                        @for p in persons {
                            li { a href={ "/personnes/" (p.id) } { (p.first_name) " " (p.last_name) } }
                        }
                    }
                }
                @if !recent.is_empty() {
                    h3 { "Dernières demandes" }
                    ul {
                        @for r in recent {
                            li { a href={ "/demandes/" (r.id) } { (fr::date(&r.date)) " — " (local::label(List::ServiceType, &r.service_type)) } }
                        }
                    }
                }
            }
        },
    )
}

pub(super) async fn new_organisation(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    page(
        StatusCode::OK,
        organisation_page(
            &web,
            &signed,
            None,
            &OrganisationForm::default(),
            &[],
            None,
            (&[], &[]),
        ),
    )
}

async fn organisation_view(
    web: &Web,
    signed: &Signed,
    id: i64,
    status: StatusCode,
    form: Option<&OrganisationForm>,
    errors: &[FieldError],
    notice_: Option<Notice>,
) -> Response {
    let row = match web.node.organisation(id).await {
        Ok(r) => r,
        Err(e) => return failure(signed, "Organisation introuvable", &e),
    };
    let saved;
    let form = match form {
        Some(f) => f,
        None => {
            saved = OrganisationForm {
                name: row.name.clone(),
                org_type: row.org_type.clone(),
                sector: row.sector.clone(),
                commune: row.commune.clone(),
            };
            &saved
        }
    };
    let persons = web
        .node
        .persons("", Some(id), 200)
        .await
        .unwrap_or_default();
    let recent = web
        .node
        .requests(RequestFilter {
            organisation_id: Some(id),
            page: 1,
            per_page: 10,
            ..RequestFilter::default()
        })
        .await
        .map(|l| l.rows)
        .unwrap_or_default();
    page(
        status,
        organisation_page(
            web,
            signed,
            Some(&row),
            form,
            errors,
            notice_,
            (&persons, &recent),
        ),
    )
}

pub(super) async fn organisation(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Organisation introuvable");
    };
    let notice_ = match param(&q, "fait") {
        "ajoutee" => Some(Notice::Done("Organisation ajoutée aux contacts.".into())),
        "modifiee" => Some(Notice::Done("Organisation modifiée.".into())),
        _ => None,
    };
    organisation_view(&web, &signed, id, StatusCode::OK, None, &[], notice_).await
}

pub(super) async fn create_organisation(
    State(web): State<Web>,
    signed: Signed,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = organisation_form_of(&raw);
    match web
        .node
        .save_organisation(None, &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(id) => see_other(&format!("/organisations/{id}?fait=ajoutee")),
        Err(LocalError::Invalid(errors)) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            organisation_page(&web, &signed, None, &form, &errors, None, (&[], &[])),
        ),
        Err(e) => failure(&signed, "Organisation non ajoutée", &e),
    }
}

pub(super) async fn save_organisation(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Organisation introuvable");
    };
    let form = organisation_form_of(&raw);
    match web
        .node
        .save_organisation(Some(id), &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(id) => see_other(&format!("/organisations/{id}?fait=modifiee")),
        Err(LocalError::Invalid(errors)) => {
            organisation_view(
                &web,
                &signed,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                &errors,
                None,
            )
            .await
        }
        Err(e) => failure(&signed, "Organisation non modifiée", &e),
    }
}

pub(super) async fn confirm_delete_organisation(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Organisation introuvable");
    };
    let o = match web.node.organisation(id).await {
        Ok(o) => o,
        Err(e) => return failure(&signed, "Organisation introuvable", &e),
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Supprimer une organisation",
            Nav::Contacts,
            html! {
                h1 { "Supprimer « " (o.name) " » ?" }
                p { "Ce qui y est lié reste, sans elle : "
                    (fr::count(o.persons, "personne", "personnes")) ", "
                    (fr::count(o.requests, "demande", "demandes")) ", "
                    (fr::count(o.loans, "prêt", "prêts")) " et "
                    (fr::count(o.accompaniments, "accompagnement", "accompagnements"))
                    ". Les chiffres du rapport ne changent pas." }
                form method="post" action={ "/organisations/" (id) "/supprimer" } class="actions" {
                    (csrf(&signed.session))
                    button type="submit" class="danger" { "Supprimer définitivement" }
                    " " a href={ "/organisations/" (id) } { "Annuler" }
                }
            },
        ),
    )
}

pub(super) async fn delete_organisation(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Organisation introuvable");
    };
    match web
        .node
        .delete_organisation(id, Some(&signed.session.staff.login))
        .await
    {
        Ok(()) => see_other(&format!("/organisations?supprimee={id}")),
        Err(e) => failure(&signed, "Organisation non supprimée", &e),
    }
}

// ---- Persons -----------------------------------------------------------------

fn person_form_of(form: &Form) -> PersonForm {
    PersonForm {
        first_name: form.get("prenom"),
        last_name: form.get("nom_famille"),
        email: form.get("email"),
        phone: form.get("telephone"),
        organisation: form.get("organisation"),
    }
}

pub(super) async fn persons(State(web): State<Web>, signed: Signed, q: Params) -> Response {
    let text = param(&q, "q").to_owned();
    let rows = match web.node.persons(&text, None, 200).await {
        Ok(r) => r,
        Err(e) => return failure(&signed, "Personnes", &e),
    };
    let notice_ = match param(&q, "fait") {
        "supprimee" => Some(Notice::Done("Personne supprimée.".into())),
        "effacee" => Some(Notice::Done(format!(
            "Personne effacée à sa demande : son nom, son e-mail et son téléphone ne sont plus sur le nœud ; {}, {}.",
            fr::count(
                param(&q, "gardees").parse::<i64>().unwrap_or(0),
                "demande gardée sans nom",
                "demandes gardées sans nom"
            ),
            fr::count(
                param(&q, "notes").parse::<i64>().unwrap_or(0),
                "note vidée",
                "notes vidées"
            ),
        ))),
        _ => None,
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Personnes",
            Nav::Contacts,
            html! {
                h1 { "Contacts du centre" }
                (contacts_tabs("pers"))
                (notice(notice_.as_ref()))
                p class="hint" { "Les contacts restent au centre : ils ne sont jamais envoyés au réseau." }
                form class="filters" method="get" action="/personnes" role="search" {
                    p {
                        label for="q" { "Rechercher une personne (nom, e-mail, organisation)" }
                        input type="search" id="q" name="q" value=(text);
                    }
                    p { button type="submit" { "Rechercher" } }
                }
                @if signed.session.staff.role.can_edit() {
                    p { a class="button" href="/personnes/nouvelle" { "Nouvelle personne" } }
                }
                p class="count" role="status" { (fr::count(rows.len() as i64, "personne", "personnes")) @if rows.len() == 200 { " (les 200 premières)" } }
                @if !rows.is_empty() {
                    table class="list" {
                        thead { tr {
                            th scope="col" { "Nom" } th scope="col" { "Organisation" } th scope="col" { "E-mail" }
                            th scope="col" { "Téléphone" } th scope="col" { "Demandes" }
                        } }
                        tbody {
                            @for p in &rows {
                                tr {
                                    td { a href={ "/personnes/" (p.id) } { (p.last_name) " " (p.first_name) } }
                                    td { (p.organisation.clone().unwrap_or_default()) }
                                    td { (p.email.clone().unwrap_or_default()) }
                                    td { (p.phone.clone().unwrap_or_default()) }
                                    td class="num" { (p.requests) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

fn person_page(
    web: &Web,
    signed: &Signed,
    row: Option<&PersonRow>,
    form: &PersonForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
    choices: &Choices,
) -> Markup {
    let title = row.map_or_else(
        || "Nouvelle personne".to_owned(),
        |p| format!("{} {}", p.first_name, p.last_name),
    );
    let action = row.map_or_else(
        || "/personnes".to_owned(),
        |p| format!("/personnes/{}", p.id),
    );
    let can_edit = signed.session.staff.role.can_edit();
    layout(
        &web.node,
        Some(&signed.session),
        &title,
        Nav::Contacts,
        html! {
            h1 { (title) }
            (notice(notice_.as_ref()))
            (form_errors_notice(errors))
            form method="post" action=(action) {
                (csrf(&signed.session))
                (text(Field::FirstName, "Prénom", &form.first_name, errors, html! {}))
                (text(Field::LastName, "Nom", &form.last_name, errors, html! {}))
                (text(Field::Email, "E-mail", &form.email, errors, html! {}))
                (text(Field::Phone, "Téléphone", &form.phone, errors, html! {}))
                p class=(wrap(Field::Organisation, errors)) {
                    label for="organisation" { "Organisation" }
                    input type="text" id="organisation" name="organisation" value=(form.organisation)
                        list="organisations-liste" autocomplete="off"
                        aria-invalid=[invalid(Field::Organisation, errors)]
                        aria-describedby=[described(Field::Organisation, errors, false)];
                    (field_error(Field::Organisation, errors))
                }
                (datalists(&Choices { organisations: choices.organisations.clone(), persons: Vec::new() }))
                @if can_edit {
                    p class="actions" {
                        button type="submit" { @if row.is_some() { "Enregistrer les modifications" } @else { "Ajouter la personne" } }
                        " " a href="/personnes" { "Retour à la liste" }
                    }
                }
            }
            @if let Some(p) = row {
                h2 { "Liée à" }
                p { a href={ "/demandes?personne=" (p.id) } { (fr::count(p.requests, "demande", "demandes")) } }
                h2 { "Ses droits" }
                p { "Une personne peut demander ce que le centre garde sur elle (droit d'accès) et son effacement (droit à l'effacement, RGPD)." }
                ul class="actions" {
                    li { a href={ "/personnes/" (p.id) "/export.json" } download { "Exporter ses données (fichier JSON)" } }
                    @if can_edit {
                        li { a href={ "/personnes/" (p.id) "/effacer" } { "Effacer à sa demande…" } }
                        li { a href={ "/personnes/" (p.id) "/supprimer" } { "Supprimer la fiche…" } }
                    }
                }
            }
        },
    )
}

pub(super) async fn new_person(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        StatusCode::OK,
        person_page(
            &web,
            &signed,
            None,
            &PersonForm::default(),
            &[],
            None,
            &choices,
        ),
    )
}

async fn person_view(
    web: &Web,
    signed: &Signed,
    id: i64,
    status: StatusCode,
    form: Option<&PersonForm>,
    errors: &[FieldError],
    notice_: Option<Notice>,
) -> Response {
    let row = match web.node.person(id).await {
        Ok(r) => r,
        Err(e) => return failure(signed, "Personne introuvable", &e),
    };
    let saved;
    let form = match form {
        Some(f) => f,
        None => {
            saved = web.node.person_form(id).await.unwrap_or_default();
            &saved
        }
    };
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        status,
        person_page(web, signed, Some(&row), form, errors, notice_, &choices),
    )
}

pub(super) async fn person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    let notice_ = match param(&q, "fait") {
        "ajoutee" => Some(Notice::Done("Personne ajoutée aux contacts.".into())),
        "modifiee" => Some(Notice::Done("Personne modifiée.".into())),
        _ => None,
    };
    person_view(&web, &signed, id, StatusCode::OK, None, &[], notice_).await
}

pub(super) async fn create_person(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = person_form_of(&raw);
    match web
        .node
        .save_person(None, &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(id) => see_other(&format!("/personnes/{id}?fait=ajoutee")),
        Err(LocalError::Invalid(errors)) => {
            let choices = web.node.choices().await.unwrap_or_default();
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                person_page(&web, &signed, None, &form, &errors, None, &choices),
            )
        }
        Err(e) => failure(&signed, "Personne non ajoutée", &e),
    }
}

pub(super) async fn save_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    let form = person_form_of(&raw);
    match web
        .node
        .save_person(Some(id), &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(id) => see_other(&format!("/personnes/{id}?fait=modifiee")),
        Err(LocalError::Invalid(errors)) => {
            person_view(
                &web,
                &signed,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                &errors,
                None,
            )
            .await
        }
        Err(e) => failure(&signed, "Personne non modifiée", &e),
    }
}

pub(super) async fn export_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    match web.node.export_person(id).await {
        Ok(export) => {
            let body = serde_json::to_string_pretty(&export).unwrap_or_default();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/json; charset=utf-8".to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"personne-{id}.json\""),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => failure(&signed, "Personne introuvable", &e),
    }
}

pub(super) async fn confirm_erase_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    let p = match web.node.person(id).await {
        Ok(p) => p,
        Err(e) => return failure(&signed, "Personne introuvable", &e),
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Effacer une personne",
            Nav::Contacts,
            html! {
                h1 { "Effacer " (p.first_name) " " (p.last_name) " à sa demande ?" }
                p { "Ce qui part : le prénom, le nom, l'e-mail, le téléphone, et les notes de ses demandes (un texte libre peut la nommer)." }
                @if p.requests > 0 {
                    p { "Ce qui reste : ses " (fr::count(p.requests, "demande", "demandes")) ", sans nom, pour que les chiffres de l'année ne changent pas. Le journal garde la trace de l'effacement, sans le nom." }
                } @else {
                    p { "Elle n'est liée à aucune demande. Le journal garde la trace de l'effacement, sans le nom." }
                }
                p { "Pensez à lui remettre d'abord l'export de ses données si elle l'a demandé : après l'effacement, il n'y a plus rien à exporter." }
                form method="post" action={ "/personnes/" (id) "/effacer" } class="actions" {
                    (csrf(&signed.session))
                    button type="submit" class="danger" { "Effacer définitivement" }
                    " " a href={ "/personnes/" (id) } { "Annuler" }
                }
            },
        ),
    )
}

pub(super) async fn erase_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    match web
        .node
        .erase_person(id, Some(&signed.session.staff.login))
        .await
    {
        Ok(done) => see_other(&format!(
            "/personnes?fait=effacee&gardees={}&notes={}",
            done.requests_kept, done.notes_cleared
        )),
        Err(e) => failure(&signed, "Effacement impossible", &e),
    }
}

pub(super) async fn confirm_delete_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    let p = match web.node.person(id).await {
        Ok(p) => p,
        Err(e) => return failure(&signed, "Personne introuvable", &e),
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Supprimer une personne",
            Nav::Contacts,
            html! {
                h1 { "Supprimer la fiche de " (p.first_name) " " (p.last_name) " ?" }
                form method="post" action={ "/personnes/" (id) "/supprimer" } {
                    (csrf(&signed.session))
                    @if p.requests > 0 {
                        fieldset {
                            legend { "Elle est liée à " (fr::count(p.requests, "demande", "demandes")) ". Que faire de ces demandes ?" }
                            p class="choice" {
                                input type="radio" name="demandes" id="garder" value="garder" checked;
                                label for="garder" { "Les garder, sans la personne (les chiffres de l'année ne changent pas)" }
                            }
                            p class="choice" {
                                input type="radio" name="demandes" id="supprimer" value="supprimer";
                                label for="supprimer" { "Les supprimer aussi (elles ne seront plus comptées)" }
                            }
                        }
                    }
                    p class="actions" {
                        button type="submit" class="danger" { "Supprimer définitivement" }
                        " " a href={ "/personnes/" (id) } { "Annuler" }
                    }
                }
            },
        ),
    )
}

pub(super) async fn delete_person(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Personne introuvable");
    };
    let what = if raw.get("demandes") == "supprimer" {
        PersonRequests::Delete
    } else {
        PersonRequests::Keep
    };
    match web
        .node
        .delete_person(id, what, Some(&signed.session.staff.login))
        .await
    {
        Ok(_) => see_other("/personnes?fait=supprimee"),
        Err(e) => failure(&signed, "Personne non supprimée", &e),
    }
}
