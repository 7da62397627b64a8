//! JWT validation. The algorithm always comes from the configured key (or, with a
//! JWKS, from the published key), never from the token: `alg: none` and algorithm
//! swaps (an HS256 token against an RSA key) are refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{AuthError, Caller, ROLE_ADMIN, ROLE_WORKER};
use crate::email::Email;

/// Where the keys that sign tokens come from.
#[derive(Clone)]
pub enum KeySource {
    /// A shared HS256 secret.
    Secret(SecretString),
    /// A PEM public key (RSA or EC) and the algorithm to expect.
    PublicKey { pem: Vec<u8>, algorithm: Algorithm },
    /// A JWKS URL, fetched and cached; refetched (rate-limited) for an unknown `kid`.
    Jwks(String),
}

/// Everything token validation needs, from the `RAMP_JWT_*` settings.
#[derive(Clone)]
pub struct JwtSettings {
    pub key: KeySource,
    pub issuer: Option<String>,
    pub audience: String,
    pub leeway_secs: u64,
    pub email_claim: String,
    pub require_email_verified: bool,
    pub roles_claim: String,
    /// Dotted path to the caller's engine user id; the email when it names the
    /// email claim, or the token lacks it.
    pub user_id_claim: String,
    /// Dotted path to the caller's groups (a list of strings).
    pub groups_claim: String,
    pub jwks_min_refresh: Duration,
    /// The longest lifetime a token may have (`RAMP_JWT_MAX_TTL_SECS`).
    pub max_ttl: Duration,
}

/// Where the signing key is configured: one of the secret, its file, a public key
/// file or a JWKS URL (`RAMP_JWT_SECRET`, `_SECRET_FILE`, `_PUBLIC_KEY_FILE`,
/// `_JWKS_URL`, with `RAMP_JWT_ALGORITHM` for the public key).
#[derive(Clone, Default)]
pub struct KeySettings {
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    pub algorithm: Option<String>,
    pub jwks_url: Option<String>,
}

/// A key setting that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {problem}")]
pub struct KeyError {
    pub setting: &'static str,
    pub problem: String,
}

impl KeySettings {
    /// The key source, with its file read and its key checked.
    pub fn load(&self) -> Result<KeySource, KeyError> {
        let invalid = |setting, problem: String| KeyError { setting, problem };
        let key = if let Some(secret) = &self.secret {
            KeySource::Secret(secret.clone())
        } else if let Some(file) = &self.secret_file {
            let secret = std::fs::read_to_string(file)
                .map_err(|e| invalid("RAMP_JWT_SECRET_FILE", format!("cannot be read: {e}")))?;
            let secret = secret.trim().to_owned();
            if secret.len() < 32 {
                return Err(invalid(
                    "RAMP_JWT_SECRET_FILE",
                    "must hold at least 32 characters".into(),
                ));
            }
            KeySource::Secret(SecretString::from(secret))
        } else if let Some(file) = &self.public_key_file {
            let pem = std::fs::read(file)
                .map_err(|e| invalid("RAMP_JWT_PUBLIC_KEY_FILE", format!("cannot be read: {e}")))?;
            let algorithm = match &self.algorithm {
                Some(name) => Algorithm::from_str(name).map_err(|_| {
                    invalid(
                        "RAMP_JWT_ALGORITHM",
                        format!("{name:?} is not a JWT algorithm"),
                    )
                })?,
                None if DecodingKey::from_rsa_pem(&pem).is_ok() => Algorithm::RS256,
                None if DecodingKey::from_ec_pem(&pem).is_ok() => Algorithm::ES256,
                None => {
                    return Err(invalid(
                        "RAMP_JWT_PUBLIC_KEY_FILE",
                        "is not a PEM RSA or EC public key".into(),
                    ));
                }
            };
            let source = KeySource::PublicKey { pem, algorithm };
            static_key(&source).map_err(|problem| invalid("RAMP_JWT_PUBLIC_KEY_FILE", problem))?;
            source
        } else if let Some(url) = &self.jwks_url {
            KeySource::Jwks(url.clone())
        } else {
            return Err(invalid(
                "RAMP_AUTH",
                "is jwt, which needs a key: set RAMP_JWT_SECRET, RAMP_JWT_SECRET_FILE, RAMP_JWT_PUBLIC_KEY_FILE or RAMP_JWT_JWKS_URL".into(),
            ));
        };
        Ok(key)
    }
}

