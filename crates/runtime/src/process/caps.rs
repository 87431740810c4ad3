//! STUB: capabilities (owned by the process-setup work stream).

use oci_spec::runtime::LinuxCapabilities;

use super::ProcessError;

/// Drops every capability not in the spec's bounding set. Runs while still privileged.
pub(crate) fn drop_bounding(_caps: &LinuxCapabilities) -> Result<(), ProcessError> {
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets. Runs after the user switch.
pub(crate) fn apply_sets(_caps: &LinuxCapabilities) -> Result<(), ProcessError> {
    Ok(())
}
