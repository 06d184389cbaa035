//! Protocol detection for listeners with `tls_inspector` / `http_inspector`: the first bytes
//! of a connection are read (not consumed: [`Prefixed`] replays them) until they are a TLS
//! ClientHello (SNI and ALPN), an HTTP/1.x request line, the HTTP/2 preface, or clearly
//! none of these (opaque TCP). [`classify`] is the pure part.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The largest TLS record (16 KiB) and its header: a ClientHello fits in one.
const MAX_PEEK: usize = 16 * 1024 + 5;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/1 request line longer than this is treated as not HTTP (Envoy's inspector
/// gives up after its peek buffer too).
const MAX_REQUEST_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    Tls {
        server_name: Option<String>,
        alpn: Vec<String>,
    },
    /// `http/1.0`, `http/1.1` or `h2c`.
    Http(&'static str),
    Opaque,
    NeedMore,
}

/// What `buf` (the first bytes of a connection) is, as far as the enabled inspectors tell.
pub fn classify(buf: &[u8], tls: bool, http: bool) -> Sniffed {
    let Some(&first) = buf.first() else {
        return Sniffed::NeedMore;
    };
    if tls && first == 0x16 {
        return classify_tls(buf);
    }
    if !http {
        return Sniffed::Opaque;
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Sniffed::Http("h2c")
        } else {
            Sniffed::NeedMore
        };
    }
    // A method: upper-case letters, then a space.
    let method_len = buf.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method_len == buf.len() {
        return if method_len < 20 {
            Sniffed::NeedMore
        } else {
            Sniffed::Opaque
        };
    }
    if method_len == 0 || buf[method_len] != b' ' {
        return Sniffed::Opaque;
    }
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() < MAX_REQUEST_LINE && !buf.contains(&b'\n') {
            Sniffed::NeedMore
        } else {
            Sniffed::Opaque
        };
    };
    let line = &buf[..eol];
    if line.ends_with(b" HTTP/1.1") {
        Sniffed::Http("http/1.1")
    } else if line.ends_with(b" HTTP/1.0") {
        Sniffed::Http("http/1.0")
    } else {
        Sniffed::Opaque
    }
}

fn classify_tls(buf: &[u8]) -> Sniffed {
    if buf.len() < 5 {
        return Sniffed::NeedMore;
    }
    if buf[1] != 0x03 {
        return Sniffed::Opaque;
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if buf.len() < 5 + len {
        return Sniffed::NeedMore;
    }
    let (server_name, alpn) = client_hello(&buf[5..5 + len]).unwrap_or_default();
    Sniffed::Tls { server_name, alpn }
}

/// SNI and ALPN of a ClientHello handshake message; `None` if it does not parse.
fn client_hello(mut b: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head)
    }
    fn u8_len<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = usize::from(take(b, 1)?[0]);
        take(b, n)
    }
    fn u16_len<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let h = take(b, 2)?;
        take(b, usize::from(u16::from_be_bytes([h[0], h[1]])))
    }
    let header = take(&mut b, 4)?;
    if header[0] != 1 {
        return None; // not a ClientHello
    }
    take(&mut b, 2 + 32)?; // version, random
    u8_len(&mut b)?; // session id
    u16_len(&mut b)?; // cipher suites
    u8_len(&mut b)?; // compression methods
    let mut extensions = u16_len(&mut b)?;
    let (mut sni, mut alpn) = (None, Vec::new());
    while !extensions.is_empty() {
        let kind = take(&mut extensions, 2)?;
        let mut data = u16_len(&mut extensions)?;
        match u16::from_be_bytes([kind[0], kind[1]]) {
            0 => {
                let mut list = u16_len(&mut data)?;
                while !list.is_empty() {
                    let name_type = take(&mut list, 1)?[0];
                    let name = u16_len(&mut list)?;
                    if name_type == 0 {
                        sni = Some(String::from_utf8_lossy(name).to_ascii_lowercase());
                    }
                }
            }
            16 => {
                let mut list = u16_len(&mut data)?;
                while !list.is_empty() {
                    alpn.push(String::from_utf8_lossy(u8_len(&mut list)?).into_owned());
                }
            }
            _ => {}
        }
    }
    Some((sni, alpn))
}

