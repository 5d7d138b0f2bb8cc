//! Metrics for a Prometheus scrape: the text exposition format (version 0.0.4) and a plain
//! histogram to feed it.
//!
//! - `TextWriter` — families, samples and histograms in, one scrape body out, with the
//!   format's rules (names, escaping, one `# HELP` / `# TYPE` per family, contiguous
//!   samples, float spelling) enforced. A caller's mistake never panics and never reaches
//!   the output: it is left out and counted in [`TextWriter::skipped`].
//! - [`Histogram`] / [`HistogramSnapshot`] — per-bucket counts and a sum, `le` inclusive.
//!
//! Naming is the caller's business: counters should end in `_total` and carry a base unit
//! (`_seconds`, `_bytes`), as the Prometheus naming conventions ask; nothing here enforces
//! it.
//!
//! Nothing here does I/O, reads a clock or decides which metrics exist: the server crate
//! gathers the figures and chooses the families, this module only spells them.

mod histogram;
mod text;

pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BOUNDS_SECONDS};
pub use text::{Family, Kind, TextWriter};
