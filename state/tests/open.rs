//! Opening a node's store: what a restart writes besides the database.
//! `meta.json` is rewritten only when the node's metadata changed (a
//! restart with the same detector, options and fields leaves the file as
//! it is), and the `LOCK` file names its holder while the store is open.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use tickwatch_state::layout::{self, META_FILE};
use tickwatch_state::{NodeMeta, StateError, StateStore, StoreOptions};

fn opts() -> StoreOptions {
    StoreOptions { wait: Duration::from_millis(100), group_commit_ms: None }
}

fn meta(fields: &[&str]) -> NodeMeta {
    NodeMeta {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        options: Some(serde_json::json!({"alpha": 0.001, "size": 3600})),
        ..NodeMeta::new("task", "node", "ttest")
    }
}

/// The inode of `meta.json`: a rewrite (temporary file, then rename)
/// gives the path a new one.
fn meta_inode(state_dir: &Path) -> u64 {
    let dir = layout::node_dir(state_dir, "task", "node");
    std::fs::metadata(dir.join(META_FILE)).unwrap().ino()
}

#[test]
fn a_restart_with_the_same_metadata_leaves_meta_json_alone_and_a_change_rewrites_it() {
    let state_dir = tempfile::tempdir().unwrap();
    let first = meta(&["hotend", "bed"]);
    drop(StateStore::open(state_dir.path(), &first, opts()).unwrap());
    let written = meta_inode(state_dir.path());

    drop(StateStore::open(state_dir.path(), &first, opts()).unwrap());
    assert_eq!(meta_inode(state_dir.path()), written, "same metadata: the file is not rewritten");

    let changed = meta(&["hotend", "bed", "air"]);
    drop(StateStore::open(state_dir.path(), &changed, opts()).unwrap());
    assert_ne!(meta_inode(state_dir.path()), written, "new fields: the file is rewritten");
    let dir = layout::node_dir(state_dir.path(), "task", "node");
    assert_eq!(layout::read_meta(&dir).unwrap(), changed);
}

#[test]
fn the_lock_names_its_holder_while_the_store_is_open() {
    let state_dir = tempfile::tempdir().unwrap();
    let m = meta(&["air"]);
    let _open = StateStore::open(state_dir.path(), &m, opts()).unwrap();
    let err = StateStore::open(state_dir.path(), &m, opts()).unwrap_err();
    match err {
        StateError::Locked { holder, .. } => {
            assert!(holder.starts_with(&format!("pid {} (", std::process::id())), "{holder}")
        }
        other => panic!("expected Locked, got {other}"),
    }
}
