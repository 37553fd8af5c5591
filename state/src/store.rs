//! `StateStore`: one node's per-(group, field) state in its own sled database.
//!
//! # Key layout
//! Tree `fields`, where `fk` = u32 big-endian length of the group id, the
//! group id bytes, then the field name bytes (unambiguous for any names;
//! keys sort by group length, then group, then field):
//!
//! | key | value |
//! |---|---|
//! | `b'm'` ++ fk | the field's meta record (below) |
//! | `b'c'` ++ fk ++ u32 BE index | bytes `[index*CHUNK, (index+1)*CHUNK)` of the detector's state |
//!
//! Meta records carry a version. v2 (written since incremental persistence):
//! the bytes `0xFF 0x02`, then [`FieldMetaV2`] via [`crate::codec`]:
//! provenance (detector name, version and state version, options
//! fingerprint, `last_time`), state length, a CRC-32 per chunk and, for a
//! state of at most one chunk, the state itself (then the field has no
//! chunk key: one sled key per field, not two). v1 (no
//! prefix; bincode never starts a record with `0xFF`): [`FieldMeta`], with
//! one CRC-32 of the whole state. Both are read; a field's next commit
//! rewrites its record as v2. A CRC per chunk lets a commit of changed
//! ranges hash only the chunks it writes, while a load still verifies
//! every chunk.
//!
//! Tree `aside`: key fk ++ u64 BE nanoseconds since the epoch → [`AsideRecord`]:
//! state that was not applied (another detector, state version or options)
//! or that a user reset, kept for inspection.
//!
//! # Cost of a batch
//! A commit writes the meta record and only the chunks whose bytes changed
//! since the last commit, then flushes once. Each group's fields go into
//! one atomic sled batch; a commit of many groups is applied as several
//! sled batches of at most [`SLED_BATCH_FIELDS`] fields and
//! [`SLED_BATCH_BYTES`] new bytes, split between groups (what sled holds
//! while it applies a batch grows with the batch).
//! A field
//! comes either whole (compared chunk by chunk with its last committed
//! bytes) or as the byte ranges its detector changed since the generation
//! the store last committed ([`crate::change`]): the store patches just
//! the chunks the ranges touch (read back from sled, whose cache holds
//! them, and checked: the store keeps no copy of its own) and hashes only
//! those. A detector that keeps its
//! values in a ring (as the t-test does) changes only the chunks its new
//! values land in, so a 300-value window costs a few chunks, not the whole
//! 3600-value history, and the host never handles the whole state.
//!
//! # Locking
//! `LOCK` in the node directory is held (flock) for as long as the store is
//! open and names the holder (pid and command line); a second opener waits a
//! bounded time, then fails naming the holder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::change::{FieldUpdate, Ranges, StateChange};
use crate::layout::{self, NodeMeta};
use crate::snapshot::{FieldState, Provenance};
use crate::{StateError, codec};

/// Bytes per stored chunk of detector state.
pub const CHUNK: usize = 4096;
/// sled's page cache, in bytes: the pages (leaves of chunk values, with
/// the deltas written since each was last consolidated) kept in memory;
/// a page beyond it is read back from the log when next touched. sled's
/// default is 1 GiB, which a node with 10,000 groups filled (23 kB per
/// series on top of the detector's state); 16 MiB until round 6. 4 MiB
/// holds every page of a node with a few dozen series at `size` 3600 (the
/// 4 × 4 stream's 12 take about 1 MiB); past that, memory stops growing
/// with sled's share of the series (docs/performance.md, "Round 6: memory").
const SLED_CACHE: u64 = 4 << 20;
/// Most fields one sled batch of a commit holds; a group with more fields
/// than this gets a sled batch of its own. sled 0.34 keeps every leaf
/// version and sealed log buffer an `apply_batch` makes until that batch
/// ends, so its memory follows the updates in one sled batch, not the
/// fields stored (docs/performance.md, "Memory per series with a state
/// directory"). A commit of more fields (a group commit of thousands of
/// groups) is applied as several sled batches, split only between groups,
/// then flushed once: each group (a Kapacitor batch's fields) stays atomic.
pub const SLED_BATCH_FIELDS: usize = 100;

/// Most bytes of new state (whole states, or the ranges' bytes) one sled
/// batch of a commit holds, beside [`SLED_BATCH_FIELDS`]; a group with more
/// gets a sled batch of its own. For the same reason: what sled holds
/// while it applies a batch (superseded leaves and values, sealed log
/// buffers, all freed only once the batch ends) follows the bytes the
/// batch writes. A group commit of four printers whose states have all
/// changed (about 90 kB a printer) applied as one batch held 0.7 MiB more
/// at its peak than applied printer by printer, for the same CPU
/// (docs/performance.md, round 8).
pub const SLED_BATCH_BYTES: usize = 64 << 10;
const FIELDS_TREE: &str = "fields";
const ASIDE_TREE: &str = "aside";
const LOCK_FILE: &str = "LOCK";
const DB_DIR: &str = "db";
/// sled's log file inside [`DB_DIR`].
const SLED_LOG: &str = "db";

/// Everything about a field's state but the bytes.
///
/// Encoded as its fields in order with `provenance` inline, so the bytes are
/// those of the records written before `Provenance` was its own struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMeta {
    /// Who built the state, and up to when.
    pub provenance: Provenance,
    /// Length of the state bytes.
    pub len: u64,
    /// CRC-32 of the state bytes.
    pub crc: u32,
}

/// Everything about a field's state but the bytes, meta record v2: a CRC-32
/// per chunk instead of one of the whole state. Stored after
/// [`META_V2_PREFIX`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMetaV2 {
    /// Who built the state, and up to when.
    pub provenance: Provenance,
    /// Length of the state bytes.
    pub len: u64,
    /// CRC-32 of each [`CHUNK`]-byte chunk, in order.
    pub chunk_crcs: Vec<u32>,
    /// The state itself when it fits one chunk (then no chunk key is
    /// written: one sled key per field instead of two).
    pub inline: Option<Vec<u8>>,
}

/// What a meta record v2 starts with: `0xFF` never starts a v1 record
/// (bincode's varint length of the detector name), then the version.
pub const META_V2_PREFIX: [u8; 2] = [0xFF, 2];

/// How a stored state is checked.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    /// v1: CRC-32 of the whole state.
    Whole(u32),
    /// v2: CRC-32 per chunk.
    Chunks(Vec<u32>),
}

/// A meta record of either version.
#[derive(Debug, Clone, PartialEq)]
struct StoredMeta {
    provenance: Provenance,
    len: u64,
    check: Check,
    /// v2: the state, when kept in the record.
    inline: Option<Vec<u8>>,
}

fn decode_meta(v: &[u8]) -> Result<StoredMeta, String> {
    match v {
        [0xFF, 2, rest @ ..] => {
            let m: FieldMetaV2 = codec::decode(rest)?;
            if m.chunk_crcs.len() as u64 != m.len.div_ceil(CHUNK as u64) {
                return Err(format!(
                    "meta record holds {} chunk checksums for {} bytes",
                    m.chunk_crcs.len(),
                    m.len
                ));
            }
            if m.inline.as_ref().is_some_and(|b| b.len() as u64 != m.len || b.len() > CHUNK) {
                return Err(format!("meta record holds a state of the wrong length ({})", m.len));
            }
            Ok(StoredMeta {
                provenance: m.provenance,
                len: m.len,
                check: Check::Chunks(m.chunk_crcs),
                inline: m.inline,
            })
        }
        [0xFF, version, ..] => {
            Err(format!("meta record version {version} is newer than this build reads (2)"))
        }
        _ => {
            let m: FieldMeta = codec::decode(v)?;
            Ok(StoredMeta {
                provenance: m.provenance,
                len: m.len,
                check: Check::Whole(m.crc),
                inline: None,
            })
        }
    }
}

fn encode_meta_v2(meta: &FieldMetaV2) -> Result<Vec<u8>, String> {
    let mut bytes = META_V2_PREFIX.to_vec();
    bytes.extend_from_slice(&codec::encode(meta)?);
    Ok(bytes)
}

/// CRC-32 of each chunk of `state`.
fn chunk_crcs(state: &[u8]) -> Vec<u32> {
    state.chunks(CHUNK).map(crc32fast::hash).collect()
}

/// Whether the spans of `r` together cover `[start, end)`.
fn covers(r: &Ranges, start: usize, end: usize) -> bool {
    let mut parts: Vec<(usize, usize)> = r
        .iter()
        .map(|(off, bytes)| (off.max(start), (off + bytes.len()).min(end)))
        .filter(|(from, to)| from < to)
        .collect();
    parts.sort_unstable();
    let mut reached = start;
    for (from, to) in parts {
        if from > reached {
            return false;
        }
        reached = reached.max(to);
    }
    reached >= end
}

/// One field's change as a commit sees it (borrowed from the caller).
enum Change<'a> {
    Whole(&'a [u8], Option<u64>),
    Ranges(&'a Ranges),
}

impl Change<'_> {
    /// The new bytes it brings.
    fn bytes(&self) -> usize {
        match self {
            Change::Whole(state, _) => state.len(),
            Change::Ranges(r) => r.data.len(),
        }
    }
}

/// One field's update as a commit sees it.
struct Update<'a> {
    group: &'a str,
    field: &'a str,
    provenance: &'a Provenance,
    change: Change<'a>,
}

