//! Staff training records (both seeds): courses (versioned; a new edition asks everyone to
//! complete it again), who must complete them (by console role or filtering group), completions
//! (the course's quiz passed, or recorded by a DSL or IT admin), what is due or overdue for
//! whom, and the email reminders sent.
//!
//! What is due is worked out by [`status`], a pure function of the course, the person's last
//! completion of the current edition and the time, so the console, the reminders and the Board
//! report agree.

use std::collections::HashMap;

use sqlx::Row;

use crate::audit::append;
use crate::users::{user_from_row, USER_COLUMNS};
use crate::{now_ms, AuditEntry, Role, Store, StoreError, User};

const DAY_MS: i64 = 86_400_000;

/// A completion that expires within this many days is shown as due.
pub const DUE_SOON_DAYS: i64 = 30;

/// What a course is, as its keepers wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseFields {
    pub title: String,
    /// The edition's label ("2026", "v3"): changing it asks everyone to complete it again.
    pub edition: String,
    /// What it covers and how to do it (Markdown).
    pub about: String,
    /// Where the course itself is (an e-learning site), or empty.
    pub link: String,
    /// Console roles that must complete it.
    pub roles: Vec<Role>,
    /// Filtering groups that must complete it.
    pub groups: Vec<String>,
    /// Complete it again this many days after completing it (0: once per edition).
    pub renew_days: i64,
    /// Days to complete it after it is first required of someone.
    pub within_days: i64,
    /// The quiz (see the console's quiz format); empty: recorded by a DSL or IT admin only.
    pub quiz: String,
    /// Share of the quiz's questions to answer correctly, in percent.
    pub pass_percent: i64,
    /// No longer required of anyone (kept, with its records).
    pub retired: bool,
}

impl CourseFields {
    /// Whether `user` must complete the course.
    pub fn required_of(&self, user: &User) -> bool {
        !self.retired
            && !user.disabled
            && (self.roles.contains(&user.role) || self.groups.contains(&user.group))
    }
}

/// A course's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    /// Stable across versions.
    pub course_id: i64,
    pub version: i64,
    pub at_ms: i64,
    pub by_user: String,
    /// When the current edition was first published.
    pub edition_since_ms: i64,
    pub fields: CourseFields,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub course_id: i64,
    pub edition: String,
    pub username: String,
    pub completed_ms: i64,
    /// `quiz` (self-declared, quiz passed) or `recorded` (by a DSL or IT admin).
    pub how: String,
    pub score: i64,
    pub out_of: i64,
    pub by_user: String,
    pub note: String,
    pub at_ms: i64,
}

/// Where someone stands on a course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Completed; valid until then (`None`: until a new edition).
    Done { until: Option<i64> },
    /// To do by then (not done yet, or the completion expires within [`DUE_SOON_DAYS`]).
    Due { by: i64 },
    /// Should have been done by then.
    Overdue { since: i64 },
}

impl Standing {
    /// Needs doing (due or overdue).
    pub fn to_do(self) -> bool {
        !matches!(self, Standing::Done { .. })
    }
}

/// Where someone stands on `course` at `now`, given their last completion of its current
/// edition and when the course was first required of them (`required_since_ms`: the later of
/// the edition's publication and the account's creation).
pub fn status(
    course: &CourseFields,
    last_completed_ms: Option<i64>,
    required_since_ms: i64,
    now: i64,
) -> Standing {
    match last_completed_ms {
        Some(_) if course.renew_days <= 0 => Standing::Done { until: None },
        Some(done) => {
            let expires = done.saturating_add(course.renew_days.saturating_mul(DAY_MS));
            if now >= expires {
                Standing::Overdue { since: expires }
            } else if now >= expires.saturating_sub(DUE_SOON_DAYS * DAY_MS) {
                Standing::Due { by: expires }
            } else {
                Standing::Done {
                    until: Some(expires),
                }
            }
        }
        None => {
            let by =
                required_since_ms.saturating_add(course.within_days.max(0).saturating_mul(DAY_MS));
            if now >= by {
                Standing::Overdue { since: by }
            } else {
                Standing::Due { by }
            }
        }
    }
}

/// One person on one course.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub user: User,
    pub course_id: i64,
    pub title: String,
    pub standing: Standing,
    /// Their last completion of the current edition.
    pub completed_ms: Option<i64>,
}

