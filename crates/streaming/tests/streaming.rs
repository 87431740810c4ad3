//! The streaming server driven by real WebSocket clients over real TCP on 127.0.0.1, with a
//! fake backend:
//! - exec `["out", STDOUT, STDERR, CODE]` writes the texts (stderr into stdout with a tty) and
//!   exits with CODE; `["cat"]` copies stdin to stdout until EOF; `["resize"]` writes the first
//!   terminal size it gets; `["fail"]` fails to run.
//! - attach writes "attached\n" and then copies stdin to stdout until EOF.
//! - port_forward dials 127.0.0.1:PORT.

use std::sync::Arc;
use std::time::Duration;

use berth_streaming::client;
use berth_streaming::{
    AttachRequest, Backend, BoxFuture, Config, ExecRequest, PortForwardRequest, Server, Streams,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

struct Fake;

async fn cat(io: &mut Streams) {
    let (Some(stdin), Some(stdout)) = (io.stdin.as_mut(), io.stdout.as_ref()) else {
        return;
    };
    while let Some(d) = stdin.recv().await {
        if stdout.send(d).await.is_err() {
            break;
        }
    }
}

impl Backend for Fake {
    fn exec(&self, req: ExecRequest, mut io: Streams) -> BoxFuture<Result<i32, String>> {
        Box::pin(async move {
            match req.cmd.first().map(String::as_str) {
                Some("out") => {
                    let out = req.cmd.get(1).cloned().unwrap_or_default();
                    let err = req.cmd.get(2).cloned().unwrap_or_default();
                    let code = req.cmd.get(3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    if let Some(o) = &io.stdout {
                        let _ = o.send(Bytes::from(out)).await;
                        match &io.stderr {
                            Some(e) => {
                                let _ = e.send(Bytes::from(err)).await;
                            }
                            None => {
                                let _ = o.send(Bytes::from(err)).await;
                            }
                        }
                    }
                    Ok(code)
                }
                Some("cat") => {
                    cat(&mut io).await;
                    Ok(0)
                }
                Some("resize") => {
                    let size = io.resize.recv().await.ok_or("no resize")?;
                    if let Some(o) = &io.stdout {
                        let msg = format!("{}x{}", size.width, size.height);
                        let _ = o.send(Bytes::from(msg)).await;
                    }
                    Ok(0)
                }
                _ => Err("no such command".to_string()),
            }
        })
    }

    fn attach(&self, _req: AttachRequest, mut io: Streams) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            if let Some(o) = &io.stdout {
                let _ = o.send(Bytes::from_static(b"attached\n")).await;
            }
            cat(&mut io).await;
            Ok(())
        })
    }

    fn port_forward(
        &self,
        _pod: String,
        port: u16,
        mut conn: tokio::io::DuplexStream,
    ) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            tokio::io::copy_bidirectional(&mut conn, &mut tcp)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

async fn server() -> Server {
    Server::start(Config::default(), Arc::new(Fake))
        .await
        .expect("start streaming server")
}

fn exec_req(cmd: &[&str], tty: bool, stdin: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: true,
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `url` offering `protocol`; returns the socket and the protocol the server chose.
async fn open(url: &str, protocol: &str) -> (Ws, String) {
    let mut req = client::ws_url(url).into_client_request().expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).expect("header"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    let chosen = resp.headers()["Sec-WebSocket-Protocol"]
        .to_str()
        .expect("protocol")
        .to_string();
    (ws, chosen)
}

/// Every binary message until the server closes, as (channel, data).
async fn collect(ws: &mut Ws) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.expect("read") {
            Message::Binary(b) => out.push((b[0], b[1..].to_vec())),
            Message::Close(frame) => {
                // Go clients treat a close without status 1000 as an error.
                assert_eq!(frame.map(|f| f.code), Some(CloseCode::Normal));
                break;
            }
            _ => {}
        }
    }
    out
}

