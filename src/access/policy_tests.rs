//! The decision table: every kind of caller × permission × stream, with and without a hook.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use super::credentials::Credentials;
use super::pattern::StreamPattern;
use super::permission::{Permission, PermissionSet};
use super::policy::{Caller, Decision, Identity, Policy};
use super::token::{TokenClaims, TokenKey};
use crate::config::{AuthSettings, RestSettings, UserSettings};

const SECRET: &str = "a secret of at least thirty-two bytes";
const NOW: u64 = 1_800_000_000;

fn user(name: &str, password: &str, permissions: &[&str], streams: &[&str]) -> UserSettings {
    UserSettings {
        name: name.into(),
        password: password.into(),
        password_hash: String::new(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        streams: streams.iter().map(|s| s.to_string()).collect(),
    }
}

fn settings(hook: bool) -> AuthSettings {
    AuthSettings {
        trusted_networks: vec!["10.0.0.0/8".into(), "::1/128".into()],
        anonymous: vec!["play".into()],
        hook_url: if hook {
            "http://127.0.0.1:9/auth".into()
        } else {
            String::new()
        },
        token_secret: SECRET.into(),
        users: vec![
            user(
                "ops",
                "ops-pw",
                &["api", "pull", "pull_private", "play", "records"],
                &["*"],
            ),
            user(
                "viewer",
                "viewer-pw",
                &["play", "records"],
                &["cam*", "rtmp://h/live/*"],
            ),
            user("puller", "puller-pw", &["pull", "play"], &["*"]),
            user("nobody", "nobody-pw", &[], &["*"]),
        ],
        ..AuthSettings::default()
    }
}

fn policy(hook: bool) -> Policy {
    Policy::new(&settings(hook), &RestSettings::default()).unwrap()
}

const REMOTE: &str = "203.0.113.7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

fn login(p: &Policy, address: &str, credentials: Option<Credentials>) -> Caller {
    p.authenticate(ip(address), credentials.as_ref(), NOW)
        .unwrap()
}

fn play_token(stream: &str) -> Credentials {
    let key = TokenKey::new(SECRET).unwrap();
    Credentials::Bearer(key.mint(&TokenClaims {
        permissions: PermissionSet::NONE.with(Permission::Play),
        stream: StreamPattern::parse(stream).unwrap(),
        expires_unix_s: NOW + 60,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Allow,
    Hook,
    E401,
    E403,
}

fn kind(d: &Decision) -> Want {
    match d {
        Decision::Allow => Want::Allow,
        Decision::AskHook => Want::Hook,
        Decision::Unauthenticated(_) => Want::E401,
        Decision::Forbidden(_) => Want::E403,
    }
}

/// (caller, permission, stream names, without hook, with hook)
fn table() -> Vec<(&'static str, Permission, Vec<&'static str>, Want, Want)> {
    use Permission::*;
    use Want::*;
    vec![
        // Trusted networks may do everything, hook or not.
        ("trusted", Api, vec![], Allow, Allow),
        (
            "trusted",
            Pull,
            vec!["rtmp://10.1.1.1/live/x"],
            Allow,
            Allow,
        ),
        ("trusted", Records, vec!["anything"], Allow, Allow),
        ("trusted6", Api, vec![], Allow, Allow),
        // Anonymous: play only (the default), every stream; the rest asks for credentials.
        ("anonymous", Play, vec!["cam1"], Allow, Hook),
        ("anonymous", Play, vec!["直播流"], Allow, Hook),
        ("anonymous", Api, vec![], E401, E401),
        ("anonymous", Pull, vec!["rtmp://h/live/x"], E401, E401),
        ("anonymous", Records, vec!["cam1"], E401, E401),
        ("anonymous", PullPrivate, vec![], E401, E401),
        // A user with everything on every stream.
        ("ops", Api, vec![], Allow, Hook),
        ("ops", Pull, vec!["rtmp://h/live/x", "x"], Allow, Hook),
        ("ops", Records, vec!["Ёлка"], Allow, Hook),
        // A user limited to some streams: any name of the stream may match.
        ("viewer", Play, vec!["cam1"], Allow, Hook),
        (
            "viewer",
            Play,
            vec!["studio", "rtmp://h/live/studio"],
            Allow,
            Hook,
        ),
        (
            "viewer",
            Play,
            vec!["studio", "rtmp://other/live/studio"],
            E403,
            E403,
        ),
        ("viewer", Records, vec!["camera-2"], Allow, Hook),
        ("viewer", Records, vec!["café"], E403, E403),
        ("viewer", Api, vec![], E403, E403),
        ("viewer", Pull, vec!["cam1"], E403, E403),
        ("puller", Pull, vec!["rtmp://h/live/x"], Allow, Hook),
        ("puller", PullPrivate, vec!["rtmp://h/live/x"], E403, E403),
        ("puller", Api, vec![], E403, E403),
        ("nobody", Play, vec!["cam1"], E403, E403),
        // A play token for one stream.
        ("token-cam1", Play, vec!["cam1"], Allow, Hook),
        (
            "token-cam1",
            Play,
            vec!["other", "rtmp://h/live/cam1"],
            E403,
            E403,
        ),
        ("token-cam1", Play, vec!["cam2"], E403, E403),
        ("token-cam1", Api, vec![], E403, E403),
        ("token-cam1", Records, vec!["cam1"], E403, E403),
    ]
}

fn caller(p: &Policy, who: &str) -> Caller {
    match who {
        "trusted" => login(p, "10.2.3.4", None),
        "trusted6" => login(
            p,
            "::1",
            Some(basic("ops", "wrong password is not looked at")),
        ),
        "anonymous" => login(p, REMOTE, None),
        "token-cam1" => login(p, REMOTE, Some(play_token("cam1"))),
        name => login(p, REMOTE, Some(basic(name, &format!("{name}-pw")))),
    }
}

#[test]
fn the_decision_table() {
    for hook in [false, true] {
        let p = policy(hook);
        for (who, permission, names, without, with) in table() {
            let c = caller(&p, who);
            let got = p.decide(&c, permission, &names);
            let want = if hook { with } else { without };
            assert_eq!(
                kind(&got),
                want,
                "hook={hook} {who} {permission} {names:?}: {got:?}"
            );
            if let Decision::Unauthenticated(reason) | Decision::Forbidden(reason) = &got {
                assert!(
                    reason.contains(permission.name()) || reason.contains("stream"),
                    "{reason}"
                );
            }
        }
    }
}

#[test]
fn failed_logins_are_errors_not_anonymous() {
    let p = policy(false);
    for credentials in [
        basic("ops", "wrong"),
        basic("ops", ""),
        basic("stranger", "ops-pw"),
        Credentials::Bearer("pc1.forged.token".into()),
        Credentials::Bearer("some-other-token".into()),
    ] {
        let err = p
            .authenticate(ip(REMOTE), Some(&credentials), NOW)
            .unwrap_err();
        assert!(!err.is_empty());
    }
    // An expired token.
    let key = TokenKey::new(SECRET).unwrap();
    let expired = key.mint(&TokenClaims {
        permissions: PermissionSet::NONE.with(Permission::Play),
        stream: StreamPattern::parse("*").unwrap(),
        expires_unix_s: NOW,
    });
    let err = p
        .authenticate(ip(REMOTE), Some(&Credentials::Bearer(expired)), NOW)
        .unwrap_err();
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn foreign_tokens_go_to_the_hook_only_when_there_is_one() {
    let token = Credentials::Bearer("backend-session-42".into());
    assert!(policy(false)
        .authenticate(ip(REMOTE), Some(&token), NOW)
        .is_err());
    let p = policy(true);
    let c = p.authenticate(ip(REMOTE), Some(&token), NOW).unwrap();
    assert!(matches!(&c.identity, Identity::Foreign { token } if token == "backend-session-42"));
    assert_eq!(p.decide(&c, Permission::Play, &["cam1"]), Decision::AskHook);
    assert_eq!(p.decide(&c, Permission::Api, &[]), Decision::AskHook);
    assert!(!p.holds(&c, Permission::PullPrivate));
}

#[test]
fn holds_and_may_see() {
    let p = policy(false);
    let ops = caller(&p, "ops");
    let viewer = caller(&p, "viewer");
    let anonymous = caller(&p, "anonymous");
    assert!(p.holds(&ops, Permission::PullPrivate));
    assert!(!p.holds(&viewer, Permission::Api));
    assert!(p.holds(&anonymous, Permission::Play));
    assert!(!p.holds(&anonymous, Permission::Api));
    assert!(p.holds(&caller(&p, "trusted"), Permission::PullPrivate));
    assert!(p.may_see(&viewer, &["cam7"]));
    assert!(!p.may_see(&viewer, &["studio"]));
    assert!(p.may_see(&ops, &["studio"]));
}

#[test]
fn issuing_tokens() {
    let p = policy(false);
    let claims = |perms: &[&str], stream: &str| TokenClaims {
        permissions: PermissionSet::parse(perms).unwrap(),
        stream: StreamPattern::parse(stream).unwrap(),
        expires_unix_s: NOW + 60,
    };
    let ops = caller(&p, "ops");
    assert!(p.may_issue(&ops, &claims(&["play"], "*")).is_ok());
    assert!(p.may_issue(&ops, &claims(&["play", "api"], "cam1")).is_ok());
    assert!(p
        .may_issue(&caller(&p, "trusted"), &claims(&["records"], "x"))
        .is_ok());
    let err = p
        .may_issue(&caller(&p, "viewer"), &claims(&["play"], "cam1"))
        .unwrap_err();
    assert!(err.contains("api"), "{err}");
    assert!(p
        .may_issue(&caller(&p, "anonymous"), &claims(&["play"], "cam1"))
        .is_err());
    assert!(p
        .may_issue(&caller(&p, "token-cam1"), &claims(&["play"], "cam1"))
        .is_err());

    // An api user limited to cam*: within its own streams only, never more than it has.
    let mut s = settings(false);
    s.users
        .push(user("camops", "pw", &["api", "play"], &["cam*"]));
    let p = Policy::new(&s, &RestSettings::default()).unwrap();
    let camops = login(&p, REMOTE, Some(basic("camops", "pw")));
    assert!(p.may_issue(&camops, &claims(&["play"], "cam1")).is_ok());
    assert!(p.may_issue(&camops, &claims(&["play"], "cam*")).is_ok());
    assert!(p.may_issue(&camops, &claims(&["play"], "cam1*")).is_err());
    assert!(p.may_issue(&camops, &claims(&["play"], "*")).is_err());
    assert!(p.may_issue(&camops, &claims(&["play"], "studio")).is_err());
    assert!(p.may_issue(&camops, &claims(&["records"], "cam1")).is_err());
}

#[test]
fn the_old_basic_auth_keys_are_a_user_with_everything() {
    let rest = RestSettings {
        basic_auth_user: "admin".into(),
        basic_auth_password: "s3cret".into(),
        cors_allowed_origins: vec![],
    };
    let auth = AuthSettings {
        trusted_networks: vec![],
        ..AuthSettings::default()
    };
    let p = Policy::new(&auth, &rest).unwrap();
    let admin = login(&p, REMOTE, Some(basic("admin", "s3cret")));
    for permission in Permission::ALL {
        assert_eq!(p.decide(&admin, permission, &["any"]), Decision::Allow);
    }
    assert!(p
        .authenticate(ip(REMOTE), Some(&basic("admin", "wrong")), NOW)
        .is_err());
    let mut clash = AuthSettings::default();
    clash.users.push(user("admin", "x", &["play"], &["*"]));
    assert!(Policy::new(&clash, &rest)
        .unwrap_err()
        .contains("same name"));
}

#[test]
fn defaults_trust_loopback_only() {
    let p = Policy::new(&AuthSettings::default(), &RestSettings::default()).unwrap();
    for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
        assert!(p.is_trusted(ip(local)), "{local}");
    }
    for remote in ["10.0.0.1", "192.168.1.1", "::2", "203.0.113.7", "fe80::1"] {
        assert!(!p.is_trusted(ip(remote)), "{remote}");
    }
    let anonymous = login(&p, REMOTE, None);
    assert_eq!(
        p.decide(&anonymous, Permission::Play, &["x"]),
        Decision::Allow
    );
    assert!(matches!(
        p.decide(&anonymous, Permission::Pull, &["rtmp://h/a/b"]),
        Decision::Unauthenticated(_)
    ));
}

#[test]
fn configuration_mistakes_name_the_key() {
    let rest = RestSettings::default();
    let cases: Vec<(AuthSettings, &str)> = vec![
        (
            AuthSettings {
                trusted_networks: vec!["10.0.0.0/33".into()],
                ..AuthSettings::default()
            },
            "auth.trusted_networks",
        ),
        (
            AuthSettings {
                anonymous: vec!["watch".into()],
                ..AuthSettings::default()
            },
            "auth.anonymous",
        ),
        (
            AuthSettings {
                users: vec![user("a:b", "pw", &["play"], &["*"])],
                ..AuthSettings::default()
            },
            "':'",
        ),
        (
            AuthSettings {
                users: vec![
                    user("a", "pw", &["play"], &["*"]),
                    user("a", "pw", &["play"], &["*"]),
                ],
                ..AuthSettings::default()
            },
            "twice",
        ),
        (
            AuthSettings {
                users: vec![user("a", "", &["play"], &["*"])],
                ..AuthSettings::default()
            },
            "required",
        ),
        (
            AuthSettings {
                users: vec![user("a", "pw", &["fly"], &["*"])],
                ..AuthSettings::default()
            },
            "permissions",
        ),
        (
            AuthSettings {
                users: vec![user("a", "pw", &["play"], &[""])],
                ..AuthSettings::default()
            },
            "streams",
        ),
        (
            AuthSettings {
                token_secret: "short".into(),
                ..AuthSettings::default()
            },
            "token_secret",
        ),
    ];
    for (auth, words) in cases {
        let err = Policy::new(&auth, &rest).unwrap_err();
        assert!(err.contains(words), "{words}: {err}");
    }
}