/// People a course is required of, of them who have done it and who are overdue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub required: i64,
    pub done: i64,
    pub overdue: i64,
}

impl Tally {
    /// Done as a whole percentage of required (100 when nothing is required).
    pub fn percent(&self) -> i64 {
        (self.done * 100).checked_div(self.required).unwrap_or(100)
    }
}

/// Counts requirements under `key` (per course, per team and course, …), in key order: what
/// the console's pages and the Board report show.
pub fn tally<K: Ord>(
    reqs: &[Requirement],
    key: impl Fn(&Requirement) -> K,
) -> std::collections::BTreeMap<K, Tally> {
    let mut out = std::collections::BTreeMap::<K, Tally>::new();
    for r in reqs {
        let t = out.entry(key(r)).or_default();
        t.required += 1;
        match r.standing {
            Standing::Done { .. } => t.done += 1,
            Standing::Overdue { .. } => t.overdue += 1,
            Standing::Due { .. } => {}
        }
    }
    out
}

/// What a reminder pass owes: a person with an address and what they have to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub user: User,
    pub items: Vec<Requirement>,
}

fn course_from_row(r: &sqlx::any::AnyRow) -> Course {
    let words = |col: &str| -> Vec<String> {
        r.get::<String, _>(col)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    Course {
        course_id: r.get("course_id"),
        version: r.get("id"),
        at_ms: r.get("at_ms"),
        by_user: r.get("by_user"),
        edition_since_ms: r.get("edition_since_ms"),
        fields: CourseFields {
            title: r.get("title"),
            edition: r.get("edition"),
            about: r.get("about"),
            link: r.get("link"),
            // Written from `Role::slug` only; anything else is ignored.
            roles: words("roles")
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            groups: words("groups"),
            renew_days: r.get("renew_days"),
            within_days: r.get("within_days"),
            quiz: r.get("quiz"),
            pass_percent: r.get("pass_percent"),
            retired: r.get::<i64, _>("retired") != 0,
        },
    }
}

fn completion_from_row(r: &sqlx::any::AnyRow) -> Completion {
    Completion {
        course_id: r.get("course_id"),
        edition: r.get("edition"),
        username: r.get("username"),
        completed_ms: r.get("completed_ms"),
        how: r.get("how"),
        score: r.get("score"),
        out_of: r.get("out_of"),
        by_user: r.get("by_user"),
        note: r.get("note"),
        at_ms: r.get("at_ms"),
    }
}

/// Every version's columns, with when its edition was first published.
const COURSE_SELECT: &str = "SELECT c.*, (SELECT MIN(e.at_ms) FROM training_courses e \
     WHERE e.course_id = c.course_id AND e.edition = c.edition) AS edition_since_ms \
     FROM training_courses c";

impl Store {
    /// Adds a course (`course_id: None`) or a new version of one; with its audit row.
    pub async fn save_course(
        &self,
        course_id: Option<i64>,
        f: &CourseFields,
        audit: &AuditEntry,
    ) -> Result<Course, StoreError> {
        let mut tx = self.write_tx().await?;
        let course_id =
            crate::registers::record_id(&mut tx, course_id, "training_courses", "course_id")
                .await?;
        let roles: Vec<&str> = f.roles.iter().map(|r| r.slug()).collect();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO training_courses (course_id, at_ms, by_user, title, edition, about, link, \
             roles, groups, renew_days, within_days, quiz, pass_percent, retired) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(course_id)
        .bind(now_ms())
        .bind(&audit.actor)
        .bind(&f.title)
        .bind(&f.edition)
        .bind(&f.about)
        .bind(&f.link)
        .bind(roles.join(" "))
        .bind(f.groups.join(" "))
        .bind(f.renew_days)
        .bind(f.within_days)
        .bind(&f.quiz)
        .bind(f.pass_percent)
        .bind(i64::from(f.retired))
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("{COURSE_SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let mut audit = audit.clone();
        audit.target = format!("course:{course_id}");
        if audit.detail.is_empty() {
            audit.detail = format!("{} (edition {})", f.title, f.edition);
        }
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(course_from_row(&row))
    }

    /// Every course's current version (retired ones too), by title.
    pub async fn courses(&self) -> Result<Vec<Course>, StoreError> {
        let rows = sqlx::query(&format!(
            "{COURSE_SELECT} WHERE c.id = (SELECT MAX(id) FROM training_courses t \
             WHERE t.course_id = c.course_id) ORDER BY c.title, c.course_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(course_from_row).collect())
    }

    /// One course's versions, newest first (empty: no such course).
    pub async fn course_history(&self, course_id: i64) -> Result<Vec<Course>, StoreError> {
        let rows = sqlx::query(&format!(
            "{COURSE_SELECT} WHERE c.course_id = $1 ORDER BY c.id DESC"
        ))
        .bind(course_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(course_from_row).collect())
    }

    /// Records a completion of a course's `edition` by `username`, with its audit row.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_completion(
        &self,
        course_id: i64,
        edition: &str,
        username: &str,
        completed_ms: i64,
        how: &str,
        (score, out_of): (i64, i64),
        note: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO training_completions (course_id, edition, username, completed_ms, how, \
             score, out_of, by_user, note, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(course_id)
        .bind(edition)
        .bind(username)
        .bind(completed_ms)
        .bind(how)
        .bind(score)
        .bind(out_of)
        .bind(&audit.actor)
        .bind(note)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("course:{course_id}");
        audit.detail = format!("{how} for {username}, edition {edition}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A course's completions (every edition), newest first.
    pub async fn course_completions(&self, course_id: i64) -> Result<Vec<Completion>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM training_completions WHERE course_id = $1 ORDER BY completed_ms DESC, id DESC",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(completion_from_row).collect())
    }

    /// Every completion, oldest first (for the CSV export).
    pub async fn completions(&self) -> Result<Vec<Completion>, StoreError> {
        let rows = sqlx::query("SELECT * FROM training_completions ORDER BY completed_ms, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(completion_from_row).collect())
    }

    /// Every enabled person a current course is required of, on each such course, with where
    /// they stand at `now`; `only` narrows it to one person. By course title, then user name.
    pub async fn requirements(
        &self,
        now: i64,
        only: Option<&str>,
    ) -> Result<Vec<Requirement>, StoreError> {
        let courses = self.courses().await?;
        if courses.iter().all(|c| c.fields.retired) {
            return Ok(Vec::new());
        }
        let users = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, created_ms FROM users WHERE disabled = 0 \
             AND ($1 IS NULL OR username = $2) ORDER BY username"
        ))
        .bind(only)
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        let users: Vec<(User, i64)> = users
            .iter()
            .map(|r| (user_from_row(r), r.get("created_ms")))
            .collect();
        // The last completion of each (course, edition, person).
        let mut last: HashMap<(i64, String, String), i64> = HashMap::new();
        let rows = sqlx::query(
            "SELECT course_id, edition, username, MAX(completed_ms) AS done FROM training_completions \
             WHERE ($1 IS NULL OR username = $2) GROUP BY course_id, edition, username",
        )
        .bind(only)
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            last.insert(
                (r.get("course_id"), r.get("edition"), r.get("username")),
                r.get("done"),
            );
        }
        let mut out = Vec::new();
        for c in &courses {
            for (user, created_ms) in &users {
                if !c.fields.required_of(user) {
                    continue;
                }
                let done = last
                    .get(&(c.course_id, c.fields.edition.clone(), user.username.clone()))
                    .copied();
                let since = c.edition_since_ms.max(*created_ms);
                out.push(Requirement {
                    user: user.clone(),
                    course_id: c.course_id,
                    title: c.fields.title.clone(),
                    standing: status(&c.fields, done, since, now),
                    completed_ms: done,
                });
            }
        }
        Ok(out)
    }

    /// Who is owed a reminder at `now`: people with an email address, something due or
    /// overdue, and no reminder recorded in the last `every_ms`.
    pub async fn reminders_owed(
        &self,
        now: i64,
        every_ms: i64,
    ) -> Result<Vec<Reminder>, StoreError> {
        let recent: std::collections::HashSet<String> =
            sqlx::query_scalar("SELECT DISTINCT username FROM training_reminders WHERE at_ms > $1")
                .bind(now - every_ms)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let mut by_user: std::collections::BTreeMap<String, Reminder> = Default::default();
        for r in self.requirements(now, None).await? {
            if !r.standing.to_do() || r.user.email.is_empty() || recent.contains(&r.user.username) {
                continue;
            }
            by_user
                .entry(r.user.username.clone())
                .or_insert_with(|| Reminder {
                    user: r.user.clone(),
                    items: Vec::new(),
                })
                .items
                .push(r);
        }
        Ok(by_user.into_values().collect())
    }

    /// Records a reminder sent to `username` (`error` empty when the mail server took it).
    pub async fn record_reminder(
        &self,
        username: &str,
        courses: usize,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO training_reminders (username, at_ms, courses, error) VALUES ($1, $2, $3, $4)",
        )
        .bind(username)
        .bind(now_ms())
        .bind(courses as i64)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The reminders sent to `username`, newest first: (when, courses listed, error).
    pub async fn reminders_sent(
        &self,
        username: &str,
    ) -> Result<Vec<(i64, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, courses, error FROM training_reminders WHERE username = $1 ORDER BY at_ms DESC, id DESC",
        )
        .bind(username)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("at_ms"), r.get("courses"), r.get("error")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_each_course_apart_even_with_one_title() {
        let user = |name: &str| User {
            username: name.into(),
            display_name: String::new(),
            group: "staff".into(),
            has_password: false,
            disabled: false,
            role: Role::Staff,
            email: String::new(),
            team: String::new(),
        };
        let req = |course_id, name: &str, standing| Requirement {
            user: user(name),
            course_id,
            title: "Induction".into(),
            standing,
            completed_ms: None,
        };
        let reqs = [
            req(1, "a", Standing::Done { until: None }),
            req(1, "b", Standing::Overdue { since: 0 }),
            req(2, "a", Standing::Due { by: 0 }),
        ];
        let t = tally(&reqs, |r| (r.title.clone(), r.course_id));
        let rows: Vec<_> = t.values().copied().collect();
        assert_eq!(
            rows,
            [
                Tally {
                    required: 2,
                    done: 1,
                    overdue: 1
                },
                Tally {
                    required: 1,
                    done: 0,
                    overdue: 0
                },
            ]
        );
        assert_eq!((rows[0].percent(), rows[1].percent()), (50, 0));
        assert_eq!(
            Tally::default().percent(),
            100,
            "nothing required: nothing missing"
        );
    }

    #[test]
    fn standing_follows_the_course_and_the_clock() {
        let day = DAY_MS;
        let yearly = CourseFields {
            renew_days: 365,
            within_days: 30,
            ..CourseFields::default()
        };
        let once = CourseFields {
            renew_days: 0,
            within_days: 14,
            ..CourseFields::default()
        };
        let t0 = 1_000 * day;
        // (course, last completion, required since, now, expected)
        let table = [
            (&yearly, None, t0, t0, Standing::Due { by: t0 + 30 * day }),
            (
                &yearly,
                None,
                t0,
                t0 + 30 * day,
                Standing::Overdue {
                    since: t0 + 30 * day,
                },
            ),
            (
                &yearly,
                Some(t0),
                t0,
                t0 + 10 * day,
                Standing::Done {
                    until: Some(t0 + 365 * day),
                },
            ),
            // Expiring within 30 days: due again.
            (
                &yearly,
                Some(t0),
                t0,
                t0 + 340 * day,
                Standing::Due { by: t0 + 365 * day },
            ),
            (
                &yearly,
                Some(t0),
                t0,
                t0 + 365 * day,
                Standing::Overdue {
                    since: t0 + 365 * day,
                },
            ),
            (
                &once,
                Some(t0),
                t0,
                t0 + 5000 * day,
                Standing::Done { until: None },
            ),
            (
                &once,
                None,
                t0,
                t0 + 13 * day,
                Standing::Due { by: t0 + 14 * day },
            ),
            (
                &once,
                None,
                t0,
                t0 + 14 * day,
                Standing::Overdue {
                    since: t0 + 14 * day,
                },
            ),
        ];
        for (i, (course, done, since, now, want)) in table.into_iter().enumerate() {
            assert_eq!(status(course, done, since, now), want, "row {i}");
        }
        // Hostile numbers saturate instead of overflowing.
        let huge = CourseFields {
            renew_days: i64::MAX,
            within_days: i64::MAX,
            ..CourseFields::default()
        };
        assert!(!status(&huge, Some(i64::MAX), 0, 0).to_do());
        assert!(status(&huge, None, i64::MAX, 0).to_do());
    }
}
