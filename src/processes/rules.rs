//! Who may do what with processes: pure functions of the caller and the command (or
//! the stored process it names), which `Processes` applies before it acts, so that a
//! unit test reaches every rule without a server.

use std::sync::Arc;

use super::{ListProcesses, ProcessError, StartProcess};
use crate::auth::Caller;
use crate::email::Email;
use crate::ownership::{self, AnotherOwner};

/// The definitions users may start (`startable_definitions`); admins may start any.
#[derive(Clone, Debug, Default)]
pub struct StartPolicy {
    startable: Arc<[String]>,
}

impl StartPolicy {
    pub fn new(startable: Vec<String>) -> Self {
        Self {
            startable: startable.into(),
        }
    }

    /// The definitions `caller` may choose from: `None` when any.
    pub fn startable_by(&self, caller: &Caller) -> Option<&[String]> {
        (!caller.admin).then_some(&self.startable)
    }

    /// Whether `caller` may start `command`: a definition it may start, for itself
    /// (or for anyone, as an admin).
    pub fn may_start(&self, caller: &Caller, command: &StartProcess) -> Result<(), ProcessError> {
        if let Some(startable) = self.startable_by(caller)
            && !startable.contains(&command.definition_key)
        {
            return Err(ProcessError::PermissionDenied(format!(
                "users may not start process definition {:?}",
                command.definition_key
            )));
        }
        if !caller.may_act_for(&command.business_key) {
            return Err(ProcessError::PermissionDenied(
                "users start processes only with their own email as business key".into(),
            ));
        }
        Ok(())
    }
}

/// The business key a list is narrowed to: users see only their own processes (and
/// may not name another's key), admins whichever key they name, or all.
pub fn listed_business_key(
    caller: &Caller,
    command: &ListProcesses,
) -> Result<Option<Email>, ProcessError> {
    ownership::listed_owner(caller, command.business_key.as_ref()).map_err(|AnotherOwner| {
        ProcessError::PermissionDenied("users list only their own processes".into())
    })
}

/// Whether `caller` sees the process of `business_key`: its own, or any as an admin.
/// Another user's process answers NOT_FOUND, so that its existence does not leak.
pub fn may_see(caller: &Caller, business_key: &str) -> bool {
    ownership::sees(caller, business_key)
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn caller(email: &str, admin: bool) -> Caller {
        Caller {
            email: Email::parse(email).unwrap(),
            user_id: email.into(),
            groups: Vec::new(),
            worker: false,
            admin,
            expires_at: None,
        }
    }

    fn start(definition_key: &str, business_key: &str) -> StartProcess {
        StartProcess {
            definition_key: definition_key.into(),
            business_key: Email::parse(business_key).unwrap(),
            variables: Map::new(),
            request_id: None,
        }
    }

    fn list(business_key: Option<&str>) -> ListProcesses {
        ListProcesses {
            business_key: business_key.map(|key| Email::parse(key).unwrap()),
            definition_key: None,
            states: Vec::new(),
            page_size: 50,
            page_token: None,
        }
    }

    fn denied<T: std::fmt::Debug>(result: Result<T, ProcessError>) -> String {
        match result {
            Err(ProcessError::PermissionDenied(why)) => why,
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
    }

    #[test]
    fn users_start_listed_definitions_for_themselves() {
        let policy = StartPolicy::new(vec!["VOE".into()]);
        let ann = caller("ann@example.com", false);
        assert!(
            policy
                .may_start(&ann, &start("VOE", "ann@example.com"))
                .is_ok()
        );
        assert_eq!(
            denied(policy.may_start(&ann, &start("Payroll", "ann@example.com"))),
            "users may not start process definition \"Payroll\""
        );
        assert_eq!(
            denied(policy.may_start(&ann, &start("VOE", "bob@example.com"))),
            "users start processes only with their own email as business key"
        );
    }

    #[test]
    fn admins_start_any_definition_for_anyone() {
        let policy = StartPolicy::default();
        let admin = caller("root@example.com", true);
        assert!(
            policy
                .may_start(&admin, &start("Payroll", "bob@example.com"))
                .is_ok()
        );
        assert_eq!(policy.startable_by(&admin), None);
        assert_eq!(
            policy.startable_by(&caller("ann@example.com", false)),
            Some(&[][..])
        );
    }

    #[test]
    fn users_list_only_their_own_processes() {
        let ann = caller("ann@example.com", false);
        let own = Email::parse("ann@example.com").unwrap();
        assert_eq!(
            listed_business_key(&ann, &list(None)).unwrap(),
            Some(own.clone())
        );
        assert_eq!(
            listed_business_key(&ann, &list(Some("ann@example.com"))).unwrap(),
            Some(own)
        );
        assert_eq!(
            denied(listed_business_key(&ann, &list(Some("bob@example.com")))),
            "users list only their own processes"
        );
    }

    #[test]
    fn admins_list_anyones_processes_or_all() {
        let admin = caller("root@example.com", true);
        assert_eq!(listed_business_key(&admin, &list(None)).unwrap(), None);
        assert_eq!(
            listed_business_key(&admin, &list(Some("bob@example.com"))).unwrap(),
            Some(Email::parse("bob@example.com").unwrap())
        );
    }

    #[test]
    fn users_see_only_their_own_processes() {
        assert!(may_see(
            &caller("ann@example.com", false),
            "ann@example.com"
        ));
        assert!(!may_see(
            &caller("ann@example.com", false),
            "bob@example.com"
        ));
        assert!(may_see(
            &caller("root@example.com", true),
            "bob@example.com"
        ));
    }
}
