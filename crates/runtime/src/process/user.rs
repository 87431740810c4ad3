//! STUB: user and groups (owned by the process-setup work stream).

use oci_spec::runtime::User;

use super::ProcessError;

/// Sets additional groups, gid, uid (keeping capabilities across the switch) and the umask.
pub(crate) fn switch(_user: &User) -> Result<(), ProcessError> {
    Ok(())
}
