//! Methodological accompaniments and events (trainings, exchange workshops,
//! concertations) in the browser: lists by year, forms, deletion after
//! confirmation. Co-organising centres are picked from the network's list;
//! partners and participants' names stay at the centre.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clps_model::CentreId;
use clps_model::vocab;
use maud::{Markup, html};

use super::pages::{Nav, Notice, csrf, layout, notice};
use super::records::{
    Params, codes, datalists, described, error_of, failure, field_error, form_errors_notice, id_of,
    invalid, labels, missing, param, shown_date, text, wrap,
};
use super::{Form, Signed, Web, editor_form, fr, page, require_editor, see_other};
use crate::app::local::{
    self, AccompanimentForm, Choices, EventForm, Field, FieldError, LocalError, scheme_label,
};
use crate::app::report::event_kind_label;
use crate::records::{EVENT_KINDS, Kind, List};

fn tabs(current: &str) -> Markup {
    html! {
        nav class="tabs" aria-label="Activités" {
            ul {
                li { a href="/accompagnements" aria-current=[(current == "acc").then_some("page")] { "Accompagnements" } }
                li { a href="/evenements" aria-current=[(current == "ev").then_some("page")] { "Formations, ateliers, concertations" } }
            }
        }
    }
}

/// The year asked for, or this year.
fn year_of(web: &Web, q: &Params) -> i32 {
    param(q, "annee")
        .parse()
        .ok()
        .filter(|y| (1990..=2100).contains(y))
        .unwrap_or_else(|| fr::this_year(web.node.now()))
}

fn year_form(action: &str, year: i32, this_year: i32) -> Markup {
    html! {
        form class="filters" method="get" action=(action) {
            p {
                label for="annee" { "Année" }
                select id="annee" name="annee" {
                    @for y in (2015..=this_year).rev() {
                        option value=(y) selected[y == year] { (y) }
                    }
                }
            }
            p { button type="submit" { "Afficher" } }
        }
    }
}

fn date_field(field: Field, label: &str, value: &str, errors: &[FieldError]) -> Markup {
    let name = field.name();
    html! {
        p class=(wrap(field, errors)) {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(shown_date(value)) size="10"
                placeholder="jj/mm/aaaa" autocomplete="off"
                aria-invalid=[invalid(field, errors)] aria-describedby=[described(field, errors, false)];
            (field_error(field, errors))
        }
    }
}

fn checkboxes(
    field: Field,
    legend: &str,
    list: &vocab::CodeList,
    checked: &[String],
    errors: &[FieldError],
) -> Markup {
    let name = field.name();
    html! {
        fieldset class={ "themes" @if error_of(errors, field).is_some() { " invalid" } }
            aria-describedby=[described(field, errors, false)] {
            legend { (legend) }
            @for c in &list.0 {
                span class="choice" {
                    input type="checkbox" name=(name) id={ (name) "-" (c.code) } value=(c.code)
                        checked[checked.contains(&c.code)];
                    label for={ (name) "-" (c.code) } { (c.label) }
                }
            }
            (field_error(field, errors))
        }
    }
}

fn confirm_delete(
    web: &Web,
    signed: &Signed,
    title: &str,
    what: &str,
    action: &str,
    back: &str,
) -> Response {
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            title,
            Nav::Activities,
            html! {
                h1 { (title) }
                p { (what) }
                p { "Il ne sera plus compté dans le rapport d'activité ni dans les chiffres publiés à la prochaine synchronisation. Cette suppression est définitive." }
                form method="post" action=(action) class="actions" {
                    (csrf(&signed.session))
                    button type="submit" class="danger" { "Supprimer définitivement" }
                    " " a href=(back) { "Annuler" }
                }
            },
        ),
    )
}

// ---- Accompaniments ----------------------------------------------------------

fn accompaniment_form_of(f: &Form) -> AccompanimentForm {
    AccompanimentForm {
        title: f.get("titre"),
        scheme: f.get("dispositif"),
        commune: f.get("commune"),
        start_date: f.get("date"),
        themes: f.all("themes"),
        axes: f.all("axes"),
        organisation: f.get("organisation"),
        note: f.get("note"),
    }
}

