//! The page frame, shared bits of markup, the stylesheet and script, and the home page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use lookout_auth::Role;
use maud::{html, Markup, DOCTYPE};

use crate::session::{PageError, Viewer, CSRF_FIELD};
use crate::Console;

const CSS: &str = include_str!("../assets/console.css");
const INBOX_JS: &str = include_str!("../assets/inbox.js");

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a block page's links carry: its reference and the blocked address.
#[derive(serde::Deserialize, Default)]
pub(crate) struct FromBlockPage {
    #[serde(default, rename = "ref")]
    pub(crate) reference: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
}

impl FromBlockPage {
    /// A redirect to the console form `path`, carrying the reference and address along.
    pub(crate) fn forward(self, path: &str) -> axum::response::Redirect {
        let mut target = path.to_owned();
        let mut sep = '?';
        for (k, v) in [("ref", self.reference), ("url", self.url)] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                target.push_str(&format!("{sep}{k}={}", encode(&v)));
                sep = '&';
            }
        }
        axum::response::Redirect::to(&target)
    }
}

/// A time for people: "Mon 23 Nov 2026, 14:05" in the server's time zone.
pub(crate) fn when(ms: i64) -> String {
    use chrono::TimeZone as _;
    match chrono::Local.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) => t.format("%a %-d %b %Y, %H:%M").to_string(),
        _ => format!("{ms} ms"),
    }
}

/// "5 minutes ago", "3 hours ago", "2 days ago".
pub(crate) fn ago(ms: i64, now: i64) -> String {
    let mins = (now - ms).max(0) / 60_000;
    match mins {
        0 => "just now".to_owned(),
        1 => "1 minute ago".to_owned(),
        2..=59 => format!("{mins} minutes ago"),
        60..=119 => "1 hour ago".to_owned(),
        120..=2879 => format!("{} hours ago", mins / 60),
        _ => format!("{} days ago", mins / 1440),
    }
}

/// A severity badge: the word, not only a colour.
pub(crate) fn severity(s: &str) -> Markup {
    let label = match s {
        "danger" => "Danger",
        "caution" => "Caution",
        _ => "Advisory",
    };
    html! { span class={"badge sev-" (s)} { (label) } }
}

/// The hidden CSRF field for a viewer's forms.
pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

struct NavItem {
    href: &'static str,
    label: &'static str,
    roles: &'static [Role],
}

const NAV: &[NavItem] = &[
    NavItem {
        href: "/",
        label: "Home",
        roles: &Role::ALL,
    },
    NavItem {
        href: "/concerns/new",
        label: "Report a concern",
        roles: &Role::ALL,
    },
    NavItem {
        href: "/concerns/mine",
        label: "My reports",
        roles: &Role::ALL,
    },
    NavItem {
        href: "/training",
        label: "Training",
        roles: &Role::ALL,
    },
    NavItem {
        href: "/alerts",
        label: "Alerts",
        roles: &[Role::Dsl, Role::Supervisor],
    },
    NavItem {
        href: "/incidents",
        label: "Incidents",
        roles: &[Role::Dsl, Role::Supervisor],
    },
    NavItem {
        href: "/checks",
        label: "Routine checks",
        roles: &[Role::Dsl, Role::Supervisor],
    },
    NavItem {
        href: "/activity",
        label: "Activity",
        roles: &[Role::Dsl, Role::Supervisor, Role::ItAdmin],
    },
    NavItem {
        href: "/briefings",
        label: "E-safety briefing",
        roles: &[Role::Dsl, Role::ItAdmin],
    },
    NavItem {
        href: "/registers/technology",
        label: "Technology register",
        roles: &[Role::Dsl, Role::ItAdmin],
    },
    NavItem {
        href: "/registers/social",
        label: "Social-media register",
        roles: &[Role::Dsl, Role::ItAdmin],
    },
    NavItem {
        href: "/policy",
        label: "Policy review",
        roles: &[Role::Governor, Role::Dsl, Role::Supervisor, Role::ItAdmin],
    },
    NavItem {
        href: "/reports",
        label: "Reports",
        roles: &[Role::Governor, Role::Dsl, Role::Supervisor, Role::ItAdmin],
    },
    NavItem {
        href: "/users",
        label: "People",
        roles: &[Role::ItAdmin],
    },
    NavItem {
        href: "/reviews",
        label: "Blocked-page reviews",
        roles: &[Role::ItAdmin],
    },
    NavItem {
        href: "/audit",
        label: "Audit log",
        roles: &[Role::ItAdmin],
    },
    NavItem {
        href: "/account/signing-key",
        label: "My signing key",
        roles: crate::alerts::SAFEGUARDING,
    },
    NavItem {
        href: "/account/password",
        label: "My password",
        roles: &Role::ALL,
    },
];

