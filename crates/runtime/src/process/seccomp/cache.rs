//! Compiled filters cached on disk: compiling docker's default profile with libseccomp takes
//! ~9 ms, and every container (each in its own shim process) uses the same few profiles.
//! The key is a SHA-256 of the profile, the libseccomp version and the architecture; files
//! are written atomically in a root-only directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::{parse_bpf, SeccompError, SeccompProgram, SockFilter};

/// Bumped when the file format changes.
const FORMAT: &str = "berth-seccomp-1";

impl SeccompProgram {
    /// [`SeccompProgram::compile`], through the cache in `dir` (created if missing). A cache
    /// that cannot be read or written only costs the compilation.
    pub fn compile_cached(spec: &LinuxSeccomp, dir: &Path) -> Result<Self, SeccompError> {
        let Some(key) = key(spec) else {
            return Self::compile(spec);
        };
        let path = dir.join(format!("{key}.bpf"));
        if let Ok(bytes) = std::fs::read(&path) {
            if let Some(program) = decode(&bytes) {
                return Ok(program);
            }
        }
        let program = Self::compile(spec)?;
        let _ = store(dir, &key, &program);
        Ok(program)
    }
}

fn key(spec: &LinuxSeccomp) -> Option<String> {
    let json = serde_json::to_vec(spec).ok()?;
    let version = libseccomp::ScmpVersion::current().ok()?;
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(format!("{}.{}.{}", version.major, version.minor, version.micro).as_bytes());
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(&json);
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// flags (8 bytes, little endian), then the instructions as the kernel lays them out.
fn encode(p: &SeccompProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + p.filter.len() * 8);
    out.extend_from_slice(&p.flags.to_le_bytes());
    for i in &p.filter {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<SeccompProgram> {
    let (flags, bpf) = bytes.split_at_checked(8)?;
    let flags = u64::from_le_bytes(flags.try_into().ok()?) as libc::c_ulong;
    let filter: Vec<SockFilter> = parse_bpf(bpf).ok()?;
    Some(SeccompProgram { filter, flags })
}

fn store(dir: &Path, key: &str, p: &SeccompProgram) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&encode(p))?;
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("{key}.bpf")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_program_is_the_compiled_one() {
        let dir = tempfile::tempdir().unwrap();
        let profile = crate::docker_default_profile();
        let first = SeccompProgram::compile_cached(&profile, dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let second = SeccompProgram::compile_cached(&profile, dir.path()).unwrap();
        assert_eq!(first.filter, second.filter);
        assert_eq!(first.flags, second.flags);
        // A damaged file is recompiled, not loaded.
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&file, b"garbage!x").unwrap();
        let third = SeccompProgram::compile_cached(&profile, dir.path()).unwrap();
        assert_eq!(first.filter, third.filter);
    }
}
