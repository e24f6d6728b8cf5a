//! The termly/annual report for the Board and the Head of IT: one self-contained HTML page
//! (inline styles, SVG charts, no scripts or outside resources) that prints on A4 as it is,
//! made from counts, durations and proportions only — never a name or a person's words.
//! The console serves it (`/reports/board`) and `lookout report board` writes it to a file.

use axum::extract::{Query, State};
use axum::response::Html;
use lookout_store::{BoardFigures, Durations};
use maud::{html, Markup};
use serde::Deserialize;

use crate::pages::{standalone, when};
use crate::reports::READERS;
use crate::session::{PageError, Viewer};
use crate::{now_ms, Console};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1b1b;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}\
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:2px solid #1d4ed8;padding-bottom:.2rem;margin-top:2rem}\
.sub{color:#555;margin-top:0}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(13rem,1fr));gap:.8rem;margin:1rem 0}\
.kpi{border:1px solid #d5d9e0;border-radius:.4rem;padding:.6rem .8rem}.kpi b{display:block;font-size:1.6rem}.kpi span{color:#444;font-size:.9rem}\
svg{max-width:100%;height:auto}svg text{font-family:inherit;font-size:13px;fill:#1b1b1b}\
table{border-collapse:collapse;width:100%;margin:.6rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e6eb}td.n,th.n{text-align:right}\
.note{color:#555;font-size:.9rem}figure{margin:1rem 0}figcaption{margin-bottom:.3rem}footer{margin-top:2.5rem;color:#555;font-size:.85rem;border-top:1px solid #ddd;padding-top:.6rem}\
@media print{body{margin:0;max-width:none;font-size:10.5pt}h2{break-after:avoid}section{break-inside:avoid}a{color:inherit;text-decoration:none}}\
@page{size:A4;margin:15mm}";

/// A horizontal bar chart of `rows` (label, count), with the numbers written on it.
fn bars(title: &str, rows: &[(String, i64)], colour: &str) -> Markup {
    if rows.is_empty() {
        return html! { p class="note" { (title) ": none in this period." } };
    }
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let (label_w, bar_w, row_h) = (220.0, 420.0, 26.0);
    let height = row_h * rows.len() as f64 + 8.0;
    let width = label_w + bar_w + 70.0;
    html! {
        figure {
            figcaption { strong { (title) } }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) {
                title { (title) }
                @for (i, (label, n)) in rows.iter().enumerate() {
                    @let y = 4.0 + i as f64 * row_h;
                    @let w = (*n as f64 / max * bar_w).max(if *n > 0 { 2.0 } else { 0.0 });
                    text x=(label_w - 8.0) y=(y + 17.0) text-anchor="end" { (truncate(label, 32)) }
                    rect x=(label_w) y=(y + 3.0) width=(format!("{w:.1}")) height=(row_h - 8.0) rx="3" fill=(colour) {}
                    text x=(format!("{:.1}", label_w + w + 6.0)) y=(y + 17.0) { (n) }
                }
            }
        }
    }
}

/// A bar showing a proportion (0–1) with its words.
fn proportion(label: &str, done: i64, of: i64) -> Markup {
    let share = if of > 0 { done as f64 / of as f64 } else { 0.0 };
    let colour = if share >= 0.9 {
        "#15803d"
    } else if share >= 0.6 {
        "#b45309"
    } else {
        "#b91c1c"
    };
    html! {
        div {
            p { (label) ": " strong { (done) " of " (of) } @if of > 0 { " (" (format!("{:.0}", share * 100.0)) "%)" } }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label={(label) ": " (done) " of " (of)} viewBox="0 0 400 18" width="400" height="18" {
                rect x="0" y="0" width="400" height="18" rx="4" fill="#e5e7eb" {}
                rect x="0" y="0" width=(format!("{:.1}", share.clamp(0.0, 1.0) * 400.0)) height="18" rx="4" fill=(colour) {}
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn kpi(value: impl maud::Render, label: &str) -> Markup {
    html! { div class="kpi" { b { (value) } span { (label) } } }
}

fn durations(d: &Durations, unit: &str) -> String {
    if d.count == 0 {
        "none in this period".to_owned()
    } else {
        format!(
            "{} answered; half within {:.1} {unit}, nine in ten within {:.1} {unit}",
            d.count, d.median, d.p90
        )
    }
}

fn list_title(slug: &str) -> String {
    lookout_lists::Category::from_slug(slug)
        .map_or_else(|| slug.to_owned(), |c| c.info().title.to_owned())
}

/// The report as a complete HTML document.
pub fn board_html(
    b: &BoardFigures,
    organisation: &str,
    from_ms: i64,
    to_ms: i64,
    made_ms: i64,
) -> String {
    let r = &b.base;
    let [danger, caution, advisory] = r.alerts_by_severity;
    let org = if organisation.is_empty() {
        "The organisation"
    } else {
        organisation
    };
    let blocked: Vec<(String, i64)> = b
        .blocked_by_category
        .iter()
        .map(|(s, n)| (list_title(s), *n))
        .collect();
    let alerts: Vec<(String, i64)> = r
        .alerts_by_category
        .iter()
        .map(|(s, n)| (lookout_monitor::category_label(s), *n))
        .collect();
    let incidents: Vec<(String, i64)> = b
        .incidents_by_category
        .iter()
        .map(|(s, n)| (crate::incidents::category_label(s), *n))
        .collect();
    let severity = vec![
        ("Danger".to_owned(), danger),
        ("Caution".to_owned(), caution),
        ("Advisory".to_owned(), advisory),
    ];
    let title = format!("E-safety report for the Board — {org}");
    let body = html! {
                h1 { (title) }
                p class="sub" { "From " (when(from_ms)) " to " (when(to_ms)) ". Counts only: no names, no messages, no searches." }
                section {
                    h2 { "At a glance" }
                    div class="grid" {
                        (kpi(r.blocked, "requests blocked"))
                        (kpi(danger + caution + advisory, "monitoring alerts"))
                        (kpi(r.concerns, "concerns reported"))
                        (kpi(r.incidents_opened, "incidents opened"))
                        (kpi(r.referrals, "referrals to other agencies"))
                        (kpi(b.incidents_open_now, "incidents open now"))
                    }
                }
                section {
                    h2 { "Filtering" }
                    p { "Requests allowed: " strong { (r.allowed) } "; blocked: " strong { (r.blocked) } "." }
                    (bars("Blocked requests by category", &blocked, "#1d4ed8"))
                    (bars("Most blocked sites", &b.top_blocked_sites, "#64748b"))
                    h3 { "Over-blocking: “this should not be blocked” requests" }
                    p { "Allowed after review: " strong { (r.reviews[0]) } "; refused: " strong { (r.reviews[1]) } "; waiting: " strong { (r.reviews[2]) } "." }
                    p { "Answer times: " (durations(&b.reviews_answered, "hours")) "." }
                }
                section {
                    h2 { "Monitoring" }
                    (bars("Alerts by severity", &severity, "#b45309"))
                    (bars("Alerts by category", &alerts, "#7c3aed"))
                    p { "Time to first review by the safeguarding team: " (durations(&b.first_review, "minutes")) "." }
                    p { "Alerts from this period not yet reviewed: " strong { (b.alerts_unreviewed) } "; dismissed as false alarms: " strong { (r.false_alarms) } "." }
                }
                section {
                    h2 { "Safeguarding incidents" }
                    (bars("Incidents opened by category", &incidents, "#be123c"))
                    p { "Opened: " strong { (r.incidents_opened) } "; closed: " strong { (r.incidents_closed) } "; referrals: " strong { (r.referrals) } "; open now: " strong { (b.incidents_open_now) } "." }
                }
                section {
                    h2 { "Routine checks" }
                    (proportion("Weeks with a co-signed routine check", b.check_weeks.0, b.check_weeks.1))
                    p class="note" { "Checks signed: " (r.checks[0]) "; co-signed by a supervisor: " (r.checks[1]) "." }
                }
                section {
                    h2 { "Policy review" }
                    @match b.policy_review {
                        Some((on, next)) => { p { "The e-safety policy was last reviewed on " (when(on)) "; the next review is due " (when(next)) @if next < made_ms { strong { " and is overdue" } } "." } }
                        None => { p { strong { "No review of the e-safety policy is recorded." } } }
                    }
                }
                section {
                    h2 { "E-safety briefing and acceptable use" }
                    @if b.briefings.is_empty() {
                        p class="note" { "No briefing has been published for any group with users." }
                    }
                    @for u in &b.briefings {
                        (proportion(&format!("{}: accepted “{}” (version {})", u.group, u.title, u.version), u.accepted, u.members))
                    }
                }
                section {
                    h2 { "Staff training" }
                    @if b.training.is_empty() {
                        p class="note" { "No training course is required of anyone yet." }
                    }
                    @for (title, t) in &b.training {
                        (proportion(&format!("{title}: completed"), t.done, t.required))
                        @if t.overdue > 0 { p class="note" { strong { (t.overdue) } " overdue." } }
                    }
                }
                section {
                    h2 { "Registers" }
                    p { "Technologies risk-assessed: " strong { (b.assessments.0) } "; reviews overdue: " strong { (b.assessments.1) } "." }
                    p { "Official social-media accounts: " strong { (b.social.0) } "; admin rights of people who left still to revoke: " strong { (b.social.1) } "." }
                }
                footer { "Made by Lookout on " (when(made_ms)) " from the organisation's own records. Figures cover the period above; “open now”, briefing uptake, training and the registers are as at the time of making." }
    };
    standalone(&title, STYLE, body)
}

#[derive(Deserialize, Default)]
pub(crate) struct BoardQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// A `YYYY-MM-DD` date as local midnight in milliseconds.
pub fn parse_day(s: &str) -> Option<i64> {
    use chrono::TimeZone as _;
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    chrono::Local
        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.timestamp_millis())
}

/// `GET /reports/board?from=YYYY-MM-DD&to=YYYY-MM-DD` (to is inclusive; default: the last
/// 90 days).
pub(crate) async fn board(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<BoardQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(READERS)?;
    let now = now_ms();
    let day = |s: &Option<String>, what: &str| -> Result<Option<i64>, PageError> {
        match s.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Ok(None),
            Some(s) => parse_day(s).map(Some).ok_or_else(|| {
                PageError::BadForm(format!("The {what} date must look like 2026-09-01."))
            }),
        }
    };
    let to = day(&q.to, "end")?.map_or(now, |t| t + 86_400_000);
    let from = day(&q.from, "start")?.unwrap_or(to - 90 * 86_400_000);
    if from >= to {
        return Err(PageError::BadForm(
            "The start date must be before the end date.".into(),
        ));
    }
    let store = console.store();
    let figures = store.board_figures(from, to).await?;
    store
        .audit(&viewer.audit("report.board", "report").detail(format!(
            "{} to {}",
            when(from),
            when(to)
        )))
        .await?;
    Ok(Html(board_html(
        &figures,
        &console.settings().organisation,
        from,
        to,
        now,
    )))
}
