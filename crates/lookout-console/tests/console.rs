//! The console over real sockets with a real HTTP client (cookies, redirects, forms): sign-in
//! with passwords and two-factor codes, lockout and rate limits, CSRF, every role against every
//! route, the live alerts inbox, triage, and the audit log behind it all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lookout_auth::{Role, Totp};
use lookout_console::{Console, Settings};
use lookout_monitor::{ApiState, Job, Monitor, Source};
use lookout_scan::Library;
use lookout_store::{NewUser, Store, Subject};
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, ORIGIN};
use reqwest::{redirect, Client, Response, StatusCode};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "a long enough password";
/// Everyone's two-factor secret in these tests (each test has its own database).
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    console: Console,
    monitor: Monitor,
    base: String,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(settings: Settings) -> Harness {
    start_with(settings, None).await
}

/// A policy for group `staff` blocking games, and lists with a games site and an
/// illegal-content site.
fn filter() -> lookout_console::Filter {
    use lookout_lists::{Category, CategorySet, EntrySink, IndexBuilder, SourceInfo};
    let mut builder = IndexBuilder::new();
    let mut sink = EntrySink::new();
    for (name, category, text) in [
        ("games", "games", "games.test\n"),
        ("iwf", "illegal-child-abuse", "abuse.test\n"),
    ] {
        let id = builder
            .add_source(SourceInfo {
                name: name.into(),
                labels: CategorySet::one(Category::from_slug(category).unwrap()).bits(),
            })
            .unwrap();
        lookout_lists::parse::parse(lookout_lists::Format::Urls, text.as_bytes(), |k, u| {
            sink.add(id, k, u)
        });
    }
    let index = builder.build(vec![sink]);
    let staff = lookout_policy::Group::new(lookout_policy::GroupSpec {
        name: "staff".into(),
        block: CategorySet::one(Category::from_slug("games").unwrap()),
        ..Default::default()
    })
    .unwrap();
    lookout_console::Filter {
        policy: Arc::new(lookout_policy::Policy::new(vec![staff]).unwrap()),
        index: index.into(),
    }
}

async fn start_with(settings: Settings, filter: Option<lookout_console::Filter>) -> Harness {
    start_full(settings, filter, None).await
}

async fn start_full(
    settings: Settings,
    filter: Option<lookout_console::Filter>,
    log: Option<lookout_store::EventLog>,
) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, settings, filter, log).await
}

/// On a listener bound before the settings were made (they may need its address).
async fn start_on(
    listener: tokio::net::TcpListener,
    settings: Settings,
    filter: Option<lookout_console::Filter>,
    log: Option<lookout_store::EventLog>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = lookout_store::testing::open_in(dir.path()).await.unwrap();
    let scanner = Arc::new(Library::builtin().compile().unwrap());
    let (monitor, _tasks) = Monitor::start(
        scanner,
        store.clone(),
        lookout_monitor::Settings {
            thresholds: HashMap::new(),
            default_threshold: Some(lookout_scan::Severity::Caution),
            window: Duration::from_secs(1800),
            queue: 64,
            email: None,
            webhook: None,
            console_url: String::new(),
            retry: Duration::from_secs(30),
        },
        None,
    );
    let shutdown = CancellationToken::new();
    let mut console = Console::new(store.clone(), monitor.clone(), settings, shutdown.clone());
    if let Some(f) = filter {
        console = console.with_filter(f);
    }
    if let Some(l) = log {
        console = console.with_log(l);
    }
    let app = lookout_monitor::router(
        ApiState {
            monitor: monitor.clone(),
            shutdown: shutdown.clone(),
        },
        1 << 20,
    )
    .merge(lookout_console::router(console.clone()));
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(lookout_monitor::serve_api(listener, app, shutdown.clone()));
    Harness {
        _dir: dir,
        store,
        console,
        monitor,
        base,
        shutdown,
    }
}

