//! Users from a CSV file (`lookout user import`): parsed and checked before anything is stored.

use crate::{NewUser, Role};

/// Reads and checks every row of a users CSV file (`username`, `group` and optional `role`,
/// `name`, `password`, `email`, `team` columns, found by header, any order); all problems are reported together,
/// as `name:line: problem`, and then nothing is returned. `groups` are the group names that
/// exist.
pub fn users_from_csv(shown: &str, data: &[u8], groups: &[&str]) -> Result<Vec<NewUser>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| format!("{shown}: {e}"))?
        .clone();
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let h = h.trim_start_matches('\u{feff}').to_ascii_lowercase();
            names.contains(&h.as_str())
        })
    };
    let user_col = find(&["username", "user", "login", "user name"]);
    let group_col = find(&["group"]);
    let role_col = find(&["role", "console_role", "console role"]);
    let name_col = find(&[
        "name",
        "display_name",
        "display name",
        "full name",
        "full_name",
    ]);
    let pass_col = find(&["password"]);
    let email_col = find(&["email", "e-mail", "email address", "mail"]);
    let team_col = find(&["team", "department"]);
    let (Some(user_col), Some(group_col)) = (user_col, group_col) else {
        return Err(format!(
            "{shown}:1: the header row needs `username` and `group` columns (found: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        ));
    };
    let mut users = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("{shown}:{line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let at = format!("{shown}:{line}: ");
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_owned();
        let username = get(Some(user_col));
        let group = get(Some(group_col));
        if username.is_empty() {
            problems.push(format!("{at}the username is empty"));
            continue;
        }
        if !groups.contains(&group.as_str()) {
            problems.push(format!(
                "{at}no group is named `{group}` (groups: {})",
                groups.join(", ")
            ));
        }
        if let Some(first) = seen.insert(username.to_lowercase(), line) {
            problems.push(format!("{at}`{username}` is also on line {first}"));
        }
        let password = Some(get(pass_col)).filter(|p| !p.is_empty());
        // The store's own rules, so that a row passing here is never refused later.
        if let Some(Err(e)) = password.as_deref().map(crate::check_password) {
            problems.push(format!("{at}{e}"));
        }
        if let Err(e) = crate::normalize_username(&username) {
            problems.push(format!("{at}{e}"));
        }
        let email = email_col.map(|_| get(email_col));
        if let Some(Err(e)) = email.as_deref().map(crate::check_email) {
            problems.push(format!("{at}{e}"));
        }
        let team = team_col.map(|_| get(team_col));
        if let Some(Err(e)) = team.as_deref().map(crate::check_team) {
            problems.push(format!("{at}{e}"));
        }
        let role = match Some(get(role_col)).filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => match r.parse::<Role>() {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(format!("{at}{e}"));
                    None
                }
            },
        };
        users.push(NewUser {
            username,
            display_name: get(name_col),
            group,
            password,
            role,
            email,
            team,
        });
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(format!(
            "nothing was imported: {n} problem(s)\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok(users)
}
