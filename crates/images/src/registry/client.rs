//! HTTP requests to one registry endpoint with the distribution spec's authentication: on a
//! 401 the `WWW-Authenticate` challenge is answered with a bearer token from the realm
//! (anonymous, or with basic credentials) or with basic credentials, and reused afterwards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use super::config::{Credentials, Endpoint};
use crate::ImageError;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="...",service="...",scope="..."` (quoted values may hold commas).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// A client for one endpoint and repository.
pub(crate) struct Client {
    http: reqwest::Client,
    pub endpoint: Endpoint,
    /// The `ns` query of mirror requests (the upstream registry host).
    ns: String,
    authorization: Mutex<Option<HeaderValue>>,
}

fn basic(creds: &Credentials) -> Result<HeaderValue, ImageError> {
    use base64_lite::encode;
    HeaderValue::from_str(&format!(
        "Basic {}",
        encode(format!("{}:{}", creds.username, creds.password).as_bytes())
    ))
    .map_err(|_| ImageError::invalid("credentials", "not a valid header value"))
}

/// Minimal base64 (standard alphabet, padded) for basic credentials.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

impl Client {
    pub(crate) fn new(endpoint: Endpoint, ns: &str) -> Result<Client, ImageError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ImageError::registry(&endpoint.base, e.to_string()))?;
        // A registry token is used as is, before any challenge.
        let authorization =
            match endpoint
                .auth
                .as_ref()
                .and_then(|a| a.registry_token.as_ref())
            {
                Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    ImageError::invalid("registry token", "not a valid header value")
                })?),
                None => None,
            };
        Ok(Client {
            http,
            endpoint,
            ns: ns.to_string(),
            authorization: Mutex::new(authorization),
        })
    }

    pub(crate) fn err(&self, reason: impl Into<String>) -> ImageError {
        ImageError::registry(&self.endpoint.base, reason)
    }

    /// The URL of `/v2/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        let mut url = format!("{}/v2/{path}", self.endpoint.base);
        if self.endpoint.mirror {
            url.push_str(&format!("?ns={}", self.ns));
        }
        url
    }

    /// GETs `/v2/<path>`, authenticating once if challenged; fails unless 2xx.
    pub(crate) async fn get(&self, path: &str, accept: &[&str]) -> Result<Response, ImageError> {
        let url = self.url(path);
        let accept = accept.join(", ");
        let headers: Vec<(HeaderName, &str)> = if accept.is_empty() {
            Vec::new()
        } else {
            vec![(ACCEPT, accept.as_str())]
        };
        let resp = self.send(Method::GET, &url, &headers, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ImageError::RegistryNotFound {
                host: self.endpoint.base.clone(),
                reason: format!("GET {url}: {}", resp.status()),
            });
        }
        if !resp.status().is_success() {
            return Err(self.err(format!("GET {url}: {}", resp.status())));
        }
        Ok(resp)
    }

    /// Sends a request to `url`, answering one authentication challenge (the body is sent
    /// again then); returns whatever the registry finally answered.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, ImageError> {
        let mut answered = false;
        loop {
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(k, *v);
            }
            if let Some(body) = body {
                req = req.body(body.to_vec());
            }
            let auth = self.authorization.lock().ok().and_then(|a| a.clone());
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| self.err(format!("{method} {url}: {e}")))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge)
                    .ok_or_else(|| self.err(format!("{method} {url}: 401 without a challenge")))?;
                let value = self.answer(&challenge).await?;
                if let Ok(mut a) = self.authorization.lock() {
                    *a = Some(value);
                }
                continue;
            }
            return Ok(resp);
        }
    }

    /// Reads a response body of at most `max` bytes.
    pub(crate) async fn read_limited(
        &self,
        mut resp: Response,
        max: u64,
    ) -> Result<Vec<u8>, ImageError> {
        if resp.content_length().is_some_and(|l| l > max) {
            return Err(self.err(format!("response larger than {max} bytes")));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.err(e.to_string()))? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max {
                return Err(self.err(format!("response larger than {max} bytes")));
            }
        }
        Ok(out)
    }

    async fn answer(&self, challenge: &Challenge) -> Result<HeaderValue, ImageError> {
        match challenge.scheme.as_str() {
            "basic" => {
                let creds = self
                    .endpoint
                    .auth
                    .as_ref()
                    .filter(|c| !c.username.is_empty())
                    .ok_or_else(|| self.err("credentials required"))?;
                basic(creds)
            }
            "bearer" => {
                let realm = challenge
                    .params
                    .get("realm")
                    .ok_or_else(|| self.err("bearer challenge without realm"))?;
                let mut query = Vec::new();
                for key in ["service", "scope"] {
                    if let Some(v) = challenge.params.get(key) {
                        query.push((key, v.as_str()));
                    }
                }
                let identity = self
                    .endpoint
                    .auth
                    .as_ref()
                    .and_then(|c| c.identity_token.as_deref());
                let req = match (identity, &self.endpoint.auth) {
                    // OAuth2: the refresh token is exchanged for an access token.
                    (Some(refresh), _) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh),
                            ("client_id", "berth"),
                        ];
                        form.extend(query.iter().copied());
                        self.http.post(realm).form(&form)
                    }
                    (None, Some(creds)) if !creds.username.is_empty() => self
                        .http
                        .get(realm)
                        .query(&query)
                        .header(AUTHORIZATION, basic(creds)?),
                    (None, _) => self.http.get(realm).query(&query),
                };
                let resp = req
                    .send()
                    .await
                    .map_err(|e| self.err(format!("token from {realm}: {e}")))?;
                if !resp.status().is_success() {
                    return Err(self.err(format!("token from {realm}: {}", resp.status())));
                }
                let body = self.read_limited(resp, 1 << 20).await?;
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&body)
                    .map_err(|e| self.err(format!("token response: {e}")))?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| self.err("token response without token"))?;
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| self.err("token is not a valid header value"))
            }
            other => Err(self.err(format!("unsupported auth scheme {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_lite::encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_lite::encode(b"a"), "YQ==");
        assert_eq!(base64_lite::encode(b"ab"), "YWI=");
        assert_eq!(base64_lite::encode(b""), "");
    }
}
