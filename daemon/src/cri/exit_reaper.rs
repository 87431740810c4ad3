//! Releases the task of a CRI container as soon as its main process exits (as containerd's
//! CRI does): the exit goes into the container's record and the shim, the rootfs mount and
//! the bundle go away, so the many finished containers kubelet keeps around cost nothing.
//! The writable layer and the log stay until RemoveContainer.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;

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
            tokio::spawn(async move { reap(&d, &env).await });
        }
    });
}

/// Releases the tasks of CRI containers that exited while no reaper listened (an exit the
/// daemon had already reported before it was killed is not reported again). Run after
/// recovery, in the background.
pub fn sweep(d: &Arc<Daemon>) {
    let d = d.clone();
    tokio::spawn(async move {
        let Ok(all) = records::containers(&d) else {
            return;
        };
        for r in all {
            if r.started_at_ns == 0 || !d.bundles.path(NS, &r.id).exists() {
                continue;
            }
            let stopped = crate::tasks::init_state(&d, NS, &r.id)
                .await
                .is_some_and(|s| s.status == shim::Status::Stopped as i32);
            if stopped {
                let env = berth_proto::v1::Envelope {
                    namespace: NS.into(),
                    topic: "/tasks/exit".into(),
                    id: r.id.clone(),
                    ..Default::default()
                };
                reap(&d, &env).await;
            }
        }
    });
}

async fn reap(d: &Arc<Daemon>, env: &berth_proto::v1::Envelope) {
    let id = env.id.as_str();
    // Only CRI containers: a pod's holder keeps its task until StopPodSandbox.
    let Ok(Some(_)) = records::container_exact(d, id) else {
        return;
    };
    let _lock = records::exit_lock(d, id).await;
    // Read under the lock: StopContainer may have stored the exit, RemoveContainer the rest.
    let Ok(Some(mut record)) = records::container_exact(d, id) else {
        return;
    };
    let Ok(Some(c)) = d.store.container(NS, id) else {
        return;
    };
    // The exit goes into the record before the shim is deleted: a daemon killed in between
    // must not lose it with the shim.
    let stopped = match record.exited {
        true => None,
        false => crate::tasks::init_state(d, NS, id)
            .await
            .filter(|st| st.status == shim::Status::Stopped as i32),
    };
    if let Some(st) = stopped {
        let exit = crate::tasks::exit_info(st.exit.unwrap_or_default());
        super::container_stop::record_exit(&mut record, &exit);
        if let Err(e) = records::put_container(d, &record) {
            tracing::warn!(id, "storing a CRI container's exit: {e}");
            return;
        }
    }
    // The bundle may be gone already: released by StopContainer, or by the daemon's own
    // cleanup of a dead shim.
    let exit = if d.bundles.path(NS, id).exists() {
        match crate::tasks::remove_task(d, NS, &c, true).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(id, "releasing the task of an exited CRI container: {e}");
                return;
            }
        }
    } else {
        None
    };
    if record.exited {
        return;
    }
    match exit {
        Some(exit) => super::container_stop::record_exit(&mut record, &exit),
        None => {
            // The shim was gone (it died, or a killed daemon had deleted it): the event
            // carries the code from its exit file when there was one.
            let code = env.attributes.get("exit_code").and_then(|c| c.parse().ok());
            record.exited = true;
            record.exit_code = code.unwrap_or(255);
            record.oom_killed = env
                .attributes
                .get("oom_killed")
                .is_some_and(|v| v == "true");
            record.finished_at_ns = if env.timestamp_ns != 0 {
                env.timestamp_ns
            } else {
                crate::events::now_ns()
            };
            if code.is_none() {
                record.message = "the container's shim was gone; its exit code is unknown".into();
            }
        }
    }
    if let Err(e) = records::put_container(d, &record) {
        tracing::warn!(id, "storing a CRI container's exit: {e}");
    }
}
