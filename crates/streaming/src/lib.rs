//! Berth's Kubernetes CRI streaming server.
//!
//! The CRI `Exec`, `Attach` and `PortForward` calls do not stream anything themselves: they
//! answer with the URL of a streaming server, and the client (crictl, or kubelet on behalf of
//! kubectl) opens that URL with a WebSocket upgrade. This crate is that server. It knows
//! nothing about containers: the daemon plugs in a [`Backend`] that runs the command, attaches
//! to the container's stdio or dials a port inside the pod, and the server carries the bytes
//! over the Kubernetes WebSocket channel protocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
//! their base64 and v1 variants, and `portforward.k8s.io`).
//!
//! The older SPDY/3.1 transport is spoken too (kubelet and the API server still use it, and
//! so does `kubectl port-forward`, also tunnelled in WebSocket): exec and attach over
//! `v4`/`v3`/`v2.channel.k8s.io`, port-forward over `portforward.k8s.io`.
//!
//! Every URL carries a random one-shot token that maps to the stored request; the request
//! stored with the token wins over whatever query parameters the client adds.

mod config;
mod error;
mod handshake;
mod portforward;
mod protocol;
mod remotecommand;
mod server;
mod spdy;
mod tokens;

#[cfg(feature = "client")]
pub mod client;

pub use config::Config;
pub use error::Error;
pub use protocol::{
    CHANNEL_CLOSE, CHANNEL_ERROR, CHANNEL_RESIZE, CHANNEL_STDERR, CHANNEL_STDIN, CHANNEL_STDOUT,
    PROTOCOL_PORT_FORWARD, PROTOCOL_PORT_FORWARD_SPDY_TUNNEL, PROTOCOL_V1, PROTOCOL_V1_BASE64,
    PROTOCOL_V4, PROTOCOL_V4_BASE64, PROTOCOL_V5,
};
pub use server::Server;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A command to run in a container, as stored behind an exec URL.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach to a container's main process, as stored behind an attach URL.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Ports of a pod sandbox to forward, as stored behind a port-forward URL. When `ports` is
/// empty the client's `port=` query parameters are used.
#[derive(Clone, Debug)]
pub struct PortForwardRequest {
    pub pod_sandbox_id: String,
    pub ports: Vec<u16>,
}

/// A terminal size sent by the client on the resize channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// The client's streams, handed to the backend for one exec or attach.
///
/// Dropping a sender tells the server that stream is finished; the server waits for the
/// backend's future and for both output senders before it reports the result.
pub struct Streams {
    /// The client's stdin: `None` unless requested; closes when the client closes stdin or
    /// disconnects.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// To the client's stdout: `None` unless requested.
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// To the client's stderr: `None` unless requested, and `None` with a tty (stderr is merged
    /// into stdout by the terminal).
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Terminal sizes from the client; without a tty it is closed from the start.
    pub resize: mpsc::Receiver<TerminalSize>,
}

/// A boxed, sendable future, as the backend returns them.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// What the server needs from the runtime.
pub trait Backend: Send + Sync + 'static {
    /// Runs the command; resolves to its exit code (the server reports it on the error channel).
    fn exec(&self, req: ExecRequest, io: Streams) -> BoxFuture<Result<i32, String>>;
    /// Attaches the streams to the container's main process until it exits or the client
    /// leaves.
    fn attach(&self, req: AttachRequest, io: Streams) -> BoxFuture<Result<(), String>>;
    /// Connects `conn` to `port` inside the pod's network namespace until either side closes.
    fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
        conn: tokio::io::DuplexStream,
    ) -> BoxFuture<Result<(), String>>;
}
