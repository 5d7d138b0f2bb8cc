//! Why a fragmented MP4 writer could not be created. Only codec configurations are checked
//! (at creation); pushing frames never fails — bad frames are dropped and counted instead.

use std::fmt;

/// Why [`super::FragmentedMp4Writer::new`] refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mp4Error {
    /// Neither a video nor an audio configuration was given.
    NoTracks,
    /// The H.264 configuration has no SPS or no PPS, so `avcC` would not decode.
    MissingParameterSets,
    /// An SPS or PPS is longer than the 65535 bytes `avcC` can describe.
    ParameterSetTooLong(usize),
    /// The AAC configuration has a sample rate of 0 Hz.
    ZeroSampleRate,
    /// The AudioSpecificConfig bytes are empty or longer than the 1024 bytes we accept.
    BadAudioConfigLength(usize),
}

impl fmt::Display for Mp4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mp4Error::NoTracks => write!(f, "an MP4 file needs at least one track"),
            Mp4Error::MissingParameterSets => {
                write!(f, "the H.264 configuration has no SPS or no PPS")
            }
            Mp4Error::ParameterSetTooLong(n) => {
                write!(f, "an H.264 parameter set of {n} bytes does not fit avcC")
            }
            Mp4Error::ZeroSampleRate => write!(f, "the AAC configuration has a 0 Hz sample rate"),
            Mp4Error::BadAudioConfigLength(n) => {
                write!(f, "an AudioSpecificConfig of {n} bytes cannot be recorded")
            }
        }
    }
}

impl std::error::Error for Mp4Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e: Box<dyn std::error::Error> = Box::new(Mp4Error::ParameterSetTooLong(70000));
        assert_eq!(
            e.to_string(),
            "an H.264 parameter set of 70000 bytes does not fit avcC"
        );
        assert_eq!(
            Mp4Error::NoTracks.to_string(),
            "an MP4 file needs at least one track"
        );
    }
}