/// The sites with a gateway, for a page's site filter.
pub(crate) async fn site_names(
    store: &lookout_store::Store,
) -> Result<Vec<String>, lookout_store::StoreError> {
    Ok(store
        .gateways()
        .await?
        .into_iter()
        .map(|g| g.site)
        .collect())
}

/// A complete page that stands on its own (a report or an export saved to a file): its own
/// styles inline, no scripts, nothing loaded from elsewhere.
pub(crate) fn standalone(title: &str, style: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (style) }
            }
            body { (body) }
        }
    }
    .into_string()
}

fn frame(title: &str, nav: Markup, body: Markup, script: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " — Lookout" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    div class="brand" { "Lookout" span class="sub" { " safeguarding console" } }
                    (nav)
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                @if let Some(src) = script {
                    script src=(src) defer {}
                }
            }
        }
    }
}

/// A page for a signed-in viewer: the menu for their role, and a sign-out button.
pub(crate) fn page(viewer: &Viewer, title: &str, body: Markup) -> Html<String> {
    page_with_script(viewer, title, body, None)
}

pub(crate) fn page_with_script(
    viewer: &Viewer,
    title: &str,
    body: Markup,
    script: Option<&str>,
) -> Html<String> {
    let role = viewer.role();
    let user = &viewer.session.account.user;
    let name = if user.display_name.is_empty() {
        &user.username
    } else {
        &user.display_name
    };
    let nav = html! {
        nav aria-label="Main" {
            ul {
                @for item in NAV.iter().filter(|i| i.roles.contains(&role)) {
                    li { a href=(item.href) { (item.label) } }
                }
            }
        }
        div class="who" {
            span { (name) " · " (role.label()) }
            form method="post" action="/sign-out" class="inline" {
                (csrf(&viewer.session.csrf))
                button type="submit" class="link" { "Sign out" }
            }
        }
    };
    Html(frame(title, nav, body, script).into_string())
}

/// A page with no menu (signing in, errors).
pub(crate) fn bare_page(title: &str, body: Markup) -> Html<String> {
    Html(frame(title, html! {}, body, None).into_string())
}

/// A page that says one thing, with a way home.
pub(crate) fn message_page(title: &str, message: &str) -> Html<String> {
    bare_page(
        title,
        html! {
            p { (message) }
            p { a href="/" { "Back to the console home page" } }
        },
    )
}

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

pub(crate) async fn inbox_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        INBOX_JS,
    )
        .into_response()
}

pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        message_page("Not found", "There is no such page in the console."),
    )
        .into_response()
}

