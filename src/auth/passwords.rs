//! Password hashing with Argon2id (PHC strings), plus the constant-time helpers login needs.
//!
//! Hashing is deliberately slow (tens of milliseconds, ~19 MiB of memory with the argon2 crate
//! defaults, which follow the OWASP recommendation). On the async runtime use the `*_async`
//! wrappers: they move the work to tokio's blocking pool so a burst of logins cannot stall the
//! worker threads that serve every other request.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::AuthError;

/// Argon2id hash, with the crate's default parameters, of a random password that was thrown
/// away. [`verify_dummy`] checks against it so that a login for an unknown user costs exactly
/// as much as one with a wrong password; the parameters must therefore stay equal to
/// `Argon2::default()` (a test guards that).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZORCTLh6wf0eJXtI98VG7A$HWm0RCU2qj4BjTdTINb3vD2INYoGNKycappv04v5XQo";

/// Hash `password` with Argon2id and a fresh random salt; returns the PHC string to store
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), which carries its own parameters so they
/// can be raised later without invalidating stored hashes.
///
/// # Errors
/// [`AuthError::PasswordHash`] if the system random generator fails.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::PasswordHash(e.to_string()))
}

/// Whether `password` matches the stored PHC string `phc`. The comparison of hash outputs is
/// constant-time. A `phc` that cannot be parsed never matches (and is logged, since it means
/// corrupt stored data, not a bad login).
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    let parsed = match PasswordHash::new(phc) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash is not a valid PHC string");
            return false;
        }
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spend the same time as [`verify_password`] without a stored hash. Call it when the user
/// does not exist, so response times do not reveal which usernames are registered.
pub fn verify_dummy(password: &str) {
    std::hint::black_box(verify_password(password, DUMMY_HASH));
}

/// [`hash_password`] on the blocking thread pool.
///
/// # Errors
/// As [`hash_password`], or [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn hash_password_async(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| task_failed(&e))?
}

/// [`verify_password`] on the blocking thread pool.
///
/// # Errors
/// [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn verify_password_async(password: String, phc: String) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| task_failed(&e))
}

/// [`verify_dummy`] on the blocking thread pool; await it before answering "invalid
/// credentials" for an unknown user.
///
/// # Errors
/// [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn verify_dummy_async(password: String) -> Result<(), AuthError> {
    tokio::task::spawn_blocking(move || verify_dummy(&password))
        .await
        .map_err(|e| task_failed(&e))
}

fn task_failed(e: &tokio::task::JoinError) -> AuthError {
    if e.is_panic() {
        AuthError::TaskFailed("password hashing task panicked".to_owned())
    } else {
        AuthError::TaskFailed("password hashing task was cancelled".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use argon2::Params;

    use super::*;

    /// Parameters that decide the cost of a verification: memory, passes, lanes, output size.
    fn cost(phc: &str) -> (u32, u32, u32, usize) {
        let parsed = PasswordHash::new(phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(19));
        let params = Params::try_from(&parsed).unwrap();
        let output_len = parsed.hash.map(|h| h.len()).unwrap_or_default();
        (
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            output_len,
        )
    }

    fn default_cost() -> (u32, u32, u32, usize) {
        let params = Params::default();
        (
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            Params::DEFAULT_OUTPUT_LEN,
        )
    }

    #[test]
    fn hashed_password_verifies_and_others_do_not() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn hash_is_argon2id_phc_with_default_params_and_random_salt() {
        let first = hash_password("pw").unwrap();
        let second = hash_password("pw").unwrap();
        assert_ne!(first, second, "each hash gets its own salt");

        assert!(first.starts_with("$argon2id$v=19$"));
        assert_eq!(cost(&first), default_cost());
    }

    #[test]
    fn unparseable_stored_hash_never_matches() {
        assert!(!verify_password("pw", ""));
        assert!(!verify_password("pw", "plaintext-password"));
        assert!(!verify_password(
            "pw",
            "$argon2id$v=19$m=19456,t=2,p=1$bm9wZQ$"
        ));
    }

    #[test]
    fn dummy_hash_costs_the_same_as_a_real_one() {
        assert_eq!(cost(DUMMY_HASH), default_cost());
        verify_dummy("whatever the client sent");
    }

    #[tokio::test]
    async fn async_wrappers_hash_and_verify() {
        let phc = hash_password_async("s3cret".to_owned()).await.unwrap();
        assert!(
            verify_password_async("s3cret".to_owned(), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password_async("wrong".to_owned(), phc)
                .await
                .unwrap()
        );
        verify_dummy_async("anything".to_owned()).await.unwrap();
    }
}
