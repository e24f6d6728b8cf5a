//! Users and signed-in addresses.

use std::net::IpAddr;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sqlx::Row;

use lookout_auth::Role;

use crate::{now_ms, Store, StoreError};

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Sign-in name, lower case.
    pub username: String,
    /// Full name, for the console.
    pub display_name: String,
    /// The group whose policy applies to the user.
    pub group: String,
    /// Whether the user has a password (users imported without one cannot sign in yet).
    pub has_password: bool,
    /// Disabled users cannot sign in.
    pub disabled: bool,
    /// What they may do in the console.
    pub role: Role,
    /// Where training reminders go (empty: none).
    pub email: String,
    /// Their team or department, for the training report (empty: none given).
    pub team: String,
}

/// A user to add or update.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name (stored lower case).
    pub username: String,
    /// Full name.
    pub display_name: String,
    /// Group name.
    pub group: String,
    /// Password, if one is set now.
    pub password: Option<String>,
    /// Console role: `None` keeps an existing user's role, and makes a new user a learner.
    pub role: Option<Role>,
    /// Email address for training reminders: `None` keeps an existing user's.
    pub email: Option<String>,
    /// Team or department: `None` keeps an existing user's.
    pub team: Option<String>,
}

/// A person as the organisation's directory or sign-in provider describes them.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryPerson<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    /// Their Lookout group (`None`: a record keeps its own; a new person cannot be added).
    pub group: Option<&'a str>,
    /// Their console role (`None`: a record keeps its own; a new person is a learner).
    pub role: Option<Role>,
    /// Their email address (`None`, or not an address: a record keeps its own).
    pub email: Option<&'a str>,
    /// Who vouched for them, the audit log's actor: `directory` (LDAP) or `oidc`.
    pub source: &'a str,
}

/// What became of a directory person's local record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryRecord {
    /// Created or brought up to date.
    Ready(User),
    /// A local account with a password holds the name: it is never taken over.
    LocalAccount,
    /// The record is disabled here.
    Disabled,
    /// No record yet, and no group to give one.
    NoGroup,
}

/// A user change that cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The user name is taken.
    #[error("a user named `{0}` already exists")]
    Exists(String),
    /// No such user.
    #[error("no user is named `{0}`")]
    NotFound(String),
    /// The user name cannot be used.
    #[error("user name `{0}` is not valid: use 1-64 letters, digits and . _ - @")]
    BadName(String),
    /// The password cannot be used.
    #[error("the password must be 8 to 1024 characters")]
    BadPassword,
    /// The email address cannot be used.
    #[error("`{0}` is not an email address (like name@college.ac.uk)")]
    BadEmail(String),
    /// The team name cannot be used.
    #[error("the team must be one line of at most 100 characters")]
    BadTeam,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        UserError::Store(e.into())
    }
}

/// Lower-cases and checks a user name.
pub fn normalize_username(name: &str) -> Result<String, UserError> {
    let n = name.trim().to_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    ok.then_some(n)
        .ok_or_else(|| UserError::BadName(name.to_owned()))
}

/// Checks that a password can be used (8 to 1024 characters).
pub fn check_password(password: &str) -> Result<(), UserError> {
    match password.chars().count() >= 8 && password.len() <= 1024 {
        true => Ok(()),
        false => Err(UserError::BadPassword),
    }
}

/// Trims and checks an email address (empty: none): one `@` with something either side, no
/// spaces or control characters, at most 254 bytes. The mail server has the last word.
pub fn check_email(email: &str) -> Result<String, UserError> {
    let e = email.trim();
    let ok = e.is_empty()
        || (e.len() <= 254
            && e.split('@').count() == 2
            && e.split('@').all(|p| !p.is_empty())
            && !e
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c)));
    ok.then(|| e.to_owned())
        .ok_or_else(|| UserError::BadEmail(email.to_owned()))
}