/// Whole-state updates of `states`.
fn whole_updates(states: &[FieldState]) -> Vec<Update<'_>> {
    states
        .iter()
        .map(|u| Update {
            group: &u.group,
            field: &u.field,
            provenance: &u.provenance,
            change: Change::Whole(&u.state, None),
        })
        .collect()
}

/// The sled batches a commit is applied as, given each update's group and
/// bytes in order: the updates' indices, each group's together (in the
/// order groups first appear, even when other groups' updates come between
/// a group's), whole groups of at most `fields` updates and `bytes` bytes
/// per batch; a group over either bound gets a batch of its own.
fn split_at_groups<'a>(
    updates: impl Iterator<Item = (&'a str, usize)>,
    fields: usize,
    bytes: usize,
) -> Vec<Vec<usize>> {
    let mut by_group: Vec<(Vec<usize>, usize)> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for (i, (g, n)) in updates.enumerate() {
        match slot.get(g) {
            Some(&s) => {
                by_group[s].0.push(i);
                by_group[s].1 = by_group[s].1.saturating_add(n);
            }
            None => {
                slot.insert(g, by_group.len());
                by_group.push((vec![i], n));
            }
        }
    }
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let (mut part, mut part_bytes): (Vec<usize>, usize) = (Vec::new(), 0);
    for (g, n) in by_group {
        if !part.is_empty()
            && (part.len() + g.len() > fields || part_bytes.saturating_add(n) > bytes)
        {
            parts.push(std::mem::take(&mut part));
            part_bytes = 0;
        }
        part.extend(g);
        part_bytes = part_bytes.saturating_add(n);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// State kept aside: not applied, or reset by a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsideRecord {
    /// The state as it was.
    pub state: FieldState,
    /// Why it was set aside.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How long to wait for another process to release the node.
    pub wait: Duration,
    /// `None`: every commit is flushed before it returns (the default).
    /// `Some(ms)`: commits are flushed by sled in the background at most
    /// `ms` later (group commit: faster, and a crash may lose up to `ms`).
    pub group_commit_ms: Option<u64>,
}

/// What a store's commits wrote since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitCounts {
    /// Field states committed whole.
    pub whole: u64,
    /// Field states committed as changed ranges.
    pub ranges: u64,
    /// Chunks written.
    pub chunks: u64,
    /// sled batches applied (a commit of more fields or bytes than the
    /// store's bounds is applied as several, see [`SLED_BATCH_FIELDS`] and
    /// [`SLED_BATCH_BYTES`]).
    pub sled_batches: u64,
}

/// What a store knows of its commits.
#[derive(Debug, Default)]
struct Commits {
    /// What commits wrote so far.
    counts: CommitCounts,
    /// The generation of each field's last commit, for fields committed
    /// (by this process) with one: changes must build on it.
    generations: HashMap<Vec<u8>, u64>,
}

/// One node's open state database.
pub struct StateStore {
    dir: PathBuf,
    db: sled::Db,
    fields: sled::Tree,
    aside: sled::Tree,
    group_commit: bool,
    /// Generations and counts of the commits so far (boxed: a store is
    /// held in enums beside small variants).
    commits: Box<Commits>,
    /// Most fields per sled batch of a commit ([`SLED_BATCH_FIELDS`]).
    batch_fields: usize,
    /// sled's log file, for `fdatasync` after each flush.
    log: File,
    _lock: File,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("dir", &self.dir).finish()
    }
}

/// Encodes a (group, field) key.
pub fn field_key(group: &str, field: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + group.len() + field.len());
    k.extend_from_slice(&(group.len() as u32).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(field.as_bytes());
    k
}

/// Decodes a (group, field) key.
pub fn parse_field_key(k: &[u8]) -> Option<(String, String)> {
    let len = u32::from_be_bytes(k.get(..4)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(k.get(4..4 + len)?).ok()?;
    let field = std::str::from_utf8(k.get(4 + len..)?).ok()?;
    Some((group.to_string(), field.to_string()))
}

fn prefixed(tag: u8, fk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + fk.len() + 4);
    k.push(tag);
    k.extend_from_slice(fk);
    k
}

fn chunk_key(fk: &[u8], index: u32) -> Vec<u8> {
    let mut k = prefixed(b'c', fk);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_path_buf(), source }
}

