//! AAC as FLV carries it: the `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) sent in the
//! AAC sequence header tag, and the 7-byte ADTS header needed to frame raw AAC for outputs
//! that want ADTS (e.g. MPEG-TS).
//!
//! The bytes come from the network: nothing here may panic or keep state between calls. It
//! does no I/O, decodes no audio and does not parse program_config_element (channel
//! configuration 0 is reported as 0 channels).

use std::fmt;

use bytes::Bytes;

/// Why an `AudioSpecificConfig` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AacError {
    /// The config ended before the named field.
    Truncated(&'static str),
    /// `audioObjectType` 0 (NULL object) or an SBR/PS type where the core type belongs.
    InvalidObjectType(u8),
    /// A sampling frequency index of 13 or 14 (reserved).
    ReservedSampleRateIndex(u8),
    /// An explicit 24-bit sampling frequency of 0.
    ZeroSampleRate,
    /// A reserved channel configuration (8, 9, 10 or 15).
    ReservedChannelConfig(u8),
}

impl fmt::Display for AacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AacError::Truncated(field) => {
                write!(f, "AAC AudioSpecificConfig truncated before {field}")
            }
            AacError::InvalidObjectType(t) => write!(f, "invalid AAC audio object type {t}"),
            AacError::ReservedSampleRateIndex(i) => {
                write!(f, "reserved AAC sampling frequency index {i}")
            }
            AacError::ZeroSampleRate => write!(f, "AAC explicit sampling frequency is 0"),
            AacError::ReservedChannelConfig(c) => {
                write!(f, "reserved AAC channel configuration {c}")
            }
        }
    }
}

impl std::error::Error for AacError {}

/// The parsed `AudioSpecificConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSpecificConfig {
    /// The core audio object type: 2 for AAC-LC also when SBR/PS is signalled explicitly.
    pub object_type: u8,
    /// The core sampling rate in Hz.
    pub sample_rate: u32,
    /// Channels of the channel configuration (configuration 7 is 8 channels; 0 means "in a
    /// program config element", not parsed, reported as 0).
    pub channels: u8,
    /// SBR is explicitly signalled (HE-AAC).
    pub sbr: bool,
    /// Parametric stereo is explicitly signalled (HE-AACv2).
    pub ps: bool,
    /// The SBR output sampling rate when signalled.
    pub extension_sample_rate: Option<u32>,
    /// Samples per channel per frame: 1024 or 960 (AAC-LD/ELD: 512 or 480).
    pub frame_length: u16,
    /// The config bytes as received.
    pub raw: Bytes,
}

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

const AOT_MAIN: u8 = 1;
const AOT_LC: u8 = 2;
const AOT_SSR: u8 = 3;
const AOT_LTP: u8 = 4;
const AOT_SBR: u8 = 5;
const AOT_SCALABLE: u8 = 6;
const AOT_ER_AAC_SCALABLE: u8 = 20;
const AOT_ER_BSAC: u8 = 22;
const AOT_ER_AAC_LD: u8 = 23;
const AOT_PS: u8 = 29;
const AOT_ER_AAC_ELD: u8 = 39;

