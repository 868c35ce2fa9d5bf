//! The backup file: a consistent point-in-time copy of the whole replicated state, as one stream.
//!
//! ```text
//! magic         "CRONRAFT-BACKUP\n"                     16 bytes
//! header        u32 BE length, then JSON [`BackupHeader`] (format version, the point, the source)
//! pairs         u32 BE key length, key, u32 BE value length, value; in key order
//! end           u32 BE 0xFFFF_FFFF
//! trailer       u32 BE length, then JSON [`BackupTrailer`] (pair count and the two digests)
//! checksum      32 bytes: BLAKE3 of every byte before it
//! ```
//!
//! Why a stream and not a snapshot file: a backup is written by one node while it goes on
//! applying (the pairs come from [`super::state_machine::SnapshotCopy::for_each_pair`], the state
//! at one applied index), through the API to a client that may be on another machine, and a
//! state of a million records should not have to fit in memory on either side. So the writer
//! needs only a [`Write`] and the reader only a [`Read`]; the checksum and the pair count come
//! last, and a cut stream (a dead connection, a full disk) can never pass for a whole backup.
//!
//! Two digests, both [`StateDigest`]s: `state_digest` over every pair, which is what
//! `/cluster/digest` says of the source at the backup's point; `data_digest` over every pair but
//! the two that say where the state sits in a Raft log (`m/applied`, `m/membership`), which a
//! restore rewrites: a restored cluster's `data_digest` equals the backup's until it applies
//! anything new.
//!
//! Every length read from a file is bounded before anything is allocated for it ([`KEY_MAX`],
//! [`VALUE_MAX`], [`HEADER_MAX`]); a file from a newer format is refused by its version before its
//! pairs are read.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::state_machine::SnapshotCopy;
use crate::error::StoreError;
use crate::state::{keys, StateDigest};

/// The file's first bytes.
pub const MAGIC: &[u8; 16] = b"CRONRAFT-BACKUP\n";
/// The backup format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The longest key a backup may hold (the state's keys are a few dozen bytes).
pub const KEY_MAX: u32 = 64 * 1024;
/// The longest value a backup may hold (values are bounded well below sled's 2 MiB blob limit).
pub const VALUE_MAX: u32 = 16 * 1024 * 1024;
/// The longest header or trailer.
pub const HEADER_MAX: u32 = 64 * 1024;
/// Marks the end of the pairs (no key is this long).
const END: u32 = u32::MAX;

/// What a backup is of, written before its pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format_version: u32,
    /// The node that wrote it.
    pub node_id: u64,
    /// The point: the last log entry applied to the state in the backup.
    pub applied_index: u64,
    pub applied_term: u64,
    /// When the point was fixed, by the writing node's clock (Unix ms; informative only).
    pub created_ms: i64,
    /// The `cronraft` version that wrote it.
    pub software: String,
}

/// What a backup holds, written after its pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTrailer {
    pub pairs: u64,
    /// Over every pair: `/cluster/digest` of the source at the point.
    pub state_digest: String,
    /// Over every pair but `m/applied`, `m/membership` and `m/cluster_id`: what a restore keeps.
    pub data_digest: String,
}

/// A backup that was written or read whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub header: BackupHeader,
    pub trailer: BackupTrailer,
    /// Bytes in the file, checksum included.
    pub bytes: u64,
    /// The BLAKE3 checksum at the file's end, in hex.
    pub checksum: String,
}

