//! Builds the exec trampoline (`trampoline/main.rs`, see its header) as a tiny static program
//! that the library embeds. On targets it does not support the embedded program is empty and
//! the library falls back to requiring a protected binary.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=trampoline/main.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let program = out.join("berth-exec");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let supported = os == "linux" && (arch == "x86_64" || arch == "aarch64");
    if !supported || !build(&program) {
        println!("cargo:warning=berth-exec trampoline not built: berth-oci will re-exec itself");
        std::fs::write(&program, b"").expect("writing an empty trampoline");
    }
}

fn build(program: &std::path::Path) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=berth_exec",
        "-Copt-level=s",
        "-Cpanic=abort",
        "-Cdebuginfo=0",
        "-Cstrip=symbols",
        "-Crelocation-model=static",
        "-Clink-arg=-nostartfiles",
        "-Clink-arg=-nostdlib",
        "-Clink-arg=-static",
        "-Clink-arg=-Wl,--build-id=none",
    ]);
    if !target.is_empty() {
        cmd.arg(format!("--target={target}"));
    }
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if let Some(linker) = std::env::var_os(linker_var) {
        let mut arg = std::ffi::OsString::from("-Clinker=");
        arg.push(linker);
        cmd.arg(arg);
    }
    cmd.arg("-o").arg(program).arg("trampoline/main.rs");
    match cmd.status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            println!("cargo:warning=building the trampoline failed: {status}");
            false
        }
        Err(e) => {
            println!("cargo:warning=running rustc for the trampoline: {e}");
            false
        }
    }
}
