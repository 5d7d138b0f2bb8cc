//! `onMetaData` as the capture keeps it: AMF0 values reduced to what JSON can say
//! ([`MetaValue`]), scalar properties first, within [`MAX_METADATA_BYTES`] and with strings
//! cut at [`MAX_METADATA_STRING_BYTES`] — a remote server decides how big it is.

use std::collections::HashMap;

use rml_rtmp::rml_amf0::Amf0Value;

/// Most bytes of `onMetaData` kept for the capture (property names, strings, and
/// [`META_VALUE_COST`] per value): 16 KiB. The metadata is held as long as the capture and
/// copied into every `find_all` answer; the properties worth showing (size, rates, codecs,
/// encoder) take well under 1 KiB. Scalar properties are kept first, so a large keyframe
/// table cannot push out the width or the frame rate.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Longest metadata string kept, in bytes (cut at a character boundary).
pub const MAX_METADATA_STRING_BYTES: usize = 512;

/// What one metadata value is counted as beside its text: the size of a [`MetaValue`] and a
/// vector slot, rounded up.
pub(crate) const META_VALUE_COST: usize = 48;

/// A value from an AMF0 data message (`onMetaData`), reduced to what JSON can say.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<MetaValue>),
    Object(Vec<(String, MetaValue)>),
}

impl MetaValue {
    /// Converts `value` within `budget`; `None` when the budget has run out (containers
    /// keep what fitted).
    pub(crate) fn from_amf0(value: Amf0Value, budget: &mut MetaBudget) -> Option<Self> {
        if !budget.take(META_VALUE_COST) {
            return None;
        }
        Some(match value {
            Amf0Value::Number(n) => MetaValue::Number(n),
            Amf0Value::Boolean(b) => MetaValue::Bool(b),
            // nginx-rtmp pads some strings with NULs.
            Amf0Value::Utf8String(s) => {
                let text = cut_text(s.trim_end_matches('\0'), MAX_METADATA_STRING_BYTES);
                if !budget.take(text.len()) {
                    return None;
                }
                MetaValue::String(text.to_string())
            }
            Amf0Value::Object(map) => MetaValue::Object(sorted_properties(map, budget)),
            Amf0Value::StrictArray(items) => MetaValue::Array(
                items
                    .into_iter()
                    .map_while(|item| MetaValue::from_amf0(item, budget))
                    .collect(),
            ),
            Amf0Value::Null | Amf0Value::Undefined => MetaValue::Null,
        })
    }
}

/// What is left of [`MAX_METADATA_BYTES`] while metadata is converted.
#[derive(Debug)]
pub(crate) struct MetaBudget {
    left: usize,
    /// Something did not fit.
    pub(crate) cut: bool,
}

impl MetaBudget {
    pub(crate) fn new() -> Self {
        Self {
            left: MAX_METADATA_BYTES,
            cut: false,
        }
    }

    /// Takes `n` bytes if they are left.
    pub(crate) fn take(&mut self, n: usize) -> bool {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.cut = true;
                false
            }
        }
    }
}

/// An object's properties sorted by name, scalar ones first taken from the budget (a big
/// nested table cannot push out the width or the frame rate); what does not fit is left out.
pub(crate) fn sorted_properties(
    map: HashMap<String, Amf0Value>,
    budget: &mut MetaBudget,
) -> Vec<(String, MetaValue)> {
    let mut entries: Vec<(String, Amf0Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| {
        let nested = |v: &Amf0Value| matches!(v, Amf0Value::Object(_) | Amf0Value::StrictArray(_));
        (nested(&a.1), &a.0).cmp(&(nested(&b.1), &b.0))
    });
    let mut props = Vec::new();
    for (name, value) in entries {
        let name = cut_text(&name, MAX_METADATA_STRING_BYTES).to_string();
        if !budget.take(name.len()) {
            continue;
        }
        if let Some(value) = MetaValue::from_amf0(value, budget) {
            props.push((name, value));
        }
    }
    props.sort_by(|a, b| a.0.cmp(&b.0));
    props
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut_text(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// The properties of an `onMetaData` whose object is `value` (nothing when it is not an
/// object), and whether they were cut at [`MAX_METADATA_BYTES`].
pub(crate) fn metadata_properties(value: Option<Amf0Value>) -> (Vec<(String, MetaValue)>, bool) {
    let mut budget = MetaBudget::new();
    let props = match value {
        Some(Amf0Value::Object(map)) => sorted_properties(map, &mut budget),
        _ => Vec::new(),
    };
    (props, budget.cut)
}