/// Parses an `AudioSpecificConfig` (the body of an FLV AAC sequence header after the
/// 2-byte audio tag header).
pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, AacError> {
    let mut r = BitReader { data, pos: 0 };
    let mut object_type = read_object_type(&mut r)?;
    if object_type == 0 {
        return Err(AacError::InvalidObjectType(0));
    }
    let sample_rate = read_sample_rate(&mut r, "samplingFrequencyIndex")?;
    let channel_config = r.bits(4, "channelConfiguration")? as u8; // 4 bits
    let channels = channel_count(channel_config)?;

    let mut sbr = false;
    let mut ps = false;
    let mut extension_sample_rate = None;
    // Explicit hierarchical signalling: the SBR/PS object type comes first.
    let hierarchical = object_type == AOT_SBR || object_type == AOT_PS;
    if hierarchical {
        sbr = true;
        ps = object_type == AOT_PS;
        extension_sample_rate = Some(read_sample_rate(&mut r, "extensionSamplingFrequencyIndex")?);
        object_type = read_object_type(&mut r)?;
        if matches!(object_type, 0 | AOT_SBR | AOT_PS) {
            return Err(AacError::InvalidObjectType(object_type));
        }
        if object_type == AOT_ER_BSAC {
            r.bits(4, "extensionChannelConfiguration")?;
        }
    }

    let mut frame_length = 1024;
    // Whether the bits after the object-specific config can be located (they cannot after
    // a program_config_element, which is not parsed, or an unknown specific config).
    let mut specific_config_parsed = false;
    match object_type {
        1..=4 | 6 | 7 | 17 | 19..=23 => {
            let frame_length_flag = r.flag("frameLengthFlag")?;
            frame_length = match (object_type == AOT_ER_AAC_LD, frame_length_flag) {
                (false, false) => 1024,
                (false, true) => 960,
                (true, false) => 512,
                (true, true) => 480,
            };
            if r.flag("dependsOnCoreCoder")? {
                r.bits(14, "coreCoderDelay")?;
            }
            let extension_flag = r.flag("extensionFlag")?;
            if channel_config != 0 {
                if object_type == AOT_SCALABLE || object_type == AOT_ER_AAC_SCALABLE {
                    r.bits(3, "layerNr")?;
                }
                if extension_flag {
                    if object_type == AOT_ER_BSAC {
                        r.bits(5, "numOfSubFrame")?;
                        r.bits(11, "layer_length")?;
                    }
                    if matches!(object_type, 17 | 19 | 20 | 23) {
                        r.bits(3, "aacResilienceFlags")?;
                    }
                    r.flag("extensionFlag3")?;
                }
                specific_config_parsed = true;
            }
        }
        AOT_ER_AAC_ELD => {
            frame_length = if r.flag("frameLengthFlag")? { 480 } else { 512 };
        }
        _ => {}
    }
    // epConfig of the error-resilient types: skipped when present, never required.
    if specific_config_parsed && matches!(object_type, 17 | 19..=23) && !r.skip(2) {
        specific_config_parsed = false;
    }

    // Backward-compatible explicit signalling of SBR/PS after the core config.
    if specific_config_parsed && !hierarchical && r.bits_left() >= 16 {
        let sync = r.bits(11, "syncExtensionType")?;
        if sync == 0x2b7 {
            let extension_type = read_object_type(&mut r)?;
            if extension_type == AOT_SBR {
                sbr = r.flag("sbrPresentFlag")?;
                if sbr {
                    extension_sample_rate =
                        Some(read_sample_rate(&mut r, "extensionSamplingFrequencyIndex")?);
                    if r.bits_left() >= 12 && r.bits(11, "syncExtensionType")? == 0x548 {
                        ps = r.flag("psPresentFlag")?;
                    }
                }
            }
        }
    }

    Ok(AudioSpecificConfig {
        object_type,
        sample_rate,
        channels,
        sbr,
        ps,
        extension_sample_rate,
        frame_length,
        raw: Bytes::copy_from_slice(data),
    })
}

/// `GetAudioObjectType()`: 5 bits, 31 escapes to 32 + 6 more bits.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, AacError> {
    let t = r.bits(5, "audioObjectType")? as u8; // 5 bits
    if t == 31 {
        Ok(32 + r.bits(6, "audioObjectTypeExt")? as u8) // 6 bits: at most 95
    } else {
        Ok(t)
    }
}

/// A 4-bit sampling frequency index, or 0xF and an explicit 24-bit frequency.
fn read_sample_rate(r: &mut BitReader<'_>, field: &'static str) -> Result<u32, AacError> {
    let index = r.bits(4, field)? as u8; // 4 bits
    if index == 0x0f {
        let rate = r.bits(24, "samplingFrequency")?;
        if rate == 0 {
            return Err(AacError::ZeroSampleRate);
        }
        return Ok(rate);
    }
    SAMPLE_RATES
        .get(usize::from(index))
        .copied()
        .ok_or(AacError::ReservedSampleRateIndex(index))
}

