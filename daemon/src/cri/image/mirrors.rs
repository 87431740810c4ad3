//! The `[cri.registry]` table of berthd's config, as containerd's CRI plugin has it:
//!
//! ```toml
//! [cri.registry.mirrors."docker.io"]
//! endpoints = ["http://127.0.0.1:5000", "https://mirror.example.com"]
//! [cri.registry.configs."registry.example.com".auth]
//! username = "u"
//! password = "p"          # or auth = "base64(u:p)", or identitytoken = "..."
//! ```
//!
//! Mirrors are tried in order, then the registry itself. They apply to CRI pulls only, on top
//! of the daemon's registry hosts directory (which berth.v1 pulls use as well). A request's
//! own AuthConfig wins over configured credentials.

use std::collections::HashMap;

use berth_images::{Credentials, RegistryConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriRegistry {
    /// By registry host as written in image names.
    pub mirrors: HashMap<String, Mirror>,
    /// Per registry host.
    pub configs: HashMap<String, HostAuth>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mirror {
    /// Base URLs (`scheme://host[:port][/prefix]`); containerd spells it `endpoint`.
    #[serde(alias = "endpoint")]
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostAuth {
    pub auth: Option<AuthEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthEntry {
    pub username: String,
    pub password: String,
    pub auth: String,
    pub identitytoken: String,
}

impl CriRegistry {
    /// `base` with these mirrors and credentials added.
    pub fn apply(&self, base: &RegistryConfig) -> anyhow::Result<RegistryConfig> {
        let mut cfg = base.clone();
        for (host, mirror) in &self.mirrors {
            let entry = cfg.hosts.entry(host.clone()).or_default();
            let mut endpoints = mirror.endpoints.clone();
            // Mirrors of the host directory stay, after the CRI ones.
            endpoints.append(&mut entry.mirrors);
            entry.mirrors = endpoints;
        }
        for (host, conf) in &self.configs {
            let Some(a) = &conf.auth else { continue };
            let req = k8s_cri::v1::AuthConfig {
                username: a.username.clone(),
                password: a.password.clone(),
                auth: a.auth.clone(),
                identity_token: a.identitytoken.clone(),
                ..Default::default()
            };
            let creds: Option<Credentials> = super::auth::credentials(Some(&req), host)
                .map_err(|e| anyhow::anyhow!("[cri.registry.configs.{host:?}.auth]: {e}"))?;
            if creds.is_some() {
                cfg.hosts.entry(host.clone()).or_default().auth = creds;
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_and_auth_from_toml() {
        let text = r#"
            [mirrors."docker.io"]
            endpoints = ["http://127.0.0.1:5000"]
            [mirrors."quay.io"]
            endpoint = ["https://m.example"]
            [configs."r.example".auth]
            auth = "dXNlcjpwYXNz"
        "#;
        let reg: CriRegistry = toml::from_str(text).unwrap();
        let mut base = RegistryConfig::default();
        base.hosts.insert(
            "docker.io".into(),
            berth_images::HostConfig {
                mirrors: vec!["http://old".into()],
                ..Default::default()
            },
        );
        let cfg = reg.apply(&base).unwrap();
        assert_eq!(
            cfg.hosts["docker.io"].mirrors,
            ["http://127.0.0.1:5000", "http://old"]
        );
        assert_eq!(cfg.hosts["quay.io"].mirrors, ["https://m.example"]);
        assert!(!cfg.hosts["quay.io"].skip_upstream);
        let auth = cfg.hosts["r.example"].auth.as_ref().unwrap();
        assert_eq!(auth.username, "user");
        assert!(toml::from_str::<CriRegistry>("[mirrors.x]\nbogus = 1\n").is_err());
    }
}
