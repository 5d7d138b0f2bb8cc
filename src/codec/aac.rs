//! AAC's `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) — what FLV's AAC sequence header
//! and MP4's `esds` carry — and the 7-byte ADTS header needed to frame raw AAC for outputs
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
    /// A sampling frequency outside [`STANDARD_SAMPLE_RATES`] (an explicit 24-bit value).
    UnsupportedSampleRate(u32),
    /// The config is longer than [`MAX_AUDIO_SPECIFIC_CONFIG_BYTES`].
    ConfigTooLarge(usize),
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
            AacError::UnsupportedSampleRate(rate) => write!(
                f,
                "AAC sampling frequency {rate} Hz is not one of the standard rates"
            ),
            AacError::ConfigTooLarge(len) => write!(
                f,
                "AAC AudioSpecificConfig of {len} bytes is over the \
                 {MAX_AUDIO_SPECIFIC_CONFIG_BYTES}-byte limit"
            ),
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

/// The sampling frequencies accepted: the 13 of the index table (ISO/IEC 14496-3 Table
/// 1.18), 7350 Hz included (it is in the table and FDK AAC decodes it). An explicit 24-bit
/// frequency is accepted only when it is one of these: any other value would make the
/// resampler to 48 kHz size its buffers after an arbitrary ratio (1 Hz → 48 000×).
pub const STANDARD_SAMPLE_RATES: [u32; 13] = SAMPLE_RATES;

