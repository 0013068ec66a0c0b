//! Integration tests: each starts the real `berth` binary on a free port with
//! a temporary data directory and talks HTTP (or a real client) to it.
//! One test binary keeps link time down on small machines.

mod auth;
mod bench;
mod common;
mod conformance;
mod e2e;
mod gc;
mod hostile;
mod invariants;
mod tls;
