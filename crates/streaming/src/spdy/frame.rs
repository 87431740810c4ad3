//! SPDY/3.1 framing (the subset Kubernetes streaming uses) and header-block compression.
//!
//! Frames: an 8-byte header, then the payload. Control frames start with the high bit set,
//! the version (3) and the type; data frames with the 31-bit stream id. Header blocks are
//! `u32 count, (u32 len, name, u32 len, value)*`, compressed by one zlib stream per direction
//! (sync-flushed per frame) primed with the SPDY/3 dictionary.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const TYPE_SYN_STREAM: u16 = 1;
pub(crate) const TYPE_SYN_REPLY: u16 = 2;
pub(crate) const TYPE_RST_STREAM: u16 = 3;
pub(crate) const TYPE_PING: u16 = 6;
pub(crate) const TYPE_GOAWAY: u16 = 7;
pub(crate) const FLAG_FIN: u8 = 1;
/// Largest frame payload accepted (headers of a handful of streams, data chunks).
const MAX_FRAME: usize = 1 << 20;

/// The words of the SPDY/3 header dictionary, each stored with a 4-byte length prefix.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The raw text that ends the SPDY/3 header dictionary.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes).
pub(crate) fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// One frame as read.
#[derive(Debug)]
pub(crate) enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY...: nothing to do for a server here.
    Other,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads one frame; `Ok(None)` at a clean end of the connection.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    headers: &mut HeaderCodec,
) -> Result<Option<Frame>, String> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let flags = head[4];
    let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
    if len > MAX_FRAME {
        return Err(format!("SPDY frame of {len} bytes is too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)
        .await
        .map_err(|e| e.to_string())?;
    if head[0] & 0x80 == 0 {
        return Ok(Some(Frame::Data {
            stream: be32(&head[..4]) & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: Bytes::from(payload),
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
    if version != 3 {
        return Err(format!("SPDY version {version} is not supported"));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let short = || format!("short SPDY control frame of type {kind}");
    Ok(Some(match kind {
        TYPE_SYN_STREAM => {
            if payload.len() < 10 {
                return Err(short());
            }
            Frame::SynStream {
                stream: be32(&payload[..4]) & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                headers: headers.decode(&payload[10..])?,
            }
        }
        // A SYN_REPLY or HEADERS block must still go through the decompressor.
        TYPE_SYN_REPLY | 8 => {
            if payload.len() >= 4 {
                headers.decode(&payload[4..])?;
            }
            Frame::Other
        }
        TYPE_RST_STREAM if payload.len() >= 4 => Frame::RstStream {
            stream: be32(&payload[..4]) & 0x7fff_ffff,
        },
        TYPE_PING if payload.len() >= 4 => Frame::Ping {
            id: be32(&payload[..4]),
        },
        TYPE_GOAWAY => Frame::GoAway,
        _ => Frame::Other,
    }))
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + payload.len());
    b.put_u16(0x8003);
    b.put_u16(kind);
    b.put_u8(flags);
    b.put_uint(payload.len() as u64, 3);
    b.put_slice(payload);
    b.freeze()
}

/// A DATA frame (payload at most 16 MiB − 1; callers send far smaller chunks).
pub(crate) fn data_frame(stream: u32, fin: bool, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.put_u32(stream & 0x7fff_ffff);
    b.put_u8(if fin { FLAG_FIN } else { 0 });
    b.put_uint(data.len() as u64, 3);
    b.put_slice(data);
    b.freeze()
}

/// A SYN_REPLY with no headers, accepting a stream.
pub(crate) fn syn_reply(stream: u32, headers: &mut HeaderCodec) -> Result<Bytes, String> {
    let block = headers.encode(&[])?;
    let mut p = Vec::with_capacity(4 + block.len());
    p.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    p.extend_from_slice(&block);
    Ok(control(TYPE_SYN_REPLY, 0, &p))
}

/// A SYN_STREAM opening `stream` (what clients send; the server only needs it in tests).
#[cfg(test)]
pub(crate) fn syn_stream(
    stream: u32,
    headers: &[(&str, &str)],
    codec: &mut HeaderCodec,
) -> Result<Bytes, String> {
    let block = codec.encode(headers)?;
    let mut p = Vec::with_capacity(10 + block.len());
    p.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&block);
    Ok(control(TYPE_SYN_STREAM, 0, &p))
}

pub(crate) fn ping(id: u32) -> Bytes {
    control(TYPE_PING, 0, &id.to_be_bytes())
}

pub(crate) fn goaway(last_stream: u32) -> Bytes {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    control(TYPE_GOAWAY, 0, &p)
}

pub(crate) fn rst_stream(stream: u32, status: u32) -> Bytes {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    p[4..].copy_from_slice(&status.to_be_bytes());
    control(TYPE_RST_STREAM, 0, &p)
}

/// The two zlib streams of one connection's header blocks.
pub(crate) struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl HeaderCodec {
    pub(crate) fn new() -> Result<Self, String> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            inflate: Decompress::new(true),
            deflate,
        })
    }

    /// Decompresses and parses one header block (names lower-cased as SPDY requires).
    pub(crate) fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let raw = self.inflate(block)?;
        let bad = || "malformed SPDY header block".to_string();
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = raw.get(pos..pos + n).ok_or_else(bad)?;
            pos += n;
            Ok(s)
        };
        let count = be32(take(4)?);
        let mut headers = Vec::new();
        for _ in 0..count {
            let n = be32(take(4)?) as usize;
            let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
            let n = be32(take(4)?) as usize;
            let value = take(n)?;
            // Several values of one name are joined by NUL bytes.
            for v in value.split(|b| *b == 0) {
                headers.push((name.clone(), String::from_utf8_lossy(v).into_owned()));
            }
        }
        Ok(headers)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            match self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("SPDY header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("SPDY header block: {e}")),
            }
            let used = (self.inflate.total_in() - in_before) as usize;
            pos += used;
            let produced = out.len() - out_before;
            if pos >= input.len() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() && pos >= input.len() {
                break;
            }
            if out.len() > MAX_FRAME {
                return Err("SPDY header block too large".into());
            }
        }
        Ok(out)
    }

    /// Builds and compresses one header block.
    pub(crate) fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| format!("SPDY header compression: {e}"))?;
            pos += (self.deflate.total_in() - before) as usize;
            if pos >= raw.len() && out.len() < out.capacity() || status == Status::StreamEnd {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b"enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut a = HeaderCodec::new().expect("codec");
        let mut b = HeaderCodec::new().expect("codec");
        for i in 0..3 {
            let port = i.to_string();
            let block = a
                .encode(&[("streamtype", "data"), ("port", &port)])
                .expect("encode");
            if i == 0 {
                assert!(block[0] == 0x78 && block[1] & 0x20 != 0, "zlib with FDICT");
            }
            let h = b.decode(&block).expect("decode");
            assert_eq!(
                h,
                vec![
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".to_string(), port)
                ]
            );
        }
    }
}
