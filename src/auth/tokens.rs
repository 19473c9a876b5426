//! Access tokens: RS256-signed JWTs issued and verified by [`TokenService`].
//!
//! RS256 rather than a shared HMAC secret so that other services (and the WebSocket gateway
//! of another instance) can verify tokens from the public keys at `/.well-known/jwks.json`
//! without being able to mint them. Verification only ever trusts keys we hold, selected by
//! the header's `kid`, and only the RS256 algorithm, whatever the token's header claims.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use dashmap::DashMap;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind as JwtErrorKind};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use petstore_api::{Credential, Principal};

use super::AuthError;
use super::revocation::{RevocationList, RevocationStore};
use super::verified::{self, VerifiedTokens};

/// How far `exp` and `nbf` may be off when checked. Other instances (or the identity
/// provider of a later setup) sign with their own clocks; NTP keeps clocks within a second or
/// so, and 30 s absorbs a badly synchronised host without extending a token's life in any way
/// that matters for a TTL of minutes. Revocations are kept this much longer than the token's
/// `exp` so a revoked token cannot slip through the leeway window.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::from_secs(30);

/// Longest accepted access-token lifetime. Access tokens are meant to be short-lived (a
/// revoked token is only remembered until it expires, and memory grows with the TTL); a day
/// is already generous.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Tokens longer than this are rejected before any parsing: ours are well under 1 KiB, and an
/// attacker should not get us to base64-decode and parse megabytes per request. The bound is the
/// contract's longest access token (`asyncapi.yaml`'s `authenticate` payload), so a token the
/// WebSocket accepts is one the verifier reads, over either transport.
const MAX_TOKEN_LEN: usize = petstore_api::ws::limits::AUTHENTICATE_TOKEN_MAX_LENGTH;

/// RSA keys below 2048 bits are not acceptable for RS256 (NIST SP 800-131A).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The only signature algorithm we issue and accept, as written in the JWT header.
const ALG: Algorithm = Algorithm::RS256;
const ALG_NAME: &str = "RS256";

/// Everything [`TokenService::new`] needs; built from the application configuration.
#[derive(Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of issued tokens, and the only audience accepted.
    pub audience: String,
    /// Lifetime of access tokens (at least 1 s, at most [`MAX_ACCESS_TTL`]).
    pub access_ttl: Duration,
    /// PEM of the RSA signing key, PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    /// `None` generates a throw-away key at start-up: fine for development and tests, but
    /// every restart invalidates all tokens, and several instances cannot share tokens.
    pub private_key_pem: Option<String>,
    /// PEMs of earlier signing keys (same formats) whose tokens are still accepted: during a key
    /// rotation the new key signs, the old one keeps verifying until its last token expires.
    /// Their public halves are published in the JWK set too.
    pub previous_key_pems: Vec<String>,
}

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field(
                "private_key_pem",
                &self.private_key_pem.as_ref().map(|_| "[redacted]"),
            )
            .field("previous_key_pems", &self.previous_key_pems.len())
            .finish()
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token was issued to (the username).
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Not valid before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Unique token id; what revocation refers to.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Roles of the subject at issue time.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permissions (spec scopes) granted at issue time, on top of what the roles grant.
    #[serde(default)]
    pub perms: Vec<String>,
    /// The session (refresh-token family) the token belongs to; ending the session revokes
    /// every access token carrying its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Claims {
    /// `exp` as a timestamp (the far future if `exp` is out of range, which a token we
    /// signed never is).
    #[must_use]
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The user the token stands for, with the permissions its roles and extra permissions
    /// grant (unknown names, from a newer or older server sharing the keys, grant nothing).
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal::user(
            self.sub.clone(),
            Credential::AccessToken {
                token_id: self.jti.clone(),
                session_id: self.sid.clone(),
                expires_at: self.expires_at(),
            },
            &self.roles,
            &self.perms,
        )
    }
}

/// What an access token is issued for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessGrant {
    /// The subject (username, or a service key's name).
    pub subject: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Extra permissions.
    pub perms: Vec<String>,
    /// The session the token belongs to, if any.
    pub session_id: Option<String>,
}

/// A freshly signed access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS to hand to the client.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
    /// Its lifetime as signed (`exp - iat`): what `expiresIn` tells the client. Read from the
    /// claims rather than the clock at answer time, which would turn a 900 s token into 899 or
    /// 898 depending on how long the answer took.
    pub lifetime: TimeDelta,
}

