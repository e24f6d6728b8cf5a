//! Figures for the Board and the Head of IT: counts only, never names or text.

use sqlx::Row;

use crate::events::push_period;
use crate::{now_ms, Sql, Store, StoreError};

/// What happened in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Alerts raised, per category slug, most first.
    pub alerts_by_category: Vec<(String, i64)>,
    /// Alerts raised per severity: danger, caution, advisory.
    pub alerts_by_severity: [i64; 3],
    /// Alerts dismissed as false alarms.
    pub false_alarms: i64,
    pub concerns: i64,
    pub incidents_opened: i64,
    pub incidents_closed: i64,
    pub referrals: i64,
    /// Review requests: approved, rejected, pending.
    pub reviews: [i64; 3],
    /// Routine checks signed, and co-signed.
    pub checks: [i64; 2],
    /// Requests blocked and allowed in the activity log.
    pub blocked: i64,
    pub allowed: i64,
}

impl Store {
    /// Counts for `[from_ms, to_ms)`.
    pub async fn report(&self, from_ms: i64, to_ms: i64) -> Result<Report, StoreError> {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_one(&self.pool)
                .await
        };
        let mut r = Report::default();
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS n FROM alerts WHERE created_ms >= $1 AND created_ms < $2 \
             GROUP BY category ORDER BY n DESC, category",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        r.alerts_by_category = rows
            .iter()
            .map(|x| (x.get("category"), x.get("n")))
            .collect();
        for (i, sev) in ["danger", "caution", "advisory"].iter().enumerate() {
            r.alerts_by_severity[i] = sqlx::query_scalar(
                "SELECT COUNT(*) FROM alerts WHERE created_ms >= $1 AND created_ms < $2 AND severity = $3",
            )
            .bind(from_ms)
            .bind(to_ms)
            .bind(sev)
            .fetch_one(&self.pool)
            .await?;
        }
        r.false_alarms = count("SELECT COUNT(*) FROM alert_reviews WHERE at_ms >= $1 AND at_ms < $2 AND action = 'dismissed'").await?;
        r.concerns =
            count("SELECT COUNT(*) FROM concerns WHERE at_ms >= $1 AND at_ms < $2").await?;
        r.incidents_opened =
            count("SELECT COUNT(*) FROM incidents WHERE opened_ms >= $1 AND opened_ms < $2")
                .await?;
        r.incidents_closed = count("SELECT COUNT(*) FROM incident_entries WHERE at_ms >= $1 AND at_ms < $2 AND kind = 'closed'").await?;
        r.referrals = count("SELECT COUNT(*) FROM incident_entries WHERE at_ms >= $1 AND at_ms < $2 AND kind = 'referral'").await?;
        r.reviews = [
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= $1 AND at_ms < $2 AND status = 'approved'").await?,
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= $1 AND at_ms < $2 AND status = 'rejected'").await?,
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= $1 AND at_ms < $2 AND status = 'pending'").await?,
        ];
        r.checks = [
            count("SELECT COUNT(*) FROM checks WHERE signed_ms >= $1 AND signed_ms < $2").await?,
            count("SELECT COUNT(*) FROM checks WHERE signed_ms >= $1 AND signed_ms < $2 AND supervisor_signature IS NOT NULL").await?,
        ];
        // Both in one pass over the period's rows (the ids the time map names for it); no
        // grouping, so nothing to sort.
        let mut q = Sql::new(
            self.dialect,
            "SELECT SUM(CASE WHEN action = 'block' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN action = 'allow' THEN 1 ELSE 0 END) FROM events WHERE 1 = 1",
        );
        push_period(&mut q, Some(from_ms), Some(to_ms));
        let (sql, args) = q.into_parts()?;
        let (blocked, allowed): (Option<i64>, Option<i64>) = sqlx::query_as_with(&sql, args)
            .fetch_one(&self.pool)
            .await?;
        (r.blocked, r.allowed) = (blocked.unwrap_or(0), allowed.unwrap_or(0));
        Ok(r)
    }
}

