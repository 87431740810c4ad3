//! berth-shim driven directly over its socket (no daemon): detaching, reaping, exit statuses,
//! logs, attach, stdin, tty and back-pressure.

use std::time::Duration;

use berth_proto::shim::v1::{
    output, shim_client::ShimClient, CreateRequest, Empty, ExecRequest, KillRequest,
    ProcessRequest, ResizePtyRequest, ShutdownRequest, StdinChunk,
};
use berth_tests::reaper;
use berth_tests::shim::ShimGuard;
use oci_spec::runtime::LinuxNamespaceType;
use tonic::transport::Channel;
use tonic::Code;

const T: Duration = Duration::from_secs(30);

fn init() -> ProcessRequest {
    ProcessRequest {
        exec_id: String::new(),
    }
}

async fn create(c: &mut ShimClient<Channel>, stdin: bool, log: Option<&std::path::Path>) -> u32 {
    c.create(CreateRequest {
        bundle: String::new(),
        stdin,
        log_path: log.map(|p| p.display().to_string()).unwrap_or_default(),
    })
    .await
    .expect("create")
    .into_inner()
    .pid
}

async fn wait(c: &mut ShimClient<Channel>, exec_id: &str) -> berth_proto::shim::v1::ExitStatus {
    tokio::time::timeout(
        T,
        c.wait(ProcessRequest {
            exec_id: exec_id.into(),
        }),
    )
    .await
    .expect("process did not exit in time")
    .expect("wait")
    .into_inner()
}

/// Collects an attach stream until it ends.
async fn collect(mut s: tonic::Streaming<berth_proto::shim::v1::Output>) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Ok(Some(chunk)) = tokio::time::timeout(T, s.message())
        .await
        .expect("attach timed out")
    {
        if chunk.stream == output::Stream::Stderr as i32 {
            err.extend_from_slice(&chunk.data);
        } else {
            out.extend_from_slice(&chunk.data);
        }
    }
    (out, err)
}

fn ppid(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("stat format").1;
    rest.split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid number")
}

fn zombie_children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn shim_outlives_its_starter_and_exit_codes_are_right() {
    let shim = ShimGuard::start(|s| s.script("sleep 1; exit 3"));
    // The starter (`berth-shim start`) has exited; the shim was reparented to us (subreaper).
    assert_eq!(ppid(shim.boot.pid as u32), std::process::id() as i32);
    assert!(std::fs::metadata(shim.bundle.join("bootstrap.json")).is_ok());
    let mut c = shim.client().await;
    let pid = create(&mut c, false, None).await;
    assert!(pid > 0);
    // Starting a second shim for the same task returns the live one.
    let again = berth_tests::shim::start_shim(&shim.id, &shim.bundle, &shim.socket_dir());
    assert_eq!(again, shim.boot);
    c.start(init()).await.expect("start");
    let err = c.start(init()).await.expect_err("second start");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let exit = wait(&mut c, "").await;
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (3, 0, false));
    let exit_file = std::fs::read_to_string(shim.bundle.join("exit")).expect("exit file");
    assert!(exit_file.contains("\"code\":3"), "{exit_file}");
    let deleted = c.delete(init()).await.expect("delete").into_inner();
    assert_eq!(deleted.code, 3);
    assert!(!shim.bundle.join("exit").exists());
    // After delete the shim removes its socket and exits.
    let gone = reaper::wait_exit(shim.boot.pid, T);
    assert!(gone.is_some(), "shim still running after delete");
    assert!(!shim.boot.socket_path().expect("unix address").exists());
}

#[tokio::test]
async fn sigkill_is_137_and_orphans_leave_no_zombies() {
    // No pid namespace: orphans of the container are reparented to the shim (its subreaper).
    let shim = ShimGuard::start(|s| {
        s.without_namespace(LinuxNamespaceType::Pid)
            .script("(sleep 0.2 &); (sleep 0.2 &); (sleep 0.3 &); exec sleep 1000")
    });
    let mut c = shim.client().await;
    create(&mut c, false, None).await;
    c.start(init()).await.expect("start");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        zombie_children_of(shim.boot.pid).is_empty(),
        "zombies under the shim"
    );
    c.kill(KillRequest {
        exec_id: String::new(),
        signal: 9,
        all: false,
    })
    .await
    .expect("kill");
    let exit = wait(&mut c, "").await;
    assert_eq!((exit.code, exit.signal), (137, 9));
    let err = c
        .kill(KillRequest {
            exec_id: String::new(),
            signal: 15,
            all: false,
        })
        .await
        .expect_err("kill of an exited process");
    assert_eq!(err.code(), Code::NotFound);
    c.delete(init()).await.expect("delete");
}

#[tokio::test]
async fn oom_kill_is_reported() {
    let shim = ShimGuard::start(|s| {
        s.memory_limit(16 * 1024 * 1024)
            .script("x=a; while true; do x=$x$x$x$x; done")
    });
    let mut c = shim.client().await;
    create(&mut c, false, None).await;
    c.start(init()).await.expect("start");
    let exit = wait(&mut c, "").await;
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, 9);
    c.delete(init()).await.expect("delete");
}