impl BackupHeader {
    /// The header of a backup of `copy`'s point, written by `node_id` at `now_ms`.
    pub fn of(copy: &SnapshotCopy, node_id: u64, now_ms: i64) -> Self {
        let applied = copy.meta().last_log_id;
        BackupHeader {
            format_version: FORMAT_VERSION,
            node_id,
            applied_index: applied.map_or(0, |id| id.index),
            applied_term: applied.map_or(0, |id| id.leader_id.term),
            created_ms: now_ms,
            software: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Writes the backup of `copy`'s point into `out` (the API's stream and the leader's scheduled
/// files alike), with the pairs as [`SnapshotCopy::for_each_pair`] gives them.
pub fn write_backup<W: Write + Send>(
    copy: SnapshotCopy,
    header: BackupHeader,
    out: W,
) -> Result<BackupSummary, BackupError> {
    let mut writer = BackupWriter::begin(out, header)?;
    let mut failed: Option<BackupError> = None;
    let scan = copy.for_each_pair(|k, v| {
        writer.pair(k, v).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            failed = Some(e);
            io.into()
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    scan?;
    let (summary, mut out) = writer.finish()?;
    out.flush()?;
    Ok(summary)
}

/// Why a backup could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file does not start with the backup magic.
    #[error("not a cronraft backup (the first 16 bytes are not \"CRONRAFT-BACKUP\\n\")")]
    NotABackup,
    /// The file is from a format this build does not know.
    #[error(
        "backup format version {found} is not known to this build (it reads version {known}); use a newer cronraft"
    )]
    UnknownVersion { found: u32, known: u32 },
    /// The file is cut short or damaged; `what` says where.
    #[error("the backup is damaged or incomplete: {0}")]
    Corrupt(String),
}

/// Bytes gathered before they are hashed and written on (see [`Hashing`], [`Verifying`]).
const BLOCK: usize = 64 * 1024;

/// A [`Write`] that gathers what passes through it into blocks of [`BLOCK`], hashes each block
/// and writes it on whole, and counts it. A backup is written a few bytes at a time (lengths,
/// keys, values); hashing and writing those one by one cost more than the scan that makes them.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    block: Vec<u8>,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, hasher: blake3::Hasher::new(), block: Vec::with_capacity(BLOCK), bytes: 0 }
    }

    /// Hashes and writes on what is gathered.
    fn pass_on(&mut self) -> std::io::Result<()> {
        self.hasher.update(&self.block);
        self.inner.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.block.extend_from_slice(buf);
        self.bytes += buf.len() as u64;
        if self.block.len() >= BLOCK {
            self.pass_on()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pass_on()?;
        self.inner.flush()
    }
}

/// Writes one backup: [`BackupWriter::begin`], a [`BackupWriter::pair`] per key in key order,
/// then [`BackupWriter::finish`].
pub struct BackupWriter<W: Write> {
    out: Hashing<W>,
    header: BackupHeader,
    digests: Digests,
}

impl<W: Write> BackupWriter<W> {
    /// Writes the magic and the header.
    pub fn begin(out: W, header: BackupHeader) -> Result<Self, BackupError> {
        let mut out = Hashing::new(out);
        out.write_all(MAGIC)?;
        write_json(&mut out, &header)?;
        Ok(BackupWriter { out, header, digests: Digests::default() })
    }

    /// Writes the next pair (keys in ascending order).
    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        let too_long = |what: &str, n: usize| BackupError::Corrupt(format!("a {what} of {n} bytes is over the limit"));
        let klen = u32::try_from(key.len()).ok().filter(|n| *n <= KEY_MAX).ok_or_else(|| too_long("key", key.len()))?;
        let vlen = u32::try_from(value.len())
            .ok()
            .filter(|n| *n <= VALUE_MAX)
            .ok_or_else(|| too_long("value", value.len()))?;
        self.out.write_all(&klen.to_be_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&vlen.to_be_bytes())?;
        self.out.write_all(value)?;
        self.digests.add(key, value);
        Ok(())
    }

    /// Writes the end, the trailer and the checksum; returns the summary and the writer.
    pub fn finish(mut self) -> Result<(BackupSummary, W), BackupError> {
        self.out.write_all(&END.to_be_bytes())?;
        let trailer = self.digests.trailer();
        write_json(&mut self.out, &trailer)?;
        self.out.pass_on()?;
        let checksum = self.out.hasher.finalize();
        self.out.inner.write_all(checksum.as_bytes())?;
        self.out.inner.flush()?;
        let summary = BackupSummary {
            header: self.header,
            trailer,
            bytes: self.out.bytes + 32,
            checksum: checksum.to_hex().to_string(),
        };
        Ok((summary, self.out.inner))
    }
}