fn channel(msgs: &[(u8, Vec<u8>)], ch: u8) -> Vec<u8> {
    msgs.iter()
        .filter(|(c, _)| *c == ch)
        .flat_map(|(_, d)| d.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_tty_separates_streams_and_reports_exit_codes() {
    let s = server().await;
    assert!(s.local_addr().ip().is_loopback());

    let url = s.exec_url(exec_req(&["out", "hello", "oops", "0"], false, false));
    assert!(
        url.starts_with(&format!("http://{}/exec/", s.local_addr())),
        "{url}"
    );
    let (out, err, code) = tokio::time::timeout(LIMIT, client::exec(&url, None, false))
        .await
        .expect("in time")
        .expect("exec");
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"hello"[..], &b"oops"[..], 0)
    );

    let url = s.exec_url(exec_req(&["out", "a", "b", "3"], false, false));
    let (out, err, code) = client::exec(&url, None, false).await.expect("exec");
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"a"[..], &b"b"[..], 3)
    );

    // The exact Status JSON on channel 3, as kubectl parses it.
    let url = s.exec_url(exec_req(&["out", "", "", "3"], false, false));
    let (mut ws, proto) = open(&url, "v5.channel.k8s.io").await;
    assert_eq!(proto, "v5.channel.k8s.io");
    let msgs = tokio::time::timeout(LIMIT, collect(&mut ws))
        .await
        .expect("in time");
    assert_eq!(msgs.first(), Some(&(1, vec![])), "ready message first");
    assert_eq!(
        String::from_utf8(channel(&msgs, 3)).expect("utf8"),
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [out   3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
    let url = s.exec_url(exec_req(&["out", "x", "", "0"], false, false));
    let (mut ws, _) = open(&url, "v5.channel.k8s.io").await;
    let msgs = collect(&mut ws).await;
    assert_eq!(channel(&msgs, 3), br#"{"metadata":{},"status":"Success"}"#);

    // A backend that cannot run the command: an internal error, not an exit code.
    let url = s.exec_url(exec_req(&["fail"], false, false));
    let e = client::exec(&url, None, false)
        .await
        .expect_err("must fail");
    assert!(e.to_string().contains("no such command"), "{e}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_tty_merges_stderr_and_delivers_resize() {
    let s = server().await;
    let url = s.exec_url(exec_req(&["out", "o", "e", "0"], true, false));
    let (out, err, code) = client::exec(&url, None, true).await.expect("exec");
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"oe"[..], &b""[..], 0)
    );

    let url = s.exec_url(exec_req(&["resize"], true, false));
    let (mut ws, _) = open(&url, "v5.channel.k8s.io").await;
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":132,"Height":43}"#);
    ws.send(Message::Binary(resize.into()))
        .await
        .expect("send resize");
    let msgs = tokio::time::timeout(LIMIT, collect(&mut ws))
        .await
        .expect("in time");
    assert_eq!(channel(&msgs, 1), b"132x43");
    assert_eq!(channel(&msgs, 3), br#"{"metadata":{},"status":"Success"}"#);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_close_on_v5_delivers_eof() {
    let s = server().await;
    // A payload larger than every buffer on the way, so both directions must flow at once.
    let input: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let url = s.exec_url(exec_req(&["cat"], false, true));
    let (out, err, code) =
        tokio::time::timeout(LIMIT, client::exec(&url, Some(input.clone()), false))
            .await
            .expect("cat must see EOF in time")
            .expect("exec");
    assert_eq!(out.len(), input.len());
    assert!(out == input && err.is_empty() && code == 0);

    let url = s.attach_url(AttachRequest {
        container_id: "c1".into(),
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
    });
    assert!(url.contains("/attach/"), "{url}");
    let (out, _, code) =
        tokio::time::timeout(LIMIT, client::exec(&url, Some(b"hi\n".to_vec()), false))
            .await
            .expect("attach ends in time")
            .expect("attach");
    assert_eq!((out.as_slice(), code), (&b"attached\nhi\n"[..], 0));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_clients_work() {
    let s = server().await;
    let url = s.exec_url(exec_req(&["out", "four", "err", "7"], false, false));
    let (out, err, code) = client::exec_with_protocols(&url, &["v4.channel.k8s.io"], None, false)
        .await
        .expect("v4 exec");
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"four"[..], &b"err"[..], 7)
    );

    // v4 has no close message: [255, 0] is just an unknown channel and stdin stays open.
    let url = s.exec_url(exec_req(&["cat"], false, true));
    let (mut ws, proto) = open(&url, "v9.channel.k8s.io, v4.channel.k8s.io").await;
    assert_eq!(proto, "v4.channel.k8s.io");
    ws.send(Message::Binary(Bytes::from_static(b"\x00ping")))
        .await
        .expect("send");
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got != b"ping" {
        let msg = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("in time");
        if let Some(Ok(Message::Binary(b))) = msg {
            if b[0] == 1 {
                got.extend_from_slice(&b[1..]);
            }
        }
    }
    let still_open = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(
        still_open.is_err(),
        "stdin must stay open on v4: {still_open:?}"
    );

    // The base64 variant.
    let url = s.exec_url(exec_req(&["out", "b64", "", "0"], false, false));
    let (mut ws, proto) = open(&url, "v4.base64.channel.k8s.io").await;
    assert_eq!(proto, "v4.base64.channel.k8s.io");
    let mut texts = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => texts.push(t.to_string()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(texts[0], "1");
    assert!(texts.contains(&"1YjY0".to_string()), "{texts:?}");
    s.shutdown().await;
}

/// The HTTP status of a WebSocket upgrade attempt.
async fn upgrade_status(url: &str, protocol: &str) -> u16 {
    let mut req = client::ws_url(url).into_client_request().expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).expect("header"),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reused_expired_and_wrong_kind_tokens_are_404() {
    let s = Server::start(
        Config {
            token_ttl: Duration::from_millis(300),
            ..Config::default()
        },
        Arc::new(Fake),
    )
    .await
    .expect("start");
    let base = format!("http://{}", s.local_addr());
    let v5 = "v5.channel.k8s.io";
    assert_eq!(
        upgrade_status(&format!("{base}/exec/deadbeef"), v5).await,
        404
    );
    assert_eq!(upgrade_status(&format!("{base}/nope"), v5).await, 404);

    // kubectl's query parameters are accepted; a refused upgrade leaves the token usable.
    let url = s.exec_url(exec_req(&["out", "q", "", "0"], false, false));
    let with_query = format!("{url}?command=ls&stdin=1&tty=1&stdout=1&stderr=1");
    assert_eq!(upgrade_status(&with_query, "v9.channel.k8s.io").await, 400);
    let (out, _, code) = client::exec(&with_query, None, false).await.expect("exec");
    assert_eq!((out.as_slice(), code), (&b"q"[..], 0));
    assert_eq!(upgrade_status(&url, v5).await, 404, "a token is good once");

    let attach = s.attach_url(AttachRequest {
        container_id: "c".into(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
    });
    let as_exec = attach.replace("/attach/", "/exec/");
    assert_eq!(
        upgrade_status(&as_exec, v5).await,
        404,
        "token of another kind"
    );

    let url = s.exec_url(exec_req(&["out", "", "", "0"], false, false));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upgrade_status(&url, v5).await, 404, "expired token");

    // A SPDY upgrade without a protocol the server speaks: 403, and the token survives.
    let url = s.exec_url(exec_req(&["out", "after", "", "0"], false, false));
    let addr = s.local_addr();
    let path = url.trim_start_matches(&base).to_string();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (out, _, _) = client::exec(&url, None, false).await.expect("exec");
    assert_eq!(out, b"after");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_round_trips_bytes() {
    // An echo server that upper-cases, so the answer cannot be our own bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let up = buf[..n].to_ascii_uppercase();
                    if c.write_all(&up).await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    let s = server().await;
    let url = s.port_forward_url(PortForwardRequest {
        pod_sandbox_id: "pod".into(),
        ports: vec![port],
    });
    assert!(url.contains("/portforward/"), "{url}");
    let (mut ws, proto) = open(&url, "portforward.k8s.io").await;
    assert_eq!(proto, "portforward.k8s.io");
    let mut prefixes = Vec::new();
    while prefixes.len() < 2 {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => prefixes.push(b.to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let le = port.to_le_bytes();
    assert_eq!(prefixes, vec![vec![0, le[0], le[1]], vec![1, le[0], le[1]]]);

    ws.send(Message::Binary(Bytes::from_static(b"\x00hello, pod")))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got.len() < 10 {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b[0], 0, "data channel");
                got.extend_from_slice(&b[1..]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, b"HELLO, POD");
    ws.close(None).await.expect("close");

    // A port nobody listens on: the error comes on the port's error channel.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let url = s.port_forward_url(PortForwardRequest {
        pod_sandbox_id: "pod".into(),
        ports: vec![dead_port],
    });
    let (mut ws, _) = open(&url, "v4.channel.k8s.io").await;
    let msgs = tokio::time::timeout(LIMIT, collect(&mut ws))
        .await
        .expect("in time");
    let errors = String::from_utf8_lossy(&channel(&msgs, 1)[2..]).into_owned();
    assert!(
        errors.contains(&format!("error forwarding port {dead_port}")),
        "{errors}"
    );
    s.shutdown().await;
}
