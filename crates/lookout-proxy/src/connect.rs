//! Connections to origin servers. [`reachable`] is the one place the proxy turns a host into
//! addresses: the resolver's answer, less every address the client's group may not reach
//! (`lookout_policy::Destinations`), so an address literal, a rebound name and a CONNECT all
//! go through the same check, and only the addresses it returns are ever connected to.

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

/// The addresses of `host` a client of `group` may be connected to, or an error carrying the
/// [`Refused`] of the first address when there are none.
pub(crate) async fn reachable(
    resolver: &Resolver,
    destinations: &Destinations,
    group: GroupId,
    host: &str,
    port: u16,
) -> io::Result<Vec<SocketAddr>> {
    let found = resolver.lookup(host, port).await?;
    destinations.filter(group, found).map_err(io::Error::other)
}

/// Connects to the first of `addrs` that accepts within `timeout` each.
pub(crate) async fn connect_first(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
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

/// The HTTP client's connector for one group.
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
            let host = uri.host().ok_or("the address has no host")?;
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let addrs =
                reachable(&this.resolver, &this.destinations, this.group, host, port).await?;
            Ok(TokioIo::new(connect_first(&addrs, this.timeout).await?))
        })
    }
}

/// The destination refusal behind an error, if that is why it failed.
pub(crate) fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut next = Some(e);
    while let Some(e) = next {
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