fn static_key(source: &KeySource) -> Result<(DecodingKey, Algorithm), String> {
    match source {
        KeySource::Secret(secret) => Ok((
            DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            Algorithm::HS256,
        )),
        KeySource::PublicKey { pem, algorithm } => {
            let key = match algorithm {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
                _ => return Err(format!("does not go with algorithm {algorithm:?}")),
            }
            .map_err(|e| format!("is not a usable {algorithm:?} public key: {e}"))?;
            Ok((key, *algorithm))
        }
        KeySource::Jwks(_) => unreachable!("a JWKS is not a static key"),
    }
}

pub struct JwtVerifier {
    settings: JwtSettings,
    keys: Keys,
}

enum Keys {
    Static(DecodingKey, Algorithm),
    Jwks(JwksCache),
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Result<Self, KeyError> {
        let keys = match &settings.key {
            KeySource::Jwks(url) => {
                Keys::Jwks(JwksCache::new(url.clone(), settings.jwks_min_refresh))
            }
            source => {
                let (key, algorithm) = static_key(source).map_err(|problem| KeyError {
                    setting: "RAMP_JWT_PUBLIC_KEY_FILE",
                    problem,
                })?;
                Keys::Static(key, algorithm)
            }
        };
        Ok(Self { settings, keys })
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_error(token))?;
        let (key, algorithm) = match &self.keys {
            Keys::Static(key, algorithm) => (key.clone(), *algorithm),
            Keys::Jwks(cache) => {
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                cache.key(kid).await?
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.settings.audience]);
        let mut required = vec!["exp", "aud"];
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| validation_error(e.kind()))?;
        self.check_lifetime(&data.claims, SystemTime::now())?;
        self.caller(&data.claims)
    }

    /// Refuses a token that lives longer than `max_ttl`: from its `iat` to its `exp`,
    /// or from now to its `exp` (which also catches an `iat` set in the future, or
    /// none). A stolen long-lived token is thereby worth at most `max_ttl`.
    fn check_lifetime(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let seconds = |name: &str| claims.get(name).and_then(Value::as_f64);
        // `exp` is required and checked by the validation before this runs.
        let Some(exp) = seconds("exp") else {
            return Err(AuthError::MissingClaim("exp".into()));
        };
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let max = self.settings.max_ttl.as_secs_f64();
        let leeway = self.settings.leeway_secs as f64;
        let issued_too_long = seconds("iat").is_some_and(|iat| exp - iat > max);
        if issued_too_long || exp - now > max + leeway {
            return Err(AuthError::LivesTooLong {
                max_secs: self.settings.max_ttl.as_secs(),
            });
        }
        Ok(())
    }

    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let email_claim = &self.settings.email_claim;
        let raw_email = claims
            .get(email_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::MissingClaim(email_claim.clone()))?;
        if self.settings.require_email_verified {
            let verified = match claims.get("email_verified") {
                Some(Value::Bool(b)) => *b,
                // Some providers (AWS Cognito) send it as a string.
                Some(Value::String(s)) => s == "true",
                _ => false,
            };
            if !verified {
                return Err(AuthError::EmailNotVerified);
            }
        }
        let email = Email::parse(raw_email).map_err(AuthError::InvalidEmail)?;
        let roles = claim_at_path(claims, &self.settings.roles_claim)
            .map(roles_of)
            .unwrap_or_default();
        let user_id = if self.settings.user_id_claim == *email_claim {
            email.as_str().to_owned()
        } else {
            claim_at_path(claims, &self.settings.user_id_claim)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .unwrap_or(email.as_str())
                .to_owned()
        };
        let groups = claim_at_path(claims, &self.settings.groups_claim)
            .map(groups_of)
            .unwrap_or_default();
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
        Ok(Caller {
            email,
            user_id,
            groups,
            worker: roles.iter().any(|r| r == ROLE_WORKER),
            admin: roles.iter().any(|r| r == ROLE_ADMIN),
            expires_at,
        })
    }
}

