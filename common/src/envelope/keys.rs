//! Ed25519 keys and key ids.
//!
//! Owns: the public-key, key-id and signing-key types and their text forms
//! (DESIGN §4: a key id is the first 16 hex digits of SHA-256 of the 32 raw
//! public-key bytes; a public key travels as standard base64). Must not: read
//! or write key files — the hub and the agent do that.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{FromStrVisitor, parse_lower_hex, write_lower_hex};

/// Why a key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not a 16-hex-digit key id.
    #[error("a key id is 16 hex digits, got {0:?}")]
    BadKeyId(String),
    /// The text is not standard base64 of exactly 32 bytes.
    #[error("a public key is standard base64 of 32 bytes: {0}")]
    BadPublicKey(String),
    /// The bytes are not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    BadPrivateKey(String),
    /// The system random source failed while generating a key.
    #[error("the system random source failed")]
    Random,
}

/// Identifies a public key: the first 8 bytes (16 hex digits) of SHA-256 of
/// its 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id of the given raw public key.
    #[must_use]
    pub fn of(public_key: &[u8; 32]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        Self(id)
    }

    /// Parses 16 lowercase hex digits from bytes without allocating. Only
    /// the canonical lowercase form is accepted, so one id has one spelling.
    pub(crate) fn parse_bytes(text: &[u8]) -> Option<Self> {
        parse_lower_hex(text).map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lower_hex(f, &self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(text.as_bytes()).ok_or_else(|| KeyError::BadKeyId(truncate(text)))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FromStrVisitor::new("16 lowercase hex digits"))
    }
}

/// The 32 raw bytes of an Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 raw public-key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// This key's id.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0)
    }

    /// Standard base64 of the 32 raw bytes: the one-line form of `root.pub`.
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard base64 of 32 raw bytes; surrounding white space (a
    /// trailing newline in `root.pub`) is ignored.
    ///
    /// ```
    /// use signet_common::envelope::PublicKey;
    /// assert!(PublicKey::from_base64("not base64!").is_err());
    /// assert!(PublicKey::from_base64("AAAA").is_err()); // 3 bytes, not 32
    /// ```
    ///
    /// # Errors
    /// [`KeyError::BadPublicKey`] when the text is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        // Room for base64's conservative length estimate; exactly 32 must come out.
        let mut bytes = [0u8; 36];
        match BASE64.decode_slice(text, &mut bytes) {
            Ok(32) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes[..32]);
                Ok(Self(key))
            }
            Ok(n) => Err(KeyError::BadPublicKey(format!("{n} bytes, not 32"))),
            Err(e) => Err(KeyError::BadPublicKey(e.to_string())),
        }
    }

    /// Checks an Ed25519 signature by this key over `message`.
    #[must_use]
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_base64(text)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FromStrVisitor::new("base64 of 32 bytes"))
    }
}

/// An Ed25519 private key that signs documents (the root key or an online
/// signing key), with its public half and id.
pub struct SigningKey {
    /// The ring key pair that makes signatures.
    pair: Ed25519KeyPair,
    /// The public half, kept as raw bytes.
    public_key: PublicKey,
}

impl SigningKey {
    /// Generates a new key and returns its PKCS#8 document (the form
    /// `root.key` and `signing.key` are stored in).
    ///
    /// # Errors
    /// [`KeyError::Random`] when the system random source fails.
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        let random = SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&random)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| KeyError::Random)
    }

    /// Reads a PKCS#8 Ed25519 private key.
    ///
    /// # Errors
    /// [`KeyError::BadPrivateKey`] when the bytes are not a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            pair,
            public_key: PublicKey(public),
        })
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The id of the public half.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.public_key.key_id()
    }

    /// Signs `message` (already framed by the caller).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(message).as_ref());
        sig
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// Shortens attacker-supplied text before it goes into an error message.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 64;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