/// The pair count and the two digests, kept as pairs go by.
#[derive(Default)]
struct Digests {
    pairs: u64,
    state: StateDigest,
    data: StateDigest,
}

impl Digests {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.pairs += 1;
        self.state.add(key, value);
        if !is_position_key(key) {
            self.data.add(key, value);
        }
    }

    fn trailer(&self) -> BackupTrailer {
        BackupTrailer { pairs: self.pairs, state_digest: self.state.finish(), data_digest: self.data.finish() }
    }
}

/// The keys that say where a state sits (its Raft log position and its cluster) rather than what
/// it holds: a restore rewrites them, and the data digest leaves them out.
pub fn is_position_key(key: &[u8]) -> bool {
    key == keys::APPLIED || key == keys::MEMBERSHIP || key == keys::CLUSTER_ID
}

/// The digest of a state without its position keys (see [`is_position_key`]), over any pairs
/// in key order.
pub fn data_digest<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut digest = StateDigest::new();
    for (k, v) in pairs {
        if !is_position_key(k) {
            digest.add(k, v);
        }
    }
    digest.finish()
}

/// The data digest of a state tree as it is on disk (a restored one).
pub fn data_digest_of(tree: &sled::Tree) -> Result<String, StoreError> {
    let mut digest = StateDigest::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        if !is_position_key(&k) {
            digest.add(&k, &v);
        }
    }
    Ok(digest.finish())
}

fn write_json<T: Serialize>(out: &mut impl Write, value: &T) -> Result<(), BackupError> {
    let json = serde_json::to_vec(value).map_err(|e| BackupError::Io(std::io::Error::other(e)))?;
    out.write_all(&(json.len() as u32).to_be_bytes())?;
    out.write_all(&json)?;
    Ok(())
}

/// A buffered reader that hashes what its caller takes, in blocks: the bytes of a block are
/// hashed once they have all been taken (when the block is refilled, or when the checksum is
/// asked for), never the ones still unread, so the checksum at the end stays out of its own
/// hash.
struct Verifying<R> {
    inner: R,
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    /// `buf[pos..len]` is unread; `buf[hashed..pos]` is read and not hashed yet.
    pos: usize,
    len: usize,
    hashed: usize,
    bytes: u64,
}

impl<R: Read> Verifying<R> {
    fn new(inner: R) -> Self {
        Verifying { inner, hasher: blake3::Hasher::new(), buf: vec![0; BLOCK], pos: 0, len: 0, hashed: 0, bytes: 0 }
    }

    /// Hashes what was read and not hashed yet; the hash of everything read so far.
    fn hash_so_far(&mut self) -> blake3::Hash {
        self.hasher.update(&self.buf[self.hashed..self.pos]);
        self.hashed = self.pos;
        self.hasher.finalize()
    }

