//! Applying layer tars safely to snapshot directories.

pub(crate) mod apply;
pub(crate) mod safe_fs;
pub(crate) mod tar_guard;
