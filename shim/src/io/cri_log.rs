//! The CRI log format kubelet reads: one record per line,
//! `<RFC 3339 nano timestamp> <stream> <P|F> <content>\n`. A line longer than the buffer is
//! split into partial (`P`) records ending with a full (`F`) one; a line still open at
//! end-of-file is written as full.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Longest record content; longer lines are split.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file shared by a process's streams.
pub struct CriLog {
    path: PathBuf,
    file: File,
}

impl CriLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Reopens the file by path (after the old one was rotated away).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        *self = CriLog::open(&self.path)?;
        Ok(())
    }

    fn record(&mut self, stream: Stream, partial: bool, content: &[u8]) -> std::io::Result<()> {
        let ts = humantime::format_rfc3339_nanos(SystemTime::now());
        let mut rec = Vec::with_capacity(content.len() + 48);
        write!(
            rec,
            "{ts} {} {} ",
            stream.name(),
            if partial { 'P' } else { 'F' }
        )?;
        rec.extend_from_slice(content);
        rec.push(b'\n');
        self.file.write_all(&rec)
    }
}

/// Splits one stream's bytes into lines and records them.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn feed(
        &mut self,
        log: &mut CriLog,
        stream: Stream,
        mut data: &[u8],
    ) -> std::io::Result<()> {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.push(log, stream, &data[..i])?;
                    let line = std::mem::take(&mut self.pending);
                    log.record(stream, false, &line)?;
                    data = &data[i + 1..];
                }
                None => {
                    self.push(log, stream, data)?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// End of the stream: an unterminated last line is written as full.
    pub fn finish(&mut self, log: &mut CriLog, stream: Stream) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        log.record(stream, false, &line)
    }

    fn push(&mut self, log: &mut CriLog, stream: Stream, mut part: &[u8]) -> std::io::Result<()> {
        while self.pending.len() + part.len() > MAX_LINE {
            let take = MAX_LINE - self.pending.len();
            self.pending.extend_from_slice(&part[..take]);
            let full = std::mem::take(&mut self.pending);
            log.record(stream, true, &full)?;
            part = &part[take..];
        }
        self.pending.extend_from_slice(part);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap();
                assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
                (
                    it.next().unwrap().to_string(),
                    it.next().unwrap().to_string(),
                    it.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_partials_and_unterminated_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = CriLog::open(&path).unwrap();
        let mut out = LineSplitter::default();
        let mut err = LineSplitter::default();
        out.feed(&mut log, Stream::Stdout, b"hel").unwrap();
        err.feed(&mut log, Stream::Stderr, b"oops\n").unwrap();
        out.feed(&mut log, Stream::Stdout, b"lo\n\nlong:").unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        out.feed(&mut log, Stream::Stdout, &long).unwrap();
        out.feed(&mut log, Stream::Stdout, b"\ntail").unwrap();
        out.finish(&mut log, Stream::Stdout).unwrap();
        let r = records(&path);
        assert_eq!(r[0], ("stderr".into(), "F".into(), "oops".into()));
        assert_eq!(r[1], ("stdout".into(), "F".into(), "hello".into()));
        assert_eq!(r[2], ("stdout".into(), "F".into(), "".into()));
        assert_eq!(r[3].1, "P");
        assert_eq!(r[3].2.len(), MAX_LINE);
        assert_eq!(r[4], ("stdout".into(), "F".into(), "x".repeat(15)));
        assert_eq!(r[5], ("stdout".into(), "F".into(), "tail".into()));
        assert_eq!(r.len(), 6);
    }
}
