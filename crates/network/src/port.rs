//! Published ports (`-p [IP:]HOST:CONTAINER[/tcp|/udp]`) and their CNI `portMappings` form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A host port forwarded to a container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address to listen on; `None` means every address.
    pub host_ip: Option<IpAddr>,
    /// The host port (1..=65535).
    pub host_port: u16,
    /// The container port (1..=65535).
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// A `--publish` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port mapping {spec:?}: {reason} (expected [IP:]HOST:CONTAINER[/tcp|/udp])")]
pub struct PortParseError {
    /// The value given.
    pub spec: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses `[IP:]HOST:CONTAINER[/tcp|/udp]`; an IPv6 host address is written in brackets
/// (`[::1]:8080:80`).
pub fn parse_publish(spec: &str) -> Result<PortMapping, PortParseError> {
    let err = |reason| PortParseError {
        spec: spec.to_string(),
        reason,
    };
    let (ports, protocol) = match spec.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some(_) => return Err(err("protocol must be tcp or udp")),
        None => (spec, Protocol::Tcp),
    };
    let (host_ip, host_and_container) = if let Some(rest) = ports.strip_prefix('[') {
        let (ip, rest) = rest
            .split_once("]:")
            .ok_or(err("unclosed [IPv6] address"))?;
        let ip: IpAddr = ip.parse().map_err(|_| err("invalid host IP"))?;
        (Some(ip), rest)
    } else {
        match ports.matches(':').count() {
            1 => (None, ports),
            2 => {
                let (ip, rest) = ports.split_once(':').ok_or(err("missing ':'"))?;
                let ip: IpAddr = ip.parse().map_err(|_| err("invalid host IP"))?;
                (Some(ip), rest)
            }
            _ => return Err(err("expected HOST:CONTAINER")),
        }
    };
    let (host, container) = host_and_container
        .split_once(':')
        .ok_or(err("expected HOST:CONTAINER"))?;
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p != 0);
    Ok(PortMapping {
        host_ip,
        host_port: port(host).ok_or(err("invalid host port"))?,
        container_port: port(container).ok_or(err("invalid container port"))?,
        protocol,
    })
}

impl FromStr for PortMapping {
    type Err = PortParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_publish(s)
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl PortMapping {
    /// The CNI `portMappings` entry (`hostPort`, `containerPort`, `protocol`, `hostIP`).
    pub fn to_cni(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.as_str(),
        });
        if let (Some(ip), Some(obj)) = (self.host_ip, v.as_object_mut()) {
            obj.insert("hostIP".into(), serde_json::Value::String(ip.to_string()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!((p.host_ip, p.host_port, p.container_port), (None, 8080, 80));
        assert_eq!(p.protocol, Protocol::Tcp);
        let p = parse_publish("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:53:5353/udp");
        let p = parse_publish("[::1]:8443:443/tcp").unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p.to_string(), "[::1]:8443:443/tcp");
        assert_eq!(p.to_cni()["hostIP"], "::1");
        assert!(parse_publish("1:2")
            .unwrap()
            .to_cni()
            .get("hostIP")
            .is_none());
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "80",
            "0:80",
            "80:0",
            "70000:80",
            "a:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "[::1:80:80",
            "1.1.1.1:2:3:4",
            "",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
