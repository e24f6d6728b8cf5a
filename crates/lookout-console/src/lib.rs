//! The safeguarding console: the web app where the DSL team triages alerts, staff and learners
//! report concerns, and the IT admin manages accounts and reads the audit log. Server-rendered
//! pages (maud: escaped by construction), forms that work without JavaScript, and one small
//! script for the live alerts inbox.
//!
//! Invariants:
//! - Every page but sign-in needs a full session (a password or the organisation's sign-in
//!   provider, and a second factor for the DSL team, supervisors and IT admins: Lookout's
//!   two-factor code, or the provider's when its signed token says it used one); every handler states the roles it serves and is refused
//!   on the server for the rest ([`session::Viewer::require`]).
//! - Every form that changes something is a POST carrying the session's CSRF token, checked
//!   before the body is read further ([`session::Posted`]); cookies are HttpOnly and
//!   SameSite=Strict.
//! - Every sign-in, record view and change is on the audit log; changes and their audit
//!   entries commit in one transaction.
//! - A user's signing key is unlocked by their password at sign-in (or, for people who sign in
//!   through the OpenID Connect provider, by their signing passphrase when they first sign) and
//!   held in memory for that session only.

mod activity;
mod alerts;
mod audit;
mod board;
mod briefings;
mod checks;
mod concerns;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod incidents;
mod oidc;
mod pages;
mod privacy;
mod registers;
mod reports;
mod reviews;
mod session;
mod signin;
mod signing;
mod training;
mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use lookout_auth::{SigningKey, Totp};
use lookout_monitor::Monitor;
use lookout_store::Store;
use tokio_util::sync::CancellationToken;

pub use board::{board_html, parse_day};
pub use export::{verify_export, ExportCheck, EXPORT_KIND};
pub use oidc::OidcSignIn;
pub use privacy::{privacy_html, privacy_json};
pub use reviews::{apply_reviewed_allows, set_allows, Filter};
pub use session::{CSRF_FIELD, PRE_COOKIE, SESSION_COOKIE};

/// How the console behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Add `Secure` to cookies (the console is reached over HTTPS).
    pub secure_cookies: bool,
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub lifetime: Duration,
    /// Sign-in attempts (passwords and codes) allowed from one address per `attempt_window`.
    pub attempts_per_window: u32,
    pub attempt_window: Duration,
    /// The organisation's name, on every page and in authenticator apps.
    pub organisation: String,
    /// Who to talk to about a concern (names, roles, rooms, numbers), on receipts.
    pub contacts: Vec<String>,
    /// The policy's group names (a briefing can be for one of them).
    pub groups: Vec<String>,
    /// Sign-in through the organisation's OpenID Connect provider, when set up.
    pub oidc: Option<Arc<OidcSignIn>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            secure_cookies: false,
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(10 * 3600),
            attempts_per_window: 20,
            attempt_window: Duration::from_secs(10 * 60),
            organisation: String::new(),
            contacts: Vec::new(),
            groups: Vec::new(),
            oidc: None,
        }
    }
}

/// The console's shared state.
#[derive(Clone, Debug)]
pub struct Console {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    monitor: Monitor,
    settings: Settings,
    /// Signing keys unlocked at sign-in, by session id hash.
    keys: Mutex<HashMap<String, SigningKey>>,
    /// Two-factor secrets shown for setting up, not yet confirmed, by session id hash.
    pending_totp: Mutex<HashMap<String, Totp>>,
    /// Sign-ins waiting at the OpenID Connect provider, by state.
    waiting: Mutex<HashMap<String, oidc::Waiting>>,
    /// Sign-in attempts per address: (window start, attempts).
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    shutdown: CancellationToken,
    /// The gateway's policy and lists, when it runs in this process.
    filter: Option<Filter>,
    /// The gateway's activity log, when it runs in this process: its failures are shown.
    log: Option<lookout_store::EventLog>,
}

impl Console {
    /// The console over `store`, with `monitor`'s live alerts; live streams end at `shutdown`.
    pub fn new(
        store: Store,
        monitor: Monitor,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Console {
        Console {
            inner: Arc::new(Inner {
                store,
                monitor,
                settings,
                keys: Mutex::default(),
                pending_totp: Mutex::default(),
                waiting: Mutex::default(),
                attempts: Mutex::default(),
                shutdown,
                filter: None,
                log: None,
            }),
        }
    }

    /// With the gateway's live policy and lists: approved reviews apply at once, and the
    /// review queue shows what the lists say about each address.
    pub fn with_filter(mut self, filter: Filter) -> Console {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.filter = Some(filter),
            None => tracing::error!("the console's filter must be set before it is shared"),
        }
        self
    }

