//! A body that counts the data bytes passing through it and, when it is dropped (sent to
//! the end, or abandoned), hands the count to a closure once: metrics and the access log
//! are written when the stream ends, as Envoy does, with the real byte counts and duration.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

type OnEnd = Box<dyn FnOnce(u64) + Send + Sync>;

/// Counts data bytes into a local total (reported on drop) and, optionally, a shared one.
pub struct Counted<B> {
    inner: B,
    bytes: u64,
    shared: Option<Arc<AtomicU64>>,
    on_end: Option<OnEnd>,
}

impl<B> Counted<B> {
    /// Calls `on_end(bytes)` once, when the body is dropped.
    pub fn on_end(inner: B, on_end: impl FnOnce(u64) + Send + Sync + 'static) -> Self {
        Counted {
            inner,
            bytes: 0,
            shared: None,
            on_end: Some(Box::new(on_end)),
        }
    }

    /// Adds every data byte to `total` as it passes.
    pub fn into(inner: B, total: Arc<AtomicU64>) -> Self {
        Counted {
            inner,
            bytes: 0,
            shared: Some(total),
            on_end: None,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            use hyper::body::Buf;
            let n = data.remaining() as u64;
            self.bytes += n;
            if let Some(total) = &self.shared {
                total.fetch_add(n, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use std::sync::Mutex;

    #[tokio::test]
    async fn bytes_are_counted_and_reported_once_on_drop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let body = Counted::on_end(Full::new(Bytes::from_static(b"hello")), move |n| {
            s.lock().unwrap().push(n)
        });
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
        assert_eq!(*seen.lock().unwrap(), [5]);
        let total = Arc::new(AtomicU64::new(0));
        let body = Counted::into(Full::new(Bytes::from_static(b"abc")), total.clone());
        body.collect().await.unwrap();
        assert_eq!(total.load(Ordering::Relaxed), 3);
    }
}
