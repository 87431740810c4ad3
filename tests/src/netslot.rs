//! Network slots: a number unique among all test processes running now, for bridge names and
//! subnets. Tests run as separate processes (nextest) whose pids collide modulo anything small,
//! so a slot is claimed with an exclusive `flock` on a file of a shared directory and held until
//! the [`NetSlot`] is dropped (or the process dies: the kernel drops the lock).

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Where the lock files live (shared by every test process of the machine).
const DIR: &str = "/tmp/berth-test-netslots";

/// How many slots each kind has (a /24 per slot under one /16).
pub const SLOTS: u32 = 250;

/// A claimed slot of one kind; released on drop.
pub struct NetSlot {
    pub n: u32,
    _lock: Flock<File>,
}

impl NetSlot {
    /// Claims the first free slot of `kind` (e.g. "env", "daemon"), waiting briefly if all
    /// are taken.
    pub fn claim(kind: &str) -> NetSlot {
        std::fs::create_dir_all(DIR).expect("creating the netslot dir");
        for _ in 0..600 {
            for n in 0..SLOTS {
                let path = Path::new(DIR).join(format!("{kind}-{n}"));
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .expect("opening a netslot lock file");
                if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                    return NetSlot { n, _lock: lock };
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("every {kind} network slot stayed taken for a minute");
    }
}
