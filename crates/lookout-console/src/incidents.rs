//! Incident records — the safeguarding file. A record is its chronology of append-only
//! entries; people, actions, referrals and the outcome shown at the top are read from it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_scan::{Area, Risk};
use lookout_store::{IncidentEntry, IncidentError, NewEntry};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::SAFEGUARDING;
use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::{now_ms, Console};

impl From<IncidentError> for PageError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::NotFound(id) => {
                PageError::NotFound(format!("There is no incident {id}."))
            }
            IncidentError::NotInIncident(id) => {
                PageError::BadForm(format!("Entry {id} is not part of this incident."))
            }
            IncidentError::Store(e) => e.into(),
        }
    }
}

/// Categories: the 4 Cs of online risk, then Lookout's risk categories.
fn categories() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        ("content", "Content: harmful material seen"),
        ("contact", "Contact: harmful contact from others"),
        ("conduct", "Conduct: the person's own behaviour"),
        ("commerce", "Commerce: scams, gambling, financial harm"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    for r in Risk::ALL {
        let area = match r.area() {
            Area::Content => "content",
            Area::Contact => "contact",
            Area::Conduct => "conduct",
            Area::Commerce => "commerce",
        };
        out.push((r.slug().to_owned(), format!("{} ({area})", r.label())));
    }
    out
}

pub(crate) fn category_label(slug: &str) -> String {
    categories()
        .into_iter()
        .find(|(s, _)| s == slug)
        .map_or_else(|| slug.to_owned(), |(_, l)| l)
}

const INVOLVEMENT: &[(&str, &str)] = &[
    ("subject", "The person this is about"),
    ("affected", "Affected / harmed"),
    ("alleged", "Alleged to have caused harm"),
    ("witness", "Witness"),
    ("reporter", "Reported it"),
];

const AGENCIES: &[(&str, &str)] = &[
    ("police", "Police"),
    (
        "local-authority",
        "Local authority children's / adult social care",
    ),
    ("prevent", "Prevent / Channel"),
    ("health", "Health (GP, CAMHS, NHS)"),
    ("other", "Another agency"),
];

const REFERRAL_STATUS: &[(&str, &str)] = &[
    ("made", "Referral made, waiting to hear"),
    ("acknowledged", "Acknowledged by the agency"),
    ("accepted", "Accepted: the agency is acting"),
    ("declined", "Declined by the agency"),
    ("closed", "Closed by the agency"),
];

