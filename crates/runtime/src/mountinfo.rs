//! `/proc/<pid>/mountinfo`, parsed: one [`Mount`] per line (see proc(5)).
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)       (7)  (8) (9)     (10)        (11)
//! ```
//! Paths use octal escapes for space, tab, newline and backslash (`\040`); they are decoded.

use std::path::PathBuf;

/// One mount of a mountinfo table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent_id: u32,
    /// The root of the mount within its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub options: String,
    /// Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl Mount {
    /// Whether the mount is a peer of a shared group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The calling process's mount table.
pub fn read_self() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

fn parse_line(line: &str) -> Option<Mount> {
    let mut f = line.split(' ');
    let id = f.next()?.parse().ok()?;
    let parent_id = f.next()?.parse().ok()?;
    let _dev = f.next()?;
    let root = unescape(f.next()?).into();
    let mount_point = unescape(f.next()?).into();
    let options = f.next()?.to_string();
    let mut optional = Vec::new();
    loop {
        match f.next()? {
            "-" => break,
            o => optional.push(o.to_string()),
        }
    }
    Some(Mount {
        id,
        parent_id,
        root,
        mount_point,
        options,
        optional,
        fs_type: f.next()?.to_string(),
        source: unescape(f.next()?),
        super_options: f.next().unwrap_or_default().to_string(),
    })
}

/// Decodes the kernel's `\ooo` octal escapes.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_optional_tags_and_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n\
                    garbage\n\
                    40 1 0:5 / /run rw - tmpfs tmpfs rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, 36);
        assert_eq!(m[0].parent_id, 35);
        assert_eq!(m[0].root, PathBuf::from("/mnt1"));
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(m[0].optional, vec!["master:1", "shared:7"]);
        assert!(m[0].is_shared());
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[1].mount_point, PathBuf::from("/run"));
        assert!(!m[1].is_shared());
    }

    #[test]
    fn reads_its_own_table() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mount_point == std::path::Path::new("/")));
    }

    #[test]
    fn a_trailing_backslash_is_kept() {
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\134x"), "\\x");
    }
}
