//! The sequence parameter set (ITU-T H.264 §7.3.2.1) as far as a media server needs it:
//! profile, level, chroma format, bit depth, cropped size, frame rate and reordering from
//! the VUI (Annex E), frame/field coding. Scaling lists and HRD tables are skipped.
//!
//! Every SPS comes from the network: each value is range-checked before use, the picture
//! size is capped at the largest level, and a cut-short SPS is an error.

use super::bits::{remove_emulation_prevention, BitReader};
use super::error::AvcError;
use super::nal::NAL_SPS;

/// The fields of a sequence parameter set a media server cares about.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// The byte holding `constraint_set0_flag` (bit 7) to `constraint_set5_flag` (bit 2).
    pub constraint_flags: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u32,
    /// Luma bit depth (8 for non-High profiles).
    pub bit_depth_luma: u8,
    /// Display width after cropping, in pixels.
    pub width: u32,
    /// Display height after cropping, in pixels (whole frames, also for interlaced).
    pub height: u32,
    /// `time_scale / (2 * num_units_in_tick)` when the VUI carries timing information.
    pub frame_rate: Option<f64>,
    /// `max_num_reorder_frames` when the VUI carries bitstream restrictions.
    pub max_num_reorder_frames: Option<u32>,
    /// `frame_mbs_only_flag`: false when the stream may contain fields.
    pub frame_mbs_only: bool,
}

/// Largest picture an SPS may describe, in macroblocks: `MaxFS` of level 6.2, the highest
/// level (H.264 Table A-1; 8192×4320 is 138 240). A bigger SPS is invalid (`sps_info` is
/// `None`), so nothing sizes buffers after it.
pub const MAX_FRAME_MBS: u64 = 139_264;

const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses a sequence parameter set NAL unit (starting with its NAL header byte, type 7).
///
/// Emulation prevention bytes are removed first. The whole SPS up to and including the
/// `rbsp_stop_one_bit` must be present; anything cut short is an error.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, AvcError> {
    let (&header, rest) = nal.split_first().ok_or(AvcError::EmptyNal)?;
    let nal_type = header & 0x1f;
    if nal_type != NAL_SPS {
        return Err(AvcError::NotSps(nal_type));
    }
    let rbsp = remove_emulation_prevention(rest);
    let mut r = BitReader::new(&rbsp);

    let profile_idc = r.u8("profile_idc")?;
    let constraint_flags = r.u8("constraint_set_flags")?;
    let level_idc = r.u8("level_idc")?;
    let sps_id = r.ue("seq_parameter_set_id")?;
    check("seq_parameter_set_id", sps_id, 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8u8;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue("chroma_format_idc")?;
        check("chroma_format_idc", chroma_format_idc, 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        let luma_minus8 = r.ue("bit_depth_luma_minus8")?;
        check("bit_depth_luma_minus8", luma_minus8, 6)?;
        bit_depth_luma = 8 + luma_minus8 as u8; // <= 14, checked above
        let chroma_minus8 = r.ue("bit_depth_chroma_minus8")?;
        check("bit_depth_chroma_minus8", chroma_minus8, 6)?;
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let log2_max_frame_num_minus4 = r.ue("log2_max_frame_num_minus4")?;
    check("log2_max_frame_num_minus4", log2_max_frame_num_minus4, 12)?;
    let poc_type = r.ue("pic_order_cnt_type")?;
    match poc_type {
        0 => {
            let v = r.ue("log2_max_pic_order_cnt_lsb_minus4")?;
            check("log2_max_pic_order_cnt_lsb_minus4", v, 12)?;
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
            check("num_ref_frames_in_pic_order_cnt_cycle", cycle, 255)?;
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        other => {
            return Err(AvcError::InvalidSps {
                field: "pic_order_cnt_type",
                value: u64::from(other),
            })
        }
    }
    r.ue("max_num_ref_frames")?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    let frame_mbs = width_mbs
        .saturating_mul(height_map_units)
        .saturating_mul(if frame_mbs_only { 1 } else { 2 });
    if frame_mbs > MAX_FRAME_MBS {
        return Err(AvcError::InvalidSps {
            field: "frame size in macroblocks",
            value: frame_mbs,
        });
    }
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag("frame_cropping_flag")? {
        crop_left = r.ue("frame_crop_left_offset")?.into();
        crop_right = r.ue("frame_crop_right_offset")?.into();
        crop_top = r.ue("frame_crop_top_offset")?.into();
        crop_bottom = r.ue("frame_crop_bottom_offset")?.into();
    }

    let mut frame_rate = None;
    let mut max_num_reorder_frames = None;
    if r.flag("vui_parameters_present_flag")? {
        let vui = parse_vui(&mut r)?;
        frame_rate = vui.frame_rate;
        max_num_reorder_frames = vui.max_num_reorder_frames;
    }
    // rbsp_trailing_bits: the stop bit must still be there, or the SPS was cut short.
    if !r.has_stop_bit() {
        return Err(AvcError::SpsTruncated("rbsp_stop_one_bit"));
    }

    // Frame size (H.264 §7.4.2.1.1, equations 7-13 to 7-20).
    let frame_height_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, frame_height_factor),
        1 => (2, 2 * frame_height_factor),
        2 => (2, frame_height_factor),
        _ => (1, frame_height_factor),
    };
    let coded_width = width_mbs * 16;
    let coded_height = frame_height_factor * height_map_units * 16;
    let width = crop_dimension(coded_width, crop_left, crop_right, crop_unit_x, "width")?;
    let height = crop_dimension(coded_height, crop_top, crop_bottom, crop_unit_y, "height")?;

    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma,
        width,
        height,
        frame_rate,
        max_num_reorder_frames,
        frame_mbs_only,
    })
}

