//! Who is calling: bearer JWTs (or, in development only, an unsigned header) turned
//! into a `Caller` with an `Email` identity and roles. The tower layer in `layer.rs`
//! authenticates every ramp RPC before it reaches a service; health and reflection
//! stay open.

mod jwt;
mod layer;

use std::time::SystemTime;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub use jwt::{JwtSettings, KeyError, KeySettings, KeySource, TokenClaims, mint_hs256};
pub use layer::Authentication;

use crate::email::{Email, EmailError};
use crate::forms::{GROUP_KEY, USER_KEY};

/// The role that lets a caller create form tasks (external-task workers), and
/// nothing else.
pub const ROLE_WORKER: &str = "ramp-worker";
/// The one RPC a worker calls. A worker's token is a service's, kept in its
/// environment for long: it reads no one's forms, answers or processes.
pub const WORKER_RPC: &str = "/ramp.v1.FormService/CreateFormTask";
/// The role that lets a caller act on anyone's processes and forms.
pub const ROLE_ADMIN: &str = "ramp-admin";

/// How callers prove who they are (`RAMP_AUTH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Bearer JWTs (the only mode for production).
    #[default]
    Jwt,
    /// Unsigned `x-ramp-user` headers, for local development only.
    Dev,
}

/// How callers are checked: the mode, and for JWTs how they are validated.
#[derive(Clone)]
pub enum AuthSettings {
    Jwt(Box<JwtSettings>),
    Dev,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's identity, normalized.
    pub email: Email,
    /// The caller's user id in the engine, as its user tasks name their assignee
    /// and candidate users (`RAMP_JWT_USER_ID_CLAIM`; the email by default).
    pub user_id: String,
    /// The caller's groups, as the engine's user tasks name their candidate groups
    /// (`RAMP_JWT_GROUPS_CLAIM`).
    pub groups: Vec<String>,
    pub worker: bool,
    pub admin: bool,
    /// When the caller's token stops being valid; streams end then.
    pub expires_at: Option<SystemTime>,
}

impl Caller {
    /// Whether this caller may act for `email` (its own, or anyone's as admin).
    pub fn may_act_for(&self, email: &Email) -> bool {
        self.admin || &self.email == email
    }

    /// The change log keys this caller's streams read: its email (send-task forms),
    /// `user:<engine user id>` (user tasks it is assignee or candidate user of) and
    /// `group:<group>` for each of its groups (unclaimed user tasks of the group).
    pub fn audience(&self) -> Vec<String> {
        let mut keys = vec![self.email.as_str().to_owned()];
        if !self.user_id.is_empty() {
            keys.push(format!("{USER_KEY}{}", self.user_id));
        }
        for group in &self.groups {
            let key = format!("{GROUP_KEY}{group}");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Whether the caller's roles let it call the RPC at `path` at all (each RPC's
    /// own rules come after): a worker that is not also an admin calls only
    /// `WORKER_RPC`.
    pub fn may_call(&self, path: &str) -> bool {
        !self.worker || self.admin || path == WORKER_RPC
    }
}

/// Why a caller was not let in. The message goes to the client: it says what was
/// wrong, never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <token>`")]
    MissingToken,
    #[error("malformed authorization header: expected `Bearer <token>`")]
    MalformedHeader,
    #[error("malformed token")]
    MalformedToken,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    /// The token's lifetime (`exp - iat`, or `exp` from now) is longer than
    /// `RAMP_JWT_MAX_TTL_SECS`.
    #[error("token lifetime too long: at most {max_secs} s from issue to expiry are accepted")]
    LivesTooLong { max_secs: u64 },
    #[error("wrong token issuer")]
    WrongIssuer,
    #[error("wrong token audience")]
    WrongAudience,
    #[error("bad token signature")]
    BadSignature,
    #[error("token algorithm not accepted")]
    AlgorithmNotAccepted,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token lacks the claim {0}")]
    MissingClaim(String),
    #[error("the token's email is not verified")]
    EmailNotVerified,
    /// Says why (a lookalike character, say), so that the holder can tell their
    /// provider; see `Email::parse` for the rule.
    #[error("the token's email is not accepted: it {0}")]
    InvalidEmail(EmailError),
    #[error("missing x-ramp-user header (RAMP_AUTH=dev)")]
    MissingDevUser,
    /// The keys to check tokens with could not be fetched: the server's problem.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    #[error("invalid token")]
    Invalid,
}

impl AuthError {
    pub fn to_status(&self) -> tonic::Status {
        match self {
            AuthError::KeysUnavailable => tonic::Status::unavailable(self.to_string()),
            _ => tonic::Status::unauthenticated(self.to_string()),
        }
    }
}

/// Checks callers the configured way.
pub enum Authenticator {
    Jwt(Box<jwt::JwtVerifier>),
    Dev,
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Result<Self, KeyError> {
        match settings {
            AuthSettings::Dev => {
                tracing::warn!(
                    "RAMP_AUTH=dev: callers are whoever their x-ramp-user header says; never use this outside development"
                );
                Ok(Self::Dev)
            }
            AuthSettings::Jwt(settings) => {
                let verifier = jwt::JwtVerifier::new(*settings)?;
                Ok(Self::Jwt(Box::new(verifier)))
            }
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        match self {
            Self::Jwt(verifier) => {
                let token = bearer_token(headers)?;
                verifier.verify(token).await
            }
            Self::Dev => dev_caller(headers),
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?
        .to_str()
        .map_err(|_| AuthError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token.trim())
}

/// The caller an unsigned development request names: `x-ramp-user` (its email,
/// which is also its engine user id), `x-ramp-roles` and `x-ramp-groups`
/// (comma-separated).
fn dev_caller(headers: &HeaderMap) -> Result<Caller, AuthError> {
    let user = headers
        .get("x-ramp-user")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingDevUser)?;
    let email = Email::parse(user).map_err(AuthError::InvalidEmail)?;
    let listed = |name: &str| -> Vec<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let roles = listed("x-ramp-roles");
    tracing::warn!(user = %email, "RAMP_AUTH=dev: accepted an unsigned x-ramp-user header");
    Ok(Caller {
        user_id: email.as_str().to_owned(),
        groups: listed("x-ramp-groups"),
        email,
        worker: roles.iter().any(|r| r == ROLE_WORKER),
        admin: roles.iter().any(|r| r == ROLE_ADMIN),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_reads_its_email_its_engine_user_and_its_groups() {
        let caller = Caller {
            email: Email::parse("ann@example.com").unwrap(),
            user_id: "ann".into(),
            groups: vec!["reviewers".into(), "auditors".into(), "reviewers".into()],
            worker: false,
            admin: false,
            expires_at: None,
        };
        assert_eq!(
            caller.audience(),
            [
                "ann@example.com",
                "user:ann",
                "group:reviewers",
                "group:auditors"
            ]
        );
    }

    #[test]
    fn a_development_caller_is_its_email_in_the_engine_with_the_groups_it_names() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ramp-user", "Ann@Example.com".parse().unwrap());
        headers.insert("x-ramp-groups", " reviewers, ,auditors".parse().unwrap());
        let caller = dev_caller(&headers).unwrap();
        assert_eq!(caller.user_id, "ann@example.com");
        assert_eq!(caller.groups, ["reviewers", "auditors"]);
        headers.remove("x-ramp-groups");
        assert!(dev_caller(&headers).unwrap().groups.is_empty());
    }
}
