//! Names for H.264 profiles and the RFC 6381 codec string (`avc1.PPCCLL`) of a
//! configuration.

use super::config::AvcConfig;

/// The H.264 profile name for `profile_idc` and the constraint flags byte.
pub fn profile_name(profile_idc: u8, constraint_flags: u8) -> &'static str {
    const CONSTRAINT_SET1: u8 = 0x40;
    match profile_idc {
        66 if constraint_flags & CONSTRAINT_SET1 != 0 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        _ => "Unknown",
    }
}

/// The RFC 6381 codecs parameter, e.g. `avc1.42e01f`.
pub fn codec_string(cfg: &AvcConfig) -> String {
    format!(
        "avc1.{:02x}{:02x}{:02x}",
        cfg.profile, cfg.compatibility, cfg.level
    )
}
