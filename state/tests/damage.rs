//! Damaged databases: a node's sled files truncated or bit-flipped at every
//! 4 KiB boundary of the data they hold. Opening and reading must answer
//! (state, or an error naming the damage) promptly every time: no panic may
//! escape (sled 0.34 panics on some damage) and nothing may hang. Run on a
//! database of meta records v2 written by range commits (a CRC per chunk)
//! and on the v1 fixture (one CRC per state).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tickwatch_state::{
    FieldState, FieldUpdate, NodeMeta, Provenance, Ranges, StateChange, StateError, StateStore,
    StoreOptions,
};

fn opts() -> StoreOptions {
    StoreOptions { wait: Duration::from_secs(1), group_commit_ms: None }
}

fn state(field: &str, t: i64, bytes: Vec<u8>) -> FieldState {
    FieldState {
        group: "printer=a".into(),
        field: field.into(),
        provenance: Provenance {
            detector: "ttest".into(),
            detector_version: "0.1.0".into(),
            state_version: 1,
            options: r#"{"alpha":0.001,"size":3600}"#.into(),
            last_time: t,
        },
        state: bytes,
    }
}

/// A ring of 3600 values after `t` windows of 300 (a 48-byte header, then
/// the slots), as a t-test's state changes.
fn ring(t: i64) -> Vec<u8> {
    let mut bytes: Vec<u8> = (t as u64).to_le_bytes().repeat(6);
    for slot in 0..3600i64 {
        // The last window (1-based) that wrote this slot, 0 for none.
        let mut w = t;
        while w > 0 && ((w - 1) * 300 % 3600 > slot || slot >= (w - 1) * 300 % 3600 + 300) {
            w -= 1;
        }
        bytes.extend_from_slice(
            &(220.0 + f64::from((slot % 97) as u32) * 0.01 + w as f64).to_le_bytes(),
        );
    }
    bytes
}

/// The runs of bytes where `new` differs from `old` (same length).
fn diff(base: u64, generation: u64, old: &[u8], new: &[u8]) -> Ranges {
    let mut r = Ranges { base, generation, len: new.len() as u64, ..Ranges::default() };
    let mut i = 0;
    while i < new.len() {
        if old.get(i) == Some(&new[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < new.len() && old.get(i) != Some(&new[i]) {
            i += 1;
        }
        r.spans.push((start as u64, (i - start) as u64));
        r.data.extend_from_slice(&new[start..i]);
    }
    r
}

/// A node directory after several commits (the first whole, the others as
/// changed ranges); returns it with every version committed (a damaged log
/// may fall back to an earlier one).
fn pristine(root: &Path) -> (PathBuf, Vec<Vec<FieldState>>) {
    let meta = NodeMeta::new("t", "n", "ttest");
    let mut s = StateStore::open(root, &meta, opts()).unwrap();
    let mut versions = vec![Vec::new()];
    // "small" (2 kB) lives in its meta record, the others in chunks.
    let fields = ["air", "bed", "hotend", "small"];
    let bytes = |f: &str, t: i64| if f == "small" { ring(t)[..2000].to_vec() } else { ring(t) };
    for t in 1..=40 {
        let batch: Vec<FieldUpdate> = fields
            .iter()
            .map(|f| {
                let (old, new) = (bytes(f, t - 1), bytes(f, t));
                let change = if t == 1 {
                    StateChange::Whole { state: new.clone(), generation: Some(1) }
                } else {
                    StateChange::Ranges(diff(t as u64 - 1, t as u64, &old, &new))
                };
                let st = state(f, t, Vec::new());
                FieldUpdate { group: st.group, field: st.field, provenance: st.provenance, change }
            })
            .collect();
        s.commit_changes(&batch).unwrap();
        versions.push(fields.iter().map(|f| state(f, t, bytes(f, t))).collect());
    }
    s.keep_aside(&state("air", 0, ring(0)), "test").unwrap();
    let dir = s.dir().to_path_buf();
    drop(s);
    (dir, versions)
}

use common::copy_tree;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files(&p, out) } else { out.push(p) }
    }
}

