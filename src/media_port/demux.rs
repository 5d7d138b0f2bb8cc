//! Which viewer a datagram arriving on the shared media port belongs to.
//!
//! A new viewer is known by its ICE username fragment (ours, chosen per viewer and put in
//! its answer): its browser's first Binding request names it. Once the caller has checked
//! that request's MESSAGE-INTEGRITY (the ICE agent's job), the sender's address is bound to
//! the viewer, and everything from it — STUN responses carry no USERNAME, DTLS and SRTP
//! none at all — is routed by address. Bounded: at most `max_paths_per_viewer` addresses
//! per viewer (the oldest is forgotten), and nothing unknown is kept. Pure: no sockets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use super::stun::binding_request_username;

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<V> {
    /// From an address bound to this viewer.
    Viewer(V),
    /// A Binding request naming this viewer's fragment from an address not (or not yet)
    /// bound to it: hand it to the viewer's ICE agent, and bind the address
    /// ([`Demux::bind_path`]) only if the agent accepts its integrity.
    Claims(V),
    /// Nobody's: drop it.
    Unknown,
}

/// The demultiplexing table of one socket.
#[derive(Debug)]
pub struct Demux<V> {
    by_ufrag: HashMap<String, V>,
    by_path: HashMap<SocketAddr, V>,
    /// Each viewer's fragment and bound addresses, oldest first.
    viewers: HashMap<V, (String, Vec<SocketAddr>)>,
    max_paths_per_viewer: usize,
}

/// A viewer was added with a fragment another viewer already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInUse;

