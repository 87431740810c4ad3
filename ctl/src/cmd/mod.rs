//! The commands, grouped by what they act on.

pub mod containers;
pub mod doctor;
pub mod exec;
pub mod images;
pub mod run;
mod session;
pub mod system;
pub mod tasks;

/// One clear line for an error: a daemon status shows its message.
pub fn describe(e: &anyhow::Error) -> String {
    if let Some(s) = e.downcast_ref::<tonic::Status>() {
        return s.message().to_string();
    }
    format!("{e:#}")
}

/// A new exec id.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `64m`, `1g`, `512k`, `100` (bytes).
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(super::parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(super::parse_bytes("512").unwrap(), 512);
        assert!(super::parse_bytes("lots").is_err());
    }
}
