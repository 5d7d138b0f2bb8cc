//! [`AudioTranscoder`]: AAC frames in, 20 ms Opus frames out, on the capture's timeline.
//!
//! One per capture, shared by all its WebRTC viewers. It follows codec changes (a new
//! AudioSpecificConfig mid-stream is applied, not dropped), output-rate changes (implicit
//! SBR shows only once decoding starts), and gaps: when a frame's time is more than
//! [`RESYNC_MS`] away from where the previous one ended, the resampler and framer restart
//! at the new time instead of stretching or squeezing audio.

use std::sync::Arc;

use bytes::Bytes;
use opus::{Application, Bitrate, Channels, Encoder};

use super::decode::AacDecoder;
use super::framer::OpusFramer;
use super::resample::Resampler;
use super::OPUS_RATE;
use crate::codec::aac::AudioSpecificConfig;
use crate::media::{MediaFrame, Track};

/// A frame this far (ms) from the expected time restarts the timeline.
pub const RESYNC_MS: f64 = 60.0;
/// Largest Opus packet we accept from the encoder.
const MAX_PACKET: usize = 4000;

/// AAC → Opus for one capture.
pub struct AudioTranscoder {
    decoder: Option<AacDecoder>,
    resampler: Option<Resampler>,
    framer: OpusFramer,
    encoder: Encoder,
    /// Where the previous AAC frame ended, in ms.
    expected_ms: Option<f64>,
    pcm48: Vec<f32>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for AudioTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioTranscoder")
            .field("expected_ms", &self.expected_ms)
            .finish()
    }
}

impl AudioTranscoder {
    /// A transcoder encoding stereo Opus at `bitrate` bits per second.
    pub fn new(bitrate: i32) -> Result<Self, String> {
        let mut encoder = Encoder::new(OPUS_RATE, Channels::Stereo, Application::Audio)
            .map_err(|e| format!("cannot create the Opus encoder: {e}"))?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate))
            .map_err(|e| format!("Opus bitrate {bitrate}: {e}"))?;
        Ok(Self {
            decoder: None,
            resampler: None,
            framer: OpusFramer::default(),
            encoder,
            expected_ms: None,
            pcm48: Vec::new(),
            packet: vec![0; MAX_PACKET],
        })
    }

    /// Applies an AAC configuration (the first, or a change mid-stream).
    pub fn set_config(&mut self, config: &Arc<AudioSpecificConfig>) -> Result<(), String> {
        self.decoder = None;
        self.expected_ms = None;
        self.decoder = Some(AacDecoder::new(config).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// Transcodes one AAC frame; returns the Opus frames now complete (often one, sometimes
    /// none or two).
    pub fn push(&mut self, frame: &MediaFrame) -> Result<Vec<MediaFrame>, String> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Err("AAC frame before its configuration".to_string());
        };
        let pcm = decoder.decode(&frame.data).map_err(|e| e.to_string())?;
        let duration_ms = (pcm.samples.len() / 2) as f64 * 1000.0 / pcm.sample_rate as f64;
        let rate_changed = self
            .resampler
            .as_ref()
            .is_none_or(|r| r.from_rate() != pcm.sample_rate);
        let continuous = self
            .expected_ms
            .is_some_and(|e| (frame.pts as f64 - e).abs() <= RESYNC_MS);
        if rate_changed || !continuous {
            self.resampler = Some(Resampler::new(pcm.sample_rate)?);
            self.framer.reset(frame.pts);
            self.expected_ms = Some(frame.pts as f64);
        }
        self.expected_ms = self.expected_ms.map(|e| e + duration_ms);
        self.pcm48.clear();
        if let Some(resampler) = self.resampler.as_mut() {
            resampler.push(pcm.samples, &mut self.pcm48);
        }
        self.framer.push(&self.pcm48);
        let mut out = Vec::new();
        while let Some((pts, samples)) = self.framer.pop() {
            let len = self
                .encoder
                .encode_float(&samples, &mut self.packet)
                .map_err(|e| format!("Opus encoding failed: {e}"))?;
            out.push(MediaFrame {
                track: Track::Audio,
                pts,
                dts: pts,
                keyframe: true,
                data: Bytes::copy_from_slice(self.packet.get(..len).unwrap_or_default()),
                ingest_us: frame.ingest_us,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "transcoder_tests.rs"]
mod tests;
