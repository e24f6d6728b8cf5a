//! Response bodies: Lookout's own pages, and origin bodies relayed frame by frame (never
//! buffered whole) with their byte count logged when they end.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use lookout_store::{Event, EventLog};

use crate::page::Capture;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy sends.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// A body of known bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The first frames of an origin body, read to sniff its type.
pub(crate) struct Prefix {
    frames: VecDeque<Frame<Bytes>>,
    /// The data bytes among `frames`, joined (up to the sniffing length).
    pub(crate) data: Vec<u8>,
    ended: bool,
}

impl Prefix {
    /// No frames read yet.
    pub(crate) fn empty() -> Prefix {
        Prefix {
            frames: VecDeque::new(),
            data: Vec::new(),
            ended: false,
        }
    }
}

/// Reads frames from `body` until `want` data bytes are seen or the body ends.
pub(crate) async fn read_prefix(
    body: &mut Incoming,
    want: usize,
    timeout: Duration,
) -> Result<Prefix, BoxError> {
    let mut prefix = Prefix::empty();
    let read = async {
        while prefix.data.len() < want {
            match body.frame().await {
                None => {
                    prefix.ended = true;
                    break;
                }
                Some(frame) => {
                    let frame = frame?;
                    if let Some(d) = frame.data_ref() {
                        let room = want.saturating_sub(prefix.data.len());
                        prefix.data.extend_from_slice(&d[..d.len().min(room)]);
                    }
                    let trailers = frame.is_trailers();
                    prefix.frames.push_back(frame);
                    if trailers {
                        prefix.ended = true;
                        break;
                    }
                }
            }
        }
        Ok::<_, BoxError>(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BoxError::from("the origin server stopped sending"))??;
    Ok(prefix)
}

/// An origin body on its way to the client: the prefix frames, then the rest. Counts data
/// bytes; when the body ends or is dropped (client gone), the event is logged with them.
pub(crate) struct Relay {
    queued: VecDeque<Frame<Bytes>>,
    inner: Option<Incoming>,
    bytes: u64,
    event: Option<(Event, EventLog)>,
    /// A copy of the first bytes of a page, for the monitoring.
    capture: Option<Capture>,
}

impl Relay {
    pub(crate) fn new(
        prefix: Prefix,
        inner: Incoming,
        event: Option<(Event, EventLog)>,
        capture: Option<Capture>,
    ) -> Relay {
        Relay {
            queued: prefix.frames,
            inner: (!prefix.ended).then_some(inner),
            bytes: 0,
            event,
            capture,
        }
    }

    fn count(&mut self, frame: &Frame<Bytes>) {
        if let Some(d) = frame.data_ref() {
            self.bytes += d.len() as u64;
            if let Some(c) = &mut self.capture {
                c.push(d);
            }
        }
    }
}

impl HttpBody for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.queued.pop_front() {
            self.count(&frame);
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.inner = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.count(&frame);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.queued.is_empty() && self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let queued: u64 = self
            .queued
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let inner = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint);
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + queued);
        }
        hint.set_lower(inner.lower() + queued);
        hint
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(c) = self.capture.take() {
            c.finish();
        }
        if let Some((mut event, log)) = self.event.take() {
            event.bytes = self.bytes;
            log.record(event);
        }
    }
}
