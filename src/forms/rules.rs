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

/// Whether `caller` sees `task`: admins any; a send-task form its assignee (by
/// email); a user task of the engine's its assignee (by engine user id), or while
/// nobody has claimed it, its candidate users and the members of its candidate
/// groups. A form the caller may not see answers NOT_FOUND.
pub fn may_see_task(caller: &Caller, task: &FormTask) -> bool {
    caller.admin || is_assignee(caller, task) || is_candidate(caller, task)
}

/// Whether `task` is assigned to `caller`: a send-task form to its email, a user
/// task to its engine user id.
pub fn is_assignee(caller: &Caller, task: &FormTask) -> bool {
    match task.kind {
        FormKind::SendTask => task.assignee == caller.email.as_str(),
        FormKind::UserTask => !task.assignee.is_empty() && task.assignee == caller.user_id,
    }
}

/// Whether `caller` may claim `task`: an unclaimed user task of which it is a
/// candidate user, or in a candidate group.
pub fn is_candidate(caller: &Caller, task: &FormTask) -> bool {
    task.kind == FormKind::UserTask
        && task.assignee.is_empty()
        && (task.candidate_users.contains(&caller.user_id)
            || task
                .candidate_groups
                .iter()
                .any(|g| caller.groups.contains(g)))
}

/// Whether `caller` answers `task` (submits it, saves its draft): its assignee
/// (`is_assignee`). A candidate claims it first (FAILED_PRECONDITION until then);
/// anyone else, admins too, gets NOT_FOUND, as for a form they do not see.
pub fn may_answer(caller: &Caller, task: &FormTask) -> Result<(), FormError> {
    if is_assignee(caller, task) {
        Ok(())
    } else if is_candidate(caller, task) {
        Err(FormError::NotPending("claim this task first".into()))
    } else {
        Err(FormError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::task::tests::user_task;

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

    fn engine_user(user_id: &str, groups: &[&str]) -> Caller {
        Caller {
            user_id: user_id.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..caller("ann@example.com", false, false)
        }
    }

    #[test]
    fn a_user_task_is_seen_by_its_assignee_else_by_its_candidates() {
        let open = user_task("", &["ann"], &["reviewers"]);
        assert!(may_see_task(&engine_user("ann", &[]), &open));
        assert!(is_candidate(&engine_user("ann", &[]), &open));
        assert!(may_see_task(
            &engine_user("zoe", &["auditors", "reviewers"]),
            &open
        ));
        assert!(!may_see_task(&engine_user("zoe", &["auditors"]), &open));
        assert!(!is_assignee(&engine_user("ann", &[]), &open));

        let claimed = user_task("zoe", &["ann"], &["reviewers"]);
        assert!(may_see_task(&engine_user("zoe", &[]), &claimed));
        assert!(is_assignee(&engine_user("zoe", &[]), &claimed));
        assert!(!may_see_task(&engine_user("ann", &["reviewers"]), &claimed));
        assert!(!is_candidate(&engine_user("ann", &["reviewers"]), &claimed));
        assert!(may_see_task(
            &caller("root@example.com", false, true),
            &claimed
        ));
    }

    #[test]
    fn a_send_task_form_is_seen_by_the_email_it_is_assigned_to() {
        let form = FormTask {
            kind: FormKind::SendTask,
            ..user_task("ann@example.com", &["ann@example.com"], &["reviewers"])
        };
        let ann = engine_user("someone-else", &["reviewers"]);
        assert!(may_see_task(&ann, &form) && is_assignee(&ann, &form));
        let bob = Caller {
            email: email("bob@example.com"),
            ..engine_user("ann@example.com", &["reviewers"])
        };
        assert!(!may_see_task(&bob, &form));
        assert!(!is_candidate(&bob, &form));
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
        let mut task = user_task(assignee, candidates, &[]);
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