/// Follows a dotted path (`realm_access.roles`) into the claims.
fn claim_at_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Roles as a list of strings, or one string of space- or comma-separated names.
fn roles_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Groups as a list of strings (other items ignored); anything else is none.
fn groups_of(value: &Value) -> Vec<String> {
    let mut groups: Vec<String> = value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// A header jsonwebtoken cannot read: `alg: none` (which it has no name for) is an
/// algorithm refusal, anything else a malformed token.
fn header_error(token: &str) -> AuthError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(_) => AuthError::AlgorithmNotAccepted,
        None => AuthError::MalformedToken,
    }
}

fn validation_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAccepted
        }
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::MalformedToken,
        _ => AuthError::Invalid,
    }
}

/// The keys of a JWKS URL. Fetched on first use; fetched again when a token names a
/// key the cache does not know (key rotation), but at most once per `min_refresh`,
/// so a flood of tokens with made-up key ids cannot hammer the provider.
struct JwksCache {
    url: String,
    client: reqwest::Client,
    min_refresh: Duration,
    state: tokio::sync::RwLock<JwksState>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, (Arc<DecodingKey>, Algorithm)>,
    fetched_at: Option<Instant>,
}

impl JwksCache {
    fn new(url: String, min_refresh: Duration) -> Self {
        Self {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client builds"),
            min_refresh,
            state: Default::default(),
            fetching: Default::default(),
        }
    }

    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        if let Some((key, alg)) = self.state.read().await.keys.get(kid) {
            return Ok(((**key).clone(), *alg));
        }
        // One fetch at a time; whoever waited finds the result in the cache.
        let _fetching = self.fetching.lock().await;
        {
            let state = self.state.read().await;
            if let Some((key, alg)) = state.keys.get(kid) {
                return Ok(((**key).clone(), *alg));
            }
            if let Some(at) = state.fetched_at
                && at.elapsed() < self.min_refresh
            {
                return Err(AuthError::UnknownKey);
            }
        }
        let keys = self.fetch().await;
        let mut state = self.state.write().await;
        state.fetched_at = Some(Instant::now());
        match keys {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched signing keys");
                state.keys = keys;
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "cannot fetch signing keys");
                if state.keys.is_empty() {
                    return Err(AuthError::KeysUnavailable);
                }
            }
        }
        state
            .keys
            .get(kid)
            .map(|(key, alg)| ((**key).clone(), *alg))
            .ok_or(AuthError::UnknownKey)
    }

    async fn fetch(
        &self,
    ) -> Result<HashMap<String, (Arc<DecodingKey>, Algorithm)>, reqwest::Error> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let algorithm = jwk_algorithm(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (Arc::new(key), algorithm)))
            })
            .collect())
    }
}

/// The algorithm a published key is for: its `alg`, else what its type implies.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = &jwk.common.key_algorithm {
        return Algorithm::from_str(&alg.to_string()).ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        // A shared secret is never published; other key types are not supported.
        _ => None,
    }
}

/// What a minted token says about its holder.
pub struct TokenClaims<'a> {
    pub email: &'a str,
    pub roles: &'a [String],
    pub ttl: Duration,
    pub issuer: Option<&'a str>,
    pub audience: &'a str,
}

