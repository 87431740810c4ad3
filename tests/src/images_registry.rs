//! A real registry for pull tests: Debian's `docker-registry` (distribution 2.8) on
//! 127.0.0.1 with filesystem storage in a temp dir, killed on drop; images pushed from an OCI
//! layout with `skopeo copy`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry, killed (and reaped) on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

fn answers(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until it answers.
    pub fn start() -> Registry {
        for _ in 0..5 {
            if let Some(reg) = Registry::try_start() {
                return reg;
            }
        }
        panic!("docker-registry did not start");
    }

    fn try_start() -> Option<Registry> {
        let dir = crate::images::scratch("registry");
        let addr = format!("127.0.0.1:{}", crate::free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let mut reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers(&reg.addr) {
                return Some(reg);
            }
            if reg.child.try_wait().unwrap().is_some() {
                // The port was taken meanwhile: the caller tries another.
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Pushes the OCI layout at `layout` (image `tag` in it) as `<repo>:<tag>`.
    pub fn push(&self, layout: &Path, tag: &str, repo_tag: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .expect("skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How [`AuthProxy`] wants clients to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `WWW-Authenticate: Bearer` with a token endpoint that wants basic credentials.
    Bearer,
    /// `WWW-Authenticate: Basic`.
    Basic,
    /// No authentication, but the last byte of every blob is flipped.
    Corrupt,
}

/// The credentials the proxy accepts.
pub const PROXY_USER: (&str, &str) = ("user", "pass");
/// The OAuth2 refresh token (docker's identity token) the proxy's token endpoint accepts in a
/// `grant_type=refresh_token` POST.
pub const PROXY_REFRESH_TOKEN: &str = "r3fresh-for-berth";
const PROXY_BASIC: &str = "Basic dXNlcjpwYXNz";
/// The bearer token the proxy hands out (and accepts) in [`AuthMode::Bearer`].
pub const PROXY_TOKEN: &str = "t0k3n-for-berth";

/// An authenticating HTTP proxy in front of a [`Registry`]: requests without the right
/// `Authorization` get a 401 challenge; good ones are forwarded. Stopped on drop.
pub struct AuthProxy {
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Tokens handed out.
    pub tokens: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

fn respond(s: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(
    mut s: TcpStream,
    upstream: &str,
    mode: AuthMode,
    me: &str,
    tokens: &std::sync::atomic::AtomicUsize,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut s) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or("").to_string();
    let path = request.split(' ').nth(1).unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let auth = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str());
    if path.starts_with("/token") && request.starts_with("POST ") {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len.min(64 * 1024)];
        let _ = s.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body);
        let fields: Vec<&str> = body.split('&').collect();
        if fields.contains(&"grant_type=refresh_token")
            && fields.contains(&format!("refresh_token={PROXY_REFRESH_TOKEN}").as_str())
            && fields.contains(&"scope=repository%3Abusybox%3Apull")
        {
            tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!("{{\"access_token\":\"{PROXY_TOKEN}\"}}");
            respond(
                &mut s,
                "200 OK",
                "Content-Type: application/json\r\n",
                &body,
            );
        } else {
            respond(&mut s, "401 Unauthorized", "", "");
        }
        return;
    }
    if path.starts_with("/token") {
        if auth == Some(PROXY_BASIC) && path.contains("scope=repository%3Abusybox%3Apull") {
            tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!("{{\"token\":\"{PROXY_TOKEN}\"}}");
            respond(
                &mut s,
                "200 OK",
                "Content-Type: application/json\r\n",
                &body,
            );
        } else {
            respond(&mut s, "401 Unauthorized", "", "");
        }
        return;
    }
    let (wanted, challenge) = match mode {
        AuthMode::Bearer => (
            format!("Bearer {PROXY_TOKEN}"),
            format!("Bearer realm=\"http://{me}/token\",service=\"berth-test\",scope=\"repository:busybox:pull\""),
        ),
        AuthMode::Basic => (PROXY_BASIC.to_string(), "Basic realm=\"berth-test\"".to_string()),
        AuthMode::Corrupt => (String::new(), String::new()),
    };
    if mode != AuthMode::Corrupt && auth != Some(wanted.as_str()) {
        respond(
            &mut s,
            "401 Unauthorized",
            &format!("WWW-Authenticate: {challenge}\r\n"),
            "",
        );
        return;
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        respond(&mut s, "502 Bad Gateway", "", "");
        return;
    };
    let mut forward = format!("{request}\r\nHost: {upstream}\r\nConnection: close\r\n");
    for (k, v) in &headers {
        if !matches!(k.as_str(), "authorization" | "host" | "connection") {
            forward.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    forward.push_str("\r\n");
    if up.write_all(forward.as_bytes()).is_err() {
        return;
    }
    if mode == AuthMode::Corrupt && path.contains("/blobs/") {
        let mut response = Vec::new();
        let _ = up.read_to_end(&mut response);
        if let Some(last) = response.last_mut() {
            *last ^= 0xff;
        }
        let _ = s.write_all(&response);
    } else {
        let _ = std::io::copy(&mut up, &mut s);
    }
}

impl AuthProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, mode: AuthMode) -> AuthProxy {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let tokens = Arc::new(AtomicUsize::new(0));
        let (stop2, tokens2, me, upstream) = (
            stop.clone(),
            tokens.clone(),
            addr.clone(),
            upstream.to_string(),
        );
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, me, tokens) = (upstream.clone(), me.clone(), tokens2.clone());
                std::thread::spawn(move || serve(conn, &upstream, mode, &me, &tokens));
            }
        });
        AuthProxy {
            addr,
            stop,
            thread: Some(thread),
            tokens,
        }
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
