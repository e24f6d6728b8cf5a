//! Reporting a concern: anyone signed in (and anyone sent from a block page's "Report a
//! concern" link) tells the DSL team; the team is alerted at once (the concern is an alert in
//! their inbox, and by email/webhook when someone may be in danger now); the reporter gets a
//! receipt with a reference and who to talk to, and later sees whether the team has seen it.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_monitor::CONCERN;
use lookout_store::{Concern, NewConcern, NewFinding, Subject};
use maud::{html, Markup};
use serde::Deserialize;

use crate::alerts::SAFEGUARDING;
use crate::pages::{csrf, page, when, FromBlockPage};
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

const URGENCY: &[(&str, &str, &str)] = &[
    ("now", "Someone may be in danger now", "danger"),
    ("soon", "It needs looking at soon", "caution"),
    ("info", "I want the safeguarding team to know", "advisory"),
];

/// `GET /report?ref=&url=`: the block page's "Report a concern" link.
pub(crate) async fn from_block_page(Query(q): Query<FromBlockPage>) -> Redirect {
    q.forward("/concerns/new")
}

/// The block page reference, kept to what references look like.
fn clean_reference(r: Option<&str>) -> Option<String> {
    r.map(|r| {
        r.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(32)
            .collect::<String>()
    })
    .filter(|r| !r.is_empty())
}

fn who_to_talk_to(console: &Console) -> Markup {
    let contacts = &console.settings().contacts;
    html! {
        section class="card" aria-labelledby="talk" {
            h2 id="talk" { "Who to talk to" }
            @if contacts.is_empty() {
                p { "Any member of staff can help you: ask for the safeguarding team." }
            } @else {
                ul { @for c in contacts { li { (c) } } }
            }
            p { strong { "If someone is in danger right now, call 999." } " You can also call Childline on 0800 1111 (under 19s) or Samaritans on 116 123, free, any time." }
        }
    }
}

/// `GET /concerns/new`.
pub(crate) async fn new_form(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<FromBlockPage>,
) -> Html<String> {
    let reference = clean_reference(q.reference.as_deref());
    let url = q.url.map(|u| u.chars().take(2000).collect::<String>());
    let body = html! {
        p class="lead" { "Tell the safeguarding team about something that worries you — about you or someone else. Only the safeguarding team will read it." }
        form method="post" action="/concerns" class="stack" {
            (csrf(&viewer.session.csrf))
            @if let Some(r) = &reference { input type="hidden" name="block_ref" value=(r); }
            @if let Some(u) = &url {
                input type="hidden" name="block_url" value=(u);
                p class="note" { "About the blocked page " code { (u) } }
            }
            fieldset {
                legend { "How soon does someone need to look at this?" }
                @for (slug, text, _) in URGENCY {
                    label class="choice" { input type="radio" name="urgency" value=(slug) required; " " (text) }
                }
            }
            label for="about" { "Who is it about? (you can write “me”)" }
            input id="about" name="about" type="text" maxlength="200" required;
            label for="what" { "What has happened, or what are you worried about?" }
            textarea id="what" name="what" rows="7" maxlength="10000" required {}
            label for="place" { "Where did it happen? (optional: a place, an app or a website)" }
            input id="place" name="place" type="text" maxlength="200";
            button type="submit" { "Send to the safeguarding team" }
        }
        (who_to_talk_to(&console))
    };
    page(&viewer, "Report a concern", body)
}

#[derive(Deserialize)]
pub(crate) struct ConcernForm {
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    about: String,
    #[serde(default)]
    what: String,
    #[serde(default)]
    place: String,
    #[serde(default)]
    block_ref: Option<String>,
    #[serde(default)]
    block_url: Option<String>,
}

/// `POST /concerns`: stored and raised as an alert for the DSL team, then the receipt.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, f): Posted<ConcernForm>,
) -> Result<Response, PageError> {
    let Some((urgency, _, severity)) = URGENCY.iter().find(|(s, _, _)| *s == f.urgency) else {
        return Err(PageError::BadForm(
            "Choose how soon someone needs to look at this.".into(),
        ));
    };
    let about = f.about.trim();
    let what = f.what.trim();
    if about.is_empty() {
        return Err(PageError::BadForm(
            "Please say who it is about (you can write “me”).".into(),
        ));
    }
    if what.is_empty() {
        return Err(PageError::BadForm(
            "Please say what has happened or what worries you.".into(),
        ));
    }
    if what.chars().count() > 10_000 || about.chars().count() > 200 || f.place.chars().count() > 200
    {
        return Err(PageError::BadForm(
            "That is longer than the form takes: please shorten it.".into(),
        ));
    }
    let block_url = f
        .block_url
        .as_deref()
        .map(|u| u.chars().take(2000).collect::<String>())
        .filter(|u| !u.is_empty());
    let user = &viewer.session.account.user;
    let subject = Subject {
        username: Some(user.username.clone()),
        client_ip: Some(viewer.ip.to_string()),
        device: None,
        group: user.group.clone(),
        site: None,
    };
    let finding = NewFinding {
        at_ms: crate::now_ms(),
        source: "concern".into(),
        category: CONCERN.into(),
        severity: (*severity).into(),
        score: 0,
        evidence: format!("About: {about}"),
        context: what.to_owned(),
        rules: "[]".into(),
        location: block_url
            .clone()
            .unwrap_or_else(|| f.place.trim().to_owned()),
    };
    let alert = console.inner.monitor.raise(&subject, &finding).await?;
    let concern = console
        .store()
        .add_concern(
            &NewConcern {
                reporter: user.username.clone(),
                about: about.to_owned(),
                what: what.to_owned(),
                place: f.place.trim().to_owned(),
                urgency: (*urgency).to_owned(),
                block_ref: clean_reference(f.block_ref.as_deref()),
                block_url,
                alert_id: Some(alert.id),
            },
            &viewer
                .audit("concern.reported", "")
                .detail(format!("alert:{} urgency {urgency}", alert.id)),
        )
        .await?;
    Ok(Redirect::to(&format!("/concerns/{}?sent=1", concern.id)).into_response())
}

