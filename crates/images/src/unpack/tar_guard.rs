//! A reader that follows the tar stream's headers as they pass by and fails on metadata
//! entries (GNU long names and links, PAX headers) larger than a limit: the `tar` crate reads
//! those whole into memory, so a layer with a gigabyte "long name" would exhaust it.
//! GNU sparse entries (extra header blocks) are refused here as well.

use std::io::{self, Read};

/// The largest long name, long link or PAX header accepted.
pub const MAX_TAR_METADATA: u64 = 1 << 20;

const BLOCK: u64 = 512;

pub(crate) struct TarGuard<R> {
    inner: R,
    /// Stream offset of the next byte.
    pos: u64,
    /// Offset of the next header block.
    next_header: u64,
    header: Vec<u8>,
    /// A PAX header's data being collected (for its `size` record), and where it ends.
    pax: Option<(Vec<u8>, u64)>,
    /// A `size` from the last PAX header, for the next real entry.
    pax_size: Option<u64>,
    /// After the end-of-archive block nothing is looked at.
    ended: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A tar numeric field: octal text or GNU base-256.
fn numeric(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad("tar size overflow"))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad("bad tar size"))?;
    u64::from_str_radix(s, 8).map_err(|_| bad("bad tar size"))
}

/// The `size` record of PAX data (`<len> size=<n>\n` records).
fn pax_size(data: &[u8]) -> Option<u64> {
    data.split(|b| *b == b'\n').find_map(|rec| {
        let (_, kv) = std::str::from_utf8(rec).ok()?.split_once(' ')?;
        kv.strip_prefix("size=")?.parse().ok()
    })
}

impl<R: Read> TarGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarGuard {
            inner,
            pos: 0,
            next_header: 0,
            header: Vec::with_capacity(BLOCK as usize),
            pax: None,
            pax_size: None,
            ended: false,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn header_done(&mut self) -> io::Result<()> {
        let h = std::mem::take(&mut self.header);
        let start = self.next_header;
        if h.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let kind = h[156];
        let mut size = numeric(&h[124..136])?;
        let metadata = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if metadata && size > MAX_TAR_METADATA {
            return Err(bad(format!(
                "tar metadata entry of {size} bytes (more than {MAX_TAR_METADATA})"
            )));
        }
        if kind == b'S' {
            return Err(bad("sparse tar entries are not supported"));
        }
        if kind == b'x' {
            self.pax = Some((Vec::with_capacity(size as usize), start + BLOCK + size));
        } else if !metadata {
            if let Some(s) = self.pax_size.take() {
                size = s;
            }
        }
        let padded = size
            .checked_add(BLOCK - 1)
            .ok_or_else(|| bad("tar size overflow"))?
            & !(BLOCK - 1);
        self.next_header = start
            .checked_add(BLOCK + padded)
            .ok_or_else(|| bad("tar size overflow"))?;
        Ok(())
    }

    /// Looks at `buf`, which starts at stream offset `self.pos`.
    fn observe(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut off = 0usize;
        while off < buf.len() && !self.ended {
            let at = self.pos + off as u64;
            if at >= self.next_header && at < self.next_header + BLOCK {
                let want = (self.next_header + BLOCK - at) as usize;
                let take = want.min(buf.len() - off);
                self.header.extend_from_slice(&buf[off..off + take]);
                off += take;
                if self.header.len() == BLOCK as usize {
                    self.header_done()?;
                }
                continue;
            }
            // Entry data up to the next header.
            let until = (self.next_header - at).min((buf.len() - off) as u64) as usize;
            if let Some((data, end)) = &mut self.pax {
                let keep = (*end).saturating_sub(at).min(until as u64) as usize;
                data.extend_from_slice(&buf[off..off + keep]);
                if at + until as u64 >= *end {
                    self.pax_size = pax_size(data);
                    self.pax = None;
                }
            }
            off += until;
        }
        self.pos += buf.len() as u64;
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(kind: tar::EntryType, size: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path("././@LongLink").unwrap();
        h.set_size(size as u64);
        h.set_cksum();
        b.append(&h, &vec![b'a'; size][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "f", &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(data: &[u8], chunk: usize) -> io::Result<Vec<String>> {
        // Small reads exercise headers split across reads.
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut a = tar::Archive::new(TarGuard::new(Chunked(data, chunk)));
        let mut names = Vec::new();
        for e in a.entries()? {
            names.push(e?.path()?.display().to_string());
        }
        Ok(names)
    }

    #[test]
    fn huge_long_names_are_refused() {
        let ok = tar_with(tar::EntryType::GNULongName, 300);
        for chunk in [1, 7, 512, 100_000] {
            let names = read_all(&ok, chunk).unwrap();
            assert_eq!(names, ["a".repeat(300)]);
        }
        let huge = tar_with(tar::EntryType::GNULongName, (MAX_TAR_METADATA + 1) as usize);
        let err = read_all(&huge, 4096).unwrap_err();
        assert!(err.to_string().contains("metadata entry"), "{err}");
        let huge = tar_with(tar::EntryType::XHeader, (MAX_TAR_METADATA + 1) as usize);
        assert!(read_all(&huge, 4096).is_err());
    }

    #[test]
    fn pax_sizes_keep_the_guard_in_step() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"700"[..]), ("path", &b"big"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path("ignored").unwrap();
        h.set_cksum();
        b.append(&h, &vec![b'z'; 700][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        b.append_data(&mut h, "after", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        for chunk in [1, 513, 1 << 20] {
            assert_eq!(read_all(&data, chunk).unwrap(), ["big", "after"]);
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(numeric(b"00000001750\0").unwrap(), 1000);
        assert_eq!(numeric(b" 17 \0").unwrap(), 15);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 1;
        big[10] = 1;
        assert_eq!(numeric(&big).unwrap(), 257);
    }
}
