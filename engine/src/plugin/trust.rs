//! Which plugin files tickwatch may load: loading a library runs its code
//! inside tickwatch, often as a service user, so the file must be one only
//! a trusted user could have put there.
//!
//! The rule, after OpenSSH's StrictModes and sudo: the file's resolved path
//! and every directory above it up to `/` must be owned by root or by the
//! user running tickwatch, and writable by no one else (not by others, and
//! not by a group other than root's). Symlinks are resolved first, so a link
//! in a safe directory that points into an unsafe one is judged by where it
//! points.
//!
//! One exception, narrower than it looks: a sticky world-writable directory
//! (`/tmp`) is accepted as an ancestor when the entry on our path inside it
//! is owned by root or tickwatch's user. The sticky bit stops other users
//! from renaming or removing that entry, so they cannot swap what lies
//! below it, and they cannot have created it with our ownership. (OpenSSH
//! refuses `/tmp` outright; a build tree or install prefix under a private
//! `mktemp -d` directory is common enough, and just as safe, to keep.) A
//! plugin file itself is never accepted in a world-writable directory, sticky
//! or not, unless the file is ours: that case is the same rule.
//!
//! The file is then opened once and checked again through that descriptor
//! (it must be the very file the path checks saw), and the loader `dlopen`s
//! the descriptor (`/proc/self/fd/N`), so the file cannot be swapped between
//! the check and the load.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A plugin file opened after its checks, and what was checked.
#[derive(Debug)]
pub struct Checked {
    /// The open file: load this, not the path.
    pub file: File,
    /// The path with every symlink resolved.
    pub resolved: PathBuf,
}

/// Root's user and group id.
const ROOT: u32 = 0;

fn whoami() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why `meta` (of `path`, a plugin file or one of its directories) may not
/// be trusted, if it may not. `child` is the entry on our path inside a
/// directory, with its owner: a sticky directory may be world-writable when
/// that entry is ours.
fn verdict(
    path: &Path,
    meta: &std::fs::Metadata,
    what: &str,
    me: u32,
    child: Option<(&Path, u32)>,
) -> Result<(), String> {
    let mode = meta.mode();
    if meta.uid() != ROOT && meta.uid() != me {
        return Err(format!(
            "{what} {} is owned by uid {}, neither root nor the user running tickwatch (uid {me}); \
             refusing to load plugins from it",
            path.display(),
            meta.uid()
        ));
    }
    let refusing =
        if meta.is_dir() { "refusing to load plugins below it" } else { "refusing to load it" };
    let sticky = mode & 0o1000 != 0;
    let ours = |uid: u32| uid == ROOT || uid == me;
    match child {
        _ if mode & 0o002 == 0 => {}
        Some((_, owner)) if sticky && ours(owner) => {}
        Some((entry, owner)) if sticky => {
            return Err(format!(
                "{what} {} is writable by other users and its entry {} is owned by uid {owner}, \
                 neither root nor the user running tickwatch (uid {me}); {refusing}",
                path.display(),
                entry.display()
            ));
        }
        _ => {
            return Err(format!(
                "{what} {} is writable by other users; {refusing} (chmod o-w it, or keep \
                 plugins elsewhere)",
                path.display()
            ));
        }
    }
    if mode & 0o020 != 0 && meta.gid() != ROOT {
        return Err(format!(
            "{what} {} is writable by its group (gid {}); {refusing} (chmod g-w it)",
            path.display(),
            meta.gid()
        ));
    }
    Ok(())
}

