//! `Registry`: the detectors found in the plugin directories, by name.
//!
//! Every file with the platform's shared-library suffix in a plugin directory
//! is tried; files that fail to load are kept with their reason and never
//! stop the others from loading.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::loader::Plugin;

/// Detectors by name, and the files that failed to load.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    failures: Vec<(PathBuf, String)>,
}

/// The default plugin directories: the binary's own directory, then
/// `<exe dir>/plugins`.
pub fn default_dirs() -> Vec<PathBuf> {
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    vec![dir.clone(), dir.join("plugins")]
}

fn is_library(path: &Path) -> bool {
    path.is_file()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(std::env::consts::DLL_SUFFIX))
}

impl Registry {
    /// Loads every plugin file in `dirs` (missing directories are skipped).
    pub fn discover(dirs: &[PathBuf]) -> Registry {
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
                match Plugin::load(&path) {
                    Ok(p) => reg.add(p),
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
        let same_file =
            |p: &Arc<Plugin>| p.path().canonicalize().ok() == plugin.path().canonicalize().ok();
        if self.plugins.iter().any(same_file) {
            return;
        }
        if let Some(first) = self.plugins.iter().find(|p| p.name() == plugin.name()) {
            let reason = format!(
                "detector {} is also provided by {}; remove one of the two files",
                plugin.name(),
                first.path().display()
            );
            self.failures.push((plugin.path().to_path_buf(), reason));
            return;
        }
        self.plugins.push(plugin);
    }

    /// The detector called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.name() == name)
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