/// `GET /`: what this person can do, and what needs their attention.
pub(crate) async fn home(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    let role = viewer.role();
    let open = if role.is_safeguarding() {
        Some(console.store().open_alert_counts().await?)
    } else {
        None
    };
    let failure = (role.is_safeguarding() || role == Role::ItAdmin)
        .then(|| console.log_failure())
        .flatten();
    // Category lists that could not be kept current: filtering uses older copies.
    let lists = (role.is_safeguarding() || role == Role::ItAdmin)
        .then(|| console.lists_status())
        .flatten()
        .filter(|s| s.reload_error.is_some() || s.subscriptions.iter().any(|x| x.error.is_some()));
    // The annual policy review, for those who do it and the governors who check it is done.
    let review = if matches!(role, Role::Dsl | Role::ItAdmin | Role::Governor) {
        match crate::registers::policy_due(&console).await? {
            None => Some(None),
            Some((due, true)) => Some(Some(due)),
            Some((_, false)) => None,
        }
    } else {
        None
    };
    // Site gateways: each one's link to this central, for the IT admin and the DSL team.
    let sites = if role.is_safeguarding() || role == Role::ItAdmin {
        sites_health(&console).await?
    } else {
        Vec::new()
    };
    let training: Vec<_> = console
        .store()
        .requirements(crate::now_ms(), Some(viewer.username()))
        .await?
        .into_iter()
        .filter(|r| r.standing.to_do())
        .collect();
    let body = html! {
        p class="lead" { "You are signed in as " strong { (viewer.username()) } " (" (role.label()) ")." }
        @if !training.is_empty() {
            section class="card" id="training-due" aria-labelledby="training-due-title" {
                h2 id="training-due-title" { "Training to do" }
                (crate::training::mine(&training, true))
            }
        }
        @if let Some(f) = failure {
            section class="card warning" role="alert" {
                h2 { "The activity log cannot be written" }
                p {
                    "Since " (when(f.since_ms)) " the database has refused the activity log's writes: "
                    code { (f.error) } ". " strong { (f.lost) } " events have been lost so far. "
                    "Filtering goes on as normal. The gap is recorded as soon as the database takes writes again "
                    "(check free disk space and the data folder's permissions)."
                }
            }
        }
        @if let Some(s) = lists {
            section class="card warning" role="alert" id="lists-failing" {
                h2 { "Category lists are not up to date" }
                ul {
                    @for x in s.subscriptions.iter().filter(|x| x.error.is_some()) {
                        li {
                            strong { (x.name) } ": "
                            @if let Some(at) = x.failing_since_ms { "failing since " (when(at)) ": " }
                            code { (x.error.as_deref().unwrap_or_default()) } ". "
                            @match x.fetched_at_ms {
                                Some(at) => { "The copy downloaded " (when(at)) " is in use." }
                                None => { strong { "No copy has been downloaded, so its sites are not blocked." } }
                            }
                        }
                    }
                    @if let Some(e) = &s.reload_error {
                        li { "The lists could not be loaded again: " code { (e) } ". The lists loaded " (when(s.loaded_at_ms)) " stay in use." }
                    }
                }
                p { "Lookout tries again on its own (within 15 minutes). After fixing the cause, " code { "systemctl reload lookout" } " tries at once." }
            }
        }
        @if let Some(due) = review {
            section class="card warning" id="policy-overdue" {
                h2 { "The e-safety policy review is overdue" }
                p {
                    @match due { Some(d) => { "It was due " (when(d)) ". " } None => { "No review has been recorded. " } }
                    a href="/policy" { "Record the review" }
                }
            }
        }
        @if !sites.is_empty() {
            (sites_card(&sites, crate::now_ms()))
        }
        @if let Some([danger, caution, advisory]) = open {
            section class="card" aria-labelledby="open-alerts" {
                h2 id="open-alerts" { "Alerts waiting for review" }
                ul class="counts" {
                    li { (severity("danger")) " " strong { (danger) } }
                    li { (severity("caution")) " " strong { (caution) } }
                    li { (severity("advisory")) " " strong { (advisory) } }
                }
                p { a class="button" href="/alerts" { "Open the alerts inbox" } }
            }
        }
        @if role == Role::Governor {
            section class="card" {
                h2 { "Reports" }
                p { "Figures on filtering, monitoring and safeguarding for the Board, without names." }
                p { a class="button" href="/reports" { "Open the reports" } }
            }
        }
        @if role == Role::ItAdmin {
            section class="card" {
                h2 { "Administration" }
                ul {
                    li { a href="/users" { "People and roles" } " — add people, set roles, unlock accounts, reset two-factor." }
                    li { a href="/reviews" { "Blocked-page reviews" } " — requests to unblock a page, to approve for a group or reject." }
                    li { a href="/audit" { "Audit log" } " — every sign-in, view and change, and a check that nothing was altered." }
                }
            }
        }
        section class="card" {
            h2 { "Worried about something?" }
            p { "If you are worried about your own or someone else's safety, tell the safeguarding team. In an emergency, call 999." }
            p { a class="button" href="/concerns/new" { "Report a concern" } " " a href="/concerns/mine" { "See what you have reported" } }
        }
    };
    Ok(page(&viewer, "Home", body))
}

