//! The access decision: who the caller is (`authenticate`) and whether it may do a thing to
//! a stream (`decide`) — `Caller × Permission × stream names → Allow | AskHook |
//! Unauthenticated | Forbidden`.
//!
//! The rules, in order:
//! 1. A client in `trusted_networks` may do everything; credentials are not looked at.
//! 2. Credentials are checked: HTTP Basic against `[[auth.users]]` (and the old
//!    `rest.basic_auth_user`), a bearer token against `token_secret`. Wrong ones are refused
//!    (401) — they never fall back to anonymous. A bearer token pullcast did not issue is
//!    passed to the hook when one is configured (only the hook can accept it), else refused.
//! 3. A user or token may do what its permissions say on the streams its patterns match
//!    (any of the names given: a local stream name, a uri); a caller without credentials
//!    what `anonymous` says, on any stream.
//! 4. With `hook_url` set, everything rule 3 allows is still put to the hook (which can
//!    only narrow it), except for trusted clients.
//!
//! Nothing here does I/O or reads a clock: the HTTP side runs the hook and passes the time.

use std::net::IpAddr;
use std::sync::Arc;

use super::credentials::Credentials;
use super::password::Password;
use super::pattern::StreamPattern;
use super::permission::{Permission, PermissionSet};
use super::redact::redact_uri;
use super::token::{is_pullcast_token, TokenClaims, TokenKey};
use crate::config::{AuthSettings, RestSettings};
use crate::net::cidr::Cidr;

/// One configured user.
#[derive(Debug)]
pub struct User {
    /// The Basic user name.
    pub name: String,
    password: Password,
    /// What the user may do.
    pub permissions: PermissionSet,
    /// Which streams (local names or uris) the user may act on.
    pub streams: Vec<StreamPattern>,
}

/// Who the caller is, once its credentials are checked.
#[derive(Debug, Clone)]
pub enum Identity {
    /// From a trusted network: everything is allowed.
    Trusted,
    /// A configured user whose password was right.
    User(Arc<User>),
    /// The holder of a valid pullcast token.
    Token(TokenClaims),
    /// The holder of a bearer token pullcast did not issue; only the hook can accept it.
    Foreign { token: String },
    /// No credentials.
    Anonymous,
}

/// A caller: its address (the TCP peer) and identity.
#[derive(Debug, Clone)]
pub struct Caller {
    pub address: IpAddr,
    pub identity: Identity,
}

impl Caller {
    /// The user name to report (to the hook, in logs), if any.
    pub fn user_name(&self) -> Option<&str> {
        match &self.identity {
            Identity::User(u) => Some(&u.name),
            _ => None,
        }
    }

    /// Whether the caller is in a trusted network.
    pub fn is_trusted(&self) -> bool {
        matches!(self.identity, Identity::Trusted)
    }
}

/// The answer to "may this caller do this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Yes.
    Allow,
    /// Only if the hook says so (2xx); refuse otherwise (403).
    AskHook,
    /// No, and the caller gave no credentials: 401, "who are you?".
    Unauthenticated(String),
    /// No, whoever the caller is: 403.
    Forbidden(String),
}

/// The access model, built once from the configuration.
#[derive(Debug)]
pub struct Policy {
    trusted: Vec<Cidr>,
    anonymous: PermissionSet,
    users: Vec<Arc<User>>,
    tokens: Option<TokenKey>,
    hook: bool,
}