/// Largest AudioSpecificConfig accepted: 1 KiB. Encoders write 2–7 bytes; the longest
/// legitimate ones carry a program_config_element (at most 45 elements and a 255-byte
/// comment, under 400 bytes) or a USAC config with loudness extensions.
pub const MAX_AUDIO_SPECIFIC_CONFIG_BYTES: usize = 1024;

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
///
/// Refused: a config over [`MAX_AUDIO_SPECIFIC_CONFIG_BYTES`], a core or SBR sampling
/// frequency outside [`STANDARD_SAMPLE_RATES`].
pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, AacError> {
    if data.len() > MAX_AUDIO_SPECIFIC_CONFIG_BYTES {
        return Err(AacError::ConfigTooLarge(data.len()));
    }
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
        if !STANDARD_SAMPLE_RATES.contains(&rate) {
            return Err(AacError::UnsupportedSampleRate(rate));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn asc(data: &[u8]) -> AudioSpecificConfig {
        parse_audio_specific_config(data).unwrap()
    }

    /// (object_type, sample_rate, channels, sbr, ps, extension_sample_rate, frame_length)
    type Summary = (u8, u32, u8, bool, bool, Option<u32>, u16);

    fn summary(data: &[u8]) -> Summary {
        let c = asc(data);
        assert_eq!(c.raw, Bytes::copy_from_slice(data));
        (
            c.object_type,
            c.sample_rate,
            c.channels,
            c.sbr,
            c.ps,
            c.extension_sample_rate,
            c.frame_length,
        )
    }

    const fn lc(rate: u32, channels: u8) -> Summary {
        (2, rate, channels, false, false, None, 1024)
    }

    /// Every prefix shorter than `mandatory` bytes is an error; no prefix panics.
    fn check_prefixes(data: &[u8], mandatory: usize) {
        for len in 0..=data.len() {
            let result = parse_audio_specific_config(&data[..len]);
            if len < mandatory {
                assert!(result.is_err(), "{data:02x?}: prefix of {len} bytes parsed");
            }
        }
    }

    #[test]
    fn two_byte_lc_configs() {
        // 00010 0100 0010 0 0 0: AOT 2, index 4 (44100), channels 2, GASpecificConfig 0 0 0.
        assert_eq!(summary(&[0x12, 0x10]), lc(44100, 2));
        // 00010 0011 0010 000: index 3 (48000), stereo.
        assert_eq!(summary(&[0x11, 0x90]), lc(48000, 2));
        // 00010 1011 0001 000: index 11 is 8000 Hz, not 11025, mono.
        assert_eq!(summary(&[0x15, 0x88]), lc(8000, 1));
        // 00010 1010 0001 000: index 10 is 11025, mono.
        assert_eq!(summary(&[0x15, 0x08]), lc(11025, 1));
        // 00010 1000 0001 000: index 8 is 16000 Hz, not 22050, mono.
        assert_eq!(summary(&[0x14, 0x08]), lc(16000, 1));
        // 00010 0111 0001 000: index 7, 22050 mono; 0110 is 24000.
        assert_eq!(summary(&[0x13, 0x88]), lc(22050, 1));
        assert_eq!(summary(&[0x13, 0x10]), lc(24000, 2));
        assert_eq!(summary(&[0x12, 0x88]), lc(32000, 1));
        assert_eq!(summary(&[0x14, 0x10]), lc(16000, 2));
        for data in [[0x12, 0x10], [0x11, 0x90], [0x15, 0x88]] {
            check_prefixes(&data, 2);
        }
        let c = asc(&[0x12, 0x10]);
        assert_eq!(c.profile_name(), "AAC-LC");
        assert_eq!((c.output_sample_rate(), c.output_channels()), (44100, 2));
    }

    /// What ffmpeg's native encoder writes into MP4/FLV (`-c:a aac`, read back with
    /// `ffprobe -show_data`): the 2-byte config, then syncExtensionType 0x2b7,
    /// extensionAudioObjectType 5 and sbrPresentFlag 0, i.e. "explicitly no SBR".
    #[test]
    fn ffmpeg_configs_with_sbr_explicitly_absent() {
        let cases: [([u8; 5], Summary); 15] = [
            ([0x11, 0x90, 0x56, 0xe5, 0x00], lc(48000, 2)),
            ([0x15, 0x88, 0x56, 0xe5, 0x00], lc(8000, 1)),
            ([0x15, 0x90, 0x56, 0xe5, 0x00], lc(8000, 2)),
            ([0x14, 0x08, 0x56, 0xe5, 0x00], lc(16000, 1)),
            ([0x14, 0x10, 0x56, 0xe5, 0x00], lc(16000, 2)),
            ([0x13, 0x08, 0x56, 0xe5, 0x00], lc(24000, 1)),
            ([0x13, 0x10, 0x56, 0xe5, 0x00], lc(24000, 2)),
            ([0x12, 0x88, 0x56, 0xe5, 0x00], lc(32000, 1)),
            ([0x12, 0x90, 0x56, 0xe5, 0x00], lc(32000, 2)),
            ([0x13, 0x88, 0x56, 0xe5, 0x00], lc(22050, 1)),
            ([0x13, 0x90, 0x56, 0xe5, 0x00], lc(22050, 2)),
            ([0x15, 0x08, 0x56, 0xe5, 0x00], lc(11025, 1)),
            ([0x15, 0x10, 0x56, 0xe5, 0x00], lc(11025, 2)),
            ([0x12, 0x10, 0x56, 0xe5, 0x00], lc(44100, 2)),
            ([0x12, 0x08, 0x56, 0xe5, 0x00], lc(44100, 1)),
        ];
        for (data, expected) in cases {
            assert_eq!(summary(&data), expected, "{data:02x?}");
            check_prefixes(&data, 2);
        }
    }

    #[test]
    fn explicit_hierarchical_he_aac() {
        // 00101 0111 0010 0100 00010 000 (+ 7 padding bits):
        // AOT 5 (SBR), index 7 = 22050 core, stereo, extension index 4 = 44100,
        // core AOT 2, GASpecificConfig 0 0 0.
        let data = [0x2b, 0x92, 0x08, 0x00];
        assert_eq!(
            summary(&data),
            (2, 22050, 2, true, false, Some(44100), 1024)
        );
        let c = asc(&data);
        assert_eq!(c.profile_name(), "HE-AAC");
        assert_eq!((c.output_sample_rate(), c.output_channels()), (44100, 2));
        check_prefixes(&data, 4);

        // An explicit 24-bit extension rate: 00101 0111 0010 1111 <44100:24> 00010 000.
        let data = [0x2b, 0x97, 0x80, 0x56, 0x22, 0x08, 0x00];
        assert_eq!(
            summary(&data),
            (2, 22050, 2, true, false, Some(44100), 1024)
        );
        check_prefixes(&data, 7);
    }

    #[test]
    fn explicit_hierarchical_he_aac_v2() {
        // 11101 0110 0001 0011 00010 000: AOT 29 (PS), index 6 = 24000 core, mono,
        // extension index 3 = 48000, core AOT 2, GASpecificConfig 0 0 0.
        let data = [0xeb, 0x09, 0x88, 0x00];
        assert_eq!(summary(&data), (2, 24000, 1, true, true, Some(48000), 1024));
        let c = asc(&data);
        assert_eq!(c.profile_name(), "HE-AACv2");
        assert_eq!((c.output_sample_rate(), c.output_channels()), (48000, 2));
        check_prefixes(&data, 4);
    }

    #[test]
    fn backward_compatible_sbr() {
        // 00010 0111 0010 000 | 01010110111 | 00101 | 1 | 0100 (+ 4 padding bits):
        // LC 22050 stereo, syncExtensionType 0x2b7, extension AOT 5, sbrPresentFlag 1,
        // extension index 4 = 44100.
        let data = [0x13, 0x90, 0x56, 0xe5, 0xa0];
        assert_eq!(
            summary(&data),
            (2, 22050, 2, true, false, Some(44100), 1024)
        );
        assert_eq!(asc(&data).output_sample_rate(), 44100);
        // The "13 10 56 E5 98" form: 00010 0110 0010 000 -> index 6 is 24000 (not 22050),
        // then 0x2b7, AOT 5, sbrPresentFlag 1, extension index 0011 = 48000, 000.
        let data = [0x13, 0x10, 0x56, 0xe5, 0x98];
        assert_eq!(
            summary(&data),
            (2, 24000, 2, true, false, Some(48000), 1024)
        );
        // Only the 2-byte core is mandatory; a cut inside the extension is an error, but
        // with fewer than 16 bits after the core there is simply no extension.
        check_prefixes(&data, 2);
        assert_eq!(summary(&data[..3]), lc(24000, 2));
        assert_eq!(
            parse_audio_specific_config(&data[..4]),
            Err(AacError::Truncated("sbrPresentFlag"))
        );
    }

    #[test]
    fn backward_compatible_ps() {
        // 00010 0110 0001 000 | 01010110111 | 00101 | 1 | 0011 | 10101001000 | 1:
        // LC 24000 mono, SBR at 48000, then syncExtensionType 0x548 and psPresentFlag 1.
        let data = [0x13, 0x08, 0x56, 0xe5, 0x9d, 0x48, 0x80];
        assert_eq!(summary(&data), (2, 24000, 1, true, true, Some(48000), 1024));
        let c = asc(&data);
        assert_eq!(c.profile_name(), "HE-AACv2");
        assert_eq!((c.output_sample_rate(), c.output_channels()), (48000, 2));
        // Fewer than 12 bits after the SBR part: SBR without PS.
        assert_eq!(
            summary(&data[..6]),
            (2, 24000, 1, true, false, Some(48000), 1024)
        );
    }

    #[test]
    fn escaped_object_types() {
        // 11111 000111 0011 0001 1: AOT 31 + 7 = 39 (ER AAC ELD), 48000, mono,
        // ELDSpecificConfig frameLengthFlag 1 = 480.
        let data = [0xf8, 0xe6, 0x30];
        assert_eq!(summary(&data), (39, 48000, 1, false, false, None, 480));
        assert_eq!(asc(&data).profile_name(), "AAC-ELD");
        check_prefixes(&data, 3);
        // 11111 001010 0100 0010: AOT 42 (USAC), 44100 stereo; specific config not parsed.
        let c = asc(&[0xf9, 0x48, 0x40]);
        assert_eq!((c.object_type, c.sample_rate, c.channels), (42, 44100, 2));
        assert_eq!(c.profile_name(), "AAC");
        assert_eq!(adts_header(&c, 10), None);
    }

    #[test]
    fn explicit_sample_rate() {
        // 00010 1111 <44100:24> 0010 000: a standard rate written out is accepted.
        let data = [0x17, 0x80, 0x56, 0x22, 0x10];
        assert_eq!(summary(&data), lc(44100, 2));
        check_prefixes(&data, 5);
        // 00010 1111 <37800:24> 0010 000: not a standard rate.
        assert_eq!(
            parse_audio_specific_config(&[0x17, 0x80, 0x49, 0xd4, 0x10]),
            Err(AacError::UnsupportedSampleRate(37800))
        );
        // <1:24> and <16777215:24>: the extremes a resampler would be sized after.
        assert_eq!(
            parse_audio_specific_config(&[0x17, 0x80, 0x00, 0x00, 0x90]),
            Err(AacError::UnsupportedSampleRate(1))
        );
        assert_eq!(
            parse_audio_specific_config(&[0x17, 0xff, 0xff, 0xff, 0x90]),
            Err(AacError::UnsupportedSampleRate(0xff_ffff))
        );
        assert_eq!(
            AacError::UnsupportedSampleRate(37800).to_string(),
            "AAC sampling frequency 37800 Hz is not one of the standard rates"
        );
        // Every rate of the index table, also 7350 Hz (index 12), written as an index.
        for (index, &rate) in STANDARD_SAMPLE_RATES.iter().enumerate() {
            // 00010 iiii 0010 000
            let i = index as u8;
            let c = asc(&[0x10 | (i >> 1), ((i & 1) << 7) | 0x10]);
            assert_eq!(c.sample_rate, rate);
        }
        // 00010 1111 <0:24> ...
        assert_eq!(
            parse_audio_specific_config(&[0x17, 0x80, 0, 0, 0x10]),
            Err(AacError::ZeroSampleRate)
        );
    }

    #[test]
    fn explicit_sbr_rate_must_be_standard_too() {
        // 00101 0111 0010 1111 <44100:24> 00010 000 parses (see explicit_hierarchical_he_aac);
        // with <44101:24> as the extension rate it does not.
        let data = [0x2b, 0x97, 0x80, 0x56, 0x22, 0x88, 0x00];
        assert_eq!(
            parse_audio_specific_config(&data),
            Err(AacError::UnsupportedSampleRate(44101))
        );
    }

    #[test]
    fn an_oversized_config_is_refused() {
        let mut data = vec![0x12, 0x10];
        data.resize(MAX_AUDIO_SPECIFIC_CONFIG_BYTES, 0);
        assert_eq!(summary(&data), lc(44100, 2));
        data.push(0);
        assert_eq!(
            parse_audio_specific_config(&data),
            Err(AacError::ConfigTooLarge(
                MAX_AUDIO_SPECIFIC_CONFIG_BYTES + 1
            ))
        );
    }

    #[test]
    fn ga_specific_config_fields() {
        // 00010 0100 0010 1 0 0: frameLengthFlag 1 -> 960.
        assert_eq!(
            summary(&[0x12, 0x14]),
            (2, 44100, 2, false, false, None, 960)
        );
        // 00010 0100 0010 0 1 <1234:14> 0: dependsOnCoreCoder with coreCoderDelay.
        let data = [0x12, 0x12, 0x26, 0x90];
        assert_eq!(summary(&data), lc(44100, 2));
        check_prefixes(&data, 4);
        // AAC-LD (AOT 23): 10111 0011 0001 1 0 0 -> frameLengthFlag 1 is 480.
        let c = asc(&[0xb9, 0x8c, 0x00]);
        assert_eq!((c.object_type, c.frame_length), (23, 480));
        assert_eq!(c.profile_name(), "AAC-LD");
        // Other object types by name.
        for (aot, name) in [(1u8, "AAC Main"), (3, "AAC-SSR"), (4, "AAC-LTP")] {
            let first = (aot << 3) | 0b010; // index 4 (0100): high 3 bits 010
            let c = asc(&[first, 0x10]);
            assert_eq!((c.object_type, c.sample_rate, c.channels), (aot, 44100, 2));
            assert_eq!(c.profile_name(), name);
        }
    }

    #[test]
    fn channel_configurations() {
        // 00010 0011 cccc 000
        let with_config = |c: u8| [0x11, 0x80 | (c << 3)];
        for (config, channels) in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)] {
            assert_eq!(asc(&with_config(config)).channels, channels);
        }
        assert_eq!(asc(&with_config(7)).channels, 8);
        assert_eq!(asc(&with_config(11)).channels, 7);
        assert_eq!(asc(&with_config(13)).channels, 24);
        for reserved in [8, 9, 10, 15] {
            assert_eq!(
                parse_audio_specific_config(&with_config(reserved)),
                Err(AacError::ReservedChannelConfig(reserved))
            );
        }
    }

    #[test]
    fn invalid_configs() {
        // AOT 0.
        assert_eq!(
            parse_audio_specific_config(&[0x01, 0x10]),
            Err(AacError::InvalidObjectType(0))
        );
        // Reserved sampling frequency index 13: 00010 1101 0010 000.
        assert_eq!(
            parse_audio_specific_config(&[0x16, 0x90]),
            Err(AacError::ReservedSampleRateIndex(13))
        );
        // Hierarchical SBR whose core type is SBR again: 00101 0111 0010 0100 00101 000.
        assert_eq!(
            parse_audio_specific_config(&[0x2b, 0x92, 0x14, 0x00]),
            Err(AacError::InvalidObjectType(5))
        );
        assert_eq!(
            parse_audio_specific_config(&[]),
            Err(AacError::Truncated("audioObjectType"))
        );
        assert_eq!(
            AacError::Truncated("channelConfiguration").to_string(),
            "AAC AudioSpecificConfig truncated before channelConfiguration"
        );
        let e: Box<dyn std::error::Error> = Box::new(AacError::ReservedSampleRateIndex(13));
        assert_eq!(e.to_string(), "reserved AAC sampling frequency index 13");
        // Deterministic pseudo-random junk never panics.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..64 {
            let data = crate::test_vectors::noise(&mut x, len);
            if let Ok(c) = parse_audio_specific_config(&data) {
                let _ = adts_header(&c, len * 37);
            }
        }
    }

    #[test]
    fn adts_header_matches_ffmpeg() {
        // The first frames of `ffmpeg -f lavfi -i sine=frequency=1000:sample_rate=48000
        // -ac 2 -t 0.1 -c:a aac -f adts`: ff f1 4c 80 22 1f fc is a 272-byte frame
        // (265 bytes of payload), ff f1 4c 80 2f 3f fc one of 377 bytes.
        let c = asc(&[0x11, 0x90]);
        assert_eq!(
            adts_header(&c, 265),
            Some([0xff, 0xf1, 0x4c, 0x80, 0x22, 0x1f, 0xfc])
        );
        assert_eq!(
            adts_header(&c, 370),
            Some([0xff, 0xf1, 0x4c, 0x80, 0x2f, 0x3f, 0xfc])
        );
        // HE-AAC keeps its core (LC, 22050) in ADTS: 0x50 | index 7 << 2.
        let he = asc(&[0x2b, 0x92, 0x08, 0x00]);
        assert_eq!(adts_header(&he, 0).map(|h| h[2]), Some(0x5c));
        // 8 channels are channel configuration 7.
        let seven = asc(&[0x11, 0xb8]);
        let h = adts_header(&seven, 0).unwrap();
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 7);
        // Largest representable frame, then one byte too many.
        assert!(adts_header(&c, 0x1fff - 7).is_some());
        assert_eq!(adts_header(&c, 0x1fff - 6), None);
        assert_eq!(adts_header(&c, usize::MAX), None);
        // Object types ADTS cannot carry.
        let ld = asc(&[0xb9, 0x8c, 0x00]);
        assert_eq!(adts_header(&ld, 10), None);
    }
}