    /// Reads exactly `out.len()` bytes; `Ok(false)` if the input ended first.
    fn fill_exact(&mut self, mut out: &mut [u8]) -> Result<bool, BackupError> {
        while !out.is_empty() {
            if self.pos == self.len {
                self.hasher.update(&self.buf[self.hashed..self.pos]);
                let n = loop {
                    match self.inner.read(&mut self.buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                (self.pos, self.len, self.hashed) = (0, n, 0);
                if n == 0 {
                    return Ok(false);
                }
            }
            let n = out.len().min(self.len - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            self.bytes += n as u64;
            out = &mut out[n..];
        }
        Ok(true)
    }

    /// Reads exactly `buf.len()` bytes; a short file is [`BackupError::Corrupt`], naming `what`.
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), BackupError> {
        match self.fill_exact(buf)? {
            true => Ok(()),
            false => Err(BackupError::Corrupt(format!("the file ends inside {what}"))),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_be_bytes(b))
    }

    /// Reads a length (bounded by `max` before any allocation) and that many bytes.
    fn bytes(&mut self, max: u32, what: &str) -> Result<Vec<u8>, BackupError> {
        let len = self.u32(what)?;
        self.sized(len, max, what)
    }

    fn sized(&mut self, len: u32, max: u32, what: &str) -> Result<Vec<u8>, BackupError> {
        if len > max {
            return Err(BackupError::Corrupt(format!("{what} claims {len} bytes, over the limit of {max}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }

    fn json<T: serde::de::DeserializeOwned>(&mut self, what: &str) -> Result<T, BackupError> {
        let bytes = self.bytes(HEADER_MAX, what)?;
        serde_json::from_slice(&bytes).map_err(|e| BackupError::Corrupt(format!("{what}: {e}")))
    }
}

/// Reads a whole backup, calling `on_pair` with each pair in order, and checks it: the keys
/// ascend, and the pair count, both digests and the checksum match what the file says. A file
/// that fails a check was still passed to `on_pair` up to the failure: whoever writes the pairs
/// somewhere must throw that away on an error.
pub fn read_backup<R: Read>(
    input: R,
    mut on_pair: impl FnMut(&[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<BackupSummary, BackupError> {
    let mut r = Verifying::new(input);
    let mut magic = [0u8; 16];
    if !r.fill_exact(&mut magic)? || &magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let header = read_header(&mut r)?;
    let mut digests = Digests::default();
    let mut last: Option<Vec<u8>> = None;
    loop {
        let klen = r.u32("a key length")?;
        if klen == END {
            break;
        }
        let key = r.sized(klen, KEY_MAX, "a key")?;
        let value = r.bytes(VALUE_MAX, "a value")?;
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(BackupError::Corrupt("keys out of order".into()));
        }
        on_pair(&key, &value)?;
        digests.add(&key, &value);
        last = Some(key);
    }
    let trailer: BackupTrailer = r.json("the trailer")?;
    let computed = r.hash_so_far();
    let before_checksum = r.bytes;
    let mut checksum = [0u8; 32];
    r.exact(&mut checksum, "the checksum")?;
    if checksum != *computed.as_bytes() {
        return Err(BackupError::Corrupt("the checksum does not match the contents".into()));
    }
    if trailer != digests.trailer() {
        return Err(BackupError::Corrupt(format!(
            "the trailer says {} pairs with data digest {}, the file holds {} with {}",
            trailer.pairs,
            trailer.data_digest,
            digests.pairs,
            digests.data.finish()
        )));
    }
    let mut rest = [0u8; 1];
    if r.fill_exact(&mut rest)? {
        return Err(BackupError::Corrupt("bytes after the checksum".into()));
    }
    Ok(BackupSummary { header, trailer, bytes: before_checksum + 32, checksum: computed.to_hex().to_string() })
}

/// Reads the header and refuses a format this build does not know, before any pair is read.
fn read_header<R: Read>(r: &mut Verifying<R>) -> Result<BackupHeader, BackupError> {
    let bytes = r.bytes(HEADER_MAX, "the header")?;
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version =
        serde_json::from_slice(&bytes).map_err(|e| BackupError::Corrupt(format!("the header: {e}")))?;
    if version.format_version != FORMAT_VERSION {
        return Err(BackupError::UnknownVersion { found: version.format_version, known: FORMAT_VERSION });
    }
    serde_json::from_slice(&bytes).map_err(|e| BackupError::Corrupt(format!("the header: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BackupHeader {
        BackupHeader {
            format_version: FORMAT_VERSION,
            node_id: 1,
            applied_index: 7,
            applied_term: 2,
            created_ms: 0,
            software: "test".into(),
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = BackupWriter::begin(Vec::new(), header()).unwrap();
        for (k, v) in [(&b"a"[..], &b"1"[..]), (keys::APPLIED, b"pos"), (b"t/1", b"task")] {
            w.pair(k, v).unwrap();
        }
        w.finish().unwrap().1
    }

    #[test]
    fn a_written_backup_reads_back_with_its_pairs_and_digests() {
        let bytes = sample();
        let mut seen = Vec::new();
        let summary = read_backup(&bytes[..], |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(summary.header, header());
        assert_eq!(summary.trailer.pairs, 3);
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(seen.len(), 3);
        // The data digest leaves out the position key, the state digest does not.
        let data = data_digest(seen.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        assert_eq!(summary.trailer.data_digest, data);
        assert_ne!(summary.trailer.state_digest, data);
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let bytes = sample();
        // Phase 1: every prefix is refused (a stream cut anywhere never passes for a backup).
        for len in 0..bytes.len() {
            assert!(read_backup(&bytes[..len], |_, _| Ok(())).is_err(), "a backup cut at {len} was accepted");
        }
        // Phase 2: every single flipped byte is refused.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(read_backup(&bad[..], |_, _| Ok(())).is_err(), "a flip at {i} was accepted");
        }
        // Phase 3: trailing bytes are refused.
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(read_backup(&long[..], |_, _| Ok(())), Err(BackupError::Corrupt(_))));
    }

    #[test]
    fn a_backup_of_many_blocks_reads_back_and_a_flip_or_cut_anywhere_in_it_is_refused() {
        // Phase 1: 30,000 pairs, about 1.7 MB: many of the 64 KiB blocks both sides hash in.
        let mut w = BackupWriter::begin(Vec::new(), header()).unwrap();
        for i in 0u32..30_000 {
            let value = vec![(i % 251) as u8; (i % 90) as usize];
            w.pair(&[b"x/".as_slice(), &i.to_be_bytes()].concat(), &value).unwrap();
        }
        let (written, bytes) = w.finish().unwrap();
        assert!(bytes.len() > 20 * BLOCK);
        let read = read_backup(&bytes[..], |_, _| Ok(())).unwrap();
        assert_eq!(read, written);
        // The same bytes given a few at a time (a body arriving in small chunks) read the same.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        assert_eq!(read_backup(Trickle(&bytes), |_, _| Ok(())).unwrap(), written);
        // Phase 2: a flip in the first block, at a block boundary, in the last block, in the
        // checksum; a cut at a block boundary and one byte short.
        for at in [100, BLOCK - 1, BLOCK, 7 * BLOCK + 3, bytes.len() - 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(read_backup(&bad[..], |_, _| Ok(())).is_err(), "a flip at {at} was accepted");
        }
        for len in [BLOCK, 3 * BLOCK + 1, bytes.len() - 1] {
            assert!(read_backup(&bytes[..len], |_, _| Ok(())).is_err(), "a cut at {len} was accepted");
        }
    }

    #[test]
    fn a_newer_format_is_refused_by_its_version_and_a_huge_length_allocates_nothing() {
        // A header from a future format.
        let mut newer = header();
        newer.format_version = FORMAT_VERSION + 1;
        let w = BackupWriter::begin(Vec::new(), newer).unwrap();
        let bytes = w.finish().unwrap().1;
        let err = read_backup(&bytes[..], |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, BackupError::UnknownVersion { found: 2, known: 1 }), "{err}");
        assert!(err.to_string().contains("use a newer cronraft"));
        // A key length of 2^31 is refused by the bound, before any allocation.
        let mut huge = MAGIC.to_vec();
        let json = serde_json::to_vec(&header()).unwrap();
        huge.extend((json.len() as u32).to_be_bytes());
        huge.extend(json);
        huge.extend((1u32 << 31).to_be_bytes());
        let err = read_backup(&huge[..], |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
        // Not a backup at all.
        assert!(matches!(read_backup(&b"hello world, not a backup"[..], |_, _| Ok(())), Err(BackupError::NotABackup)));
    }
}
