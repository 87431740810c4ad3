//! The HTTP side: listener, routes (`/exec/<token>`, `/attach/<token>`,
//! `/portforward/<token>`), token checks and the WebSocket upgrade that hands the connection to
//! a session.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::handshake::{self, text};
use crate::protocol::{
    Framing, PORT_FORWARD_PROTOCOLS, PROTOCOL_PORT_FORWARD_SPDY_TUNNEL, REMOTE_COMMAND_PROTOCOLS,
};
use crate::tokens::{Pending, Tokens};
use crate::{
    portforward, remotecommand, spdy, AttachRequest, Backend, Config, Error, ExecRequest,
    PortForwardRequest,
};

/// An upgraded streaming connection.
pub(crate) type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

struct State {
    tokens: Tokens,
    backend: Arc<dyn Backend>,
    shutdown: watch::Receiver<bool>,
}

/// A running streaming server. Dropping it stops it too (without waiting).
pub struct Server {
    addr: SocketAddr,
    base_url: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `cfg.address` and serves until [`Server::shutdown`].
    pub async fn start(cfg: Config, backend: Arc<dyn Backend>) -> Result<Server, Error> {
        let listener = TcpListener::bind(cfg.address)
            .await
            .map_err(|source| Error::Bind {
                addr: cfg.address,
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::LocalAddr)?;
        let (stop, shutdown) = watch::channel(false);
        let state = Arc::new(State {
            tokens: Tokens::new(cfg.token_ttl)?,
            backend,
            shutdown,
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        tracing::info!(%addr, "streaming server listening");
        Ok(Server {
            addr,
            base_url: format!("http://{}", url_host(addr)),
            state,
            stop,
            accept: Some(accept),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A one-shot URL for an exec. With a tty, stderr is merged into stdout.
    pub fn exec_url(&self, mut req: ExecRequest) -> String {
        req.stderr &= !req.tty;
        self.url(Pending::Exec(req))
    }

    /// A one-shot URL for an attach. With a tty, stderr is merged into stdout.
    pub fn attach_url(&self, mut req: AttachRequest) -> String {
        req.stderr &= !req.tty;
        self.url(Pending::Attach(req))
    }

    /// A one-shot URL for a port-forward.
    pub fn port_forward_url(&self, req: PortForwardRequest) -> String {
        self.url(Pending::PortForward(req))
    }

    fn url(&self, req: Pending) -> String {
        let kind = req.kind();
        let token = self.state.tokens.insert(req);
        format!("{}/{kind}/{token}", self.base_url)
    }

    /// Stops listening and ends every open stream.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The host part of URLs: a wildcard bind is reached through loopback.
fn url_host(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Resolves when the server is told to stop (or is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let shutdown = stopped(state.shutdown.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tracing::debug!(%peer, "streaming connection");
                    tokio::spawn(serve_connection(tcp, state.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    tracing::info!("streaming server stopped");
}

async fn serve_connection(tcp: TcpStream, state: Arc<State>) {
    let _ = tcp.set_nodelay(true);
    let shutdown = stopped(state.shutdown.clone());
    let svc_state = state.clone();
    let service = service_fn(move |req| {
        let state = svc_state.clone();
        async move { Ok::<_, Infallible>(route(state, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::select! {
        _ = shutdown => {}
        r = conn => if let Err(e) = r {
            tracing::debug!(error = %e, "streaming connection ended");
        }
    }
}

/// `/kind/token` → (kind, token).
fn parse_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (kind, token) = rest.split_once('/')?;
    let token = token.strip_suffix('/').unwrap_or(token);
    match kind {
        "exec" | "attach" | "portforward" if !token.is_empty() && !token.contains('/') => {
            Some((kind, token))
        }
        _ => None,
    }
}

/// The ports of `port=` query parameters (each may be a comma list), as kubelet reads them.
fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "port" {
            continue;
        }
        for p in v.split("%2C").flat_map(|s| s.split(',')) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    Ok(ports)
}

async fn route(state: Arc<State>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some((kind, token)) = parse_path(req.uri().path()) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let (kind, token) = (kind.to_string(), token.to_string());
    if state.tokens.peek(&kind, &token).is_none() {
        tracing::debug!(%kind, "unknown, expired or used stream token");
        return text(StatusCode::NOT_FOUND, "unknown or expired stream token");
    }
    let is_spdy = handshake::is_spdy(req.headers());
    let checked = match (is_spdy, kind == "portforward") {
        (false, false) => handshake::check(req.method(), req.headers(), REMOTE_COMMAND_PROTOCOLS)
            .map(Upgrade::WebSocket),
        (false, true) => handshake::check(req.method(), req.headers(), PORT_FORWARD_PROTOCOLS)
            .map(Upgrade::WebSocket),
        (true, false) => {
            handshake::check_spdy(req.headers(), spdy::REMOTE_COMMAND_PROTOCOLS).map(Upgrade::Spdy)
        }
        (true, true) => {
            handshake::check_spdy(req.headers(), spdy::PORT_FORWARD_PROTOCOLS).map(Upgrade::Spdy)
        }
    };
    let accepted = match checked {
        Ok(a) => a,
        Err(refusal) => {
            tracing::debug!(%kind, status = %refusal.status, message = %refusal.message, "stream upgrade refused");
            return text(refusal.status, &refusal.message);
        }
    };
    let ports = match query_ports(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let Some(mut pending) = state.tokens.take(&kind, &token) else {
        return text(StatusCode::NOT_FOUND, "unknown or expired stream token");
    };
    let protocol = match &accepted {
        Upgrade::WebSocket(a) => a.protocol.clone(),
        Upgrade::Spdy(a) => a.protocol.clone(),
    };
    // Over SPDY (tunnelled or not) the ports come with each stream pair instead.
    let ports_per_stream = is_spdy || protocol == PROTOCOL_PORT_FORWARD_SPDY_TUNNEL;
    if let Pending::PortForward(pf) = &mut pending {
        if pf.ports.is_empty() {
            pf.ports = ports;
        }
        if pf.ports.is_empty() && !ports_per_stream {
            return text(
                StatusCode::BAD_REQUEST,
                "query parameter \"port\" is required",
            );
        }
    }
    tracing::debug!(%kind, %protocol, spdy = is_spdy, "stream upgrade accepted");
    let response = match &accepted {
        Upgrade::WebSocket(a) => a.response(),
        Upgrade::Spdy(a) => a.response(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let session_state = state.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "stream upgrade failed");
                return;
            }
        };
        let backend = session_state.backend.clone();
        let session = async move {
            match (accepted, pending) {
                (Upgrade::WebSocket(_), pending) => {
                    let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                    let framing = Framing::of(&protocol);
                    match pending {
                        Pending::PortForward(r)
                            if protocol == PROTOCOL_PORT_FORWARD_SPDY_TUNNEL =>
                        {
                            let (ours, theirs) = tokio::io::duplex(64 * 1024);
                            let bridge = tokio::spawn(spdy::tunnel::bridge(ws, ours));
                            spdy::portforward::serve(theirs, backend, r).await;
                            bridge.abort();
                        }
                        Pending::PortForward(r) => {
                            portforward::serve(ws, framing, backend, r).await
                        }
                        other => remotecommand::serve(ws, framing, backend, other).await,
                    }
                }
                (Upgrade::Spdy(_), Pending::PortForward(r)) => {
                    spdy::portforward::serve(upgraded, backend, r).await
                }
                (Upgrade::Spdy(_), other) => {
                    spdy::remotecommand::serve(upgraded, &protocol, backend, other).await
                }
            }
        };
        tokio::select! {
            _ = stopped(session_state.shutdown.clone()) => {}
            _ = session => {}
        }
    });
    response
}

/// The two transports a stream can be upgraded to.
enum Upgrade {
    WebSocket(handshake::Accepted),
    Spdy(handshake::SpdyAccepted),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ports() {
        assert_eq!(parse_path("/exec/abc"), Some(("exec", "abc")));
        assert_eq!(
            parse_path("/portforward/abc/"),
            Some(("portforward", "abc"))
        );
        assert_eq!(parse_path("/exec/"), None);
        assert_eq!(parse_path("/foo/abc"), None);
        assert_eq!(parse_path("/exec/a/b"), None);
        assert_eq!(
            query_ports(Some("port=80&port=81,82")),
            Ok(vec![80, 81, 82])
        );
        assert_eq!(query_ports(None), Ok(vec![]));
        assert!(query_ports(Some("port=x")).is_err());
        assert_eq!(
            url_host("0.0.0.0:5".parse().expect("addr")),
            "127.0.0.1:5".parse().expect("addr")
        );
    }
}