fn check(field: &'static str, value: u32, max: u32) -> Result<(), AvcError> {
    if value > max {
        Err(AvcError::InvalidSps {
            field,
            value: value.into(),
        })
    } else {
        Ok(())
    }
}

/// `coded - (a + b) * unit`, as a non-zero `u32`. All inputs are at most about 2^36, so the
/// `u64` arithmetic cannot overflow.
fn crop_dimension(
    coded: u64,
    a: u64,
    b: u64,
    unit: u64,
    field: &'static str,
) -> Result<u32, AvcError> {
    let cropped = coded
        .checked_sub((a + b) * unit)
        .filter(|v| *v > 0)
        .and_then(|v| u32::try_from(v).ok());
    cropped.ok_or(AvcError::InvalidSps {
        field,
        value: coded,
    })
}

/// `scaling_list()` of H.264 §7.3.2.1.1.1, read only to get past it.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), AvcError> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(AvcError::InvalidSps {
                    field: "delta_scale",
                    value: delta.unsigned_abs(),
                });
            }
            next_scale = (last_scale + delta + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

struct Vui {
    frame_rate: Option<f64>,
    max_num_reorder_frames: Option<u32>,
}

/// `vui_parameters()` of H.264 Annex E.1.1.
fn parse_vui(r: &mut BitReader<'_>) -> Result<Vui, AvcError> {
    if r.flag("aspect_ratio_info_present_flag")? {
        let idc = r.u8("aspect_ratio_idc")?;
        if idc == 255 {
            // Extended_SAR
            r.bits(16, "sar_width")?;
            r.bits(16, "sar_height")?;
        }
    }
    if r.flag("overscan_info_present_flag")? {
        r.flag("overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.bits(3, "video_format")?;
        r.flag("video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            r.u8("colour_primaries")?;
            r.u8("transfer_characteristics")?;
            r.u8("matrix_coefficients")?;
        }
    }
    if r.flag("chroma_loc_info_present_flag")? {
        r.ue("chroma_sample_loc_type_top_field")?;
        r.ue("chroma_sample_loc_type_bottom_field")?;
    }
    let mut frame_rate = None;
    if r.flag("timing_info_present_flag")? {
        let num_units_in_tick = r.bits(32, "num_units_in_tick")?;
        let time_scale = r.bits(32, "time_scale")?;
        r.flag("fixed_frame_rate_flag")?;
        if num_units_in_tick > 0 && time_scale > 0 {
            frame_rate = Some(f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick)));
        }
    }
    let nal_hrd = r.flag("nal_hrd_parameters_present_flag")?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.flag("vcl_hrd_parameters_present_flag")?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag("low_delay_hrd_flag")?;
    }
    r.flag("pic_struct_present_flag")?;
    let mut max_num_reorder_frames = None;
    if r.flag("bitstream_restriction_flag")? {
        r.flag("motion_vectors_over_pic_boundaries_flag")?;
        r.ue("max_bytes_per_pic_denom")?;
        r.ue("max_bits_per_mb_denom")?;
        r.ue("log2_max_mv_length_horizontal")?;
        r.ue("log2_max_mv_length_vertical")?;
        max_num_reorder_frames = Some(r.ue("max_num_reorder_frames")?);
        r.ue("max_dec_frame_buffering")?;
    }
    Ok(Vui {
        frame_rate,
        max_num_reorder_frames,
    })
}

/// `hrd_parameters()` of H.264 Annex E.1.2.
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), AvcError> {
    let cpb_cnt_minus1 = r.ue("cpb_cnt_minus1")?;
    check("cpb_cnt_minus1", cpb_cnt_minus1, 31)?;
    r.bits(4, "bit_rate_scale")?;
    r.bits(4, "cpb_size_scale")?;
    for _ in 0..=cpb_cnt_minus1 {
        r.ue("bit_rate_value_minus1")?;
        r.ue("cpb_size_value_minus1")?;
        r.flag("cbr_flag")?;
    }
    r.bits(5, "initial_cpb_removal_delay_length_minus1")?;
    r.bits(5, "cpb_removal_delay_length_minus1")?;
    r.bits(5, "dpb_output_delay_length_minus1")?;
    r.bits(5, "time_offset_length")?;
    Ok(())
}
