//! The v1 fixture (`tests/fixtures/v1`, see its README): where it is and
//! what it holds.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tickwatch_state::{FieldState, Provenance};

/// The fixture's node directory (copy it before opening).
pub fn v1_node() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/nodes/fixture~v1")
}

/// The generator the fixture was made with.
pub fn fixture_state(seed: u32, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

/// The fixture's two committed versions, in load order (`offset` 100 for
/// the first, 0 for the last).
pub fn v1_version(offset: u32) -> Vec<FieldState> {
    let fields = [
        ("", "bed", 2u32, 28_865usize),
        ("", "hotend", 1, 28_865),
        ("printer=a", "air", 3, 100),
        ("printer=a", "hotend", 4, 4096),
    ];
    fields
        .iter()
        .map(|&(g, f, seed, len)| FieldState {
            group: g.into(),
            field: f.into(),
            provenance: Provenance {
                detector: "ttest".into(),
                detector_version: "0.1.0".into(),
                state_version: 1,
                options: "alpha=0.001,size=3600".into(),
                last_time: 1_000 + i64::from(seed + offset),
            },
            state: fixture_state(seed + offset, len),
        })
        .collect()
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
