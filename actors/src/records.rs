//! The recordings folder: where a recording's file goes, its sidecar description
//! (`<file>.json`: stream, session, start, end), listing, and resolving a requested name to
//! a path that is certainly inside the folder.
//!
//! Plain file-system code; no actor, no HTTP. Media bytes come from `pullcast::mp4`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a recording's sidecar file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub stream: String,
    pub media_session_id: String,
    /// Unix ms.
    pub start_ms: i64,
    /// Unix ms; absent while recording (or after a crash).
    pub end_ms: Option<i64>,
    pub video_codec: String,
    pub audio_codec: String,
}

/// One recording as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub sidecar: Option<Sidecar>,
}

fn sidecar_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Writes (or rewrites) the sidecar of `file`.
pub fn write_sidecar(file: &Path, sidecar: &Sidecar) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(sidecar).map_err(std::io::Error::other)?;
    fs::write(sidecar_path(file), text)
}

/// The sidecar of recording `file`, if it has a readable one.
pub fn read_sidecar(file: &Path) -> Option<Sidecar> {
    fs::read_to_string(sidecar_path(file))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Moves a recording and its sidecar.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::rename(from, to)?;
    let side = sidecar_path(from);
    if side.is_file() {
        fs::rename(side, sidecar_path(to))?;
    }
    Ok(())
}

/// A path in `folder` for `name` that does not exist yet: `name`, else `name-2.mp4`, ...
pub fn unused_path(folder: &Path, name: &str) -> PathBuf {
    let first = folder.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name.strip_suffix(".mp4").unwrap_or(name);
    (2..)
        .map(|n| folder.join(format!("{stem}-{n}.mp4")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Every `.mp4` in `folder`, newest name last (sorted by name).
pub fn list(folder: &Path) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !name.ends_with(".mp4") || !path.is_file() {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let sidecar = read_sidecar(&path);
        out.push(Listed {
            name,
            size,
            sidecar,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The path of recording `name` if it is a plain file name of an existing `.mp4` directly
/// inside `folder`; `None` for anything else (other folders, `..`, links out, ...).
pub fn resolve(folder: &Path, name: &str) -> Option<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.ends_with(".mp4")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return None;
    }
    let root = fs::canonicalize(folder).ok()?;
    let path = fs::canonicalize(root.join(name)).ok()?;
    (path.parent() == Some(root.as_path()) && path.is_file()).then_some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pullcast-records-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn resolve_refuses_anything_outside_the_folder() {
        let dir = temp();
        fs::write(dir.join("a.mp4"), b"x").unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        assert!(resolve(&dir, "a.mp4").is_some());
        for bad in [
            "../a.mp4",
            "..",
            "/etc/passwd",
            "notes.txt",
            "missing.mp4",
            ".a.mp4",
            "sub/a.mp4",
            "a.mp4/",
            "%2e%2e%2fa.mp4",
            "",
        ] {
            assert!(resolve(&dir, bad).is_none(), "{bad}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unused_paths_listing_and_sidecars() {
        let dir = temp();
        let first = unused_path(&dir, "s.mp4");
        fs::write(&first, b"1234").unwrap();
        let second = unused_path(&dir, "s.mp4");
        assert_eq!(second.file_name().unwrap(), "s-2.mp4");
        let side = Sidecar {
            stream: "cam".into(),
            media_session_id: "id".into(),
            start_ms: 1,
            end_ms: Some(2),
            video_codec: "h264".into(),
            audio_codec: "aac".into(),
        };
        write_sidecar(&first, &side).unwrap();
        let moved = dir.join("t.mp4");
        rename(&first, &moved).unwrap();
        let listed = list(&dir).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "t.mp4");
        assert_eq!(listed[0].size, 4);
        assert_eq!(listed[0].sidecar.as_ref(), Some(&side));
        fs::remove_dir_all(dir).unwrap();
    }
}
