//! Staff training records (both seeds): courses the DSL team or IT admin write (what it covers,
//! a link, who must complete it, how often, a short quiz), each person's training and what is
//! due, completions (the quiz passed, or recorded by a DSL or IT admin from a certificate),
//! who is overdue, a report per team, and a CSV export.
//!
//! The quiz format, one line each, blank lines ignored:
//!
//! ```text
//! ? What do you do when a learner tells you they are being harmed?
//! - Promise to keep it secret
//! * Listen, write down their words, and tell the DSL the same day
//! - Look into it yourself first
//! ```
//!
//! `?` starts a question, `*` is the right answer (exactly one), `-` a wrong one.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::Role;
use lookout_http::markdown_html;
use lookout_store::{csv_line, tally, Course, CourseFields, Requirement, Standing};
use maud::{html, Markup, PreEscaped};

use crate::pages::{csrf, page, when};
use crate::registers::csv_download;
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

/// Who writes courses and records completions (the same people as the briefing and the
/// registers: the routes share one guard).
pub(crate) const KEEPERS: &[Role] = crate::briefings::EDITORS;

/// Who sees everyone's training: the keepers and the DSL supervisor.
pub(crate) const OVERSEERS: &[Role] = &[Role::Dsl, Role::Supervisor, Role::ItAdmin];

const TITLE_MAX: usize = 200;
const TEXT_MAX: usize = 50_000;
const MAX_QUESTIONS: usize = 50;
const MAX_ANSWERS: usize = 10;

/// One question of a course's quiz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub text: String,
    pub answers: Vec<String>,
    /// Which answer is right.
    pub right: usize,
}

/// A course's quiz, parsed from the format in the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Quiz(pub Vec<Question>);

impl Quiz {
    /// Parses a quiz; an error names the line and what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Quiz, String> {
        let mut questions: Vec<(usize, Question, usize)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (mark, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
            let rest = rest.trim();
            match mark {
                "?" | "*" | "-" if rest.is_empty() => {
                    return Err(format!("line {n}: `{mark}` needs some text after it"))
                }
                _ if rest.chars().count() > 1000 => {
                    return Err(format!("line {n}: at most 1,000 characters a line"))
                }
                "?" => {
                    if questions.len() == MAX_QUESTIONS {
                        return Err(format!("line {n}: at most {MAX_QUESTIONS} questions"));
                    }
                    questions.push((
                        n,
                        Question {
                            text: rest.to_owned(),
                            answers: Vec::new(),
                            right: usize::MAX,
                        },
                        0,
                    ));
                }
                "*" | "-" => {
                    let Some((_, q, rights)) = questions.last_mut() else {
                        return Err(format!(
                            "line {n}: an answer before the first question (start a question with `?`)"
                        ));
                    };
                    if q.answers.len() == MAX_ANSWERS {
                        return Err(format!("line {n}: at most {MAX_ANSWERS} answers a question"));
                    }
                    if mark == "*" {
                        q.right = q.answers.len();
                        *rights += 1;
                    }
                    q.answers.push(rest.to_owned());
                }
                _ => {
                    return Err(format!(
                        "line {n}: start the line with `?` (a question), `*` (the right answer) or `-` (a wrong one)"
                    ))
                }
            }
        }
        let mut out = Vec::with_capacity(questions.len());
        for (n, q, rights) in questions {
            if q.answers.len() < 2 {
                return Err(format!("line {n}: the question needs at least two answers"));
            }
            if rights != 1 {
                return Err(format!(
                    "line {n}: mark exactly one answer right with `*` (found {rights})"
                ));
            }
            out.push(q);
        }
        Ok(Quiz(out))
    }

    /// (right, questions) for answers posted as `q<question>=<answer>` (others ignored; an
    /// unanswered or repeated question counts as wrong).
    pub(crate) fn grade(&self, posted: &[(String, String)]) -> (i64, i64) {
        let mut right = 0;
        for (i, q) in self.0.iter().enumerate() {
            let key = format!("q{i}");
            let mut given = posted.iter().filter(|(k, _)| *k == key);
            if let (Some((_, v)), None) = (given.next(), given.next()) {
                if v.parse::<usize>().ok() == Some(q.right) {
                    right += 1;
                }
            }
        }
        (right, self.0.len() as i64)
    }

    /// Whether `right` of the questions passes at `percent`.
    pub(crate) fn passes(&self, right: i64, percent: i64) -> bool {
        right * 100 >= percent * self.0.len() as i64
    }
}

