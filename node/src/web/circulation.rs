//! Circulation in the browser: the lending desk (lend and return by barcode,
//! what is out), renewals, the overdue list with a reminder letter per
//! borrower, and on each record page the centre's copies and reservations.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::pages::{Nav, Notice, csrf, layout, notice};
use super::records::{
    datalists, described, field_error, id_of, invalid, missing, shown_date, wrap,
};
use super::{Form, Signed, Web, editor_form, error_page, fr, page, status_of};
use crate::app::circulation::{
    CirculationError, CopyRow, LendForm, LoanRow, MAX_RENEWALS, ReservationRow, STATES,
};
use crate::app::local::{Choices, Field, FieldError, LocalError};

fn state_label(code: &str) -> &str {
    STATES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, l)| l)
}

/// One sentence for staff.
pub(super) fn circulation_error(e: &CirculationError) -> String {
    match e {
        CirculationError::UnknownBarcode(b) => format!(
            "Aucun exemplaire ne porte le code « {b} » : vérifiez le code, ou ajoutez l'exemplaire depuis sa notice."
        ),
        CirculationError::AlreadyOut { barcode, due } => format!(
            "L'exemplaire « {barcode} » est déjà en prêt jusqu'au {} : enregistrez d'abord son retour.",
            fr::date(due)
        ),
        CirculationError::NotOut(b) => {
            format!("L'exemplaire « {b} » n'est pas en prêt : rien à rendre.")
        }
        CirculationError::Lost(b) => {
            format!("L'exemplaire « {b} » est noté perdu : il ne peut pas sortir.")
        }
        CirculationError::Reserved { record, who } => format!(
            "« {record} » est réservé pour {who}, premier de la file : prêtez-le à cette organisation ou annulez sa réservation."
        ),
        CirculationError::BarcodeTaken(b) => {
            format!("Le code « {b} » est déjà celui d'un autre exemplaire.")
        }
        CirculationError::TooManyRenewals(_) => {
            format!("Ce prêt a déjà été prolongé {MAX_RENEWALS} fois : l'exemplaire doit revenir.")
        }
        CirculationError::NoRecord(_) => "Cette notice n'existe pas dans le catalogue.".into(),
        CirculationError::NoReservation(_) => {
            "Cette réservation n'existe pas ou est déjà close.".into()
        }
        CirculationError::Local(e) => fr::local_error(e),
        CirculationError::Store(_) => fr::unavailable().into(),
    }
}

fn field_errors(e: &CirculationError) -> Vec<FieldError> {
    match e {
        CirculationError::Local(LocalError::Invalid(errors)) => errors.clone(),
        _ => Vec::new(),
    }
}

fn today(web: &Web) -> String {
    fr::today(web.node.now())
}

fn borrower_text(l: &LoanRow) -> String {
    match &l.person {
        Some(p) => format!("{} ({p})", l.borrower),
        None => l.borrower.clone(),
    }
}

// ---- The desk ----------------------------------------------------------------