pub(super) async fn accompaniments(State(web): State<Web>, signed: Signed, q: Params) -> Response {
    let year = year_of(&web, &q);
    let rows = match web.node.accompaniments(year).await {
        Ok(r) => r,
        Err(e) => return failure(&signed, "Accompagnements", &e),
    };
    let notice_ = match param(&q, "fait") {
        "supprime" => Some(Notice::Done("Accompagnement supprimé.".into())),
        _ => None,
    };
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Accompagnements",
            Nav::Activities,
            html! {
                h1 { "Activités du centre" }
                (tabs("acc"))
                (notice(notice_.as_ref()))
                (year_form("/accompagnements", year, fr::this_year(web.node.now())))
                @if signed.session.staff.role.can_edit() {
                    p { a class="button" href="/accompagnements/nouveau" { "Nouvel accompagnement" } }
                }
                p class="count" role="status" { (fr::count(rows.len() as i64, "accompagnement", "accompagnements")) " en " (year) }
                @if !rows.is_empty() {
                    table class="list" {
                        thead { tr {
                            th scope="col" { "Début" } th scope="col" { "Projet" } th scope="col" { "Dispositif" }
                            th scope="col" { "Thématiques" } th scope="col" { "Axes" } th scope="col" { "Organisation" }
                            th scope="col" { "Commune" }
                        } }
                        tbody {
                            @for a in &rows {
                                tr {
                                    td { (fr::date(&a.start_date)) }
                                    td { a href={ "/accompagnements/" (a.id) } { (a.title) } }
                                    td { (scheme_label(&a.scheme)) }
                                    td { (labels(List::Theme, &a.themes)) }
                                    td { (labels(List::Axis, &a.axes)) }
                                    td { (a.organisation.clone().unwrap_or_default()) }
                                    td { (a.commune) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

fn accompaniment_page(
    web: &Web,
    signed: &Signed,
    id: Option<i64>,
    form: &AccompanimentForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
    choices: &Choices,
) -> Markup {
    let v = vocab::get();
    let title = match id {
        Some(_) => form.title.clone(),
        None => "Nouvel accompagnement".to_owned(),
    };
    let action = id.map_or_else(
        || "/accompagnements".to_owned(),
        |id| format!("/accompagnements/{id}"),
    );
    let e = errors;
    layout(
        &web.node,
        Some(&signed.session),
        &title,
        Nav::Activities,
        html! {
            h1 { (title) }
            (notice(notice_.as_ref()))
            (form_errors_notice(e))
            form method="post" action=(action) {
                (csrf(&signed.session))
                (text(Field::Title, "Projet accompagné", &form.title, e, html! {}))
                div class="grid" {
                    p class=(wrap(Field::Scheme, e)) {
                        label for="dispositif" { "Dispositif" }
                        select id="dispositif" name="dispositif" required
                            aria-invalid=[invalid(Field::Scheme, e)] aria-describedby=[described(Field::Scheme, e, false)] {
                            option value="" selected[form.scheme.is_empty()] { "— choisir —" }
                            @for s in local::schemes() {
                                option value=(s) selected[*s == form.scheme] { (scheme_label(s)) }
                            }
                        }
                        (field_error(Field::Scheme, e))
                    }
                    (date_field(Field::Date, "Début", &form.start_date, e))
                    (text(Field::Commune, "Commune", &form.commune, e, html! {}))
                    p class=(wrap(Field::Organisation, e)) {
                        label for="organisation" { "Organisation accompagnée" }
                        input type="text" id="organisation" name="organisation" value=(form.organisation)
                            list="organisations-liste" autocomplete="off"
                            aria-invalid=[invalid(Field::Organisation, e)]
                            aria-describedby=[described(Field::Organisation, e, false)];
                        (field_error(Field::Organisation, e))
                    }
                }
                (checkboxes(Field::Themes, "Thématiques", &v.themes, &form.themes, e))
                (checkboxes(Field::Axes, "Axes de la promotion de la santé", &v.accompaniment_axes, &form.axes, e))
                p class=(wrap(Field::Note, e)) {
                    label for="note" { "Note (reste au centre)" }
                    textarea id="note" name="note" rows="3"
                        aria-invalid=[invalid(Field::Note, e)] aria-describedby=[described(Field::Note, e, false)] { (form.note) }
                    (field_error(Field::Note, e))
                }
                (datalists(&Choices { organisations: choices.organisations.clone(), persons: Vec::new() }))
                @if signed.session.staff.role.can_edit() {
                    p class="actions" {
                        button type="submit" { @if id.is_some() { "Enregistrer les modifications" } @else { "Ajouter l'accompagnement" } }
                        @if let Some(id) = id { " " a href={ "/accompagnements/" (id) "/supprimer" } { "Supprimer…" } }
                        " " a href="/accompagnements" { "Retour à la liste" }
                    }
                }
            }
        },
    )
}

pub(super) async fn new_accompaniment(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let form = AccompanimentForm {
        start_date: fr::today(web.node.now()),
        ..AccompanimentForm::default()
    };
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        StatusCode::OK,
        accompaniment_page(&web, &signed, None, &form, &[], None, &choices),
    )
}

pub(super) async fn accompaniment(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Accompagnement introuvable");
    };
    let form = match web.node.accompaniment_form(id).await {
        Ok(f) => f,
        Err(e) => return failure(&signed, "Accompagnement introuvable", &e),
    };
    let notice_ = match param(&q, "fait") {
        "ajoute" => Some(Notice::Done(match param(&q, "cree") {
            "" => "Accompagnement ajouté.".to_owned(),
            org => format!("Accompagnement ajouté ; organisation « {org} » ajoutée aux contacts."),
        })),
        "modifie" => Some(Notice::Done("Accompagnement modifié.".into())),
        _ => None,
    };
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        StatusCode::OK,
        accompaniment_page(&web, &signed, Some(id), &form, &[], notice_, &choices),
    )
}

async fn write_accompaniment(web: Web, signed: Signed, id: Option<i64>, body: Bytes) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = accompaniment_form_of(&raw);
    match web
        .node
        .save_accompaniment(id, &form, Some(&signed.session.staff.login))
        .await
    {
        Ok((saved, created)) => {
            let what = if id.is_some() { "modifie" } else { "ajoute" };
            let cree: String = created
                .organisation
                .map(|o| form_urlencoded::byte_serialize(o.as_bytes()).collect())
                .unwrap_or_default();
            see_other(&format!("/accompagnements/{saved}?fait={what}&cree={cree}"))
        }
        Err(LocalError::Invalid(errors)) => {
            let choices = web.node.choices().await.unwrap_or_default();
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                accompaniment_page(&web, &signed, id, &form, &errors, None, &choices),
            )
        }
        Err(e) => failure(&signed, "Accompagnement non écrit", &e),
    }
}

pub(super) async fn create_accompaniment(
    State(web): State<Web>,
    signed: Signed,
    body: Bytes,
) -> Response {
    write_accompaniment(web, signed, None, body).await
}

pub(super) async fn save_accompaniment(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Accompagnement introuvable");
    };
    write_accompaniment(web, signed, Some(id), body).await
}

pub(super) async fn confirm_delete_accompaniment(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Accompagnement introuvable");
    };
    match web.node.accompaniment_form(id).await {
        Ok(f) => confirm_delete(
            &web,
            &signed,
            "Supprimer un accompagnement ?",
            &format!("« {} », commencé le {}.", f.title, fr::date(&f.start_date)),
            &format!("/accompagnements/{id}/supprimer"),
            &format!("/accompagnements/{id}"),
        ),
        Err(e) => failure(&signed, "Accompagnement introuvable", &e),
    }
}

pub(super) async fn delete_accompaniment(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Accompagnement introuvable");
    };
    match web
        .node
        .delete_activity(Kind::Accompaniment, id, Some(&signed.session.staff.login))
        .await
    {
        Ok(()) => see_other("/accompagnements?fait=supprime"),
        Err(e) => failure(&signed, "Accompagnement non supprimé", &e),
    }
}

