//! FLV *files*: the 9-byte header, then tags (11-byte header, body, 4-byte back-pointer).
//!
//! RTMP carries tag bodies without this framing; files carry it. Used by the benchmarks and
//! the tests that replay recorded sources through the same code as a live pull. Never
//! panics: a truncated or malformed file is an error naming the offset.

use std::fmt;

use bytes::Bytes;

/// One tag of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Milliseconds (the 24-bit field with its extension byte).
    pub timestamp: u32,
    /// The tag body, as RTMP would carry it.
    pub body: Bytes,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvFileError {
    NotFlv,
    Truncated { offset: usize },
}

impl fmt::Display for FlvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFlv => write!(f, "not an FLV file (no 'FLV' signature)"),
            Self::Truncated { offset } => write!(f, "FLV file truncated at byte {offset}"),
        }
    }
}

impl std::error::Error for FlvFileError {}

/// Every tag of `file`, in order.
pub fn read_flv_file(file: &[u8]) -> Result<Vec<FileTag>, FlvFileError> {
    let header = file.get(..9).ok_or(FlvFileError::NotFlv)?;
    if header.get(..3) != Some(b"FLV".as_slice()) {
        return Err(FlvFileError::NotFlv);
    }
    let header_len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    let mut at = header_len.max(9) + 4;
    let mut tags = Vec::new();
    while at < file.len() {
        let h = file
            .get(at..at + 11)
            .ok_or(FlvFileError::Truncated { offset: at })?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = file
            .get(at + 11..at + 11 + size)
            .ok_or(FlvFileError::Truncated { offset: at })?;
        tags.push(FileTag {
            kind: h[0] & 0x1f,
            timestamp,
            body: Bytes::copy_from_slice(body),
        });
        at += 11 + size + 4;
    }
    Ok(tags)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_vectors::bframes_flv;

    #[test]
    fn reads_the_x264_vector() {
        let tags = read_flv_file(&bframes_flv()).unwrap();
        let video = tags.iter().filter(|t| t.kind == 9).count();
        assert_eq!(video, 47, "sequence header + 45 frames + end of sequence");
        assert!(tags.iter().any(|t| t.kind == 18), "onMetaData");
        assert!(tags.windows(2).all(|w| w[1].timestamp >= w[0].timestamp));
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert_eq!(read_flv_file(b"FL"), Err(FlvFileError::NotFlv));
        assert_eq!(
            read_flv_file(b"MP4\x01\x05\0\0\0\x09"),
            Err(FlvFileError::NotFlv)
        );
        let file = bframes_flv();
        for cut in [20, 100, 1000, file.len() - 8] {
            assert!(matches!(
                read_flv_file(&file[..cut]),
                Err(FlvFileError::Truncated { .. })
            ));
        }
    }
}