/// The value of the first field named `name`.
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn number(pairs: &[(String, String)], name: &str, what: &str, max: i64) -> Result<i64, PageError> {
    let v = field(pairs, name).trim();
    match v.parse::<i64>() {
        Ok(n) if (0..=max).contains(&n) => Ok(n),
        _ => Err(PageError::BadForm(format!(
            "{what} must be a whole number from 0 to {max} (got “{v}”)."
        ))),
    }
}

/// A course from its posted form (`role` and `group` may repeat); `groups` are the policy's.
pub(crate) fn course_from_form(
    pairs: &[(String, String)],
    groups: &[String],
) -> Result<CourseFields, PageError> {
    let title = field(pairs, "title").trim();
    if title.is_empty() || title.chars().count() > TITLE_MAX || title.chars().any(char::is_control)
    {
        return Err(PageError::BadForm(format!(
            "Give the course a title: one line of at most {TITLE_MAX} characters."
        )));
    }
    let edition = field(pairs, "edition").trim();
    if edition.is_empty() || edition.chars().count() > 50 || edition.chars().any(char::is_control) {
        return Err(PageError::BadForm(
            "Give the edition a short label, such as 2026 or v2.".into(),
        ));
    }
    let about = field(pairs, "about").trim();
    if about.is_empty() || about.len() > TEXT_MAX {
        return Err(PageError::BadForm(format!(
            "Say what the course covers and how to do it (at most {TEXT_MAX} characters)."
        )));
    }
    let link = field(pairs, "link").trim();
    if !link.is_empty()
        && (!(link.starts_with("https://") || link.starts_with("http://"))
            || link.len() > 2000
            || link.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(PageError::BadForm(
            "The link must be a web address starting with https:// (or left empty).".into(),
        ));
    }
    let mut roles = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "role") {
        let role: Role = v
            .parse()
            .map_err(|e: lookout_auth::ParseRoleError| PageError::BadForm(e.to_string()))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let mut chosen = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "group") {
        if !groups.iter().any(|g| g == v) {
            return Err(PageError::BadForm(format!(
                "There is no filtering group “{v}” ({}).",
                groups.join(", ")
            )));
        }
        if !chosen.contains(v) {
            chosen.push(v.clone());
        }
    }
    if roles.is_empty() && chosen.is_empty() {
        return Err(PageError::BadForm(
            "Choose who must complete it: at least one role or group.".into(),
        ));
    }
    let quiz = field(pairs, "quiz").trim();
    if quiz.len() > TEXT_MAX {
        return Err(PageError::BadForm("The quiz is too long.".into()));
    }
    Quiz::parse(quiz).map_err(|e| PageError::BadForm(format!("The quiz, {e}.")))?;
    Ok(CourseFields {
        title: title.to_owned(),
        edition: edition.to_owned(),
        about: about.to_owned(),
        link: link.to_owned(),
        roles,
        groups: chosen,
        renew_days: number(pairs, "renew_days", "Renew every (days)", 3650)?,
        within_days: number(pairs, "within_days", "Complete within (days)", 365)?,
        quiz: quiz.to_owned(),
        pass_percent: number(pairs, "pass_percent", "The pass mark", 100)?,
        retired: field(pairs, "retired") == "on",
    })
}

/// Where someone stands, in words.
fn standing(s: Standing) -> Markup {
    match s {
        Standing::Done { until: None } => html! { span class="badge sev-advisory" { "Done" } },
        Standing::Done { until: Some(t) } => {
            html! { span class="badge sev-advisory" { "Done" } " until " (when(t)) }
        }
        Standing::Due { by } => {
            html! { span class="badge sev-caution" { "Due" } " by " (when(by)) }
        }
        Standing::Overdue { since } => {
            html! { span class="badge sev-danger" { "Overdue" } " since " (when(since)) }
        }
    }
}

