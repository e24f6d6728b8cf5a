//! Reports for governors, the DSL team and the Head of IT: figures only — no names, no text.

use axum::extract::{Query, State};
use axum::response::Html;
use lookout_auth::Role;
use lookout_monitor::category_label;
use maud::html;
use serde::Deserialize;

use crate::pages::{page, when};
use crate::session::{PageError, Viewer};
use crate::{now_ms, Console};

/// Who reads reports.
pub(crate) const READERS: &[Role] = &[Role::Governor, Role::Dsl, Role::Supervisor, Role::ItAdmin];

#[derive(Deserialize, Default)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    days: Option<i64>,
}

/// `GET /reports?days=30|90|365`.
pub(crate) async fn report(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<ReportQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(READERS)?;
    let days = q.days.unwrap_or(90);
    if !matches!(days, 7 | 30 | 90 | 365) {
        return Err(PageError::BadForm(
            "Choose a period of 7, 30, 90 or 365 days.".into(),
        ));
    }
    let store = console.store();
    let now = now_ms();
    let from = now - days * 86_400_000;
    let r = store.report(from, now).await?;
    let sites = store.site_figures(from, now).await?;
    let audit = store.verify_audit().await?;
    let (checks, check_problems) = store.verify_checks().await?;
    store
        .audit(
            &viewer
                .audit("report.view", "report")
                .detail(format!("{days} days")),
        )
        .await?;
    let [danger, caution, advisory] = r.alerts_by_severity;
    let body = html! {
        nav class="tabs" aria-label="Period" {
            @for d in [7, 30, 90, 365] {
                @if d == days { a href={"/reports?days=" (d)} aria-current="page" { (d) " days" } }
                @else { a href={"/reports?days=" (d)} { (d) " days" } }
            }
        }
        p { "From " (when(from)) " to " (when(now)) ". Figures only: no names and no text." }
        form method="get" action="/reports/board" class="inline-form" {
            "The report for the Board, with charts, ready to print: from "
            input type="date" name="from" aria-label="From";
            " to "
            input type="date" name="to" aria-label="To";
            " "
            button type="submit" { "Make the Board report" }
        }
        div class="actions" {
            section class="card" {
                h2 { "Filtering" }
                p { "Requests blocked: " strong id="r-blocked" { (r.blocked) } }
                p { "Requests allowed: " strong { (r.allowed) } }
                p { "Blocked pages reviewed: " strong { (r.reviews[0]) } " allowed, " strong { (r.reviews[1]) } " refused, " strong { (r.reviews[2]) } " waiting" }
            }
            section class="card" {
                h2 { "Monitoring" }
                p { "Alerts: " strong id="r-alerts" { (danger + caution + advisory) } " (" (danger) " danger, " (caution) " caution, " (advisory) " advisory)" }
                p { "Dismissed as false alarms: " strong { (r.false_alarms) } }
                @if !r.alerts_by_category.is_empty() {
                    table class="list" {
                        thead { tr { th scope="col" { "Category" } th scope="col" { "Alerts" } } }
                        tbody { @for (c, n) in &r.alerts_by_category { tr { td { (category_label(c)) } td { (n) } } } }
                    }
                }
            }
            section class="card" {
                h2 { "Safeguarding" }
                p { "Concerns reported: " strong id="r-concerns" { (r.concerns) } }
                p { "Incidents opened: " strong { (r.incidents_opened) } "; closed: " strong { (r.incidents_closed) } }
                p { "Referrals to other agencies: " strong { (r.referrals) } }
                p { "Routine checks signed: " strong { (r.checks[0]) } "; co-signed by a supervisor: " strong { (r.checks[1]) } }
            }
            @if !sites.is_empty() {
                section class="card" id="r-sites" {
                    h2 { "By site" }
                    p class="hint" { "Requests and alerts that came through each site gateway. Concerns, incidents and checks are the whole organisation's." }
                    table class="list" {
                        thead { tr { th scope="col" { "Site" } th scope="col" { "Blocked" } th scope="col" { "Allowed" } th scope="col" { "Alerts (danger, caution, advisory)" } } }
                        tbody {
                            @for f in &sites {
                                tr data-site=(f.site) {
                                    td { (f.site) } td { (f.blocked) } td { (f.allowed) }
                                    td { (f.alerts.iter().sum::<i64>()) " (" (f.alerts[0]) ", " (f.alerts[1]) ", " (f.alerts[2]) ")" }
                                }
                            }
                        }
                    }
                }
            }
            section class="card" {
                h2 { "Integrity" }
                @if audit.problems.is_empty() { p class="ok" { "Audit log intact (" (audit.rows) " entries)." } }
                @else { p class="error" { "The audit log has been altered outside Lookout: " (audit.problems.len()) " problem(s). Tell the Designated Safeguarding Lead and the Head of IT." } }
                @if check_problems.is_empty() { p class="ok" { "Routine checks intact (" (checks) ")." } }
                @else { p class="error" { "Routine checks altered: " (check_problems.len()) " problem(s)." } }
            }
        }
    };
    Ok(page(&viewer, "Reports", body))
}