/// Channels of a channel configuration (ISO/IEC 14496-3 Table 1.19, incl. the 2009+
/// configurations 11, 12, 13 and 14).
fn channel_count(config: u8) -> Result<u8, AacError> {
    match config {
        0..=6 => Ok(config),
        7 => Ok(8),
        11 => Ok(7),
        12 | 14 => Ok(8),
        13 => Ok(24),
        _ => Err(AacError::ReservedChannelConfig(config)),
    }
}

impl AudioSpecificConfig {
    /// The rate the decoder outputs: the SBR rate when SBR is signalled.
    pub fn output_sample_rate(&self) -> u32 {
        match (self.sbr, self.extension_sample_rate) {
            (true, Some(rate)) => rate,
            _ => self.sample_rate,
        }
    }

    /// The channels the decoder outputs: parametric stereo turns mono into stereo.
    pub fn output_channels(&self) -> u8 {
        if self.ps {
            2
        } else {
            self.channels
        }
    }

    /// A human-readable profile name.
    pub fn profile_name(&self) -> &'static str {
        if self.ps {
            return "HE-AACv2";
        }
        if self.sbr {
            return "HE-AAC";
        }
        match self.object_type {
            AOT_MAIN => "AAC Main",
            AOT_LC => "AAC-LC",
            AOT_SSR => "AAC-SSR",
            AOT_LTP => "AAC-LTP",
            AOT_ER_AAC_LD => "AAC-LD",
            AOT_ER_AAC_ELD => "AAC-ELD",
            _ => "AAC",
        }
    }
}

/// The 7-byte ADTS header (no CRC) for one raw AAC frame of `payload_len` bytes.
///
/// `None` when ADTS cannot describe the stream: object type not 1 to 4, a sample rate
/// outside the index table, a channel count without a channel configuration, or a frame
/// longer than 8191 bytes. SBR/PS are left implicit, as ADTS has no way to signal them.
pub fn adts_header(cfg: &AudioSpecificConfig, payload_len: usize) -> Option<[u8; 7]> {
    if !(1..=4).contains(&cfg.object_type) {
        return None;
    }
    let profile = cfg.object_type - 1;
    let rate_index = SAMPLE_RATES.iter().position(|&r| r == cfg.sample_rate)? as u8; // < 13
    let channel_config = match cfg.channels {
        0..=6 => cfg.channels,
        8 => 7,
        _ => return None,
    };
    let frame_length = payload_len.checked_add(7).filter(|&l| l <= 0x1fff)?;
    let buffer_fullness: usize = 0x7ff; // variable bit rate
    Some([
        0xff,
        0xf1, // syncword, MPEG-4, layer 0, no CRC
        (profile << 6) | (rate_index << 2) | (channel_config >> 2),
        ((channel_config & 0x03) << 6) | (frame_length >> 11) as u8,
        (frame_length >> 3) as u8,
        (((frame_length & 0x07) << 5) | (buffer_fullness >> 6)) as u8,
        ((buffer_fullness & 0x3f) << 2) as u8, // number_of_raw_data_blocks_in_frame - 1 = 0
    ])
}

/// An MSB-first bit reader.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl BitReader<'_> {
    fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads `n <= 32` bits.
    fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, AacError> {
        let n = n.min(32);
        if self.bits_left() < n as usize {
            return Err(AacError::Truncated(field));
        }
        let mut v: u32 = 0;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or(AacError::Truncated(field))?;
            v = (v << 1) | u32::from((byte >> (7 - (self.pos % 8))) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, AacError> {
        Ok(self.bits(1, field)? == 1)
    }

    /// Skips `n` bits if they are there; reports whether they were.
    fn skip(&mut self, n: usize) -> bool {
        if self.bits_left() >= n {
            self.pos += n;
            true
        } else {
            false
        }
    }
}
