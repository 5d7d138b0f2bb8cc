//! Network-address decisions that need no socket: CIDR ranges, the address ranges a pull
//! must not reach without permission, the numeric host spellings a resolver accepts, and
//! the pull-target policy built from them.
//!
//! Nothing here resolves a name or opens a connection: the server resolves, then asks these
//! functions about the addresses it got, and connects only to the ones they accepted.

pub mod address;
pub mod cidr;
pub mod host;
pub mod pull_guard;