impl<V: Copy + Eq + Hash> Demux<V> {
    /// An empty table; each viewer may use up to `max_paths_per_viewer` addresses (at
    /// least 1): a browser checks from each of its candidates.
    pub fn new(max_paths_per_viewer: usize) -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_path: HashMap::new(),
            viewers: HashMap::new(),
            max_paths_per_viewer: max_paths_per_viewer.max(1),
        }
    }

    /// Starts routing Binding requests that name `ufrag` to `viewer`.
    pub fn add_viewer(&mut self, viewer: V, ufrag: &str) -> Result<(), FragmentInUse> {
        if self.by_ufrag.contains_key(ufrag) {
            return Err(FragmentInUse);
        }
        self.remove_viewer(viewer);
        self.by_ufrag.insert(ufrag.to_string(), viewer);
        self.viewers.insert(viewer, (ufrag.to_string(), Vec::new()));
        Ok(())
    }

    /// Forgets `viewer`, its fragment and its addresses.
    pub fn remove_viewer(&mut self, viewer: V) {
        if let Some((ufrag, paths)) = self.viewers.remove(&viewer) {
            self.by_ufrag.remove(&ufrag);
            for path in paths {
                self.by_path.remove(&path);
            }
        }
    }

    /// Where `datagram`, received from `from`, goes. A Binding request is routed by the
    /// fragment it names (a request naming an unknown fragment is nobody's, whatever its
    /// address); anything else by its address.
    pub fn route(&self, datagram: &[u8], from: SocketAddr) -> Route<V> {
        let bound = self.by_path.get(&from).copied();
        if let Some(username) = binding_request_username(datagram) {
            return match self.by_ufrag.get(username.local).copied() {
                Some(viewer) if bound == Some(viewer) => Route::Viewer(viewer),
                Some(viewer) => Route::Claims(viewer),
                None => Route::Unknown,
            };
        }
        bound.map_or(Route::Unknown, Route::Viewer)
    }

    /// Binds `from` to `viewer` (its integrity checked): from now on what comes from there
    /// is the viewer's. An address bound to another viewer moves. Returns false when the
    /// viewer is unknown (it left meanwhile).
    pub fn bind_path(&mut self, from: SocketAddr, viewer: V) -> bool {
        if !self.viewers.contains_key(&viewer) {
            return false;
        }
        if let Some(previous) = self.by_path.insert(from, viewer) {
            if previous == viewer {
                return true;
            }
            if let Some((_, paths)) = self.viewers.get_mut(&previous) {
                paths.retain(|p| *p != from);
            }
        }
        let max = self.max_paths_per_viewer;
        let Some((_, paths)) = self.viewers.get_mut(&viewer) else {
            return false;
        };
        paths.push(from);
        if paths.len() > max {
            let oldest = paths.remove(0);
            self.by_path.remove(&oldest);
        }
        true
    }

    /// How many viewers and bound addresses the table holds.
    pub fn len(&self) -> (usize, usize) {
        (self.viewers.len(), self.by_path.len())
    }

    /// Whether it holds no viewer.
    pub fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut body = vec![0x00, 0x06];
        body.extend_from_slice(&(username.len() as u16).to_be_bytes());
        body.extend_from_slice(username.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let mut out = vec![0x00, 0x01];
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        out.extend_from_slice(&[1; 12]);
        out.extend_from_slice(&body);
        out
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], port))
    }

    const DTLS: &[u8] = &[22, 0xfe, 0xfd, 0, 0];
    /// A Binding success response: no USERNAME.
    const RESPONSE: &[u8] = &[
        1, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    ];

    #[test]
    fn a_new_viewer_is_claimed_by_its_fragment_then_routed_by_its_address() {
        let mut demux = Demux::new(4);
        demux.add_viewer(1u32, "aaaa").unwrap();
        demux.add_viewer(2u32, "bbbb").unwrap();
        let request = binding_request("bbbb:chrome");
        assert_eq!(demux.route(&request, addr(5000)), Route::Claims(2));
        // Until the claim is accepted, nothing else from there gets through.
        assert_eq!(demux.route(DTLS, addr(5000)), Route::Unknown);
        assert_eq!(demux.route(RESPONSE, addr(5000)), Route::Unknown);
        assert!(demux.bind_path(addr(5000), 2));
        assert_eq!(demux.route(&request, addr(5000)), Route::Viewer(2));
        assert_eq!(demux.route(DTLS, addr(5000)), Route::Viewer(2));
        assert_eq!(demux.route(RESPONSE, addr(5000)), Route::Viewer(2));
        assert_eq!(demux.route(DTLS, addr(5001)), Route::Unknown);
    }

    #[test]
    fn two_viewers_behind_one_address_with_different_ports_stay_apart() {
        let mut demux = Demux::new(4);
        demux.add_viewer(1u32, "aaaa").unwrap();
        demux.add_viewer(2u32, "bbbb").unwrap();
        demux.bind_path(addr(6000), 1);
        demux.bind_path(addr(6001), 2);
        assert_eq!(demux.route(DTLS, addr(6000)), Route::Viewer(1));
        assert_eq!(demux.route(DTLS, addr(6001)), Route::Viewer(2));
    }

    #[test]
    fn a_request_naming_another_viewer_from_a_bound_address_is_only_a_claim() {
        let mut demux = Demux::new(4);
        demux.add_viewer(1u32, "aaaa").unwrap();
        demux.add_viewer(2u32, "bbbb").unwrap();
        demux.bind_path(addr(7000), 1);
        let request = binding_request("bbbb:x");
        assert_eq!(demux.route(&request, addr(7000)), Route::Claims(2));
        assert_eq!(
            demux.route(&binding_request("zzzz:x"), addr(7000)),
            Route::Unknown
        );
        // Accepted: the address moves to viewer 2.
        demux.bind_path(addr(7000), 2);
        assert_eq!(demux.route(DTLS, addr(7000)), Route::Viewer(2));
        assert_eq!(demux.len(), (2, 1));
    }

    #[test]
    fn addresses_per_viewer_are_bounded_and_a_viewer_that_leaves_takes_them_all() {
        let mut demux = Demux::new(2);
        demux.add_viewer(1u32, "aaaa").unwrap();
        for port in 1..=5 {
            assert!(demux.bind_path(addr(port), 1));
        }
        assert_eq!(demux.len(), (1, 2));
        assert_eq!(
            demux.route(DTLS, addr(1)),
            Route::Unknown,
            "the oldest went"
        );
        assert_eq!(demux.route(DTLS, addr(5)), Route::Viewer(1));
        demux.remove_viewer(1);
        assert!(demux.is_empty());
        assert_eq!(demux.len(), (0, 0));
        assert_eq!(demux.route(DTLS, addr(5)), Route::Unknown);
        assert_eq!(
            demux.route(&binding_request("aaaa:x"), addr(9)),
            Route::Unknown
        );
        assert!(
            !demux.bind_path(addr(9), 1),
            "a viewer that left binds nothing"
        );
    }

    #[test]
    fn a_fragment_belongs_to_one_viewer_at_a_time() {
        let mut demux = Demux::new(2);
        demux.add_viewer(1u32, "aaaa").unwrap();
        assert_eq!(demux.add_viewer(2u32, "aaaa"), Err(FragmentInUse));
        demux.remove_viewer(1);
        demux.add_viewer(2u32, "aaaa").unwrap();
        assert_eq!(
            demux.route(&binding_request("aaaa:x"), addr(1)),
            Route::Claims(2)
        );
    }
}
