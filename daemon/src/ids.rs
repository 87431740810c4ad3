//! Ids, names and namespace names: what is accepted, and how ids are made.

use std::io::Read;

use crate::error::ApiError;

/// Longest id or name (docker's ids are 64 hex digits; names a little longer).
pub const MAX_LEN: usize = 76;

/// Container ids and names, namespace names: letters, digits, `_ . -` (a name may also hold `+`
/// like runc ids), not starting with `.` or `-`, at most 76 bytes.
pub fn validate(what: &str, s: &str) -> Result<(), ApiError> {
    let bad = |reason: &str| {
        Err(ApiError::InvalidArgument(format!(
            "invalid {what} {:?}: {reason}",
            s.chars().take(80).collect::<String>()
        )))
    };
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > MAX_LEN {
        return bad("longer than 76 characters");
    }
    if s.contains("..") {
        return bad("contains ..");
    }
    if s.starts_with(['.', '-']) {
        return bad("starts with . or -");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+'))
    {
        return bad("only letters, digits and _ . - + are allowed");
    }
    Ok(())
}

/// A new random id: 32 hex digits.
pub fn generate() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Fall back on time and pid: unique enough for one host, never used for security.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes.copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_invalid_arguments() {
        for ok in ["web", "a-b_c.d", "x1", &"a".repeat(76)] {
            validate("id", ok).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".x",
            "-x",
            "a\0b",
            "a\nb",
            "tab\t",
            &"a".repeat(77),
            "über",
        ] {
            assert!(
                matches!(validate("id", bad), Err(ApiError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        let id = generate();
        assert_eq!(id.len(), 32);
        validate("id", &id).unwrap();
        assert_ne!(id, generate());
    }
}
