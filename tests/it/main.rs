//! Integration tests: the real binary against real files in per-test temporary folders.

mod api;
mod backend;
mod cluster;
mod daemon;
mod fakemesh;
mod gen;
mod health;
mod helpers;
mod hostile;
mod layers;
mod mesh;
mod operators;
mod package;
mod pgstore;
mod props;
mod reports;
mod robustness;
mod schemas;
mod sftp;
mod store;
mod systemd;
mod uploads;
mod validate;