    /// With the gateway's activity log: the home page says when the database refuses its
    /// writes (disk full, read-only, locked) and how many events were lost.
    pub fn with_log(mut self, log: lookout_store::EventLog) -> Console {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.log = Some(log),
            None => tracing::error!("the console's log must be set before it is shared"),
        }
        self
    }

    /// The lists' status, when the console runs beside the gateway.
    pub(crate) fn lists_status(&self) -> Option<std::sync::Arc<lookout_lists::ListsStatus>> {
        self.inner.filter.as_ref().map(|f| f.index.status())
    }

    /// The activity log's current failure, if it has one.
    pub(crate) fn log_failure(&self) -> Option<lookout_store::LogFailure> {
        self.inner.log.as_ref().and_then(|l| l.failure())
    }

    /// Every few minutes until `shutdown`: removes expired sessions, and forgets the unlocked
    /// keys and pending two-factor secrets of sessions that have ended.
    pub async fn housekeeping(self, every: Duration) {
        let stop = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!("console housekeeping: {e}");
            }
        }
    }

    /// One housekeeping pass; returns how many unlocked keys were forgotten.
    pub async fn sweep(&self) -> Result<usize, lookout_store::StoreError> {
        let now = now_ms();
        self.store().purge_sessions(now).await?;
        let held: Vec<String> = self
            .inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut forgotten = 0;
        for id_hash in held {
            if self.store().session(&id_hash, now).await?.is_none() {
                self.take_key(&id_hash);
                self.forget_pending_totp(&id_hash);
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Counts a sign-in attempt from `ip`; false when the address has used up its window.
    pub(crate) fn attempt_allowed(&self, ip: IpAddr) -> bool {
        let s = &self.inner.settings;
        let now = Instant::now();
        let mut map = self
            .inner
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < s.attempt_window);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= s.attempt_window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= s.attempts_per_window
    }

    pub(crate) fn keep_key(&self, session: &str, key: SigningKey) {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.to_owned(), key);
    }

    pub(crate) fn take_key(&self, session: &str) -> Option<SigningKey> {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session)
    }

    pub(crate) fn key(&self, session: &str) -> Option<SigningKey> {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .cloned()
    }

    /// Keeps a sign-in waiting at the provider; false when too many are waiting.
    pub(crate) fn keep_waiting(&self, w: oidc::Waiting) -> bool {
        let mut map = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= oidc::MAX_PENDING {
            map.retain(|_, w| w.pending.started.elapsed() < oidc::PENDING_FOR);
            if map.len() >= oidc::MAX_PENDING {
                return false;
            }
        }
        map.insert(w.pending.state.clone(), w);
        true
    }

    /// The sign-in waiting under `state`, if it has not expired; it is removed either way.
    pub(crate) fn take_waiting(&self, state: &str) -> Option<oidc::Waiting> {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|w| w.pending.started.elapsed() < oidc::PENDING_FOR)
    }

    pub(crate) fn pending_totp(&self, session: &str) -> Totp {
        self.inner
            .pending_totp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(session.to_owned())
            .or_insert_with(Totp::generate)
            .clone()
    }

    pub(crate) fn forget_pending_totp(&self, session: &str) {
        self.inner
            .pending_totp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
    }
}

