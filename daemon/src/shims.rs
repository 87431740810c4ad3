//! The shim manager: starts a shim per task (forked by the launcher, see shim_launcher, or
//! `berth-shim start` executed; the same handshake either way), stores its
//! bootstrap answer in the bundle, and keeps one client per live shim.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_proto::shim::v1::shim_client::ShimClient;
use berth_proto::shim::v1::{OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};
use berth_proto::shim::{Bootstrap, LaunchAnswer, LaunchRequest};
use tonic::transport::Channel;

use crate::error::ApiError;
use crate::shim_launcher::{Launcher, Unavailable};

pub type Client = ShimClient<Channel>;

/// How long `berth-shim start` may take.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Shims {
    binary: PathBuf,
    /// A read-only clone of the shim binary (see `program`), with the identity of the file it
    /// was taken from.
    exe: Mutex<Option<(FileId, Arc<OwnedFd>)>>,
    socket_dir: PathBuf,
    /// Forks shims instead of executing the binary for each (see shim_launcher).
    launcher: Launcher,
    clients: Mutex<HashMap<(String, String), Client>>,
    /// Live shims this berthd cannot speak to (their protocol version is out of range), with
    /// why: reported by Tasks.Get, ps, inspect and doctor, and never killed or cleaned up.
    incompatible: Mutex<HashMap<(String, String), String>>,
}

impl Shims {
    pub fn new(binary: PathBuf, socket_dir: PathBuf) -> Shims {
        Shims {
            binary,
            exe: Mutex::new(None),
            socket_dir,
            launcher: Launcher::new(),
            clients: Mutex::new(HashMap::new()),
            incompatible: Mutex::new(HashMap::new()),
        }
    }

