//! Who may do what with form tasks: pure functions of the caller and the request (or
//! the stored form task it names), which `Forms` applies before it acts, so that a
//! unit test reaches every rule without a server.

use super::{FormError, FormKind, FormTask};
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

/// Whether `caller` answers `task` (submits it, saves its draft): the assignee of a
/// send-task form; the engine's assignee of a user task, which a candidate claims
/// first (FAILED_PRECONDITION until then). Anyone else, admins too, answers
/// NOT_FOUND, as for a form they do not see.
pub fn may_answer(caller: &Caller, task: &FormTask) -> Result<(), FormError> {
    let answerer = match task.kind {
        FormKind::SendTask => caller.email.as_str(),
        FormKind::UserTask => caller.user_id.as_str(),
    };
    if !task.assignee.is_empty() && task.assignee == answerer {
        return Ok(());
    }
    let candidate = task.kind == FormKind::UserTask
        && task.assignee.is_empty()
        && (task.candidate_users.iter().any(|u| u == answerer)
            || task
                .candidate_groups
                .iter()
                .any(|g| caller.groups.contains(g)));
    Err(if candidate {
        FormError::NotPending("claim this task first".into())
    } else {
        FormError::NotFound
    })
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

    fn task(kind: FormKind, assignee: &str, candidates: &[&str]) -> FormTask {
        let mut task = crate::forms::task::tests::user_task(assignee, candidates, &[]);
        task.kind = kind;
        task
    }

    fn refusal(result: Result<(), FormError>) -> String {
        match result {
            Ok(()) => "answers".into(),
            Err(FormError::NotFound) => "not found".into(),
            Err(FormError::NotPending(why)) => why,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_user_task_is_answered_by_its_assignee_once_claimed() {
        let ann = caller("ann@example.com", false, false);
        let admin = caller("root@example.com", false, true);
        let mine = task(FormKind::UserTask, "ann@example.com", &[]);
        assert_eq!(refusal(may_answer(&ann, &mine)), "answers");
        assert_eq!(refusal(may_answer(&admin, &mine)), "not found");
        let open = task(FormKind::UserTask, "", &["ann@example.com"]);
        assert_eq!(refusal(may_answer(&ann, &open)), "claim this task first");
        let others = task(FormKind::UserTask, "", &["bob@example.com"]);
        assert_eq!(refusal(may_answer(&ann, &others)), "not found");
        let reviewer = Caller {
            user_id: "ann".into(),
            groups: vec!["reviewers".into()],
            ..ann.clone()
        };
        let group_task = FormTask {
            candidate_groups: vec!["reviewers".into()],
            ..others.clone()
        };
        assert_eq!(
            refusal(may_answer(&reviewer, &group_task)),
            "claim this task first"
        );
        // A user task names its people by engine user id, not by email.
        let claimed = task(FormKind::UserTask, "ann", &[]);
        assert_eq!(refusal(may_answer(&reviewer, &claimed)), "answers");
        assert_eq!(refusal(may_answer(&ann, &claimed)), "not found");
        let form = task(FormKind::SendTask, "ann@example.com", &[]);
        assert_eq!(refusal(may_answer(&ann, &form)), "answers");
        assert_eq!(
            refusal(may_answer(&ann, &task(FormKind::SendTask, "", &[]))),
            "not found"
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
