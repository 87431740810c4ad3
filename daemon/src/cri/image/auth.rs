//! A PullImageRequest's `AuthConfig` as registry credentials, the way containerd reads it:
//! username/password first, then an identity token, then `auth` (base64 `user:password`);
//! a registry token is a bearer token sent as is. Credentials whose `server_address` names
//! another registry are not sent (the pull goes anonymous), so kubelet's per-registry
//! secrets never leak to a host they are not for.

use base64::Engine;
use berth_images::Credentials;
use k8s_cri::v1::AuthConfig;

use crate::error::{ApiError, ApiResult};

/// The host part of a server address (`https://index.docker.io/v1/` → `docker.io`).
fn host_of(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            berth_images::DEFAULT_REGISTRY.to_string()
        }
        _ => host,
    }
}

/// The credentials `auth` gives for `registry` (a host as in image names), if any.
pub fn credentials(auth: Option<&AuthConfig>, registry: &str) -> ApiResult<Option<Credentials>> {
    let Some(a) = auth else {
        return Ok(None);
    };
    if !a.server_address.is_empty() && host_of(&a.server_address) != registry {
        return Ok(None);
    }
    let registry_token = (!a.registry_token.is_empty()).then(|| a.registry_token.clone());
    let mut creds = Credentials {
        registry_token,
        ..Default::default()
    };
    if !a.username.is_empty() {
        creds.username = a.username.clone();
        creds.password = a.password.clone();
    } else if !a.identity_token.is_empty() {
        creds.identity_token = Some(a.identity_token.clone());
    } else if !a.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .map_err(|e| ApiError::InvalidArgument(format!("auth is not base64: {e}")))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| ApiError::InvalidArgument("decoded auth is not text".into()))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| ApiError::InvalidArgument("decoded auth is not user:password".into()))?;
        creds.username = user.to_string();
        creds.password = password.trim_end_matches('\0').to_string();
    } else if creds.registry_token.is_none() {
        // An empty AuthConfig: anonymous.
        return Ok(None);
    }
    Ok(Some(creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(f: impl FnOnce(&mut AuthConfig)) -> AuthConfig {
        let mut a = AuthConfig::default();
        f(&mut a);
        a
    }

    #[test]
    fn username_password_auth_and_tokens() {
        let a = auth(|a| {
            a.username = "u".into();
            a.password = "p".into();
        });
        let c = credentials(Some(&a), "docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));

        let a = auth(|a| a.auth = "dXNlcjpwYXNz".into());
        let c = credentials(Some(&a), "x.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));

        let a = auth(|a| a.identity_token = "refresh".into());
        let c = credentials(Some(&a), "x.io").unwrap().unwrap();
        assert_eq!(c.identity_token.as_deref(), Some("refresh"));
        assert!(c.username.is_empty());

        let a = auth(|a| a.registry_token = "tok".into());
        let c = credentials(Some(&a), "x.io").unwrap().unwrap();
        assert_eq!(c.registry_token.as_deref(), Some("tok"));

        assert_eq!(credentials(None, "x.io").unwrap(), None);
        assert_eq!(
            credentials(Some(&AuthConfig::default()), "x.io").unwrap(),
            None
        );
    }

    #[test]
    fn bad_auth_is_invalid() {
        for bad in ["%%%", "bm9jb2xvbg=="] {
            let a = auth(|a| a.auth = bad.into());
            assert!(matches!(
                credentials(Some(&a), "x.io"),
                Err(ApiError::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn server_address_must_match() {
        let a = auth(|a| {
            a.username = "u".into();
            a.server_address = "https://index.docker.io/v1/".into();
        });
        assert!(credentials(Some(&a), "docker.io").unwrap().is_some());
        assert!(credentials(Some(&a), "quay.io").unwrap().is_none());
        let a = auth(|a| {
            a.username = "u".into();
            a.server_address = "127.0.0.1:5000".into();
        });
        assert!(credentials(Some(&a), "127.0.0.1:5000").unwrap().is_some());
        assert!(credentials(Some(&a), "127.0.0.1:5001").unwrap().is_none());
    }
}