fn status_for_reporter(c: &Concern) -> &'static str {
    match c.alert_status.as_deref() {
        Some("new") | None => "Sent to the safeguarding team, not yet seen",
        Some(_) => "Seen by the safeguarding team",
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ReceiptQuery {
    #[serde(default)]
    sent: Option<String>,
}

/// `GET /concerns/{id}`: the reporter's receipt; the safeguarding team see it too.
pub(crate) async fn receipt(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Html<String>, PageError> {
    let store = console.store();
    let Some(c) = store.concern(id).await? else {
        return Err(PageError::NotFound(format!("There is no concern {id}.")));
    };
    if c.reporter != viewer.username() && !SAFEGUARDING.contains(&viewer.role()) {
        return Err(PageError::Forbidden);
    }
    store
        .audit(&viewer.audit("concern.view", format!("concern:{id}")))
        .await?;
    let urgency = URGENCY
        .iter()
        .find(|u| u.0 == c.urgency)
        .map_or("", |u| u.1);
    let body = html! {
        @if q.sent.is_some() {
            p class="note" role="status" { "Thank you. Your concern has been sent to the safeguarding team. Your reference is " strong { (c.reference) } "." }
        }
        dl class="facts" {
            dt { "Reference" } dd { code { (c.reference) } }
            dt { "Sent" } dd { (when(c.at_ms)) }
            dt { "Status" } dd id="concern-status" { (status_for_reporter(&c)) }
            dt { "How soon" } dd { (urgency) }
            dt { "About" } dd { (c.about) }
            @if !c.place.is_empty() { dt { "Where" } dd { (c.place) } }
            @if let Some(u) = &c.block_url { dt { "Blocked page" } dd { code { (u) } } }
        }
        h2 { "What you told us" }
        blockquote { (c.what) }
        @if SAFEGUARDING.contains(&viewer.role()) {
            @if let Some(a) = c.alert_id { p { a class="button" href={"/alerts/" (a)} { "Open it in the alerts inbox" } } }
        }
        h2 { "What happens next" }
        p { "A member of the safeguarding team will read it and decide what to do. They may talk to you about it. If you are worried in the meantime, talk to someone below." }
        (who_to_talk_to(&console))
    };
    Ok(page(&viewer, "Your concern", body))
}

#[derive(Deserialize, Default)]
pub(crate) struct MineQuery {
    #[serde(default)]
    review: Option<String>,
}

/// `GET /concerns/mine`: what this person has reported, and the blocked pages they asked about.
pub(crate) async fn mine(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<MineQuery>,
) -> Result<Html<String>, PageError> {
    let concerns = console.store().concerns_by(viewer.username()).await?;
    let reviews = console
        .store()
        .review_requests_by(viewer.username())
        .await?;
    let body = html! {
        @if q.review.is_some() {
            p class="note" role="status" { "Thank you. The IT team will look at the page and decide; the answer will appear below." }
        }
        p { a class="button" href="/concerns/new" { "Report a concern" } }
        @if concerns.is_empty() { p { "You have not reported any concerns." } }
        @else {
            table class="list" id="my-concerns" {
                thead { tr { th scope="col" { "Reference" } th scope="col" { "Sent" } th scope="col" { "About" } th scope="col" { "Status" } } }
                tbody {
                    @for c in &concerns {
                        tr {
                            td { a href={"/concerns/" (c.id)} { (c.reference) } }
                            td { (when(c.at_ms)) }
                            td { (c.about) }
                            td { (status_for_reporter(c)) }
                        }
                    }
                }
            }
        }
        @if !reviews.is_empty() {
            h2 { "Blocked pages you asked about" }
            table class="list" id="my-reviews" {
                thead { tr { th scope="col" { "Address" } th scope="col" { "Asked" } th scope="col" { "Answer" } } }
                tbody {
                    @for r in &reviews {
                        tr {
                            td class="url" { (r.url) }
                            td { (when(r.at_ms)) }
                            td {
                                @match r.status.as_str() {
                                    "pending" => "Waiting for the IT team",
                                    "approved" => "Allowed",
                                    _ => { "Not allowed: " (r.decision.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "My reports", body))
}