/// Every 4 KiB boundary up to one past the file's last non-zero byte (sled
/// preallocates zeroed segments; damage past the data is damage to nothing).
fn offsets(file: &Path) -> Vec<u64> {
    let bytes = std::fs::read(file).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1) as u64;
    let mut v: Vec<u64> = (0..=used.min(bytes.len() as u64)).step_by(4096).collect();
    if used > 0 {
        v.push(used - 1);
    }
    v
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate(u64),
    Flip(u64),
}

fn damage(file: &Path, d: Damage) {
    match d {
        Damage::Truncate(at) => {
            std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(at).unwrap()
        }
        Damage::Flip(at) => {
            let mut bytes = std::fs::read(file).unwrap();
            if let Some(b) = bytes.get_mut(at as usize) {
                *b ^= 0x5a;
            }
            std::fs::write(file, bytes).unwrap();
        }
    }
}

/// Opens and reads `dir` on a thread of its own, so a hang is a failure
/// and not a stuck test.
fn open_and_read(dir: PathBuf) -> Option<Result<Vec<FieldState>, StateError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = StateStore::open_dir(&dir, opts()).and_then(|mut s| {
            let fields = s.load()?;
            s.reader().aside()?;
            Ok(fields)
        });
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

#[test]
fn damaged_files_are_reported_or_read_never_a_panic_or_a_hang() {
    let root = tempfile::tempdir().unwrap();
    let (node, versions) = pristine(root.path());
    damage_everywhere(&node, &versions);
}

#[test]
fn damaged_v1_files_are_reported_or_read_never_a_panic_or_a_hang() {
    let node = common::v1_node();
    let versions = [Vec::new(), common::v1_version(100), common::v1_version(0)];
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&node, copy.path());
    assert_eq!(open_and_read(copy.path().to_path_buf()).unwrap().unwrap(), versions[2]);
    damage_everywhere(&node, &versions);
}

/// Damages a copy of `node` at every boundary of every file; each read
/// must give one of `versions` (the last, or an earlier one the log fell
/// back to, compared by field) or an error naming the damage.
fn damage_everywhere(node: &Path, versions: &[Vec<FieldState>]) {
    let mut all = Vec::new();
    files(&node.join("db"), &mut all);
    let (mut ok, mut refused) = (0, 0);
    let scratch = tempfile::tempdir().unwrap();
    for (fi, file) in all.iter().enumerate() {
        let rel = file.strip_prefix(node).unwrap();
        for at in offsets(file) {
            for d in [Damage::Truncate(at), Damage::Flip(at)] {
                let copy = scratch.path().join(format!("{fi}-{at}-{d:?}"));
                copy_tree(node, &copy);
                damage(&copy.join(rel), d);
                match open_and_read(copy.clone()) {
                    None => panic!("{} {d:?}: no answer within 10 s", rel.display()),
                    Some(Ok(fields)) => {
                        // Checksums guard every state read back: each field
                        // is that field as one commit left it. Fields may
                        // come from different commits: sled 0.34 does not
                        // keep a batch whole when its log is cut at an
                        // arbitrary place (seen: air and hotend at commit
                        // 19, bed at 20), and each field is scored on its
                        // own (docs/state.md, "Guarantees").
                        for f in &fields {
                            assert!(
                                versions.iter().any(|v| v.contains(f)),
                                "{} {d:?}: read a state of {} that was never committed",
                                rel.display(),
                                f.field
                            );
                        }
                        ok += 1;
                    }
                    Some(Err(e)) => {
                        let text = e.to_string();
                        assert!(
                            matches!(e, StateError::Corrupt { .. } | StateError::Io { .. }),
                            "{} {d:?}: {text}",
                            rel.display()
                        );
                        refused += 1;
                    }
                }
                let _ = std::fs::remove_dir_all(&copy);
            }
        }
    }
    eprintln!("damaged databases: {ok} read back, {refused} refused as damaged");
    // Both outcomes occur on this database: damage is found, not ignored.
    assert!(ok > 0 && refused > 0, "{ok} read back, {refused} refused");
}
