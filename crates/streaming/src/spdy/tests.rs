//! The SPDY transport driven over real TCP by a minimal SPDY client built from the framing
//! code (kubectl itself was also checked by hand, see docs/cri.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::frame::{self, Frame, HeaderCodec};
use crate::{
    AttachRequest, Backend, BoxFuture, Config, ExecRequest, PortForwardRequest, Server, Streams,
};

const LIMIT: Duration = Duration::from_secs(20);

/// exec `["cat"]` copies stdin to stdout; `["out", O, E, CODE]` writes O and E and exits CODE.
struct Fake;

impl Backend for Fake {
    fn exec(&self, req: ExecRequest, mut io: Streams) -> BoxFuture<Result<i32, String>> {
        Box::pin(async move {
            let out = io.stdout.clone().ok_or("no stdout")?;
            if req.cmd[0] == "cat" {
                let stdin = io.stdin.as_mut().ok_or("no stdin")?;
                while let Some(d) = stdin.recv().await {
                    let _ = out.send(d).await;
                }
                return Ok(0);
            }
            let _ = out.send(Bytes::from(req.cmd[1].clone())).await;
            if let Some(e) = &io.stderr {
                let _ = e.send(Bytes::from(req.cmd[2].clone())).await;
            }
            Ok(req.cmd[3].parse().unwrap_or(0))
        })
    }

    fn attach(&self, _req: AttachRequest, _io: Streams) -> BoxFuture<Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn port_forward(
        &self,
        _pod: String,
        port: u16,
        mut conn: tokio::io::DuplexStream,
    ) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            let mut tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            tokio::io::copy_bidirectional(&mut conn, &mut tcp)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

/// Upgrades `url` to SPDY/3.1 offering `protocol`; returns the socket.
async fn upgrade(server: &Server, url: &str, protocol: &str) -> TcpStream {
    let path = url.split_once("//").expect("url").1;
    let path = &path[path.find('/').expect("path")..];
    let mut tcp = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let req = format!(
        "POST {path}?command=ignored HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.expect("read head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains(&format!("x-stream-protocol-version: {protocol}")),
        "{head}"
    );
    tcp
}

/// Reads frames until the server says goodbye; data per stream and the streams it FINished.
async fn drain(tcp: &mut TcpStream, codec: &mut HeaderCodec) -> (HashMap<u32, Vec<u8>>, Vec<u32>) {
    let (mut data, mut fins) = (HashMap::<u32, Vec<u8>>::new(), Vec::new());
    loop {
        match frame::read_frame(tcp, codec).await.expect("frame") {
            Some(Frame::Data {
                stream,
                fin,
                data: d,
            }) => {
                data.entry(stream).or_default().extend_from_slice(&d);
                if fin {
                    fins.push(stream);
                }
            }
            Some(Frame::GoAway) | None => break,
            Some(_) => {}
        }
    }
    (data, fins)
}

fn exec_req(cmd: &[&str], stdin: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin,
        stdout: true,
        stderr: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spdy_exec_streams_stdin_eof_and_exit_code() {
    let s = Server::start(Config::default(), Arc::new(Fake))
        .await
        .expect("start");

    // stdin to EOF (FIN) through cat.
    let url = s.exec_url(exec_req(&["cat"], true));
    let mut tcp = upgrade(&s, &url, "v4.channel.k8s.io").await;
    let mut codec = HeaderCodec::new().expect("codec");
    for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        let f = frame::syn_stream(id, &[("streamtype", kind)], &mut codec).expect("syn");
        tcp.write_all(&f).await.expect("write");
    }
    tcp.write_all(&frame::data_frame(3, false, b"hello "))
        .await
        .expect("write");
    tcp.write_all(&frame::data_frame(3, true, b"spdy"))
        .await
        .expect("write");
    let (data, fins) = tokio::time::timeout(LIMIT, drain(&mut tcp, &mut codec))
        .await
        .expect("cat must see EOF in time");
    assert_eq!(data.get(&5).map(Vec::as_slice), Some(&b"hello spdy"[..]));
    assert_eq!(
        data.get(&1).map(Vec::as_slice),
        Some(&br#"{"metadata":{},"status":"Success"}"#[..])
    );
    assert!(
        fins.contains(&1) && fins.contains(&5) && fins.contains(&7),
        "{fins:?}"
    );

    // Streams separated, exit code 3 as a Status; v3 reports the failure as text.
    for (protocol, want) in [
        (
            "v4.channel.k8s.io",
            r#""reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}"#,
        ),
        (
            "v3.channel.k8s.io",
            "command terminated with non-zero exit code",
        ),
    ] {
        let url = s.exec_url(exec_req(&["out", "o", "e", "3"], false));
        let mut tcp = upgrade(&s, &url, protocol).await;
        let mut codec = HeaderCodec::new().expect("codec");
        for (id, kind) in [(1, "error"), (3, "stdout"), (5, "stderr")] {
            let f = frame::syn_stream(id, &[("streamtype", kind)], &mut codec).expect("syn");
            tcp.write_all(&f).await.expect("write");
        }
        let (data, _) = tokio::time::timeout(LIMIT, drain(&mut tcp, &mut codec))
            .await
            .expect("in time");
        assert_eq!(data.get(&3).map(Vec::as_slice), Some(&b"o"[..]));
        assert_eq!(data.get(&5).map(Vec::as_slice), Some(&b"e"[..]));
        let status = String::from_utf8(data.get(&1).cloned().unwrap_or_default()).expect("utf8");
        assert!(status.contains(want), "{protocol}: {status}");
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spdy_port_forward_pairs_streams_by_request_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 || c.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let s = Server::start(Config::default(), Arc::new(Fake))
        .await
        .expect("start");
    // No ports stored: over SPDY each stream pair names its port.
    let req = PortForwardRequest {
        pod_sandbox_id: "pod".into(),
        ports: vec![],
    };
    let url = s.port_forward_url(req.clone());
    let tcp = upgrade(&s, &url, "portforward.k8s.io").await;
    round_trip(tcp, port).await;

    // The same SPDY inside WebSocket binary messages, as kubectl >= 1.30 sends it.
    let url = s.port_forward_url(req);
    let mut ws_req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("req");
    ws_req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(ws_req)
        .await
        .expect("upgrade");
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(super::tunnel::bridge(ws, ours));
    round_trip(theirs, port).await;
    s.shutdown().await;
}

/// Opens an error+data stream pair for `port` and checks an upper-casing echo through it.
async fn round_trip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S, port: u16) {
    let mut codec = HeaderCodec::new().expect("codec");
    let p = port.to_string();
    for (id, kind) in [(1, "error"), (3, "data")] {
        let h = [
            ("streamtype", kind),
            ("port", p.as_str()),
            ("requestid", "0"),
        ];
        let f = frame::syn_stream(id, &h, &mut codec).expect("syn");
        io.write_all(&f).await.expect("write");
    }
    io.write_all(&frame::data_frame(3, false, b"ping"))
        .await
        .expect("write");
    let mut got = Vec::new();
    while got != b"PING" {
        let f = tokio::time::timeout(LIMIT, frame::read_frame(&mut io, &mut codec))
            .await
            .expect("in time")
            .expect("frame");
        match f {
            Some(Frame::Data {
                stream: 3, data, ..
            }) => got.extend_from_slice(&data),
            Some(Frame::Other) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