/// Everything the termly/annual report for the Board and the Head of IT shows: counts,
/// durations and proportions only — never a person's name or words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardFigures {
    /// The console's figures for the same period.
    pub base: Report,
    /// Blocked requests per category slug, most first (a request in two categories counts
    /// in both).
    pub blocked_by_category: Vec<(String, i64)>,
    /// The most blocked sites (host names), most first, at most ten.
    pub top_blocked_sites: Vec<(String, i64)>,
    /// "This should not be blocked" requests answered in the period: how many, and the
    /// median and 90th-percentile hours from request to answer.
    pub reviews_answered: Durations,
    /// Alerts raised in the period and reviewed: how many, and the median and 90th-percentile
    /// minutes to their first review.
    pub first_review: Durations,
    /// Alerts raised in the period that nobody has reviewed yet.
    pub alerts_unreviewed: i64,
    /// Incidents opened in the period per category, most first.
    pub incidents_by_category: Vec<(String, i64)>,
    /// Incidents open now (opened at any time).
    pub incidents_open_now: i64,
    /// Weeks of the period (whole or part) with a co-signed routine check, and weeks.
    pub check_weeks: (i64, i64),
    /// Per group with a briefing: its current version's title, people of the group who
    /// accepted it, and people in the group.
    pub briefings: Vec<BriefingUptake>,
    /// The latest policy review: when it was reviewed and when the next is due.
    pub policy_review: Option<(i64, i64)>,
    /// Per course required of someone, by title: its title and counts, as at the time of
    /// making.
    pub training: Vec<(String, crate::Tally)>,
    /// Technology risk assessments: (on the register, review overdue), as at the time of making.
    pub assessments: (i64, i64),
    /// Official social-media accounts: (registered and not retired, admin rights waiting to be
    /// revoked after their holder left), as at the time of making.
    pub social: (i64, i64),
}

/// How many, and how long they took (median, 90th percentile), in the unit the field says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Durations {
    pub count: i64,
    pub median: f64,
    pub p90: f64,
}

impl Durations {
    /// From durations in milliseconds, expressed in `unit_ms`.
    fn of(mut ms: Vec<i64>, unit_ms: f64) -> Durations {
        if ms.is_empty() {
            return Durations::default();
        }
        ms.sort_unstable();
        let at = |q: f64| {
            let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
            ms[i.min(ms.len() - 1)] as f64 / unit_ms
        };
        Durations {
            count: ms.len() as i64,
            median: at(0.5),
            p90: at(0.9),
        }
    }
}

/// One group's uptake of its current briefing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BriefingUptake {
    pub group: String,
    pub title: String,
    pub version: i64,
    pub accepted: i64,
    pub members: i64,
}

const WEEK_MS: i64 = 7 * 86_400_000;