    /// Starts (or finds) the shim of a task and connects to it.
    pub async fn start(&self, ns: &str, id: &str, bundle: &Path) -> Result<Client, ApiError> {
        // Held until the shim has exec'd: the path below names this fd.
        let exe = self.program();
        let launched = match &exe {
            Some(exe) => {
                let request = LaunchRequest {
                    namespace: ns.to_string(),
                    id: id.to_string(),
                    bundle: bundle.to_path_buf(),
                    socket_dir: self.socket_dir.clone(),
                };
                match self
                    .launcher
                    .start(exe, &self.binary, &request, START_TIMEOUT)
                    .await
                {
                    Ok(LaunchAnswer::Started(boot)) => Some(boot),
                    Ok(LaunchAnswer::Failed { error }) => {
                        return Err(ApiError::Internal(format!(
                            "starting the shim of {id:?} failed: {error}"
                        )))
                    }
                    Err(Unavailable(why)) => {
                        tracing::debug!(id, "no shim launcher ({why}): executing the shim");
                        None
                    }
                }
            }
            None => None,
        };
        let boot = match launched {
            Some(boot) => boot,
            None => self.execute(exe.as_deref(), ns, id, bundle).await?,
        };
        if !berth_proto::shim::v1::speaks(boot.version) {
            // A shim binary this berthd cannot drive: it just started and owns nothing yet.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(boot.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(ApiError::FailedPrecondition(format!(
                "starting the shim of {id:?}: {} speaks shim protocol {}, this berthd \
                 {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}: install the berth-shim of \
                 berthd's release",
                self.binary.display(),
                boot.version
            )));
        }
        boot.store(bundle)
            .map_err(|e| ApiError::internal("storing bootstrap.json", e))?;
        self.connect(ns, id, &boot).await
    }

    /// Executes `berth-shim start` (from `exe`, the read-only clone, when there is one) and
    /// returns its answer.
    async fn execute(
        &self,
        exe: Option<&OwnedFd>,
        ns: &str,
        id: &str,
        bundle: &Path,
    ) -> Result<Bootstrap, ApiError> {
        let mut cmd = match exe {
            Some(fd) => clone_command(fd, &self.binary),
            None => tokio::process::Command::new(&self.binary),
        };
        let run = cmd
            .args(["start", "--namespace", ns, "--id", id, "--bundle"])
            .arg(bundle)
            .arg("--socket-dir")
            .arg(&self.socket_dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(START_TIMEOUT, run)
            .await
            .map_err(|_| {
                ApiError::Internal(format!(
                    "the shim of {id:?} did not start within {START_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| ApiError::internal(&format!("running {}", self.binary.display()), e))?;
        if !out.status.success() {
            return Err(ApiError::Internal(format!(
                "starting the shim of {id:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| ApiError::internal("the shim's bootstrap answer", e))
    }

    /// A read-only, detached clone of the shim binary to execute: the shim then starts
    /// protected (CVE-2019-5736) instead of executing itself a second time to be (~1.8 ms of
    /// every start here). Taken again when the file at `binary` changes (an upgrade); `None`
    /// where the kernel cannot clone mounts (the shim protects itself then).
    fn program(&self) -> Option<Arc<OwnedFd>> {
        let id = FileId::of(&self.binary)?;
        let mut exe = self.exe.lock().ok()?;
        if let Some((known, fd)) = exe.as_ref() {
            if *known == id {
                return Some(fd.clone());
            }
        }
        match berth_runtime::readonly_clone(&self.binary) {
            Ok(fd) => {
                let fd = Arc::new(fd);
                *exe = Some((id, fd.clone()));
                Some(fd)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no read-only clone of the shim binary");
                *exe = None;
                None
            }
        }
    }

    /// The client of a task's shim: cached, or from the bundle's bootstrap.json.
    pub async fn client(&self, ns: &str, id: &str, bundle: &Path) -> Result<Client, ApiError> {
        if let Some(c) = self.cached(ns, id) {
            return Ok(c);
        }
        let boot = Bootstrap::load(bundle)
            .map_err(|_| ApiError::NotFound(format!("container {id:?} has no task")))?;
        self.connect(ns, id, &boot).await
    }

    pub fn forget(&self, ns: &str, id: &str) {
        if let Ok(mut m) = self.clients.lock() {
            m.remove(&(ns.to_string(), id.to_string()));
        }
    }

    /// Why this berthd cannot speak to the task's shim, if it cannot (see `connect`).
    pub fn incompatible(&self, ns: &str, id: &str) -> Option<String> {
        self.incompatible
            .lock()
            .ok()?
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
    }

    /// Every live shim this berthd cannot speak to: ((namespace, id), why).
    pub fn all_incompatible(&self) -> Vec<((String, String), String)> {
        self.incompatible
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn cached(&self, ns: &str, id: &str) -> Option<Client> {
        self.clients
            .lock()
            .ok()?
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
    }

    /// Connects to the shim a bootstrap answer names, if this berthd speaks its protocol. One
    /// it does not is remembered (see `incompatible`) and answered `FailedPrecondition`;
    /// callers must then leave the task alone: the shim is alive and owns its container.
    async fn connect(&self, ns: &str, id: &str, boot: &Bootstrap) -> Result<Client, ApiError> {
        let key = (ns.to_string(), id.to_string());
        if !berth_proto::shim::v1::speaks(boot.version) {
            let why = unsupported(id, boot.version);
            if let Ok(mut m) = self.incompatible.lock() {
                m.insert(key, why.clone());
            }
            return Err(ApiError::FailedPrecondition(why));
        }
        if let Ok(mut m) = self.incompatible.lock() {
            m.remove(&key);
        }
        let client = berth_proto::shim::connect(&boot.address)
            .await
            .map_err(|e| ApiError::Unavailable(format!("connecting to the shim of {id:?}: {e}")))?;
        if let Ok(mut m) = self.clients.lock() {
            m.insert((ns.to_string(), id.to_string()), client.clone());
        }
        Ok(client)
    }
}

/// `binary` executed from its read-only clone `exe` (see `Shims::program`); argv[0] stays the
/// binary's path, which is what ps and the orphan pass look for.
pub fn clone_command(exe: &OwnedFd, binary: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    cmd.arg0(binary);
    cmd
}

fn unsupported(id: &str, version: u32) -> String {
    format!(
        "the shim of {id:?} speaks protocol {version}; this berthd speaks \
         {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION} (left running untouched: manage it \
         with the berthd release that started it)"
    )
}

/// What tells one version of a file from the next: device, inode, size and change time.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64, u64, i64, i64);

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId(
            m.dev(),
            m.ino(),
            m.size(),
            m.ctime(),
            m.ctime_nsec(),
        ))
    }
}
