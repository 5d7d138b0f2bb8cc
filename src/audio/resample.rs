//! Sample-rate conversion of interleaved stereo PCM to 48 kHz with rubato's FFT resampler
//! (fixed ratio, band-limited, cheap per sample).
//!
//! The resampler's own delay is removed: the first output sample corresponds to the first
//! input sample, so timestamps carry over unchanged.

use rubato::{FftFixedIn, Resampler as _};

use super::{CHANNELS, OPUS_RATE};

/// Input per FFT chunk, in ms: small, because audio is held back until a chunk is full.
const CHUNK_MS: usize = 10;

/// Converts one input rate to 48 kHz.
pub struct Resampler {
    from: u32,
    inner: Option<FftFixedIn<f32>>,
    /// Planar input waiting for a full chunk.
    input: [Vec<f32>; CHANNELS],
    /// Output samples (per channel) still to drop to cancel the resampler's delay.
    to_skip: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .finish()
    }
}

impl Resampler {
    /// A resampler from `from` Hz to 48 kHz. 48 kHz input passes through untouched.
    pub fn new(from: u32) -> Result<Self, String> {
        let inner = if from == OPUS_RATE {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(
                    from as usize,
                    OPUS_RATE as usize,
                    (from as usize * CHUNK_MS / 1000).max(1),
                    1,
                    CHANNELS,
                )
                .map_err(|e| format!("cannot resample {from} Hz to 48 kHz: {e}"))?,
            )
        };
        let to_skip = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            from,
            inner,
            input: [Vec::new(), Vec::new()],
            to_skip,
        })
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Adds interleaved stereo `i16` samples; appends the 48 kHz interleaved `f32` output
    /// available so far to `out`.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            out.extend(samples.iter().map(|&s| s as f32 / 32768.0));
            return;
        };
        for pair in samples.chunks_exact(CHANNELS) {
            for (channel, &s) in self.input.iter_mut().zip(pair) {
                channel.push(s as f32 / 32768.0);
            }
        }
        loop {
            let need = inner.input_frames_next();
            if self.input[0].len() < need {
                break;
            }
            let chunk: Vec<Vec<f32>> = self
                .input
                .iter_mut()
                .map(|c| c.drain(..need).collect())
                .collect();
            let Ok(output) = inner.process(&chunk, None) else {
                // Only possible with mismatched buffer sizes, which `need` rules out.
                break;
            };
            let frames = output.first().map_or(0, Vec::len);
            let skip = self.to_skip.min(frames);
            self.to_skip -= skip;
            for i in skip..frames {
                for channel in &output {
                    out.push(channel.get(i).copied().unwrap_or(0.0));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, seconds: f32) -> Vec<i16> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin();
                let s = (v * 16000.0) as i16;
                [s, s]
            })
            .collect()
    }

    /// Frequency by counting zero crossings of the left channel.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        let crossings = left
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        crossings as f32 * rate as f32 / left.len() as f32
    }

    #[test]
    fn every_aac_rate_becomes_48k_at_the_same_pitch_and_length() {
        for rate in [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000] {
            let mut r = Resampler::new(rate).unwrap();
            let mut out = Vec::new();
            let input = sine(rate, 1000.0, 1.0);
            for piece in input.chunks(2048) {
                r.push(piece, &mut out);
            }
            let seconds = out.len() as f32 / 2.0 / 48000.0;
            assert!(seconds > 0.9 && seconds <= 1.0, "{rate}: {seconds} s");
            let f = frequency(&out[4800..], 48000);
            assert!((f - 1000.0).abs() < 10.0, "{rate}: {f} Hz");
        }
    }

    #[test]
    fn resampler_delay_is_removed() {
        // A click at input sample 2000 appears at output 2000 * 48000 / 22050 (±2).
        let mut input = vec![0i16; 22050 * 2];
        input[4000] = 30000;
        input[4001] = 30000;
        let mut r = Resampler::new(22050).unwrap();
        let mut out = Vec::new();
        r.push(&input, &mut out);
        let peak = out
            .iter()
            .step_by(2)
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0 as i64;
        let expected = 2000 * 48000 / 22050;
        assert!(
            (peak - expected).abs() <= 2,
            "peak at {peak}, expected {expected}"
        );
    }
}
