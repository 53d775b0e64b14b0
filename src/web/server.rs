//! Accepting the web view's connections, bounded before anyone signs in:
//! at most [`MAX_CONNECTIONS`] at once (below the unit's `LimitNOFILE`),
//! at most [`CONNECTIONS_PER_ADDRESS`] from one client address (the
//! trusted reverse proxy excepted), and a request's headers must arrive
//! within [`HEADER_READ_TIMEOUT`]: a client sending half a request, a
//! thousand times over, holds nobody else up. Each request carries its
//! client's address ([`ConnectInfo`]) and the address it came in on
//! ([`LocalAddr`], for the Host check). On stop, connections finish the
//! request they serve and close.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower_service::Service;

use super::auth::LocalAddr;
use super::slots::Slots;

/// Connections served at once, at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections from one client address at once, at most.
pub(crate) const CONNECTIONS_PER_ADDRESS: usize = 32;

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` completes; `exempt` names
/// the addresses not limited per address (the trusted proxy).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    exempt: impl Fn(IpAddr) -> bool,
    stop: impl Future<Output = ()>,
) {
    let total = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<Slots<IpAddr>> = Slots::new(CONNECTIONS_PER_ADDRESS);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of descriptors, most likely: wait for some back.
                        tracing::warn!(error = %err, "cannot accept a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&total).try_acquire_owned() else {
                    continue;
                };
                let slot = if exempt(peer.ip()) {
                    None
                } else {
                    match per_address.take(peer.ip()) {
                        Some(slot) => Some(slot),
                        None => continue,
                    }
                };
                let Ok(local) = stream.local_addr() else { continue };
                let router = router.clone();
                let stopping = stopping.clone();
                connections.spawn(async move {
                    let _held = (permit, slot);
                    connection(stream, peer, local, router, stopping).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    let _ = stopping_tx.send(true);
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    router: Router,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(LocalAddr(local));
        router.clone().call(request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        _ = stopping.changed() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}
