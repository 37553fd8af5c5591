//! `Registry`: the detectors found in the plugin directories, by name.
//!
//! Every file with the platform's shared-library suffix in a plugin directory
//! is tried; files that fail to load are kept with their reason and never
//! stop the others from loading.
#![deny(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::loader::Plugin;
use crate::node::DetectorFactory;

/// Why the detector asked for cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RequireError {
    /// Two files provide it.
    #[error("cannot serve detector {name:?}: {reason}")]
    Conflict {
        /// The detector.
        name: String,
        /// Which files.
        reason: String,
    },
    /// No file provides it.
    #[error(
        "unknown detector {name:?}{suggestion}; detectors found: {found} (searched \
         {searched}){failures}\n  \
         to install one, put its libtickwatch_<name>.so in one of those directories (an \
         installed tickwatch looks in PREFIX/lib/tickwatch/plugins), or point --plugin-dir or \
         TICKWATCH_PLUGIN_DIR at the directory holding it"
    )]
    Unknown {
        /// The detector.
        name: String,
        /// The detectors found, comma-separated, or "none".
        found: String,
        /// The directories searched.
        searched: String,
        /// One line per file that failed to load.
        failures: String,
        /// ` (did you mean "x"?)` for a near miss, else empty.
        suggestion: String,
    },
}

/// Detectors by name, and the files that failed to load.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    failures: Vec<(PathBuf, String)>,
    /// Detector names provided by more than one file, with the reason.
    conflicts: Vec<(String, String)>,
}

/// The default plugin directories: `<exe dir>/../lib/tickwatch/plugins`
/// (an installed layout: `PREFIX/bin/tickwatch` with
/// `PREFIX/lib/tickwatch/plugins/*.so`), the binary's own directory, then
/// `<exe dir>/plugins`.
///
/// When the binary runs from a Cargo target directory (`target/debug` or
/// `target/release`), `<exe dir>/deps` is searched first, for the workspace's
/// own plugins only (`libtickwatch_*`): `cargo run` builds the shipped plugins
/// as dependencies of the engine and Cargo leaves them there, while the copy
/// next to the binary is refreshed only by `cargo build`, so it may be stale.
pub fn default_dirs() -> Vec<PathBuf> {
    let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let mut dirs = Vec::with_capacity(4);
    if is_cargo_profile_dir(&dir) {
        dirs.push(dir.join(CARGO_DEPS));
    }
    if let Some(prefix) = dir.parent() {
        dirs.push(prefix.join(INSTALLED_PLUGINS));
    }
    dirs.push(dir.clone());
    dirs.push(dir.join("plugins"));
    dirs
}

const CARGO_DEPS: &str = "deps";
/// Where an installed tickwatch keeps its plugins, relative to its prefix.
pub const INSTALLED_PLUGINS: &str = "lib/tickwatch/plugins";
const WORKSPACE_PLUGIN_PREFIX: &str = "libtickwatch_";

fn is_cargo_profile_dir(dir: &Path) -> bool {
    let profile = dir.file_name().and_then(|n| n.to_str());
    matches!(profile, Some("debug" | "release")) && dir.join(CARGO_DEPS).is_dir()
}

fn is_library(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // The name first: it costs no system call (a directory may hold many
    // other files, a Cargo profile directory does).
    if !name.ends_with(std::env::consts::DLL_SUFFIX) || !path.is_file() {
        return false;
    }
    // In a Cargo deps directory, skip proc-macro and other build artifacts.
    let in_cargo_deps = path.parent().is_some_and(|d| {
        d.file_name().is_some_and(|n| n == CARGO_DEPS)
            && d.parent().is_some_and(is_cargo_profile_dir)
    });
    !in_cargo_deps || name.starts_with(WORKSPACE_PLUGIN_PREFIX)
}

/// Whether `copy` is Cargo's copy, next to the binary, of `original` in the
/// profile's deps/ directory.
fn is_cargo_uplift_of(copy: &Path, original: &Path) -> bool {
    let (Some(dir), Some(odir)) = (copy.parent(), original.parent()) else { return false };
    copy.file_name() == original.file_name()
        && odir.file_name().is_some_and(|n| n == CARGO_DEPS)
        && odir.parent() == Some(dir)
        && is_cargo_profile_dir(dir)
}

