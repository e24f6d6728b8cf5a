//! Connections to origin servers for the HTTP client: the host is resolved by the group's
//! [`Resolver`] (only addresses the group may reach), an address literal is checked the same
//! way, and the address actually connected to is checked once more before a byte is sent.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use lookout_policy::{Destinations, GroupId, Refused};
use tokio::net::TcpStream;

use crate::Resolver;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to origins for one group.
#[derive(Clone, Debug)]
pub(crate) struct OriginConnector {
    pub(crate) resolver: Resolver,
    pub(crate) destinations: Destinations,
    pub(crate) group: GroupId,
    pub(crate) timeout: Duration,
}

impl tower_service::Service<Uri> for OriginConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("the address has no host")?.to_owned();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let addrs = this.resolver.lookup(&host, port).await?;
            let stream = this.connect_any(&addrs).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

impl OriginConnector {
    /// The first of `addrs` that accepts within the timeout and is still a destination the
    /// group may reach once connected.
    pub(crate) async fn connect_any(&self, addrs: &[SocketAddr]) -> io::Result<TcpStream> {
        connect_checked(&self.destinations, self.group, addrs, self.timeout).await
    }
}

/// Connects to the first of `addrs` that accepts within `timeout` each; the address the
/// socket is connected to is checked against `destinations` for `group` before it is used.
pub(crate) async fn connect_checked(
    destinations: &Destinations,
    group: GroupId,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for &addr in addrs {
        destinations.check(group, addr).map_err(io::Error::other)?;
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let peer = stream.peer_addr()?;
                destinations.check(group, peer).map_err(io::Error::other)?;
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = io::Error::new(e.kind(), format!("{addr}: {e}")),
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr}: no answer within {} s", timeout.as_secs()),
                )
            }
        }
    }
    Err(last)
}

/// The destination refusal behind an error, if that is why it failed.
pub(crate) fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        if let Some(r) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
        {
            return Some(r);
        }
        next = e.source();
    }
    None
}
