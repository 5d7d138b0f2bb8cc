//! Recording decisions that need no disk: file names from templates, and when a recording
//! may start. The bytes of a recording come from [`crate::mp4`]; the files themselves are
//! the server's business.

pub mod naming;
