//! Which UDP port of WebRTC's pool to try next. The caller tracks what is in use.

/// A first port and a count: which UDP ports WebRTC may use, and which one to try next.
/// Ports in use are tracked by the caller's set; this only decides the order.
pub fn next_free_port(
    first: u16,
    count: u16,
    cursor: u16,
    in_use: impl Fn(u16) -> bool,
) -> Option<u16> {
    if count == 0 {
        return None;
    }
    (0..count)
        .map(|i| (cursor.wrapping_add(i)) % count)
        .map(|offset| u32::from(first) + u32::from(offset))
        .filter(|p| *p <= u32::from(u16::MAX))
        .map(|p| p as u16)
        .find(|p| !in_use(*p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_taken_in_order_and_wrap() {
        assert_eq!(next_free_port(8189, 3, 0, |_| false), Some(8189));
        assert_eq!(next_free_port(8189, 3, 1, |_| false), Some(8190));
        assert_eq!(next_free_port(8189, 3, 2, |p| p == 8191), Some(8189));
        assert_eq!(next_free_port(8189, 3, 0, |_| true), None);
        assert_eq!(next_free_port(8189, 0, 0, |_| false), None);
        assert_eq!(next_free_port(65535, 3, 1, |_| false), Some(65535));
    }
}
