//! How the end of a task is learned and kept.
//!
//! An init's exit reaches berthd in one of three ways: the shim's `Exited` event (live), the
//! shim's state on reconnect (it exited while berthd was down), or the exit file the shim wrote
//! before it died. The container record keeps the last one (`last_exit`, `last_exit_status`,
//! `last_exit_reason`), so it survives the task. A shim that died without writing an exit file
//! leaves the documented status "unknown" (code -1).

use std::path::Path;
use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use berth_proto::v1::ExitInfo;

use crate::daemon::Daemon;
use crate::error::ApiError;

/// `last_exit_status` of a real status (from the shim or its exit file).
pub const EXITED: &str = "exited";
/// `last_exit_status` when the shim died without recording one.
pub const UNKNOWN: &str = "unknown";
/// `last_exit_reason` of an exit learned on reconnect.
pub const WHILE_DOWN: &str = "exited while berthd was down";
/// `last_exit_reason` of a task whose shim died.
pub const SHIM_DIED: &str = "shim died";

/// The init's exit as the shim recorded it in the bundle's `exit` file.
pub fn read_exit_file(bundle: &Path) -> Option<ExitInfo> {
    let e = berth_proto::shim::ExitRecord::load(bundle).ok()??;
    Some(ExitInfo {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        exited_at_ns: e.exited_at_ns,
        pid: u32::try_from(e.pid).unwrap_or(0),
    })
}

/// Keeps the last exit in the container record (a removed container is left alone).
pub fn record(d: &Daemon, ns: &str, id: &str, exit: ExitInfo, status: &str, reason: &str) {
    if let Err(e) = d.store.set_last_exit(ns, id, &exit, status, reason) {
        tracing::warn!(ns, id, "recording the exit: {e}");
    }
}

/// The events stream of a shim broke: if the shim still answers, listen again; if it is dead,
/// report its task exited (the exit file's code, or "unknown") and clean up what it owned:
/// processes left in the cgroup, the network, the rootfs mount and the bundle. A shim this
/// berthd cannot speak to is alive by definition and is left alone.
pub async fn shim_gone(d: &Arc<Daemon>, ns: &str, id: &str, auto_remove: bool) {
    let bundle = d.bundles.path(ns, id);
    if !bundle.exists() {
        return;
    }
    d.shims.forget(ns, id);
    match d.shims.client(ns, id, &bundle).await {
        Ok(mut client) => {
            if client.state(shim::ProcessRequest::default()).await.is_ok() {
                if let Ok(events) = client.events(shim::Empty {}).await {
                    crate::tasks::forward_events(
                        d.clone(),
                        ns.to_string(),
                        id.to_string(),
                        auto_remove,
                        events.into_inner(),
                    );
                    return;
                }
            }
            // Alive but without a container (a create interrupted): it must not linger.
            let _ = client.shutdown(shim::ShutdownRequest { now: true }).await;
        }
        Err(ApiError::FailedPrecondition(why)) => {
            tracing::warn!(ns, id, "{why}");
            return;
        }
        Err(_) => {}
    }
    d.shims.forget(ns, id);
    let (exit, status) = match read_exit_file(&bundle) {
        Some(e) => (e, EXITED),
        None => (
            ExitInfo {
                code: -1,
                exited_at_ns: crate::events::now_ns(),
                ..Default::default()
            },
            UNKNOWN,
        ),
    };
    let shown = if status == EXITED {
        exit.code.to_string()
    } else {
        UNKNOWN.to_string()
    };
    tracing::warn!(
        ns,
        id,
        exit_code = shown,
        "the shim died; cleaning up its task"
    );
    // No bootstrap: the shim never answered (a create interrupted), so the task never ran.
    let started = bundle.join(berth_proto::shim::BOOTSTRAP_FILE).exists();
    if started || status == EXITED {
        record(d, ns, id, exit, status, SHIM_DIED);
    }
    d.bus.publish(
        ns,
        "/tasks/exit",
        id,
        &[("exit_code", shown), ("reason", SHIM_DIED.into())],
    );
    if let Ok(c) = d.store.find_container(ns, id) {
        let result = if auto_remove {
            crate::services::containers::remove(d, ns, &c, true).await
        } else {
            crate::tasks::remove_task(d, ns, &c, true).await.map(|_| ())
        };
        if let Err(e) = result {
            tracing::warn!(ns, id, "cleaning up after a dead shim: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shims_exit_file_is_read_and_garbage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_exit_file(dir.path()), None);
        std::fs::write(
            dir.path().join("exit"),
            r#"{"pid":7,"code":137,"signal":9,"oom_killed":true,"exited_at_ns":5}"#,
        )
        .unwrap();
        assert_eq!(
            read_exit_file(dir.path()),
            Some(ExitInfo {
                code: 137,
                signal: 9,
                oom_killed: true,
                exited_at_ns: 5,
                pid: 7,
            })
        );
        std::fs::write(dir.path().join("exit"), "{not json").unwrap();
        assert_eq!(read_exit_file(dir.path()), None);
    }
}
