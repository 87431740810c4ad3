//! STUB: rlimits (owned by the process-setup work stream).

use oci_spec::runtime::PosixRlimit;

use super::ProcessError;

pub(crate) fn apply(_rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    Ok(())
}