#[tokio::test]
async fn log_file_is_exact_cri_format_and_two_readers_see_the_same() {
    let script =
        "echo out1; echo err1 >&2; head -c 1048576 /dev/zero | tr '\\0' x; echo; printf tail";
    let shim = ShimGuard::start(|s| s.script(script));
    let mut c = shim.client().await;
    let log = shim.log_path();
    create(&mut c, false, Some(&log)).await;
    let a = c.attach(init()).await.expect("attach a").into_inner();
    let b = c.attach(init()).await.expect("attach b").into_inner();
    c.start(init()).await.expect("start");
    let (ra, rb) = tokio::join!(collect(a), collect(b));
    assert_eq!(ra, rb);
    let big = "x".repeat(1 << 20);
    assert_eq!(String::from_utf8_lossy(&ra.0), format!("out1\n{big}\ntail"));
    assert_eq!(String::from_utf8_lossy(&ra.1), "err1\n");
    assert_eq!(wait(&mut c, "").await.code, 0);

    let text = std::fs::read_to_string(&log).expect("log");
    let mut stdout_line = String::new();
    let mut records = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(4, ' ');
        let ts = f.next().expect("timestamp");
        assert!(ts.ends_with('Z') && ts.len() >= 30, "{ts}");
        let (stream, tag, content) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
        if stream == "stdout" {
            stdout_line.push_str(content);
            if tag == "F" {
                records.push(format!("stdout:{}", std::mem::take(&mut stdout_line)));
            }
        } else {
            assert_eq!(tag, "F");
            records.push(format!("{stream}:{content}"));
        }
    }
    assert_eq!(
        records,
        vec![
            "stdout:out1".to_string(),
            "stderr:err1".to_string(),
            format!("stdout:{big}"),
            "stdout:tail".to_string(),
        ]
    );
    // The 1 MiB line was split into partial records.
    assert!(text.lines().filter(|l| l.contains(" stdout P ")).count() >= 60);
    c.delete(init()).await.expect("delete");
}

#[tokio::test]
async fn stdin_round_trips_through_cat_and_exec_works() {
    let shim = ShimGuard::start(|s| s.args(&["cat"]));
    let mut c = shim.client().await;
    create(&mut c, true, None).await;
    let out = c.attach(init()).await.expect("attach").into_inner();
    c.start(init()).await.expect("start");

    // An exec process with its own output and exit code.
    let process = serde_json::json!({
        "args": ["sh", "-c", "echo from-exec; exit 7"],
        "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin:/sbin:/usr/bin"]
    });
    c.exec(ExecRequest {
        exec_id: "e1".into(),
        process_json: serde_json::to_vec(&process).unwrap(),
        stdin: false,
    })
    .await
    .expect("exec");
    let eout = c
        .attach(ProcessRequest {
            exec_id: "e1".into(),
        })
        .await
        .expect("attach exec")
        .into_inner();
    c.start(ProcessRequest {
        exec_id: "e1".into(),
    })
    .await
    .expect("start exec");
    let (eo, _) = collect(eout).await;
    assert_eq!(String::from_utf8_lossy(&eo), "from-exec\n");
    assert_eq!(wait(&mut c, "e1").await.code, 7);
    c.delete(ProcessRequest {
        exec_id: "e1".into(),
    })
    .await
    .expect("delete exec");

    let chunks = vec![
        StdinChunk {
            exec_id: String::new(),
            data: b"hello ".to_vec(),
            close: false,
        },
        StdinChunk {
            exec_id: String::new(),
            data: b"world\n".to_vec(),
            close: true,
        },
    ];
    c.write_stdin(tokio_stream::iter(chunks))
        .await
        .expect("write stdin");
    let (o, _) = collect(out).await;
    assert_eq!(String::from_utf8_lossy(&o), "hello world\n");
    assert_eq!(wait(&mut c, "").await.code, 0);
    let err = c.shutdown(ShutdownRequest { now: false }).await;
    assert!(err.is_ok(), "shutdown with nothing running: {err:?}");
}

#[tokio::test]
async fn tty_reports_the_size_set_by_resize() {
    let shim = ShimGuard::start(|s| {
        let mut s = s.args(&["sh", "-c", "sleep 0.2; stty size"]);
        if let Some(p) = s.spec_mut().process_mut() {
            p.set_terminal(Some(true));
        }
        s
    });
    let mut c = shim.client().await;
    create(&mut c, false, None).await;
    c.resize_pty(ResizePtyRequest {
        exec_id: String::new(),
        width: 123,
        height: 45,
    })
    .await
    .expect("resize");
    let out = c.attach(init()).await.expect("attach").into_inner();
    c.start(init()).await.expect("start");
    let (o, _) = collect(out).await;
    assert_eq!(String::from_utf8_lossy(&o).trim(), "45 123");
    assert_eq!(wait(&mut c, "").await.code, 0);
}

#[tokio::test]
async fn a_stopped_reader_does_not_stall_the_container() {
    let shim = ShimGuard::start(|s| s.script("head -c 104857600 /dev/zero"));
    let mut c = shim.client().await;
    create(&mut c, false, None).await;
    // Attached but never read.
    let _stalled = c.attach(init()).await.expect("attach").into_inner();
    c.start(init()).await.expect("start");
    let exit = wait(&mut c, "").await;
    assert_eq!(exit.code, 0);
    let pids = c.pids(Empty {}).await.expect("pids").into_inner().pids;
    assert!(pids.is_empty(), "{pids:?}");
}