/// Trims and checks a team name (empty: none).
pub fn check_team(team: &str) -> Result<String, UserError> {
    let t = team.trim();
    (t.chars().count() <= 100 && !t.chars().any(char::is_control))
        .then(|| t.to_owned())
        .ok_or(UserError::BadTeam)
}

/// Whether `password` matches the argon2id PHC string `hash`, checked on a blocking thread (it
/// takes tens of milliseconds by design).
pub(crate) async fn password_matches(hash: String, password: &str) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// `Ok` when an update changed the user's row, else the user does not exist.
pub(crate) fn changed_one(rows: u64, username: String) -> Result<(), UserError> {
    match rows {
        0 => Err(UserError::NotFound(username)),
        _ => Ok(()),
    }
}

pub(crate) fn hash_password(password: &str) -> Result<String, UserError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UserError::BadPassword)
}

pub(crate) fn user_from_row(row: &sqlx::any::AnyRow) -> User {
    User {
        username: row.get("username"),
        display_name: row.get("display_name"),
        group: row.get("group_name"),
        has_password: row.get::<Option<String>, _>("password_hash").is_some(),
        disabled: row.get::<i64, _>("disabled") != 0,
        // The column is only written from `Role::slug`; an unknown value (a hand edit) gets
        // the least privilege.
        role: row
            .get::<String, _>("role")
            .parse()
            .unwrap_or(Role::Learner),
        email: row.get("email"),
        team: row.get("team"),
    }
}

pub(crate) const USER_COLUMNS: &str =
    "username, display_name, group_name, password_hash, disabled, role, email, team";

