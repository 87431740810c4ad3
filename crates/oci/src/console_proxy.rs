//! `run` without `--console-socket` on a terminal spec: receive the pty master ourselves and
//! copy between it and our own stdin/stdout (like `runc run` in the foreground).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use nix::sys::termios::{self, SetArg, Termios};

/// A console socket we listen on, and the threads copying the pty's bytes once it arrives.
pub struct ConsoleProxy {
    path: PathBuf,
    output: JoinHandle<()>,
    saved: Option<Termios>,
}

impl ConsoleProxy {
    /// Binds a console socket under the state `root` and starts waiting for the pty master.
    pub fn listen(root: &Path, id: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let path = root.join(format!(".console-{}-{id}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let saved = make_stdin_raw();
        let output = std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                if let Ok(master) = berth_runtime::console::receive_pty_master(&stream) {
                    copy_both_ways(master);
                }
            }
        });
        Ok(ConsoleProxy {
            path,
            output,
            saved,
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Lets the last output drain (briefly), restores the terminal and removes the socket.
    pub fn finish(self) {
        for _ in 0..50 {
            if self.output.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ConsoleProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Puts our stdin in raw mode if it is a terminal; returns the settings to restore.
fn make_stdin_raw() -> Option<Termios> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
    Some(saved)
}

/// Copies stdin to the master (in a detached thread) and the master to stdout until it closes.
fn copy_both_ways(master: OwnedFd) {
    let mut reader = File::from(master);
    if let Ok(mut writer) = reader.try_clone() {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || writer.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    // Reading the master fails with EIO once every slave fd is closed.
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 || stdout.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = stdout.flush();
    }
}
