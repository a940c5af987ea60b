//! [`Read`]: reading records either from the store as it is or inside a
//! write transaction, so one function resolves a schedule whether a
//! transaction's decision rests on it (checked at commit) or a view or a
//! publication just reads it.
//!
//! Owns: nothing stored. Must not: write.

use serde::de::DeserializeOwned;

use crate::store::{Store, StoreError, Tx};

/// A source of records: `&Store` (plain reads) or `Tx` (reads checked at
/// commit, seeing the transaction's own writes).
pub trait Read {
    /// The record under `key` in `tree`.
    ///
    /// # Errors
    /// When the engine fails or the record does not decode.
    fn get<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError>;

    /// Every record in `tree` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// When the engine fails or a record does not decode.
    fn scan<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError>;
}

impl Read for &Store {
    fn get<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        Store::get(self, tree, key)
    }

    fn scan<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        Store::scan(self, tree, prefix)
    }
}

impl Read for Tx {
    fn get<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        Tx::get(self, tree, key)
    }

    fn scan<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        Tx::scan(self, tree, prefix)
    }
}

impl<R: Read> Read for &mut R {
    fn get<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        (**self).get(tree, key)
    }

    fn scan<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        (**self).scan(tree, prefix)
    }
}