/// A site gateway is "not heard from" after this long without a call (it asks every few
/// seconds).
const SITE_SILENT_MS: i64 = 60_000;

/// One site's row on the home page: the gateway as it last called, or its token never used.
pub(crate) struct SiteHealth {
    site: String,
    gateway: Option<lookout_store::Gateway>,
}

/// Every site: those that have called, and gateway tokens not yet used (not revoked ones).
async fn sites_health(console: &Console) -> Result<Vec<SiteHealth>, PageError> {
    let store = console.store();
    let mut sites: Vec<SiteHealth> = store
        .gateways()
        .await?
        .into_iter()
        .map(|g| SiteHealth {
            site: g.site.clone(),
            gateway: Some(g),
        })
        .collect();
    for t in store.tokens().await? {
        if t.scope == lookout_store::TokenScope::Gateway
            && !t.revoked
            && !sites.iter().any(|s| s.site == t.name)
        {
            sites.push(SiteHealth {
                site: t.name,
                gateway: None,
            });
        }
    }
    Ok(sites)
}

fn sites_card(sites: &[SiteHealth], now: i64) -> Markup {
    let silent = sites.iter().any(|s| {
        s.gateway
            .as_ref()
            .is_none_or(|g| now - g.last_seen_ms > SITE_SILENT_MS)
    });
    html! {
        section class={"card" @if silent { " warning" }} id="sites" aria-labelledby="sites-title" {
            h2 id="sites-title" { "Sites" }
            @if silent {
                p { strong { "A site gateway has not been heard from." } " It goes on filtering with the last policy it had and keeps its events until it can send them; check its network link and that it is running." }
            }
            table class="list" {
                caption class="visually-hidden" { "Site gateways" }
                thead { tr {
                    th scope="col" { "Site" } th scope="col" { "Last heard from" } th scope="col" { "Waiting to be sent" }
                    th scope="col" { "Policy version" } th scope="col" { "Events received" }
                } }
                tbody {
                    @for s in sites {
                        tr data-site=(s.site) {
                            td { a href={"/alerts?site=" (encode(&s.site))} { (s.site) } }
                            @match &s.gateway {
                                Some(g) => {
                                    td {
                                        time datetime=(g.last_seen_ms) title=(when(g.last_seen_ms)) { (ago(g.last_seen_ms, now)) }
                                        @if now - g.last_seen_ms > SITE_SILENT_MS { " " strong { "(not heard from)" } }
                                        br; span class="muted" { (g.address) }
                                    }
                                    td { (g.backlog) }
                                    td { code { (g.policy_version) } }
                                    td { (g.events_received) }
                                }
                                None => {
                                    td colspan="4" { strong { "Never connected" } " — its token has not been used yet." }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_and_encoding() {
        let now = 10_000_000_000;
        let table = [
            (now, "just now"),
            (now - 60_000, "1 minute ago"),
            (now - 5 * 60_000, "5 minutes ago"),
            (now - 90 * 60_000, "1 hour ago"),
            (now - 5 * 3_600_000, "5 hours ago"),
            (now - 3 * 86_400_000, "3 days ago"),
            (now + 60_000, "just now"),
        ];
        for (t, want) in table {
            assert_eq!(ago(t, now), want);
        }
        assert_eq!(encode("/alerts/3?x=a b&c"), "/alerts/3%3Fx%3Da%20b%26c");
    }

    #[test]
    fn markup_is_escaped() {
        let m = severity("<script>");
        assert!(!m.into_string().contains("<script>"));
    }
}
