//! AAC decoding with the FDK AAC decoder (the `fdk-aac` crate: bundled Fraunhofer source,
//! decodes AAC-LC, HE-AAC and HE-AAC v2 — also when SBR/PS are signalled only implicitly,
//! which pure-Rust decoders do not). Output is always interleaved stereo `i16`.

use std::fmt;

use fdk_aac::dec::{Decoder, Transport};

use crate::codec::aac::AudioSpecificConfig;

/// Largest PCM output of one frame: 2048 samples (HE-AAC) × 2 channels, with headroom.
const MAX_PCM: usize = 2048 * 8;

/// Why a frame or a configuration could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcm<'a> {
    /// Output sample rate (twice the core rate when SBR is present, even implicitly).
    pub sample_rate: u32,
    /// Interleaved stereo samples.
    pub samples: &'a [i16],
}

/// An AAC decoder for one configuration.
pub struct AacDecoder {
    decoder: Decoder,
    pcm: Vec<i16>,
}

impl fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AacDecoder").finish()
    }
}

impl AacDecoder {
    /// A decoder for raw AAC frames described by `config`.
    pub fn new(config: &AudioSpecificConfig) -> Result<Self, DecodeError> {
        let mut decoder = Decoder::new(Transport::Raw);
        decoder.config_raw(&config.raw).map_err(|e| {
            DecodeError(format!(
                "AAC decoder refused the configuration: {}",
                e.message()
            ))
        })?;
        for result in [
            decoder.set_min_output_channels(2),
            decoder.set_max_output_channels(2),
        ] {
            result.map_err(|e| DecodeError(format!("AAC decoder setup: {}", e.message())))?;
        }
        Ok(Self {
            decoder,
            pcm: vec![0; MAX_PCM],
        })
    }

    /// Decodes one raw AAC frame.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Pcm<'_>, DecodeError> {
        let consumed = self
            .decoder
            .fill(frame)
            .map_err(|e| DecodeError(format!("AAC frame rejected: {}", e.message())))?;
        if consumed != frame.len() {
            return Err(DecodeError(format!(
                "AAC decoder took {consumed} of {} bytes",
                frame.len()
            )));
        }
        self.decoder
            .decode_frame(&mut self.pcm)
            .map_err(|e| DecodeError(format!("AAC frame undecodable: {}", e.message())))?;
        let info = self.decoder.stream_info();
        let channels = info.numChannels.max(0) as usize;
        let rate = info.sampleRate.max(0) as u32;
        if channels != 2 || rate == 0 {
            return Err(DecodeError(format!(
                "AAC decoder gave {channels} channels at {rate} Hz"
            )));
        }
        let len = (self.decoder.decoded_frame_size()).min(self.pcm.len());
        Ok(Pcm {
            sample_rate: rate,
            samples: self.pcm.get(..len).unwrap_or_default(),
        })
    }
}