/// The viewer's own training as a list (the home page and `/training` both show it).
pub(crate) fn mine(reqs: &[Requirement], only_to_do: bool) -> Markup {
    html! {
        ul class="training" {
            @for r in reqs.iter().filter(|r| !only_to_do || r.standing.to_do()) {
                li { a href={"/training/" (r.course_id)} { (r.title) } " — " (standing(r.standing)) }
            }
        }
    }
}

/// `GET /training`: my training; for the keepers and supervisor, the way to everyone's.
pub(crate) async fn home(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    let store = console.store();
    let reqs = store
        .requirements(crate::now_ms(), Some(viewer.username()))
        .await?;
    let role = viewer.role();
    let body = html! {
        h2 { "My training" }
        @if reqs.is_empty() { p id="nothing-due" { "No training is required of you at the moment." } }
        @else { (mine(&reqs, false)) }
        @if OVERSEERS.contains(&role) {
            h2 { "Everyone's training" }
            ul {
                @if KEEPERS.contains(&role) { li { a href="/training/courses" { "Courses" } " — write a course, its quiz, and who must complete it" } }
                li { a href="/training/overdue" { "Who has training due or overdue" } }
                li { a href="/training/teams" { "Training by team" } }
                li { a href="/training/completions.csv" { "Download every completion (CSV)" } }
            }
        }
    };
    Ok(page(&viewer, "Training", body))
}

