//! The program a container process execs: argv and envp prepared in the parent, the binary
//! looked up in the container's PATH by the child after pivot_root.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};
use oci_spec::runtime::Process;

use super::ProcessError;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone)]
pub(crate) struct Command {
    argv: Vec<CString>,
    envp: Vec<CString>,
    search_path: String,
}

impl Command {
    pub(crate) fn from_process(process: &Process) -> Result<Self, ProcessError> {
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err(ProcessError::Invalid(
                "process.args must not be empty".into(),
            ));
        }
        let argv = args
            .iter()
            .map(|a| cstring(a, "process.args"))
            .collect::<Result<Vec<_>, _>>()?;
        let env = process.env().clone().unwrap_or_default();
        let mut search_path = DEFAULT_PATH.to_string();
        let mut envp = Vec::with_capacity(env.len());
        for e in &env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(ProcessError::Invalid(format!(
                    "process.env entry {e:?} is not KEY=VALUE"
                )));
            }
            if let Some(p) = e.strip_prefix("PATH=") {
                search_path = p.to_string();
            }
            envp.push(cstring(e, "process.env")?);
        }
        Ok(Command {
            argv,
            envp,
            search_path,
        })
    }

    /// Finds the executable for argv[0] in the current (container's) filesystem.
    pub(crate) fn resolve(&self) -> Result<CString, ProcessError> {
        let name = Path::new(std::ffi::OsStr::from_bytes(self.argv[0].as_bytes()));
        if name.as_os_str().as_bytes().contains(&b'/') {
            return check_executable(name.to_path_buf());
        }
        for dir in self.search_path.split(':').filter(|d| !d.is_empty()) {
            let candidate = Path::new(dir).join(name);
            if let Ok(p) = check_executable(candidate) {
                return Ok(p);
            }
        }
        Err(ProcessError::Invalid(format!(
            "executable file {:?} not found in $PATH",
            name
        )))
    }

    /// Replaces the process image. Returns only on failure.
    pub(crate) fn exec(&self, path: &CStr) -> ProcessError {
        match nix::unistd::execve(path, &self.argv, &self.envp) {
            Err(e) => ProcessError::sys(format!("exec {:?}", path), e),
        }
    }
}

impl Command {
    /// Replaces the process image with the exec trampoline in `trampoline` (a memfd), which
    /// execs `path` with our argv and envp. Returns only on failure.
    pub(crate) fn exec_through(&self, trampoline: RawFd, path: &CStr) -> ProcessError {
        let mut argv: Vec<&CStr> = Vec::with_capacity(self.argv.len() + 1);
        argv.push(path);
        argv.extend(self.argv.iter().map(CString::as_c_str));
        // SAFETY: the memfd stays open until the exec replaces this image.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(trampoline) };
        match nix::unistd::execveat(
            fd,
            c"",
            &argv,
            &self.envp,
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        ) {
            Err(e) => ProcessError::sys(format!("exec {path:?} through the trampoline"), e),
        }
    }
}

fn check_executable(path: PathBuf) -> Result<CString, ProcessError> {
    let meta = std::fs::metadata(&path).map_err(|e| ProcessError::Io {
        context: format!("executable {}", path.display()),
        source: e,
    })?;
    if !meta.is_file() {
        return Err(ProcessError::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    access(&path, AccessFlags::X_OK)
        .map_err(|e| ProcessError::sys(format!("executable {}", path.display()), e))?;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ProcessError::Invalid(format!("{} contains NUL", path.display())))
}

fn cstring(s: &str, what: &str) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Invalid(format!("{what} entry {s:?} contains NUL")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ProcessBuilder;

    #[test]
    fn resolves_through_path_and_rejects_bad_env() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .env(vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()])
            .build()
            .unwrap();
        let c = Command::from_process(&p).unwrap();
        let path = c.resolve().unwrap();
        assert!(path.to_str().unwrap().ends_with("/sh"));

        let bad = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .env(vec!["NOEQUALS".to_string()])
            .build()
            .unwrap();
        assert!(Command::from_process(&bad).is_err());
        let empty = ProcessBuilder::default()
            .args(Vec::<String>::new())
            .build()
            .unwrap();
        assert!(Command::from_process(&empty).is_err());
    }
}
