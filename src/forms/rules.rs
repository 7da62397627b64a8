//! Who may do what with form tasks: pure functions of the caller and the request (or
//! the stored form task it names), which `Forms` applies before it acts, so that a
//! unit test reaches every rule without a server.

use super::FormError;
use crate::auth::Caller;
use crate::email::Email;
use crate::ownership::{self, AnotherOwner};

/// Only workers (and admins) create form tasks.
pub fn may_create(caller: &Caller) -> Result<(), FormError> {
    if caller.worker || caller.admin {
        Ok(())
    } else {
        Err(FormError::PermissionDenied(
            "only workers create form tasks".into(),
        ))
    }
}

/// Whether what a worker says of a form's assignee is checked against the engine:
/// an admin's word stands.
pub fn checks_assignee(caller: &Caller) -> bool {
    !caller.admin
}

/// The assignee a list is narrowed to: users see only their own forms (and may not
/// name another assignee), admins whichever assignee they name, or all.
pub fn listed_assignee(
    caller: &Caller,
    requested: Option<&Email>,
) -> Result<Option<Email>, FormError> {
    ownership::listed_owner(caller, requested).map_err(|AnotherOwner| {
        FormError::PermissionDenied("users list only their own forms".into())
    })
}

/// Whether `caller` sees a form assigned to `assignee`: its own, or any as an admin.
/// Another user's form answers NOT_FOUND, so that its existence does not leak.
pub fn may_see(caller: &Caller, assignee: &str) -> bool {
    ownership::sees(caller, assignee)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(email: &str, worker: bool, admin: bool) -> Caller {
        Caller {
            email: Email::parse(email).unwrap(),
            user_id: email.into(),
            groups: Vec::new(),
            worker,
            admin,
            expires_at: None,
        }
    }

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    #[test]
    fn only_workers_and_admins_create_form_tasks() {
        assert!(may_create(&caller("worker@example.com", true, false)).is_ok());
        assert!(may_create(&caller("root@example.com", false, true)).is_ok());
        match may_create(&caller("ann@example.com", false, false)) {
            Err(FormError::PermissionDenied(why)) => {
                assert_eq!(why, "only workers create form tasks")
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        assert!(checks_assignee(&caller("worker@example.com", true, false)));
        assert!(!checks_assignee(&caller("root@example.com", false, true)));
    }

    #[test]
    fn users_list_only_their_own_forms() {
        let ann = caller("ann@example.com", false, false);
        assert_eq!(
            listed_assignee(&ann, None).unwrap(),
            Some(email("ann@example.com"))
        );
        assert_eq!(
            listed_assignee(&ann, Some(&email("ann@example.com"))).unwrap(),
            Some(email("ann@example.com"))
        );
        match listed_assignee(&ann, Some(&email("bob@example.com"))) {
            Err(FormError::PermissionDenied(why)) => {
                assert_eq!(why, "users list only their own forms")
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
    }

    #[test]
    fn admins_list_anyones_forms_or_all() {
        let admin = caller("root@example.com", false, true);
        assert_eq!(listed_assignee(&admin, None).unwrap(), None);
        assert_eq!(
            listed_assignee(&admin, Some(&email("bob@example.com"))).unwrap(),
            Some(email("bob@example.com"))
        );
    }

    #[test]
    fn users_see_only_their_own_forms() {
        assert!(may_see(
            &caller("ann@example.com", false, false),
            "ann@example.com"
        ));
        assert!(!may_see(
            &caller("ann@example.com", false, false),
            "bob@example.com"
        ));
        assert!(may_see(
            &caller("root@example.com", false, true),
            "bob@example.com"
        ));
    }
}
