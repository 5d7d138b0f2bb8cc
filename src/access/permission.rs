//! The six permissions of the access model and a small set of them.
//!
//! Names are the configuration's (`api`, `pull`, `pull_private`, `play`, `records`, `publish`); an
//! unknown name is an error with a sentence, never ignored.

use std::fmt;

/// One thing a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// The control plane: list captures (`find_all`), terminate, list recordings, issue
    /// tokens.
    Api,
    /// Start a capture: REST `pull`, or playing an `rtmp://` name nobody captures yet.
    Pull,
    /// Pull from addresses in private ranges (loopback, RFC 1918, link-local, …).
    PullPrivate,
    /// Watch a capture (WebSocket signalling, WHEP, HTTP-FLV, HLS, RTMP play).
    Play,
    /// Download recordings.
    Records,
    /// Push a stream in (RTMP publish): it becomes a capture of that name.
    Publish,
}

impl Permission {
    /// Every permission, in the order the documentation lists them.
    pub const ALL: [Permission; 6] = [
        Permission::Api,
        Permission::Pull,
        Permission::PullPrivate,
        Permission::Play,
        Permission::Records,
        Permission::Publish,
    ];

    /// The configuration's name of the permission.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Api => "api",
            Permission::Pull => "pull",
            Permission::PullPrivate => "pull_private",
            Permission::Play => "play",
            Permission::Records => "records",
            Permission::Publish => "publish",
        }
    }

    /// The permission called `name` (exactly as in the configuration).
    pub fn parse(name: &str) -> Result<Permission, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == name.trim())
            .ok_or_else(|| {
                format!(
                    "unknown permission {:?} (the permissions are api, pull, pull_private, play, records, publish)",
                    name.chars().take(40).collect::<String>()
                )
            })
    }

    fn bit(self) -> u8 {
        match self {
            Permission::Api => 1,
            Permission::Pull => 2,
            Permission::PullPrivate => 4,
            Permission::Play => 8,
            Permission::Records => 16,
            Permission::Publish => 32,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PermissionSet(u8);

impl PermissionSet {
    /// No permission.
    pub const NONE: PermissionSet = PermissionSet(0);
    /// Every permission.
    pub const ALL: PermissionSet = PermissionSet(63);

    /// Parses a list of permission names; empty entries are skipped.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<PermissionSet, String> {
        let mut set = PermissionSet::NONE;
        for name in names.iter().map(AsRef::as_ref) {
            if name.trim().is_empty() {
                continue;
            }
            set = set.with(Permission::parse(name)?);
        }
        Ok(set)
    }

    /// This set plus `p`.
    pub fn with(self, p: Permission) -> PermissionSet {
        PermissionSet(self.0 | p.bit())
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether every permission of `other` is in this set.
    pub fn includes(self, other: PermissionSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in [`Permission::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The names, comma-separated (`"api,play"`).
    pub fn names(self) -> String {
        self.iter()
            .map(Permission::name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()).unwrap(), p);
        }
        assert!(Permission::parse("API").is_err());
        assert!(Permission::parse("直播")
            .unwrap_err()
            .contains("unknown permission"));
    }

    #[test]
    fn sets() {
        let set = PermissionSet::parse(&["play", "records", ""]).unwrap();
        assert!(set.contains(Permission::Play) && set.contains(Permission::Records));
        assert!(!set.contains(Permission::Api));
        assert_eq!(set.names(), "play,records");
        assert!(PermissionSet::ALL.includes(set));
        assert!(!set.includes(PermissionSet::ALL));
        assert!(PermissionSet::parse(&["play", "dance"]).is_err());
        assert_eq!(
            PermissionSet::parse(&Permission::ALL.map(Permission::name)).unwrap(),
            PermissionSet::ALL
        );
        assert!(PermissionSet::NONE.is_empty());
    }
}
