//! The ownership rule that forms and processes share: a user's are the ones that
//! name it (a form's assignee, a process's business key), and an admin sees all.
//! `forms::rules` and `processes::rules` apply it, each in its own words.

use crate::auth::Caller;
use crate::email::Email;

/// A user named an owner other than itself.
#[derive(Debug, PartialEq, Eq)]
pub struct AnotherOwner;

/// The owner a list is narrowed to: a user's own (it may not name another), an
/// admin's whichever it names, or, when it names none, all (`None`).
pub fn listed_owner(
    caller: &Caller,
    requested: Option<&Email>,
) -> Result<Option<Email>, AnotherOwner> {
    match requested {
        Some(owner) if !caller.may_act_for(owner) => Err(AnotherOwner),
        Some(owner) => Ok(Some(owner.clone())),
        None if caller.admin => Ok(None),
        None => Ok(Some(caller.email.clone())),
    }
}

/// Whether `caller` sees what `owner` owns: its own, or anything as an admin.
pub fn sees(caller: &Caller, owner: &str) -> bool {
    caller.admin || owner == caller.email.as_str()
}
