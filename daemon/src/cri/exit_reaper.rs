//! Releases the task of a CRI container as soon as its main process exits (as containerd's
//! CRI does): the exit goes into the container's record and the shim, the rootfs mount and
//! the bundle go away, so the many finished containers kubelet keeps around cost nothing.
//! The writable layer and the log stay until RemoveContainer.

use std::sync::Arc;

use super::records::{self, NS};
use crate::daemon::Daemon;

/// Subscribes now (so no exit published after this call is missed) and reaps in the
/// background.
pub fn spawn(d: &Arc<Daemon>) {
    let mut bus = d.bus.subscribe();
    let d = d.clone();
    tokio::spawn(async move {
        loop {
            let env = match bus.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("the CRI exit reaper missed {n} events");
                    continue;
                }
                Err(_) => return,
            };
            if env.namespace != NS
                || env.topic != "/tasks/exit"
                || env.attributes.contains_key("exec_id")
            {
                continue;
            }
            let d = d.clone();
            tokio::spawn(async move { reap(&d, &env.id).await });
        }
    });
}

async fn reap(d: &Arc<Daemon>, id: &str) {
    // Only CRI containers: a pod's holder keeps its task until StopPodSandbox.
    let Ok(Some(_)) = records::container_exact(d, id) else {
        return;
    };
    let _lock = records::exit_lock(d, id).await;
    let Ok(Some(c)) = d.store.container(NS, id) else {
        return;
    };
    if !d.bundles.path(NS, id).exists() {
        // Released already (StopContainer, RemoveContainer), which stored the exit.
        return;
    }
    let exit = match crate::tasks::remove_task(d, NS, &c, true).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(id, "releasing the task of an exited CRI container: {e}");
            return;
        }
    };
    // Read again: a status call may have stored the exit meanwhile.
    let Ok(Some(mut record)) = records::container_exact(d, id) else {
        return;
    };
    if record.exited {
        return;
    }
    match exit {
        Some(exit) => super::container_stop::record_exit(&mut record, &exit),
        None => {
            record.exited = true;
            record.exit_code = 255;
            record.finished_at_ns = crate::events::now_ns();
            record.message = "the container's shim was gone".into();
        }
    }
    if let Err(e) = records::put_container(d, &record) {
        tracing::warn!(id, "storing a CRI container's exit: {e}");
    }
}
