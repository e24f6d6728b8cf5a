//! The console's accounts: roles, sign-in bookkeeping (failures, lockout, two-factor), sessions
//! and signing keys.

use std::sync::LazyLock;

use lookout_auth::{Role, SealedKey};
use sqlx::Row;

use crate::users::{hash_password, normalize_username, USER_COLUMNS};
use crate::{now_ms, Store, StoreError, User, UserError};

/// Consecutive failed sign-ins (password or code) that lock an account.
pub const LOCK_AFTER: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_MS: i64 = 15 * 60 * 1000;

/// What checking a password said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Right password, account enabled and not locked.
    Ok(Box<Account>),
    /// Unknown user, no password set, disabled, or wrong password (not told apart, so that
    /// the answer does not reveal which accounts exist).
    Refused,
    /// Too many failures: locked until this time (ms).
    Locked(i64),
}

/// A user with their console settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    /// Base32 two-factor secret, once set up.
    pub totp_secret: Option<String>,
    pub totp_last_step: i64,
    pub must_change_password: bool,
    /// Locked after failed sign-ins until this time (0: not locked).
    pub locked_until_ms: i64,
}

impl Account {
    /// Whether two-factor must be set up before the console opens.
    pub fn needs_totp_setup(&self) -> bool {
        self.user.role.needs_two_factor() && self.totp_secret.is_none()
    }
}

/// A console session as stored (the id itself is only in the browser's cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub account: Account,
    /// `password` (second factor still to do) or `full`.
    pub stage: String,
    pub csrf: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub username: &'a str,
    pub stage: &'a str,
    pub csrf: &'a str,
    pub expires_ms: i64,
    pub client_ip: &'a str,
    pub user_agent: &'a str,
}

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: i64,
    pub username: String,
    pub key: SealedKey,
    pub created_ms: i64,
    pub retired_ms: Option<i64>,
}

/// A hash to check unknown users' passwords against, so that they take as long as known ones.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not anyone's password").unwrap_or_default());

const ACCOUNT_COLUMNS: &str =
    "totp_secret, totp_last_step, failed_sign_ins, locked_until_ms, must_change_password";

fn account_from_row(row: &sqlx::any::AnyRow) -> Account {
    Account {
        user: crate::users::user_from_row(row),
        totp_secret: row.get("totp_secret"),
        totp_last_step: row.get("totp_last_step"),
        must_change_password: row.get::<i64, _>("must_change_password") != 0,
        locked_until_ms: row.get("locked_until_ms"),
    }
}

