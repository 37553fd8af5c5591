//! Where a node's state lives inside the state directory.
//!
//! ```text
//! <state-dir>/
//!   nodes/<task>~<node>/      one directory per (task, node): Kapacitor runs
//!     meta.json               one process per node and sled one process per
//!     LOCK                    database, so nodes never share a database
//!     db/                     the sled database (see crate::store)
//!   control/<hash>.sock       the serving process's read-only query socket
//!   aside/<task>~<node>.<secs> node directories moved aside by `state reset`
//! ```
//!
//! Task and node ids are user-chosen, so each is percent-encoded (everything
//! but ASCII letters, digits, `-` and `_`): no id can name `..`, contain `/`
//! or NUL, or reach outside the state directory. A name longer than
//! [`MAX_DIR_NAME`] bytes is cut and suffixed with a hash of the full ids,
//! and `meta.json` keeps the ids themselves. Control sockets live under a
//! short hashed name because unix socket paths are limited to ~108 bytes.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::StateError;

/// Characters kept as they are: letters, digits, `-`, `_`.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');
/// Longest node directory name (file systems allow 255 bytes).
pub const MAX_DIR_NAME: usize = 200;
/// Subdirectory holding node directories.
pub const NODES: &str = "nodes";
/// Subdirectory holding control sockets.
pub const CONTROL: &str = "control";
/// The node's metadata file.
pub const META_FILE: &str = "meta.json";

/// The ids a node directory belongs to, kept beside its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Kapacitor task id.
    pub task: String,
    /// Kapacitor node id.
    pub node: String,
    /// Detector serving the node when it was last opened.
    pub detector: String,
    /// The node's detector options when it was last opened (every declared
    /// option, defaults filled in, as a JSON object), so that
    /// `tickwatch state adopt` can judge state set aside against them while
    /// the node is stopped. `None` in directories written before it was
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// The fields the node tracked when it was last opened (empty when
    /// unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl NodeMeta {
    /// Ids and detector only (options and fields unknown).
    pub fn new(task: &str, node: &str, detector: &str) -> Self {
        Self {
            task: task.into(),
            node: node.into(),
            detector: detector.into(),
            options: None,
            fields: Vec::new(),
        }
    }
}

/// FNV-1a, 64 bit: a stable hash for names (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn ids_hash(task: &str, node: &str) -> u64 {
    let mut key = Vec::with_capacity(task.len() + node.len() + 1);
    key.extend_from_slice(task.as_bytes());
    key.push(0);
    key.extend_from_slice(node.as_bytes());
    fnv1a(&key)
}

/// The directory name for (task, node).
pub fn node_dir_name(task: &str, node: &str) -> String {
    let name =
        format!("{}~{}", utf8_percent_encode(task, ENCODE), utf8_percent_encode(node, ENCODE));
    if name.len() <= MAX_DIR_NAME {
        return name;
    }
    // Percent-encoded names are ASCII, so any byte index is a char boundary.
    format!("{}~~{:016x}", &name[..MAX_DIR_NAME - 18], ids_hash(task, node))
}

/// `<state-dir>/nodes/<task>~<node>`.
pub fn node_dir(state_dir: &Path, task: &str, node: &str) -> PathBuf {
    state_dir.join(NODES).join(node_dir_name(task, node))
}

/// `<state-dir>/control/<hash>.sock` for a node directory.
pub fn control_socket(state_dir: &Path, task: &str, node: &str) -> PathBuf {
    state_dir.join(CONTROL).join(format!("{:016x}.sock", ids_hash(task, node)))
}

/// Reads a node directory's `meta.json`.
pub fn read_meta(node_dir: &Path) -> Result<NodeMeta, StateError> {
    let path = node_dir.join(META_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StateError::Io { path: path.clone(), source: e })?;
    serde_json::from_str(&text).map_err(|e| StateError::Corrupt { path, reason: e.to_string() })
}

/// Writes a node directory's `meta.json` (atomically, via a rename).
pub fn write_meta(node_dir: &Path, meta: &NodeMeta) -> Result<(), StateError> {
    let path = node_dir.join(META_FILE);
    let tmp = node_dir.join(format!("{META_FILE}.tmp"));
    let text = serde_json::to_string_pretty(meta)
        .map_err(|e| StateError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    std::fs::write(&tmp, text).map_err(|e| StateError::Io { path: tmp.clone(), source: e })?;
    std::fs::rename(&tmp, &path).map_err(|e| StateError::Io { path, source: e })
}

/// A node directory and its metadata, or why the metadata is unreadable.
pub type ListedNode = (PathBuf, Result<NodeMeta, StateError>);

/// Every node directory under `state_dir` with its metadata (or the reason
/// it could not be read), sorted by directory name.
pub fn list_nodes(state_dir: &Path) -> Result<Vec<ListedNode>, StateError> {
    let nodes = state_dir.join(NODES);
    let entries = match std::fs::read_dir(&nodes) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::Io { path: nodes, source: e }),
    };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|d| {
            let meta = read_meta(&d);
            (d, meta)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_stay_one_plain_component() {
        for (task, node) in [
            ("../../etc", "passwd"),
            ("/", "/"),
            ("a\0b", "."),
            ("..", ".."),
            ("print temps", "tTest2"),
            ("ünïcode", "~"),
        ] {
            let name = node_dir_name(task, node);
            assert!(!name.contains('/') && !name.contains('\0') && !name.contains(".."), "{name}");
            assert!(name.is_ascii());
            let dir = node_dir(Path::new("/s"), task, node);
            assert_eq!(dir.parent(), Some(Path::new("/s/nodes")));
        }
        assert_eq!(node_dir_name("print_temps", "tTest2"), "print_temps~tTest2");
        // ~ separates task and node, so it is always encoded inside ids.
        assert_ne!(node_dir_name("a~b", "c"), node_dir_name("a", "b~c"));
    }

    #[test]
    fn very_long_ids_are_cut_and_hashed() {
        let long = "x".repeat(5000);
        let a = node_dir_name(&long, "n1");
        let b = node_dir_name(&long, "n2");
        assert!(a.len() <= MAX_DIR_NAME && b.len() <= MAX_DIR_NAME);
        assert_ne!(a, b);
        let sock = control_socket(Path::new("/var/lib/tickwatch"), &long, "n1");
        assert!(sock.as_os_str().len() < 100);
    }
}