/// `GET /training/courses` (keepers).
pub(crate) async fn courses(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let all = store.courses().await?;
    let counts = tally(&store.requirements(crate::now_ms(), None).await?, |r| {
        r.course_id
    });
    let body = html! {
        p { "Courses staff (or any group) must complete. Changing a course's edition asks everyone to complete it again; other changes keep what they have done." }
        p { a class="button" href="/training/new" { "Add a course" } }
        @if all.is_empty() { p { "No course has been added yet." } }
        @else {
            table class="list" id="courses" {
                thead { tr { th scope="col" { "Course" } th scope="col" { "Edition" } th scope="col" { "Required of" } th scope="col" { "Renewed" } th scope="col" { "Done / required" } } }
                tbody {
                    @for c in &all {
                        @let t = counts.get(&c.course_id).copied().unwrap_or_default();
                        tr {
                            td { a href={"/training/" (c.course_id)} { (c.fields.title) } @if c.fields.retired { " " span class="badge" { "Retired" } } }
                            td { (c.fields.edition) }
                            td { (required_of(&c.fields)) }
                            td { @if c.fields.renew_days == 0 { "Once per edition" } @else { "Every " (c.fields.renew_days) " days" } }
                            td { (t.done) " / " (t.required) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Training courses", body))
}

fn required_of(f: &CourseFields) -> String {
    f.roles
        .iter()
        .map(|r| r.label().to_owned())
        .chain(f.groups.iter().map(|g| format!("group {g}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn course_form(viewer: &Viewer, groups: &[String], c: Option<&Course>, action: &str) -> Markup {
    let f = c.map(|c| c.fields.clone()).unwrap_or_else(|| CourseFields {
        renew_days: 365,
        within_days: 30,
        pass_percent: 80,
        ..CourseFields::default()
    });
    html! {
        form method="post" action=(action) class="stack" {
            (csrf(&viewer.session.csrf))
            label for="title" { "Title" }
            input id="title" name="title" required maxlength=(TITLE_MAX) value=(f.title);
            label for="edition" { "Edition (changing it asks everyone to complete the course again)" }
            input id="edition" name="edition" required maxlength="50" value=(f.edition) placeholder="2026";
            label for="about" { "What it covers and how to do it (Markdown)" }
            textarea id="about" name="about" rows="8" required { (f.about) }
            label for="link" { "Link to the course itself (optional)" }
            input id="link" name="link" type="url" value=(f.link) placeholder="https://";
            fieldset {
                legend { "Required of (console roles)" }
                @for r in Role::ALL {
                    label class="choice" { input type="checkbox" name="role" value=(r.slug()) checked[f.roles.contains(&r)]; " " (r.label()) }
                }
            }
            @if !groups.is_empty() {
                fieldset {
                    legend { "and of (filtering groups)" }
                    @for g in groups {
                        label class="choice" { input type="checkbox" name="group" value=(g) checked[f.groups.contains(g)]; " " (g) }
                    }
                }
            }
            label for="within_days" { "Complete within (days after it is first required)" }
            input id="within_days" name="within_days" type="number" min="0" max="365" required value=(f.within_days);
            label for="renew_days" { "Complete again every (days; 0 for once per edition)" }
            input id="renew_days" name="renew_days" type="number" min="0" max="3650" required value=(f.renew_days);
            label for="quiz" { "Quiz (optional; without one, a DSL or IT admin records completions)" }
            p class="hint" id="quiz-hint" { "One line each: " code { "? question" } ", " code { "* the right answer" } ", " code { "- a wrong answer" } "." }
            textarea id="quiz" name="quiz" rows="10" aria-describedby="quiz-hint" { (f.quiz) }
            label for="pass_percent" { "Pass mark (% of questions right)" }
            input id="pass_percent" name="pass_percent" type="number" min="0" max="100" required value=(f.pass_percent);
            @if c.is_some() {
                label class="choice" { input type="checkbox" name="retired" checked[f.retired]; " Retired (no longer required; its records are kept)" }
            }
            button type="submit" { @if c.is_some() { "Save a new version" } @else { "Add the course" } }
        }
    }
}

/// `GET /training/new` (keepers).
pub(crate) async fn new_form(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let groups = &console.settings().groups;
    Ok(page(
        &viewer,
        "Add a course",
        course_form(&viewer, groups, None, "/training/courses"),
    ))
}

/// `POST /training/courses` (new) and `POST /training/{id}` (a new version), keepers.
pub(crate) async fn save(
    State(console): State<Console>,
    id: Option<Path<i64>>,
    Posted(viewer, pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let id = id.map(|Path(id)| id);
    if let Some(id) = id {
        known(store, id).await?;
    }
    let fields = course_from_form(&pairs, &console.settings().groups)?;
    let c = store
        .save_course(id, &fields, &viewer.audit("training.course.save", ""))
        .await?;
    Ok(Redirect::to(&format!("/training/{}", c.course_id)).into_response())
}

async fn known(store: &lookout_store::Store, id: i64) -> Result<Vec<Course>, PageError> {
    let history = store.course_history(id).await?;
    match history.is_empty() {
        true => Err(PageError::NotFound(format!("There is no course {id}."))),
        false => Ok(history),
    }
}

/// The course, for someone who may see it: the overseers, or someone it is required of.
async fn visible(
    console: &Console,
    viewer: &Viewer,
    id: i64,
) -> Result<(Vec<Course>, Option<Requirement>), PageError> {
    let store = console.store();
    let history = known(store, id).await?;
    let mine = store
        .requirements(crate::now_ms(), Some(viewer.username()))
        .await?
        .into_iter()
        .find(|r| r.course_id == id);
    if mine.is_none() && !OVERSEERS.contains(&viewer.role()) {
        return Err(PageError::NotFound(format!("There is no course {id}.")));
    }
    Ok((history, mine))
}

/// `GET /training/{id}`: the course, the viewer's standing and its quiz; for the overseers who
/// has completed it; for the keepers, recording a completion, a new version, the history.
pub(crate) async fn course(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    let (history, mine) = visible(&console, &viewer, id).await?;
    let current = &history[0];
    let f = &current.fields;
    let store = console.store();
    let role = viewer.role();
    let quiz = Quiz::parse(&f.quiz).unwrap_or_default();
    let everyone = if OVERSEERS.contains(&role) {
        store
            .audit(&viewer.audit("training.course.view", format!("course:{id}")))
            .await?;
        Some((
            store.course_completions(id).await?,
            store.requirements(crate::now_ms(), None).await?,
        ))
    } else {
        None
    };
    let body = html! {
        dl class="facts" {
            dt { "Edition" } dd id="edition" { (f.edition) }
            dt { "Required of" } dd { (required_of(f)) }
            dt { "Renewed" } dd { @if f.renew_days == 0 { "Once per edition" } @else { "Every " (f.renew_days) " days" } }
            @if let Some(r) = &mine { dt { "You" } dd id="my-standing" { (standing(r.standing)) } }
        }
        section class="card" { (PreEscaped(markdown_html(&f.about))) }
        @if !f.link.is_empty() { p { a href=(f.link) rel="noopener noreferrer" target="_blank" { "Open the course" } } }
        @if mine.is_some() && !f.retired {
            @if quiz.0.is_empty() {
                p id="recorded-only" { "When you have completed it, a DSL or the IT admin records it here (bring your certificate if there is one)." }
            } @else {
                h2 { "Quiz" }
                p { "Answer " (quiz.0.len()) " question(s); " (f.pass_percent) "% right passes and records the course as completed by you." }
                form method="post" action={"/training/" (id) "/quiz"} class="stack" id="quiz" {
                    (csrf(&viewer.session.csrf))
                    input type="hidden" name="version" value=(current.version);
                    @for (i, q) in quiz.0.iter().enumerate() {
                        fieldset {
                            legend { (i + 1) ". " (q.text) }
                            @for (j, a) in q.answers.iter().enumerate() {
                                label class="choice" { input type="radio" name={"q" (i)} value=(j) required; " " (a) }
                            }
                        }
                    }
                    button type="submit" { "Submit my answers" }
                }
            }
        }
        @if let Some((done, reqs)) = &everyone {
            h2 { "Who must complete it" }
            @let mine: Vec<&Requirement> = reqs.iter().filter(|r| r.course_id == id).collect();
            @if mine.is_empty() { p { "Nobody at the moment." } }
            @else {
                table class="list" id="people" {
                    thead { tr { th scope="col" { "Person" } th scope="col" { "Team" } th scope="col" { "Standing" } } }
                    tbody { @for r in &mine { tr { td { (r.user.username) br; span class="muted" { (r.user.display_name) } } td { (r.user.team) } td { (standing(r.standing)) } } } }
                }
            }
            h2 { "Completions" }
            @if done.is_empty() { p { "None recorded yet." } }
            @else {
                table class="list" id="completions" {
                    thead { tr { th scope="col" { "Person" } th scope="col" { "Edition" } th scope="col" { "Completed" } th scope="col" { "How" } th scope="col" { "Recorded by" } } }
                    tbody { @for c in done { tr {
                        td { (c.username) } td { (c.edition) } td { (when(c.completed_ms)) }
                        td { @if c.how == "quiz" { "Quiz, " (c.score) " of " (c.out_of) } @else { "Recorded" @if !c.note.is_empty() { ": " (c.note) } } }
                        td { (c.by_user) }
                    } } }
                }
            }
        }
        @if KEEPERS.contains(&role) {
            h2 { "Record a completion" }
            form method="post" action={"/training/" (id) "/record"} class="stack narrow" id="record" {
                (csrf(&viewer.session.csrf))
                label for="username" { "User name" }
                input id="username" name="username" required maxlength="64";
                label for="completed" { "Completed on" }
                input id="completed" name="completed" type="date" required;
                label for="note" { "Note (the certificate, the session attended)" }
                input id="note" name="note" maxlength="500";
                button type="submit" { "Record it" }
            }
            h2 { "Change the course" }
            (course_form(&viewer, &console.settings().groups, Some(current), &format!("/training/{id}")))
            h2 { "History" }
            table class="list" id="history" {
                thead { tr { th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "Edition" } } }
                tbody { @for h in &history { tr { td { (h.version) } td { (when(h.at_ms)) } td { (h.by_user) } td { (h.fields.edition) } } } }
            }
        }
        p { a href="/training" { "My training" } }
    };
    Ok(page(&viewer, &f.title, body))
}

/// `POST /training/{id}/quiz`: marks the viewer's answers; a pass records the completion.
pub(crate) async fn quiz(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let (history, mine) = visible(&console, &viewer, id).await?;
    let current = &history[0];
    let f = &current.fields;
    if mine.is_none() || f.retired {
        return Err(PageError::BadForm(
            "This course is not required of you, so there is nothing to record.".into(),
        ));
    }
    if field(&pairs, "version") != current.version.to_string() {
        return Err(PageError::Conflict(
            "The course was changed while you were answering: read it again and answer the quiz as it is now.".into(),
        ));
    }
    let quiz = Quiz::parse(&f.quiz).unwrap_or_default();
    if quiz.0.is_empty() {
        return Err(PageError::BadForm(
            "This course has no quiz: a DSL or the IT admin records it.".into(),
        ));
    }
    let (right, out_of) = quiz.grade(&pairs);
    let store = console.store();
    let passed = quiz.passes(right, f.pass_percent);
    if passed {
        store
            .record_completion(
                id,
                &f.edition,
                viewer.username(),
                crate::now_ms(),
                "quiz",
                (right, out_of),
                "",
                &viewer.audit("training.complete", ""),
            )
            .await?;
    } else {
        store
            .audit(
                &viewer
                    .audit("training.quiz.fail", format!("course:{id}"))
                    .detail(format!("{right} of {out_of}")),
            )
            .await?;
    }
    let body = html! {
        @if passed {
            p class="note" role="status" id="quiz-result" { "You answered " (right) " of " (out_of) " correctly: passed. " strong { (f.title) } " is recorded as completed by you today." }
        } @else {
            p class="card warning" role="alert" id="quiz-result" {
                "You answered " (right) " of " (out_of) " correctly; " (f.pass_percent) "% is needed. Read the course again and have another go."
            }
        }
        p { a href={"/training/" (id)} { "Back to the course" } " · " a href="/training" { "My training" } }
    };
    Ok(page(&viewer, "Quiz result", body).into_response())
}

/// `POST /training/{id}/record` (keepers): a completion someone did elsewhere.
pub(crate) async fn record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let history = known(store, id).await?;
    let f = &history[0].fields;
    let username = lookout_store::normalize_username(field(&pairs, "username"))
        .map_err(|e| PageError::BadForm(e.to_string()))?;
    if store.user(&username).await?.is_none() {
        return Err(PageError::BadForm(format!("No one is named “{username}”.")));
    }
    let completed = crate::board::parse_day(field(&pairs, "completed"))
        .filter(|&t| t <= crate::now_ms() && t > 946_684_800_000)
        .ok_or_else(|| {
            PageError::BadForm(
                "The completion date must look like 2026-11-30, and not be in the future.".into(),
            )
        })?;
    let note = field(&pairs, "note").trim();
    if note.chars().count() > 500 || note.chars().any(char::is_control) {
        return Err(PageError::BadForm(
            "The note must be one line of at most 500 characters.".into(),
        ));
    }
    store
        .record_completion(
            id,
            &f.edition,
            &username,
            completed,
            "recorded",
            (0, 0),
            note,
            &viewer.audit("training.record", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/training/{id}")).into_response())
}

/// `GET /training/overdue` (overseers): everyone with training due or overdue, overdue first.
pub(crate) async fn overdue(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(OVERSEERS)?;
    let store = console.store();
    let mut due: Vec<Requirement> = store
        .requirements(crate::now_ms(), None)
        .await?
        .into_iter()
        .filter(|r| r.standing.to_do())
        .collect();
    due.sort_by_key(|r| match r.standing {
        Standing::Overdue { since } => (0, since),
        Standing::Due { by } => (1, by),
        Standing::Done { .. } => (2, 0),
    });
    store
        .audit(&viewer.audit("training.overdue.view", "training"))
        .await?;
    let late = due
        .iter()
        .filter(|r| matches!(r.standing, Standing::Overdue { .. }))
        .count();
    let body = html! {
        p { strong id="overdue-count" { (late) } " overdue, " strong { (due.len() - late) } " due soon. People with an email address get a reminder (see the settings)." }
        @if due.is_empty() { p { "Nobody has training due." } }
        @else {
            table class="list" id="due" {
                thead { tr { th scope="col" { "Person" } th scope="col" { "Team" } th scope="col" { "Course" } th scope="col" { "Standing" } } }
                tbody { @for r in &due { tr {
                    td { (r.user.username) br; span class="muted" { (r.user.display_name) } }
                    td { (r.user.team) }
                    td { a href={"/training/" (r.course_id)} { (r.title) } }
                    td { (standing(r.standing)) }
                } } }
            }
        }
    };
    Ok(page(&viewer, "Training due or overdue", body))
}

/// `GET /training/teams` (overseers): completion per team and course, counts only.
pub(crate) async fn teams(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(OVERSEERS)?;
    let reqs = console.store().requirements(crate::now_ms(), None).await?;
    let rows = tally(&reqs, |r| {
        let team = match r.user.team.as_str() {
            "" => "No team".to_owned(),
            t => t.to_owned(),
        };
        (team, r.title.clone(), r.course_id)
    });
    let body = html! {
        p { "Each team's completion of each course it must complete, today. Set people's teams on the People page or in the users CSV (" code { "team" } " column)." }
        @if rows.is_empty() { p { "No training is required of anyone yet." } }
        @else {
            table class="list" id="teams" {
                thead { tr { th scope="col" { "Team" } th scope="col" { "Course" } th scope="col" { "Required of" } th scope="col" { "Done" } th scope="col" { "Overdue" } th scope="col" { "Complete" } } }
                tbody { @for ((team, course, _), t) in &rows { tr {
                    td { (team) } td { (course) } td { (t.required) } td { (t.done) } td { (t.overdue) } td { (t.percent()) "%" }
                } } }
            }
        }
    };
    Ok(page(&viewer, "Training by team", body))
}

/// `GET /training/completions.csv` (overseers).
pub(crate) async fn completions_csv(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.require(OVERSEERS)?;
    let store = console.store();
    let courses: std::collections::HashMap<i64, Course> = store
        .courses()
        .await?
        .into_iter()
        .map(|c| (c.course_id, c))
        .collect();
    let users = crate::users::by_name(store).await?;
    let mut out = csv_line(&[
        "course",
        "edition",
        "user",
        "name",
        "team",
        "completed",
        "how",
        "score",
        "out of",
        "recorded by",
        "note",
    ]);
    for c in store.completions().await? {
        let title = courses
            .get(&c.course_id)
            .map_or("", |k| k.fields.title.as_str());
        let user = users.get(&c.username);
        out.push_str(&csv_line(&[
            title,
            &c.edition,
            &c.username,
            user.map_or("", |u| u.display_name.as_str()),
            user.map_or("", |u| u.team.as_str()),
            &when(c.completed_ms),
            &c.how,
            &c.score.to_string(),
            &c.out_of.to_string(),
            &c.by_user,
            &c.note,
        ]));
    }
    csv_download(
        store,
        &viewer,
        "training.export",
        "training",
        "training-completions.csv",
        out,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quizzes_parse_or_say_which_line_is_wrong() {
        let good = "? First?\n- no\n* yes\n\n? Second?\n* right\n- wrong\n- also wrong\n";
        let q = Quiz::parse(good).unwrap();
        assert_eq!(q.0.len(), 2);
        assert_eq!(
            (q.0[0].right, q.0[1].right, q.0[1].answers.len()),
            (1, 0, 3)
        );
        assert_eq!(Quiz::parse("").unwrap(), Quiz::default());
        let table = [
            (
                "- an answer\n",
                "line 1: an answer before the first question",
            ),
            (
                "? Q\n* a\n",
                "line 1: the question needs at least two answers",
            ),
            (
                "? Q\n- a\n- b\n",
                "line 1: mark exactly one answer right with `*` (found 0)",
            ),
            (
                "? Q\n* a\n* b\n",
                "line 1: mark exactly one answer right with `*` (found 2)",
            ),
            ("? Q\n* a\n- b\nwhat\n", "line 4: start the line with `?`"),
            ("? Q\n*\n", "line 2: `*` needs some text after it"),
            ("é\n", "line 1: start the line with"),
        ];
        for (text, want) in table {
            let e = Quiz::parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn answers_are_marked_one_per_question() {
        let q = Quiz::parse("? A\n* 0\n- 1\n? B\n- 0\n* 1\n? C\n* 0\n- 1\n").unwrap();
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            q.grade(&p(&[("q0", "0"), ("q1", "1"), ("q2", "0")])),
            (3, 3)
        );
        assert_eq!(q.grade(&p(&[("q0", "1"), ("q1", "1")])), (1, 3));
        // Answering a question twice (both answers) counts as wrong.
        assert_eq!(q.grade(&p(&[("q0", "0"), ("q0", "1")])), (0, 3));
        assert_eq!(q.grade(&p(&[("q9", "0"), ("q0", "x")])), (0, 3));
        assert!(q.passes(3, 100) && q.passes(2, 66) && !q.passes(2, 67));
    }
}