/// Takes the node's lock, waiting up to `wait`; writes our pid into it.
fn lock(dir: &Path, wait: Duration) -> Result<File, StateError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    let start = Instant::now();
    loop {
        if file.try_lock_exclusive().is_ok() {
            break;
        }
        if start.elapsed() >= wait {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StateError::Locked {
                path: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "another process".into()
                } else {
                    holder.to_string()
                },
                waited_ms: start.elapsed().as_millis(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let me =
        format!("pid {} ({})", std::process::id(), std::env::args().collect::<Vec<_>>().join(" "));
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    file.write_all(me.as_bytes()).map_err(io(&path))?;
    // No fsync: the name is only read by a second opener while we hold the
    // lock, from the page cache; after a crash the flock is gone and a stale
    // or empty name is harmless. An fsync here cost every start an inode and
    // journal write (≈ 1–2 ms of wall time on this machine).
    Ok(file)
}

fn write_err(dir: &Path, reason: impl std::fmt::Display) -> StateError {
    StateError::Write { path: dir.to_path_buf(), reason: reason.to_string() }
}

/// How long [`open_sled`] waits for sled's own lock on its log.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled's database, waiting up to [`SLED_LOCK_WAIT`] while its log is
/// still locked. The caller holds the node directory's `LOCK`, so no
/// other store has the database: a locked log is one this process just
/// closed, whose last sled IO thread (holding the file, and with it sled's
/// lock) has not yet finished. A node reopened right after it was closed
/// (a task restarted on the socket, a test reopening its store) would
/// otherwise be refused as unreadable.
fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let start = std::time::Instant::now();
    loop {
        match config.open() {
            // sled 0.34 reports the lock as `Other` with this message.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && start.elapsed() < SLED_LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

fn corrupt(dir: &Path, reason: impl std::fmt::Display) -> StateError {
    StateError::Corrupt { path: dir.to_path_buf(), reason: reason.to_string() }
}

/// Runs a sled call, turning a panic into [`StateError::Corrupt`].
///
/// sled 0.34 panics (index out of bounds, failed deserialization) on some
/// damaged files instead of returning an error. A panic must not reach the
/// session: it would end a node without an answer to Kapacitor.
fn guarded<T>(
    dir: &Path,
    what: &str,
    f: impl FnOnce() -> Result<T, StateError>,
) -> Result<T, StateError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(corrupt(dir, format!("the database failed while {what}: {msg}")))
        }
    }
}

impl StateStore {
    /// Opens (creating if needed) the store of (task, node) under `state_dir`.
    pub fn open(state_dir: &Path, meta: &NodeMeta, opts: StoreOptions) -> Result<Self, StateError> {
        let dir = layout::node_dir(state_dir, &meta.task, &meta.node);
        let existed = dir.join(DB_DIR).exists();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock = lock(&dir, opts.wait)?;
        let unchanged = if existed {
            let old = layout::read_meta(&dir)?;
            if old.task != meta.task || old.node != meta.node {
                return Err(corrupt(
                    &dir,
                    format!("it belongs to task {:?} node {:?}", old.task, old.node),
                ));
            }
            old == *meta
        } else {
            false
        };
        // A restart with the same detector, options and fields (the usual
        // case) leaves `meta.json` as it is: no new file and rename per start.
        if !unchanged {
            layout::write_meta(&dir, meta)?;
        }
        Self::open_db(dir, lock, opts)
    }

    /// Opens an existing node directory (for inspection and reset).
    pub fn open_dir(dir: &Path, opts: StoreOptions) -> Result<Self, StateError> {
        if !dir.join(DB_DIR).exists() {
            return Err(corrupt(dir, "no database in it"));
        }
        let lock = lock(dir, opts.wait)?;
        Self::open_db(dir.to_path_buf(), lock, opts)
    }

    fn open_db(dir: PathBuf, lock: File, opts: StoreOptions) -> Result<Self, StateError> {
        let (db, fields, aside) = guarded(&dir, "opening", || {
            let config = sled::Config::new()
                .path(dir.join(DB_DIR))
                .flush_every_ms(opts.group_commit_ms)
                .cache_capacity(SLED_CACHE);
            let db = open_sled(&config)
                .map_err(|e| corrupt(&dir, format!("sled cannot open it: {e}")))?;
            let fields = db.open_tree(FIELDS_TREE).map_err(|e| corrupt(&dir, e))?;
            let aside = db.open_tree(ASIDE_TREE).map_err(|e| corrupt(&dir, e))?;
            Ok((db, fields, aside))
        })?;
        // sled 0.34 keeps its whole log in the one file `db` of its directory.
        let log_path = dir.join(DB_DIR).join(SLED_LOG);
        let log = File::open(&log_path).map_err(io(&log_path))?;
        Ok(Self {
            dir,
            db,
            fields,
            aside,
            group_commit: opts.group_commit_ms.is_some(),
            commits: Box::default(),
            batch_fields: SLED_BATCH_FIELDS,
            log,
            _lock: lock,
        })
    }

    /// Sets the most fields one sled batch of a commit holds (at least
    /// one; [`SLED_BATCH_FIELDS`] by default). Tests use a tiny bound to
    /// split small commits.
    pub fn set_batch_fields(&mut self, fields: usize) {
        self.batch_fields = fields.max(1);
    }

    /// What commits wrote since the store was opened.
    pub fn counts(&self) -> CommitCounts {
        self.commits.counts
    }

    /// The node directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A read-only view sharing this store's database (for a query thread).
    pub fn reader(&self) -> StoreReader {
        StoreReader {
            dir: self.dir.clone(),
            fields: self.fields.clone(),
            aside: self.aside.clone(),
        }
    }

    /// Every stored field state, checksums verified.
    pub fn load(&mut self) -> Result<Vec<FieldState>, StateError> {
        self.reader().fields()
    }

    /// The bytes last committed for `fk`, read back from the database
    /// (checked). The store keeps no copy of its own: sled's cache holds
    /// the committed chunks anyway, and a copy cost one more state's bytes
    /// per series (docs/performance.md, "Round 6: memory"). Unreadable
    /// bytes count as none: every chunk is then rewritten.
    fn previous(&self, fk: &[u8]) -> Vec<u8> {
        self.reader().field_bytes(fk).ok().flatten().unwrap_or_default()
    }

    /// Commits new whole states (flushed once unless group commit; each
    /// group's fields atomically, see [`StateStore::commit_changes`]).
    pub fn commit(&mut self, updates: &[FieldState]) -> Result<(), StateError> {
        self.commit_updates(&whole_updates(updates))
    }

    /// Commits new states, whole or as changed ranges, flushed once unless
    /// group commit. The fields of one group are applied in one atomic
    /// sled batch; a commit of more fields or bytes than the store's
    /// bounds ([`SLED_BATCH_FIELDS`], [`SLED_BATCH_BYTES`]) is applied as
    /// several, split only between groups, so a crash before the flush can
    /// keep the first groups of a commit and not the rest (never part of a
    /// group). Ranges must build
    /// on the generation this store last committed for their field;
    /// otherwise nothing is written and the error is
    /// [`StateError::MissedCommit`]. A failure after part of the commit
    /// was applied is reported as the commit's: every field of it then
    /// commits a whole state next.
    pub fn commit_changes(&mut self, updates: &[FieldUpdate]) -> Result<(), StateError> {
        self.stage_changes(updates)?;
        self.finish_commit()
    }

    /// The first half of [`StateStore::commit_changes`]: applies `updates`
    /// (each group's fields in one atomic sled batch, the same bounds)
    /// without flushing. A commit may stage its groups in several calls,
    /// so that it holds one part's changes at a time, then calls
    /// [`StateStore::finish_commit`] once. An error is as
    /// `commit_changes`'s; [`StateError::MissedCommit`] means this call
    /// wrote nothing (earlier calls' groups stand).
    pub fn stage_changes(&mut self, updates: &[FieldUpdate]) -> Result<(), StateError> {
        let updates: Vec<Update<'_>> = updates
            .iter()
            .map(|u| Update {
                group: &u.group,
                field: &u.field,
                provenance: &u.provenance,
                change: match &u.change {
                    StateChange::Whole { state, generation } => Change::Whole(state, *generation),
                    StateChange::Ranges(r) => Change::Ranges(r),
                },
            })
            .collect();
        self.stage_updates(&updates)
    }

    /// Flushes what [`StateStore::stage_changes`] applied (unless group
    /// commit, see `StoreOptions`): once this returns, the commit survives
    /// a crash. On an error no generation is trusted any more: every field
    /// commits a whole state next.
    pub fn finish_commit(&mut self) -> Result<(), StateError> {
        let dir = self.dir.clone();
        let r = guarded(&dir, "committing", || self.flush());
        sled::pin().flush();
        if r.is_err() {
            self.commits.generations.clear();
        }
        r
    }

    fn commit_updates(&mut self, updates: &[Update<'_>]) -> Result<(), StateError> {
        self.stage_updates(updates)?;
        self.finish_commit()
    }

    fn stage_updates(&mut self, updates: &[Update<'_>]) -> Result<(), StateError> {
        if updates.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let r = guarded(&dir, "committing", || self.commit_inner(updates));
        if r.is_err() {
            // Forget the generations of what this commit touched, so that
            // only whole states build on it.
            for u in updates {
                self.commits.generations.remove(&field_key(u.group, u.field));
            }
        }
        r
    }

    fn commit_inner(&mut self, updates: &[Update<'_>]) -> Result<(), StateError> {
        // Checked before anything is written: changes that do not build on
        // what the store holds leave the database as it was.
        for u in updates {
            if let Change::Ranges(r) = u.change {
                self.check_ranges(u, r)?;
            }
        }
        let mut chunks = 0;
        let parts = split_at_groups(
            updates.iter().map(|u| (u.group, u.change.bytes())),
            self.batch_fields,
            SLED_BATCH_BYTES,
        );
        for part in &parts {
            let mut batch = sled::Batch::default();
            for &i in part {
                let u = &updates[i];
                let fk = field_key(u.group, u.field);
                let (len, (chunk_crcs, inline)) = match u.change {
                    Change::Whole(state, _) => {
                        (state.len() as u64, self.stage_whole(&mut batch, &mut chunks, &fk, state)?)
                    }
                    Change::Ranges(r) => {
                        (r.len, self.stage_ranges(&mut batch, &mut chunks, &fk, u, r)?)
                    }
                };
                let meta =
                    FieldMetaV2 { provenance: u.provenance.clone(), len, chunk_crcs, inline };
                let meta_bytes = encode_meta_v2(&meta).map_err(|e| corrupt(&self.dir, e))?;
                batch.insert(prefixed(b'm', &fk), meta_bytes);
            }
            self.fields.apply_batch(batch).map_err(|e| write_err(&self.dir, e))?;
            // What the batch superseded goes to the epoch collector now,
            // not after the commit's last batch.
            sled::pin().flush();
        }
        self.commits.counts.chunks += chunks;
        self.commits.counts.sled_batches += parts.len() as u64;
        for u in updates {
            let fk = field_key(u.group, u.field);
            let generation = match u.change {
                Change::Whole(_, generation) => {
                    self.commits.counts.whole += 1;
                    generation
                }
                Change::Ranges(r) => {
                    self.commits.counts.ranges += 1;
                    Some(r.generation)
                }
            };
            match generation {
                Some(g) => self.commits.generations.insert(fk, g),
                None => self.commits.generations.remove(&fk),
            };
        }
        Ok(())
    }

    /// Stages a whole state: the chunks that differ from the last committed
    /// bytes, the removal of chunks a shorter state no longer uses; a state
    /// of one chunk or less goes into the meta record instead (returned)
    /// and its field keeps no chunk. Returns the chunks' CRCs too.
    fn stage_whole(
        &self,
        batch: &mut sled::Batch,
        chunks: &mut u64,
        fk: &[u8],
        state: &[u8],
    ) -> Result<(Vec<u32>, Option<Vec<u8>>), StateError> {
        let prev = self.previous(fk);
        // Chunk keys the field has now: none for a state kept in a v2
        // record (its length says so), chunk 0 for a one-chunk v1 record.
        let old_chunks = match prev.len() {
            0 => 0,
            n if n > CHUNK => n.div_ceil(CHUNK),
            _ => match self.fields.get(prefixed(b'm', fk)).map_err(|e| corrupt(&self.dir, e))? {
                Some(m) if m.first() != Some(&0xFF) => 1,
                _ => 0,
            },
        };
        if state.len() <= CHUNK {
            for i in 0..old_chunks {
                batch.remove(chunk_key(fk, i as u32));
            }
            return Ok((chunk_crcs(state), Some(state.to_vec())));
        }
        let new_chunks = state.len().div_ceil(CHUNK);
        for i in 0..new_chunks {
            let new = &state[i * CHUNK..((i + 1) * CHUNK).min(state.len())];
            let old = (i < old_chunks)
                .then(|| prev.get(i * CHUNK..((i + 1) * CHUNK).min(prev.len())))
                .flatten();
            if old != Some(new) {
                batch.insert(chunk_key(fk, i as u32), new);
                *chunks += 1;
            }
        }
        for i in new_chunks..old_chunks {
            batch.remove(chunk_key(fk, i as u32));
        }
        Ok((chunk_crcs(state), None))
    }

    /// Whether `r` can be committed: it builds on the generation the store
    /// last committed for its field, and its spans add up.
    fn check_ranges(&self, u: &Update<'_>, r: &Ranges) -> Result<(), StateError> {
        let held = self.commits.generations.get(&field_key(u.group, u.field)).copied();
        if held != Some(r.base) {
            return Err(StateError::MissedCommit {
                field: u.field.to_string(),
                group: u.group.to_string(),
                base: r.base,
                held: held.map_or_else(|| "none".to_string(), |g| g.to_string()),
            });
        }
        if !r.is_consistent() {
            return Err(write_err(
                &self.dir,
                format!("changes of field {} group {:?} do not add up", u.field, u.group),
            ));
        }
        Ok(())
    }

    /// Stages changed ranges (checked by [`StateStore::check_ranges`]): patches the chunks they touch (from the cache
    /// of committed bytes, or read back and checked), removes chunks past
    /// the new length. Returns every chunk's CRC (the untouched ones from
    /// the meta record; a v1 record's are computed once from the state).
    fn stage_ranges(
        &mut self,
        batch: &mut sled::Batch,
        chunks: &mut u64,
        fk: &[u8],
        u: &Update<'_>,
        r: &Ranges,
    ) -> Result<(Vec<u32>, Option<Vec<u8>>), StateError> {
        let what =
            |e: String| corrupt(&self.dir, format!("field {} group {:?}: {e}", u.field, u.group));
        let meta = self
            .fields
            .get(prefixed(b'm', fk))
            .map_err(|e| corrupt(&self.dir, e))?
            .ok_or_else(|| what("changes for a field with no stored state".into()))?;
        let meta = decode_meta(&meta).map_err(what)?;
        let old_len = meta.len as usize;
        if old_len <= CHUNK || r.len as usize <= CHUNK {
            // A state of one chunk or less (kept in its record), before or
            // after: the whole of it is a few kB at most.
            let mut state = self.reader().field_bytes(fk)?.unwrap_or_default();
            r.apply(&mut state);
            return self.stage_whole(batch, chunks, fk, &state);
        }
        let mut crcs = match meta.check {
            Check::Chunks(c) => c,
            // A v1 record: the per-chunk CRCs of the state it checks.
            Check::Whole(_) => chunk_crcs(&self.reader().field_bytes(fk)?.unwrap_or_default()),
        };
        let new_len = r.len as usize;
        let new_chunks = new_len.div_ceil(CHUNK);
        let old_chunks = old_len.div_ceil(CHUNK);
        // The chunks the ranges reach, and those whose length changes.
        let mut touched: Vec<usize> = Vec::new();
        for (off, bytes) in r.iter() {
            if !bytes.is_empty() {
                touched.extend(off / CHUNK..=(off + bytes.len() - 1) / CHUNK);
            }
        }
        if new_len != old_len {
            touched.extend(old_len.min(new_len) / CHUNK..new_chunks);
        }
        touched.retain(|&i| i < new_chunks);
        touched.sort_unstable();
        touched.dedup();
        crcs.resize(new_chunks, 0);
        // Each one patched from its last committed bytes (read back from
        // the database, checked: sled's cache shares them, no copy) and
        // written only if it changed: a ring slot can take the value it
        // held, a run of anomalous windows can end where it began between
        // two commits.
        for &i in &touched {
            let start = i * CHUNK;
            let end = ((i + 1) * CHUNK).min(new_len);
            // A chunk the ranges cover whole takes none of its old bytes:
            // they are read only to see whether it changed, so they need
            // no check (bytes that fail it differ, or are rewritten below).
            let covered = covers(r, start, end);
            let old: Option<sled::IVec> = if i >= old_chunks {
                None
            } else {
                let old = self
                    .fields
                    .get(chunk_key(fk, i as u32))
                    .map_err(|e| corrupt(&self.dir, e))?
                    .ok_or_else(|| what(format!("chunk {i} missing")))?;
                if !covered && Some(crc32fast::hash(&old)) != crcs.get(i).copied() {
                    return Err(what(format!("state bytes fail their checksum (chunk {i})")));
                }
                Some(old)
            };
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.extend_from_slice(old.as_deref().unwrap_or_default());
            chunk.resize(end - start, 0);
            for (off, bytes) in r.iter() {
                let (from, to) = (off.max(start), (off + bytes.len()).min(end));
                if from < to {
                    chunk[from - start..to - start].copy_from_slice(&bytes[from - off..to - off]);
                }
            }
            if old.as_deref() == Some(chunk.as_slice()) {
                if covered {
                    // Unchecked bytes that equal the new ones are the new
                    // ones: their CRC is the new bytes'.
                    crcs[i] = crc32fast::hash(&chunk);
                }
                continue; // otherwise its CRC stands
            }
            crcs[i] = crc32fast::hash(&chunk);
            batch.insert(chunk_key(fk, i as u32), chunk);
            *chunks += 1;
        }
        for i in new_chunks..old_chunks {
            batch.remove(chunk_key(fk, i as u32));
        }
        Ok((crcs, None))
    }

    /// With group commit, flushes what sled's background flusher has not
    /// yet written (and `fdatasync`s it): the end of a session's input,
    /// where a failure, which that flusher only logs, can still be
    /// reported. Durable commits are flushed already: nothing to do.
    pub fn flush_pending(&mut self) -> Result<(), StateError> {
        if !self.group_commit {
            return Ok(());
        }
        let dir = self.dir.clone();
        guarded(&dir, "flushing", || self.flush_to_disk())
    }

    /// Commits are flushed here unless group commit leaves them to sled's
    /// background flusher.
    fn flush(&self) -> Result<(), StateError> {
        if self.group_commit { Ok(()) } else { self.flush_to_disk() }
    }

    fn flush_to_disk(&self) -> Result<(), StateError> {
        self.db.flush().map_err(|e| write_err(&self.dir, format!("flush failed: {e}")))?;
        // sled's flush writes the log with sync_file_range, which neither
        // persists the file's size and block map nor flushes the drive's
        // cache: a crash of the process loses nothing, a power loss could.
        // fdatasync makes the commit survive a power loss too.
        self.log.sync_data().map_err(|e| write_err(&self.dir, format!("fdatasync failed: {e}")))
    }

    /// Removes one field's state.
    fn remove_batch(&self, fk: &[u8]) -> Result<sled::Batch, StateError> {
        let mut batch = sled::Batch::default();
        batch.remove(prefixed(b'm', fk));
        for item in self.fields.scan_prefix(prefixed(b'c', fk)) {
            let (k, _) = item.map_err(|e| corrupt(&self.dir, e))?;
            // Only this field's chunks: the key must be exactly prefix + 4 bytes.
            if k.len() == 1 + fk.len() + 4 {
                batch.remove(k);
            }
        }
        Ok(batch)
    }

    /// Copies `state` into the `aside` tree with a reason (the field's
    /// current record, if any, is untouched).
    pub fn keep_aside(&mut self, state: &FieldState, reason: &str) -> Result<(), StateError> {
        let dir = self.dir.clone();
        guarded(&dir, "setting state aside", || self.keep_aside_inner(state, reason))
    }

    fn keep_aside_inner(&mut self, state: &FieldState, reason: &str) -> Result<(), StateError> {
        let mut key = field_key(&state.group, &state.field);
        let nanos =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        key.extend_from_slice(&nanos.to_be_bytes());
        let record =
            AsideRecord { state: state.clone(), reason: reason.to_string(), at_ms: now_ms() };
        let bytes = codec::encode(&record).map_err(|e| corrupt(&self.dir, e))?;
        self.aside.insert(key, bytes).map_err(|e| write_err(&self.dir, e))?;
        self.flush()
    }

    /// Moves a field's stored state into the `aside` tree with a reason; the
    /// field then has no state.
    pub fn put_aside(&mut self, state: &FieldState, reason: &str) -> Result<(), StateError> {
        let dir = self.dir.clone();
        guarded(&dir, "setting state aside", || self.put_aside_inner(state, reason))
    }

    /// Brings the record stored under `key` in the `aside` tree back as its
    /// field's state (`tickwatch state adopt`). The field's current state,
    /// if any, is first copied aside with `replaced_reason`; the record
    /// leaves the `aside` tree last, so a crash in between leaves a copy
    /// behind rather than losing one.
    pub fn adopt_aside(
        &mut self,
        key: &[u8],
        record: &AsideRecord,
        current: Option<&FieldState>,
        replaced_reason: &str,
    ) -> Result<(), StateError> {
        let dir = self.dir.clone();
        guarded(&dir, "adopting state set aside", || {
            if let Some(cur) = current {
                self.keep_aside_inner(cur, replaced_reason)?;
            }
            self.commit_inner(&whole_updates(std::slice::from_ref(&record.state)))?;
            self.aside.remove(key).map_err(|e| write_err(&self.dir, e))?;
            self.flush()
        })
    }

    fn put_aside_inner(&mut self, state: &FieldState, reason: &str) -> Result<(), StateError> {
        self.keep_aside_inner(state, reason)?;
        let fk = field_key(&state.group, &state.field);
        let batch = self.remove_batch(&fk)?;
        self.fields.apply_batch(batch).map_err(|e| write_err(&self.dir, e))?;
        self.commits.generations.remove(&fk);
        self.flush()
    }
}

/// Moves a whole node directory (even one whose database is corrupt) to
/// `<state-dir>/aside/<name>.<unix seconds>`, nothing deleted. Fails if a
/// process holds the node.
pub fn move_aside(state_dir: &Path, dir: &Path) -> Result<PathBuf, StateError> {
    let lock = lock(dir, Duration::ZERO)?;
    let aside = state_dir.join("aside");
    std::fs::create_dir_all(&aside).map_err(io(&aside))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut target = aside.join(format!("{name}.{secs}"));
    let mut n = 1;
    while target.exists() {
        target = aside.join(format!("{name}.{secs}.{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target).map_err(io(dir))?;
    drop(lock);
    Ok(target)
}

/// Read access to a store, shareable with another thread of the process
/// that holds it.
#[derive(Clone)]
pub struct StoreReader {
    dir: PathBuf,
    fields: sled::Tree,
    aside: sled::Tree,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader").field("dir", &self.dir).finish()
    }
}

/// Reads that fail a checksum are retried this many times: a reader in
/// another thread (the control socket) can see a field's meta record and
/// chunks from two different commits. Damage on disk fails every time.
const TORN_READ_RETRIES: u32 = 20;

impl StoreReader {
    /// Every stored field, checksums verified.
    pub fn fields(&self) -> Result<Vec<FieldState>, StateError> {
        let mut attempt = 0;
        loop {
            match self.fields_once() {
                Err(StateError::Corrupt { .. }) if attempt < TORN_READ_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    fn fields_once(&self) -> Result<Vec<FieldState>, StateError> {
        guarded(&self.dir, "reading", || self.fields_unguarded())
    }

    fn fields_unguarded(&self) -> Result<Vec<FieldState>, StateError> {
        let mut out = Vec::new();
        for item in self.fields.scan_prefix([b'm']) {
            let (k, v) = item.map_err(|e| corrupt(&self.dir, e))?;
            let fk = &k[1..];
            let (group, field) =
                parse_field_key(fk).ok_or_else(|| corrupt(&self.dir, "malformed field key"))?;
            let meta = decode_meta(&v)
                .map_err(|e| corrupt(&self.dir, format!("field {field} group {group:?}: {e}")))?;
            let state = self.chunks(fk, &meta, &field, &group)?;
            out.push(FieldState { group, field, provenance: meta.provenance, state });
        }
        Ok(out)
    }

    /// One field's whole stored state, checksum verified (retried as
    /// [`StoreReader::fields`] is); `None` if it has none. A stream node
    /// reads back a group it evicted from memory this way.
    pub fn field(&self, group: &str, field: &str) -> Result<Option<FieldState>, StateError> {
        let fk = field_key(group, field);
        let mut attempt = 0;
        loop {
            let once = guarded(&self.dir, "reading", || {
                let Some(v) =
                    self.fields.get(prefixed(b'm', &fk)).map_err(|e| corrupt(&self.dir, e))?
                else {
                    return Ok(None);
                };
                let meta = decode_meta(&v).map_err(|e| {
                    corrupt(&self.dir, format!("field {field} group {group:?}: {e}"))
                })?;
                let state = self.chunks(&fk, &meta, field, group)?;
                Ok(Some(FieldState {
                    group: group.to_string(),
                    field: field.to_string(),
                    provenance: meta.provenance,
                    state,
                }))
            });
            match once {
                Err(StateError::Corrupt { .. }) if attempt < TORN_READ_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    /// One field's state bytes, checksum verified; `None` if it has none.
    fn field_bytes(&self, fk: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let Some(v) = self.fields.get(prefixed(b'm', fk)).map_err(|e| corrupt(&self.dir, e))?
        else {
            return Ok(None);
        };
        let (group, field) =
            parse_field_key(fk).ok_or_else(|| corrupt(&self.dir, "malformed field key"))?;
        let meta = decode_meta(&v)
            .map_err(|e| corrupt(&self.dir, format!("field {field} group {group:?}: {e}")))?;
        self.chunks(fk, &meta, &field, &group).map(Some)
    }

    /// The state bytes `meta` describes, read from their chunks and checked.
    fn chunks(
        &self,
        fk: &[u8],
        meta: &StoredMeta,
        field: &str,
        group: &str,
    ) -> Result<Vec<u8>, StateError> {
        let fail = |what: String| {
            corrupt(
                &self.dir,
                format!("field {field} group {group:?}: state bytes fail their checksum{what}"),
            )
        };
        if let Some(state) = &meta.inline {
            let Check::Chunks(crcs) = &meta.check else { return Err(fail(String::new())) };
            if crcs.first().copied().unwrap_or(0) != crc32fast::hash(state) && !state.is_empty() {
                return Err(fail(String::new()));
            }
            return Ok(state.clone());
        }
        let mut state = Vec::with_capacity(meta.len.min(1 << 30) as usize);
        let chunks = (meta.len as usize).div_ceil(CHUNK);
        for i in 0..chunks {
            let chunk = self
                .fields
                .get(chunk_key(fk, i as u32))
                .map_err(|e| corrupt(&self.dir, e))?
                .ok_or_else(|| {
                    corrupt(&self.dir, format!("field {field} group {group:?}: chunk {i} missing"))
                })?;
            if let Check::Chunks(crcs) = &meta.check {
                let expected = CHUNK.min(meta.len as usize - i * CHUNK);
                if chunk.len() != expected || crcs.get(i) != Some(&crc32fast::hash(&chunk)) {
                    return Err(fail(format!(" (chunk {i})")));
                }
            }
            state.extend_from_slice(&chunk);
        }
        if state.len() as u64 != meta.len {
            return Err(fail(String::new()));
        }
        if let Check::Whole(crc) = meta.check
            && crc32fast::hash(&state) != crc
        {
            return Err(fail(String::new()));
        }
        Ok(state)
    }

    /// Every record set aside, oldest first per field.
    pub fn aside(&self) -> Result<Vec<AsideRecord>, StateError> {
        guarded(&self.dir, "reading", || self.aside_unguarded())
    }

    fn aside_unguarded(&self) -> Result<Vec<AsideRecord>, StateError> {
        Ok(self.aside_keyed_unguarded()?.into_iter().map(|(_, r)| r).collect())
    }

    /// Every record set aside with its key (for
    /// [`StateStore::adopt_aside`]), oldest first per field.
    pub fn aside_keyed(&self) -> Result<Vec<(Vec<u8>, AsideRecord)>, StateError> {
        guarded(&self.dir, "reading", || self.aside_keyed_unguarded())
    }

    fn aside_keyed_unguarded(&self) -> Result<Vec<(Vec<u8>, AsideRecord)>, StateError> {
        let mut out = Vec::new();
        for item in self.aside.iter() {
            let (k, v) = item.map_err(|e| corrupt(&self.dir, e))?;
            out.push((k.to_vec(), codec::decode(&v).map_err(|e| corrupt(&self.dir, e))?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(group: &str, field: &str, t: i64, state: Vec<u8>) -> FieldState {
        FieldState {
            group: group.into(),
            field: field.into(),
            provenance: Provenance {
                detector: "ttest".into(),
                detector_version: "0.1.0".into(),
                state_version: 1,
                options: "alpha=0.001,size=3600".into(),
                last_time: t,
            },
            state,
        }
    }

    fn meta() -> NodeMeta {
        NodeMeta::new("t", "n", "ttest")
    }

    fn opts() -> StoreOptions {
        StoreOptions { wait: Duration::from_millis(200), group_commit_ms: None }
    }

    /// sled's own lock on its log, still held for a moment after a store
    /// closed (by its last IO thread), delays a reopen instead of failing
    /// it; held for good, the open fails after the wait, naming the lock.
    #[test]
    fn a_reopen_waits_for_sleds_lock_on_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let node_dir;
        {
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            s.commit(&[fs("", "hotend", 1, vec![7; 9000])]).unwrap();
            node_dir = s.dir().to_path_buf();
        }
        let log = node_dir.join(DB_DIR).join(SLED_LOG);
        let held = File::open(&log).unwrap();
        // Blocks while sled's last IO thread still has it.
        held.lock_exclusive().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            drop(held);
        });
        let start = std::time::Instant::now();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100), "it waited for the lock");
        assert_eq!(s.load().unwrap(), vec![fs("", "hotend", 1, vec![7; 9000])]);
        release.join().unwrap();
        drop(s);
        let held = File::open(&log).unwrap();
        held.lock_exclusive().unwrap();
        let start = std::time::Instant::now();
        let e = StateStore::open(dir.path(), &meta(), opts()).unwrap_err().to_string();
        assert!(e.contains("could not acquire lock"), "{e}");
        assert!(start.elapsed() >= SLED_LOCK_WAIT, "it gave up after the wait");
    }

    #[test]
    fn commits_survive_reopen_and_only_changed_chunks_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            assert!(s.load().unwrap().is_empty());
            s.commit(&[fs("", "hotend", 1, big.clone()), fs("p=a", "bed", 2, vec![1, 2, 3])])
                .unwrap();
            let chunks_before = s.fields.scan_prefix([b'c']).count();
            // The 3-byte state lives in its meta record.
            assert_eq!(chunks_before, 30_000usize.div_ceil(CHUNK));
            let mut changed = big.clone();
            changed[5000] ^= 1;
            // Record which chunk values change by watching sled's key space.
            let before: Vec<_> = s.fields.scan_prefix([b'c']).map(|r| r.unwrap()).collect();
            s.commit(&[fs("", "hotend", 3, changed.clone())]).unwrap();
            let after: Vec<_> = s.fields.scan_prefix([b'c']).map(|r| r.unwrap()).collect();
            let differing = before.iter().zip(&after).filter(|(a, b)| a.1 != b.1).count();
            assert_eq!(differing, 1, "only the chunk holding byte 5000 is rewritten");
            // Shrinking removes trailing chunks.
            s.commit(&[fs("", "hotend", 4, vec![9; 10])]).unwrap();
        }
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let all = s.load().unwrap();
        assert_eq!(all, vec![fs("", "hotend", 4, vec![9; 10]), fs("p=a", "bed", 2, vec![1, 2, 3])]);
        assert_eq!(s.fields.scan_prefix([b'c']).count(), 0, "small states live in their records");
    }

    /// Commits that fill many of sled's log segments (whose buffers sled
    /// reuses, vendor/README.md) read back exactly, in the same process and
    /// after a reopen, while a second store writes its own log alongside.
    #[test]
    fn commits_over_many_log_segments_read_back_exactly() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let mut rng = crate::xorshift(0x5e9_5e95);
        let mut state = |n: usize| (0..n).map(|_| rng(256) as u8).collect::<Vec<u8>>();
        let fields = ["hotend", "bed", "air", "fan"];
        let mut last: Vec<Vec<FieldState>> = vec![Vec::new(); dirs.len()];
        {
            let mut stores: Vec<StateStore> =
                dirs.iter().map(|d| StateStore::open(d.path(), &meta(), opts()).unwrap()).collect();
            // 4 fields x 60 KiB of fresh bytes per commit, 30 commits per
            // store: about 7 MiB of log each, a dozen 512 KiB segments.
            for t in 1..=30 {
                for (s, last) in stores.iter_mut().zip(&mut last) {
                    let states: Vec<FieldState> = fields
                        .iter()
                        .map(|f| fs("", f, t, state(60 * 1024 + t as usize)))
                        .collect();
                    s.commit(&states).unwrap();
                    *last = states;
                }
                if t % 10 == 0 {
                    for (s, want) in stores.iter_mut().zip(&last) {
                        let mut got = s.load().unwrap();
                        got.sort_by(|a, b| a.field.cmp(&b.field));
                        let mut want = want.clone();
                        want.sort_by(|a, b| a.field.cmp(&b.field));
                        assert_eq!(got, want, "after commit {t}");
                    }
                }
            }
        }
        for (d, want) in dirs.iter().zip(&last) {
            let mut s = StateStore::open(d.path(), &meta(), opts()).unwrap();
            let mut got = s.load().unwrap();
            got.sort_by(|a, b| a.field.cmp(&b.field));
            let mut want = want.clone();
            want.sort_by(|a, b| a.field.cmp(&b.field));
            assert_eq!(got, want, "after reopen");
        }
    }

    /// Small commits of odd sizes fill each log segment a few kilobytes at
    /// a time, and every write of the log gives back the pages of the
    /// segment buffer it has written (vendored sled, change 7). Durable
    /// commits write the log themselves; with group commit, sled's flusher
    /// thread writes it every millisecond while commits keep filling the
    /// same buffer beside it. Each of three openings commits on top of the
    /// last, so the second and third resume a segment that recovery left
    /// part-filled (its buffer starts mid-segment). Every state must read
    /// back exactly, during a run and after each reopen: a page given back
    /// too soon reads as zeros in the log and fails its CRC.
    #[test]
    fn small_commits_read_back_exactly_while_written_pages_are_given_back() {
        for group_commit_ms in [None, Some(1)] {
            let dir = tempfile::tempdir().unwrap();
            let opts = StoreOptions { group_commit_ms, ..opts() };
            let mut rng = crate::xorshift(0xd0_0e5 + group_commit_ms.unwrap_or(0));
            let fields = ["hotend", "bed", "air"];
            let mut last: Vec<FieldState> = Vec::new();
            let sorted = |mut v: Vec<FieldState>| {
                v.sort_by(|a, b| a.field.cmp(&b.field));
                v
            };
            for opening in 0..3 {
                let mut s = StateStore::open(dir.path(), &meta(), opts).unwrap();
                if opening > 0 {
                    let got = sorted(s.load().unwrap());
                    assert_eq!(
                        got, last,
                        "after reopen {opening}, group commit {group_commit_ms:?}"
                    );
                }
                // About 9 kB of states a commit: a 512 KiB segment every
                // 60 commits or so.
                for t in 1..=150 {
                    let t = opening * 1000 + t;
                    let states: Vec<FieldState> = fields
                        .iter()
                        .map(|f| {
                            let n = 100 + rng(6000) as usize;
                            fs("", f, t, (0..n).map(|_| rng(256) as u8).collect())
                        })
                        .collect();
                    s.commit(&states).unwrap();
                    last = sorted(states);
                    if t % 50 == 0 {
                        let got = sorted(s.load().unwrap());
                        assert_eq!(got, last, "after commit {t}, group commit {group_commit_ms:?}");
                    }
                }
                s.flush_pending().unwrap();
            }
            let mut s = StateStore::open(dir.path(), &meta(), opts).unwrap();
            let got = sorted(s.load().unwrap());
            assert_eq!(got, last, "after the last reopen, group commit {group_commit_ms:?}");
        }
    }

    /// The same from several threads at once, on sled directly: each
    /// inserts values of odd sizes and half of them flush as they go, so
    /// IO buffers of one segment are sealed, written and given back by
    /// different threads in any order, beside sled's flusher every other
    /// opening. A small cache sends reads to the log. Every value reads
    /// back exactly during the run and after each of four reopens.
    #[test]
    fn sleds_log_reads_back_exactly_under_concurrent_writes_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for opening in 0..4u64 {
            let db = std::sync::Arc::new(
                sled::Config::new()
                    .path(dir.path())
                    .cache_capacity(64 << 10)
                    .flush_every_ms((opening % 2 == 0).then_some(1))
                    .open()
                    .unwrap(),
            );
            for (k, v) in &want {
                assert_eq!(&db.get(k).unwrap().unwrap()[..], &v[..], "after reopen {opening}");
            }
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let db = db.clone();
                    std::thread::spawn(move || {
                        let mut rng = crate::xorshift(0x9e37_79b9 ^ (opening * 16 + t + 1));
                        let mut mine = HashMap::new();
                        for i in 0..300 {
                            let k = format!("t{t}-k{}", rng(40)).into_bytes();
                            let v: Vec<u8> = (0..20 + rng(6000)).map(|_| rng(256) as u8).collect();
                            db.insert(&k, v.clone()).unwrap();
                            mine.insert(k, v);
                            if t % 2 == 0 && rng(3) == 0 {
                                db.flush().unwrap();
                            }
                            if i % 50 == 49 {
                                for (k, v) in &mine {
                                    assert_eq!(&db.get(k).unwrap().unwrap()[..], &v[..]);
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            for t in threads {
                want.extend(t.join().unwrap());
            }
            db.flush().unwrap();
        }
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        for (k, v) in &want {
            assert_eq!(&db.get(k).unwrap().unwrap()[..], &v[..], "after the last reopen");
        }
    }

    #[test]
    fn a_second_opener_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let err = StateStore::open(dir.path(), &meta(), opts()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(matches!(err, StateError::Locked { waited_ms, .. } if waited_ms >= 200));
    }

    #[test]
    fn damaged_chunks_are_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            s.commit(&[fs("", "air", 1, vec![7; 5000])]).unwrap();
            s.fields.insert(chunk_key(&field_key("", "air"), 1), vec![8u8; 904]).unwrap();
            s.db.flush().unwrap();
        }
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let err = s.load().unwrap_err().to_string();
        assert!(
            err.contains("fail their checksum") && err.contains("tickwatch state reset"),
            "{err}"
        );
    }

    #[test]
    fn put_aside_keeps_the_state_for_inspection() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let f = fs("", "air", 1, vec![7; 5000]);
        s.commit(std::slice::from_ref(&f)).unwrap();
        s.put_aside(&f, "options changed").unwrap();
        assert!(s.load().unwrap().is_empty());
        let aside = s.reader().aside().unwrap();
        assert_eq!(aside.len(), 1);
        assert_eq!(aside[0].state, f);
        assert_eq!(aside[0].reason, "options changed");
    }

    #[test]
    fn adopt_aside_brings_a_record_back_and_keeps_the_replaced_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let old = fs("", "air", 1, vec![7; 5000]);
        s.commit(std::slice::from_ref(&old)).unwrap();
        s.put_aside(&old, "options changed").unwrap();
        let fresh = fs("", "air", 2, vec![1; 10]);
        s.commit(std::slice::from_ref(&fresh)).unwrap();
        let keyed = s.reader().aside_keyed().unwrap();
        assert_eq!(keyed.len(), 1);
        s.adopt_aside(&keyed[0].0, &keyed[0].1, Some(&fresh), "replaced by adopt").unwrap();
        drop(s);
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        assert_eq!(s.load().unwrap(), vec![old]);
        let aside = s.reader().aside().unwrap();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            (aside[0].state.clone(), aside[0].reason.as_str()),
            (fresh, "replaced by adopt")
        );
    }

    #[test]
    fn commit_without_load_writes_only_changed_chunks_and_drops_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            s.commit(&[fs("", "hotend", 1, big.clone())]).unwrap();
        }
        // Reopened and never loaded (as `state import` and a restore do).
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let before: Vec<_> = s.fields.scan_prefix([b'c']).map(|r| r.unwrap()).collect();
        let mut changed = big.clone();
        changed[100] ^= 1;
        s.commit(&[fs("", "hotend", 2, changed.clone())]).unwrap();
        let after: Vec<_> = s.fields.scan_prefix([b'c']).map(|r| r.unwrap()).collect();
        let differing = before.iter().zip(&after).filter(|(a, b)| a.1 != b.1).count();
        assert_eq!(differing, 1, "only the chunk holding byte 100 is rewritten");
        drop(s);
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        s.commit(&[fs("", "hotend", 3, vec![1; 10])]).unwrap();
        assert_eq!(s.fields.scan_prefix([b'c']).count(), 0, "stale chunks removed");
        assert_eq!(s.load().unwrap(), vec![fs("", "hotend", 3, vec![1; 10])]);
    }

    /// A state of one chunk or less lives in its meta record: one key per
    /// field. Growing past a chunk moves it out, shrinking back moves it in,
    /// ranges work across both, and damage to it is found.
    #[test]
    fn small_states_live_in_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let f = fs("", "air", 1, vec![7; 3000]);
        let fk = field_key("", "air");
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let whole = StateChange::Whole { state: vec![7; 3000], generation: Some(1) };
        s.commit_changes(&[update(&f, whole)]).unwrap();
        assert_eq!(s.fields.scan_prefix([b'c']).count(), 0);
        let mut want = vec![7; 3000];
        for (g, r) in [
            (2, ranges(1, 2, 3000, &[(10, vec![1; 5])])),
            (3, ranges(2, 3, 9000, &[(3000, vec![2; 6000])])),
            (4, ranges(3, 4, 9000, &[(8000, vec![3; 8])])),
            (5, ranges(4, 5, 100, &[(99, vec![4])])),
        ] {
            r.apply(&mut want);
            s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap();
            let chunks = s.fields.scan_prefix([b'c']).count();
            assert_eq!(chunks, if want.len() > CHUNK { 3 } else { 0 }, "generation {g}");
            assert_eq!(s.reader().field("", "air").unwrap().unwrap().state, want);
        }
        drop(s);
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        assert_eq!(s.load().unwrap()[0].state, want);
        // Damage inside the record's state is found.
        let mut m = s.fields.get(prefixed(b'm', &fk)).unwrap().unwrap().to_vec();
        let last = m.len() - 1;
        m[last] ^= 1;
        s.fields.insert(prefixed(b'm', &fk), m).unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("fail their checksum"), "{e}");
    }

    fn update(f: &FieldState, change: StateChange) -> FieldUpdate {
        FieldUpdate {
            group: f.group.clone(),
            field: f.field.clone(),
            provenance: f.provenance.clone(),
            change,
        }
    }

    fn ranges(base: u64, generation: u64, len: usize, spans: &[(usize, Vec<u8>)]) -> Ranges {
        Ranges {
            base,
            generation,
            len: len as u64,
            spans: spans.iter().map(|(o, b)| (*o as u64, b.len() as u64)).collect(),
            data: spans.iter().flat_map(|(_, b)| b.iter().copied()).collect(),
        }
    }

    fn chunk_values(s: &StateStore) -> Vec<(sled::IVec, sled::IVec)> {
        s.fields.scan_prefix([b'c']).map(|r| r.unwrap()).collect()
    }

    /// Ranges touch only their chunks (read back from the database), across
    /// a length change; a v1 meta record under them is read and rewritten
    /// as v2; the result is byte for byte a whole commit's.
    #[test]
    fn ranges_patch_only_their_chunks_and_match_a_whole_commit() {
        let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        for v1 in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let f = fs("", "hotend", 1, big.clone());
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            let whole = StateChange::Whole { state: big.clone(), generation: Some(7) };
            s.commit_changes(&[update(&f, whole)]).unwrap();
            let fk = field_key("", "hotend");
            if v1 {
                let old = FieldMeta {
                    provenance: f.provenance.clone(),
                    len: big.len() as u64,
                    crc: crc32fast::hash(&big),
                };
                s.fields.insert(prefixed(b'm', &fk), codec::encode(&old).unwrap()).unwrap();
            }
            let before = chunk_values(&s);
            // Two runs of a ring (one across a chunk boundary) and a
            // longer state.
            let r = ranges(
                7,
                8,
                30_010,
                &[(100, vec![1; 8]), (8190, vec![2; 16]), (29_995, vec![3; 15])],
            );
            let mut want = big.clone();
            r.apply(&mut want);
            s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap();
            let after = chunk_values(&s);
            let differing = before.iter().zip(&after).filter(|(a, b)| a.1 != b.1).count();
            assert_eq!(differing, 4, "chunks 0, 1, 2 and 7 (v1 {v1})");
            let m = s.fields.get(prefixed(b'm', &fk)).unwrap().unwrap();
            assert_eq!(m[..2], META_V2_PREFIX, "rewritten as v2");
            // More ranges, now shrinking.
            let r = ranges(8, 9, 12_000, &[(11_999, vec![4])]);
            r.apply(&mut want);
            s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap();
            drop(s);
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            assert_eq!(s.load().unwrap(), vec![fs("", "hotend", 1, want.clone())]);
            // What a whole commit of the same bytes stores.
            let dir2 = tempfile::tempdir().unwrap();
            let mut w = StateStore::open(dir2.path(), &meta(), opts()).unwrap();
            w.commit(&[fs("", "hotend", 1, want.clone())]).unwrap();
            assert_eq!(chunk_values(&s), chunk_values(&w));
            assert_eq!(
                s.fields.get(prefixed(b'm', &fk)).unwrap(),
                w.fields.get(prefixed(b'm', &fk)).unwrap()
            );
        }
    }

    #[test]
    fn ranges_on_another_generation_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = fs("", "air", 1, vec![5; 100]);
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let r = ranges(1, 2, 100, &[(0, vec![6])]);
        let e = s.commit_changes(&[update(&f, StateChange::Ranges(r.clone()))]).unwrap_err();
        assert!(matches!(e, StateError::MissedCommit { ref held, .. } if held == "none"), "{e}");
        s.commit_changes(&[update(
            &f,
            StateChange::Whole { state: vec![5; 100], generation: Some(1) },
        )])
        .unwrap();
        let stale = ranges(0, 2, 100, &[(0, vec![6])]);
        let e = s.commit_changes(&[update(&f, StateChange::Ranges(stale))]).unwrap_err();
        assert!(e.to_string().contains("build on generation 0, the store holds 1"), "{e}");
        // A whole commit without a generation (a restore) ends the chain.
        s.commit(&[fs("", "air", 2, vec![5; 100])]).unwrap();
        assert!(s.commit_changes(&[update(&f, StateChange::Ranges(r))]).is_err());
        assert_eq!(s.load().unwrap(), vec![fs("", "air", 2, vec![5; 100])]);
    }

    /// A store holding one 10,000-byte state (generation 1) whose second
    /// chunk has been overwritten behind the store's back.
    fn chunk_one_damaged(dir: &Path) -> (StateStore, FieldState) {
        let f = fs("", "air", 1, vec![5; 10_000]);
        let mut s = StateStore::open(dir, &meta(), opts()).unwrap();
        s.commit_changes(&[update(
            &f,
            StateChange::Whole { state: vec![5; 10_000], generation: Some(1) },
        )])
        .unwrap();
        let fk = field_key("", "air");
        s.fields.insert(chunk_key(&fk, 1), vec![9u8; CHUNK]).unwrap();
        (s, f)
    }

    #[test]
    fn a_damaged_chunk_under_ranges_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, f) = chunk_one_damaged(dir.path());
        let r = ranges(1, 2, 10_000, &[(5000, vec![6])]);
        let e = s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap_err().to_string();
        assert!(e.contains("fail their checksum (chunk 1)"), "{e}");
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("fail their checksum (chunk 1)"), "{e}");
    }

    /// Random sequences of groups: every update lands in exactly one sled
    /// batch, a group never spans two, groups keep the order they first
    /// appear in, and a batch holds at most `bound` updates and
    /// `max_bytes` bytes unless it is one group larger than that.
    #[test]
    fn commits_split_only_between_groups_and_within_the_bound() {
        let mut next = crate::xorshift(0x9E37_79B9_7F4A_7C15u64);
        let names: Vec<String> = (0..12).map(|g| format!("g{g}")).collect();
        for _ in 0..500 {
            let bound = 1 + next(8) as usize;
            let max_bytes = 1 + next(4000) as usize;
            let n = next(40) as usize;
            let groups: Vec<&str> = (0..n).map(|_| names[next(12) as usize].as_str()).collect();
            let bytes: Vec<usize> = (0..n).map(|_| next(1000) as usize).collect();
            let parts = split_at_groups(
                groups.iter().copied().zip(bytes.iter().copied()),
                bound,
                max_bytes,
            );
            let mut seen: Vec<usize> = parts.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "each update once");
            let mut order: Vec<&str> = Vec::new();
            for part in &parts {
                assert!(!part.is_empty());
                let mut in_part: Vec<&str> = Vec::new();
                for &i in part {
                    if in_part.last() != Some(&groups[i]) {
                        assert!(!in_part.contains(&groups[i]), "a group's updates together");
                        in_part.push(groups[i]);
                    }
                }
                for g in &in_part {
                    // The whole group, nothing of it elsewhere.
                    assert_eq!(
                        part.iter().filter(|&&i| groups[i] == *g).count(),
                        groups.iter().filter(|h| *h == g).count()
                    );
                }
                assert!(
                    part.len() <= bound || in_part.len() == 1,
                    "{} updates over a bound of {bound} in {} groups",
                    part.len(),
                    in_part.len()
                );
                let part_bytes: usize = part.iter().map(|&i| bytes[i]).sum();
                assert!(
                    part_bytes <= max_bytes || in_part.len() == 1,
                    "{part_bytes} bytes over a bound of {max_bytes} in {} groups",
                    in_part.len()
                );
                order.extend(in_part);
            }
            let mut first: Vec<&str> = Vec::new();
            for g in &groups {
                if !first.contains(g) {
                    first.push(g);
                }
            }
            assert_eq!(order, first, "groups in the order they first appear");
        }
    }

    /// A commit's groups share a sled batch while their new bytes fit
    /// [`SLED_BATCH_BYTES`], whole states and ranges alike.
    #[test]
    fn a_commit_is_split_by_the_bytes_its_groups_bring() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let big = SLED_BATCH_BYTES / 2 + 1;
        let states: Vec<FieldState> =
            (0..4).map(|g| fs(&format!("g{g}"), "hotend", 1, vec![g as u8; big])).collect();
        let wholes: Vec<FieldUpdate> = states
            .iter()
            .map(|st| {
                update(st, StateChange::Whole { state: st.state.clone(), generation: Some(1) })
            })
            .collect();
        s.commit_changes(&wholes).unwrap();
        assert_eq!(s.counts().sled_batches, 4, "two halves and more do not share a batch");
        let small: Vec<FieldState> =
            (0..4).map(|g| fs(&format!("h{g}"), "bed", 1, vec![g as u8; 100])).collect();
        s.commit(&small).unwrap();
        assert_eq!(s.counts().sled_batches, 5, "small groups share one");
        // Ranges count their bytes, not the state's length.
        let updates: Vec<FieldUpdate> = states
            .iter()
            .map(|st| {
                let mut st = st.clone();
                st.provenance.last_time = 2;
                let r = ranges(1, 2, big, &[(10, vec![0xAB; 100])]);
                r.apply(&mut st.state);
                update(&st, StateChange::Ranges(r))
            })
            .collect();
        s.commit_changes(&updates).unwrap();
        assert_eq!(s.counts().sled_batches, 6, "four groups' ranges in one batch");
        drop(s);
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        assert_eq!(s.load().unwrap().len(), 8);
    }

    /// A commit of many groups applied as several sled batches: everything
    /// reads back after a reopen, whole states and ranges alike.
    #[test]
    fn a_commit_split_into_sled_batches_reads_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = |g: usize, f: usize, k: u8| -> Vec<u8> {
            let len = if f == 0 { 9_000 + g } else { 100 + g };
            (0..len).map(|i| (i as u8).wrapping_mul(k).wrapping_add(g as u8)).collect()
        };
        let fields = ["a", "b", "c"];
        let groups: Vec<String> = (0..40).map(|g| format!("host=h{g:02}")).collect();
        let mut want = Vec::new();
        {
            let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
            s.set_batch_fields(7);
            // Whole states, each group's fields interleaved with others'.
            let mut updates = Vec::new();
            for (f, field) in fields.iter().enumerate() {
                for (g, group) in groups.iter().enumerate() {
                    let st = fs(group, field, 1, state(g, f, 3));
                    updates.push(update(
                        &st,
                        StateChange::Whole { state: st.state.clone(), generation: Some(1) },
                    ));
                }
            }
            s.commit_changes(&updates).unwrap();
            assert_eq!(s.counts().sled_batches, 20, "two groups (6 fields) per sled batch");
            // Then ranges for every field, in a bound of one group.
            s.set_batch_fields(1);
            let mut updates = Vec::new();
            for (g, group) in groups.iter().enumerate() {
                for (f, field) in fields.iter().enumerate() {
                    let mut st = fs(group, field, 2, state(g, f, 3));
                    let r = ranges(1, 2, st.state.len(), &[(g, vec![0xAB; 5 + f])]);
                    r.apply(&mut st.state);
                    updates.push(update(&st, StateChange::Ranges(r)));
                    want.push(st);
                }
            }
            s.commit_changes(&updates).unwrap();
            assert_eq!(s.counts().sled_batches, 20 + 40);
            assert_eq!(s.counts().ranges, 120);
        }
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        let mut got = s.load().unwrap();
        got.sort_by(|a, b| (&a.group, &a.field).cmp(&(&b.group, &b.field)));
        want.sort_by(|a, b| (&a.group, &a.field).cmp(&(&b.group, &b.field)));
        // Ranges do not change provenance here; compare the bytes.
        let bytes = |v: &[FieldState]| -> Vec<(String, String, Vec<u8>)> {
            v.iter().map(|f| (f.group.clone(), f.field.clone(), f.state.clone())).collect()
        };
        assert_eq!(bytes(&got), bytes(&want));
    }

    #[test]
    fn covers_is_the_union_of_the_spans() {
        let r = ranges(1, 2, 100, &[(10, vec![0; 20]), (0, vec![0; 5]), (4, vec![0; 7])]);
        assert!(covers(&r, 0, 30));
        assert!(covers(&r, 3, 12));
        assert!(!covers(&r, 0, 31));
        assert!(!covers(&r, 29, 40));
        let gap = ranges(1, 2, 100, &[(0, vec![0; 5]), (6, vec![0; 5])]);
        assert!(!covers(&gap, 0, 11));
        assert!(covers(&gap, 6, 11));
    }

    /// A chunk a range covers whole is rewritten from the range alone: its
    /// old bytes are not checked (nor needed), and one that fails its CRC
    /// is replaced, not reported.
    #[test]
    fn a_chunk_covered_whole_needs_no_check_of_its_old_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, f) = chunk_one_damaged(dir.path());
        // Chunk 1 ([4096, 8192)) whole, in two spans: the damaged bytes
        // differ from the spans' and are replaced, not reported.
        let r = ranges(1, 2, 10_000, &[(4096, vec![5; 2000]), (6096, vec![5; 2096])]);
        s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap();
        assert_eq!(s.load().unwrap(), vec![f.clone()]);
        // Equal bytes under a covering range: nothing to write, CRC kept.
        let r = ranges(2, 3, 10_000, &[(4096, vec![5; CHUNK])]);
        s.commit_changes(&[update(&f, StateChange::Ranges(r))]).unwrap();
        assert_eq!(s.load().unwrap(), vec![f]);
    }

    /// A range commit that does not build on what the store holds writes
    /// nothing, even in a group after others in a split commit.
    #[test]
    fn a_missed_commit_late_in_a_split_commit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        s.set_batch_fields(1);
        let a = fs("g1", "x", 1, vec![1; 6000]);
        let b = fs("g2", "x", 1, vec![2; 6000]);
        let whole = |f: &FieldState| {
            update(f, StateChange::Whole { state: f.state.clone(), generation: Some(1) })
        };
        s.commit_changes(&[whole(&a), whole(&b)]).unwrap();
        let good = ranges(1, 2, 6000, &[(0, vec![9; 10])]);
        let stale = ranges(0, 2, 6000, &[(0, vec![9; 10])]);
        let e = s
            .commit_changes(&[
                update(&a, StateChange::Ranges(good.clone())),
                update(&b, StateChange::Ranges(stale)),
            ])
            .unwrap_err();
        assert!(matches!(e, StateError::MissedCommit { ref group, .. } if group == "g2"), "{e}");
        assert_eq!(s.load().unwrap(), vec![a.clone(), b.clone()], "nothing written");
        // As after any failed commit, its fields take whole states next.
        let e = s.commit_changes(&[update(&a, StateChange::Ranges(good))]).unwrap_err();
        assert!(matches!(e, StateError::MissedCommit { ref held, .. } if held == "none"), "{e}");
    }

    /// A later sled batch of a split commit fails (a damaged chunk under
    /// its ranges): the commit is reported failed, the groups before it
    /// are applied, and every field of it must commit a whole state next.
    #[test]
    fn a_failure_late_in_a_split_commit_fails_the_commit_and_ends_its_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), &meta(), opts()).unwrap();
        s.set_batch_fields(1);
        let a = fs("g1", "x", 1, vec![1; 10_000]);
        let b = fs("g2", "x", 1, vec![2; 10_000]);
        let whole = |f: &FieldState, g: u64| {
            update(f, StateChange::Whole { state: f.state.clone(), generation: Some(g) })
        };
        s.commit_changes(&[whole(&a, 1), whole(&b, 1)]).unwrap();
        let fb = field_key("g2", "x");
        s.fields.insert(chunk_key(&fb, 1), vec![7u8; CHUNK]).unwrap();
        let r = ranges(1, 2, 10_000, &[(5000, vec![6; 4])]);
        let e = s
            .commit_changes(&[
                update(&a, StateChange::Ranges(r.clone())),
                update(&b, StateChange::Ranges(r.clone())),
            ])
            .unwrap_err()
            .to_string();
        assert!(e.contains("fail their checksum (chunk 1)"), "{e}");
        let mut a2 = a.clone();
        r.apply(&mut a2.state);
        assert_eq!(s.reader().field("g1", "x").unwrap().unwrap(), a2, "g1's batch applied");
        // Neither field takes ranges any more (the caller sends whole states).
        let next = ranges(2, 3, 10_000, &[(0, vec![5])]);
        for f in [&a, &b] {
            let e = s.commit_changes(&[update(f, StateChange::Ranges(next.clone()))]).unwrap_err();
            assert!(matches!(e, StateError::MissedCommit { ref held, .. } if held == "none"));
        }
        s.commit_changes(&[whole(&a2, 3), whole(&b, 3)]).unwrap();
        assert_eq!(s.load().unwrap(), vec![a2, b]);
    }
}