impl Store {
    /// The Board's figures for `[from_ms, to_ms)`.
    pub async fn board_figures(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BoardFigures, StoreError> {
        let mut b = BoardFigures {
            base: self.report(from_ms, to_ms).await?,
            ..BoardFigures::default()
        };
        let blocked = |select: &str, then: &str| {
            let mut q = Sql::new(
                self.dialect,
                format!("SELECT {select} FROM events WHERE action = 'block'"),
            );
            push_period(&mut q, Some(from_ms), Some(to_ms));
            q.push(then);
            q.into_parts()
        };
        let (sql, args) = blocked("categories, COUNT(*) AS n", " GROUP BY categories")?;
        let rows = sqlx::query_with(&sql, args).fetch_all(&self.pool).await?;
        let mut by_category: std::collections::BTreeMap<String, i64> = Default::default();
        for r in &rows {
            let n: i64 = r.get("n");
            let cats: String = r.get("categories");
            let mut any = false;
            for c in cats.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                *by_category.entry(c.to_owned()).or_default() += n;
                any = true;
            }
            if !any {
                *by_category.entry("(no category)".to_owned()).or_default() += n;
            }
        }
        b.blocked_by_category = sorted(by_category.into_iter().collect());
        let (sql, args) = blocked(
            "host, COUNT(*) AS n",
            " GROUP BY host ORDER BY n DESC, host LIMIT 10",
        )?;
        b.top_blocked_sites = sqlx::query_with(&sql, args)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| (r.get("host"), r.get("n")))
            .collect();
        let waits: Vec<i64> = sqlx::query_scalar(
            "SELECT decided_ms - at_ms FROM review_requests \
             WHERE decided_ms >= $1 AND decided_ms < $2",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        b.reviews_answered = Durations::of(waits, 3_600_000.0);
        let waits: Vec<i64> = sqlx::query_scalar(
            "SELECT MIN(r.at_ms) - a.created_ms FROM alerts a JOIN alert_reviews r ON r.alert_id = a.id \
             WHERE a.created_ms >= $1 AND a.created_ms < $2 GROUP BY a.id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        b.first_review = Durations::of(waits, 60_000.0);
        b.alerts_unreviewed = sqlx::query_scalar(
            "SELECT COUNT(*) FROM alerts a WHERE a.created_ms >= $1 AND a.created_ms < $2 \
             AND NOT EXISTS (SELECT 1 FROM alert_reviews r WHERE r.alert_id = a.id)",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        b.incidents_by_category = sqlx::query(
            "SELECT category, COUNT(*) AS n FROM incidents WHERE opened_ms >= $1 AND opened_ms < $2 \
             GROUP BY category ORDER BY n DESC, category",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get("category"), r.get("n")))
        .collect();
        b.incidents_open_now =
            sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE status = 'open'")
                .fetch_one(&self.pool)
                .await?;
        let cosigned: Vec<i64> = sqlx::query_scalar(
            "SELECT signed_ms FROM checks WHERE signed_ms >= $1 AND signed_ms < $2 \
             AND supervisor_signature IS NOT NULL",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        // Saturating: a period as wide as the integers must not overflow.
        let weeks = to_ms
            .saturating_sub(from_ms)
            .max(0)
            .saturating_add(WEEK_MS - 1)
            / WEEK_MS;
        let mut covered: Vec<i64> = cosigned
            .iter()
            .map(|t| t.saturating_sub(from_ms) / WEEK_MS)
            .collect();
        covered.sort_unstable();
        covered.dedup();
        b.check_weeks = (covered.len() as i64, weeks);
        let groups: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT group_name FROM users ORDER BY group_name")
                .fetch_all(&self.pool)
                .await?;
        for group in groups {
            let Some(current) = self.current_briefing(&group).await? else {
                continue;
            };
            let (accepted, members): (i64, i64) = sqlx::query_as(
                "SELECT \
                   (SELECT COUNT(DISTINCT a.username) FROM acceptances a JOIN users u \
                      ON u.username = a.username WHERE a.briefing_id = $1 AND u.group_name = $2 \
                      AND u.disabled = 0), \
                   (SELECT COUNT(*) FROM users WHERE group_name = $3 AND disabled = 0)",
            )
            .bind(current.id)
            .bind(&group)
            .bind(&group)
            .fetch_one(&self.pool)
            .await?;
            b.briefings.push(BriefingUptake {
                group,
                title: current.title,
                version: current.id,
                accepted,
                members,
            });
        }
        b.policy_review = sqlx::query_as(
            "SELECT reviewed_on_ms, next_due_ms FROM policy_reviews ORDER BY reviewed_on_ms DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let now = now_ms();
        // Per course (by title, then id: two courses may share a title).
        b.training = crate::tally(&self.requirements(now, None).await?, |r| {
            (r.title.clone(), r.course_id)
        })
        .into_iter()
        .map(|((title, _), t)| (title, t))
        .collect();
        let assessments = self.assessments().await?;
        b.assessments = (
            assessments.len() as i64,
            assessments
                .iter()
                .filter(|a| a.fields.review_due_ms < now)
                .count() as i64,
        );
        b.social = (
            self.social_accounts()
                .await?
                .iter()
                .filter(|a| !a.retired)
                .count() as i64,
            self.social_admins()
                .await?
                .iter()
                .filter(|a| a.revoke_since.is_some())
                .count() as i64,
        );
        Ok(b)
    }
}

fn sorted(mut v: Vec<(String, i64)>) -> Vec<(String, i64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}