/// Device and inode: Cargo hard-links a plugin from `deps/` next to the
/// binary, so one file can appear under two names.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Registry {
    /// Loads every plugin file in `dirs` (missing directories are skipped).
    pub fn discover(dirs: &[PathBuf]) -> Registry {
        Self::discover_wanting(dirs, |_| true)
    }

    /// Like [`Registry::discover`], but a file that declares a detector name
    /// `wanted` refuses (`export_detector!` writes it into the file, see
    /// [`super::section`]) is checked and not loaded. Files that declare no
    /// name are loaded to learn it.
    fn discover_wanting(dirs: &[PathBuf], wanted: impl Fn(&str) -> bool) -> Registry {
        let mut reg = Registry::default();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_library(p))
                .collect();
            files.sort();
            for path in files {
                match Plugin::load_if(&path, &wanted) {
                    Ok(Some(p)) => reg.add(p),
                    Ok(None) => tracing::debug!("not loading {}: another detector", path.display()),
                    Err(e) => {
                        tracing::debug!("skipping {}: {e}", path.display());
                        reg.failures.push((path, e.to_string()));
                    }
                }
            }
        }
        reg
    }

    fn add(&mut self, plugin: Arc<Plugin>) {
        let id = file_id(plugin.path());
        let same_file = |p: &Arc<Plugin>| id.is_some() && file_id(p.path()) == id;
        if self.plugins.iter().any(same_file) {
            return;
        }
        if let Some(first) = self.plugins.iter().find(|p| p.name() == plugin.name()) {
            if is_cargo_uplift_of(plugin.path(), first.path()) {
                // `cargo build` copies a plugin from deps/ next to the binary;
                // deps/ is searched first and holds the fresher build.
                tracing::debug!(
                    "using {} over its older copy {}",
                    first.path().display(),
                    plugin.path().display()
                );
                return;
            }
            let reason = format!(
                "detector {} is provided by both {} and {}; remove one of the two files",
                plugin.name(),
                first.path().display(),
                plugin.path().display()
            );
            self.failures.push((plugin.path().to_path_buf(), reason.clone()));
            self.conflicts.push((plugin.name().to_string(), reason));
            return;
        }
        self.plugins.push(plugin);
    }

    /// Why `name` cannot be used, if two files provide it.
    pub fn conflict(&self, name: &str) -> Option<&str> {
        self.conflicts.iter().find(|(n, _)| n == name).map(|(_, r)| r.as_str())
    }

    /// The detector called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// The detector called `name` from the plugins in `dirs`: fails with the
    /// detectors found and why each other file did not load; when found,
    /// logs a warning per file that did not load.
    ///
    /// Files declaring another detector's name are not loaded (each file is
    /// still checked, and two files providing `name` are still refused);
    /// only when `name` is not found is every file loaded, to list what is
    /// there.
    pub fn require(name: &str, dirs: &[PathBuf]) -> Result<Arc<Plugin>, RequireError> {
        let registry = Registry::discover_wanting(dirs, |declared| declared == name);
        if let Some(reason) = registry.conflict(name) {
            return Err(RequireError::Conflict { name: name.into(), reason: reason.into() });
        }
        if let Some(p) = registry.get(name) {
            for (path, reason) in registry.failures() {
                tracing::warn!("plugin file {} not loaded: {reason}", path.display());
            }
            return Ok(Arc::clone(p));
        }
        let registry = Registry::discover(dirs);
        let names = registry.names();
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        // A near miss (edit distance ≤ 2, or one contains the other).
        let suggestion = names
            .iter()
            .map(|n| (strsim::levenshtein(n, name), *n))
            .filter(|(d, n)| *d <= 2 || n.contains(name) || name.contains(n))
            .min()
            .map(|(_, n)| format!(" (did you mean {n:?}?)"))
            .unwrap_or_default();
        Err(RequireError::Unknown {
            suggestion,
            name: name.into(),
            found: if names.is_empty() { "none".into() } else { names.join(", ") },
            searched: searched.join(", "),
            failures: registry
                .failures()
                .iter()
                .map(|(path, reason)| format!("\n  could not load {}: {reason}", path.display()))
                .collect(),
        })
    }

    /// All loaded detectors, in discovery order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Files that failed to load, with the reason.
    pub fn failures(&self) -> &[(PathBuf, String)] {
        &self.failures
    }

    /// The names found, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_deps_dir_yields_only_workspace_plugins() {
        let t = tempfile::tempdir().unwrap();
        let deps = t.path().join("release").join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        let suffix = std::env::consts::DLL_SUFFIX;
        let ours = deps.join(format!("libtickwatch_ttest{suffix}"));
        let macro_lib = deps.join(format!("libclap_derive-0123{suffix}"));
        let elsewhere = t.path().join(format!("libclap_derive-0123{suffix}"));
        for f in [&ours, &macro_lib, &elsewhere] {
            std::fs::write(f, b"x").unwrap();
        }
        assert!(is_library(&ours));
        assert!(!is_library(&macro_lib), "proc-macro dylibs in deps/ are never loaded");
        assert!(is_library(&elsewhere), "outside deps/ any shared library is a candidate");
        assert!(!is_library(&t.path().join("release")));
    }
}
