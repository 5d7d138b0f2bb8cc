//! AMF0 bodies from a remote server, checked before `rml_amf0` decodes them.
//!
//! `rml_amf0` 0.3 parses nested objects and arrays recursively and believes every count it
//! reads, so a hostile body could overflow the stack or become millions of values. The
//! walk here follows the same path without recursion and refuses a body nested deeper than
//! [`MAX_AMF0_DEPTH`] or holding more than [`MAX_AMF0_VALUES`] values; only then is it
//! decoded. Pure functions, no state.

use std::io::Cursor;

use rml_rtmp::rml_amf0::{self, Amf0Value};

/// Deepest nesting of AMF0 objects and arrays we decode. `rml_amf0` parses them recursively,
/// so a body of nested strict arrays (5 bytes a level) would overflow the stack long before
/// the 1 MiB AMF message limit. Status objects and metadata nest two or three levels.
pub(crate) const MAX_AMF0_DEPTH: usize = 32;

/// Most AMF0 values we decode from one message: 65 536. A body at the 1 MiB AMF message cap
/// made of one-byte nulls would otherwise become a million values (about 60 MB decoded).
/// Ample for the keyframe tables in the `onMetaData` of long recordings (two numbers per
/// keyframe: 18 hours at 2 s GOPs).
pub(crate) const MAX_AMF0_VALUES: usize = 1 << 16;

/// Decodes an AMF0 body with `rml_amf0` once [`amf0_too_big`] has found it safe to.
pub(crate) fn decode_amf0(data: &[u8]) -> Result<Vec<Amf0Value>, String> {
    if let Some(why) = amf0_too_big(data) {
        return Err(why);
    }
    rml_amf0::deserialize(&mut Cursor::new(data)).map_err(|e| e.to_string())
}

/// Walks an AMF0 body along the path `rml_amf0` 0.3 would take, without recursion, and
/// says why it must not be handed to it: nested deeper than [`MAX_AMF0_DEPTH`] or more than
/// [`MAX_AMF0_VALUES`] values. Where the bytes are malformed the walk stops and says
/// nothing: `rml_amf0` stops at the same place with an error (it also rejects bad UTF-8,
/// which the walk skips, so the walk never sees less than `rml_amf0` would parse).
pub(crate) fn amf0_too_big(data: &[u8]) -> Option<String> {
    enum Frame {
        Object,
        /// A strict array with this many values still to come.
        Array(u32),
    }
    fn read_be(data: &[u8], pos: &mut usize, len: usize) -> Option<u32> {
        let bytes = data.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        Some(bytes.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)))
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0usize;
    let mut values = 0usize;
    loop {
        // What comes before the next value: nothing, or an object property's name.
        let in_property = match stack.last_mut() {
            None => false,
            Some(Frame::Array(left)) => {
                if *left == 0 {
                    stack.pop();
                    continue;
                }
                *left -= 1;
                false
            }
            Some(Frame::Object) => {
                let label = read_be(data, &mut pos, 2)?;
                if label == 0 {
                    // An empty name must be the object's end marker.
                    if data.get(pos) != Some(&0x09) {
                        return None;
                    }
                    pos += 1;
                    stack.pop();
                    continue;
                }
                // rml_amf0 reads what there is of a truncated name.
                pos = pos.saturating_add(label as usize).min(data.len());
                true
            }
        };
        let marker = data.get(pos).copied();
        pos = pos.saturating_add(1);
        match marker {
            // No value: the end of the body, or of a strict array; an error in a property.
            None | Some(0x09) => {
                if in_property {
                    return None;
                }
                stack.pop()?;
                continue;
            }
            Some(_) => {
                values += 1;
                if values > MAX_AMF0_VALUES {
                    return Some(format!("more than {MAX_AMF0_VALUES} AMF0 values"));
                }
            }
        }
        let frame = match marker {
            Some(0x00) => {
                read_be(data, &mut pos, 4)?;
                read_be(data, &mut pos, 4)?;
                None
            }
            Some(0x01) => {
                read_be(data, &mut pos, 1)?;
                None
            }
            Some(0x02) => {
                let len = read_be(data, &mut pos, 2)?;
                pos = pos.saturating_add(len as usize).min(data.len());
                None
            }
            Some(0x03) => Some(Frame::Object),
            Some(0x05) | Some(0x06) => None,
            Some(0x08) => {
                // The ECMA array's count, then properties as in an object.
                read_be(data, &mut pos, 4)?;
                Some(Frame::Object)
            }
            Some(0x0a) => Some(Frame::Array(read_be(data, &mut pos, 4)?)),
            _ => return None,
        };
        if let Some(frame) = frame {
            if stack.len() >= MAX_AMF0_DEPTH {
                return Some(format!("AMF0 nested deeper than {MAX_AMF0_DEPTH} levels"));
            }
            stack.push(frame);
        }
    }
}