impl Store {
    /// Adds a user; the password is hashed with argon2id.
    pub async fn add_user(&self, user: &NewUser) -> Result<User, UserError> {
        let username = normalize_username(&user.username)?;
        let hash = user.password.as_deref().map(hash_password).transpose()?;
        let email = check_email(user.email.as_deref().unwrap_or(""))?;
        let team = check_team(user.team.as_deref().unwrap_or(""))?;
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO users (username, display_name, group_name, password_hash, disabled, created_ms, updated_ms, role, email, team) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9)",
        )
        .bind(&username)
        .bind(user.display_name.trim())
        .bind(&user.group)
        .bind(&hash)
        .bind(now)
        .bind(now)
        .bind(user.role.unwrap_or(Role::Learner).slug())
        .bind(&email)
        .bind(&team)
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(UserError::Exists(username))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(User {
                username,
                display_name: user.display_name.trim().to_owned(),
                group: user.group.clone(),
                has_password: hash.is_some(),
                disabled: false,
                role: user.role.unwrap_or(Role::Learner),
                email,
                team,
            }),
        }
    }

    /// Adds or updates many users in one transaction: all are stored or none. A user that
    /// exists gets the new name and group, and the new password if one is given. Returns
    /// (added, updated).
    pub async fn import_users(&self, users: &[NewUser]) -> Result<(usize, usize), UserError> {
        let mut rows = Vec::with_capacity(users.len());
        for u in users {
            let username = normalize_username(&u.username)?;
            let hash = u.password.as_deref().map(hash_password).transpose()?;
            let email = u.email.as_deref().map(check_email).transpose()?;
            let team = u.team.as_deref().map(check_team).transpose()?;
            rows.push((username, u, hash, email, team));
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (mut added, mut updated) = (0, 0);
        for (username, u, hash, email, team) in rows {
            let changed = sqlx::query(
                "UPDATE users SET display_name = $1, group_name = $2, \
                 password_hash = COALESCE($3, password_hash), role = COALESCE($4, role), \
                 email = COALESCE($5, email), team = COALESCE($6, team), \
                 updated_ms = $7 WHERE username = $8",
            )
            .bind(u.display_name.trim())
            .bind(&u.group)
            .bind(&hash)
            .bind(u.role.map(Role::slug))
            .bind(&email)
            .bind(&team)
            .bind(now)
            .bind(&username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                updated += 1;
                continue;
            }
            sqlx::query(
                "INSERT INTO users (username, display_name, group_name, password_hash, disabled, created_ms, updated_ms, role, email, team) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9)",
            )
            .bind(&username)
            .bind(u.display_name.trim())
            .bind(&u.group)
            .bind(&hash)
            .bind(now)
            .bind(now)
            .bind(u.role.unwrap_or(Role::Learner).slug())
            .bind(email.as_deref().unwrap_or(""))
            .bind(team.as_deref().unwrap_or(""))
            .execute(&mut *tx)
            .await?;
            added += 1;
        }
        tx.commit().await?;
        Ok((added, updated))
    }

    /// Sets a user's email address and team (each checked; empty: none).
    pub async fn set_contact(
        &self,
        username: &str,
        email: &str,
        team: &str,
    ) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let email = check_email(email)?;
        let team = check_team(team)?;
        let n = sqlx::query(
            "UPDATE users SET email = $1, team = $2, updated_ms = $3 WHERE username = $4",
        )
        .bind(&email)
        .bind(&team)
        .bind(now_ms())
        .bind(&username)
        .execute(&self.pool)
        .await?
        .rows_affected();
        changed_one(n, username)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    /// One user.
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.account(username).await?.map(|a| a.user))
    }

    /// Disables (signing them out everywhere, and flagging their admin rights on registered
    /// social-media accounts for revocation) or enables a user; how many admin rights were
    /// flagged.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<u64, UserError> {
        let username = normalize_username(username)?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET disabled = $1, updated_ms = $2 WHERE username = $3")
            .bind(i64::from(disabled))
            .bind(now_ms())
            .bind(&username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(UserError::NotFound(username));
        }
        let mut flagged = 0;
        if disabled {
            sqlx::query("DELETE FROM ip_sessions WHERE username = $1")
                .bind(&username)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE username = $1")
                .bind(&username)
                .execute(&mut *tx)
                .await?;
            // Their admin rights on the organisation's social-media accounts are to be taken
            // away on each platform: flagged until someone records that they were.
            flagged = crate::registers::flag_admin_rights(&mut tx, &username).await?;
        }
        tx.commit().await?;
        Ok(flagged)
    }

    /// Sets a user's password.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let hash = hash_password(password)?;
        let n =
            sqlx::query("UPDATE users SET password_hash = $1, updated_ms = $2 WHERE username = $3")
                .bind(hash)
                .bind(now_ms())
                .bind(&username)
                .execute(&self.pool)
                .await?
                .rows_affected();
        changed_one(n, username)
    }

    /// The user, if `password` is theirs and they are enabled. The argon2id check runs on a
    /// blocking thread (it takes tens of milliseconds by design).
    pub async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let Ok(username) = normalize_username(username) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1 AND disabled = 0"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let Some(hash) = row.get::<Option<String>, _>("password_hash") else {
            return Ok(None);
        };
        let ok = password_matches(hash, password).await;
        Ok(ok.then(|| user_from_row(&row)))
    }

    /// The local record of a person the organisation's directory (LDAP) or sign-in provider
    /// (OpenID Connect) vouched for: created (no password) the first time they sign in, their
    /// name, group, console role and email kept in step with what the directory says after
    /// (each `None` keeps what the record has). A local account with a password is never
    /// taken over, and a disabled record stays shut. A new record, a changed group and a
    /// changed role are on the audit log, by `person.source`.
    pub async fn directory_user(
        &self,
        person: &DirectoryPerson<'_>,
        client_ip: &str,
    ) -> Result<DirectoryRecord, UserError> {
        let username = normalize_username(person.username)?;
        let display_name = person.display_name.trim();
        let email = person.email.and_then(|e| check_email(e).ok());
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(&username)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now_ms();
        let audit = |action: &str, detail: String| crate::AuditEntry {
            actor: person.source.into(),
            action: action.into(),
            target: format!("user:{username}"),
            detail,
            client_ip: client_ip.to_owned(),
        };
        let user = match row {
            Some(row) => {
                let user = user_from_row(&row);
                if user.has_password {
                    return Ok(DirectoryRecord::LocalAccount);
                }
                if user.disabled {
                    return Ok(DirectoryRecord::Disabled);
                }
                let now_is = User {
                    group: person.group.unwrap_or(&user.group).to_owned(),
                    display_name: display_name.to_owned(),
                    role: person.role.unwrap_or(user.role),
                    email: email.clone().unwrap_or_else(|| user.email.clone()),
                    ..user.clone()
                };
                if now_is == user {
                    return Ok(DirectoryRecord::Ready(user));
                }
                sqlx::query(
                    "UPDATE users SET group_name = $1, display_name = $2, role = $3, email = $4, updated_ms = $5 WHERE username = $6",
                )
                .bind(&now_is.group)
                .bind(&now_is.display_name)
                .bind(now_is.role.slug())
                .bind(&now_is.email)
                .bind(now)
                .bind(&username)
                .execute(&mut *tx)
                .await?;
                if user.group != now_is.group {
                    let detail = format!("group {} -> {}", user.group, now_is.group);
                    crate::audit::append(&mut tx, &audit("user.directory-group", detail)).await?;
                }
                if user.role != now_is.role {
                    let detail = format!("role {} -> {}", user.role.slug(), now_is.role.slug());
                    crate::audit::append(&mut tx, &audit("user.directory-role", detail)).await?;
                }
                now_is
            }
            None => {
                let Some(group) = person.group else {
                    return Ok(DirectoryRecord::NoGroup);
                };
                let role = person.role.unwrap_or(Role::Learner);
                let email = email.unwrap_or_default();
                sqlx::query(
                    "INSERT INTO users (username, display_name, group_name, password_hash, disabled, created_ms, updated_ms, role, email, team) \
                     VALUES ($1, $2, $3, NULL, 0, $4, $5, $6, $7, '')",
                )
                .bind(&username)
                .bind(display_name)
                .bind(group)
                .bind(now)
                .bind(now)
                .bind(role.slug())
                .bind(&email)
                .execute(&mut *tx)
                .await?;
                let detail = match person.role {
                    Some(r) => format!("group {group}, role {}", r.slug()),
                    None => format!("group {group}"),
                };
                crate::audit::append(&mut tx, &audit("user.directory-add", detail)).await?;
                User {
                    username: username.clone(),
                    display_name: display_name.to_owned(),
                    group: group.to_owned(),
                    has_password: false,
                    disabled: false,
                    role,
                    email,
                    team: String::new(),
                }
            }
        };
        tx.commit().await?;
        Ok(DirectoryRecord::Ready(user))
    }

    /// Records that `username` is signed in at `ip` until `expires_ms`.
    pub async fn sign_in_address(
        &self,
        ip: IpAddr,
        username: &str,
        expires_ms: i64,
    ) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let mut tx = self.pool.begin().await?;
        crate::briefings::bind_address(&mut tx, ip, &username, expires_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signs out whoever is signed in at `ip`; whether someone was.
    pub async fn sign_out_address(&self, ip: IpAddr) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM ip_sessions WHERE ip = $1")
            .bind(ip.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The enabled user signed in at `ip` at `now_ms`, if any.
    pub async fn user_at_address(
        &self,
        ip: IpAddr,
        now_ms: i64,
    ) -> Result<Option<User>, StoreError> {
        // Built once: the proxy asks this for every address it has not seen in a minute.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT u.{} FROM ip_sessions s JOIN users u ON u.username = s.username \
                 WHERE s.ip = $1 AND s.expires_ms > $2 AND u.disabled = 0",
                USER_COLUMNS.replace(", ", ", u.")
            )
        });
        let row = sqlx::query(&SQL)
            .bind(ip.to_string())
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row))
    }
}
