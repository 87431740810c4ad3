//! The shim launcher's messages: berthd asks one long-lived `berth-shim launcher` to fork a
//! task's shim instead of executing `berth-shim start` for it (see docs/shim.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Bootstrap;

/// One request: a datagram on the launcher's control socket (its stdin, SOCK_SEQPACKET) that
/// carries, as SCM_RIGHTS, the stream the answer goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
    pub socket_dir: PathBuf,
}

/// What comes back on the request's stream (one JSON line, then end of file): what
/// `berth-shim start` would have printed, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LaunchAnswer {
    Started(Bootstrap),
    Failed { error: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_tell_a_start_from_a_failure() {
        let boot = Bootstrap {
            version: 1,
            address: "unix:///s/x.sock".into(),
            protocol: "grpc".into(),
            pid: 7,
        };
        for answer in [
            LaunchAnswer::Started(boot),
            LaunchAnswer::Failed {
                error: "binding: no".into(),
            },
        ] {
            let line = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<LaunchAnswer>(&line).unwrap(), answer);
        }
        assert!(serde_json::from_str::<LaunchAnswer>("{\"pid\":1}").is_err());
    }
}