/// Checks `path` and every directory above it, then opens it and checks the
/// opened file is the one checked.
pub fn open_checked(path: &Path) -> Result<Checked, String> {
    let me = whoami();
    let resolved =
        path.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let stat =
        |p: &Path| std::fs::metadata(p).map_err(|e| format!("cannot inspect {}: {e}", p.display()));
    let checked = stat(&resolved)?;
    if !checked.is_file() {
        return Err(format!("{} is not a regular file", resolved.display()));
    }
    // The file itself first: its own problem is the most useful to report.
    verdict(&resolved, &checked, "plugin file", me, None)
        .map_err(|e| reword_file(e, path, &resolved))?;
    let mut child: (&Path, u32) = (&resolved, checked.uid());
    let mut dir = resolved.parent();
    let mut first = true;
    while let Some(d) = dir {
        let what = if first { "its directory" } else { "directory" };
        let meta = stat(d)?;
        verdict(d, &meta, what, me, Some(child))?;
        child = (d, meta.uid());
        first = false;
        dir = d.parent();
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&resolved)
        .map_err(|e| format!("cannot open {}: {e}", resolved.display()))?;
    let opened =
        file.metadata().map_err(|e| format!("cannot inspect {}: {e}", resolved.display()))?;
    if (opened.dev(), opened.ino()) != (checked.dev(), checked.ino()) {
        return Err(format!("{} changed while it was being checked", resolved.display()));
    }
    verdict(&resolved, &opened, "plugin file", me, None)?;
    Ok(Checked { file, resolved })
}

/// The file's own message names the path as given (and where it leads).
fn reword_file(e: String, given: &Path, resolved: &Path) -> String {
    if given == resolved {
        e
    } else {
        format!("{} (a link to {}): {e}", given.display(), resolved.display())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private directory under the build's target dir (never under /tmp,
    /// which is world-writable and so never a trusted ancestor).
    fn private_dir() -> tempfile::TempDir {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
        std::fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(base.canonicalize().unwrap()).unwrap()
    }

    #[test]
    fn a_private_file_passes_and_an_open_handle_comes_back() {
        let d = private_dir();
        chmod(d.path(), 0o755);
        let f = d.path().join("libx.so");
        std::fs::write(&f, b"x").unwrap();
        chmod(&f, 0o644);
        let c = open_checked(&f).unwrap();
        assert_eq!(c.resolved, f.canonicalize().unwrap());
    }

    #[test]
    fn writable_files_and_directories_are_refused_by_name() {
        let d = private_dir();
        chmod(d.path(), 0o755);
        let f = d.path().join("libx.so");
        std::fs::write(&f, b"x").unwrap();
        chmod(&f, 0o666);
        assert!(open_checked(&f).unwrap_err().contains("is writable by other users"));
        chmod(&f, 0o644);
        chmod(d.path(), 0o777);
        let e = open_checked(&f).unwrap_err();
        assert!(e.starts_with("its directory") && e.contains("writable by other users"), "{e}");
        chmod(d.path(), 0o755);
    }

    #[test]
    fn a_world_writable_ancestor_is_refused_unless_sticky_with_our_entry() {
        let d = private_dir();
        let open = d.path().join("shared");
        let inner = open.join("plugins");
        std::fs::create_dir_all(&inner).unwrap();
        let f = inner.join("libx.so");
        std::fs::write(&f, b"x").unwrap();
        chmod(&open, 0o777);
        let e = open_checked(&f).unwrap_err();
        assert!(e.contains(&open.display().to_string()) && e.contains("writable by other"), "{e}");
        // Sticky, and the entry inside it is ours: no one else can move it.
        chmod(&open, 0o1777);
        open_checked(&f).unwrap();
        // Sticky, but the entry belongs to someone else (needs root to arrange).
        if whoami() == ROOT {
            let c = std::ffi::CString::new(inner.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path and plain ids.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
            let e = open_checked(&f).unwrap_err();
            assert!(e.contains("is owned by uid 65534"), "{e}");
        }
        chmod(&open, 0o755);
    }

    #[test]
    fn a_link_is_judged_by_where_it_points() {
        let d = private_dir();
        let open = d.path().join("open");
        std::fs::create_dir_all(&open).unwrap();
        let target = open.join("libreal.so");
        std::fs::write(&target, b"x").unwrap();
        chmod(&open, 0o777);
        let safe = d.path().join("safe");
        std::fs::create_dir_all(&safe).unwrap();
        let link = safe.join("libx.so");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_checked(&link).unwrap_err();
        assert!(e.contains(&open.display().to_string()), "{e}");
        chmod(&open, 0o755);
    }
}