impl Harness {
    /// Adds a user with `role` (two-factor already set up for the roles that need it).
    async fn user(&self, name: &str, role: Role) {
        self.store
            .add_user(&NewUser {
                username: name.into(),
                display_name: format!("{name} (test)"),
                group: "staff".into(),
                password: Some(PASSWORD.into()),
                role: Some(role),
                email: None,
                team: None,
            })
            .await
            .unwrap();
        if role.needs_two_factor() {
            self.store
                .set_totp_secret(name, Some(SECRET))
                .await
                .unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client that does not follow redirects (the tests check them).
    fn client(&self) -> Client {
        Client::builder()
            .cookie_store(true)
            .redirect(redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// GETs `path` and returns the CSRF token in its form.
    async fn csrf(&self, c: &Client, path: &str) -> String {
        let page = c.get(self.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "GET {path}");
        field(&page.text().await.unwrap(), "csrf")
    }

    /// Every audit action so far, newest first.
    async fn audit_actions(&self) -> Vec<String> {
        let rows = self.store.audit_log(&Default::default()).await.unwrap();
        rows.into_iter().map(|r| r.action).collect()
    }

    async fn text(&self, c: &Client, path: &str) -> String {
        c.get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Opens an incident (as `dee`); its id.
    async fn incident(&self) -> i64 {
        let first =
            lookout_store::NewEntry::new("opened", serde_json::json!({"title": "t", "what": "w"}));
        self.store
            .open_incident(
                "dee",
                "t",
                "bullying",
                &first,
                &[],
                &lookout_store::AuditEntry::new("dee", "incident.opened", ""),
            )
            .await
            .unwrap()
            .id
    }

    async fn post(&self, c: &Client, path: &str, form: &[(&str, &str)]) -> Response {
        c.post(self.url(path)).form(form).send().await.unwrap()
    }

    /// Password step: returns the response to the form.
    async fn password(&self, c: &Client, name: &str, password: &str) -> Response {
        let csrf = self.csrf(c, "/sign-in").await;
        self.post(
            c,
            "/sign-in",
            &[("csrf", &csrf), ("username", name), ("password", password)],
        )
        .await
    }

    /// Signs `name` in completely (password, then a code when their role needs one).
    async fn sign_in(&self, name: &str) -> Client {
        let c = self.client();
        let r = self.password(&c, name, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{name}: password step");
        if location(&r) == "/sign-in/continue" {
            let next = c.get(self.url("/sign-in/continue")).send().await.unwrap();
            assert_eq!(location(&next), "/sign-in/code", "{name}");
            let csrf = self.csrf(&c, "/sign-in/code").await;
            let r = self
                .post(
                    &c,
                    "/sign-in/code",
                    &[("csrf", &csrf), ("code", &code_now())],
                )
                .await;
            assert_eq!(
                (r.status(), location(&r).as_str()),
                (StatusCode::SEE_OTHER, "/"),
                "{name}: code step"
            );
        }
        let home = c.get(self.url("/")).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::OK, "{name}: home");
        c
    }

    /// An alert raised by the monitoring for `who`.
    async fn alert(&self, who: &str) -> i64 {
        let mut live = self.monitor.subscribe();
        assert!(self.monitor.submit(Job {
            at_ms: lookout_store::now_ms(),
            source: Source::Search,
            text: "how to kill myself tonight".into(),
            location: "https://www.google.com/search?q=...".into(),
            subject: Subject {
                username: Some(who.into()),
                client_ip: Some("10.1.2.3".into()),
                device: None,
                group: "learners".into(),
                site: None,
            },
        }));
        let n = tokio::time::timeout(Duration::from_secs(20), live.recv())
            .await
            .unwrap()
            .unwrap();
        n.id
    }
}

fn code_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Totp::from_base32(SECRET).unwrap().code_at(now)
}

fn location(r: &Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The value of the named form field in a page.
fn field(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + key.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The table row of `html` after `marker` (an attribute that names it), up to its `</tr>`.
fn row<'a>(html: &'a str, marker: &str) -> &'a str {
    html.split(marker)
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row {marker} in {html}"))
}

/// Form fields.
type Form<'a> = Vec<(&'a str, &'a str)>;

fn roles() -> [(Role, &'static str); 6] {
    [
        (Role::Learner, "lee"),
        (Role::Staff, "sam"),
        (Role::Governor, "gil"),
        (Role::Dsl, "dee"),
        (Role::Supervisor, "sue"),
        (Role::ItAdmin, "ian"),
    ]
}

#[tokio::test]
async fn every_role_against_every_route() {
    let h = start(Settings::default()).await;
    for (role, name) in roles() {
        h.user(name, role).await;
    }
    let alert = h.alert("amy").await;
    // The expected matrix, from the issue: DSLs and supervisors work the safeguarding file;
    // the IT admin reads the audit log; everyone has a home page and their own password.
    // Columns: learner, staff, governor, dsl, supervisor, it-admin.
    let detail = format!("/alerts/{alert}");
    // A concern reported by the learner: theirs to see, and the safeguarding team's.
    let concern = {
        let c = h.sign_in("lee").await;
        let csrf = h.csrf(&c, "/concerns/new").await;
        let r = h
            .post(
                &c,
                "/concerns",
                &[
                    ("csrf", &csrf),
                    ("urgency", "soon"),
                    ("about", "me"),
                    ("what", "someone keeps messaging me"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        location(&r).split('?').next().unwrap().to_owned()
    };
    let incident = format!("/incidents/{}", h.incident().await);
    let export = format!("{incident}/export");
    let briefing = {
        let b = h
            .store
            .publish_briefing(
                &lookout_store::NewBriefing {
                    group: None,
                    title: "Briefing",
                    briefing: "Be safe.",
                    terms: "I agree.",
                },
                &lookout_store::AuditEntry::new("ian", "briefing.publish", ""),
            )
            .await
            .unwrap();
        format!("/briefings/{}", b.id)
    };
    // A course required of learners, staff and governors: everyone sees it (those it is not
    // required of are told there is no such course: see the training test).
    let course = {
        let c = h
            .store
            .save_course(
                None,
                &lookout_store::CourseFields {
                    title: "Online safety".into(),
                    edition: "1".into(),
                    about: "Read this.".into(),
                    roles: vec![Role::Learner, Role::Staff, Role::Governor],
                    within_days: 30,
                    pass_percent: 100,
                    ..Default::default()
                },
                &lookout_store::AuditEntry::new("ian", "training.course.save", ""),
            )
            .await
            .unwrap();
        format!("/training/{}", c.course_id)
    };
    let check = {
        let key = lookout_auth::SigningKey::generate();
        let key_id = h
            .store
            .replace_signing_key("dee", &key.seal("a key password"))
            .await
            .unwrap();
        let content = serde_json::json!({"kind": "routine-check", "dsl": "dee"});
        let signature = key.sign(&lookout_auth::canonical_json(&content));
        let c = h
            .store
            .add_check(
                &content,
                "dee",
                key_id,
                &signature,
                &lookout_store::AuditEntry::new("dee", "check.signed", ""),
            )
            .await
            .unwrap();
        format!("/checks/{}", c.id)
    };

    let gets: Vec<(&str, [bool; 6])> = vec![
        ("/", [true, true, true, true, true, true]),
        ("/account/password", [true, true, true, true, true, true]),
        ("/account/signing-key", [true, true, true, true, true, true]),
        ("/alerts", [false, false, false, true, true, false]),
        ("/alerts?show=all", [false, false, false, true, true, false]),
        (&detail, [false, false, false, true, true, false]),
        ("/alerts/stream", [false, false, false, true, true, false]),
        ("/concerns/new", [true, true, true, true, true, true]),
        ("/concerns/mine", [true, true, true, true, true, true]),
        (&concern, [true, false, false, true, true, false]),
        ("/incidents", [false, false, false, true, true, false]),
        ("/incidents/new", [false, false, false, true, true, false]),
        (&export, [false, false, false, true, true, false]),
        (&incident, [false, false, false, true, true, false]),
        ("/checks", [false, false, false, true, true, false]),
        ("/checks/new", [false, false, false, true, false, false]),
        ("/activity", [false, false, false, true, true, true]),
        (
            "/activity?site=north&action=block",
            [false, false, false, true, true, true],
        ),
        (&check, [false, false, false, true, true, false]),
        ("/reviews", [false, false, false, false, false, true]),
        ("/reviews/new", [true, true, true, true, true, true]),
        ("/users", [false, false, false, false, false, true]),
        ("/reports", [false, false, true, true, true, true]),
        ("/reports/board", [false, false, true, true, true, true]),
        ("/audit", [false, false, false, false, false, true]),
        ("/audit/verify", [false, false, false, false, false, true]),
        ("/users/lee/data", [false, false, false, false, false, true]),
        (
            "/users/lee/data.json",
            [false, false, false, false, false, true],
        ),
        ("/policy", [false, false, true, true, true, true]),
        (
            "/registers/technology",
            [false, false, false, true, false, true],
        ),
        (
            "/registers/technology/new",
            [false, false, false, true, false, true],
        ),
        (
            "/registers/technology.csv",
            [false, false, false, true, false, true],
        ),
        (
            "/registers/social",
            [false, false, false, true, false, true],
        ),
        (
            "/registers/social.csv",
            [false, false, false, true, false, true],
        ),
        ("/briefings", [false, false, false, true, false, true]),
        ("/briefings/new", [false, false, false, true, false, true]),
        (
            "/briefings/acceptances.csv",
            [false, false, false, true, false, true],
        ),
        (&briefing, [false, false, false, true, false, true]),
        ("/training", [true, true, true, true, true, true]),
        (&course, [true, true, true, true, true, true]),
        (
            "/training/courses",
            [false, false, false, true, false, true],
        ),
        ("/training/new", [false, false, false, true, false, true]),
        ("/training/overdue", [false, false, false, true, true, true]),
        ("/training/teams", [false, false, false, true, true, true]),
        (
            "/training/completions.csv",
            [false, false, false, true, true, true],
        ),
    ];
    // POSTs at records that do not exist, or with a field missing: allowed roles get the
    // status given (never 403), the others 403.
    let posts: Vec<(&str, Form, [bool; 6], StatusCode)> = vec![
        (
            "/alerts/999999/review",
            vec![("note", "x")],
            [false, false, false, true, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/incidents/999999/entries",
            vec![("kind", "note"), ("text", "x")],
            [false, false, false, true, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/incidents/999999/export",
            vec![("requested_by", "x"), ("purpose", "y"), ("format", "json")],
            [false, false, false, true, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/checks/999999/cosign",
            vec![("confirm", "yes")],
            [false, false, false, false, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/checks",
            vec![("checked", "")],
            [false, false, false, true, false, false],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/reviews/999999/reject",
            vec![("note", "x")],
            [false, false, false, false, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/users/nobody/role",
            vec![("role", "staff")],
            [false, false, false, false, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/concerns",
            vec![("about", "")],
            [true, true, true, true, true, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/reviews/new",
            vec![("url", "")],
            [true, true, true, true, true, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/account/password",
            vec![
                ("current", "x"),
                ("password", "one password"),
                ("confirm", "another one"),
            ],
            [true, true, true, true, true, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/users/nobody/contact",
            vec![("team", "x")],
            [false, false, false, false, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/users/nobody/unlock",
            vec![],
            [false, false, false, false, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/users",
            vec![("username", "x")],
            [false, false, false, false, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/reviews/999999/approve",
            vec![("scope", "page")],
            [false, false, false, false, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/reviews/allows/999999/remove",
            vec![],
            [false, false, false, false, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/incidents",
            vec![("title", "")],
            [false, false, false, true, true, false],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/alerts/999999/dismiss",
            vec![("reason", "innocent")],
            [false, false, false, true, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/registers/technology/999999",
            vec![("name", "x")],
            [false, false, false, true, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/registers/technology",
            vec![("name", "")],
            [false, false, false, true, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/policy",
            vec![("reviewers", "")],
            [false, false, false, true, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/registers/social/999999/admins",
            vec![("admin", "x"), ("kind", "added")],
            [false, false, false, true, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/registers/social",
            vec![("platform", "")],
            [false, false, false, true, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/incidents/999999/hold",
            vec![("hold", "on")],
            [false, false, false, true, true, false],
            StatusCode::NOT_FOUND,
        ),
        (
            "/briefings",
            vec![("title", "")],
            [false, false, false, true, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/training/courses",
            vec![("title", "")],
            [false, false, false, true, false, true],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/training/999999",
            vec![("title", "x")],
            [false, false, false, true, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/training/999999/record",
            vec![("username", "lee")],
            [false, false, false, true, false, true],
            StatusCode::NOT_FOUND,
        ),
        (
            "/training/999999/quiz",
            vec![("q0", "0")],
            [true, true, true, true, true, true],
            StatusCode::NOT_FOUND,
        ),
    ];
    let anonymous = h.client();
    for (path, _) in &gets {
        let r = anonymous.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "anonymous GET {path}");
        assert!(location(&r).starts_with("/sign-in"), "anonymous GET {path}");
    }
    for (path, form, _, _) in &posts {
        let r = h.post(&anonymous, path, form).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "anonymous POST {path}");
    }
    for (i, (role, name)) in roles().into_iter().enumerate() {
        let c = h.sign_in(name).await;
        let csrf = h.csrf(&c, "/account/password").await;
        for (path, allowed) in &gets {
            let r = c.get(h.url(path)).send().await.unwrap();
            let want = if allowed[i] {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status(), want, "{role:?} GET {path}");
        }
        for (path, form, allowed, ok) in &posts {
            let mut form = form.clone();
            form.push(("csrf", &csrf));
            let r = h.post(&c, path, &form).await;
            let want = if allowed[i] {
                *ok
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status(), want, "{role:?} POST {path}");
        }
    }
    // The alert was viewed by the two safeguarding roles only, and each view is on record.
    let views = h
        .store
        .audit_log(&lookout_store::AuditFilter {
            action: Some("alert.view".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut viewers: Vec<&str> = views.iter().map(|r| r.actor.as_str()).collect();
    viewers.sort();
    assert_eq!(viewers, ["dee", "sue"]);
    assert!(h.store.verify_audit().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_same_origin() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    let alert = h.alert("amy").await;
    let c = h.sign_in("dee").await;
    let path = format!("/alerts/{alert}/review");
    let csrf = h.csrf(&c, &format!("/alerts/{alert}")).await;
    let other = h.other_sessions_token().await;
    let table: [(&str, Form, Option<&str>); 4] = [
        ("no token", vec![("note", "x")], None),
        ("wrong token", vec![("note", "x"), ("csrf", "forged")], None),
        (
            "another session's token",
            vec![("note", "x"), ("csrf", &other)],
            None,
        ),
        (
            "right token, other site",
            vec![("note", "x"), ("csrf", &csrf)],
            Some("http://evil.example"),
        ),
    ];
    for (case, form, origin) in table {
        let mut req = c.post(h.url(&path)).form(&form);
        if let Some(o) = origin {
            let mut headers = HeaderMap::new();
            headers.insert(ORIGIN, HeaderValue::from_static(o));
            req = req.headers(headers);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{case}");
        assert!(
            r.text().await.unwrap().contains("This form has expired"),
            "{case}"
        );
    }
    assert_eq!(h.store.alert(alert).await.unwrap().unwrap().0.status, "new");
    // Same-origin with the right token works.
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, HeaderValue::from_str(&h.base).unwrap());
    let r = c
        .post(h.url(&path))
        .headers(headers)
        .form(&[("note", "spoke to Amy's tutor"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), location(&r).as_str()),
        (StatusCode::SEE_OTHER, "/alerts")
    );
    assert_eq!(
        h.store.alert(alert).await.unwrap().unwrap().0.status,
        "reviewed"
    );
    // Twice is a conflict, not a second review.
    let r = h.post(&c, &path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(h.store.alert_reviews(alert).await.unwrap().len(), 1);
    // The sign-in form has its own token.
    let fresh = h.client();
    let r = h
        .post(
            &fresh,
            "/sign-in",
            &[("username", "dee"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

impl Harness {
    /// A second DSL's CSRF token (to show tokens are per session).
    async fn other_sessions_token(&self) -> String {
        self.user("dot", Role::Supervisor).await;
        let c = self.sign_in("dot").await;
        self.csrf(&c, "/account/password").await
    }
}

#[tokio::test]
async fn wrong_passwords_and_codes_lock_the_account() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    h.user("lee", Role::Learner).await;
    let c = h.client();
    // Unknown users and wrong passwords get the same answer.
    let unknown = h.password(&c, "nobody", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    assert!(unknown.contains("The user name or password is not right"));
    for attempt in 1..=5 {
        let r = h.password(&c, "lee", "not the password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
        let text = r.text().await.unwrap();
        assert_eq!(text.contains("locked"), attempt == 5, "attempt {attempt}");
    }
    let r = h.password(&c, "lee", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("locked"));

    // Codes count too: five wrong codes lock the account and end the half-done sign-in.
    let c = h.client();
    let r = h.password(&c, "dee", PASSWORD).await;
    assert_eq!(location(&r), "/sign-in/continue");
    for attempt in 1..=5 {
        let csrf = h.csrf(&c, "/sign-in/code").await;
        let r = h
            .post(&c, "/sign-in/code", &[("csrf", &csrf), ("code", "000000")])
            .await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "code attempt {attempt}"
        );
        assert_eq!(r.text().await.unwrap().contains("locked"), attempt == 5);
    }
    let r = c.get(h.url("/sign-in/code")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the half-done sign-in is over"
    );
    let actions = h.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "sign-in.locked").count(), 3);
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "sign-in.code-failed")
            .count(),
        5
    );
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let h = start(Settings {
        attempts_per_window: 3,
        ..Settings::default()
    })
    .await;
    h.user("lee", Role::Learner).await;
    let c = h.client();
    for _ in 0..3 {
        assert_eq!(
            h.password(&c, "nobody", "whatever").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = h.password(&c, "lee", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Wait ten minutes"));
}

#[tokio::test]
async fn two_factor_set_up_and_codes_used_once() {
    let h = start(Settings::default()).await;
    // A new supervisor without two-factor: set it up at first sign-in.
    h.store
        .add_user(&NewUser {
            username: "sue".into(),
            display_name: "Sue".into(),
            group: "staff".into(),
            password: Some(PASSWORD.into()),
            role: Some(Role::Supervisor),
            email: None,
            team: None,
        })
        .await
        .unwrap();
    let c = h.client();
    let first_cookie = {
        let r = h.password(&c, "sue", PASSWORD).await;
        assert_eq!(location(&r), "/sign-in/continue");
        r.headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(first_cookie.contains("HttpOnly") && first_cookie.contains("SameSite=Strict"));
    // Half signed in: the console itself is not open yet.
    let r = c.get(h.url("/alerts")).send().await.unwrap();
    assert_eq!(location(&r), "/sign-in/continue");
    let r = c.get(h.url("/sign-in/continue")).send().await.unwrap();
    assert_eq!(location(&r), "/sign-in/setup");
    let page = h.text(&c, "/sign-in/setup").await;
    assert!(page.contains("<svg"), "a QR code");
    let start = page.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let secret = page[start..].split('<').next().unwrap().to_owned();
    let totp = Totp::from_base32(&secret).unwrap();
    let csrf = field(&page, "csrf");
    let r = h
        .post(&c, "/sign-in/setup", &[("csrf", &csrf), ("code", "123456")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp.code_at(now);
    let r = h
        .post(&c, "/sign-in/setup", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(
        (r.status(), location(&r).as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    let full_cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        first_cookie.split(';').next(),
        full_cookie.split(';').next(),
        "a new session id once fully signed in"
    );
    assert_eq!(
        c.get(h.url("/alerts")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // The same code cannot sign in again (someone who saw it over a shoulder).
    let c2 = h.client();
    h.password(&c2, "sue", PASSWORD).await;
    let csrf = h.csrf(&c2, "/sign-in/code").await;
    let r = h
        .post(&c2, "/sign-in/code", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Signing out ends the session.
    let csrf = h.csrf(&c, "/").await;
    let r = h.post(&c, "/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), "/sign-in?signed_out=1");
    let r = c.get(h.url("/alerts")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        h.store.signing_key("sue").await.unwrap().is_some(),
        "a signing key was made at first sign-in"
    );
}

#[tokio::test]
async fn temporary_passwords_are_replaced_at_first_sign_in() {
    let h = start(Settings::default()).await;
    h.user("lee", Role::Learner).await;
    h.store
        .set_temporary_password("lee", "temporary-password")
        .await
        .unwrap();
    let c = h.client();
    let r = h.password(&c, "lee", "temporary-password").await;
    assert_eq!(location(&r), "/sign-in/continue");
    let r = c.get(h.url("/sign-in/continue")).send().await.unwrap();
    assert_eq!(location(&r), "/sign-in/new-password");
    let csrf = h.csrf(&c, "/sign-in/new-password").await;
    let table = [
        (("short", "short"), StatusCode::UNPROCESSABLE_ENTITY),
        (
            ("one new password", "another password"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            ("my own new password", "my own new password"),
            StatusCode::SEE_OTHER,
        ),
    ];
    for ((p, confirm), want) in table {
        let r = h
            .post(
                &c,
                "/sign-in/new-password",
                &[("csrf", &csrf), ("password", p), ("confirm", confirm)],
            )
            .await;
        assert_eq!(r.status(), want, "{p}");
    }
    let r = c.get(h.url("/sign-in/continue")).send().await.unwrap();
    assert_eq!(location(&r), "/");
    assert_eq!(
        c.get(h.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // The key made at sign-in was re-sealed under the new password.
    let key = h.store.signing_key("lee").await.unwrap().unwrap();
    assert!(key.key.unlock("my own new password").is_ok());
    assert!(matches!(
        h.store
            .check_sign_in("lee", "temporary-password")
            .await
            .unwrap(),
        lookout_store::PasswordCheck::Refused
    ));
}

#[tokio::test]
async fn alerts_arrive_live_and_are_triaged() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    let c = h.sign_in("dee").await;
    let inbox = h.text(&c, "/alerts").await;
    assert!(inbox.contains("There are no alerts here"));
    assert!(inbox.contains("/inbox.js"));
    let stream = c.get(h.url("/alerts/stream")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = lookout_testkit::sse_events(stream);
    let (name, _) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, "ready");
    let id = h.alert("amy").await;
    let (name, data) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, "alert");
    let row = data.as_str().unwrap();
    assert!(row.contains(&format!("id=\"alert-{id}\"")), "{row}");
    assert!(
        row.contains("Suicide") && row.contains("amy") && row.contains("Danger"),
        "{row}"
    );

    // The detail page: evidence marked, and the person's activity.
    let page = h.text(&c, &format!("/alerts/{id}")).await;
    assert!(page.contains("<mark>"), "evidence highlighted");
    assert!(page.contains("Dismiss as a false alarm"));
    // Dismissing needs a reason; "another reason" needs words.
    let csrf = field(&page, "csrf");
    let path = format!("/alerts/{id}/dismiss");
    let table: [(&[(&str, &str)], StatusCode); 3] = [
        (&[], StatusCode::UNPROCESSABLE_ENTITY),
        (&[("reason", "other")], StatusCode::UNPROCESSABLE_ENTITY),
        (
            &[
                ("reason", "innocent"),
                ("note", "song lyrics in music class"),
            ],
            StatusCode::SEE_OTHER,
        ),
    ];
    for (form, want) in table {
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        assert_eq!(h.post(&c, &path, &form).await.status(), want, "{form:?}");
    }
    let reviews = h.store.alert_reviews(id).await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert!(reviews[0].reason.starts_with("innocent: "));
    let dismissed = h.text(&c, "/alerts?show=dismissed").await;
    assert!(dismissed.contains(&format!("alert-{id}")));
    let open = h.text(&c, "/alerts").await;
    assert!(!open.contains(&format!("alert-{id}")));
    let bad = c
        .get(h.url("/alerts?show=everything"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // It feeds tuning, and it is all on the audit log.
    assert_eq!(h.store.false_alarms(0).await.unwrap().len(), 1);
    let actions = h.audit_actions().await;
    for want in ["sign-in.ok", "alerts.list", "alert.view", "alert.dismissed"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn an_incident_is_opened_from_an_alert_worked_and_closed() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    let c = h.sign_in("dee").await;
    let alert = h.alert("amy").await;
    let page = h.text(&c, &format!("/alerts/{alert}")).await;
    assert!(page.contains(&format!("/incidents/new?alert={alert}")));
    let form = h.text(&c, &format!("/incidents/new?alert={alert}")).await;
    let csrf = field(&form, "csrf");
    let alert_s = alert.to_string();
    for (when, want) in [
        ("2999-01-01T10:00", "in the future"),
        ("yesterday", "must be a date and time"),
    ] {
        let r = h
            .post(
                &c,
                "/incidents",
                &[
                    ("csrf", &csrf),
                    ("title", "t"),
                    ("what", "w"),
                    ("category", "suicide"),
                    ("when", when),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{when}");
        assert!(r.text().await.unwrap().contains(want), "{when}");
    }
    let r = h
        .post(
            &c,
            "/incidents",
            &[
                ("csrf", &csrf),
                ("alert", &alert_s),
                ("title", "Amy searched for ways to end her life"),
                (
                    "what",
                    "Search seen by the filter at 14:02; Amy was in the library.",
                ),
                ("where", "Library PCs"),
                ("when", "2026-01-05T14:02"),
                ("category", "suicide"),
                ("reporter", "Lookout monitoring"),
                ("person", "Amy Learner"),
                ("person_username", "amy"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let path = location(&r);
    let id: i64 = path.trim_start_matches("/incidents/").parse().unwrap();
    // The alert left the inbox, marked as having an incident.
    assert_eq!(
        h.store.alert(alert).await.unwrap().unwrap().0.status,
        "incident"
    );
    assert!(!h
        .text(&c, "/alerts")
        .await
        .contains(&format!("alert-{alert}")));
    assert_eq!(h.store.incidents_of("amy").await.unwrap().len(), 1);
    let (_, opened) = h.store.incident(id).await.unwrap().unwrap();
    assert!(
        opened[0].body["when_ms"].as_i64().is_some(),
        "when it happened is kept"
    );

    let entries = format!("{path}/entries");
    let post = |form: Vec<(&'static str, String)>| {
        let mut form = form;
        form.push(("csrf", csrf.clone()));
        let c = c.clone();
        let url = h.url(&entries);
        async move { c.post(url).form(&form).send().await.unwrap() }
    };
    let s = |v: &str| v.to_owned();
    // Bad input is refused, naming the field; nothing is added.
    let table: [(Vec<(&str, String)>, &str); 4] = [
        (
            vec![
                ("kind", s("action")),
                ("what", s("Call home")),
                ("owner", s("dee")),
                ("due", s("next week")),
            ],
            "Due by",
        ),
        (
            vec![("kind", s("note")), ("text", s("  "))],
            "What happened or was done",
        ),
        (
            vec![
                ("kind", s("referral")),
                ("agency", s("mi5")),
                ("detail", s("x")),
                ("due", s("2026-01-01")),
            ],
            "To",
        ),
        (vec![("kind", s("rumour"))], "not a kind of entry"),
    ];
    for (form, names) in table {
        let r = post(form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{names}");
        assert!(r.text().await.unwrap().contains(names), "{names}");
    }
    let before = h.store.incident(id).await.unwrap().unwrap().1.len();
    assert_eq!(before, 3, "opened, alert linked, person linked");
    // An action already overdue, a referral, updates, a correction.
    for form in [
        vec![
            ("kind", s("action")),
            ("what", s("Speak to Amy today")),
            ("owner", s("dee")),
            ("due", s("2020-01-01")),
        ],
        vec![
            ("kind", s("referral")),
            ("agency", s("local-authority")),
            ("detail", s("MASH duty line, ref 123")),
            ("due", s("2020-01-02")),
        ],
        vec![
            ("kind", s("note")),
            ("text", s("Amy was seen by the nurse at 14:30.")),
        ],
    ] {
        assert_eq!(post(form).await.status(), StatusCode::SEE_OTHER);
    }
    let page = h.text(&c, &path).await;
    assert_eq!(
        page.matches("Overdue").count(),
        2,
        "the action and the referral"
    );
    let (_, list) = h.store.incident(id).await.unwrap().unwrap();
    let action = list
        .iter()
        .find(|e| e.kind == "action")
        .unwrap()
        .id
        .to_string();
    let referral = list
        .iter()
        .find(|e| e.kind == "referral")
        .unwrap()
        .id
        .to_string();
    let note = list
        .iter()
        .find(|e| e.kind == "note")
        .unwrap()
        .id
        .to_string();
    for form in [
        vec![
            ("kind", s("action-done")),
            ("action", action.clone()),
            ("note", s("Spoke to Amy with her tutor.")),
        ],
        vec![
            ("kind", s("referral-update")),
            ("referral", referral),
            ("status", s("accepted")),
            ("note", s("Social worker allocated")),
        ],
        vec![
            ("kind", s("correction")),
            ("corrects", note.clone()),
            ("text", s("It was 14:40, not 14:30.")),
        ],
    ] {
        assert_eq!(post(form).await.status(), StatusCode::SEE_OTHER);
    }
    // The action cannot be done twice; the note stays as written, with its correction.
    let r = post(vec![
        ("kind", s("action-done")),
        ("action", action),
        ("note", s("again")),
    ])
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = h.text(&c, &path).await;
    assert!(!page.contains("Overdue"), "{page}");
    assert!(page.contains("Amy was seen by the nurse at 14:30."));
    assert!(page.contains(&format!("Correction to entry #{note}")));
    assert!(page.contains("Corrected by entry"));
    // Close, and closing twice is a conflict.
    let close = vec![
        ("kind", s("closed")),
        ("outcome", s("Support plan in place")),
        ("reason", s("LA has taken the lead")),
    ];
    assert_eq!(post(close.clone()).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(post(close).await.status(), StatusCode::CONFLICT);
    let (incident, list) = h.store.incident(id).await.unwrap().unwrap();
    assert_eq!(incident.status, "closed");
    assert!(list.iter().all(|e| e.by_user == "dee"));
    // Another incident's entry cannot be "corrected" from here.
    let other = h
        .store
        .open_incident(
            "dee",
            "other",
            "bullying",
            &lookout_store::NewEntry::new("opened", serde_json::json!({})),
            &[],
            &lookout_store::AuditEntry::new("dee", "incident.opened", ""),
        )
        .await
        .unwrap();
    let foreign = h.store.incident(other.id).await.unwrap().unwrap().1[0]
        .id
        .to_string();
    let r = post(vec![
        ("kind", s("correction")),
        ("corrects", foreign),
        ("text", s("x")),
    ])
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Every step is on the audit log, and the chain is intact.
    let actions = h.audit_actions().await;
    for want in [
        "incident.opened",
        "incident.person",
        "incident.action",
        "incident.referral",
        "incident.note",
        "incident.action-done",
        "incident.referral-update",
        "incident.correction",
        "incident.closed",
        "incident.view",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}");
    }
    assert!(h.store.verify_audit().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_concern_reaches_the_dsl_team_and_the_reporter_gets_a_receipt() {
    let h = start(Settings {
        contacts: vec!["Jo Bloggs, DSL: room B12".into()],
        ..Settings::default()
    })
    .await;
    h.user("lee", Role::Learner).await;
    h.user("lou", Role::Learner).await;
    h.user("dee", Role::Dsl).await;
    let dsl = h.sign_in("dee").await;
    let stream = dsl.get(h.url("/alerts/stream")).send().await.unwrap();
    let mut events = lookout_testkit::sse_events(stream);
    let (name, _) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, "ready");

    // From a block page's link: the reference and address come along.
    let lee = h.sign_in("lee").await;
    let r = lee
        .get(h.url("/report?ref=LK-ABCD-1234&url=http%3A%2F%2Fchat.example%2Froom"))
        .send()
        .await
        .unwrap();
    let form_path = location(&r);
    assert!(
        form_path.starts_with("/concerns/new?ref=LK-ABCD-1234&url="),
        "{form_path}"
    );
    let form = h.text(&lee, &form_path).await;
    assert!(form.contains("http://chat.example/room"));
    let csrf = field(&form, "csrf");
    // Missing answers are named.
    let table: [(Form, &str); 3] = [
        (vec![("about", "me"), ("what", "x")], "how soon"),
        (vec![("urgency", "now"), ("what", "x")], "who it is about"),
        (
            vec![("urgency", "now"), ("about", "me"), ("what", " ")],
            "what has happened",
        ),
    ];
    for (mut form, names) in table {
        form.push(("csrf", &csrf));
        let r = h.post(&lee, "/concerns", &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{names}");
        assert!(r.text().await.unwrap().contains(names), "{names}");
    }
    let r = h
        .post(
            &lee,
            "/concerns",
            &[
                ("csrf", &csrf),
                ("urgency", "now"),
                ("about", "my friend Sam"),
                (
                    "what",
                    "Sam said he has pills and wants to take them all tonight",
                ),
                ("place", "the chat site"),
                ("block_ref", "LK-ABCD-1234"),
                ("block_url", "http://chat.example/room"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let receipt_path = location(&r);
    let receipt = h.text(&lee, &receipt_path).await;
    assert!(
        receipt.contains("Thank you") && receipt.contains("CON-00001"),
        "{receipt}"
    );
    assert!(receipt.contains("Jo Bloggs, DSL: room B12"));
    assert!(receipt.contains("not yet seen"));

    // The DSL team sees it at once, as a danger alert.
    let (name, data) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, "alert");
    let row = data.as_str().unwrap();
    assert!(
        row.contains("Reported concern") && row.contains("Danger"),
        "{row}"
    );
    let concern = h.store.concerns_by("lee").await.unwrap().remove(0);
    let alert = concern.alert_id.unwrap();
    let page = h.text(&dsl, &format!("/alerts/{alert}")).await;
    assert!(page.contains("Sam said he has pills"));
    assert!(page.contains("Reported by") && !page.contains("Activity around it"));
    assert_eq!(concern.block_ref.as_deref(), Some("LK-ABCD-1234"));

    // Another learner cannot read it; the reporter sees when it has been seen.
    let lou = h.sign_in("lou").await;
    assert_eq!(
        lou.get(h.url(&receipt_path)).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert!(h
        .text(&lou, "/concerns/mine")
        .await
        .contains("You have not reported any concerns"));
    let csrf = field(&page, "csrf");
    h.post(
        &dsl,
        &format!("/alerts/{alert}/review"),
        &[("csrf", &csrf), ("note", "Spoke to Sam")],
    )
    .await;
    let mine = h.text(&lee, "/concerns/mine").await;
    assert!(
        mine.contains("CON-00001") && mine.contains("Seen by the safeguarding team"),
        "{mine}"
    );
    assert!(
        !mine.contains("Spoke to Sam"),
        "the reporter does not see the team's notes"
    );
}

#[tokio::test]
async fn blocked_pages_are_reviewed_and_approvals_apply_at_once() {
    let f = filter();
    let policy = f.policy.clone();
    let index = f.index.clone();
    let h = start_with(Settings::default(), Some(f)).await;
    h.user("lee", Role::Learner).await;
    h.user("ian", Role::ItAdmin).await;
    let staff = policy.group_id("staff").unwrap();
    let decide = |url: &str| {
        let at = lookout_policy::LocalTime {
            weekday: lookout_policy::Weekday::Wed,
            minute: 600,
        };
        policy
            .decide(
                &index.load(),
                staff,
                &lookout_lists::NormUrl::parse(url).unwrap(),
                at,
            )
            .action
    };
    assert_eq!(
        decide("http://games.test/maths/fractions"),
        lookout_policy::Action::Block
    );

    // From the block page's link, the learner asks for two pages.
    let lee = h.sign_in("lee").await;
    let r = lee
        .get(h.url("/review?ref=LK-1&url=http%3A%2F%2Fgames.test%2Fmaths"))
        .send()
        .await
        .unwrap();
    let form_path = location(&r);
    let form = h.text(&lee, &form_path).await;
    assert!(form.contains("value=\"http://games.test/maths\""), "{form}");
    let csrf = field(&form, "csrf");
    let bad: [(Form, &str); 3] = [
        (vec![("url", "http://games.test/maths")], "why you need it"),
        (vec![("url", ""), ("reason", "x")], "blocked address"),
        (
            vec![("url", "http://[::1"), ("reason", "x")],
            "not a web address",
        ),
    ];
    for (mut form, names) in bad {
        form.push(("csrf", &csrf));
        let r = h.post(&lee, "/reviews/new", &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{names}");
        assert!(r.text().await.unwrap().contains(names), "{names}");
    }
    for (url, why) in [
        ("http://games.test/maths", "maths homework"),
        ("http://abuse.test/", "x"),
        ("http://games.test/poker", "fun"),
    ] {
        let r = h
            .post(
                &lee,
                "/reviews/new",
                &[("csrf", &csrf), ("url", url), ("reason", why)],
            )
            .await;
        assert_eq!(location(&r), "/concerns/mine?review=1");
    }
    assert!(h
        .text(&lee, "/concerns/mine")
        .await
        .contains("Waiting for the IT team"));
    let ids: Vec<i64> = h
        .store
        .review_requests_by("lee")
        .await
        .unwrap()
        .iter()
        .rev()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        h.store.review_requests_by("lee").await.unwrap()[0].group,
        "staff"
    );

    // The IT admin approves the maths page for the group: it is allowed at once.
    let ian = h.sign_in("ian").await;
    let queue = h.text(&ian, "/reviews").await;
    assert!(
        queue.contains("maths homework") && queue.contains("can never be allowed"),
        "{queue}"
    );
    let csrf = field(&queue, "csrf");
    let r = h
        .post(
            &ian,
            &format!("/reviews/{}/approve", ids[0]),
            &[("csrf", &csrf), ("scope", "page")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        decide("http://games.test/maths/fractions"),
        lookout_policy::Action::Allow
    );
    assert_eq!(
        decide("http://games.test/poker"),
        lookout_policy::Action::Block
    );
    // Illegal content is refused; a rejection needs a reason the learner will read.
    let r = h
        .post(
            &ian,
            &format!("/reviews/{}/approve", ids[1]),
            &[("csrf", &csrf), ("scope", "site")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("never be allowed"));
    let r = h
        .post(
            &ian,
            &format!("/reviews/{}/reject", ids[2]),
            &[("csrf", &csrf), ("note", " ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h
        .post(
            &ian,
            &format!("/reviews/{}/reject", ids[2]),
            &[
                ("csrf", &csrf),
                ("note", "Gambling is not allowed at college"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = h
        .post(
            &ian,
            &format!("/reviews/{}/reject", ids[2]),
            &[("csrf", &csrf), ("note", "again")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let mine = h.text(&lee, "/concerns/mine").await;
    assert!(
        mine.contains("Allowed")
            && mine.contains("Not allowed: Gambling is not allowed at college"),
        "{mine}"
    );

    // After a restart the approval is applied from the database; stopping it takes it away.
    let fresh = filter();
    assert_eq!(
        lookout_console::apply_reviewed_allows(&h.store, &fresh.policy)
            .await
            .unwrap(),
        1
    );
    let allow = h.store.reviewed_allows().await.unwrap()[0].id;
    let r = h
        .post(
            &ian,
            &format!("/reviews/allows/{allow}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        decide("http://games.test/maths/fractions"),
        lookout_policy::Action::Block
    );
    let actions = h.audit_actions().await;
    for want in [
        "review.requested",
        "review.approved",
        "review.rejected",
        "review.allow-removed",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}");
    }
}

#[tokio::test]
async fn a_routine_check_is_signed_by_a_dsl_and_co_signed_by_a_supervisor() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    h.user("sue", Role::Supervisor).await;
    h.user("sid", Role::Supervisor).await;
    h.alert("amy").await;
    let dee = h.sign_in("dee").await;
    let form = h.text(&dee, "/checks/new").await;
    assert!(form.contains("alert(s) raised"), "{form}");
    let csrf = field(&form, "csrf");
    let r = h
        .post(
            &dee,
            "/checks",
            &[("csrf", &csrf), ("checked", "inbox"), ("found", " ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h
        .post(
            &dee,
            "/checks",
            &[
                ("csrf", &csrf),
                ("checked", "The inbox and open incidents"),
                (
                    "found",
                    "One danger alert waiting; reviewed it with the tutor",
                ),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let path = location(&r);
    let check = h.store.checks(1).await.unwrap().remove(0);
    assert_eq!(check.content["due"]["alerts_waiting"]["danger"], 1);
    assert_eq!(check.content["dsl"], "dee");
    assert!(check.content["audit_head"]["seq"].as_i64().unwrap() > 0);
    // The DSL's own page has no co-sign form; a supervisor's has.
    assert!(!h.text(&dee, &path).await.contains("Co-sign this check"));
    let sue = h.sign_in("sue").await;
    let page = h.text(&sue, &path).await;
    assert!(page.contains("Co-sign this check") && page.contains("The inbox and open incidents"));
    let csrf = field(&page, "csrf");
    let cosign = format!("{path}/cosign");
    let r = h.post(&sue, &cosign, &[("csrf", &csrf)]).await;
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the box must be ticked"
    );
    let r = h
        .post(&sue, &cosign, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sid = h.sign_in("sid").await;
    let csrf = h.csrf(&sid, "/account/password").await;
    let r = h
        .post(&sid, &cosign, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "co-signed once");
    assert!(h.text(&sid, "/checks").await.contains("sue"));
    let (n, problems) = h.store.verify_checks().await.unwrap();
    assert_eq!((n, problems.len()), (1, 0), "{problems:?}");
    let check = h.store.check(check.id).await.unwrap().unwrap();
    assert_eq!(check.supervisor.as_deref(), Some("sue"));
}

#[tokio::test]
async fn an_incident_is_exported_signed_and_the_export_verifies() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    let c = h.sign_in("dee").await;
    let alert = h.alert("amy").await;
    let csrf = h.csrf(&c, "/incidents/new").await;
    let alert_s = alert.to_string();
    let r = h
        .post(
            &c,
            "/incidents",
            &[
                ("csrf", &csrf),
                ("alert", &alert_s),
                ("title", "Search <b>flagged</b>"),
                ("what", "Seen at 14:02"),
                ("category", "suicide"),
            ],
        )
        .await;
    let path = location(&r);
    let export = format!("{path}/export");
    assert!(h.text(&c, &export).await.contains("Export and sign"));
    let r = h
        .post(
            &c,
            &export,
            &[
                ("csrf", &csrf),
                ("requested_by", ""),
                ("purpose", "x"),
                ("format", "json"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for format in ["json", "html"] {
        let r = h
            .post(
                &c,
                &export,
                &[
                    ("csrf", &csrf),
                    ("requested_by", "PC Smith, Thames Valley Police, ref 42"),
                    ("purpose", "Section 47 enquiry"),
                    ("format", format),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{format}");
        let disposition = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            disposition.contains(&format!("-export.{format}")),
            "{disposition}"
        );
        let text = r.text().await.unwrap();
        let check = lookout_console::verify_export(&text).unwrap();
        assert_eq!(check.signer, "dee");
        let key = h.store.signing_key("dee").await.unwrap().unwrap();
        assert_eq!(
            (check.key_id, check.public_key.as_str()),
            (key.id, key.key.public.as_str())
        );
        if format == "html" {
            assert!(
                text.contains("Search &lt;b&gt;flagged&lt;/b&gt;"),
                "escaped"
            );
            assert!(
                text.contains("how to kill myself") || text.contains("kill myself"),
                "the linked alert's finding"
            );
        }
    }
    let exports = h
        .store
        .audit_log(&lookout_store::AuditFilter {
            action: Some("incident.export".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exports.len(), 2);
    assert!(exports[0].detail.contains("PC Smith") && exports[0].detail.contains("sha256"));
}

#[tokio::test]
async fn the_it_admin_manages_people_and_governors_read_figures_without_names() {
    let h = start_with(Settings::default(), Some(filter())).await;
    h.user("ian", Role::ItAdmin).await;
    h.user("gil", Role::Governor).await;
    h.user("dee", Role::Dsl).await;
    h.alert("amy").await;
    let ian = h.sign_in("ian").await;
    let page = h.text(&ian, "/users").await;
    let csrf = field(&page, "csrf");
    // Add a person: a one-time password, shown once.
    let r = h
        .post(
            &ian,
            "/users",
            &[
                ("csrf", &csrf),
                ("username", "New.Person"),
                ("name", "New Person"),
                ("group", "staff"),
                ("role", "staff"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let start = page.find("one-time password is ").unwrap() + "one-time password is ".len();
    let password = page[start..start + 16].to_owned();
    let bad: [(Form, &str); 3] = [
        (
            vec![("username", "x y"), ("group", "staff"), ("role", "staff")],
            "not valid",
        ),
        (
            vec![("username", "ok"), ("group", "nope"), ("role", "staff")],
            "Choose a filtering group",
        ),
        (
            vec![("username", "ok"), ("group", "staff"), ("role", "root")],
            "unknown role",
        ),
    ];
    for (mut form, want) in bad {
        form.push(("csrf", &csrf));
        let r = h.post(&ian, "/users", &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{want}");
        assert!(r.text().await.unwrap().contains(want), "{want}");
    }
    let c = h.client();
    let r = h.password(&c, "new.person", &password).await;
    assert_eq!(location(&r), "/sign-in/continue");
    assert_eq!(
        location(&c.get(h.url("/sign-in/continue")).send().await.unwrap()),
        "/sign-in/new-password"
    );
    // Roles: never one's own; others at once, and DSLs need two-factor set up.
    let r = h
        .post(
            &ian,
            "/users/ian/role",
            &[("csrf", &csrf), ("role", "learner")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h
        .post(
            &ian,
            "/users/new.person/role",
            &[("csrf", &csrf), ("role", "dsl")],
        )
        .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("new.person is now: Designated Safeguarding Lead team"));
    assert_eq!(
        h.store
            .account("new.person")
            .await
            .unwrap()
            .unwrap()
            .user
            .role,
        Role::Dsl
    );
    // Disabling signs them out everywhere; the lock and two-factor are reset on request.
    let dee = h.sign_in("dee").await;
    for action in ["reset-two-factor", "unlock", "disable"] {
        let r = h
            .post(&ian, &format!("/users/dee/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{action}");
    }
    assert_eq!(
        dee.get(h.url("/alerts")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert!(h
        .store
        .account("dee")
        .await
        .unwrap()
        .unwrap()
        .totp_secret
        .is_none());
    // Housekeeping forgets the unlocked key of the session that ended.
    assert_eq!(h.console.sweep().await.unwrap(), 1);
    assert_eq!(h.console.sweep().await.unwrap(), 0);
    let r = h.post(&ian, "/users/dee/explode", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The governor's report: figures, and no names.
    let gil = h.sign_in("gil").await;
    let report = h.text(&gil, "/reports?days=30").await;
    assert!(report.contains("id=\"r-alerts\">1<"), "{report}");
    assert!(report.contains("Audit log intact"));
    assert!(!report.contains("amy"), "no names in reports");
    assert_eq!(
        gil.get(h.url("/reports?days=2"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let actions = h.audit_actions().await;
    for want in [
        "user.add",
        "user.role",
        "user.reset-two-factor",
        "user.unlock",
        "user.disable",
        "report.view",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}");
    }
}

/// When the database refuses the activity log's writes, the DSL team and the IT admin are told
/// on the home page (since when, the error, how many events were lost); other roles are not.
#[tokio::test]
async fn a_failing_activity_log_is_shown_to_those_who_must_act() {
    // The log writes to a database that has gone (its pool closed): every write fails.
    let other = tempfile::tempdir().unwrap();
    let gone = lookout_store::testing::open_in(other.path()).await.unwrap();
    let (log, _writer) =
        lookout_store::EventLog::start(gone.clone(), 100, 10, std::time::Duration::ZERO);
    gone.close().await;
    log.record(lookout_store::Event {
        at_ms: 1,
        reference: String::new(),
        service: "proxy",
        client_ip: "10.0.0.7".into(),
        username: None,
        group: "staff".into(),
        method: "GET".into(),
        url: "http://example.test/".into(),
        host: "example.test".into(),
        search_term: None,
        categories: "".into(),
        action: "allow".into(),
        rule: "default".into(),
        reason: "no rule matched".into(),
        status: Some(200),
        bytes: 0,
    });
    for _ in 0..200 {
        if log.failure().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(log.failure().is_some());
    let h = start_full(Settings::default(), None, Some(log)).await;
    for (role, name, shown) in [
        (Role::Dsl, "dee", true),
        (Role::ItAdmin, "ian", true),
        (Role::Staff, "sam", false),
    ] {
        h.user(name, role).await;
        let c = h.sign_in(name).await;
        let page = h.text(&c, "/").await;
        assert_eq!(
            page.contains("The activity log cannot be written"),
            shown,
            "{name}: {page}"
        );
        if shown {
            assert!(page.contains("events have been lost so far"), "{page}");
            assert!(page.contains("Filtering goes on"), "{page}");
        }
    }
}

/// A list subscription that keeps failing, or a reload that failed, is on the home page of
/// those who must know (IT, safeguarding), saying which copy is in use and what went wrong.
#[tokio::test]
async fn failing_list_subscriptions_are_shown_on_the_home_page() {
    let filter = filter();
    let live = filter.index.clone();
    let h = start_with(Settings::default(), Some(filter)).await;
    h.user("ian", Role::ItAdmin).await;
    h.user("sam", Role::Staff).await;
    let ian = h.sign_in("ian").await;
    let sam = h.sign_in("sam").await;
    assert!(!h.text(&ian, "/").await.contains("not up to date"));
    live.update(|s| {
        s.subscriptions = vec![
            lookout_lists::SubscriptionStatus {
                name: "ut1".into(),
                fetched_at_ms: Some(1_796_000_000_000),
                entries: 900_000,
                error: Some("https://dsi.example/blacklists.tar.gz answered HTTP 503".into()),
                failing_since_ms: Some(1_796_100_000_000),
                ..Default::default()
            },
            lookout_lists::SubscriptionStatus {
                name: "never-downloaded".into(),
                error: Some("cannot download https://x.example/l: connection refused".into()),
                failing_since_ms: Some(1_796_100_000_000),
                ..Default::default()
            },
            lookout_lists::SubscriptionStatus {
                name: "fine".into(),
                entries: 10,
                ..Default::default()
            },
        ];
        s.reload_error = Some("list source `x`: cannot read /x: permission denied".into());
    });
    let page = h.text(&ian, "/").await;
    for want in [
        "Category lists are not up to date",
        "answered HTTP 503",
        "is in use",
        "No copy has been downloaded, so its sites are not blocked",
        "could not be loaded again",
        "permission denied",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    assert!(!page.contains("<strong>fine</strong>"), "{page}");
    assert!(!h.text(&sam, "/").await.contains("not up to date"));
}

/// Publishing a briefing: a bad form stores nothing and says why; a good one is a new version
/// shown as the portal shows it (HTML as text, no script links), on the audit log; who
/// accepted it (at the portal) is listed with when and from which device.
#[tokio::test]
async fn briefings_are_published_as_versions_and_acceptances_listed() {
    let h = start(Settings {
        groups: vec!["learners".into(), "staff".into()],
        ..Settings::default()
    })
    .await;
    h.user("dee", Role::Dsl).await;
    let c = h.sign_in("dee").await;
    let csrf = h.csrf(&c, "/briefings/new").await;
    for (form, says) in [
        (
            vec![
                ("group", "nobody"),
                ("title", "T"),
                ("briefing", "b"),
                ("terms", "t"),
            ],
            "There is no group called `nobody`.",
        ),
        (
            vec![
                ("group", ""),
                ("title", "T"),
                ("briefing", " "),
                ("terms", "t"),
            ],
            "Give the briefing a title",
        ),
        (
            vec![
                ("group", ""),
                ("title", &"x".repeat(201)),
                ("briefing", "b"),
                ("terms", "t"),
            ],
            "longer than 200 characters",
        ),
    ] {
        let mut form = form.clone();
        form.push(("csrf", &csrf));
        let r = h.post(&c, "/briefings", &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text().await.unwrap();
        assert!(page.contains(says), "{page}");
    }
    assert!(
        h.store.briefings().await.unwrap().is_empty(),
        "nothing stored half-way"
    );

    let r = h
        .post(
            &c,
            "/briefings",
            &[
                ("csrf", &csrf),
                ("group", "learners"),
                ("title", "Staying safe"),
                (
                    "briefing",
                    "# Hello\n\n<script>alert(1)</script> [x](javascript:alert(1))",
                ),
                ("terms", "- Be kind"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let id: i64 = at.trim_start_matches("/briefings/").parse().unwrap();
    h.store
        .accept_briefing(
            "lee",
            id,
            "10.10.0.7".parse().unwrap(),
            lookout_store::now_ms() + 60_000,
        )
        .await
        .unwrap();
    let page = h.text(&c, &at).await;
    assert!(page.contains("<h1>Hello</h1>"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
    assert!(!page.contains("href=\"javascript"), "{page}");
    assert!(page.contains("<li>Be kind</li>"), "{page}");
    assert!(
        page.contains("10.10.0.7") && page.contains(">lee<"),
        "{page}"
    );
    let list = h.text(&c, "/briefings").await;
    assert!(
        list.contains("Staying safe (version"),
        "learners see it now: {list}"
    );
    assert!(list.contains("None published"), "staff have none: {list}");
    assert!(list.contains("1 people"), "{list}");
    let csv = h.text(&c, "/briefings/acceptances.csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "user,name,group,version,title,for,accepted,address"
    );
    assert!(
        lines[1].starts_with(&format!("lee,,,{id},Staying safe,learners,")),
        "{csv}"
    );
    assert!(lines[1].ends_with(",10.10.0.7"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    let actions: Vec<String> = h
        .store
        .audit_log(&lookout_store::AuditFilter {
            action: Some("briefing.".into()),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            "briefing.acceptances.export",
            "briefing.list",
            "briefing.view",
            "briefing.accept",
            "briefing.publish"
        ]
    );
}

/// The Board report: charts made from the period's records, figures right, no names, for the
/// report readers only; a bad date says so.
#[tokio::test]
async fn the_board_report_has_charts_and_figures_and_no_names() {
    let h = start(Settings {
        organisation: "Springfield College".into(),
        ..Settings::default()
    })
    .await;
    h.user("gil", Role::Governor).await;
    h.user("lee", Role::Learner).await;
    let now = lookout_store::now_ms();
    let event = |host: &str, cats: &'static str, action: &'static str| lookout_store::Event {
        at_ms: now - 3_600_000,
        reference: String::new(),
        service: "proxy",
        client_ip: "10.0.0.9".into(),
        username: Some("amy.secretname".into()),
        group: "learners".into(),
        method: "GET".into(),
        url: format!("http://{host}/"),
        host: host.into(),
        search_term: Some("a private search".into()),
        categories: cats.into(),
        action: action.into(),
        rule: "category".into(),
        reason: "r".into(),
        status: Some(403),
        bytes: 0,
    };
    let mut events = vec![];
    for _ in 0..3 {
        events.push(event("casino.test", "gambling", "block"));
    }
    events.push(event("chat.test", "chat,social-networking", "block"));
    events.push(event("news.test", "", "allow"));
    h.store.insert_events(&events).await.unwrap();
    let alert = h.alert("amy.secretname").await;
    h.store
        .review_alert(
            alert,
            lookout_store::ReviewAction::Reviewed,
            "seen",
            None,
            &lookout_store::AuditEntry::new("dee", "alert.review", ""),
        )
        .await
        .unwrap();
    // Training: a course required of learners, one of the two done; a technology overdue.
    h.user("lou", Role::Learner).await;
    let course = h
        .store
        .save_course(
            None,
            &lookout_store::CourseFields {
                title: "Online safety".into(),
                edition: "1".into(),
                about: "Read this.".into(),
                roles: vec![Role::Learner],
                within_days: 0,
                ..Default::default()
            },
            &lookout_store::AuditEntry::new("ian", "training.course.save", ""),
        )
        .await
        .unwrap();
    h.store
        .record_completion(
            course.course_id,
            "1",
            "lee",
            now,
            "recorded",
            (0, 0),
            "",
            &lookout_store::AuditEntry::new("ian", "training.record", ""),
        )
        .await
        .unwrap();
    h.store
        .save_assessment(
            None,
            &lookout_store::TechFields {
                name: "ClassChat".into(),
                decision: "approved".into(),
                review_due_ms: now - 1,
                ..Default::default()
            },
            &lookout_store::AuditEntry::new("ian", "register.technology.save", ""),
        )
        .await
        .unwrap();

    let c = h.sign_in("gil").await;
    let page = h.text(&c, "/reports/board").await;
    assert!(
        page.contains("Online safety: completed: <strong>1 of 2</strong> (50%)"),
        "training: {page}"
    );
    assert!(page.contains("<strong>1</strong> overdue."), "{page}");
    assert!(
        page.contains(
            "Technologies risk-assessed: <strong>1</strong>; reviews overdue: <strong>1</strong>"
        ),
        "{page}"
    );
    assert!(
        page.contains("E-safety report for the Board — Springfield College"),
        "{page}"
    );
    assert!(page.matches("<svg").count() >= 4, "charts: {page}");
    assert!(page.contains(">Gambling</text>"), "{page}");
    // Four blocked requests: three gambling, one in two categories (once in each bar).
    assert!(
        page.contains("<b>4</b><span>requests blocked</span>"),
        "{page}"
    );
    assert!(
        page.contains("1 answered; half within"),
        "time to first review: {page}"
    );
    for private in [
        "amy.secretname",
        "a private search",
        "10.0.0.9",
        "lou",
        "lee",
    ] {
        assert!(
            !page.contains(private),
            "{private} must not be in the report"
        );
    }
    let r = c
        .get(h.url("/reports/board?from=2026-02-30"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("must look like 2026-09-01"));
    let learner = h.sign_in("lee").await;
    let r = learner.get(h.url("/reports/board")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(h.audit_actions().await.contains(&"report.board".to_owned()));
}

/// A DSL places an incident under legal hold (kept whatever the retention) and lifts it; both
/// on the audit log; a bad form says so.
#[tokio::test]
async fn an_incident_is_placed_under_legal_hold_and_released() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    let id = h.incident().await;
    let c = h.sign_in("dee").await;
    let page = format!("/incidents/{id}");
    let csrf = h.csrf(&c, &page).await;
    assert!(h.text(&c, &page).await.contains("Kept while open"));
    let hold = format!("{page}/hold");
    let r = h
        .post(&c, &hold, &[("csrf", &csrf), ("hold", "maybe")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h.post(&c, &hold, &[("csrf", &csrf), ("hold", "on")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(h.store.legal_hold(id).await.unwrap());
    assert!(h.text(&c, &page).await.contains("Under legal hold"));
    let r = h.post(&c, &hold, &[("csrf", &csrf), ("hold", "off")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!h.store.legal_hold(id).await.unwrap());
    let holds = h
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "incident.hold")
        .count();
    assert_eq!(holds, 2);
}

/// Subject access from the People page: the IT admin sees everything held about a person as a
/// page and as JSON, with the review notice; audited; an unknown person is a clear 404.
#[tokio::test]
async fn the_it_admin_exports_what_is_held_about_a_person() {
    let h = start(Settings::default()).await;
    h.user("ian", Role::ItAdmin).await;
    h.user("lee", Role::Learner).await;
    h.alert("lee").await;
    let c = h.sign_in("ian").await;
    let people = h.text(&c, "/users").await;
    assert!(people.contains("href=\"/users/lee/data\""), "{people}");
    let page = h.text(&c, "/users/lee/data").await;
    assert!(page.contains("Data held about lee"), "{page}");
    assert!(page.contains("Review it before release"), "{page}");
    assert!(
        page.contains("Alerts raised about this person (1)"),
        "{page}"
    );
    let r = c.get(h.url("/users/lee/data.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("lee-data.json"));
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["person"], "lee");
    let alerts = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == "alerts")
        .unwrap();
    assert_eq!(alerts["rows"].as_array().unwrap().len(), 1);
    let r = c.get(h.url("/users/nobody/data")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let exports = h
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "privacy.export")
        .count();
    assert_eq!(exports, 2);
}

/// The social-media register: accounts and admins recorded with history; disabling a user on
/// the People page puts their admin rights on the checklist until marked revoked; the CSV
/// export never carries a live formula; bad forms say what is wrong.
#[tokio::test]
async fn the_social_media_register_flags_admins_who_leave() {
    let h = start(Settings::default()).await;
    h.user("ian", Role::ItAdmin).await;
    h.user("sam", Role::Staff).await;
    let c = h.sign_in("ian").await;
    let csrf = h.csrf(&c, "/registers/social").await;
    let r = h
        .post(
            &c,
            "/registers/social",
            &[("csrf", &csrf), ("platform", "Instagram"), ("handle", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let said = r.text().await.unwrap();
    assert!(said.contains("Give the account"), "{said}");
    assert!(
        h.store.social_accounts().await.unwrap().is_empty(),
        "nothing stored"
    );
    let r = h
        .post(
            &c,
            "/registers/social",
            &[
                ("csrf", &csrf),
                ("platform", "Instagram"),
                ("handle", "@springfield"),
                ("purpose", "=HYPERLINK(\"http://evil.test\")"),
                ("owner", "Marketing"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let account = location(&r);
    let admins = format!("{account}/admins");
    for who in ["sam", "Pat Jones (agency)"] {
        let r = h
            .post(
                &c,
                &admins,
                &[("csrf", &csrf), ("admin", who), ("kind", "added")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{who}");
    }
    let r = h
        .post(
            &c,
            &admins,
            &[("csrf", &csrf), ("admin", "sam"), ("kind", "added")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = h.text(&c, &account).await;
    assert!(page.contains("sam (Lookout user)"), "{page}");

    let r = h.post(&c, "/users/sam/disable", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let said = r.text().await.unwrap();
    assert!(
        said.contains("admin rights on 1 registered social-media account(s)"),
        "{said}"
    );
    let list = h.text(&c, "/registers/social").await;
    assert!(list.contains("Mark revoked"), "{list}");
    let csv = h.text(&c, "/registers/social.csv").await;
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.test\"\")\""),
        "{csv}"
    );
    assert!(!csv.contains(",=HYPERLINK"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains(",sam,") && l.ends_with(",yes")),
        "{csv}"
    );
    let r = h
        .post(
            &c,
            &admins,
            &[("csrf", &csrf), ("admin", "sam"), ("kind", "revoked")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list = h.text(&c, "/registers/social").await;
    assert!(
        list.contains("None: nobody who left still holds admin rights."),
        "{list}"
    );
    let page = h.text(&c, &account).await;
    assert!(
        page.contains("revoke sam: their Lookout account was disabled"),
        "{page}"
    );
    assert!(page.contains("revoked sam"), "{page}");
}

/// The annual policy review: overdue until recorded (on the home page of those who do it and
/// of governors), recorded with who, what changed and when next; bad dates are refused; it
/// shows in the Board report.
#[tokio::test]
async fn the_policy_review_is_recorded_and_its_due_date_shown() {
    let h = start(Settings::default()).await;
    h.user("dee", Role::Dsl).await;
    h.user("gil", Role::Governor).await;
    h.user("sam", Role::Staff).await;
    let gil = h.sign_in("gil").await;
    assert!(h
        .text(&gil, "/")
        .await
        .contains("The e-safety policy review is overdue"));
    let sam = h.sign_in("sam").await;
    assert!(!h.text(&sam, "/").await.contains("policy review"));
    let c = h.sign_in("dee").await;
    let csrf = h.csrf(&c, "/policy").await;
    let form = |reviewed: &'static str, next: &'static str| {
        vec![
            ("reviewed_on", reviewed),
            ("reviewers", "Dee (DSL), Ian (Head of IT), Gil (governor)"),
            (
                "changes",
                "Added the portal and the briefing; no other changes.",
            ),
            ("next_due", next),
        ]
    };
    for (reviewed, next, says) in [
        ("2026-13-01", "2027-11-01", "review date must look like"),
        ("2026-11-01", "2026-10-01", "must be after this one"),
        ("2099-11-01", "2100-11-01", "before it happens"),
    ] {
        let mut f = form(reviewed, next);
        f.push(("csrf", &csrf));
        let r = h.post(&c, "/policy", &f).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{reviewed}");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let mut f = form("2026-11-01", "2027-11-01");
    f.push(("csrf", &csrf));
    let r = h.post(&c, "/policy", &f).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = h.text(&c, "/policy").await;
    assert!(page.contains("The next review is due"), "{page}");
    assert!(page.contains("Added the portal"), "{page}");
    assert!(!h.text(&gil, "/").await.contains("policy review is overdue"));
    let board = h.text(&gil, "/reports/board").await;
    assert!(
        board.contains("The e-safety policy was last reviewed on"),
        "{board}"
    );
    assert!(h
        .audit_actions()
        .await
        .contains(&"policy.review".to_owned()));
}

/// Technology risk assessments: recorded with every field checked, reviewed as new versions
/// with the history kept, overdue reviews marked, exported as CSV with formulas neutralised.
#[tokio::test]
async fn technologies_are_risk_assessed_reviewed_and_exported() {
    let h = start(Settings::default()).await;
    h.user("ian", Role::ItAdmin).await;
    let c = h.sign_in("ian").await;
    let csrf = h.csrf(&c, "/registers/technology/new").await;
    let form = |decision: &'static str, conditions: &'static str, due: &'static str| {
        vec![
            ("name", "@ClassChat app"),
            ("requested_by", "Head of English"),
            ("data_held", "Learners' names and messages"),
            ("risks", "=1+1 contact from strangers"),
            ("mitigations", "Class codes; moderation by staff"),
            ("decision", decision),
            ("conditions", conditions),
            ("reviewer", "Ian (Head of IT)"),
            ("review_due", due),
        ]
    };
    for (f, says) in [
        (form("maybe", "", "2027-01-01"), "Choose a decision."),
        (
            form("conditions", "", "2027-01-01"),
            "Say what the conditions are.",
        ),
        (
            form("approved", "", "next year"),
            "must look like 2027-09-01",
        ),
    ] {
        let mut f = f.clone();
        f.push(("csrf", &csrf));
        let r = h.post(&c, "/registers/technology", &f).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    assert!(
        h.store.assessments().await.unwrap().is_empty(),
        "nothing stored"
    );
    let mut f = form("conditions", "Staff-moderated groups only", "2026-01-01");
    f.push(("csrf", &csrf));
    let r = h.post(&c, "/registers/technology", &f).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let list = h.text(&c, "/registers/technology").await;
    assert!(list.contains("1</strong> review(s) overdue"), "{list}");
    // Reviewed: a new version with the next date; the history keeps both.
    let mut f = form("approved", "", "2099-01-01");
    f.push(("csrf", &csrf));
    let r = h.post(&c, &at, &f).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = h.text(&c, &at).await;
    assert!(page.contains("id=\"decision\">Approved<"), "{page}");
    assert_eq!(
        page.matches("Approved with conditions").count(),
        2,
        "history and the select"
    );
    let list = h.text(&c, "/registers/technology").await;
    assert!(!list.contains("overdue"), "{list}");
    let csv = h.text(&c, "/registers/technology.csv").await;
    assert!(csv.contains("'@ClassChat app"), "{csv}");
    assert!(csv.contains("'=1+1 contact"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        2,
        "one row for the current version: {csv}"
    );
}

#[tokio::test]
async fn staff_training_is_written_taken_recorded_and_reported() {
    let h = start(Settings {
        groups: vec!["learners".into(), "staff".into()],
        ..Settings::default()
    })
    .await;
    for (name, role) in [
        ("ian", Role::ItAdmin),
        ("sue", Role::Supervisor),
        ("sam", Role::Staff),
        ("tia", Role::Staff),
        ("uma", Role::Staff),
        ("lee", Role::Learner),
    ] {
        h.user(name, role).await;
    }
    for name in ["sam", "tia"] {
        h.store
            .set_contact(name, &format!("{name}@college.test"), "Construction")
            .await
            .unwrap();
    }
    let ian = h.sign_in("ian").await;
    let csrf = h.csrf(&ian, "/training/new").await;
    let quiz = "? Who do you tell about a disclosure?\n- Nobody\n* The DSL, the same day\n\n? May you promise to keep it secret?\n* No\n- Yes\n";
    let form = |quiz: &'static str| {
        vec![
            ("title", "Safeguarding induction"),
            ("edition", "2026"),
            ("about", "Read the **policy**. <script>alert(1)</script>"),
            ("link", "https://learning.example/induction"),
            ("role", "staff"),
            ("within_days", "0"),
            ("renew_days", "365"),
            ("quiz", quiz),
            ("pass_percent", "100"),
        ]
    };
    // Bad forms say what is wrong and store nothing.
    for (mut f, says) in [
        (
            form("? Q\n- a\n- b\n"),
            "The quiz, line 1: mark exactly one answer right",
        ),
        (
            form("? Q\n* a\nb\n"),
            "The quiz, line 3: start the line with",
        ),
        (
            form(quiz)
                .into_iter()
                .filter(|(k, _)| *k != "role")
                .collect(),
            "at least one role or group",
        ),
        (
            form(quiz)
                .into_iter()
                .map(|(k, v)| {
                    if k == "link" {
                        (k, "javascript:alert(1)")
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "must be a web address",
        ),
        (
            [form(quiz), vec![("group", "nobody")]].concat(),
            "There is no filtering group",
        ),
    ] {
        f.push(("csrf", &csrf));
        let r = h.post(&ian, "/training/courses", &f).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{says}");
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{says}: {text}");
    }
    assert!(
        h.store.courses().await.unwrap().is_empty(),
        "nothing stored"
    );
    let mut f = form(quiz);
    f.push(("csrf", &csrf));
    let r = h.post(&ian, "/training/courses", &f).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let course = h.store.courses().await.unwrap().remove(0);

    // Sam sees it due on the home page, reads it, fails the quiz, then passes.
    let sam = h.sign_in("sam").await;
    let home = h.text(&sam, "/").await;
    assert!(home.contains("id=\"training-due\""), "{home}");
    assert!(home.contains("Safeguarding induction"), "{home}");
    let page = h.text(&sam, &at).await;
    assert!(page.contains("<strong>policy</strong>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;") && !page.contains("<script>alert"),
        "{page}"
    );
    assert!(page.contains("Overdue"), "due within 0 days: {page}");
    let version = course.version.to_string();
    let csrf_sam = h.csrf(&sam, &at).await;
    let answer = |q0: &'static str, q1: &'static str| {
        vec![
            ("version", version.clone()),
            ("q0", q0.into()),
            ("q1", q1.into()),
        ]
    };
    let post_answers = |a: Vec<(&'static str, String)>| {
        let mut a: Vec<(&str, String)> = a;
        a.push(("csrf", csrf_sam.clone()));
        let url = h.url(&format!("{at}/quiz"));
        let c = sam.clone();
        async move { c.post(url).form(&a).send().await.unwrap() }
    };
    let r = post_answers(answer("1", "1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("You answered 1 of 2 correctly; 100% is needed"),
        "{text}"
    );
    // A stale form (the course changed since) is refused, not marked.
    let mut stale = answer("1", "0");
    stale[0].1 = "0".into();
    assert_eq!(post_answers(stale).await.status(), StatusCode::CONFLICT);
    let r = post_answers(answer("1", "0")).await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains("You answered 2 of 2 correctly: passed"),
        "{text}"
    );
    let home = h.text(&sam, "/").await;
    assert!(!home.contains("training-due"), "{home}");
    assert!(h.text(&sam, "/training").await.contains("Done"));
    // Not required of a learner: no such course for them; nor can they take it.
    let lee = h.sign_in("lee").await;
    assert_eq!(
        lee.get(h.url(&at)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert!(h
        .text(&lee, "/training")
        .await
        .contains("No training is required of you"));

    // The IT admin records Tia's from a certificate; bad dates and names are refused.
    for (user, day, says) in [
        ("nobody", "2026-11-01", "No one is named"),
        ("tia", "2999-01-01", "not be in the future"),
        ("tia", "yesterday", "must look like 2026-11-30"),
    ] {
        let r = h
            .post(
                &ian,
                &format!("{at}/record"),
                &[
                    ("csrf", &csrf),
                    ("username", user),
                    ("completed", day),
                    ("note", ""),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let r = h
        .post(
            &ian,
            &format!("{at}/record"),
            &[
                ("csrf", &csrf),
                ("username", "TIA"),
                ("completed", "2026-11-20"),
                ("note", "=HYPERLINK(\"x\") certificate"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The IT admin puts Uma in a team (a bad address is refused, nothing changed).
    let r = h
        .post(
            &ian,
            "/users/uma/contact",
            &[
                ("csrf", &csrf),
                ("email", "uma at college"),
                ("team", "Estates"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("is not an email address"));
    assert_eq!(h.store.user("uma").await.unwrap().unwrap().team, "");
    let r = h
        .post(
            &ian,
            "/users/uma/contact",
            &[
                ("csrf", &csrf),
                ("email", "uma@college.test"),
                ("team", "Estates"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("value=\"uma@college.test\""));

    // The supervisor sees who is overdue (Uma), the teams, and the export.
    let sue = h.sign_in("sue").await;
    let overdue = h.text(&sue, "/training/overdue").await;
    assert!(overdue.contains("id=\"overdue-count\">1<"), "{overdue}");
    assert!(
        overdue.contains("uma") && !overdue.contains(">sam<"),
        "{overdue}"
    );
    let teams = h.text(&sue, "/training/teams").await;
    assert!(
        teams.contains("<td>Construction</td><td>Safeguarding induction</td><td>2</td><td>2</td><td>0</td><td>100%</td>"),
        "{teams}"
    );
    assert!(teams.contains("<td>Estates</td><td>Safeguarding induction</td><td>1</td><td>0</td><td>1</td><td>0%</td>"), "{teams}");
    let courses = h.text(&ian, "/training/courses").await;
    assert!(
        courses.contains("<td>2 / 3</td>"),
        "done / required: {courses}"
    );
    let csv = h.text(&sue, "/training/completions.csv").await;
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("sam,sam (test),Construction,"), "{csv}");
    assert!(csv.contains(",quiz,2,2,sam,"), "{csv}");
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"x\"\") certificate\""),
        "{csv}"
    );

    // A new edition asks everyone again; a wording change does not.
    let mut f: Vec<(&str, &str)> = form(quiz);
    f[2].1 = "Read the policy, all of it.";
    f.push(("csrf", &csrf));
    assert_eq!(h.post(&ian, &at, &f).await.status(), StatusCode::SEE_OTHER);
    assert!(!h.text(&sam, "/").await.contains("training-due"));
    f[1].1 = "2027";
    assert_eq!(h.post(&ian, &at, &f).await.status(), StatusCode::SEE_OTHER);
    assert!(h.text(&sam, "/").await.contains("training-due"));
    let page = h.text(&ian, &at).await;
    assert_eq!(page.matches("<td>2027</td>").count(), 1, "history: {page}");

    let actions = h.audit_actions().await;
    for want in [
        "training.course.save",
        "training.quiz.fail",
        "training.complete",
        "training.record",
        "training.overdue.view",
        "training.export",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}: {actions:?}");
    }
}

/// Site gateways on the home page (last heard from, backlog, policy, a silent one and a token
/// never used marked) for the IT admin and the DSL team, not for staff; the inbox filtered by
/// site, and the site named beside the person.
#[tokio::test]
async fn site_gateways_health_is_on_the_home_page_and_alerts_filter_by_site() {
    use lookout_store::{GatewayCall, NewFinding, TokenScope};
    let h = start(Settings::default()).await;
    h.user("ian", Role::ItAdmin).await;
    h.user("dee", Role::Dsl).await;
    h.user("sam", Role::Staff).await;
    for site in ["north", "south", "east"] {
        h.store
            .add_token(site, TokenScope::Gateway, None, None)
            .await
            .unwrap();
    }
    h.store
        .gateway_called(
            "north",
            &GatewayCall {
                address: "192.0.2.10".into(),
                policy_version: Some("0f3a9c".into()),
                backlog: Some(1234),
                events: 5000,
                texts: 3,
            },
        )
        .await
        .unwrap();
    // South was last heard from ten minutes ago.
    h.store
        .gateway_called_at(
            "south",
            &GatewayCall::default(),
            lookout_store::now_ms() - 600_000,
        )
        .await
        .unwrap();
    let ian = h.sign_in("ian").await;
    let dee = h.sign_in("dee").await;
    let sam = h.sign_in("sam").await;
    let page = h.text(&ian, "/").await;
    for want in [
        "id=\"sites\"",
        "A site gateway has not been heard from",
        "192.0.2.10",
        "1234",
        "0f3a9c",
        "5000",
        "(not heard from)",
        "Never connected",
        "href=\"/alerts?site=east\"",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    assert!(h.text(&dee, "/").await.contains("id=\"sites\""));
    assert!(!h.text(&sam, "/").await.contains("id=\"sites\""));

    // An alert from each site, both about an address 10.0.0.7.
    for site in ["north", "south"] {
        h.store
            .record_finding(
                &Subject {
                    username: None,
                    client_ip: Some("10.0.0.7".into()),
                    device: None,
                    group: "learners".into(),
                    site: Some(site.into()),
                },
                &NewFinding {
                    at_ms: lookout_store::now_ms(),
                    source: "search".into(),
                    category: "suicide".into(),
                    severity: "danger".into(),
                    score: 9,
                    evidence: "e".into(),
                    context: "c".into(),
                    rules: "[]".into(),
                    location: format!("http://{site}.test/"),
                },
                60_000,
                &[],
            )
            .await
            .unwrap();
    }
    let all = h.text(&dee, "/alerts").await;
    assert!(
        all.contains("address 10.0.0.7 at north") && all.contains("address 10.0.0.7 at south"),
        "{all}"
    );
    let north = h.text(&dee, "/alerts?site=north").await;
    assert!(north.contains("address 10.0.0.7 at north"), "{north}");
    assert!(!north.contains("at south"), "{north}");
    assert!(
        north.contains("<option value=\"north\" selected"),
        "{north}"
    );

    // The reports page counts each site's requests and alerts.
    let now = lookout_store::now_ms();
    let events: Vec<lookout_store::SiteEvent> = (0..5)
        .map(|i| lookout_store::SiteEvent {
            seq: i + 1,
            event: lookout_store::Event {
                at_ms: now - 1000,
                action: if i < 2 { "block" } else { "allow" }.into(),
                ..lookout_store::testing::sample_event(i as usize)
            },
        })
        .collect();
    h.store.insert_site_events("north", &events).await.unwrap();
    let report = h.text(&dee, "/reports?days=7").await;
    let north = row(&report, "data-site=\"north\"");
    assert!(
        north.contains("<td>2</td><td>3</td><td>1 (1, 0, 0)</td>"),
        "{north}"
    );
    let south = row(&report, "data-site=\"south\"");
    assert!(
        south.contains("<td>0</td><td>0</td><td>1 (1, 0, 0)</td>"),
        "{south}"
    );
    // The activity log searched by site, the search on the audit log; a wrong field is named.
    let north = h.text(&dee, "/activity?site=north&action=block").await;
    assert!(
        north.contains("page0.html") && north.contains("page1.html"),
        "{north}"
    );
    assert!(!north.contains("page2.html"), "{north}");
    assert!(north.contains(" · north"), "{north}");
    let south = h.text(&ian, "/activity?site=south").await;
    assert!(south.contains("Nothing matches."), "{south}");
    assert!(h
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "activity.search"));
    let bad = dee.get(h.url("/activity?ip=ten")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.unwrap().contains("not an address"));
    assert!(!h.text(&sam, "/activity").await.contains("id=\"activity\""));
}

/// The console with a real OpenID Provider: people in the mapped groups sign in through it
/// with the role their groups give; the second factor is the provider's when it says it used
/// one, else Lookout's own code; refusals (no role, a local account's name, a disabled
/// account, a cancelled sign-in, a forged or replayed answer) are said and audited; and a
/// DSL signed in this way signs a routine check with a signing passphrase of their own.
#[tokio::test]
async fn people_sign_in_through_the_organisations_provider() {
    use lookout_directory::oidc::{ClaimRule, Oidc, OidcSettings};
    use lookout_testkit::{IdpOutcome, OidcProvider};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/sign-in/oidc/callback");
    let person = |groups: &[&str]| serde_json::json!({"password": "pw", "claims": {"groups": groups, "name": "Someone"}});
    let mut users = serde_json::json!({
        "dana": person(&["g-dsl"]),
        "sam": person(&["g-staff"]),
        "lou": person(&["g-nothing"]),
        "amy": person(&["g-staff"]),
        "ian": person(&["g-it"]),
    });
    for (name, claims) in users.as_object_mut().unwrap() {
        claims["claims"]["preferred_username"] = format!("{name}@college.test").into();
    }
    // amy has a local account under the same name as the provider's.
    users["amy"]["claims"]["preferred_username"] = "amy".into();
    let Some(idp) = OidcProvider::start(
        &users,
        &serde_json::json!({"client_id": "console", "client_secret": "console-secret-0123456789", "redirect_uris": [callback]}),
    ) else {
        return;
    };
    let rule = |value: &str, to: &str| ClaimRule {
        claim: "groups".into(),
        value: value.into(),
        to: to.into(),
    };
    let oidc = Oidc::new(OidcSettings {
        issuer: idp.issuer.clone(),
        client_id: "console".into(),
        client_secret: Some("console-secret-0123456789".into()),
        redirect_url: callback.clone(),
        scopes: vec![],
        username_claim: None,
        roles: vec![
            rule("g-dsl", "dsl"),
            rule("g-staff", "staff"),
            rule("g-it", "it-admin"),
        ],
        groups: vec![],
        default_group: Some("staff".into()),
        timeout: Duration::from_secs(5),
        extra_roots: vec![],
    })
    .unwrap();
    let settings = Settings {
        oidc: Some(Arc::new(lookout_console::OidcSignIn {
            provider: oidc,
            label: "College 365".into(),
            trust_provider_mfa: true,
            portal: None,
        })),
        ..Settings::default()
    };
    let h = start_on(listener, settings, None, None).await;
    assert_eq!(h.base, base);
    // The portal's way through the provider is off unless asked for.
    let r = h
        .client_get_status(&h.client(), "/portal/oidc?ticket=abc")
        .await;
    assert_eq!(r, StatusCode::NOT_FOUND);
    h.user("amy", Role::Staff).await;

    // The sign-in page offers the provider; the browser goes there and comes back.
    let page = h.text(&h.client(), "/sign-in?next=/checks/new").await;
    assert!(
        page.contains("Sign in with College 365")
            && page.contains("/sign-in/oidc?next=/checks/new"),
        "{page}"
    );
    // Follows the console's own redirect to the provider, the provider's sign-in, and the
    // way back; the response to the callback.
    async fn through(
        h: &Harness,
        idp: &OidcProvider,
        c: &Client,
        login: &str,
        mfa: bool,
        cancel: bool,
    ) -> Response {
        let r = c
            .get(h.url("/sign-in/oidc?next=/checks/new"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{login}");
        let set = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            set.contains("SameSite=Lax") && set.contains("Path=/sign-in/oidc"),
            "{set}"
        );
        let IdpOutcome::Back(back) = idp.sign_in(&location(&r), login, "pw", mfa, cancel).await
        else {
            panic!("{login} refused at the provider")
        };
        assert!(
            back.starts_with(&h.url("/sign-in/oidc/callback?")),
            "{back}"
        );
        c.get(back).send().await.unwrap()
    }

    // A DSL whose provider used a second factor: straight in, with the DSL's role.
    let dana = h.client();
    let r = through(&h, &idp, &dana, "dana", true, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("url=/checks/new"), "{body}");
    let home = h.text(&dana, "/").await;
    assert!(home.contains("My signing key"), "{home}");
    let u = h.store.user("dana@college.test").await.unwrap().unwrap();
    assert_eq!(
        (u.role, u.group.as_str(), u.has_password),
        (Role::Dsl, "staff", false)
    );
    // The IT admin's People page says where such an account's role comes from.
    let ian = h.client();
    assert_eq!(
        through(&h, &idp, &ian, "ian", true, false).await.status(),
        StatusCode::OK
    );
    let people = h.text(&ian, "/users").await;
    let dana_row = row(&people, "id=\"user-dana@college.test\"");
    assert!(dana_row.contains("No Lookout password"), "{dana_row}");
    // No password of Lookout's to change.
    assert!(h
        .text(&dana, "/account/password")
        .await
        .contains("kept there, not by Lookout"));

    // Signing needs the key: none yet, so the check is refused with the way to make one.
    let csrf = h.csrf(&dana, "/checks/new").await;
    let check = [
        ("csrf", csrf.as_str()),
        ("checked", "The inbox"),
        ("found", "Nothing waiting"),
    ];
    let r = h.post(&dana, "/checks", &check).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("/account/signing-key"));
    let key_page = h.text(&dana, "/account/signing-key?next=/checks/new").await;
    assert!(key_page.contains("Make my signing key"), "{key_page}");
    let csrf = field(&key_page, "csrf");
    let key = "/account/signing-key";
    // (passphrase, again, status)
    let table = [
        (
            "passphrase one",
            "passphrase two",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("short", "short", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "my signing passphrase",
            "my signing passphrase",
            StatusCode::SEE_OTHER,
        ),
    ];
    for (secret, confirm, status) in table {
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "create"),
            ("secret", secret),
            ("confirm", confirm),
            ("next", "/checks/new"),
        ];
        let r = h.post(&dana, key, &form).await;
        assert_eq!(r.status(), status, "{secret} / {confirm}");
        if status == StatusCode::SEE_OTHER {
            let page = h.text(&dana, &location(&r)).await;
            assert!(page.contains("unlocked for this session"), "{page}");
        }
    }
    let r = h.post(&dana, "/checks", &check).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed");

    // A new session (a restart forgets keys too): the key is unlocked with the passphrase.
    let dana2 = h.client();
    assert_eq!(
        through(&h, &idp, &dana2, "dana", true, false)
            .await
            .status(),
        StatusCode::OK
    );
    let csrf = h.csrf(&dana2, key).await;
    for (secret, status) in [
        ("not it at all", StatusCode::UNPROCESSABLE_ENTITY),
        ("my signing passphrase", StatusCode::SEE_OTHER),
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "unlock"),
            ("secret", secret),
        ];
        let r = h.post(&dana2, key, &form).await;
        assert_eq!(r.status(), status, "{secret}");
        if status != StatusCode::SEE_OTHER {
            assert!(r
                .text()
                .await
                .unwrap()
                .contains("not your signing passphrase"));
        }
    }
    let csrf = h.csrf(&dana2, "/checks/new").await;
    let r = h
        .post(
            &dana2,
            "/checks",
            &[
                ("csrf", csrf.as_str()),
                ("checked", "The inbox"),
                ("found", "Still nothing"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "signed with the unlocked key"
    );
    let (n, problems) = h.store.verify_checks().await.unwrap();
    assert_eq!((n, problems.len()), (2, 0), "{problems:?}");

    // Without the provider's second factor, Lookout asks for its own: set-up first.
    let dana3 = h.client();
    let r = through(&h, &idp, &dana3, "dana", false, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("url=/sign-in/continue"));
    let r = dana3.get(h.url("/sign-in/continue")).send().await.unwrap();
    assert_eq!(location(&r), "/sign-in/setup");
    assert_eq!(
        location(&dana3.get(h.url("/")).send().await.unwrap()),
        "/sign-in/continue",
        "no console before the code"
    );

    // Staff need no second factor; the IT admin does.
    let sam = h.client();
    assert_eq!(
        through(&h, &idp, &sam, "sam", false, false).await.status(),
        StatusCode::OK
    );
    assert_eq!(h.client_get_status(&sam, "/").await, StatusCode::OK);
    assert_eq!(
        h.store
            .user("sam@college.test")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Staff
    );

    // Refusals, each said and on the audit log.
    let cases: [(&str, bool, StatusCode, &str); 3] = [
        (
            "lou",
            false,
            StatusCode::FORBIDDEN,
            "not in a group that may use the safeguarding console",
        ),
        (
            "amy",
            false,
            StatusCode::FORBIDDEN,
            "already signs in with its own password",
        ),
        (
            "sam",
            true,
            StatusCode::UNAUTHORIZED,
            "cancelled or refused at College 365",
        ),
    ];
    for (login, cancel, status, says) in cases {
        let c = h.client();
        let r = through(&h, &idp, &c, login, false, cancel).await;
        assert_eq!(r.status(), status, "{login}");
        assert!(r.text().await.unwrap().contains(says), "{login}");
        assert_eq!(
            location(&c.get(h.url("/")).send().await.unwrap()),
            "/sign-in",
            "{login} is not signed in"
        );
    }
    assert!(
        h.store.user("lou@college.test").await.unwrap().is_none(),
        "no record for the refused"
    );
    // A disabled record stays shut.
    h.store
        .set_disabled("sam@college.test", true)
        .await
        .unwrap();
    let r = through(&h, &idp, &h.client(), "sam", false, false).await;
    assert!(r.text().await.unwrap().contains("disabled"));
    // An answer from the provider that this browser did not ask for (a forged link, or one
    // replayed): refused before anything is exchanged.
    let c = h.client();
    let r = c.get(h.url("/sign-in/oidc")).send().await.unwrap();
    let IdpOutcome::Back(back) = idp.sign_in(&location(&r), "dana", "pw", true, false).await else {
        panic!()
    };
    let r = h.client().get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "another browser");
    assert_eq!(
        c.get(&back).send().await.unwrap().status(),
        StatusCode::OK,
        "its own browser"
    );
    assert_eq!(
        c.get(&back).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "once only"
    );

    let audit = h.store.audit_log(&Default::default()).await.unwrap();
    let line =
        |a: &lookout_store::AuditRow| format!("{} {} {} {}", a.actor, a.action, a.target, a.detail);
    let lines: Vec<String> = audit.iter().map(line).collect();
    for want in [
        "oidc user.directory-add user:dana@college.test group staff, role dsl",
        "dana@college.test sign-in.ok user:dana@college.test through the sign-in provider, which used a second factor (subject dana)",
        "dana@college.test sign-in.password-ok user:dana@college.test through the sign-in provider; Lookout's two-factor code is due (subject dana)",
        "oidc sign-in.refused user:lou@college.test no [[oidc.role]] rule matches (groups=[\"g-nothing\"])",
        "oidc sign-in.refused user:amy a local account with a password has this name",
        "oidc sign-in.refused user:sam@college.test the account is disabled",
        "oidc sign-in.failed user:? the provider said access_denied: the person cancelled",
        "oidc sign-in.failed user:? the provider's answer does not match a sign-in started in this browser",
        "dana@college.test signing-key.created key:1 signing passphrase chosen",
        "dana@college.test signing-key.unlock-failed user:dana@college.test ",
        "dana@college.test signing-key.unlocked user:dana@college.test ",
    ] {
        assert!(lines.iter().any(|l| l == want), "no `{want}` in {lines:#?}");
    }
}

impl Harness {
    async fn client_get_status(&self, c: &Client, path: &str) -> StatusCode {
        c.get(self.url(path)).send().await.unwrap().status()
    }
}