// ---- Events ------------------------------------------------------------------

fn kind_label(kind: &str) -> &str {
    match kind {
        "formation" => "Formation",
        "atelier" => "Atelier d'échange",
        "concertation" => "Concertation",
        other => other,
    }
}

fn event_form_of(f: &Form) -> EventForm {
    let v = vocab::get();
    EventForm {
        kind: f.get("genre"),
        title: f.get("titre"),
        start_date: f.get("date"),
        end_date: f.get("fin"),
        centres: f.all("centres"),
        partners: f.get("partenaires"),
        participants: v
            .requester_professions
            .codes()
            .map(|c| (c.to_owned(), f.get(&format!("participants_{c}"))))
            .collect(),
    }
}

/// Organisers as people read them: centres by their short name, partners
/// as typed.
fn organisers_text(organisers: &[String]) -> String {
    organisers
        .iter()
        .map(|o| match CentreId::new(o) {
            Ok(c) => fr::centre_short(&c).to_owned(),
            Err(_) => o.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn events(State(web): State<Web>, signed: Signed, q: Params) -> Response {
    let year = year_of(&web, &q);
    let rows = match web.node.events(year).await {
        Ok(r) => r,
        Err(e) => return failure(&signed, "Événements", &e),
    };
    let notice_ = match param(&q, "fait") {
        "supprime" => Some(Notice::Done("Événement supprimé.".into())),
        _ => None,
    };
    let participants: i64 = rows.iter().map(|e| e.participants).sum();
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Formations, ateliers, concertations",
            Nav::Activities,
            html! {
                h1 { "Activités du centre" }
                (tabs("ev"))
                (notice(notice_.as_ref()))
                (year_form("/evenements", year, fr::this_year(web.node.now())))
                @if signed.session.staff.role.can_edit() {
                    p { a class="button" href="/evenements/nouveau" { "Nouvel événement" } }
                }
                p class="count" role="status" {
                    (fr::count(rows.len() as i64, "événement", "événements")) " en " (year) ", "
                    (fr::count(participants, "participant", "participants"))
                }
                @if !rows.is_empty() {
                    table class="list" {
                        thead { tr {
                            th scope="col" { "Date" } th scope="col" { "Type" } th scope="col" { "Titre" }
                            th scope="col" { "Organisateurs" } th scope="col" class="num" { "Participants" }
                        } }
                        tbody {
                            @for e in &rows {
                                tr {
                                    td { (fr::date(&e.start_date)) @if e.end_date != e.start_date { " au " (fr::date(&e.end_date)) } }
                                    td { (kind_label(&e.kind)) }
                                    td { a href={ "/evenements/" (e.id) } { (e.title) } }
                                    td { (organisers_text(&e.organisers)) }
                                    td class="num" { (e.participants) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

fn event_page(
    web: &Web,
    signed: &Signed,
    id: Option<i64>,
    form: &EventForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
) -> Markup {
    let v = vocab::get();
    let title = match id {
        Some(_) => form.title.clone(),
        None => "Nouvel événement".to_owned(),
    };
    let action = id.map_or_else(
        || "/evenements".to_owned(),
        |id| format!("/evenements/{id}"),
    );
    let e = errors;
    let count_of = |code: &str| {
        form.participants
            .iter()
            .find(|(p, _)| p == code)
            .map(|(_, n)| n.as_str())
            .unwrap_or("")
    };
    let kinds = vocab::CodeList(
        EVENT_KINDS
            .iter()
            .map(|k| vocab::Code {
                code: (*k).to_owned(),
                label: kind_label(k).to_owned(),
                since: None,
            })
            .collect(),
    );
    layout(
        &web.node,
        Some(&signed.session),
        &title,
        Nav::Activities,
        html! {
            h1 { (title) }
            (notice(notice_.as_ref()))
            (form_errors_notice(e))
            form method="post" action=(action) {
                (csrf(&signed.session))
                div class="grid" {
                    (codes(Field::Kind, "Type", &kinds, &form.kind, e, id.is_none()))
                    (text(Field::Title, "Titre", &form.title, e, html! {}))
                    (date_field(Field::Date, "Début", &form.start_date, e))
                    (date_field(Field::EndDate, "Fin (si plusieurs jours)", &form.end_date, e))
                }
                fieldset class={ "themes" @if error_of(e, Field::Organisers).is_some() { " invalid" } }
                    aria-describedby=[described(Field::Organisers, e, false)] {
                    legend { "Centres organisateurs" }
                    p class="hint" { "Un événement co-organisé est compté une seule fois dans les chiffres du réseau, chaque centre nommé." }
                    @for c in clps_model::centres::all() {
                        span class="choice" {
                            input type="checkbox" name="centres" id={ "centre-" (c.id) } value=(c.id)
                                checked[form.centres.contains(&c.id)];
                            label for={ "centre-" (c.id) } { (c.short) }
                        }
                    }
                    p class="field" {
                        label for="partenaires" { "Autres organisateurs (partenaires, un par ligne ; ils restent au centre)" }
                        textarea id="partenaires" name="partenaires" rows="2" { (form.partners) }
                    }
                    (field_error(Field::Organisers, e))
                }
                fieldset class={ "participants" @if error_of(e, Field::Participants).is_some() { " invalid" } }
                    aria-describedby=[described(Field::Participants, e, false)] {
                    legend { "Participants par profession" }
                    div class="grid" {
                        @for c in &v.requester_professions.0 {
                            p {
                                label for={ "participants_" (c.code) } { (c.label) }
                                input type="text" inputmode="numeric" size="6" id={ "participants_" (c.code) }
                                    name={ "participants_" (c.code) } value=(count_of(&c.code));
                            }
                        }
                    }
                    (field_error(Field::Participants, e))
                }
                @if signed.session.staff.role.can_edit() {
                    p class="actions" {
                        button type="submit" { @if id.is_some() { "Enregistrer les modifications" } @else { "Ajouter l'événement" } }
                        @if let Some(id) = id { " " a href={ "/evenements/" (id) "/supprimer" } { "Supprimer…" } }
                        " " a href="/evenements" { "Retour à la liste" }
                    }
                }
            }
        },
    )
}

pub(super) async fn new_event(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let form = EventForm {
        start_date: fr::today(web.node.now()),
        centres: vec![web.node.centre().to_string()],
        ..EventForm::default()
    };
    page(
        StatusCode::OK,
        event_page(&web, &signed, None, &form, &[], None),
    )
}

pub(super) async fn event(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Événement introuvable");
    };
    let form = match web.node.event_form(id).await {
        Ok(f) => f,
        Err(e) => return failure(&signed, "Événement introuvable", &e),
    };
    let notice_ = match param(&q, "fait") {
        "ajoute" => Some(Notice::Done("Événement ajouté.".into())),
        "modifie" => Some(Notice::Done("Événement modifié.".into())),
        _ => None,
    };
    page(
        StatusCode::OK,
        event_page(&web, &signed, Some(id), &form, &[], notice_),
    )
}

async fn write_event(web: Web, signed: Signed, id: Option<i64>, body: Bytes) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = event_form_of(&raw);
    match web
        .node
        .save_event(id, &form, Some(&signed.session.staff.login))
        .await
    {
        Ok(saved) => see_other(&format!(
            "/evenements/{saved}?fait={}",
            if id.is_some() { "modifie" } else { "ajoute" }
        )),
        Err(LocalError::Invalid(errors)) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            event_page(&web, &signed, id, &form, &errors, None),
        ),
        Err(e) => failure(&signed, "Événement non écrit", &e),
    }
}

pub(super) async fn create_event(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    write_event(web, signed, None, body).await
}

pub(super) async fn save_event(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Événement introuvable");
    };
    write_event(web, signed, Some(id), body).await
}

pub(super) async fn confirm_delete_event(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Événement introuvable");
    };
    match web.node.event_form(id).await {
        Ok(f) => confirm_delete(
            &web,
            &signed,
            "Supprimer un événement ?",
            &format!(
                "{} « {} » du {}.",
                event_kind_label(&f.kind),
                f.title,
                fr::date(&f.start_date)
            ),
            &format!("/evenements/{id}/supprimer"),
            &format!("/evenements/{id}"),
        ),
        Err(e) => failure(&signed, "Événement introuvable", &e),
    }
}

pub(super) async fn delete_event(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Événement introuvable");
    };
    match web
        .node
        .delete_activity(Kind::Event, id, Some(&signed.session.staff.login))
        .await
    {
        Ok(()) => see_other("/evenements?fait=supprime"),
        Err(e) => failure(&signed, "Événement non supprimé", &e),
    }
}
