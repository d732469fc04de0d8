//! Encrypted backups (SEC-1): `gongshu backup run` and `gongshu backup restore`.
//!
//! A run reads each source of a `BackupPolicy` (PostgreSQL tables from one snapshot, files,
//! the exchange's audit segments), streams it through zstd and `age` (to the policy's
//! recipients: no private key is needed to back up) and uploads the ciphertext to the local
//! and the off-site destination at once, then writes the manifest last. Memory stays bounded
//! by a few [`pipeline::CHUNK`]s per destination whatever the size of a source.

pub mod archive;
pub mod cli;
pub mod manifest;
pub mod pg;
pub mod pipeline;
pub mod restore;
pub mod run;
pub mod runner;
pub mod store;

#[cfg(test)]
mod tests;