fn desk_page(
    web: &Web,
    signed: &Signed,
    form: &LendForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
    open: &[LoanRow],
    choices: &Choices,
) -> Markup {
    let e = errors;
    let today = today(web);
    let can_edit = signed.session.staff.role.can_edit();
    layout(
        &web.node,
        Some(&signed.session),
        "Prêts",
        Nav::Loans,
        html! {
            h1 { "Prêts et retours" }
            (notice(notice_.as_ref()))
            p { a href="/retards" { "Les prêts en retard et les lettres de rappel" } }
            @if can_edit {
                div class="cards" {
                    section class="card" aria-labelledby="preter" {
                        h2 id="preter" { "Prêter" }
                        form method="post" action="/pret" {
                            (csrf(&signed.session))
                            p class=(wrap(Field::Barcode, e)) {
                                label for="code_barre" { "Code-barres ou numéro d'inventaire" }
                                input type="text" id="code_barre" name="code_barre" value=(form.barcode)
                                    autocomplete="off" autofocus
                                    aria-invalid=[invalid(Field::Barcode, e)] aria-describedby=[described(Field::Barcode, e, false)];
                                (field_error(Field::Barcode, e))
                            }
                            p class=(wrap(Field::Organisation, e)) {
                                label for="organisation" { "Emprunteur (organisation)" }
                                input type="text" id="organisation" name="organisation" value=(form.borrower)
                                    list="organisations-liste" autocomplete="off"
                                    aria-invalid=[invalid(Field::Organisation, e)] aria-describedby=[described(Field::Organisation, e, false)];
                                (field_error(Field::Organisation, e))
                            }
                            p class=(wrap(Field::Person, e)) {
                                label for="personne" { "Personne venue (facultatif)" }
                                input type="text" id="personne" name="personne" value=(form.person)
                                    list="personnes-liste" autocomplete="off"
                                    aria-invalid=[invalid(Field::Person, e)] aria-describedby=[described(Field::Person, e, false)];
                                (field_error(Field::Person, e))
                            }
                            div class="grid" {
                                p class=(wrap(Field::Date, e)) {
                                    label for="date" { "Sorti le" }
                                    input type="text" id="date" name="date" value=(shown_date(&form.out_date))
                                        size="10" placeholder=(fr::date(&today)) autocomplete="off"
                                        aria-invalid=[invalid(Field::Date, e)] aria-describedby=[described(Field::Date, e, false)];
                                    (field_error(Field::Date, e))
                                }
                                p class=(wrap(Field::DueDate, e)) {
                                    label for="retour_prevu" { "Retour prévu" }
                                    input type="text" id="retour_prevu" name="retour_prevu" value=(shown_date(&form.due_date))
                                        size="10" placeholder="jj/mm/aaaa" autocomplete="off"
                                        aria-invalid=[invalid(Field::DueDate, e)] aria-describedby=[described(Field::DueDate, e, false)];
                                    (field_error(Field::DueDate, e))
                                }
                            }
                            p class="hint" { "Vides : aujourd'hui, et la durée habituelle du type de document (4 semaines pour un outil pédagogique, 3 pour un livre, 2 pour un DVD)." }
                            p class=(wrap(Field::Note, e)) {
                                label for="note" { "Note (reste au centre)" }
                                input type="text" id="note" name="note" value=(form.note);
                                (field_error(Field::Note, e))
                            }
                            p { button type="submit" { "Prêter" } }
                        }
                    }
                    section class="card" aria-labelledby="rendre" {
                        h2 id="rendre" { "Retour" }
                        form method="post" action="/retour" {
                            (csrf(&signed.session))
                            p {
                                label for="retour_code" { "Code-barres de l'exemplaire rendu" }
                                input type="text" id="retour_code" name="code_barre" autocomplete="off";
                            }
                            p { button type="submit" { "Enregistrer le retour" } }
                        }
                    }
                }
                (datalists(choices))
            }
            h2 { "En prêt" }
            p class="count" role="status" { (fr::count(open.len() as i64, "exemplaire dehors", "exemplaires dehors")) }
            @if !open.is_empty() {
                table class="list" {
                    thead { tr {
                        th scope="col" { "Retour prévu" } th scope="col" { "Exemplaire" } th scope="col" { "Notice" }
                        th scope="col" { "Emprunteur" } th scope="col" { "Sorti le" } th scope="col" { "Prolongations" }
                        @if can_edit { th scope="col" { span class="visually-hidden" { "Action" } } }
                    } }
                    tbody {
                        @for l in open {
                            tr class=[(l.due_date < today).then_some("late")] {
                                td { (fr::date(&l.due_date)) @if l.due_date < today { " (en retard)" } }
                                td { (l.barcode) }
                                td { a href={ "/notices/" (l.record_id) } { (l.title) } }
                                td { (borrower_text(l)) }
                                td { (fr::date(&l.out_date)) }
                                td class="num" { (l.renewals) }
                                @if can_edit {
                                    td {
                                        @if l.renewals < MAX_RENEWALS {
                                            form class="inline" method="post" action={ "/prets/" (l.id) "/prolonger" } {
                                                (csrf(&signed.session))
                                                button type="submit" class="secondary" aria-label={ "Prolonger le prêt de " (l.barcode) } { "Prolonger" }
                                            }
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

async fn desk(
    web: &Web,
    signed: &Signed,
    status: StatusCode,
    form: &LendForm,
    errors: &[FieldError],
    notice_: Option<Notice>,
) -> Response {
    let open = match web.node.open_loans().await {
        Ok(o) => o,
        Err(e) => {
            return error_page(
                status_of(e.kind()),
                Some(&signed.session),
                "Prêts",
                &circulation_error(&e),
            );
        }
    };
    let choices = web.node.choices().await.unwrap_or_default();
    page(
        status,
        desk_page(web, signed, form, errors, notice_, &open, &choices),
    )
}

pub(super) async fn desk_get(State(web): State<Web>, signed: Signed) -> Response {
    desk(
        &web,
        &signed,
        StatusCode::OK,
        &LendForm::default(),
        &[],
        None,
    )
    .await
}

pub(super) async fn lend(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = LendForm {
        barcode: raw.get("code_barre"),
        borrower: raw.get("organisation"),
        person: raw.get("personne"),
        out_date: raw.get("date"),
        due_date: raw.get("retour_prevu"),
        note: raw.get("note"),
    };
    match web
        .node
        .lend(&form, &today(&web), Some(&signed.session.staff.login))
        .await
    {
        Ok((loan, created)) => {
            let mut text = format!(
                "Prêté : « {} » ({}) à {}, retour prévu le {}.",
                loan.title,
                loan.barcode,
                borrower_text(&loan),
                fr::date(&loan.due_date)
            );
            if let Some(o) = created.organisation {
                text.push_str(&format!(" Organisation « {o} » ajoutée aux contacts."));
            }
            desk(
                &web,
                &signed,
                StatusCode::OK,
                &LendForm::default(),
                &[],
                Some(Notice::Done(text)),
            )
            .await
        }
        Err(e) => {
            let errors = field_errors(&e);
            let message = if errors.is_empty() {
                circulation_error(&e)
            } else {
                "Le prêt n'est pas fait : corrigez les champs signalés.".to_owned()
            };
            desk(
                &web,
                &signed,
                status_of(e.kind()),
                &form,
                &errors,
                Some(Notice::Error(message, Vec::new())),
            )
            .await
        }
    }
}

pub(super) async fn give_back(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match web
        .node
        .return_copy(
            &raw.get("code_barre"),
            &today(&web),
            Some(&signed.session.staff.login),
        )
        .await
    {
        Ok(back) => {
            let mut text = format!(
                "Retour de « {} » ({}), prêté à {} : l'exemplaire est disponible.",
                back.loan.title,
                back.loan.barcode,
                borrower_text(&back.loan)
            );
            if let Some(next) = back.next {
                text = format!(
                    "Retour de « {} » ({}). Réservé : {} attend cet outil depuis le {} ; mettez l'exemplaire de côté.",
                    back.loan.title,
                    back.loan.barcode,
                    reservation_who(&next),
                    fr::date_time(next.created_at)
                );
            }
            desk(
                &web,
                &signed,
                StatusCode::OK,
                &LendForm::default(),
                &[],
                Some(Notice::Done(text)),
            )
            .await
        }
        Err(e) => {
            desk(
                &web,
                &signed,
                status_of(e.kind()),
                &LendForm::default(),
                &[],
                Some(Notice::Error(circulation_error(&e), Vec::new())),
            )
            .await
        }
    }
}

pub(super) async fn renew(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Prêt introuvable");
    };
    let outcome = web.node.renew(id, Some(&signed.session.staff.login)).await;
    let (status, n) = match outcome {
        Ok(l) => (
            StatusCode::OK,
            Notice::Done(format!(
                "Prêt de « {} » ({}) prolongé jusqu'au {}.",
                l.title,
                l.barcode,
                fr::date(&l.due_date)
            )),
        ),
        Err(e) => (
            status_of(e.kind()),
            Notice::Error(circulation_error(&e), Vec::new()),
        ),
    };
    desk(&web, &signed, status, &LendForm::default(), &[], Some(n)).await
}

// ---- Overdue -----------------------------------------------------------------

/// The reminder letter to one borrower, ready to copy or print.
fn letter(centre: &str, today: &str, borrower: &str, loans: &[&LoanRow]) -> String {
    let mut out = format!(
        "{centre}\nLe {}\n\nÀ l'attention de {borrower}\n\nObjet : rappel de retour\n\nMadame, Monsieur,\n\n",
        fr::date(today)
    );
    if loans.len() == 1 {
        out.push_str(
            "Le document suivant, emprunté à notre centre de ressources, devait nous revenir :\n\n",
        );
    } else {
        out.push_str("Les documents suivants, empruntés à notre centre de ressources, devaient nous revenir :\n\n");
    }
    for l in loans {
        out.push_str(&format!(
            "  – « {} » (exemplaire {}), emprunté le {}, à rendre le {}\n",
            l.title,
            l.barcode,
            fr::date(&l.out_date),
            fr::date(&l.due_date)
        ));
    }
    out.push_str(
        "\nNous vous remercions de nous les rapporter dès que possible, ou de nous contacter si vous souhaitez une prolongation : d'autres personnes les attendent peut-être.\n\nAvec nos remerciements et nos salutations distinguées,\n\nLe centre de documentation\n",
    );
    out
}

pub(super) async fn overdue(State(web): State<Web>, signed: Signed) -> Response {
    let today = today(&web);
    let loans = match web.node.overdue(&today).await {
        Ok(l) => l,
        Err(e) => {
            return error_page(
                status_of(e.kind()),
                Some(&signed.session),
                "Retards",
                &circulation_error(&e),
            );
        }
    };
    let mut by_borrower: BTreeMap<String, Vec<&LoanRow>> = BTreeMap::new();
    for l in &loans {
        by_borrower.entry(borrower_text(l)).or_default().push(l);
    }
    let centre = fr::centre_name(web.node.centre());
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Prêts en retard",
            Nav::Loans,
            html! {
                h1 { "Prêts en retard" }
                p class="count" role="status" {
                    (fr::count(loans.len() as i64, "prêt en retard", "prêts en retard")) ", "
                    (fr::count(by_borrower.len() as i64, "emprunteur", "emprunteurs"))
                }
                @if !loans.is_empty() {
                    table class="list" {
                        thead { tr {
                            th scope="col" { "À rendre le" } th scope="col" { "Jours de retard" } th scope="col" { "Exemplaire" }
                            th scope="col" { "Notice" } th scope="col" { "Emprunteur" }
                        } }
                        tbody {
                            @for l in &loans {
                                tr {
                                    td { (fr::date(&l.due_date)) }
                                    td class="num" { (days_between(&l.due_date, &today)) }
                                    td { (l.barcode) }
                                    td { a href={ "/notices/" (l.record_id) } { (l.title) } }
                                    td { (borrower_text(l)) }
                                }
                            }
                        }
                    }
                    h2 { "Lettres de rappel" }
                    p class="hint noprint" { "Chaque lettre est prête à copier dans un courriel ou à imprimer (Ctrl+P imprime la page)." }
                    @for (i, (borrower, list)) in by_borrower.iter().enumerate() {
                        section class="letter" aria-labelledby={ "lettre-" (i) } {
                            h3 id={ "lettre-" (i) } { "À " (borrower) }
                            pre class="letter-text" { (letter(centre, &today, borrower, list)) }
                        }
                    }
                }
            },
        ),
    )
}

fn days_between(from: &str, to: &str) -> i64 {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match (
        time::Date::parse(from, &format),
        time::Date::parse(to, &format),
    ) {
        (Ok(a), Ok(b)) => (b - a).whole_days(),
        _ => 0,
    }
}

// ---- On the record page ------------------------------------------------------

fn reservation_who(r: &ReservationRow) -> String {
    match &r.person {
        Some(p) => format!("{} ({p})", r.borrower),
        None => r.borrower.clone(),
    }
}

/// The centre's copies of a record and its reservations, for the record page.
pub(super) fn record_section(
    signed: &Signed,
    record_id: &str,
    copies: &[CopyRow],
    queue: &[ReservationRow],
) -> Markup {
    let can_edit = signed.session.staff.role.can_edit();
    html! {
        section class="desk" aria-labelledby="nos-exemplaires" {
            h2 id="nos-exemplaires" { "Nos exemplaires" }
            @if copies.is_empty() {
                p { "Aucun exemplaire avec un code-barres." }
            } @else {
                table class="list" {
                    thead { tr {
                        th scope="col" { "Code-barres" } th scope="col" { "Cote" } th scope="col" { "État" } th scope="col" { "Statut" }
                    } }
                    tbody {
                        @for c in copies {
                            tr {
                                td { (c.barcode) }
                                td { (c.shelf_mark) }
                                td { (state_label(&c.state)) }
                                td {
                                    @match &c.out {
                                        Some(l) => { "En prêt jusqu'au " (fr::date(&l.due_date)) " (" (l.borrower) ")" }
                                        None => { @if c.state == "perdu" { "Perdu" } @else { "Disponible" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if can_edit {
                form class="inline noprint" method="post" action={ "/notices/" (record_id) "/exemplaire" } {
                    (csrf(&signed.session))
                    label for="nouveau_code" { "Code-barres" }
                    input type="text" id="nouveau_code" name="code_barre" size="14" autocomplete="off" required;
                    label for="nouvelle_cote" { "Cote" }
                    input type="text" id="nouvelle_cote" name="cote" size="10";
                    label for="nouvel_etat" { "État" }
                    select id="nouvel_etat" name="etat" {
                        @for (code, label) in STATES {
                            @if code != "perdu" { option value=(code) selected[code == "bon"] { (label) } }
                        }
                    }
                    button type="submit" { "Ajouter l'exemplaire" }
                }
            }
            h3 { "Réservations" }
            @if queue.is_empty() {
                p { "Personne n'attend cet outil." }
            } @else {
                ol {
                    @for r in queue {
                        li {
                            (reservation_who(r)) ", depuis le " (fr::date_time(r.created_at))
                            @if can_edit {
                                " "
                                form class="inline" method="post" action={ "/reservations/" (r.id) "/annuler" } {
                                    (csrf(&signed.session))
                                    input type="hidden" name="notice" value=(record_id);
                                    button type="submit" class="link" { "Annuler" }
                                }
                            }
                        }
                    }
                }
            }
            @if can_edit {
                form class="inline noprint" method="post" action={ "/notices/" (record_id) "/reservations" } {
                    (csrf(&signed.session))
                    label for="reserve_org" { "Réserver pour (organisation)" }
                    input type="text" id="reserve_org" name="organisation" list="organisations-liste" autocomplete="off" required;
                    label for="reserve_personne" { "Personne" }
                    input type="text" id="reserve_personne" name="personne" list="personnes-liste" autocomplete="off";
                    button type="submit" { "Réserver" }
                }
            }
        }
    }
}

fn back_to_record(id: &str, done: &str) -> Response {
    super::see_other(&format!("/notices/{id}?fait={done}"))
}

pub(super) async fn add_copy(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match web
        .node
        .add_copy(
            &id,
            &raw.get("code_barre"),
            &raw.get("cote"),
            &raw.get("etat"),
            Some(&signed.session.staff.login),
        )
        .await
    {
        Ok(_) => back_to_record(&id, "exemplaire"),
        Err(e) => {
            super::record_page(
                &web,
                &signed,
                &id,
                status_of(e.kind()),
                Some(Notice::Error(circulation_error(&e), Vec::new())),
            )
            .await
        }
    }
}

pub(super) async fn reserve(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match web
        .node
        .reserve(
            &id,
            &raw.get("organisation"),
            &raw.get("personne"),
            Some(&signed.session.staff.login),
        )
        .await
    {
        Ok(_) => back_to_record(&id, "reservation"),
        Err(e) => {
            super::record_page(
                &web,
                &signed,
                &id,
                status_of(e.kind()),
                Some(Notice::Error(circulation_error(&e), Vec::new())),
            )
            .await
        }
    }
}

pub(super) async fn cancel_reservation(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let raw: Form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(id) = id_of(&id) else {
        return missing(&signed, "Réservation introuvable");
    };
    let record = raw.get("notice");
    match web
        .node
        .cancel_reservation(id, Some(&signed.session.staff.login))
        .await
    {
        Ok(()) => back_to_record(&record, "reservation-annulee"),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Réservation",
            &circulation_error(&e),
        ),
    }
}
