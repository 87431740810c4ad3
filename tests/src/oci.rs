//! Running `berth-oci` as a separate process, like a user (or containerd) would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bin::berth_oci;
use crate::guard::TIMEOUT;
use crate::Capture;

/// What one `berth-oci` invocation did.
#[derive(Debug)]
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `berth-oci --root <root> <args>` with no stdin (output into files, so a detached
/// container holding them open cannot block us), with a timeout.
pub fn run(root: &Path, args: &[&str]) -> Cli {
    let (out, err) = (Capture::new(), Capture::new());
    let mut child = Command::new(berth_oci())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out.fd())
        .stderr(err.fd())
        .spawn()
        .expect("spawning berth-oci");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for berth-oci") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth-oci {args:?} timed out: {}{}", out.text(), err.text());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Cli {
        code: status.code(),
        stdout: out.text(),
        stderr: err.text(),
    }
}