/// The console's routes. Serve with connection info (`into_make_service_with_connect_info::
/// <SocketAddr>`): sign-in limits and the audit log use the client's address.
///
/// Routes are grouped by who may use them, and each group is guarded before any handler runs
/// (so someone without the role learns nothing, not even whether their form was valid); the
/// handlers check the role again.
pub fn router(console: Console) -> Router {
    use axum::middleware::from_fn_with_state;
    use lookout_auth::Role;
    use session::{guard, Guard};

    let safeguarding = Router::new()
        .route("/alerts", get(alerts::inbox))
        .route("/alerts/stream", get(alerts::stream))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/review", post(alerts::review))
        .route("/alerts/{id}/dismiss", post(alerts::dismiss))
        .route("/incidents", get(incidents::list).post(incidents::create))
        .route("/incidents/new", get(incidents::new_form))
        .route("/incidents/{id}", get(incidents::detail))
        .route("/incidents/{id}/entries", post(incidents::add_entry))
        .route("/incidents/{id}/hold", post(incidents::hold))
        .route(
            "/incidents/{id}/export",
            get(export::form).post(export::export),
        )
        .route("/checks", get(checks::list).post(checks::create))
        .route("/checks/new", get(checks::new_form))
        .route("/checks/{id}", get(checks::detail))
        .route("/checks/{id}/cosign", post(checks::cosign))
        .route_layer(from_fn_with_state(
            Guard::new(&console, alerts::SAFEGUARDING),
            guard,
        ));
    let admin = Router::new()
        .route("/reviews", get(reviews::queue))
        .route("/reviews/{id}/approve", post(reviews::approve))
        .route("/reviews/{id}/reject", post(reviews::reject))
        .route("/reviews/allows/{id}/remove", post(reviews::remove))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}/role", post(users::set_role))
        .route("/users/{name}/contact", post(users::set_contact))
        .route("/users/{name}/data", get(privacy::page))
        .route("/users/{name}/data.json", get(privacy::json))
        .route("/users/{name}/{action}", post(users::act))
        .route("/audit", get(audit::log))
        .route("/audit/verify", get(audit::verify))
        .route_layer(from_fn_with_state(
            Guard::new(&console, &[Role::ItAdmin]),
            guard,
        ));
    let editors = Router::new()
        .route("/briefings", get(briefings::list).post(briefings::create))
        .route("/briefings/new", get(briefings::new_form))
        .route(
            "/briefings/acceptances.csv",
            get(briefings::acceptances_csv),
        )
        .route("/briefings/{id}", get(briefings::detail))
        .route(
            "/registers/social",
            get(registers::social).post(registers::save_account),
        )
        .route("/registers/social.csv", get(registers::social_csv))
        .route(
            "/registers/social/{id}",
            get(registers::account).post(registers::save_account),
        )
        .route("/registers/social/{id}/admins", post(registers::admin))
        .route("/policy", post(registers::record_policy))
        .route(
            "/registers/technology",
            get(registers::technology).post(registers::save_assessment),
        )
        .route("/registers/technology.csv", get(registers::technology_csv))
        .route("/registers/technology/new", get(registers::new_assessment))
        .route(
            "/training/courses",
            get(training::courses).post(training::save),
        )
        .route("/training/new", get(training::new_form))
        .route("/training/{id}", post(training::save))
        .route("/training/{id}/record", post(training::record))
        .route(
            "/registers/technology/{id}",
            get(registers::assessment).post(registers::save_assessment),
        )
        .route_layer(from_fn_with_state(
            Guard::new(&console, briefings::EDITORS),
            guard,
        ));
    let overseers = Router::new()
        .route("/training/overdue", get(training::overdue))
        .route("/training/teams", get(training::teams))
        .route("/training/completions.csv", get(training::completions_csv))
        .route_layer(from_fn_with_state(
            Guard::new(&console, training::OVERSEERS),
            guard,
        ));
    let searchers = Router::new()
        .route("/activity", get(activity::search))
        .route_layer(from_fn_with_state(
            Guard::new(&console, activity::SEARCHERS),
            guard,
        ));
    let readers = Router::new()
        .route("/reports", get(reports::report))
        .route("/reports/board", get(board::board))
        .route("/policy", get(registers::policy))
        .route_layer(from_fn_with_state(
            Guard::new(&console, reports::READERS),
            guard,
        ));
    Router::new()
        .route("/", get(pages::home))
        .route("/console.css", get(pages::stylesheet))
        .route("/inbox.js", get(pages::inbox_script))
        .route("/sign-in", get(signin::form).post(signin::submit))
        .route("/sign-in/continue", get(signin::continue_))
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/oidc/callback", get(oidc::callback))
        .route("/portal/oidc", get(oidc::start_for_portal))
        .route(
            "/sign-in/new-password",
            get(signin::new_password_form).post(signin::new_password),
        )
        .route(
            "/sign-in/setup",
            get(signin::setup_form).post(signin::setup),
        )
        .route("/sign-in/code", get(signin::code_form).post(signin::code))
        .route("/sign-out", post(signin::sign_out))
        .route("/report", get(concerns::from_block_page))
        .route("/review", get(reviews::from_block_page))
        .route("/reviews/new", get(reviews::new_form).post(reviews::create))
        .route("/concerns/new", get(concerns::new_form))
        .route("/concerns", post(concerns::create))
        .route("/concerns/mine", get(concerns::mine))
        .route("/concerns/{id}", get(concerns::receipt))
        .route("/training", get(training::home))
        .route("/training/{id}", get(training::course))
        .route("/training/{id}/quiz", post(training::quiz))
        .route(
            "/account/signing-key",
            get(signing::form).post(signing::submit),
        )
        .route(
            "/account/password",
            get(signin::change_password_form).post(signin::change_password),
        )
        .merge(safeguarding)
        .merge(admin)
        .merge(editors)
        .merge(overseers)
        .merge(readers)
        .merge(searchers)
        .fallback(pages::not_found)
        .with_state(console)
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    lookout_store::now_ms()
}