impl fmt::Debug for IssuedToken {
    /// The token is a bearer credential: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// A public key we accept signatures from: the key itself and its published JWK form.
struct VerificationKey {
    decoding: DecodingKey,
    jwk: Jwk,
}

/// Issues and verifies access tokens, and revokes them.
///
/// Verification keys live in a map `kid -> key`: the signing key's public half, plus the
/// previous keys of a rotation, which keep verifying the tokens they signed until those expire.
pub struct TokenService {
    issuer: String,
    audience: String,
    access_ttl: TimeDelta,
    signing_key: EncodingKey,
    signing_kid: String,
    verification_keys: DashMap<String, VerificationKey>,
    validation: Validation,
    revocations: Arc<dyn RevocationStore>,
    /// Tokens whose signature passed, so a client's every request does not check it again.
    verified: VerifiedTokens<Claims>,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Build the service with an in-memory [`RevocationList`].
    ///
    /// # Errors
    /// [`AuthError::InvalidSettings`] or [`AuthError::KeyLoad`]; both are start-up failures.
    pub fn new(settings: TokenSettings) -> Result<Self, AuthError> {
        Self::with_revocation_store(settings, Arc::new(RevocationList::new()))
    }

    /// Build the service around a given revocation store (e.g. one shared between instances).
    ///
    /// # Errors
    /// As [`TokenService::new`].
    pub fn with_revocation_store(
        settings: TokenSettings,
        revocations: Arc<dyn RevocationStore>,
    ) -> Result<Self, AuthError> {
        let TokenSettings {
            issuer,
            audience,
            access_ttl,
            private_key_pem,
            previous_key_pems,
        } = settings;
        if issuer.trim().is_empty() {
            return Err(AuthError::InvalidSettings(
                "issuer must not be empty".into(),
            ));
        }
        if audience.trim().is_empty() {
            return Err(AuthError::InvalidSettings(
                "audience must not be empty".into(),
            ));
        }
        if access_ttl < Duration::from_secs(1) || access_ttl > MAX_ACCESS_TTL {
            return Err(AuthError::InvalidSettings(format!(
                "access token TTL must be between 1 s and {} s, got {access_ttl:?}",
                MAX_ACCESS_TTL.as_secs()
            )));
        }
        let access_ttl = TimeDelta::from_std(access_ttl)
            .map_err(|e| AuthError::InvalidSettings(format!("access token TTL: {e}")))?;

        let pem = match private_key_pem {
            Some(pem) => pem,
            None => {
                tracing::warn!(
                    "no token signing key configured: generated an ephemeral RSA-2048 key; \
                     tokens will not survive a restart and are not valid on other instances"
                );
                generate_ephemeral_key_pem()?
            }
        };
        let (signing_key, jwk) = load_signing_key(&pem)?;
        let signing_kid = jwk.common.key_id.clone().unwrap_or_default();
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|e| AuthError::KeyLoad(format!("cannot derive the public key: {e}")))?;
        let verification_keys = DashMap::new();
        verification_keys.insert(signing_kid.clone(), VerificationKey { decoding, jwk });
        for (index, pem) in previous_key_pems.iter().enumerate() {
            let (_, jwk) = load_signing_key(pem)
                .map_err(|e| AuthError::KeyLoad(format!("previous key #{}: {e}", index + 1)))?;
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let decoding = DecodingKey::from_jwk(&jwk)
                .map_err(|e| AuthError::KeyLoad(format!("cannot derive a public key: {e}")))?;
            verification_keys.insert(kid, VerificationKey { decoding, jwk });
        }

        let mut validation = Validation::new(ALG);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW_LEEWAY.as_secs();
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);

