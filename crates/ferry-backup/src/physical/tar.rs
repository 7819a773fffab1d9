//! A streaming reader of the tar format PostgreSQL's base backup writes (ustar:
//! 512-byte headers, files, directories, symbolic links). Bytes are fed in any
//! slices (parts of a stored stream); entries go to a [`TarSink`] as they
//! complete, so memory stays bounded by one header.

use ferry_core::{Error, Result};

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (its bytes follow through [`TarSink::data`]).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// Receives a tar stream's entries.
pub trait TarSink {
    /// An entry starts (`name` relative, as stored; `link`: a symlink's target).
    fn begin(
        &mut self,
        kind: EntryKind,
        name: &str,
        mode: u32,
        size: u64,
        link: &str,
    ) -> Result<()>;
    /// The next bytes of the current file.
    fn data(&mut self, bytes: &[u8]) -> Result<()>;
    /// The current entry is complete.
    fn end(&mut self) -> Result<()>;
}

/// The reader's state between fed slices.
pub struct TarReader {
    header: Vec<u8>,
    /// Bytes of the current file still to come.
    left: u64,
    /// Padding after it.
    pad: u64,
    zero_blocks: u32,
    in_file: bool,
    entries: u64,
}

impl Default for TarReader {
    fn default() -> Self {
        TarReader::new()
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl TarReader {
    /// A reader at the start of a stream.
    pub fn new() -> TarReader {
        TarReader {
            header: Vec::with_capacity(512),
            left: 0,
            pad: 0,
            zero_blocks: 0,
            in_file: false,
            entries: 0,
        }
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Whether the stream ended (its two zero blocks seen).
    pub fn finished(&self) -> bool {
        self.zero_blocks >= 2
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut b: &[u8], sink: &mut dyn TarSink) -> Result<()> {
        while !b.is_empty() {
            if self.left > 0 {
                let n = (self.left as usize).min(b.len());
                sink.data(&b[..n])?;
                self.left -= n as u64;
                b = &b[n..];
                continue;
            }
            if self.in_file {
                self.in_file = false;
                sink.end()?;
            }
            if self.pad > 0 {
                let n = (self.pad as usize).min(b.len());
                self.pad -= n as u64;
                b = &b[n..];
                continue;
            }
            let n = (512 - self.header.len()).min(b.len());
            self.header.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.header.len() == 512 {
                let h = std::mem::take(&mut self.header);
                self.header.reserve(512);
                self.header_block(&h, sink)?;
            }
        }
        if self.in_file && self.left == 0 {
            self.in_file = false;
            sink.end()?;
        }
        Ok(())
    }

    fn header_block(&mut self, h: &[u8], sink: &mut dyn TarSink) -> Result<()> {
        if h.iter().all(|b| *b == 0) {
            self.zero_blocks += 1;
            return Ok(());
        }
        if self.zero_blocks >= 2 {
            return Err(Error::definite("tar stream: data after its end"));
        }
        // checksum: the header's bytes with the checksum field as spaces
        let want = octal(&h[148..156]).ok_or_else(|| bad("checksum field"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as u64
                }
            })
            .sum();
        if sum != want {
            return Err(bad("header checksum mismatch"));
        }
        let mut name = text(&h[0..100]);
        if &h[257..262] == b"ustar" {
            let prefix = text(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let mode = octal(&h[100..108]).ok_or_else(|| bad("mode field"))? as u32;
        let size = octal(&h[124..136]).ok_or_else(|| bad("size field"))?;
        let kind = match h[156] {
            b'0' | 0 => EntryKind::File,
            b'5' => EntryKind::Dir,
            b'2' => EntryKind::Symlink,
            t => {
                return Err(bad(&format!(
                    "entry {name:?} of unsupported type {:?}",
                    t as char
                )))
            }
        };
        let link = text(&h[157..257]);
        self.entries += 1;
        sink.begin(kind, &name, mode, size, &link)?;
        if kind == EntryKind::File {
            self.left = size;
            self.pad = (512 - size % 512) % 512;
            self.in_file = true;
            if size == 0 {
                self.in_file = false;
                sink.end()?;
            }
        } else {
            sink.end()?;
        }
        Ok(())
    }
}

/// A ustar header for entry `name` (names longer than 100 bytes are split into
/// the prefix field at a `/`); `None` when the name cannot be stored.
pub fn header(name: &str, kind: EntryKind, size: u64, mode: u32) -> Option<[u8; 512]> {
    let mut h = [0u8; 512];
    let (prefix, base) = if name.len() <= 100 {
        ("", name)
    } else {
        let cut = name[..name.len().min(156)].rfind('/')?;
        (&name[..cut], &name[cut + 1..])
    };
    if base.len() > 100 || prefix.len() > 155 || base.is_empty() {
        return None;
    }
    h[..base.len()].copy_from_slice(base.as_bytes());
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[100..108].copy_from_slice(format!("{:07o}\0", mode & 0o7777).as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size > 0o77777777777 {
        return None;
    }
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = match kind {
        EntryKind::File => b'0',
        EntryKind::Dir => b'5',
        EntryKind::Symlink => b'2',
    };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| *b as u64).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Some(h)
}

fn bad(what: &str) -> Error {
    Error::definite(format!("base backup tar stream is damaged: {what}"))
        .with_hint("`ferry backup verify` checks the set; restore from another set")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar header for tests.
    pub(crate) fn header(name: &str, kind: u8, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000600");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| *b as u64).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    #[derive(Default)]
    struct Collect(Vec<(EntryKind, String, Vec<u8>)>);
    impl TarSink for Collect {
        fn begin(&mut self, k: EntryKind, n: &str, _m: u32, _s: u64, _l: &str) -> Result<()> {
            self.0.push((k, n.to_string(), Vec::new()));
            Ok(())
        }
        fn data(&mut self, b: &[u8]) -> Result<()> {
            self.0.last_mut().expect("entry").2.extend_from_slice(b);
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stream_fed_in_any_slices_reads_the_same() {
        let mut t = header("global", b'5', 0);
        t.extend(header("global/pg_control", b'0', 700));
        t.extend(vec![7u8; 700]);
        t.extend(vec![0u8; 512 - 700 % 512]);
        t.extend(header("empty", b'0', 0));
        t.extend(vec![0u8; 1024]);
        for step in [1, 13, 512, 5000] {
            let mut r = TarReader::new();
            let mut c = Collect::default();
            for chunk in t.chunks(step) {
                r.feed(chunk, &mut c).expect("feed");
            }
            assert!(r.finished());
            assert_eq!(c.0.len(), 3);
            assert_eq!(c.0[1].1, "global/pg_control");
            assert_eq!(c.0[1].2, vec![7u8; 700]);
            assert_eq!(c.0[0].0, EntryKind::Dir);
        }
        // what the writer makes, the reader reads
        let mut w = header("a/b", EntryKind::File, 3, 0o640).expect("a header").to_vec();
        w.extend(b"xyz");
        w.extend(vec![0u8; 509 + 1024]);
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        assert!(header(&long, EntryKind::Dir, 0, 0o750).is_some());
        let mut r = TarReader::new();
        let mut c = Collect::default();
        r.feed(&w, &mut c).expect("feed");
        assert!(r.finished() && c.0[0].1 == "a/b" && c.0[0].2 == b"xyz");
        let mut broken = t.clone();
        broken[600] ^= 1;
        let mut r = TarReader::new();
        assert!(r.feed(&broken, &mut Collect::default()).is_err());
    }
}
