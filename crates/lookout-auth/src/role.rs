//! Console roles.

use std::fmt;
use std::str::FromStr;

/// What a person may do in the console. Separate from their filtering group: a learner under
/// 18 and an adult learner have the same console role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A learner or customer: reports concerns, sees their own receipts.
    Learner,
    /// A member of staff: reports concerns, sees what they reported.
    Staff,
    /// A member of the Designated Safeguarding Lead team: the safeguarding file.
    Dsl,
    /// The DSL supervisor (Designated Safeguarding Manager): the file, and co-signs checks.
    Supervisor,
    /// The Head of Service IT: users, overblocking reviews, the audit log.
    ItAdmin,
    /// A governor: read-only reports.
    Governor,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 6] = [
        Role::Learner,
        Role::Staff,
        Role::Governor,
        Role::Dsl,
        Role::Supervisor,
        Role::ItAdmin,
    ];

    /// The name used in configuration, on the command line and in the database.
    pub fn slug(self) -> &'static str {
        match self {
            Role::Learner => "learner",
            Role::Staff => "staff",
            Role::Dsl => "dsl",
            Role::Supervisor => "supervisor",
            Role::ItAdmin => "it-admin",
            Role::Governor => "governor",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Learner => "Learner or customer",
            Role::Staff => "Staff",
            Role::Dsl => "Designated Safeguarding Lead team",
            Role::Supervisor => "DSL supervisor (Designated Safeguarding Manager)",
            Role::ItAdmin => "IT admin (Head of Service IT)",
            Role::Governor => "Governor (read-only reports)",
        }
    }

    /// Whether signing in needs a two-factor code as well as the password.
    pub fn needs_two_factor(self) -> bool {
        matches!(self, Role::Dsl | Role::Supervisor | Role::ItAdmin)
    }

    /// Whether the role works in the safeguarding file (alerts, incidents, checks).
    pub fn is_safeguarding(self) -> bool {
        matches!(self, Role::Dsl | Role::Supervisor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A role name that is not one of Lookout's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (roles: learner, staff, dsl, supervisor, it-admin, governor)")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Role, ParseRoleError> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Role::ALL
            .into_iter()
            .find(|r| r.slug() == s)
            .or(match s.as_str() {
                "customer" => Some(Role::Learner),
                "dsm" => Some(Role::Supervisor),
                "admin" => Some(Role::ItAdmin),
                _ => None,
            })
            .ok_or(ParseRoleError(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_aliases() {
        for r in Role::ALL {
            assert_eq!(r.slug().parse::<Role>(), Ok(r));
        }
        let table = [
            ("IT_ADMIN", Ok(Role::ItAdmin)),
            ("customer", Ok(Role::Learner)),
            ("DSM", Ok(Role::Supervisor)),
            ("root", Err(ParseRoleError("root".into()))),
        ];
        for (input, want) in table {
            assert_eq!(input.parse::<Role>(), want, "{input}");
        }
        let two_factor: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.needs_two_factor())
            .collect();
        assert_eq!(two_factor, [Role::Dsl, Role::Supervisor, Role::ItAdmin]);
    }
}
