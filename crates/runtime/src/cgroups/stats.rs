//! Parsers for the text formats of cgroup statistics files.

/// Above this a v1 limit means "unlimited" (the kernel reports `PAGE_COUNTER_MAX` pages,
/// 9223372036854771712 on 4 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// The value of `key` in a flat keyed file (`key value` per line, as `memory.stat`, `cpu.stat`,
/// `cpuacct.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn keyed(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        if it.next()? == key {
            it.next()?.parse().ok()
        } else {
            None
        }
    })
}

/// `keyed(content, key)`, or 0 when missing.
pub(crate) fn keyed_or_zero(content: &str, key: &str) -> u64 {
    keyed(content, key).unwrap_or(0)
}

/// A v2 limit file: `max` is `None`.
pub(crate) fn max_or_value(content: &str) -> Option<u64> {
    match content.trim() {
        "max" => None,
        s => s.parse().ok(),
    }
}

/// A v1 limit: values near `i64::MAX` are `None`.
pub(crate) fn v1_limit(value: u64) -> Option<u64> {
    (value < V1_UNLIMITED).then_some(value)
}

/// Sums `key=value` fields over every line of a nested keyed file (`io.stat`:
/// `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`).
pub(crate) fn nested_sum(content: &str, key: &str) -> u64 {
    content
        .lines()
        .flat_map(|line| line.split_whitespace().skip(1))
        .filter_map(|field| field.split_once('='))
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// Sums the per-device lines of a v1 blkio file for one operation (`8:0 Read 4096`); the
/// trailing `Total N` line is ignored.
pub(crate) fn blkio_sum(content: &str, op: &str) -> u64 {
    content
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [_dev, o, v] if *o == op => v.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let s = "rss 10\ncache 20\ntotal_rss 30\n";
        assert_eq!(keyed(s, "rss"), Some(10));
        assert_eq!(keyed(s, "total_rss"), Some(30));
        assert_eq!(keyed(s, "missing"), None);
        assert_eq!(keyed_or_zero(s, "missing"), 0);
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", "oom_kill"),
            Some(7)
        );
    }

    #[test]
    fn limits() {
        assert_eq!(max_or_value("max\n"), None);
        assert_eq!(max_or_value("1048576\n"), Some(1048576));
        assert_eq!(v1_limit(9223372036854771712), None);
        assert_eq!(v1_limit(67108864), Some(67108864));
    }

    #[test]
    fn io_stat_sums_devices() {
        let s = "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n\
                 8:16 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=0 dios=0\n";
        assert_eq!(nested_sum(s, "rbytes"), 105);
        assert_eq!(nested_sum(s, "wbytes"), 206);
        assert_eq!(nested_sum(s, "rios"), 8);
        assert_eq!(nested_sum(s, "wios"), 10);
    }

    #[test]
    fn blkio_sums_devices_not_total() {
        let s = "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Total 300\n\
                 8:16 Read 1\n8:16 Write 2\nTotal 303\n";
        assert_eq!(blkio_sum(s, "Read"), 101);
        assert_eq!(blkio_sum(s, "Write"), 202);
        assert_eq!(blkio_sum("Total 0\n", "Read"), 0);
    }
}
