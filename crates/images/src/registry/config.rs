//! Registry hosts configuration, like containerd's `hosts.toml`: per registry host, mirrors
//! tried in order (then the upstream unless `skip_upstream`), plain HTTP and credentials.
//!
//! [`RegistryConfig::load`] reads a directory with one `<host>/hosts.json` per registry host
//! (the host as written in image names, e.g. `docker.io/hosts.json`,
//! `localhost:5000/hosts.json`), each a [`HostConfig`]:
//!
//! ```json
//! { "mirrors": ["http://127.0.0.1:5000", "https://mirror.example.com"],
//!   "skip_upstream": false, "plain_http": false,
//!   "auth": { "username": "u", "password": "p" } }
//! ```
//!
//! and an optional `config.json` with
//! `{ "platform": "linux/arm64", "max_concurrent_downloads": 3 }`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::Platform;
use crate::ImageError;

/// Credentials for a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (docker's `identitytoken`): exchanged for a bearer token at
    /// the challenge's realm (`grant_type=refresh_token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
    /// A bearer token for the registry itself, sent with every request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_token: Option<String>,
}

/// How to reach one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    /// Mirror base URLs (`http://host:port` or `https://host/prefix`), tried in order.
    pub mirrors: Vec<String>,
    /// Do not fall back to the registry itself after the mirrors.
    pub skip_upstream: bool,
    /// Talk plain HTTP to the registry itself (loopback hosts always do).
    pub plain_http: bool,
    /// Basic credentials (also used to fetch bearer tokens).
    pub auth: Option<Credentials>,
}

/// Registry configuration for pulls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    /// By registry host as written in image names (`docker.io`, `localhost:5000`).
    pub hosts: HashMap<String, HostConfig>,
    /// The platform to pick from multi-platform images (`linux/amd64` by default).
    pub platform: Option<String>,
    /// Blobs downloaded at once.
    pub max_concurrent_downloads: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            hosts: HashMap::new(),
            platform: None,
            max_concurrent_downloads: 3,
        }
    }
}

/// One place to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port][/prefix]` without a trailing slash or `/v2`.
    pub base: String,
    pub mirror: bool,
    pub auth: Option<Credentials>,
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

impl RegistryConfig {
    /// Reads `<dir>/<host>/hosts.json` files and `<dir>/config.json` (see the module docs);
    /// a missing directory is an empty configuration.
    pub fn load(dir: &Path) -> Result<RegistryConfig, ImageError> {
        let mut cfg = RegistryConfig::default();
        let read = |p: &Path| -> Result<Option<Vec<u8>>, ImageError> {
            match std::fs::read(p) {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ImageError::io_path("read", p, e)),
            }
        };
        let parse_err = |p: &Path, e: serde_json::Error| {
            ImageError::invalid(p.display().to_string(), e.to_string())
        };
        let global = dir.join("config.json");
        if let Some(data) = read(&global)? {
            let g: RegistryConfig =
                serde_json::from_slice(&data).map_err(|e| parse_err(&global, e))?;
            cfg.platform = g.platform;
            cfg.max_concurrent_downloads = g.max_concurrent_downloads;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cfg),
            Err(e) => return Err(ImageError::io_path("list", dir, e)),
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path().join("hosts.json");
            if let Some(data) = read(&path)? {
                let host: HostConfig =
                    serde_json::from_slice(&data).map_err(|e| parse_err(&path, e))?;
                cfg.hosts
                    .insert(entry.file_name().to_string_lossy().into_owned(), host);
            }
        }
        Ok(cfg)
    }

    /// The platform to pull.
    pub fn platform(&self) -> Result<Platform, ImageError> {
        self.platform
            .as_deref()
            .map_or_else(|| Ok(Platform::default()), Platform::parse)
    }

    /// The registry itself (where pushes go).
    pub(crate) fn upstream(&self, registry: &str) -> Endpoint {
        let host = self.hosts.get(registry).cloned().unwrap_or_default();
        let name = if registry == crate::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if host.plain_http || is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        Endpoint {
            base: format!("{scheme}://{name}"),
            mirror: false,
            auth: host.auth,
        }
    }

    /// Where to fetch images of `registry` from, in order.
    pub(crate) fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let host = self.hosts.get(registry).cloned().unwrap_or_default();
        let mut out: Vec<Endpoint> = host
            .mirrors
            .iter()
            .map(|m| {
                let mut base = m.trim_end_matches('/').to_string();
                if let Some(b) = base.strip_suffix("/v2") {
                    base = b.to_string();
                }
                if !base.contains("://") {
                    base = format!("https://{base}");
                }
                Endpoint {
                    base,
                    mirror: true,
                    auth: None,
                }
            })
            .collect();
        if !host.skip_upstream || out.is_empty() {
            out.push(self.upstream(registry));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_mirrors_then_upstream() {
        let mut cfg = RegistryConfig::default();
        cfg.hosts.insert(
            "docker.io".into(),
            HostConfig {
                mirrors: vec!["http://127.0.0.1:5000/".into(), "mirror.example/v2".into()],
                ..Default::default()
            },
        );
        let eps: Vec<String> = cfg
            .endpoints("docker.io")
            .into_iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(
            eps,
            [
                "http://127.0.0.1:5000",
                "https://mirror.example",
                "https://registry-1.docker.io"
            ]
        );
        assert_eq!(
            cfg.endpoints("localhost:5000")[0].base,
            "http://localhost:5000"
        );
        assert_eq!(cfg.endpoints("quay.io")[0].base, "https://quay.io");
        cfg.hosts.get_mut("docker.io").unwrap().skip_upstream = true;
        assert_eq!(cfg.endpoints("docker.io").len(), 2);
    }

    #[test]
    fn load_from_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mirror.test")).unwrap();
        std::fs::write(
            dir.path().join("mirror.test/hosts.json"),
            r#"{"mirrors":["http://127.0.0.1:1"],"skip_upstream":true,"auth":{"username":"u","password":"p"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"platform":"linux/arm64/v8"}"#,
        )
        .unwrap();
        let cfg = RegistryConfig::load(dir.path()).unwrap();
        let host = &cfg.hosts["mirror.test"];
        assert!(host.skip_upstream);
        assert_eq!(host.auth.as_ref().unwrap().username, "u");
        assert_eq!(cfg.platform().unwrap().variant.as_deref(), Some("v8"));
        assert_eq!(cfg.max_concurrent_downloads, 3);
        assert_eq!(
            RegistryConfig::load(&dir.path().join("none")).unwrap(),
            RegistryConfig::default()
        );
    }
}
