//! argon2id password hashing (S8: a memory-hard hash), bounded (S12).
//!
//! [`PasswordHashing`] is what request handlers use: at most
//! `password_hash_concurrency` hashes run at once, each in a reused block of
//! argon2 memory (allocated once, never freed), so a flood of logins costs
//! a fixed amount of memory however many arrive; a request that cannot get
//! a slot within `password_hash_wait_ms` is refused ([`HashError::Busy`]).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{
    Output, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// Hashes `password` with argon2id (RFC 9106 defaults of the argon2 crate:
/// 19 MiB, 2 passes) and a random salt; returns the PHC string. CPU- and
/// memory-heavy: call it from `spawn_blocking`.
///
/// # Errors
/// When the random salt or the hash cannot be made.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| PasswordError("random source failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (constant-time compare
/// inside argon2). A malformed stored hash never matches.
#[must_use]
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Why a bounded hash did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed busy for the whole wait.
    #[error("too many password checks are running; retry shortly")]
    Busy,
    /// Hashing failed.
    #[error(transparent)]
    Failed(#[from] PasswordError),
}

/// The argon2 memory of one hash at the default parameters.
type Memory = Vec<Block>;

/// Bounded password hashing: a semaphore of slots and one reusable block of
/// argon2 memory per slot.
#[derive(Debug)]
pub struct PasswordHashing {
    /// One permit per hash that may run.
    slots: Arc<tokio::sync::Semaphore>,
    /// Memory blocks not in use (at most one per slot, made on first use).
    memory: Arc<Mutex<Vec<Memory>>>,
    /// How long a request waits for a slot.
    wait: Duration,
}

impl PasswordHashing {
    /// At most `concurrency` hashes at once; a request waits up to `wait`.
    #[must_use]
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            wait,
        }
    }

    /// Runs `work` with a slot and a memory block, off the async runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let pool = self.memory.clone();
        let mut memory = pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (result, memory)
        })
        .await
        .map_err(|e| PasswordError(format!("hash task failed: {e}")))?;
        pool.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(memory);
        drop(slot);
        Ok(result)
    }

    /// Hashes `password` like [`hash_password`], within the bounds.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot freed up in time.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self
            .run(move |memory| hash_with(&password, memory))
            .await??)
    }

    /// Whether `password` matches the PHC string `hash`, like
    /// [`verify_password`], within the bounds. `None` for `hash` checks
    /// against a decoy no password matches, at the same cost, so an unknown
    /// login name takes as long as a known one.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot freed up in time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        self.run(move |memory| match &hash {
            Some(hash) => verify_with(&password, hash, memory),
            None => {
                // The same work as for a real hash; a decoy never matches.
                let decoy = decoy_hash(memory);
                let _ = verify_with(&password, decoy, memory);
                false
            }
        })
        .await
    }
}

/// The decoy hash (of a random password nobody knows).
static DECOY: OnceLock<String> = OnceLock::new();

fn decoy_hash(memory: &mut Memory) -> &'static str {
    DECOY.get_or_init(|| hash_with(&super::new_password(), memory).unwrap_or_default())
}

/// Sizes `memory` for `params` (it only grows, to the largest seen).
fn blocks<'m>(memory: &'m mut Memory, params: &Params) -> &'m mut [Block] {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    &mut memory[..params.block_count()]
}

/// [`hash_password`] in `memory`.
fn hash_with(password: &str, memory: &mut Memory) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| PasswordError("random source failed".into()))?;
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            blocks(memory, &params),
        )
        .map_err(|e| PasswordError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e: argon2::password_hash::Error| PasswordError(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| PasswordError(e.to_string()))?),
    };
    Ok(hash.to_string())
}

/// [`verify_password`] in `memory`.
fn verify_with(password: &str, hash: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    // Only hashes this hub made are stored; refuse absurd parameters
    // rather than allocate for them.
    if params.block_count() > 4 * Params::default().block_count() {
        return false;
    }
    let version = parsed
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            blocks(memory, &params),
        )
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s8_hash_is_argon2id_salted_and_verifies_only_the_right_password() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterx", &a));
        assert!(!verify_password("anything", "not a phc string"));
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    /// S12: the bounded hasher makes hashes the plain verifier accepts and
    /// verifies the plain hasher's; a decoy never matches.
    #[tokio::test]
    async fn s12_bounded_hashes_match_the_plain_ones() {
        let hashing = PasswordHashing::new(1, Duration::from_secs(30));
        let made = hashing.hash("correct horse battery".into()).await.unwrap();
        assert!(
            made.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{made}"
        );
        assert!(verify_password("correct horse battery", &made));
        let plain = hash_password("another password!").unwrap();
        assert!(
            hashing
                .verify("another password!".into(), Some(plain.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hashing
                .verify("another password?".into(), Some(plain))
                .await
                .unwrap()
        );
        assert!(!hashing.verify("anything".into(), None).await.unwrap());
        assert!(
            !hashing
                .verify("anything".into(), Some("junk".into()))
                .await
                .unwrap()
        );
    }
}
