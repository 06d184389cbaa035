//! Istio's tcp-echo sample: for every line a client sends, the server writes back
//! `PREFIX line`. Used for TCP routing (weights by version) and mTLS tests. Lines are
//! bounded; a longer one closes the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Running;

/// tcp-echo's port.
pub const PORT: u16 = 9000;

/// The longest line the server reads.
pub const MAX_LINE: u64 = 64 * 1024;

/// Binds `address` and echoes with `prefix` on a task of the current runtime.
pub async fn start(prefix: String, address: SocketAddr) -> std::io::Result<Running> {
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve(&prefix, listener, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    });
    Ok(Running::new(address, stop, task))
}

/// Echoes on `listener` until `shutdown` completes; open connections end with the task.
pub async fn serve(prefix: &str, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    connections.spawn(echo(prefix.to_string(), socket, peer));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => return,
        }
        while connections.try_join_next().is_some() {}
    }
}

async fn echo(prefix: String, socket: TcpStream, peer: SocketAddr) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => return,
            Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE => {
                tracing::info!(%peer, "line too long, closing");
                return;
            }
            Ok(_) => {
                let reply = [prefix.as_bytes(), b" ", &line].concat();
                tracing::info!(%peer, bytes = line.len(), "echo");
                if write.write_all(&reply).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "read failed");
                return;
            }
        }
    }
}

/// Sends `message` as one line to a tcp-echo server at `address` (host:port) and returns
/// the line it answers, without the newline, all within `timeout`.
pub async fn send(address: &str, message: &str, timeout: Duration) -> std::io::Result<String> {
    let exchange = async {
        let mut socket = TcpStream::connect(address).await?;
        socket.write_all(format!("{message}\n").as_bytes()).await?;
        let mut reply = Vec::new();
        BufReader::new(socket)
            .take(MAX_LINE)
            .read_until(b'\n', &mut reply)
            .await?;
        Ok(String::from_utf8_lossy(&reply)
            .trim_end_matches('\n')
            .to_string())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_come_back_prefixed() {
        let server = start("hello".into(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = server.address().to_string();
        let reply = send(&address, "world", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply, "hello world");
        server.stop().await;
        assert!(send(&address, "x", Duration::from_secs(5)).await.is_err());
    }

    #[tokio::test]
    async fn overlong_lines_close_the_connection() {
        let server = start("p".into(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let long = "x".repeat(usize::try_from(MAX_LINE).unwrap() + 10);
        let reply = send(&server.address().to_string(), &long, Duration::from_secs(5))
            .await
            .unwrap_or_default();
        assert_eq!(reply, "");
    }
}
