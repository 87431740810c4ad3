//! Deleting a snapshot's directory tree off the caller's path: the directory is renamed to a
//! hidden name at once (so it is no snapshot any more) and its files are removed by one
//! background thread. A crash before that finishes leaves a hidden directory, which the next
//! open removes like any name that is not a snapshot's.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

/// Renames `dir` out of the way and queues its removal.
pub(crate) fn discard(dir: &Path) -> std::io::Result<()> {
    let Some(name) = dir.file_name() else {
        return fs::remove_dir_all(dir);
    };
    let hidden = dir.with_file_name(format!(".trash-{}", name.to_string_lossy()));
    fs::rename(dir, &hidden)?;
    if let Err(path) = queue(hidden) {
        // No background thread (it could not be started): remove it here.
        fs::remove_dir_all(path)?;
    }
    Ok(())
}

fn queue(path: PathBuf) -> Result<(), PathBuf> {
    static DELETER: OnceLock<Option<Mutex<Sender<PathBuf>>>> = OnceLock::new();
    let sender = DELETER.get_or_init(|| {
        let (tx, rx) = channel::<PathBuf>();
        std::thread::Builder::new()
            .name("snapshot-trash".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = fs::remove_dir_all(&path) {
                        tracing::warn!(path = %path.display(), "removing a snapshot: {e}");
                    }
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    match sender {
        Some(tx) => match tx.lock() {
            Ok(tx) => tx.send(path).map_err(|e| e.0),
            Err(_) => Err(path),
        },
        None => Err(path),
    }
}
