//! cpis-gateway: a batch file-exchange gateway for child protection information sharing
//! between English local authorities and the NHS. ARCHITECTURE.md is the map: each folder
//! is a layer, and a module uses only its own layer and those listed before it.

pub mod api;
pub mod cli;
pub mod config;
pub mod core;
pub mod pipeline;
pub mod reporting;
pub mod service;
pub mod store;
pub mod sys;
pub mod transport;
