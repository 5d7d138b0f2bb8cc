//! ISO BMFF box-writing primitives: a growable big-endian byte buffer that opens boxes with
//! a placeholder size and back-patches the exact size when the box is closed.
//!
//! This is the only place that knows how a box header is laid out. It writes into memory
//! only (no I/O) and never panics: sizes that would not fit 32 bits are saturated, which the
//! callers rule out by bounding how much they put in one box (see `writer.rs`).

/// Where an open box starts in the buffer; hand it back to [`BoxWriter::end_box`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an open box must be closed with end_box"]
pub(crate) struct BoxStart(usize);

/// A big-endian byte buffer with box helpers.
#[derive(Debug, Default)]
pub(crate) struct BoxWriter {
    buf: Vec<u8>,
}

impl BoxWriter {
    /// An empty writer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The finished bytes.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Opens a box: a 4-byte size placeholder and the 4-character type.
    pub(crate) fn start_box(&mut self, fourcc: &[u8; 4]) -> BoxStart {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        BoxStart(start)
    }

    /// Opens a full box: box header, then 1 byte of version and 24 bits of flags.
    pub(crate) fn start_full_box(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> BoxStart {
        let start = self.start_box(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        start
    }

    /// Closes the box opened at `start`, writing its exact size (header included).
    pub(crate) fn end_box(&mut self, start: BoxStart) {
        let size = self.buf.len().saturating_sub(start.0);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        self.patch_u32(start.0, size);
    }

    /// Overwrites 4 bytes at `pos` (no-op when out of range).
    pub(crate) fn patch_u32(&mut self, pos: usize, value: u32) {
        if let Some(slot) = self.buf.get_mut(pos..pos.saturating_add(4)) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// `n` zero bytes.
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len().saturating_add(n), 0);
    }
}

/// The unity transformation matrix of `mvhd` and `tkhd` (ISO/IEC 14496-12 §8.2.2.3).
pub(crate) const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_exact_sizes() {
        let mut w = BoxWriter::default();
        let outer = w.start_box(b"moov");
        let inner = w.start_full_box(b"mvhd", 1, 0x0102_0304);
        w.u16(0xabcd);
        w.end_box(inner);
        let empty = w.start_box(b"free");
        w.end_box(empty);
        w.end_box(outer);
        let v = w.into_vec();
        assert_eq!(v.len(), 8 + 14 + 8);
        assert_eq!(&v[..8], &[0, 0, 0, 30, b'm', b'o', b'o', b'v']);
        // Flags keep only 24 bits.
        assert_eq!(
            &v[8..22],
            &[0, 0, 0, 14, b'm', b'v', b'h', b'd', 1, 2, 3, 4, 0xab, 0xcd]
        );
        assert_eq!(&v[22..], &[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    }

    #[test]
    fn primitives_are_big_endian() {
        let mut w = BoxWriter::with_capacity(4);
        w.u8(1);
        w.u24(0x0203_0405);
        w.i32(-2);
        w.u64(0x0102_0304_0506_0708);
        w.zeros(2);
        w.patch_u32(100, 7); // out of range: ignored
        assert_eq!(w.len(), 1 + 3 + 4 + 8 + 2);
        assert_eq!(
            w.into_vec(),
            vec![1, 3, 4, 5, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]
        );
    }
}