/// Mints an HS256 token (for `ramp token`, development and tests).
pub fn mint_hs256(
    secret: &SecretString,
    claims: &TokenClaims<'_>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut body = serde_json::json!({
        "sub": claims.email,
        "email": claims.email,
        "email_verified": true,
        "roles": claims.roles,
        "aud": claims.audience,
        "iat": now,
        "nbf": now,
        "exp": now + claims.ttl.as_secs(),
    });
    if let Some(issuer) = claims.issuer {
        body["iss"] = Value::from(issuer);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &body,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verifier(max_ttl: u64) -> JwtVerifier {
        JwtVerifier::new(JwtSettings {
            key: KeySource::Secret(SecretString::from("unit-test-secret-unit-test-secret-0123")),
            issuer: None,
            audience: "ramp".into(),
            leeway_secs: 30,
            email_claim: "email".into(),
            require_email_verified: true,
            roles_claim: "roles".into(),
            user_id_claim: "email".into(),
            groups_claim: "groups".into(),
            jwks_min_refresh: Duration::from_secs(10),
            max_ttl: Duration::from_secs(max_ttl),
        })
        .unwrap()
    }

    fn caller_of(verifier: &mut JwtVerifier, user_id: &str, claims: Value) -> Caller {
        verifier.settings.user_id_claim = user_id.into();
        verifier.settings.groups_claim = "realm.groups".into();
        let mut claims = claims.as_object().unwrap().clone();
        claims.insert("email".into(), json!("Ann@Example.com"));
        claims.insert("email_verified".into(), json!(true));
        verifier.caller(&claims).unwrap()
    }

    #[test]
    fn the_engine_user_is_the_email_unless_another_claim_names_it() {
        let mut verifier = verifier(3600);
        let by_email = caller_of(&mut verifier, "email", json!({"preferred_username": "ann"}));
        assert_eq!(by_email.user_id, "ann@example.com");
        let by_name = caller_of(
            &mut verifier,
            "preferred_username",
            json!({"preferred_username": "ann"}),
        );
        assert_eq!(by_name.user_id, "ann");
        let nested = caller_of(&mut verifier, "ext.uid", json!({"ext": {"uid": "a-17"}}));
        assert_eq!(nested.user_id, "a-17");
        let missing = caller_of(&mut verifier, "preferred_username", json!({}));
        assert_eq!(missing.user_id, "ann@example.com");
    }

    #[test]
    fn groups_are_a_list_of_names_and_nothing_else_is_a_group() {
        let mut verifier = verifier(3600);
        let mut groups = |claims| caller_of(&mut verifier, "email", claims).groups;
        assert_eq!(
            groups(json!({"realm": {"groups": ["reviewers", 3, "auditors", "reviewers", ""]}})),
            ["auditors", "reviewers"]
        );
        assert!(groups(json!({"realm": {"groups": "reviewers"}})).is_empty());
        assert!(groups(json!({"groups": ["reviewers"]})).is_empty());
    }

    fn lifetime(claims: Value) -> Result<(), AuthError> {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        verifier(3600).check_lifetime(claims.as_object().unwrap(), now)
    }

    #[test]
    fn a_token_lives_at_most_the_longest_lifetime() {
        let too_long = Err(AuthError::LivesTooLong { max_secs: 3600 });
        // From issue to expiry.
        assert_eq!(
            lifetime(json!({"iat": 1_000_000, "exp": 1_003_600})),
            Ok(())
        );
        assert_eq!(
            lifetime(json!({"iat": 1_000_000, "exp": 1_003_601})),
            too_long
        );
        // Late in a long life, still too long.
        assert_eq!(
            lifetime(json!({"iat": 900_000, "exp": 1_000_100})),
            too_long
        );
        // Without iat, or with one in the future: from now, with the leeway.
        assert_eq!(lifetime(json!({"exp": 1_003_630})), Ok(()));
        assert_eq!(lifetime(json!({"exp": 1_003_631})), too_long);
        assert_eq!(
            lifetime(json!({"iat": 1_100_000, "exp": 1_100_100})),
            too_long
        );
        assert_eq!(lifetime(json!({"exp": 253_402_300_799_u64})), too_long);
    }
}
