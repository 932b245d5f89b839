//! Integration tests: the real binary against real files in per-test temporary folders.

mod gen;
mod helpers;
mod props;
mod schemas;
mod store;
mod validate;
