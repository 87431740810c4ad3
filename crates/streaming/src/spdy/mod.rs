//! SPDY/3.1, the older Kubernetes streaming transport that kubelet, the API server's stream
//! translation and `kubectl port-forward` still speak: the upgrade answer, the framing
//! ([`frame`]), one connection's streams ([`conn`]), and the exec/attach and port-forward
//! sessions over it.

pub(crate) mod conn;
pub(crate) mod frame;
pub(crate) mod portforward;
pub(crate) mod remotecommand;
pub(crate) mod tunnel;

#[cfg(test)]
mod tests;

/// Remote-command protocols over SPDY, best first (v5 is WebSocket-only).
pub(crate) const REMOTE_COMMAND_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
];
/// The port-forward protocol over SPDY.
pub(crate) const PORT_FORWARD_PROTOCOLS: &[&str] = &["portforward.k8s.io"];
