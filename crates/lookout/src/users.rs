//! `lookout user ...`: the user store the proxy signs people in against.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use lookout_config::Config;
use lookout_store::{AuditEntry, NewUser, Role};

use crate::UsageError;

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user.
    Add {
        /// Sign-in name (letters, digits, `.`, `_`, `-`, `@`; stored lower case).
        username: String,
        /// The group whose policy applies to them.
        #[arg(long, short)]
        group: String,
        /// Full name, for the console.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input (at least 8 characters).
        #[arg(long)]
        password_stdin: bool,
        /// Console role: learner (also customers), staff, dsl, supervisor, it-admin, governor.
        #[arg(long, default_value = "learner")]
        role: Role,
    },
    /// Set a user's console role (learner, staff, dsl, supervisor, it-admin, governor).
    Role {
        /// Sign-in name.
        username: String,
        /// The new role.
        role: Role,
    },
    /// Unlock an account locked after too many failed console sign-ins.
    Unlock {
        /// Sign-in name.
        username: String,
    },
    /// Clear a user's two-factor set-up (a lost phone): they set it up again at next sign-in.
    ResetTwoFactor {
        /// Sign-in name.
        username: String,
    },
    /// List users.
    List,
    /// Stop a user signing in (and sign them out everywhere).
    Disable {
        /// Sign-in name.
        username: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        /// Sign-in name.
        username: String,
    },
    /// Set a user's password, read from the first line of standard input.
    Password {
        /// Sign-in name.
        username: String,
    },
    /// Add or update users from a CSV file with a header row: `username` and `group`
    /// columns, optional `name`, `password` and `role` (console role; kept for existing users
    /// when absent). Every row is checked first; one bad row and
    /// nothing changes.
    Import {
        /// The CSV file (e.g. the MIS export).
        file: PathBuf,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn check_group(config: &Config, group: &str, at: &str) -> Result<(), String> {
    if config.groups.contains_key(group) {
        return Ok(());
    }
    let known: Vec<&str> = config.groups.keys().map(String::as_str).collect();
    Err(format!(
        "{at}no group is named `{group}` (groups: {})",
        known.join(", ")
    ))
}

pub(crate) fn run(config_path: Option<&Path>, command: UserCommand) -> anyhow::Result<ExitCode> {
    crate::serve::with_store(config_path, |config, store| async move {
        command_on(&config, &store, command).await
    })
}

async fn command_on(
    config: &Config,
    store: &lookout_store::Store,
    command: UserCommand,
) -> anyhow::Result<ExitCode> {
    let usage = |e: lookout_store::UserError| -> anyhow::Error {
        match e {
            lookout_store::UserError::Store(e) => e.into(),
            other => UsageError(other.to_string()).into(),
        }
    };
    match command {
        UserCommand::Add {
            username,
            group,
            name,
            password_stdin,
            role,
        } => {
            check_group(config, &group, "").map_err(UsageError)?;
            let password = password_stdin.then(read_password).transpose()?;
            let user = store
                .add_user(&NewUser {
                    username,
                    display_name: name,
                    group,
                    password,
                    role: Some(role),
                    email: None,
                    team: None,
                })
                .await
                .map_err(usage)?;
            store
                .audit(
                    &cli_audit("user.add", &user.username)
                        .detail(format!("group {}, role {}", user.group, user.role)),
                )
                .await?;
            println!(
                "added {} ({}, {}){}",
                user.username,
                user.group,
                user.role,
                if user.has_password {
                    ""
                } else {
                    "; no password yet: set one with `lookout user password`"
                }
            );
        }
        UserCommand::List => {
            let users = store.users().await?;
            println!(
                "{:<24} {:<14} {:<11} {:<9} name",
                "username", "group", "role", "status"
            );
            for u in &users {
                let status = match (u.disabled, u.has_password) {
                    (true, _) => "disabled",
                    (false, false) => "no-pass",
                    (false, true) => "active",
                };
                println!(
                    "{:<24} {:<14} {:<11} {:<9} {}",
                    u.username,
                    u.group,
                    u.role.slug(),
                    status,
                    u.display_name
                );
            }
            println!("{} user(s)", users.len());
        }
        UserCommand::Role { username, role } => {
            store.set_role(&username, role).await.map_err(usage)?;
            store
                .audit(&cli_audit("user.role", &username).detail(format!("role {role}")))
                .await?;
            println!("{username} is now {}", role.label());
        }
        UserCommand::Unlock { username } => {
            store.unlock_account(&username).await.map_err(usage)?;
            store.audit(&cli_audit("user.unlock", &username)).await?;
            println!("unlocked {username}");
        }
        UserCommand::ResetTwoFactor { username } => {
            store
                .set_totp_secret(&username, None)
                .await
                .map_err(usage)?;
            store
                .audit(&cli_audit("user.reset-two-factor", &username))
                .await?;
            println!("{username} will set up two-factor again at their next sign-in");
        }
        UserCommand::Disable { username } => {
            let flagged = store.set_disabled(&username, true).await.map_err(usage)?;
            store.audit(&cli_audit("user.disable", &username)).await?;
            println!("disabled {username}");
            if flagged > 0 {
                println!("{username} holds admin rights on {flagged} registered social-media account(s): take them away on each platform, then mark them revoked in the console's Social-media register");
            }
        }
        UserCommand::Enable { username } => {
            store.set_disabled(&username, false).await.map_err(usage)?;
            store.audit(&cli_audit("user.enable", &username)).await?;
            println!("enabled {username}");
        }
        UserCommand::Password { username } => {
            let password = read_password()?;
            store
                .set_password(&username, &password)
                .await
                .map_err(usage)?;
            store.audit(&cli_audit("user.password", &username)).await?;
            println!("password set for {username}");
        }
        UserCommand::Import { file } => {
            let users = read_csv(config, &file).map_err(UsageError)?;
            let (added, updated) = store.import_users(&users).await.map_err(usage)?;
            store
                .audit(&cli_audit("user.import", "users").detail(format!(
                    "{}: {added} added, {updated} updated",
                    file.display()
                )))
                .await?;
            println!(
                "{}: {added} user(s) added, {updated} updated",
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Who acts on the command line: `cli:` and the operating-system user.
pub(crate) fn cli_actor() -> String {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{os_user}")
}

/// An audit entry for a change made on the command line, by the operating-system user.
pub(crate) fn cli_audit(action: &str, username: &str) -> AuditEntry {
    AuditEntry::new(&cli_actor(), action, format!("user:{username}"))
}

/// Reads `file` and checks every row (`lookout_store::users_from_csv`).
fn read_csv(config: &Config, file: &Path) -> Result<Vec<NewUser>, String> {
    let shown = file.display().to_string();
    let data = std::fs::read(file).map_err(|e| format!("{shown}: {e}"))?;
    let groups: Vec<&str> = config.groups.keys().map(String::as_str).collect();
    lookout_store::users_from_csv(&shown, &data, &groups)
}