impl Policy {
    /// Builds the model from `[auth]` and the old `[rest] basic_auth_*` spelling (folded in as
    /// a user with every permission on every stream). Every mistake is an error that names
    /// the key.
    pub fn new(auth: &AuthSettings, rest: &RestSettings) -> Result<Policy, String> {
        let trusted = Cidr::parse_list(&auth.trusted_networks, "auth.trusted_networks")?;
        let anonymous =
            PermissionSet::parse(&auth.anonymous).map_err(|e| format!("auth.anonymous: {e}"))?;
        let mut users: Vec<Arc<User>> = Vec::new();
        for (i, u) in auth.users.iter().enumerate() {
            let at = |e: String| format!("auth.users[{i}] ({:?}): {e}", short(&u.name));
            check_user_name(&u.name).map_err(at)?;
            if users.iter().any(|other| other.name == u.name) {
                return Err(at("the name is used twice".to_string()));
            }
            let password = Password::from_settings(&u.password, &u.password_hash).map_err(at)?;
            let permissions = PermissionSet::parse(&u.permissions)
                .map_err(|e| at(format!("permissions: {e}")))?;
            let streams = u
                .streams
                .iter()
                .map(|s| StreamPattern::parse(s).map_err(|e| at(format!("streams: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            users.push(Arc::new(User {
                name: u.name.clone(),
                password,
                permissions,
                streams,
            }));
        }
        if !rest.basic_auth_user.is_empty() {
            let at = |e: String| format!("rest.basic_auth_user: {e}");
            check_user_name(&rest.basic_auth_user).map_err(at)?;
            if users.iter().any(|u| u.name == rest.basic_auth_user) {
                return Err(at("an [[auth.users]] entry has the same name".to_string()));
            }
            if rest.basic_auth_password.is_empty() {
                return Err(at("rest.basic_auth_password is empty".to_string()));
            }
            users.push(Arc::new(User {
                name: rest.basic_auth_user.clone(),
                password: Password::Plain(rest.basic_auth_password.clone()),
                permissions: PermissionSet::ALL,
                streams: vec![StreamPattern::parse("*")?],
            }));
        }
        let tokens = if auth.token_secret.is_empty() {
            None
        } else {
            Some(TokenKey::new(&auth.token_secret)?)
        };
        Ok(Policy {
            trusted,
            anonymous,
            users,
            tokens,
            hook: !auth.hook_url.trim().is_empty(),
        })
    }

    /// Whether `address` is in a trusted network.
    pub fn is_trusted(&self, address: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(address))
    }

    /// The token key, when tokens are on.
    pub fn token_key(&self) -> Option<&TokenKey> {
        self.tokens.as_ref()
    }

    /// Whether a hook is configured.
    pub fn has_hook(&self) -> bool {
        self.hook
    }

    /// Whether checking `credentials` may be slow (an argon2 hash): the caller should then
    /// run [`Policy::authenticate`] off its event loop.
    pub fn is_slow_to_check(&self, credentials: &Credentials) -> bool {
        match credentials {
            Credentials::Basic { user, .. } => self
                .users
                .iter()
                .any(|u| u.name == *user && matches!(u.password, Password::Argon2(_))),
            Credentials::Bearer(_) => false,
        }
    }

    /// Who the caller from `address` presenting `credentials` is. `Err` is a failed login
    /// (401, counted by the throttle), with the reason.
    pub fn authenticate(
        &self,
        address: IpAddr,
        credentials: Option<&Credentials>,
        now_unix_s: u64,
    ) -> Result<Caller, String> {
        let identity = if self.is_trusted(address) {
            Identity::Trusted
        } else {
            match credentials {
                None => Identity::Anonymous,
                Some(Credentials::Basic { user, password }) => {
                    let found = self.users.iter().find(|u| u.name == *user);
                    match found {
                        Some(u) if u.password.verify(password) => Identity::User(u.clone()),
                        _ => return Err("wrong user name or password".to_string()),
                    }
                }
                Some(Credentials::Bearer(token)) if is_pullcast_token(token) => {
                    let key = self
                        .tokens
                        .as_ref()
                        .ok_or("tokens are not accepted here (auth.token_secret is not set)")?;
                    Identity::Token(key.verify(token, now_unix_s)?)
                }
                Some(Credentials::Bearer(token)) if self.hook => Identity::Foreign {
                    token: token.clone(),
                },
                Some(Credentials::Bearer(_)) => {
                    return Err("unknown bearer token (not issued by this server)".to_string())
                }
            }
        };
        Ok(Caller { address, identity })
    }

    /// Whether `caller` holds `permission` at all, whatever the stream, without asking the
    /// hook (for `pull_private`, and for what a caller may see, e.g. unredacted uris).
    pub fn holds(&self, caller: &Caller, permission: Permission) -> bool {
        match &caller.identity {
            Identity::Trusted => true,
            Identity::User(u) => u.permissions.contains(permission),
            Identity::Token(t) => t.permissions.contains(permission),
            Identity::Foreign { .. } => false,
            Identity::Anonymous => self.anonymous.contains(permission),
        }
    }

