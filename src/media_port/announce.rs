//! Which addresses the media port announces in every answer's host candidates.
//!
//! `webrtc.advertise` names them outright ("ip" or "ip:port", e.g. a NAT's public address
//! with a forwarded port); the older `webrtc.public_ips` gives addresses on `udp_port`.
//! Without either, a specific bind address is announced as it is, and a wildcard bind
//! announces every non-loopback IPv4 address of the machine's interfaces. Loopback
//! (127.0.0.1) is added when `loopback_candidates` is on and the socket can be reached
//! there. Pure: the caller lists the interfaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// What decides the announced addresses.
#[derive(Debug, Clone)]
pub struct AnnounceSettings<'a> {
    pub advertise: &'a [String],
    pub public_ips: &'a [String],
    pub loopback_candidates: bool,
    /// The address the port's socket is bound to.
    pub bind: IpAddr,
    pub udp_port: u16,
}

/// The announced addresses, most preferred first, without duplicates; an error names the
/// setting that cannot be used or says that nothing is left to announce.
pub fn announced_addresses(
    settings: &AnnounceSettings<'_>,
    interfaces: &[IpAddr],
) -> Result<Vec<SocketAddr>, String> {
    let port = settings.udp_port;
    let mut out: Vec<SocketAddr> = Vec::new();
    if !settings.advertise.is_empty() {
        for entry in settings.advertise {
            out.push(parse_advertised(entry, port)?);
        }
    } else if !settings.public_ips.is_empty() {
        for ip in settings.public_ips {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("webrtc.public_ips: {ip:?} is not an IP address"))?;
            out.push(SocketAddr::new(ip, port));
        }
    } else if settings.bind.is_unspecified() {
        let usable = interfaces
            .iter()
            .filter(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified());
        out.extend(usable.map(|ip| SocketAddr::new(*ip, port)));
    } else if !settings.bind.is_loopback() {
        out.push(SocketAddr::new(settings.bind, port));
    }
    let reachable_on_loopback = settings.bind.is_unspecified() || settings.bind.is_loopback();
    if (settings.loopback_candidates || settings.bind.is_loopback()) && reachable_on_loopback {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let mut unique = Vec::with_capacity(out.len());
    for address in out {
        if !unique.contains(&address) {
            unique.push(address);
        }
    }
    if unique.is_empty() {
        return Err(format!(
            "no address to announce for WebRTC: the bind address {} has no usable interface \
             address; set webrtc.advertise",
            settings.bind
        ));
    }
    Ok(unique)
}

/// One `webrtc.advertise` entry: "ip" (on `port`) or "ip:port" / "[ipv6]:port".
pub fn parse_advertised(entry: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let address: SocketAddr = entry.parse().map_err(|_| {
        format!("webrtc.advertise: {entry:?} is neither an IP address nor an address:port")
    })?;
    if address.port() == 0 {
        return Err(format!("webrtc.advertise: {entry:?} has port 0"));
    }
    Ok(address)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings<'a>(
        advertise: &'a [String],
        public: &'a [String],
        bind: &str,
    ) -> AnnounceSettings<'a> {
        AnnounceSettings {
            advertise,
            public_ips: public,
            loopback_candidates: true,
            bind: bind.parse().unwrap(),
            udp_port: 8189,
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    const INTERFACES: [IpAddr; 4] = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];

    #[test]
    fn a_wildcard_bind_announces_every_interface_then_loopback() {
        let got = announced_addresses(&settings(&[], &[], "0.0.0.0"), &INTERFACES).unwrap();
        assert_eq!(
            got,
            addrs(&["192.168.1.5:8189", "10.0.0.7:8189", "127.0.0.1:8189"])
        );
        let mut no_loopback = settings(&[], &[], "0.0.0.0");
        no_loopback.loopback_candidates = false;
        let got = announced_addresses(&no_loopback, &INTERFACES).unwrap();
        assert_eq!(got, addrs(&["192.168.1.5:8189", "10.0.0.7:8189"]));
    }

    #[test]
    fn advertise_names_addresses_and_ports_outright_and_public_ips_still_work() {
        let advertise = vec!["203.0.113.7:443".to_string(), "198.51.100.2".to_string()];
        let got = announced_addresses(&settings(&advertise, &[], "0.0.0.0"), &INTERFACES);
        assert_eq!(
            got.unwrap(),
            addrs(&["203.0.113.7:443", "198.51.100.2:8189", "127.0.0.1:8189"])
        );
        let public = vec!["203.0.113.9".to_string()];
        let got = announced_addresses(&settings(&[], &public, "0.0.0.0"), &INTERFACES);
        assert_eq!(got.unwrap(), addrs(&["203.0.113.9:8189", "127.0.0.1:8189"]));
        let v6 = vec!["[2001:db8::1]:3478".to_string()];
        let got = announced_addresses(&settings(&v6, &[], "::"), &INTERFACES).unwrap();
        assert_eq!(got[0], "[2001:db8::1]:3478".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn a_specific_bind_is_announced_alone_and_loopback_only_when_reachable() {
        let got = announced_addresses(&settings(&[], &[], "192.168.1.5"), &INTERFACES).unwrap();
        assert_eq!(got, addrs(&["192.168.1.5:8189"]));
        let got = announced_addresses(&settings(&[], &[], "127.0.0.1"), &INTERFACES).unwrap();
        assert_eq!(got, addrs(&["127.0.0.1:8189"]));
    }

    #[test]
    fn unusable_settings_say_which_and_nothing_to_announce_is_an_error() {
        for bad in ["example.com", "1.2.3.4:0", "1.2.3.4:99999", ""] {
            let advertise = vec![bad.to_string()];
            let err = announced_addresses(&settings(&advertise, &[], "0.0.0.0"), &INTERFACES);
            assert!(err.unwrap_err().contains("webrtc.advertise"), "{bad}");
        }
        let public = vec!["nope".to_string()];
        let err = announced_addresses(&settings(&[], &public, "0.0.0.0"), &INTERFACES);
        assert!(err.unwrap_err().contains("webrtc.public_ips"));
        let mut lonely = settings(&[], &[], "0.0.0.0");
        lonely.loopback_candidates = false;
        let err = announced_addresses(&lonely, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert!(err.unwrap_err().contains("set webrtc.advertise"));
    }
}