fn label<'a>(table: &'a [(&str, &'a str)], slug: &str) -> &'a str {
    table
        .iter()
        .find(|(s, _)| *s == slug)
        .map_or("unknown", |(_, l)| l)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

struct Person {
    name: String,
    username: Option<String>,
    involvement: String,
    categories: Vec<String>,
}

struct Action {
    id: i64,
    what: String,
    owner: String,
    due: Option<i64>,
    /// When, by whom, and what was done.
    done: Option<(i64, String)>,
}

struct Referral {
    id: i64,
    agency: String,
    detail: String,
    follow_up: Option<i64>,
    status: String,
}

impl Action {
    fn overdue(&self, now: i64) -> bool {
        self.done.is_none() && overdue(self.due, now)
    }
}

impl Referral {
    /// Past its follow-up date and not yet settled by the agency.
    fn overdue(&self, now: i64) -> bool {
        overdue(self.follow_up, now)
            && !matches!(self.status.as_str(), "accepted" | "declined" | "closed")
    }
}

/// What the chronology adds up to.
#[derive(Default)]
struct Record {
    people: Vec<Person>,
    actions: Vec<Action>,
    referrals: Vec<Referral>,
    /// entry id → the entries correcting it
    corrected_by: HashMap<i64, Vec<i64>>,
    outcome: Option<(String, String)>,
}

fn fold(entries: &[IncidentEntry]) -> Record {
    let mut r = Record::default();
    for e in entries {
        let b = &e.body;
        if let Some(c) = e.corrects {
            r.corrected_by.entry(c).or_default().push(e.id);
        }
        match e.kind.as_str() {
            "person" => r.people.push(Person {
                name: text(b, "name"),
                username: b.get("username").and_then(Value::as_str).map(str::to_owned),
                involvement: text(b, "involvement"),
                categories: b
                    .get("categories")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            "action" => r.actions.push(Action {
                id: e.id,
                what: text(b, "what"),
                owner: text(b, "owner"),
                due: b.get("due_ms").and_then(Value::as_i64),
                done: None,
            }),
            "action-done" => {
                let id = b.get("action").and_then(Value::as_i64);
                if let Some(a) = r.actions.iter_mut().find(|a| Some(a.id) == id) {
                    a.done = Some((e.at_ms, e.by_user.clone()));
                }
            }
            "referral" => r.referrals.push(Referral {
                id: e.id,
                agency: text(b, "agency"),
                detail: text(b, "detail"),
                follow_up: b.get("follow_up_ms").and_then(Value::as_i64),
                status: "made".into(),
            }),
            "referral-update" => {
                let id = b.get("referral").and_then(Value::as_i64);
                if let Some(x) = r.referrals.iter_mut().find(|x| Some(x.id) == id) {
                    x.status = text(b, "status");
                    if let Some(f) = b.get("follow_up_ms").and_then(Value::as_i64) {
                        x.follow_up = Some(f);
                    }
                }
            }
            "closed" => r.outcome = Some((text(b, "outcome"), text(b, "reason"))),
            "reopened" => r.outcome = None,
            _ => {}
        }
    }
    r
}

/// One line of the chronology in words.
fn describe(e: &IncidentEntry) -> Markup {
    let b = &e.body;
    match e.kind.as_str() {
        "opened" => html! {
            strong { "Incident recorded: " (text(b, "title")) }
            p { (text(b, "what")) }
            @if !text(b, "where").is_empty() { p { "Where: " (text(b, "where")) } }
            @if let Some(t) = b.get("when_ms").and_then(Value::as_i64) { p { "When: " (when(t)) } }
            @if !text(b, "reporter").is_empty() { p { "Reported by: " (text(b, "reporter")) } }
        },
        "note" => html! { strong { "Note: " } (text(b, "text")) },
        "person" => html! {
            strong { "Person linked: " } (text(b, "name"))
            " — " (label(INVOLVEMENT, &text(b, "involvement")))
        },
        "alert" => html! {
            strong { "Alert linked: " }
            @if let Some(a) = b.get("alert").and_then(Value::as_i64) { a href={"/alerts/" (a)} { "alert " (a) } }
        },
        "action" => html! {
            strong { "Action agreed: " } (text(b, "what")) " — owner " (text(b, "owner"))
            @if let Some(d) = b.get("due_ms").and_then(Value::as_i64) { ", due " (when(d)) }
        },
        "action-done" => {
            html! { strong { "Action done" } " (#" (b.get("action").and_then(Value::as_i64).unwrap_or(0)) "): " (text(b, "note")) }
        }
        "referral" => {
            html! { strong { "Referral to " (label(AGENCIES, &text(b, "agency"))) ": " } (text(b, "detail")) }
        }
        "referral-update" => html! {
            strong { "Referral update (#" (b.get("referral").and_then(Value::as_i64).unwrap_or(0)) "): " }
            (label(REFERRAL_STATUS, &text(b, "status")))
            @if !text(b, "note").is_empty() { " — " (text(b, "note")) }
        },
        "correction" => {
            html! { strong { "Correction to entry #" (e.corrects.unwrap_or(0)) ": " } (text(b, "text")) }
        }
        "closed" => {
            html! { strong { "Closed. Outcome: " } (text(b, "outcome")) " — " (text(b, "reason")) }
        }
        "reopened" => html! { strong { "Reopened: " } (text(b, "reason")) },
        other => html! { (other) },
    }
}

/// `GET /incidents`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let incidents = store.incidents(500).await?;
    store
        .audit(
            &viewer
                .audit("incidents.list", "incidents")
                .detail(format!("{} shown", incidents.len())),
        )
        .await?;
    let body = html! {
        p { a class="button" href="/incidents/new" { "Record a new incident" } }
        @if incidents.is_empty() { p { "No incidents have been recorded." } }
        @else {
            table class="list" id="incidents" {
                thead { tr { th scope="col" { "Reference" } th scope="col" { "What" } th scope="col" { "Category" } th scope="col" { "Status" } th scope="col" { "Last change" } } }
                tbody {
                    @for i in &incidents {
                        tr {
                            td { a href={"/incidents/" (i.id)} { (i.reference) } }
                            td { (i.title) }
                            td { (category_label(&i.category)) }
                            td { @if i.status == "open" { "Open" } @else { "Closed" } }
                            td { (when(i.updated_ms)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Incidents", body))
}

#[derive(Deserialize)]
pub(crate) struct NewQuery {
    #[serde(default)]
    alert: Option<i64>,
}

fn select(name: &str, id: &str, options: &[(String, String)], required: bool) -> Markup {
    html! {
        select name=(name) id=(id) required[required] {
            option value="" { "Choose…" }
            @for (v, l) in options { option value=(v) { (l) } }
        }
    }
}

fn owned(table: &[(&str, &str)]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// `GET /incidents/new[?alert=ID]`.
pub(crate) async fn new_form(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<NewQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let alert = match q.alert {
        Some(id) => Some(
            console
                .store()
                .alert(id)
                .await?
                .ok_or_else(|| PageError::NotFound(format!("There is no alert {id}.")))?
                .0,
        ),
        None => None,
    };
    let body = html! {
        form method="post" action="/incidents" class="stack" {
            (csrf(&viewer.session.csrf))
            @if let Some(a) = &alert {
                input type="hidden" name="alert" value=(a.id);
                p class="note" { "From alert " a href={"/alerts/" (a.id)} { (a.id) } ": it will be linked, and marked as having an incident." }
            }
            label for="title" { "Short title" }
            input id="title" name="title" type="text" required maxlength="200";
            label for="what" { "What happened, in the words of those involved where possible" }
            textarea id="what" name="what" rows="6" required {}
            label for="where" { "Where (place, site or online service)" }
            input id="where" name="where" type="text" maxlength="200";
            label for="when" { "When it happened (leave empty if not known)" }
            input id="when" name="when" type="datetime-local";
            label for="category" { "Category" }
            (select("category", "category", &categories(), true))
            label for="reporter" { "Who raised the concern" }
            input id="reporter" name="reporter" type="text" maxlength="200";
            fieldset {
                legend { "The person this is about (more people can be added afterwards)" }
                label for="person" { "Name" }
                input id="person" name="person" type="text" maxlength="200" value=[alert.as_ref().and_then(|a| a.username.clone())];
                label for="person_username" { "Their Lookout user name, if they have one" }
                input id="person_username" name="person_username" type="text" maxlength="64" value=[alert.as_ref().and_then(|a| a.username.clone())];
            }
            button type="submit" { "Record the incident" }
        }
    };
    Ok(page(&viewer, "Record a new incident", body))
}

#[derive(Deserialize)]
pub(crate) struct NewIncident {
    title: String,
    what: String,
    #[serde(default, rename = "where")]
    place: String,
    #[serde(default)]
    when: String,
    category: String,
    #[serde(default)]
    reporter: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    person_username: String,
    #[serde(default)]
    alert: Option<i64>,
}

fn required(value: &str, field: &str) -> Result<String, PageError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(PageError::BadForm(format!("Please fill in “{field}”.")));
    }
    Ok(v.to_owned())
}

fn username(value: &str) -> Result<Option<String>, PageError> {
    match value.trim() {
        "" => Ok(None),
        u => lookout_store::normalize_username(u)
            .map(Some)
            .map_err(|e| PageError::BadForm(format!("User name: {e}"))),
    }
}

/// `POST /incidents`.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, form): Posted<NewIncident>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let title = required(&form.title, "Short title")?;
    let what = required(&form.what, "What happened")?;
    if !categories().iter().any(|(s, _)| *s == form.category) {
        return Err(PageError::BadForm("Choose a category.".into()));
    }
    let person_user = username(&form.person_username)?;
    let mut first = NewEntry::new(
        "opened",
        json!({ "title": title, "what": what, "where": form.place.trim(), "when_ms": when_happened(&form.when)?, "reporter": form.reporter.trim(), "category": form.category }),
    );
    first.title = Some(title.clone());
    let store = console.store();
    let alerts: Vec<i64> = form.alert.into_iter().collect();
    for a in &alerts {
        let (alert, _) = store
            .alert(*a)
            .await?
            .ok_or_else(|| PageError::NotFound(format!("There is no alert {a}.")))?;
        if alert.status != "new" && alert.status != "reviewed" {
            return Err(PageError::Conflict(format!(
                "Alert {a} is already {}.",
                alert.status
            )));
        }
    }
    let incident = store
        .open_incident(
            viewer.username(),
            &title,
            &form.category,
            &first,
            &alerts,
            &viewer.audit("incident.opened", "").detail(title.clone()),
        )
        .await?;
    let name = form.person.trim();
    if !name.is_empty() || person_user.is_some() {
        let name = if name.is_empty() {
            person_user.clone().unwrap_or_default()
        } else {
            name.to_owned()
        };
        let mut e = NewEntry::new(
            "person",
            json!({ "name": name, "username": person_user, "involvement": "subject", "categories": [form.category] }),
        );
        e.person = Some((person_user, name));
        store
            .add_incident_entry(
                incident.id,
                viewer.username(),
                &e,
                &viewer.audit("incident.person", format!("incident:{}", incident.id)),
            )
            .await?;
    }
    Ok(Redirect::to(&format!("/incidents/{}", incident.id)).into_response())
}

/// One "add to the record" form: its kind, heading, fields and button.
fn entry_form(
    action: &str,
    token: &str,
    kind: &str,
    title: &str,
    button: &str,
    fields: Markup,
) -> Markup {
    html! {
        form method="post" action=(action) class="stack card" {
            (csrf(token))
            input type="hidden" name="kind" value=(kind);
            h3 { (title) }
            (fields)
            button type="submit" { (button) }
        }
    }
}

/// Across open incidents: (open incidents, overdue actions, overdue referrals).
pub(crate) async fn open_work(
    store: &lookout_store::Store,
    now: i64,
) -> Result<(usize, usize, usize), PageError> {
    let mut out = (0, 0, 0);
    for i in store
        .incidents(10_000)
        .await?
        .iter()
        .filter(|i| i.status == "open")
    {
        out.0 += 1;
        if let Some((_, entries)) = store.incident(i.id).await? {
            let r = fold(&entries);
            out.1 += r.actions.iter().filter(|a| a.overdue(now)).count();
            out.2 += r.referrals.iter().filter(|x| x.overdue(now)).count();
        }
    }
    Ok(out)
}

fn overdue(due: Option<i64>, now: i64) -> bool {
    due.is_some_and(|d| d < now)
}

/// `GET /incidents/{id}`.
pub(crate) async fn detail(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let (incident, entries) = store
        .incident(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no incident {id}.")))?;
    store
        .audit(&viewer.audit("incident.view", format!("incident:{id}")))
        .await?;
    let r = fold(&entries);
    let now = now_ms();
    let open = incident.status == "open";
    let held = store.legal_hold(id).await?;
    let token = &viewer.session.csrf;
    let action = format!("/incidents/{id}/entries");
    let open_actions: Vec<(String, String)> = r
        .actions
        .iter()
        .filter(|a| a.done.is_none())
        .map(|a| (a.id.to_string(), format!("#{}: {}", a.id, a.what)))
        .collect();
    let referral_options: Vec<(String, String)> = r
        .referrals
        .iter()
        .map(|x| {
            (
                x.id.to_string(),
                format!("#{}: {}", x.id, label(AGENCIES, &x.agency)),
            )
        })
        .collect();
    let entry_options: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e.id.to_string(),
                format!("#{} {} ({})", e.id, e.kind, when(e.at_ms)),
            )
        })
        .collect();
    let body = html! {
        dl class="facts" {
            dt { "Reference" } dd { code { (incident.reference) } }
            dt { "Category" } dd { (category_label(&incident.category)) }
            dt { "Status" } dd id="incident-status" { @if open { "Open" } @else { "Closed" } }
            dt { "Recorded" } dd { (when(incident.opened_ms)) " by " (incident.opened_by) }
            dt { "Retention" } dd id="legal-hold" {
                @if held { strong { "Under legal hold" } ": kept, with everything about the people it names, whatever the retention period. " }
                @else if open { "Kept while open, with everything about the people it names. " }
                @else { "Closed: kept for the retention period set for incidents. " }
                form method="post" action={"/incidents/" (id) "/hold"} class="inline" {
                    (csrf(token))
                    input type="hidden" name="hold" value=(if held { "off" } else { "on" });
                    button type="submit" class="link" { @if held { "Lift the legal hold" } @else { "Place under legal hold" } }
                }
            }
        }
        @if let Some((outcome, reason)) = &r.outcome {
            p class="note" { strong { "Outcome: " } (outcome) " — " (reason) }
        }
        h2 { "People" }
        @if r.people.is_empty() { p { "Nobody is linked yet." } }
        ul {
            @for p in &r.people {
                li { (p.name) @if let Some(u) = &p.username { " (" (u) ")" } " — " (label(INVOLVEMENT, &p.involvement))
                    @if !p.categories.is_empty() { ": " (p.categories.iter().map(|c| category_label(c)).collect::<Vec<_>>().join(", ")) } }
            }
        }
        h2 { "Actions" }
        @if r.actions.is_empty() { p { "No actions yet." } }
        @else {
            table class="list" id="actions" {
                thead { tr { th { "#" } th { "Action" } th { "Owner" } th { "Due" } th { "State" } } }
                tbody {
                    @for a in &r.actions {
                        tr {
                            td { (a.id) } td { (a.what) } td { (a.owner) }
                            td { @if let Some(d) = a.due { (when(d)) } }
                            td {
                                @if let Some((at, by)) = &a.done { "Done " (when(*at)) " by " (by) }
                                @else if a.overdue(now) { span class="badge sev-danger" { "Overdue" } }
                                @else { "To do" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Referrals" }
        @if r.referrals.is_empty() { p { "No referrals." } }
        @else {
            table class="list" id="referrals" {
                thead { tr { th { "#" } th { "Agency" } th { "Detail" } th { "Status" } th { "Follow up by" } } }
                tbody {
                    @for x in &r.referrals {
                        tr {
                            td { (x.id) } td { (label(AGENCIES, &x.agency)) } td { (x.detail) } td { (label(REFERRAL_STATUS, &x.status)) }
                            td {
                                @if let Some(f) = x.follow_up { (when(f)) }
                                @if x.overdue(now) {
                                    " " span class="badge sev-danger" { "Overdue: chase it" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Chronology" }
        p class="hint" { "Every entry, in order. Entries are never changed: a correction is added as a new entry." }
        ol class="chronology" id="chronology" {
            @for e in &entries {
                li id={"entry-" (e.id)} {
                    p class="muted" { "#" (e.id) " · " (when(e.at_ms)) " · " (e.by_user) }
                    (describe(e))
                    @if let Some(by) = r.corrected_by.get(&e.id) {
                        p class="error" { "Corrected by entry " @for c in by { a href={"#entry-" (c)} { "#" (c) } " " } }
                    }
                }
            }
        }
        h2 { "Add to the record" }
        div class="actions" {
            (entry_form(&action, token, "note", "Note", "Add note", html! {
                label for="note-text" { "What happened or was done" }
                textarea id="note-text" name="text" rows="3" required {}
            }))
            (entry_form(&action, token, "action", "Action", "Add action", html! {
                label for="action-what" { "What needs doing" }
                input id="action-what" name="what" type="text" required;
                label for="action-owner" { "Who will do it" }
                input id="action-owner" name="owner" type="text" required;
                label for="action-due" { "Due by" }
                input id="action-due" name="due" type="date" required;
            }))
            @if !open_actions.is_empty() {
                (entry_form(&action, token, "action-done", "Action done", "Mark done", html! {
                    label for="done-action" { "Which action" }
                    (select("action", "done-action", &open_actions, true))
                    label for="done-note" { "What was done" }
                    textarea id="done-note" name="note" rows="2" required {}
                }))
            }
            (entry_form(&action, token, "person", "Person", "Link person", html! {
                label for="person-name" { "Name" }
                input id="person-name" name="name" type="text" required;
                label for="person-username" { "Lookout user name (if any)" }
                input id="person-username" name="username" type="text";
                label for="person-involvement" { "Their part" }
                (select("involvement", "person-involvement", &owned(INVOLVEMENT), true))
                label for="person-category" { "Category for this person" }
                (select("category", "person-category", &categories(), true))
            }))
            (entry_form(&action, token, "referral", "Referral", "Record referral", html! {
                label for="referral-agency" { "To" }
                (select("agency", "referral-agency", &owned(AGENCIES), true))
                label for="referral-detail" { "Who was contacted, how, and their reference" }
                textarea id="referral-detail" name="detail" rows="2" required {}
                label for="referral-follow" { "Follow up by" }
                input id="referral-follow" name="due" type="date" required;
            }))
            @if !referral_options.is_empty() {
                (entry_form(&action, token, "referral-update", "Referral update", "Record update", html! {
                    label for="update-referral" { "Which referral" }
                    (select("referral", "update-referral", &referral_options, true))
                    label for="update-status" { "Now" }
                    (select("status", "update-status", &owned(REFERRAL_STATUS), true))
                    label for="update-note" { "Detail" }
                    textarea id="update-note" name="note" rows="2" {}
                }))
            }
            (entry_form(&action, token, "correction", "Correction", "Add correction", html! {
                label for="correct-entry" { "Entry to correct" }
                (select("corrects", "correct-entry", &entry_options, true))
                label for="correct-text" { "The correction" }
                textarea id="correct-text" name="text" rows="2" required {}
            }))
            @if open {
                (entry_form(&action, token, "closed", "Close the incident", "Close incident", html! {
                    label for="close-outcome" { "Outcome" }
                    input id="close-outcome" name="outcome" type="text" required;
                    label for="close-reason" { "Why it can close" }
                    textarea id="close-reason" name="reason" rows="2" required {}
                }))
            } @else {
                (entry_form(&action, token, "reopened", "Reopen", "Reopen incident", html! {
                    label for="reopen-reason" { "Why" }
                    textarea id="reopen-reason" name="reason" rows="2" required {}
                }))
            }
        }
        p { a href="/incidents" { "Back to incidents" } }
    };
    Ok(page(
        &viewer,
        &format!("{}: {}", incident.reference, incident.title),
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct EntryForm {
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    what: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    action: Option<i64>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    involvement: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    referral: Option<i64>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    corrects: Option<i64>,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    reason: String,
}

/// Every field parser on one text (for the fuzz target): none may panic.
pub(crate) fn check_fields(value: &str) {
    let _ = required(value, "field");
    let _ = username(value);
    let _ = when_happened(value);
    let _ = due_date(value, "field");
    let _ = one_of(INVOLVEMENT, value, "field");
}

/// A `yyyy-mm-ddThh:mm` local time (a `datetime-local` field), in milliseconds; empty is
/// "not known". A time in the future is a mistake.
fn when_happened(s: &str) -> Result<Option<i64>, PageError> {
    use chrono::TimeZone as _;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || {
        PageError::BadForm(
            "“When it happened” must be a date and time like 2026-11-23T14:05.".into(),
        )
    };
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| bad())?;
    let ms = chrono::Local
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)?;
    if ms > now_ms() + 60_000 {
        return Err(PageError::BadForm(
            "“When it happened” is in the future.".into(),
        ));
    }
    Ok(Some(ms))
}

/// A `yyyy-mm-dd` date as the end of that day (local time), in milliseconds.
fn due_date(s: &str, field: &str) -> Result<i64, PageError> {
    use chrono::TimeZone as _;
    let bad = || PageError::BadForm(format!("“{field}” must be a date like 2026-12-01."));
    let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad())?;
    let end = date.and_hms_opt(23, 59, 59).ok_or_else(bad)?;
    chrono::Local
        .from_local_datetime(&end)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)
}

fn one_of(table: &[(&str, &str)], value: &str, field: &str) -> Result<String, PageError> {
    match table.iter().any(|(s, _)| *s == value) {
        true => Ok(value.to_owned()),
        false => Err(PageError::BadForm(format!(
            "Choose “{field}” from the list."
        ))),
    }
}

/// `POST /incidents/{id}/entries`: one entry of any kind, checked field by field.
pub(crate) async fn add_entry(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<EntryForm>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let (incident, entries) = store
        .incident(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no incident {id}.")))?;
    let record = fold(&entries);
    let entry = match f.kind.as_str() {
        "note" => NewEntry::new(
            "note",
            json!({ "text": required(&f.text, "What happened or was done")? }),
        ),
        "action" => NewEntry::new(
            "action",
            json!({ "what": required(&f.what, "What needs doing")?, "owner": required(&f.owner, "Who will do it")?, "due_ms": due_date(&f.due, "Due by")? }),
        ),
        "action-done" => {
            let action = f.action.filter(|a| {
                record
                    .actions
                    .iter()
                    .any(|x| x.id == *a && x.done.is_none())
            });
            let Some(action) = action else {
                return Err(PageError::BadForm(
                    "Choose an action that is still to do.".into(),
                ));
            };
            NewEntry::new(
                "action-done",
                json!({ "action": action, "note": required(&f.note, "What was done")? }),
            )
        }
        "person" => {
            let name = required(&f.name, "Name")?;
            let user = username(&f.username)?;
            let involvement = one_of(INVOLVEMENT, &f.involvement, "Their part")?;
            if !categories().iter().any(|(s, _)| *s == f.category) {
                return Err(PageError::BadForm(
                    "Choose a category for this person.".into(),
                ));
            }
            let mut e = NewEntry::new(
                "person",
                json!({ "name": name, "username": user, "involvement": involvement, "categories": [f.category] }),
            );
            e.person = Some((user, name));
            e
        }
        "referral" => NewEntry::new(
            "referral",
            json!({ "agency": one_of(AGENCIES, &f.agency, "To")?, "detail": required(&f.detail, "Who was contacted")?, "follow_up_ms": due_date(&f.due, "Follow up by")? }),
        ),
        "referral-update" => {
            let Some(referral) = f
                .referral
                .filter(|r| record.referrals.iter().any(|x| x.id == *r))
            else {
                return Err(PageError::BadForm(
                    "Choose a referral of this incident.".into(),
                ));
            };
            NewEntry::new(
                "referral-update",
                json!({ "referral": referral, "status": one_of(REFERRAL_STATUS, &f.status, "Now")?, "note": f.note.trim() }),
            )
        }
        "correction" => {
            let Some(c) = f.corrects else {
                return Err(PageError::BadForm("Choose the entry to correct.".into()));
            };
            let mut e = NewEntry::new(
                "correction",
                json!({ "text": required(&f.text, "The correction")? }),
            );
            e.corrects = Some(c);
            e
        }
        "closed" if incident.status == "open" => {
            let mut e = NewEntry::new(
                "closed",
                json!({ "outcome": required(&f.outcome, "Outcome")?, "reason": required(&f.reason, "Why it can close")? }),
            );
            e.status = Some("closed".into());
            e
        }
        "reopened" if incident.status == "closed" => {
            let mut e = NewEntry::new("reopened", json!({ "reason": required(&f.reason, "Why")? }));
            e.status = Some("open".into());
            e
        }
        "closed" | "reopened" => {
            return Err(PageError::Conflict(format!(
                "This incident is already {}.",
                incident.status
            )))
        }
        other => {
            return Err(PageError::BadForm(format!(
                "“{other}” is not a kind of entry."
            )))
        }
    };
    let kind = entry.kind.clone();
    let entry_id = store
        .add_incident_entry(
            id,
            viewer.username(),
            &entry,
            &viewer.audit(&format!("incident.{kind}"), format!("incident:{id}")),
        )
        .await?;
    Ok(Redirect::to(&format!("/incidents/{id}#entry-{entry_id}")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct HoldForm {
    #[serde(default)]
    hold: String,
}

/// `POST /incidents/{id}/hold`: places the incident under legal hold (`hold=on`) or lifts it
/// (`hold=off`): a held incident, the alerts reviewed into it and everything about the people
/// it names are never purged.
pub(crate) async fn hold(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<HoldForm>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let held = match f.hold.as_str() {
        "on" => true,
        "off" => false,
        _ => {
            return Err(PageError::BadForm(
                "Choose to place or lift the legal hold.".into(),
            ))
        }
    };
    let audit = viewer.audit("incident.hold", format!("incident:{id}"));
    if !console.store().set_legal_hold(id, held, &audit).await? {
        return Err(PageError::NotFound(format!("There is no incident {id}.")));
    }
    Ok(Redirect::to(&format!("/incidents/{id}#legal-hold")).into_response())
}