    /// Whether `caller` may use the stream known by `names` (any of them may match); for
    /// filtering lists (`find_all`, the recordings). Stream-less callers (trusted,
    /// anonymous, foreign tokens) see every stream their permission covers.
    pub fn may_see(&self, caller: &Caller, names: &[&str]) -> bool {
        match &caller.identity {
            Identity::User(u) => matches_any(&u.streams, names),
            Identity::Token(t) => matches_any(std::slice::from_ref(&t.stream), names),
            Identity::Trusted | Identity::Foreign { .. } | Identity::Anonymous => true,
        }
    }

    /// Whether `caller` may do `permission` on the stream known by `names` (a local stream
    /// name, a uri; any may match a pattern). No names: an action on no stream in
    /// particular (`find_all`; its list is then filtered with [`Policy::may_see`]).
    pub fn decide(&self, caller: &Caller, permission: Permission, names: &[&str]) -> Decision {
        let stream = names
            .first()
            .map(|n| format!(" '{}'", short(&redact_uri(n))))
            .unwrap_or_default();
        let local = match &caller.identity {
            Identity::Trusted => return Decision::Allow,
            Identity::Foreign { .. } => return Decision::AskHook,
            Identity::Anonymous => {
                if !self.anonymous.contains(permission) {
                    return Decision::Unauthenticated(format!(
                        "authentication required: this needs the `{permission}` permission (HTTP Basic, or a bearer token)"
                    ));
                }
                Decision::Allow
            }
            Identity::User(u) => {
                if !u.permissions.contains(permission) {
                    return Decision::Forbidden(format!(
                        "user '{}' does not have the `{permission}` permission",
                        u.name
                    ));
                }
                if !names.is_empty() && !matches_any(&u.streams, names) {
                    return Decision::Forbidden(format!(
                        "user '{}' may not use the stream{stream}",
                        u.name
                    ));
                }
                Decision::Allow
            }
            Identity::Token(t) => {
                if !t.permissions.contains(permission) {
                    return Decision::Forbidden(format!(
                        "the token does not grant the `{permission}` permission"
                    ));
                }
                if !names.is_empty() && !matches_any(std::slice::from_ref(&t.stream), names) {
                    return Decision::Forbidden(format!(
                        "the token is not valid for the stream{stream}"
                    ));
                }
                Decision::Allow
            }
        };
        if self.hook {
            Decision::AskHook
        } else {
            local
        }
    }

    /// Whether `caller` may issue a token with `claims`: it needs `api`, every permission the
    /// token grants, and (unless its streams are `*`) a pattern equal to the token's, or
    /// matching it when the token names one stream.
    pub fn may_issue(&self, caller: &Caller, claims: &TokenClaims) -> Result<(), String> {
        let (permissions, streams) = match &caller.identity {
            Identity::Trusted => return Ok(()),
            Identity::User(u) => (u.permissions, u.streams.as_slice()),
            Identity::Token(t) => (t.permissions, std::slice::from_ref(&t.stream)),
            Identity::Foreign { .. } | Identity::Anonymous => (PermissionSet::NONE, &[][..]),
        };
        if !permissions.contains(Permission::Api) {
            return Err("issuing tokens needs the `api` permission".to_string());
        }
        if !permissions.includes(claims.permissions) {
            return Err(format!(
                "a token cannot grant more than its issuer has ({})",
                permissions.names()
            ));
        }
        let covered = streams.iter().any(|p| {
            p.is_everything()
                || p == &claims.stream
                || (claims.stream.is_literal() && p.matches(&literal_name(&claims.stream)))
        });
        if !covered {
            return Err(format!(
                "the stream pattern '{}' is not within the issuer's streams",
                short(claims.stream.as_str())
            ));
        }
        Ok(())
    }
}

fn matches_any(patterns: &[StreamPattern], names: &[&str]) -> bool {
    patterns
        .iter()
        .any(|p| names.iter().any(|name| p.matches(name)))
}

/// The one name a literal pattern stands for (its escapes undone).
fn literal_name(pattern: &StreamPattern) -> String {
    let mut out = String::new();
    let mut chars = pattern.as_str().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    out
}

fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the user name is empty".to_string());
    }
    if name.contains(':') {
        return Err(
            "a user name cannot contain ':' (HTTP Basic separates it with one)".to_string(),
        );
    }
    if name.chars().any(char::is_control) {
        return Err("the user name contains control characters".to_string());
    }
    Ok(())
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
