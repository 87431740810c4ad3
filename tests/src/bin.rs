//! Where the workspace's built binaries (berth-oci, ...) are.

use std::path::PathBuf;

/// The directory holding the built binaries: `$BERTH_BIN_DIR`, else the cargo target directory
/// of the running test binary (`target/debug/deps/<test>` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// The path of binary `name`; panics with a hint when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (`cargo build -p {name}`) or set BERTH_BIN_DIR",
        path.display()
    );
    path
}

/// The path of `berth-oci`.
pub fn berth_oci() -> PathBuf {
    bin("berth-oci")
}
