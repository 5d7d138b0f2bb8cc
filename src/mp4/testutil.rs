//! Test-only helpers: an independent, strict ISO BMFF box-tree walker that checks every box
//! size against its parent, and small readers for the fields the tests inspect.
//!
//! Compiled only for tests; it must not be used by the writer itself (it is the check).

#![allow(clippy::unwrap_used)]

/// One box of the tree: its type, where it starts and ends in the buffer, its children.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub typ: String,
    pub start: usize,
    pub end: usize,
    /// Offset of the first byte after the header (and after version/flags for full boxes
    /// whose children we descend into, plus any fixed fields before the children).
    pub payload: usize,
    pub children: Vec<Node>,
}

impl Node {
    /// The first descendant (depth-first) at the slash-separated path, e.g. `moov/trak`.
    pub fn find(&self, path: &str) -> Option<&Node> {
        let mut parts = path.splitn(2, '/');
        let first = parts.next()?;
        let rest = parts.next();
        for c in &self.children {
            if c.typ == first {
                match rest {
                    None => return Some(c),
                    Some(r) => {
                        if let Some(n) = c.find(r) {
                            return Some(n);
                        }
                    }
                }
            }
        }
        None
    }

    /// All direct children of this type.
    pub fn all(&self, typ: &str) -> Vec<&Node> {
        self.children.iter().filter(|c| c.typ == typ).collect()
    }

    /// The types of the direct children, in order.
    pub fn child_types(&self) -> Vec<String> {
        self.children.iter().map(|c| c.typ.clone()).collect()
    }
}

/// Bytes skipped between a container's header and its first child.
fn container_skip(typ: &str) -> Option<usize> {
    match typ {
        "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf" | "edts" => {
            Some(0)
        }
        // full box + entry_count
        "stsd" | "dref" => Some(8),
        // VisualSampleEntry / AudioSampleEntry fixed fields
        "avc1" => Some(78),
        "mp4a" => Some(28),
        _ => None,
    }
}

/// Parses `data[start..end]` as a sequence of boxes that exactly fills it; panics with a
/// message on any size that does not add up.
pub(crate) fn walk(data: &[u8], start: usize, end: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut pos = start;
    while pos < end {
        assert!(pos + 8 <= end, "box header at {pos} runs past {end}");
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let typ = String::from_utf8_lossy(&data[pos + 4..pos + 8]).to_string();
        assert!(size >= 8, "box {typ} at {pos} has size {size}");
        let box_end = pos + size;
        assert!(
            box_end <= end,
            "box {typ} at {pos} (size {size}) runs past its parent's end {end}"
        );
        let mut node = Node {
            typ: typ.clone(),
            start: pos,
            end: box_end,
            payload: pos + 8,
            children: Vec::new(),
        };
        if let Some(skip) = container_skip(&typ) {
            node.payload = pos + 8 + skip;
            node.children = walk(data, node.payload, box_end);
        }
        nodes.push(node);
        pos = box_end;
    }
    assert_eq!(pos, end, "boxes do not fill their parent exactly");
    nodes
}

/// Walks a whole buffer (top level boxes must fill it exactly).
pub(crate) fn walk_all(data: &[u8]) -> Node {
    Node {
        typ: String::new(),
        start: 0,
        end: data.len(),
        payload: 0,
        children: walk(data, 0, data.len()),
    }
}

pub(crate) fn be32(data: &[u8], pos: usize) -> u32 {
    u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap())
}

pub(crate) fn be16(data: &[u8], pos: usize) -> u16 {
    u16::from_be_bytes(data[pos..pos + 2].try_into().unwrap())
}

pub(crate) fn be64(data: &[u8], pos: usize) -> u64 {
    u64::from_be_bytes(data[pos..pos + 8].try_into().unwrap())
}

/// A parsed `trun` (version, flags, data_offset, per-sample entries).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trun {
    pub version: u8,
    pub flags: u32,
    pub data_offset: i32,
    /// (duration, size, flags, composition offset)
    pub samples: Vec<(u32, u32, u32, i32)>,
}

/// A parsed `traf`: tfhd track id and flags, tfdt, trun.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Traf {
    pub track_id: u32,
    pub tfhd_flags: u32,
    pub tfdt_version: u8,
    pub base_decode_time: u64,
    pub trun: Trun,
}

/// One parsed fragment: sequence number, trafs, the moof start and the mdat payload range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fragment {
    pub sequence: u32,
    pub moof_start: usize,
    pub trafs: Vec<Traf>,
    pub mdat_payload: std::ops::Range<usize>,
}

/// Parses every moof+mdat pair of a buffer, checking the structure the spec requires.
pub(crate) fn fragments(data: &[u8]) -> Vec<Fragment> {
    let root = walk_all(data);
    let mut out = Vec::new();
    let mut iter = root.children.iter().peekable();
    while let Some(node) = iter.next() {
        if node.typ != "moof" {
            continue;
        }
        let mdat = iter.next().expect("moof without mdat");
        assert_eq!(mdat.typ, "mdat");
        assert_eq!(mdat.start, node.end, "mdat follows moof directly");
        let mfhd = node.find("mfhd").unwrap();
        assert_eq!(node.children[0].typ, "mfhd");
        let sequence = be32(data, mfhd.payload + 4);
        let mut trafs = Vec::new();
        for traf in node.all("traf") {
            assert_eq!(traf.child_types(), vec!["tfhd", "tfdt", "trun"]);
            let tfhd = &traf.children[0];
            let tfhd_flags = be32(data, tfhd.payload) & 0xff_ffff;
            let track_id = be32(data, tfhd.payload + 4);
            let tfdt = &traf.children[1];
            let tfdt_version = data[tfdt.payload];
            let base_decode_time = if tfdt_version == 1 {
                be64(data, tfdt.payload + 4)
            } else {
                u64::from(be32(data, tfdt.payload + 4))
            };
            let t = &traf.children[2];
            let version = data[t.payload];
            let flags = be32(data, t.payload) & 0xff_ffff;
            let count = be32(data, t.payload + 4) as usize;
            let mut p = t.payload + 8;
            let mut data_offset = 0;
            if flags & 1 != 0 {
                data_offset = be32(data, p) as i32;
                p += 4;
            }
            assert_eq!(flags & 4, 0, "no first_sample_flags expected");
            let mut samples = Vec::new();
            for _ in 0..count {
                let mut field = |bit: u32| {
                    if flags & bit != 0 {
                        let v = be32(data, p);
                        p += 4;
                        v
                    } else {
                        0
                    }
                };
                let d = field(0x100);
                let s = field(0x200);
                let f = field(0x400);
                let c = field(0x800) as i32;
                samples.push((d, s, f, c));
            }
            assert_eq!(p, t.end, "trun size matches its sample count");
            trafs.push(Traf {
                track_id,
                tfhd_flags,
                tfdt_version,
                base_decode_time,
                trun: Trun {
                    version,
                    flags,
                    data_offset,
                    samples,
                },
            });
        }
        out.push(Fragment {
            sequence,
            moof_start: node.start,
            trafs,
            mdat_payload: mdat.payload..mdat.end,
        });
    }
    out
}