        Ok(Self {
            issuer,
            audience,
            access_ttl,
            signing_key,
            signing_kid,
            verification_keys,
            validation,
            revocations,
            verified: VerifiedTokens::new(verified::CAPACITY, CLOCK_SKEW_LEEWAY.as_secs() as i64),
        })
    }

    /// The `kid` of the key new tokens are signed with.
    #[must_use]
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Lifetime of issued access tokens (for `expires_in` in login responses).
    #[must_use]
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl.to_std().unwrap_or_default()
    }

    /// Sign a new access token for `subject` with the given roles, outside any session.
    ///
    /// # Errors
    /// [`AuthError::Crypto`] if signing fails (a server fault).
    pub fn issue_access(&self, subject: &str, roles: &[String]) -> Result<IssuedToken, AuthError> {
        self.issue(&AccessGrant {
            subject: subject.to_owned(),
            roles: roles.to_vec(),
            ..AccessGrant::default()
        })
    }

    /// Sign a new access token for a grant.
    ///
    /// # Errors
    /// [`AuthError::Crypto`] if signing fails (a server fault).
    pub fn issue(&self, grant: &AccessGrant) -> Result<IssuedToken, AuthError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: grant.subject.clone(),
            exp: now + self.access_ttl.num_seconds(),
            iat: now,
            nbf: now,
            jti: Uuid::new_v4().to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            roles: grant.roles.clone(),
            perms: grant.perms.clone(),
            sid: grant.session_id.clone(),
        };
        let token = self.sign(&claims)?;
        let expires_at = claims.expires_at();
        Ok(IssuedToken {
            token,
            jti: claims.jti,
            expires_at,
            lifetime: TimeDelta::seconds(claims.exp - claims.iat),
        })
    }

    /// Check a bearer token and return its claims.
    ///
    /// Order matters: the algorithm and `kid` are checked against what we accept before any
    /// cryptography, the signature before any claim is trusted, and the revocation list last.
    /// A token that passed before is not checked again where the answer cannot have changed
    /// (see [`super::verified`]): its expiry and the revocation list are, on every call.
    ///
    /// # Errors
    /// The [`AuthError`] variant naming the first reason for rejection (all of them satisfy
    /// [`AuthError::is_credential_error`]), or [`AuthError::Crypto`] for an internal failure.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let claims = match self.verified.get(token, Utc::now().timestamp()) {
            Some(remembered) => remembered?,
            None => {
                let claims = Arc::new(self.verify_signature_and_claims(token)?);
                self.verified.insert(token, claims.exp, Arc::clone(&claims));
                claims
            }
        };
        if self.is_revoked(&claims.jti, claims.sid.as_deref()) {
            return Err(AuthError::Revoked);
        }
        Ok(claims)
    }

    /// The algorithm, key, signature and claims of `token` (everything but revocation).
    fn verify_signature_and_claims(&self, token: &str) -> Result<Claims, AuthError> {
        let header = peek_header(token)?;
        if header.alg != ALG_NAME {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = self
            .verification_keys
            .get(&kid)
            .ok_or(AuthError::UnknownKey)?;
        Ok(
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
                .map_err(|e| map_jwt_error(&e))?
                .claims,
        )
    }

    /// Whether a token verified earlier has been revoked since, by its id or by its session:
    /// the cheap re-check for a long-lived connection that verified the signature once.
    #[must_use]
    pub fn is_revoked(&self, token_id: &str, session_id: Option<&str>) -> bool {
        self.revocations.is_revoked(token_id)
            || session_id.is_some_and(|sid| self.revocations.is_revoked(&session_entry(sid)))
    }

    /// Revoke every access token of a session, issued or still to be issued: the entry lasts as
    /// long as a token issued right now could be accepted.
    pub fn revoke_session(&self, session_id: &str) {
        let leeway = TimeDelta::from_std(CLOCK_SKEW_LEEWAY).unwrap_or(TimeDelta::zero());
        let until = Utc::now() + self.access_ttl + leeway;
        self.revocations.revoke(&session_entry(session_id), until);
    }

    /// Revoke the token these (verified) claims came from. The entry is kept until the token
    /// could no longer be accepted anyway: its `exp` plus [`CLOCK_SKEW_LEEWAY`].
    pub fn revoke(&self, claims: &Claims) {
        self.revoke_token(&claims.jti, claims.expires_at());
    }

    /// Revoke the token with id `token_id` that expires at `expires_at`; the entry is kept
    /// until then plus [`CLOCK_SKEW_LEEWAY`].
    pub fn revoke_token(&self, token_id: &str, expires_at: DateTime<Utc>) {
        let leeway = TimeDelta::from_std(CLOCK_SKEW_LEEWAY).unwrap_or(TimeDelta::zero());
        let until = expires_at
            .checked_add_signed(leeway)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.revocations.revoke(token_id, until);
    }

    /// The public keys tokens may be signed with, as a JWK set (`kty` RSA, `n`, `e`, `kid`,
    /// `alg` RS256, `use` sig), ordered by `kid`. Served at `/.well-known/jwks.json`.
    #[must_use]
    pub fn jwks(&self) -> JwkSet {
        let mut keys: Vec<Jwk> = self
            .verification_keys
            .iter()
            .map(|entry| entry.value().jwk.clone())
            .collect();
        keys.sort_by(|a, b| a.common.key_id.cmp(&b.common.key_id));
        JwkSet { keys }
    }

    fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let mut header = Header::new(ALG);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing_key)
            .map_err(|e| AuthError::Crypto(format!("signing an access token: {e}")))
    }
}

