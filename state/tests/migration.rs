//! Migration from meta records v1: the fixture database written before
//! meta records v2 (`tests/fixtures/v1`) loads as it did; commits of whole
//! states and of changed ranges on it give, byte for byte, the database a
//! whole-state commit of the same bytes gives; each field's record becomes
//! v2 on its next commit, and a field not committed keeps its v1 record,
//! still read.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use tickwatch_state::store::{META_V2_PREFIX, field_key};
use tickwatch_state::{FieldUpdate, NodeMeta, Ranges, StateChange, StateStore, StoreOptions};

fn opts() -> StoreOptions {
    StoreOptions { wait: Duration::from_secs(1), group_commit_ms: None }
}

fn meta() -> NodeMeta {
    NodeMeta::new("fixture", "v1", "ttest")
}

/// Every key and value of the `fields` tree (the store closed).
fn dump(node: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = sled::open(node.join("db")).unwrap();
    let t = db.open_tree("fields").unwrap();
    t.iter().map(|r| r.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn meta_record(node: &Path, group: &str, field: &str) -> Vec<u8> {
    let mut k = vec![b'm'];
    k.extend_from_slice(&field_key(group, field));
    dump(node).into_iter().find(|(key, _)| *key == k).unwrap().1
}

#[test]
fn a_v1_database_migrates_on_commit_and_matches_whole_commits() {
    let versions = common::v1_version(0);
    let root = tempfile::tempdir().unwrap();
    let node = root.path().join("nodes/fixture~v1");
    common::copy_tree(&common::v1_node(), &node);
    for st in &versions {
        assert_ne!(meta_record(&node, &st.group, &st.field)[0], 0xFF, "the fixture is v1");
    }
    let control = tempfile::tempdir().unwrap();
    let control_node = control.path().join("nodes/fixture~v1");
    common::copy_tree(&common::v1_node(), &control_node);

    let mut s = StateStore::open(root.path(), &meta(), opts()).unwrap();
    assert_eq!(s.load().unwrap(), versions, "v1 loads as before");
    let mut c = StateStore::open(control.path(), &meta(), opts()).unwrap();
    // Fields 0, 1 and 3 go on; field 2 (printer=a air) is never committed.
    let mut now = versions.clone();
    let touched = [0usize, 1, 3];
    let mut seed: u32 = 99;
    for step in 0..12u64 {
        let mut updates = Vec::new();
        for &i in &touched {
            let old = now[i].state.clone();
            // A window's worth of bytes somewhere, sometimes past the end.
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = old.len() + if step % 5 == 4 { 100 } else { 0 };
            let at = (seed as usize >> 8) % (len - 2_400);
            let bytes: Vec<u8> = common::fixture_state(seed, 2_400);
            let mut spans = vec![(0u64, 64u64), (at as u64, 2_400u64)];
            let mut data = bytes.clone();
            data.splice(0..0, common::fixture_state(seed ^ 1, 64));
            if len > old.len() {
                spans.push((old.len() as u64, (len - old.len()) as u64));
                data.extend(common::fixture_state(seed ^ 2, len - old.len()));
            }
            let r = Ranges { base: step, generation: step + 1, len: len as u64, spans, data };
            let change = if step == 0 {
                // A detector's first take is whole (with a generation).
                let mut state = old.clone();
                r.apply(&mut state);
                StateChange::Whole { state, generation: Some(1) }
            } else {
                StateChange::Ranges(r.clone())
            };
            if let StateChange::Whole { state, .. } = &change {
                now[i].state = state.clone();
            } else {
                r.apply(&mut now[i].state);
            }
            now[i].provenance.last_time += 1;
            updates.push(FieldUpdate {
                group: now[i].group.clone(),
                field: now[i].field.clone(),
                provenance: now[i].provenance.clone(),
                change,
            });
        }
        s.commit_changes(&updates).unwrap();
        let whole: Vec<_> = touched.iter().map(|&i| now[i].clone()).collect();
        c.commit(&whole).unwrap();
    }
    drop(s);
    drop(c);
    let mut s = StateStore::open(root.path(), &meta(), opts()).unwrap();
    assert_eq!(s.load().unwrap(), now);
    drop(s);
    assert_eq!(dump(&node), dump(&control_node), "byte for byte a whole-state commit's");
    for (i, st) in now.iter().enumerate() {
        let record = meta_record(&node, &st.group, &st.field);
        if touched.contains(&i) {
            assert_eq!(record[..2], META_V2_PREFIX, "{} {}", st.group, st.field);
        } else {
            assert_ne!(record[0], 0xFF, "an untouched field keeps its v1 record");
        }
    }
}