/// Reads until [`classify`] decides, the peer stops sending (EOF: opaque) or `timeout`
/// passes (`Err` with the bytes read so far).
pub async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    tls: bool,
    http: bool,
    timeout: Option<Duration>,
) -> Result<(Vec<u8>, Sniffed), Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        match classify(&buf, tls, http) {
            Sniffed::NeedMore if buf.len() < MAX_PEEK => {}
            Sniffed::NeedMore => return Ok((buf, Sniffed::Opaque)),
            decided => return Ok((buf, decided)),
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(MAX_PEEK - buf.len());
        let read = stream.read(&mut chunk[..want]);
        let n = match deadline {
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(r) => r,
                Err(_) => return Err(buf),
            },
            None => read.await,
        };
        match n {
            Ok(0) | Err(_) => return Ok((buf, Sniffed::Opaque)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A stream that first replays the bytes the inspectors read.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with SNI `api.example.com` and ALPN h2, http/1.1.
    fn client_hello_bytes() -> Vec<u8> {
        let mut ext = Vec::new();
        let name = b"api.example.com";
        let mut sni = vec![0u8];
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name);
        let mut sni_ext = (sni.len() as u16).to_be_bytes().to_vec();
        sni_ext.extend(sni);
        ext.extend([0, 0]);
        ext.extend((sni_ext.len() as u16).to_be_bytes());
        ext.extend(sni_ext);
        let mut protos = Vec::new();
        for p in [&b"h2"[..], b"http/1.1"] {
            protos.push(p.len() as u8);
            protos.extend(p);
        }
        let mut alpn = (protos.len() as u16).to_be_bytes().to_vec();
        alpn.extend(protos);
        ext.extend([0, 16]);
        ext.extend((alpn.len() as u16).to_be_bytes());
        ext.extend(alpn);
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut record = vec![0x16, 3, 1];
        record.extend((hs.len() as u16).to_be_bytes());
        record.extend(hs);
        record
    }

    #[test]
    fn tls_client_hello_gives_sni_and_alpn() {
        let hello = client_hello_bytes();
        assert_eq!(classify(&hello[..3], true, true), Sniffed::NeedMore);
        assert_eq!(classify(&hello[..20], true, true), Sniffed::NeedMore);
        assert_eq!(
            classify(&hello, true, true),
            Sniffed::Tls {
                server_name: Some("api.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            }
        );
        // Without the TLS inspector, TLS is just bytes.
        assert_eq!(classify(&hello, false, true), Sniffed::Opaque);
    }

    #[test]
    fn http_versions_and_opaque_bytes() {
        assert_eq!(classify(b"GE", false, true), Sniffed::NeedMore);
        assert_eq!(classify(b"GET /a HT", false, true), Sniffed::NeedMore);
        assert_eq!(
            classify(b"GET /a HTTP/1.1\r\nHost: x\r\n", false, true),
            Sniffed::Http("http/1.1")
        );
        assert_eq!(
            classify(b"POST / HTTP/1.0\r\n", false, true),
            Sniffed::Http("http/1.0")
        );
        assert_eq!(classify(b"PRI * HTTP/2", false, true), Sniffed::NeedMore);
        assert_eq!(classify(H2_PREFACE, false, true), Sniffed::Http("h2c"));
        assert_eq!(classify(b"\x00\x01binary", false, true), Sniffed::Opaque);
        assert_eq!(classify(b"HELLO world\r\n", false, true), Sniffed::Opaque);
        assert_eq!(
            classify(b"get / HTTP/1.1\r\n", false, true),
            Sniffed::Opaque
        );
    }

    #[tokio::test]
    async fn sniffed_bytes_are_replayed_and_silence_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (prefix, what) = sniff(&mut server, true, true, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(what, Sniffed::Http("http/1.1"));
        let mut replay = Prefixed::new(prefix, server);
        let mut got = vec![0u8; 18];
        replay.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");

        let (_quiet, mut server) = tokio::io::duplex(64);
        let r = sniff(&mut server, true, true, Some(Duration::from_millis(20))).await;
        assert_eq!(r, Err(Vec::new()));
    }
}
