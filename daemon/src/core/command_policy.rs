//! Who may run their own programs on this daemon's machines. A command run executes whatever
//! its spec names as the daemon's user, so it is off unless `[commands]` in caudad.toml turns it
//! on, and then open to every authenticated user or only to those listed.

use super::{CoreError, Result};

/// `[commands]` as the core applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandPolicy {
    pub enabled: bool,
    /// Users who may submit command runs; `None` = every user (admins always may).
    pub users: Option<Vec<String>>,
    /// Users with `admin = true` in `[auth]`.
    pub admins: Vec<String>,
}

impl CommandPolicy {
    /// Refuses a user who may not submit command runs.
    pub fn check_user(&self, user: &str) -> Result<()> {
        let allowed = self.enabled
            && (self.admins.iter().any(|a| a == user)
                || self
                    .users
                    .as_ref()
                    .is_none_or(|u| u.iter().any(|n| n == user)));
        if allowed {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                user: user.to_string(),
                reason: "may not submit command runs (`[commands] users` in caudad.toml)".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_users_and_admins_may_run_commands() {
        let open = CommandPolicy {
            enabled: true,
            ..CommandPolicy::default()
        };
        assert!(open.check_user("ada").is_ok());
        let listed = CommandPolicy {
            enabled: true,
            users: Some(vec!["ada".into()]),
            admins: vec!["root".into()],
        };
        assert!(listed.check_user("ada").is_ok() && listed.check_user("root").is_ok());
        assert!(matches!(
            listed.check_user("bob"),
            Err(CoreError::Forbidden { .. })
        ));
        assert!(CommandPolicy::default().check_user("root").is_err());
    }
}
