//! An interactive session with a process: attach (stdin/stdout/stderr), optional tty with
//! raw mode and resize, signals proxied, start, wait for the exit code.

use std::io::Write;

use berth_proto::v1::{AttachInput, KillRequest, ResizeRequest, TaskRequest};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::Clients;
use crate::term;

pub struct Session<'a> {
    pub container: &'a str,
    pub exec_id: &'a str,
    pub stdin: bool,
    pub tty: bool,
    /// Start the process once attached (otherwise it is already running).
    pub start: bool,
}

/// Runs the session and returns the process's exit code.
pub async fn run(c: &Clients, s: Session<'_>) -> anyhow::Result<i32> {
    let (tx, rx) = tokio::sync::mpsc::channel::<AttachInput>(16);
    tx.send(AttachInput {
        container_id: s.container.to_string(),
        exec_id: s.exec_id.to_string(),
        ..Default::default()
    })
    .await?;
    let mut output = c
        .tasks
        .clone()
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let _raw = if s.tty && s.stdin {
        term::RawMode::enter()?
    } else {
        None
    };
    if s.tty {
        spawn_resizer(c.clone(), s.container.to_string(), s.exec_id.to_string()).await;
    } else {
        spawn_signal_proxy(c.clone(), s.container.to_string(), s.exec_id.to_string());
    }
    if s.stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx
                            .send(AttachInput {
                                close_stdin: true,
                                ..Default::default()
                            })
                            .await;
                        break;
                    }
                    Ok(n) => {
                        let msg = AttachInput {
                            stdin: buf[..n].to_vec(),
                            ..Default::default()
                        };
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    let req = TaskRequest {
        container_id: s.container.to_string(),
        exec_id: s.exec_id.to_string(),
    };
    if s.start {
        c.tasks.clone().start(req.clone()).await?;
    }
    let mut waiter = c.tasks.clone();
    let wait = tokio::spawn(async move { waiter.wait(req).await });
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    while let Some(chunk) = output.message().await? {
        if chunk.stream == "stderr" {
            let _ = err.write_all(&chunk.data);
            let _ = err.flush();
        } else {
            let _ = out.write_all(&chunk.data);
            let _ = out.flush();
        }
    }
    let exit = wait.await??.into_inner();
    drop(tx);
    Ok(exit.code)
}

async fn spawn_resizer(c: Clients, container: String, exec_id: String) {
    let resize = move |c: Clients, container: String, exec_id: String| async move {
        if let Some((rows, cols)) = term::size() {
            let _ = c
                .tasks
                .clone()
                .resize(ResizeRequest {
                    container_id: container,
                    exec_id,
                    width: cols as u32,
                    height: rows as u32,
                })
                .await;
        }
    };
    resize(c.clone(), container.clone(), exec_id.clone()).await;
    if let Ok(mut winch) = signal(SignalKind::window_change()) {
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                resize(c.clone(), container.clone(), exec_id.clone()).await;
            }
        });
    }
}

/// Without a tty, signals sent to berthctl go to the process.
fn spawn_signal_proxy(c: Clients, container: String, exec_id: String) {
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
        (SignalKind::user_defined1(), libc::SIGUSR1),
        (SignalKind::user_defined2(), libc::SIGUSR2),
    ] {
        let Ok(mut sig) = signal(kind) else { continue };
        let (c, container, exec_id) = (c.clone(), container.clone(), exec_id.clone());
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = c
                    .tasks
                    .clone()
                    .kill(KillRequest {
                        container_id: container.clone(),
                        exec_id: exec_id.clone(),
                        signal: num as u32,
                        all: false,
                    })
                    .await;
            }
        });
    }
}
