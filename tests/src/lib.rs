//! signet-tests: the end-to-end, fault-injection and benchmark harness.
//!
//! Owns tests that start the hub, a broker and agents as real processes and
//! drive them from outside. The scenarios arrive with the sync issue; until
//! then this crate only checks that the workspace links together.
#![deny(missing_docs)]
