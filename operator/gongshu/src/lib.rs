//! The `gongshu` binary's library: the operator's controllers, leader election, admin server
//! and the command-line tools. `main.rs` only parses the command line and calls in here.

pub mod admin;
pub mod admission;
pub mod audit;
pub mod backup;
pub mod backup_job;
pub mod cache;
pub mod channels;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod events;
pub mod exchange;
pub mod exchange_deploy;
pub mod health;
pub mod https;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod pod_security;
pub mod report;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
