//! Errors of the state crate.

use std::path::PathBuf;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Fewer bytes than the fixed header and trailer need.
    #[error("snapshot is {len} bytes, shorter than the {min} byte header and checksum")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// Minimum.
        min: usize,
    },
    /// The bytes do not start with the snapshot magic.
    #[error("not a tickwatch snapshot (bad magic {found:02x?})")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A format version this build has no decoder for.
    #[error("snapshot format version {found} is newer than this build reads (up to {newest})")]
    UnknownVersion {
        /// Version in the header.
        found: u16,
        /// Newest version this build decodes.
        newest: u16,
    },
    /// The snapshot would be larger than any Restore accepts.
    #[error(
        "the node's snapshot would be {len} bytes before compression, over the {max} byte limit \
         of what a Restore can bring back; split the task's groups over more nodes, or lower size"
    )]
    TooLarge {
        /// Payload bytes.
        len: u64,
        /// The limit ([`crate::snapshot::MAX_PAYLOAD_LEN`]).
        max: u64,
    },
    /// The header's payload length disagrees with the byte count.
    #[error("snapshot payload length {declared} does not match the {actual} bytes present")]
    LengthMismatch {
        /// Declared in the header.
        declared: u64,
        /// Present.
        actual: u64,
    },
    /// The checksum does not match: the bytes were damaged.
    #[error("snapshot checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// Stored checksum.
        stored: u32,
        /// Computed checksum.
        computed: u32,
    },
    /// The payload did not decode.
    #[error("snapshot payload does not decode: {0}")]
    Payload(String),
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Stored state is damaged or unreadable; it is never silently replaced.
    #[error(
        "state at {} is corrupt or unreadable: {reason} (inspect it, or move it aside with \
         `tickwatch state reset`)",
        path.display()
    )]
    Corrupt {
        /// The node directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// State could not be written (disk full, I/O error); what is stored is
    /// not known to be damaged.
    #[error("cannot write state at {}: {reason}", path.display())]
    Write {
        /// The node directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Another process holds the node's database.
    #[error("state at {} is in use by {holder} (waited {waited_ms} ms)", path.display())]
    Locked {
        /// The node directory.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
        /// How long we waited.
        waited_ms: u128,
    },
    /// A commit carried changes taken against a state the store does not
    /// hold (its last commit of the field failed, or was of another
    /// generation): nothing was written; commit the whole state instead.
    #[error(
        "changes of field {field} group {group:?} build on generation {base}, the store holds \
         {held}"
    )]
    MissedCommit {
        /// The field.
        field: String,
        /// The group.
        group: String,
        /// The generation the changes were taken against.
        base: u64,
        /// What the store holds ("none" or a generation).
        held: String,
    },
}
