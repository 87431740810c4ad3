//! ImageFsInfo: the snapshotter's directory (where image layers are unpacked), its bytes and
//! inodes in use, as containerd reports its snapshotter root.

use std::path::Path;

use k8s_cri::v1::{FilesystemIdentifier, FilesystemUsage, UInt64Value};

/// The usage of the image filesystem at `mountpoint`.
pub fn usage(mountpoint: &Path, bytes: u64, inodes: u64) -> FilesystemUsage {
    FilesystemUsage {
        timestamp: crate::events::now_ns(),
        fs_id: Some(FilesystemIdentifier {
            mountpoint: mountpoint.display().to_string(),
        }),
        used_bytes: Some(UInt64Value { value: bytes }),
        inodes_used: Some(UInt64Value { value: inodes }),
    }
}