/// The revocation-list entry of a session. Token ids are UUIDs, so the prefix keeps the two
/// kinds of entry apart in one list.
fn session_entry(session_id: &str) -> String {
    format!("sid:{session_id}")
}

/// The header fields we decide on before touching a key. `alg` is read as a plain string so
/// that `none` and algorithms the JWT library does not know are reported as unsupported
/// rather than malformed.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn peek_header(token: &str) -> Result<RawHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)
}

fn map_jwt_error(e: &JwtError) -> AuthError {
    match e.kind() {
        JwtErrorKind::ExpiredSignature => AuthError::Expired,
        JwtErrorKind::ImmatureSignature => AuthError::NotYetValid,
        JwtErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        JwtErrorKind::InvalidAudience => AuthError::WrongAudience,
        JwtErrorKind::InvalidSignature => AuthError::BadSignature,
        JwtErrorKind::InvalidAlgorithm
        | JwtErrorKind::InvalidAlgorithmName
        | JwtErrorKind::UnsupportedAlgorithm => AuthError::UnsupportedAlgorithm,
        JwtErrorKind::InvalidToken
        | JwtErrorKind::MissingRequiredClaim(_)
        | JwtErrorKind::InvalidClaimFormat(_)
        | JwtErrorKind::InvalidSubject
        | JwtErrorKind::Base64(_)
        | JwtErrorKind::Json(_)
        | JwtErrorKind::Utf8(_) => AuthError::Malformed,
        _ => AuthError::Crypto(format!("verifying an access token: {e}")),
    }
}

/// Parse and check the RSA private key, and describe its public half as a JWK whose `kid` is
/// the RFC 7638 thumbprint (SHA-256, base64url): derived from the key alone, so it is stable
/// across restarts and instances sharing the key, and any client can recompute it.
fn load_signing_key(pem: &str) -> Result<(EncodingKey, Jwk), AuthError> {
    // Accepts PKCS#1 and PKCS#8 and yields the PKCS#1 DER either way.
    let signing_key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
        AuthError::KeyLoad(format!(
            "expected a PEM RSA private key (\"PRIVATE KEY\" or \"RSA PRIVATE KEY\"): {e}"
        ))
    })?;
    // The JWT library would accept a public key here and only fail at the first login;
    // parsing it as a key pair now makes a wrong file a start-up error.
    let key_pair = RsaKeyPair::from_der(signing_key.as_bytes())
        .map_err(|e| AuthError::KeyLoad(format!("not a usable RSA private key: {e}")))?;
    if key_pair.public_modulus_len() < MIN_RSA_MODULUS_BYTES {
        return Err(AuthError::KeyLoad(format!(
            "RSA key has {} bits, at least 2048 are required",
            key_pair.public_modulus_len() * 8
        )));
    }
    let mut jwk = Jwk::from_encoding_key(&signing_key, ALG)
        .map_err(|e| AuthError::KeyLoad(format!("cannot derive the public key: {e}")))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| AuthError::KeyLoad(format!("cannot compute the key id: {e}")))?;
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok((signing_key, jwk))
}

/// A new RSA-2048 private key as PKCS#8 PEM: what the server signs with when no key is
/// configured, and a way to make one for configuration or tests.
///
/// # Errors
/// [`AuthError::KeyLoad`] if the system random generator or the key encoding fails.
pub fn generate_ephemeral_key_pem() -> Result<String, AuthError> {
    let key_pair = RsaKeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| AuthError::KeyLoad(format!("generating an RSA-2048 key: {e}")))?;
    let pkcs8 = key_pair
        .as_der()
        .map_err(|e| AuthError::KeyLoad(format!("encoding the generated key: {e}")))?;
    Ok(pem_encode("PRIVATE KEY", pkcs8.as_ref()))
}