impl Store {
    /// A user and their console settings.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let Ok(username) = normalize_username(username) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {ACCOUNT_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(account_from_row))
    }

    /// Every user with their console settings, by name.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {ACCOUNT_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    /// Checks a console sign-in's password, counting failures: [`LOCK_AFTER`] in a row lock
    /// the account for [`LOCK_MS`]. Unknown users cost the same argon2id check as known ones.
    pub async fn check_sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<PasswordCheck, StoreError> {
        let row = match normalize_username(username) {
            Ok(name) => {
                sqlx::query(&format!(
                    "SELECT {USER_COLUMNS}, {ACCOUNT_COLUMNS} FROM users WHERE username = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            }
            Err(_) => None,
        };
        let account = row.as_ref().map(account_from_row);
        let row_hash: Option<String> = row.as_ref().and_then(|r| r.get("password_hash"));
        if let Some(a) = account.as_ref().filter(|a| a.locked_until_ms > now_ms()) {
            return Ok(PasswordCheck::Locked(a.locked_until_ms));
        }
        // Unknown users cost the same argon2id check as known ones.
        let hash = row_hash.clone().unwrap_or_else(|| DUMMY_HASH.clone());
        let right = crate::users::password_matches(hash, password).await;
        match account {
            Some(a) if right && row_hash.is_some() && !a.user.disabled => {
                Ok(PasswordCheck::Ok(a.into()))
            }
            Some(a) => Ok(match self.sign_in_failed(&a.user.username).await? {
                Some(until) => PasswordCheck::Locked(until),
                None => PasswordCheck::Refused,
            }),
            None => Ok(PasswordCheck::Refused),
        }
    }

    /// Counts a failed password or code; returns the lock time if this failure locked the
    /// account.
    pub async fn sign_in_failed(&self, username: &str) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE username = $1 \
             RETURNING failed_sign_ins",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        if failures.unwrap_or(0) < LOCK_AFTER {
            return Ok(None);
        }
        let until = now + LOCK_MS;
        sqlx::query(
            "UPDATE users SET failed_sign_ins = 0, locked_until_ms = $1 WHERE username = $2",
        )
        .bind(until)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(Some(until))
    }

    /// Clears the failure count after a complete sign-in.
    pub async fn sign_in_succeeded(&self, username: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET failed_sign_ins = 0, locked_until_ms = 0 WHERE username = $1",
        )
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Unlocks a locked account (IT admin).
    pub async fn unlock_account(&self, username: &str) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let n = sqlx::query(
            "UPDATE users SET failed_sign_ins = 0, locked_until_ms = 0 WHERE username = $1",
        )
        .bind(&username)
        .execute(&self.pool)
        .await?
        .rows_affected();
        crate::users::changed_one(n, username)
    }

    /// Sets a user's console role.
    pub async fn set_role(&self, username: &str, role: Role) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let n = sqlx::query("UPDATE users SET role = $1, updated_ms = $2 WHERE username = $3")
            .bind(role.slug())
            .bind(now_ms())
            .bind(&username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        crate::users::changed_one(n, username)
    }

    /// Enabled users with `role`.
    pub async fn users_with_role(&self, role: Role) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE role = $1 AND disabled = 0 ORDER BY username"
        ))
        .bind(role.slug())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(crate::users::user_from_row).collect())
    }

    /// Sets (or with `None` clears) a user's two-factor secret.
    pub async fn set_totp_secret(
        &self,
        username: &str,
        secret: Option<&str>,
    ) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let n = sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_last_step = 0, updated_ms = $2 WHERE username = $3",
        )
        .bind(secret)
        .bind(now_ms())
        .bind(&username)
        .execute(&self.pool)
        .await?
        .rows_affected();
        crate::users::changed_one(n, username)
    }

    /// Records that the code of time step `step` was used; false if it (or a later one)
    /// already was — the same code cannot sign in twice.
    pub async fn use_totp_step(&self, username: &str, step: u64) -> Result<bool, StoreError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE username = $2 AND totp_last_step < $3",
        )
        .bind(step)
        .bind(username)
        .bind(step)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Sets a password the user must change at their next sign-in (a one-time password).
    pub async fn set_temporary_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), UserError> {
        self.set_password(username, password).await?;
        sqlx::query("UPDATE users SET must_change_password = 1 WHERE username = $1")
            .bind(normalize_username(username)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's own password change: the new password, and the signing key re-sealed under
    /// it, in one transaction.
    pub async fn change_password(
        &self,
        username: &str,
        password: &str,
        resealed: Option<&SealedKey>,
    ) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let hash = hash_password(password)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = 0, updated_ms = $2 WHERE username = $3",
        )
        .bind(hash)
        .bind(now_ms())
        .bind(&username)
        .execute(&mut *tx)
        .await?;
        if let Some(key) = resealed {
            sqlx::query(
                "UPDATE signing_keys SET sealed_secret = $1 WHERE username = $2 AND public_key = $3 AND retired_ms IS NULL",
            )
            .bind(&key.sealed)
            .bind(&username)
            .bind(&key.public)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- sessions ----

    /// Stores a new session.
    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, username, stage, csrf, created_ms, last_seen_ms, expires_ms, client_ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(s.id_hash)
        .bind(s.username)
        .bind(s.stage)
        .bind(s.csrf)
        .bind(now)
        .bind(now)
        .bind(s.expires_ms)
        .bind(s.client_ip)
        .bind(s.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session with this id hash, if its user is still enabled.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT s.id_hash, s.stage, s.csrf, s.created_ms, s.last_seen_ms, s.expires_ms, \
             u.{}, u.{} \
             FROM console_sessions s JOIN users u ON u.username = s.username \
             WHERE s.id_hash = $1 AND s.expires_ms > $2 AND u.disabled = 0",
            USER_COLUMNS.replace(", ", ", u."),
            ACCOUNT_COLUMNS.replace(", ", ", u."),
        ))
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Session {
            id_hash: r.get("id_hash"),
            account: account_from_row(&r),
            stage: r.get("stage"),
            csrf: r.get("csrf"),
            created_ms: r.get("created_ms"),
            last_seen_ms: r.get("last_seen_ms"),
            expires_ms: r.get("expires_ms"),
        }))
    }

    /// Notes activity on a session and moves its idle expiry.
    pub async fn touch_session(
        &self,
        id_hash: &str,
        now: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_ms = $1, expires_ms = $2 WHERE id_hash = $3",
        )
        .bind(now)
        .bind(expires_ms)
        .bind(id_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user (password change, disabling), but `keep`.
    pub async fn end_sessions_of(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE username = $1 AND id_hash <> $2")
                .bind(username)
                .bind(keep.unwrap_or(""))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Removes expired sessions.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE expires_ms <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    // ---- signing keys ----

    /// The user's current signing key.
    pub async fn signing_key(&self, username: &str) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, public_key, sealed_secret, created_ms, retired_ms FROM signing_keys \
             WHERE username = $1 AND retired_ms IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_from_row))
    }

    /// A signing key by its id (current or retired), for verifying old signatures.
    pub async fn signing_key_by_id(&self, id: i64) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, public_key, sealed_secret, created_ms, retired_ms FROM signing_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_from_row))
    }

    /// Makes `key` the user's signing key, retiring (and forgetting the sealed secret of) any
    /// earlier one; the public halves stay, so earlier signatures still verify.
    pub async fn replace_signing_key(
        &self,
        username: &str,
        key: &SealedKey,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_ms = $1, sealed_secret = NULL WHERE username = $2 AND retired_ms IS NULL",
        )
        .bind(now)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO signing_keys (username, public_key, sealed_secret, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(&key.public)
        .bind(&key.sealed)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}

fn key_from_row(r: &sqlx::any::AnyRow) -> StoredKey {
    StoredKey {
        id: r.get("id"),
        username: r.get("username"),
        key: SealedKey {
            public: r.get("public_key"),
            sealed: r
                .get::<Option<String>, _>("sealed_secret")
                .unwrap_or_default(),
        },
        created_ms: r.get("created_ms"),
        retired_ms: r.get("retired_ms"),
    }
}
