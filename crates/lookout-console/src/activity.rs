//! The activity log, searched: who went where, when, what the filter did — by person, address,
//! site, action, text and date. For the DSL team and the IT admin; every search is on the
//! audit log with what was asked.

use axum::extract::{Query, State};
use axum::response::Html;
use lookout_auth::Role;
use lookout_store::EventFilter;
use maud::html;
use serde::Deserialize;

use crate::pages::{page, when};
use crate::session::{PageError, Viewer};
use crate::Console;

/// Who searches the activity log.
pub(crate) const SEARCHERS: &[Role] = &[Role::Dsl, Role::Supervisor, Role::ItAdmin];

/// Rows shown at most.
const LIMIT: u32 = 200;

#[derive(Deserialize, Default)]
pub(crate) struct ActivityQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

const ACTIONS: &[(&str, &str)] = &[
    ("", "Any"),
    ("block", "Blocked"),
    ("warn", "Warned"),
    ("continue", "Warning clicked through"),
    ("allow", "Allowed"),
];

/// The filter a query asks for, or what is wrong with it.
pub(crate) fn filter(q: &ActivityQuery) -> Result<EventFilter, String> {
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let day = |s: &str, what: &str| -> Result<Option<i64>, String> {
        match some(s) {
            None => Ok(None),
            Some(d) => crate::board::parse_day(&d).map(Some).ok_or_else(|| {
                format!("“{d}” is not a date for “{what}”: use the date picker or YYYY-MM-DD.")
            }),
        }
    };
    let action = some(&q.action);
    if let Some(a) = &action {
        if !ACTIONS.iter().any(|(slug, _)| slug == a) {
            return Err(format!("“{a}” is not an action: choose one from the list."));
        }
    }
    if let Some(ip) = some(&q.ip) {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("“{ip}” is not an address like 10.0.5.17."));
        }
    }
    let since_ms = day(&q.from, "from")?;
    // "To" is inclusive: up to the end of that day.
    let until_ms = day(&q.to, "to")?.map(|t| t + 86_400_000);
    if let (Some(a), Some(b)) = (since_ms, until_ms) {
        if b <= a {
            return Err("“To” is before “from”.".into());
        }
    }
    Ok(EventFilter {
        username: some(&q.user),
        client_ip: some(&q.ip),
        site: some(&q.site),
        action,
        text: some(&q.text),
        since_ms,
        until_ms,
        limit: Some(LIMIT),
        ..EventFilter::default()
    })
}

/// `GET /activity`.
pub(crate) async fn search(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<ActivityQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(SEARCHERS)?;
    let f = filter(&q).map_err(PageError::BadForm)?;
    let store = console.store();
    let sites = crate::pages::site_names(store).await?;
    let asked = [
        ("user", &f.username),
        ("address", &f.client_ip),
        ("site", &f.site),
        ("action", &f.action),
        ("text", &f.text),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .chain(f.since_ms.map(|t| format!("from={}", when(t))))
    .chain(f.until_ms.map(|t| format!("before={}", when(t))))
    .collect::<Vec<_>>()
    .join("; ");
    let events = store.events(&f).await?;
    store
        .audit(&viewer.audit("activity.search", "activity").detail(format!(
            "{} shown; {}",
            events.len(),
            if asked.is_empty() { "latest" } else { &asked }
        )))
        .await?;
    let body = html! {
        p class="hint" { "Web and DNS requests as the filter saw them, newest first (at most " (LIMIT) "). Every search is recorded on the audit log." }
        form method="get" action="/activity" class="filters" {
            label for="user" { "Person" } input id="user" name="user" value=(q.user);
            label for="ip" { "Address" } input id="ip" name="ip" value=(q.ip);
            @if !sites.is_empty() {
                label for="site" { "Site" }
                select id="site" name="site" {
                    option value="" { "Every site" }
                    @for s in &sites {
                        @if q.site == *s { option value=(s) selected { (s) } } @else { option value=(s) { (s) } }
                    }
                }
            }
            label for="action" { "Action" }
            select id="action" name="action" {
                @for (slug, label) in ACTIONS {
                    @if q.action == *slug { option value=(slug) selected { (label) } } @else { option value=(slug) { (label) } }
                }
            }
            label for="text" { "Address or search containing" } input id="text" name="text" value=(q.text);
            label for="from" { "From" } input id="from" name="from" type="date" value=(q.from);
            label for="to" { "To" } input id="to" name="to" type="date" value=(q.to);
            button type="submit" { "Search" }
        }
        @if events.is_empty() { p id="no-activity" { "Nothing matches." } }
        @else {
            table class="list" id="activity" {
                caption class="visually-hidden" { "Activity" }
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" }
                    th scope="col" { "Request" } th scope="col" { "Why" }
                } }
                tbody {
                    @for s in &events {
                        @let e = &s.event;
                        tr {
                            td { (when(e.at_ms)) }
                            td {
                                (e.username.as_deref().unwrap_or("—")) br;
                                span class="muted" { (e.client_ip) " · " (e.group) @if let Some(site) = &s.site { " · " (site) } }
                            }
                            td { (e.action) }
                            td {
                                (e.method) " " (e.url)
                                @if let Some(t) = &e.search_term { br; "Search: " strong { (t) } }
                            }
                            td {
                                @if !e.categories.is_empty() { (e.categories) br; }
                                span class="muted" { (e.reason) }
                                @if !e.reference.is_empty() { " " code { (e.reference) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Activity", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_checked_field_by_field() {
        let q = |f: fn(&mut ActivityQuery)| {
            let mut q = ActivityQuery::default();
            f(&mut q);
            filter(&q)
        };
        type Set = fn(&mut ActivityQuery);
        let table: [(Set, Result<(), &str>); 6] = [
            (|_| {}, Ok(())),
            (|q| q.ip = "10.0.5.17".into(), Ok(())),
            (|q| q.ip = "ten".into(), Err("not an address")),
            (|q| q.action = "delete".into(), Err("not an action")),
            (|q| q.from = "3rd May".into(), Err("not a date for “from”")),
            (
                |q| {
                    q.from = "2026-12-04".into();
                    q.to = "2026-12-01".into();
                },
                Err("before"),
            ),
        ];
        for (set, want) in table {
            match (q(set), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("{got:?} vs {want:?}"),
            }
        }
        let f = q(|q| {
            q.user = " amy ".into();
            q.site = "north".into();
            q.to = "2026-12-04".into();
        })
        .unwrap();
        assert_eq!(f.username.as_deref(), Some("amy"));
        assert_eq!(f.site.as_deref(), Some("north"));
        assert_eq!(f.until_ms, crate::board::parse_day("2026-12-05"));
    }
}
