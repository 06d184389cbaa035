//! The original destination of a connection that iptables redirected to a capture listener
//! (`REDIRECT` in the `nat` table rewrites the destination; the kernel remembers the one the
//! client dialled and tells it through `SO_ORIGINAL_DST`, or `IP6T_SO_ORIGINAL_DST` for
//! IPv6). This is what Envoy's `original_dst` listener filter and `use_original_dst` read.
//! The `getsockopt` itself is socket2's (its one `unsafe` block lives there); this module is
//! the proxy's only door to it.

use std::net::SocketAddr;

use socket2::SockRef;
use tokio::net::TcpStream;

/// Where the client meant to connect: the address before any `REDIRECT`, or the socket's
/// own local address when the connection was not redirected (no NAT entry, or a direct
/// connection to the listener). `None` only when the socket has no local address at all.
pub fn destination(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    Some(redirected_from(stream, local).unwrap_or(local))
}

/// The destination the kernel recorded before NAT, when it differs from `local`.
fn redirected_from(stream: &TcpStream, local: SocketAddr) -> Option<SocketAddr> {
    let socket = SockRef::from(stream);
    let original = if local.is_ipv4() {
        socket.original_dst_v4()
    } else {
        socket.original_dst_v6()
    };
    let original = original.ok()?.as_socket()?;
    // An IPv4 client on a dual-stack socket: compare and report as plain IPv4.
    let original = SocketAddr::new(original.ip().to_canonical(), original.port());
    (original != local).then_some(original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Without a `REDIRECT` the destination is where the client connected. (The redirected
    /// case needs iptables in a network namespace: `trellis-cli/tests/proxy_capture.rs`.)
    #[tokio::test]
    async fn a_direct_connection_keeps_its_local_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let _client = TcpStream::connect(to).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(destination(&accepted), Some(to));
    }
}
