//! Capturing a container process's output in an unlinked temp file.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use berth_runtime::Stdio;

/// An anonymous file that a process writes its stdout and stderr to.
pub struct Capture {
    file: File,
}

impl Capture {
    pub fn new() -> Self {
        Capture {
            file: tempfile::tempfile().expect("creating a capture file"),
        }
    }

    /// Stdio for a process: stdin from /dev/null, stdout and stderr into this capture.
    pub fn stdio(&self) -> Stdio {
        let null = File::open("/dev/null").expect("opening /dev/null");
        Stdio {
            stdin: Some(OwnedFd::from(null)),
            stdout: Some(self.fd()),
            stderr: Some(self.fd()),
        }
    }

    /// A new fd writing into the capture.
    pub fn fd(&self) -> OwnedFd {
        OwnedFd::from(self.file.try_clone().expect("dup of the capture file"))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let mut offset = 0u64;
        loop {
            let n = self
                .file
                .read_at(&mut buf, offset)
                .expect("reading capture");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            offset += n as u64;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits until the output contains `needle` (true) or `timeout` passes (false).
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}