/// RFC 7468 textual encoding: base64 in 64-column lines between BEGIN/END labels.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, OnceLock};

    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm};

    use super::*;

    const ISSUER: &str = "https://petstore.test";
    const AUDIENCE: &str = "petstore-api";

    /// RSA key generation is slow in debug builds; the tests share two keys.
    fn test_key_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| generate_ephemeral_key_pem().unwrap())
    }

    fn other_key_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| generate_ephemeral_key_pem().unwrap())
    }

    fn settings(pem: Option<&str>) -> TokenSettings {
        TokenSettings {
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            access_ttl: Duration::from_secs(900),
            private_key_pem: pem.map(str::to_owned),
            previous_key_pems: Vec::new(),
        }
    }

    #[test]
    fn after_a_rotation_tokens_of_the_previous_key_still_verify_and_both_keys_are_published() {
        let old = service();
        let old_token = old.issue_access("alice", &[]).unwrap().token;

        let rotated = TokenService::new(TokenSettings {
            previous_key_pems: vec![test_key_pem().to_owned()],
            ..settings(Some(other_key_pem()))
        })
        .unwrap();
        assert_ne!(rotated.signing_kid(), old.signing_kid());
        assert_eq!(rotated.verify(&old_token).unwrap().sub, "alice");
        let new_token = rotated.issue_access("bob", &[]).unwrap().token;
        assert_eq!(rotated.verify(&new_token).unwrap().sub, "bob");
        // New tokens are signed with the new key: the old service does not know it.
        assert!(matches!(old.verify(&new_token), Err(AuthError::UnknownKey)));

        let kids: Vec<_> = rotated
            .jwks()
            .keys
            .into_iter()
            .filter_map(|jwk| jwk.common.key_id)
            .collect();
        assert_eq!(kids.len(), 2);
        assert!(kids.contains(&old.signing_kid().to_owned()));
        assert!(kids.contains(&rotated.signing_kid().to_owned()));
    }

    #[test]
    fn an_unusable_previous_key_is_a_start_up_error_naming_it() {
        let error = TokenService::new(TokenSettings {
            previous_key_pems: vec!["not a key".to_owned()],
            ..settings(Some(test_key_pem()))
        })
        .unwrap_err();
        assert!(error.to_string().contains("previous key #1"), "{error}");
    }

    fn service() -> TokenService {
        TokenService::new(settings(Some(test_key_pem()))).unwrap()
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn valid_claims() -> Claims {
        let now = now();
        Claims {
            sub: "alice".to_owned(),
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: Uuid::new_v4().to_string(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            roles: vec!["user".to_owned()],
            perms: Vec::new(),
            sid: None,
        }
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// The RSA public key as a PEM "PUBLIC KEY" (what an attacker downloads and abuses as
    /// an HMAC secret).
    fn public_key_pem(pem: &str) -> String {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let pair = RsaKeyPair::from_der(encoding.as_bytes()).unwrap();
        let spki = aws_lc_rs::signature::KeyPair::public_key(&pair)
            .as_der()
            .unwrap();
        pem_encode("PUBLIC KEY", spki.as_ref())
    }

    #[test]
    fn issued_token_verifies_and_round_trips_its_claims() {
        let svc = service();
        let roles = vec!["admin".to_owned(), "user".to_owned()];
        let issued = svc.issue_access("alice", &roles).unwrap();

        let claims = svc.verify(&issued.token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.roles, roles);
        assert!(claims.perms.is_empty());
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.jti, issued.jti);
        assert_eq!(claims.expires_at(), issued.expires_at);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(issued.lifetime, TimeDelta::seconds(900));
        assert_eq!(claims.nbf, claims.iat);
        assert!(Uuid::parse_str(&claims.jti).is_ok());

        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(svc.signing_kid()));
    }

    #[test]
    fn each_issued_token_has_its_own_jti() {
        let svc = service();
        let a = svc.issue_access("alice", &[]).unwrap();
        let b = svc.issue_access("alice", &[]).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn expired_token_is_rejected() {
        let svc = service();
        let mut claims = valid_claims();
        claims.iat = now() - 1000;
        claims.nbf = claims.iat;
        claims.exp = now() - 120;
        let token = svc.sign(&claims).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn token_expired_within_the_leeway_is_still_accepted() {
        let svc = service();
        let mut claims = valid_claims();
        claims.exp = now() - 5;
        let token = svc.sign(&claims).unwrap();
        assert!(svc.verify(&token).is_ok());
    }

    #[test]
    fn token_not_valid_yet_is_rejected() {
        let svc = service();
        let mut claims = valid_claims();
        claims.nbf = now() + 300;
        claims.exp = now() + 900;
        let token = svc.sign(&claims).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::NotYetValid)));
    }

    #[test]
    fn token_from_another_issuer_is_rejected() {
        let svc = service();
        let mut claims = valid_claims();
        claims.iss = "https://evil.test".to_owned();
        let token = svc.sign(&claims).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::WrongIssuer)));
    }

    #[test]
    fn token_for_another_audience_is_rejected() {
        let svc = service();
        let mut claims = valid_claims();
        claims.aud = "another-api".to_owned();
        let token = svc.sign(&claims).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::WrongAudience)));
    }

    #[test]
    fn unsigned_alg_none_token_is_rejected() {
        let svc = service();
        let claims = serde_json::to_value(valid_claims()).unwrap();
        for alg in ["none", "None", "NONE"] {
            let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": svc.signing_kid()});
            let token = format!("{}.{}.", b64(&header), b64(&claims));
            assert!(matches!(
                svc.verify(&token),
                Err(AuthError::UnsupportedAlgorithm)
            ));
        }
    }

    #[test]
    fn hs256_token_keyed_with_the_public_key_is_rejected() {
        let svc = service();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(svc.signing_kid().to_owned());
        let public_pem = public_key_pem(test_key_pem());
        let jwk = &svc.jwks().keys[0];
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            panic!("not an RSA key");
        };
        for secret in [public_pem.as_bytes(), rsa.n.as_bytes()] {
            let token =
                jsonwebtoken::encode(&header, &valid_claims(), &EncodingKey::from_secret(secret))
                    .unwrap();
            assert!(matches!(
                svc.verify(&token),
                Err(AuthError::UnsupportedAlgorithm)
            ));
        }
    }

    #[test]
    fn token_with_an_unknown_or_missing_kid_is_rejected() {
        let svc = service();
        let other = TokenService::new(settings(Some(other_key_pem()))).unwrap();
        assert_ne!(svc.signing_kid(), other.signing_kid());
        let foreign = other.issue_access("alice", &[]).unwrap();
        assert!(matches!(
            svc.verify(&foreign.token),
            Err(AuthError::UnknownKey)
        ));

        let without_kid =
            jsonwebtoken::encode(&Header::new(ALG), &valid_claims(), &svc.signing_key).unwrap();
        assert!(matches!(
            svc.verify(&without_kid),
            Err(AuthError::UnknownKey)
        ));
    }

    #[test]
    fn token_signed_by_another_key_under_our_kid_is_rejected() {
        let svc = service();
        let (other_key, _) = load_signing_key(other_key_pem()).unwrap();
        let mut header = Header::new(ALG);
        header.kid = Some(svc.signing_kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &valid_claims(), &other_key).unwrap();
        assert!(matches!(svc.verify(&forged), Err(AuthError::BadSignature)));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let svc = service();
        let issued = svc.issue_access("alice", &["user".to_owned()]).unwrap();
        let parts: Vec<&str> = issued.token.split('.').collect();
        let mut claims = Claims::clone(&svc.verify(&issued.token).unwrap());
        claims.roles = vec!["admin".to_owned()];
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_value(&claims).unwrap()),
            parts[2]
        );
        assert!(matches!(
            svc.verify(&tampered),
            Err(AuthError::BadSignature)
        ));

        let mut signature = parts[2].to_owned();
        signature.replace_range(0..1, if signature.starts_with('A') { "B" } else { "A" });
        let bad_signature = format!("{}.{}.{}", parts[0], parts[1], signature);
        assert!(matches!(
            svc.verify(&bad_signature),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn garbage_is_rejected_as_malformed() {
        let svc = service();
        let issued = svc.issue_access("alice", &[]).unwrap();
        let too_long = format!("{}{}", issued.token, "A".repeat(MAX_TOKEN_LEN));
        let header = issued.token.split('.').next().unwrap_or_default();
        let not_json = URL_SAFE_NO_PAD.encode(b"not json");
        for token in [
            "",
            "not-a-token",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "....",
            &format!("{not_json}.{not_json}.AAAA"),
            &format!("{}.extra", issued.token),
            &too_long,
        ] {
            assert!(
                matches!(svc.verify(token), Err(AuthError::Malformed)),
                "{token:?} -> {:?}",
                svc.verify(token)
            );
        }

        // With a header we accept, the signature is checked before the payload is parsed.
        let garbage_payload = format!("{header}.{not_json}.AAAA");
        assert!(matches!(
            svc.verify(&garbage_payload),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn revoking_a_session_rejects_every_token_of_it_and_no_other() {
        let svc = service();
        let grant = |sid: &str| AccessGrant {
            subject: "alice".to_owned(),
            roles: vec!["customer".to_owned()],
            perms: vec!["orders:read".to_owned()],
            session_id: Some(sid.to_owned()),
        };
        let first = svc.issue(&grant("s1")).unwrap();
        let second = svc.issue(&grant("s1")).unwrap();
        let other_session = svc.issue(&grant("s2")).unwrap();
        let no_session = svc.issue_access("alice", &[]).unwrap();
        let claims = svc.verify(&first.token).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert_eq!(claims.perms, vec!["orders:read".to_owned()]);

        svc.revoke_session("s1");

        for token in [&first.token, &second.token] {
            assert!(matches!(svc.verify(token), Err(AuthError::Revoked)));
        }
        assert!(svc.verify(&other_session.token).is_ok());
        assert!(svc.verify(&no_session.token).is_ok());
        // A token of the session issued after the revocation is refused too.
        let late = svc.issue(&grant("s1")).unwrap();
        assert!(matches!(svc.verify(&late.token), Err(AuthError::Revoked)));
    }

    #[test]
    fn revoked_token_is_rejected_and_others_are_not() {
        let svc = service();
        let revoked = svc.issue_access("alice", &[]).unwrap();
        let kept = svc.issue_access("alice", &[]).unwrap();
        let claims = svc.verify(&revoked.token).unwrap();

        svc.revoke(&claims);

        assert!(matches!(
            svc.verify(&revoked.token),
            Err(AuthError::Revoked)
        ));
        assert!(svc.verify(&kept.token).is_ok());
    }

    #[test]
    fn a_token_is_remembered_once_it_passed_and_never_when_it_failed() {
        let svc = service();
        let issued = svc.issue_access("alice", &[]).unwrap();
        let first = svc.verify(&issued.token).unwrap();
        assert_eq!(svc.verified.len(), 1);
        assert_eq!(svc.verify(&issued.token).unwrap(), first);
        assert_eq!(
            svc.verified.len(),
            1,
            "the second use is answered from memory"
        );

        let expired = Claims {
            exp: now() - 600,
            ..valid_claims()
        };
        let token = svc.sign(&expired).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::Expired)));
        let foreign = Claims {
            iss: "someone else".to_owned(),
            ..valid_claims()
        };
        let token = svc.sign(&foreign).unwrap();
        assert!(matches!(svc.verify(&token), Err(AuthError::WrongIssuer)));
        assert_eq!(svc.verified.len(), 1, "rejected tokens are not remembered");
    }

    #[test]
    fn a_remembered_token_is_rejected_once_its_session_is_revoked() {
        let svc = service();
        let claims = Claims {
            sid: Some("session-1".to_owned()),
            ..valid_claims()
        };
        let token = svc.sign(&claims).unwrap();
        assert!(svc.verify(&token).is_ok());
        svc.revoke_session("session-1");
        assert!(matches!(svc.verify(&token), Err(AuthError::Revoked)));
    }

    #[derive(Default)]
    struct RecordingStore(Mutex<Vec<(String, DateTime<Utc>)>>);

    impl RevocationStore for RecordingStore {
        fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) {
            if let Ok(mut calls) = self.0.lock() {
                calls.push((jti.to_owned(), expires_at));
            }
        }
        fn is_revoked(&self, jti: &str) -> bool {
            self.0
                .lock()
                .map(|calls| calls.iter().any(|(j, _)| j == jti))
                .unwrap_or(true)
        }
    }

    #[test]
    fn revocation_outlives_the_token_by_the_leeway() {
        let store = Arc::new(RecordingStore::default());
        let svc = TokenService::with_revocation_store(
            settings(Some(test_key_pem())),
            Arc::clone(&store) as Arc<dyn RevocationStore>,
        )
        .unwrap();
        let issued = svc.issue_access("alice", &[]).unwrap();
        svc.revoke(&svc.verify(&issued.token).unwrap());

        let calls = store.0.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, issued.jti);
        assert_eq!(
            calls[0].1,
            issued.expires_at + TimeDelta::from_std(CLOCK_SKEW_LEEWAY).unwrap()
        );
    }

    #[test]
    fn pkcs8_and_pkcs1_pem_keys_load_to_the_same_kid() {
        let pkcs8 = test_key_pem();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let pkcs1_der = EncodingKey::from_rsa_pem(pkcs8.as_bytes()).unwrap();
        let pkcs1 = pem_encode("RSA PRIVATE KEY", pkcs1_der.as_bytes());

        let from_pkcs8 = TokenService::new(settings(Some(pkcs8))).unwrap();
        let from_pkcs1 = TokenService::new(settings(Some(&pkcs1))).unwrap();
        assert_eq!(from_pkcs8.signing_kid(), from_pkcs1.signing_kid());

        // Same key, so each verifies the other's tokens: the kid is stable across restarts.
        let token = from_pkcs1.issue_access("bob", &[]).unwrap().token;
        assert_eq!(from_pkcs8.verify(&token).unwrap().sub, "bob");
    }

    #[test]
    fn unusable_key_material_is_a_key_load_error() {
        let public = public_key_pem(test_key_pem());
        for pem in [
            "",
            "not a pem",
            public.as_str(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(
                matches!(
                    TokenService::new(settings(Some(pem))),
                    Err(AuthError::KeyLoad(_))
                ),
                "{pem:?}"
            );
        }
    }

    #[test]
    fn without_a_configured_key_an_ephemeral_one_is_generated() {
        let a = TokenService::new(settings(None)).unwrap();
        let token = a.issue_access("carol", &[]).unwrap().token;
        assert_eq!(a.verify(&token).unwrap().sub, "carol");
        assert_ne!(a.signing_kid(), service().signing_kid());
    }

    #[test]
    fn invalid_settings_are_rejected_at_start_up() {
        let mut empty_issuer = settings(Some(test_key_pem()));
        empty_issuer.issuer = " ".to_owned();
        let mut empty_audience = settings(Some(test_key_pem()));
        empty_audience.audience = String::new();
        let mut zero_ttl = settings(Some(test_key_pem()));
        zero_ttl.access_ttl = Duration::ZERO;
        let mut huge_ttl = settings(Some(test_key_pem()));
        huge_ttl.access_ttl = MAX_ACCESS_TTL + Duration::from_secs(1);
        for s in [empty_issuer, empty_audience, zero_ttl, huge_ttl] {
            assert!(matches!(
                TokenService::new(s),
                Err(AuthError::InvalidSettings(_))
            ));
        }
    }

    #[test]
    fn jwks_publishes_the_signing_key() {
        let svc = service();
        let jwks = svc.jwks();
        assert_eq!(jwks.keys.len(), 1);
        let jwk = jwks.find(svc.signing_kid()).unwrap();
        assert_eq!(jwk.common.key_algorithm, Some(KeyAlgorithm::RS256));
        assert_eq!(jwk.common.public_key_use, Some(PublicKeyUse::Signature));
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            svc.signing_kid()
        );

        let json = serde_json::to_value(&jwks).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], svc.signing_kid());
        assert_eq!(key["e"], "AQAB");
        assert!(key["n"].as_str().is_some_and(|n| n.len() >= 342));
        assert!(key.get("d").is_none(), "no private parameters");

        // A third party holding only the JWK set can verify our tokens.
        let token = svc.issue_access("dave", &[]).unwrap().token;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims.sub, "dave");
    }

    #[test]
    fn credential_errors_are_told_apart_from_server_faults() {
        assert!(AuthError::Expired.is_credential_error());
        assert!(AuthError::Revoked.is_credential_error());
        assert!(!AuthError::Crypto("x".into()).is_credential_error());
        assert!(!AuthError::KeyLoad("x".into()).is_credential_error());
    }
}
