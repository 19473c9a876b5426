//! Password hashing with Argon2id (PHC strings), plus the constant-time helpers login needs.
//!
//! Hashing is deliberately slow (tens of milliseconds, ~19 MiB of memory with the argon2 crate
//! defaults, which follow the OWASP recommendation). On the async runtime use the `*_async`
//! wrappers: they move the work to tokio's blocking pool so a burst of logins cannot stall the
//! worker threads that serve every other request, and they run at most one hash per core at a
//! time (`HashingSlots` below): the blocking pool would otherwise start a thread, and ~19 MiB, for
//! every login of a burst, although the cores can work on no more than one each.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

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

/// Slots for password hashes running at once, one per core the process may use.
///
/// Each hash holds ~19 MiB for tens of milliseconds. Without a bound, a burst of logins (many
/// users after a restart, a credential-stuffing run spread over addresses) had tokio's blocking
/// pool start a thread per login, up to 512, each with its block: gigabytes for work that the
/// cores could only do a few at a time anyway, every login of the burst slowed down alike. With
/// the bound, the rest wait in line (first come, first served; the request timeout still
/// applies) and memory stays at cores × 19 MiB.
struct HashingSlots(Arc<Semaphore>);

impl HashingSlots {
    fn new(slots: usize) -> Self {
        Self(Arc::new(Semaphore::new(slots.max(1))))
    }

    /// Runs `job` on the blocking pool once a slot is free. The slot goes with the job, not
    /// with the caller: a caller that stops waiting (a timed-out request) leaves the slot taken
    /// until its hash has finished, so the bound holds for the work actually running.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let slot = Arc::clone(&self.0).acquire_owned().await.map_err(|_| {
            AuthError::TaskFailed("the password hashing slots are closed".to_owned())
        })?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job()
        })
        .await
        .map_err(|e| task_failed(&e))
    }
}

/// The process's slots: as many as [`std::thread::available_parallelism`] (which follows a
/// container's CPU quota), 1 if that is unknown.
static HASHING: LazyLock<HashingSlots> = LazyLock::new(|| {
    HashingSlots::new(std::thread::available_parallelism().map_or(1, usize::from))
});

/// [`hash_password`] on the blocking thread pool, one hash per core at a time.
///
/// # Errors
/// As [`hash_password`], or [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn hash_password_async(password: String) -> Result<String, AuthError> {
    HASHING.run(move || hash_password(&password)).await?
}

/// [`verify_password`] on the blocking thread pool, one hash per core at a time.
///
/// # Errors
/// [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn verify_password_async(password: String, phc: String) -> Result<bool, AuthError> {
    HASHING.run(move || verify_password(&password, &phc)).await
}

/// [`verify_dummy`] on the blocking thread pool, one hash per core at a time; await it before
/// answering "invalid credentials" for an unknown user.
///
/// # Errors
/// [`AuthError::TaskFailed`] if the task panicked or was cancelled.
pub async fn verify_dummy_async(password: String) -> Result<(), AuthError> {
    HASHING.run(move || verify_dummy(&password)).await
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
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
        mpsc,
    };
    use std::time::Duration;

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

    /// Counts the jobs running at once and the most seen.
    #[derive(Default)]
    struct Running {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Running {
        /// A job that counts itself running until `until` gets its release.
        fn job(self: &Arc<Self>, until: mpsc::Receiver<()>) -> impl FnOnce() + use<> {
            let running = Arc::clone(self);
            move || {
                let now = running.now.fetch_add(1, SeqCst) + 1;
                running.most.fetch_max(now, SeqCst);
                let _ = until.recv();
                running.now.fetch_sub(1, SeqCst);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        let slots = Arc::new(HashingSlots::new(2));
        let running = Arc::new(Running::default());
        let mut releases = Vec::new();
        let mut jobs = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (release, until) = mpsc::channel();
            releases.push(release);
            let (slots, job) = (Arc::clone(&slots), running.job(until));
            jobs.spawn(async move { slots.run(job).await });
        }
        // Both slots taken: the other six wait, however long this looks.
        while running.now.load(SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        for release in releases {
            release
                .send(())
                .expect("the job has not finished before its release");
        }
        while let Some(finished) = jobs.join_next().await {
            finished.expect("no panic").expect("the job ran");
        }
        assert_eq!(running.most.load(SeqCst), 2, "two slots, eight jobs");
        assert_eq!(running.now.load(SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_stops_waiting_keeps_the_slot_until_its_hash_is_done() {
        let slots = Arc::new(HashingSlots::new(1));
        let running = Arc::new(Running::default());
        let (release_first, until_first) = mpsc::channel();
        let first = tokio::spawn({
            let (slots, job) = (Arc::clone(&slots), running.job(until_first));
            async move { slots.run(job).await }
        });
        while running.now.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The caller gives up (a request that timed out); its hash goes on.
        first.abort();
        let _ = first.await;
        let second_ran = Arc::new(AtomicBool::new(false));
        let second = tokio::spawn({
            let (slots, ran) = (Arc::clone(&slots), Arc::clone(&second_ran));
            async move { slots.run(move || ran.store(true, SeqCst)).await }
        });
        // The second job cannot start before the release below, however long this waits; the
        // pause gives a build that freed the slot with its caller the time to show it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !second_ran.load(SeqCst),
            "the slot was still the first hash's"
        );
        release_first
            .send(())
            .expect("the first hash is still running");
        second.await.expect("no panic").expect("the second job ran");
        assert!(second_ran.load(SeqCst));
        assert_eq!(running.most.load(SeqCst), 1);
    }
}
