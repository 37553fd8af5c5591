//! `Loader`: `dlopen` a detector plugin, check its ABI, and call it safely.
//!
//! Owns: every `unsafe` call across the plugin boundary. Everything above this
//! module sees [`Plugin`] and [`DetectorInstance`], which are safe to use.
//! Trust model: only files in the configured plugin directories are loaded
//! (loading a library runs its initializers; see docs/plugin-abi.md).
#![deny(clippy::print_stdout)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tickwatch_plugin_api::abi::{
    self, ABI_VERSION, ENTRY_SYMBOL, EntryFn, PluginDescriptor, RawBuf, RawResult, RawStr, Status,
};
use tickwatch_plugin_api::{OptionSpec, Options, Verdict};

use crate::options::{FIELD_OPTION, FIELD_TAG_OPTION};

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `dlopen` failed (not a shared library, missing dependency, ...).
    #[error("cannot load {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library has no tickwatch entry symbol: it is not a detector plugin.
    #[error("{path} is not a tickwatch plugin: no `tickwatch_detector_entry` symbol")]
    MissingSymbol {
        /// The file.
        path: PathBuf,
    },
    /// Built against another ABI version of tickwatch-plugin-api.
    #[error(
        "{path} speaks plugin ABI {found}, this tickwatch speaks {expected}; rebuild it against a matching tickwatch-plugin-api"
    )]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The descriptor is malformed (null, too small, bad strings or specs).
    #[error("{path} has a malformed plugin descriptor: {reason}")]
    BadDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A failure reported by a loaded detector.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The detector refused (bad options, bad state bytes).
    #[error("{0}")]
    Refused(String),
    /// The detector panicked; its instance is unusable.
    #[error("detector {detector} panicked: {message}")]
    Panicked {
        /// Detector name.
        detector: String,
        /// The panic message.
        message: String,
    },
    /// The detector returned bytes the host cannot decode.
    #[error("detector {detector} returned malformed data: {reason}")]
    BadReply {
        /// Detector name.
        detector: String,
        /// What is wrong.
        reason: String,
    },
}

/// A loaded detector plugin. Keeps its library mapped while any
/// [`DetectorInstance`] made from it lives.
pub struct Plugin {
    desc: &'static PluginDescriptor,
    name: String,
    version: String,
    path: PathBuf,
    options: Vec<OptionSpec>,
    // Dropped last: `desc` points into this library.
    _lib: libloading::Library,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish()
    }
}

/// Copies a plugin-owned result out and hands the buffer back to the plugin.
fn take(desc: &PluginDescriptor, r: RawResult) -> (u32, Vec<u8>) {
    let RawResult { status, buf } = r;
    let bytes = {
        let view = RawStr { ptr: buf.ptr, len: buf.len };
        // SAFETY: the plugin returned `buf` as `len` initialized bytes it owns
        // until we call `free_buf`, which happens right after this copy.
        unsafe { view.as_slice() }.to_vec()
    };
    let RawBuf { ptr, len, cap } = buf;
    // SAFETY: returning the buffer, once, to the module that allocated it.
    unsafe { (desc.free_buf)(RawBuf { ptr, len, cap }) };
    (status, bytes)
}

impl Plugin {
    /// Loads the plugin at `path` and checks its ABI.
    pub fn load(path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let path = path.to_path_buf();
        // SAFETY: loading a library runs its initializers. We only load files
        // from the configured plugin directories, which the operator trusts
        // like the binary itself (docs/plugin-abi.md, "Trust").
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| LoadError::Open { path: path.clone(), reason: e.to_string() })?;
        // SAFETY: `EntryFn` is the documented type of ENTRY_SYMBOL in every ABI
        // version; a library exporting the name with another type breaks the
        // plugin contract and cannot be detected here.
        let entry: EntryFn = unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL) }
            .map(|s| *s)
            .map_err(|_| LoadError::MissingSymbol { path: path.clone() })?;
        // SAFETY: calling the plugin's entry point, which takes no arguments
        // and returns a pointer to a static descriptor.
        let raw = unsafe { entry() };
        if raw.is_null() {
            return Err(LoadError::BadDescriptor { path, reason: "entry returned null".into() });
        }
        // SAFETY: every ABI version starts the descriptor with `abi_version:
        // u32` then `descriptor_size: u32`, so these two reads are valid
        // before we know the version.
        let (found, size) = unsafe {
            let header = raw.cast::<u32>();
            (header.read(), header.add(1).read())
        };
        if found != ABI_VERSION {
            return Err(LoadError::AbiMismatch { path, found, expected: ABI_VERSION });
        }
        if (size as usize) < std::mem::size_of::<PluginDescriptor>() {
            return Err(LoadError::BadDescriptor {
                path,
                reason: format!(
                    "descriptor is {size} bytes, ABI {ABI_VERSION} needs {}",
                    std::mem::size_of::<PluginDescriptor>()
                ),
            });
        }
        // SAFETY: the version and size match ours, so `raw` points to a
        // descriptor of our layout in static memory of `lib`, which this
        // Plugin keeps loaded for as long as the reference is used.
        let desc: &'static PluginDescriptor = unsafe { &*raw };
        let text = |s: RawStr, what: &str| -> Result<String, LoadError> {
            // SAFETY: descriptor strings point to 'static bytes in the library.
            let bytes = unsafe { s.as_slice() };
            String::from_utf8(bytes.to_vec()).map_err(|_| LoadError::BadDescriptor {
                path: path.clone(),
                reason: format!("{what} is not UTF-8"),
            })
        };
        let name = text(desc.name, "name")?;
        let version = text(desc.version, "version")?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(LoadError::BadDescriptor {
                path,
                reason: format!("detector name {name:?} must be non-empty without spaces"),
            });
        }
        // SAFETY: calling the plugin's option_specs shim (no arguments).
        let (status, bytes) = take(desc, unsafe { (desc.option_specs)() });
        if status != Status::Ok as u32 {
            return Err(LoadError::BadDescriptor {
                path,
                reason: format!("option_specs failed: {}", String::from_utf8_lossy(&bytes)),
            });
        }
        let options = abi::decode_specs(&bytes).map_err(|e| LoadError::BadDescriptor {
            path: path.clone(),
            reason: format!("option specs: {e}"),
        })?;
        for (i, spec) in options.iter().enumerate() {
            if spec.name == FIELD_OPTION || spec.name == FIELD_TAG_OPTION {
                return Err(LoadError::BadDescriptor {
                    path,
                    reason: format!("declares option {:?}, which tickwatch reserves", spec.name),
                });
            }
            if options[..i].iter().any(|s| s.name == spec.name) {
                return Err(LoadError::BadDescriptor {
                    path,
                    reason: format!("declares option {:?} twice", spec.name),
                });
            }
        }
        Ok(Arc::new(Plugin { desc, name, version, path, options, _lib: lib }))
    }

    /// The detector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The detector's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The detector's state format version.
    pub fn state_version(&self) -> u32 {
        self.desc.state_version
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it declares.
    pub fn options(&self) -> &[OptionSpec] {
        &self.options
    }

    fn error(&self, status: u32, bytes: Vec<u8>) -> PluginError {
        let message = String::from_utf8_lossy(&bytes).into_owned();
        if status == Status::Error as u32 {
            PluginError::Refused(message)
        } else if status == Status::Panic as u32 {
            PluginError::Panicked { detector: self.name.clone(), message }
        } else {
            PluginError::BadReply {
                detector: self.name.clone(),
                reason: format!("unknown status {status}: {message}"),
            }
        }
    }

    /// Builds one detector instance from validated options.
    pub fn create(self: &Arc<Self>, options: &Options) -> Result<DetectorInstance, PluginError> {
        let bytes = abi::encode_options(options);
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: `bytes` lives across the call; `handle` is a valid out pointer.
        let r = unsafe { (self.desc.create)(RawStr::from_slice(&bytes), &mut handle) };
        let (status, msg) = take(self.desc, r);
        if status != Status::Ok as u32 {
            return Err(self.error(status, msg));
        }
        if handle.is_null() {
            return Err(PluginError::BadReply {
                detector: self.name.clone(),
                reason: "create returned a null handle".into(),
            });
        }
        Ok(DetectorInstance { plugin: Arc::clone(self), handle, broken: None })
    }
}

/// One live detector (one per group and field).
pub struct DetectorInstance {
    plugin: Arc<Plugin>,
    handle: *mut c_void,
    /// Set after a panic: the instance must not be called again.
    broken: Option<PluginError>,
}

impl std::fmt::Debug for DetectorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorInstance").field("plugin", &self.plugin.name).finish()
    }
}

// SAFETY: `Detector: Send` is required by the plugin API, so the handle may
// move between threads; `&mut self` on every call keeps calls serialized.
unsafe impl Send for DetectorInstance {}

impl DetectorInstance {
    fn call(&mut self, r: impl FnOnce(*mut c_void) -> RawResult) -> Result<Vec<u8>, PluginError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let (status, bytes) = take(self.plugin.desc, r(self.handle));
        if status == Status::Ok as u32 {
            return Ok(bytes);
        }
        let e = self.plugin.error(status, bytes);
        if matches!(e, PluginError::Panicked { .. }) {
            self.broken = Some(e.clone());
        }
        Err(e)
    }

    /// Scores one window (finite values only).
    pub fn score(&mut self, window: &[f64]) -> Result<Option<Verdict>, PluginError> {
        let score = self.plugin.desc.score;
        // SAFETY: live handle; `window` outlives the call.
        let bytes = self.call(|h| unsafe { score(h, window.as_ptr(), window.len()) })?;
        abi::decode_verdict(&bytes).map_err(|e| PluginError::BadReply {
            detector: self.plugin.name.clone(),
            reason: e.to_string(),
        })
    }

    /// The detector's state bytes.
    pub fn save(&mut self) -> Result<Vec<u8>, PluginError> {
        let save = self.plugin.desc.save;
        // SAFETY: live handle.
        self.call(|h| unsafe { save(h) })
    }

    /// Replaces the detector's state.
    pub fn load(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let load = self.plugin.desc.load;
        // SAFETY: live handle; `state` outlives the call.
        self.call(|h| unsafe { load(h, RawStr::from_slice(state)) }).map(|_| ())
    }

    /// The detector's description of its state, as a JSON object.
    pub fn describe(&mut self) -> Result<String, PluginError> {
        let describe = self.plugin.desc.describe;
        // SAFETY: live handle.
        let bytes = self.call(|h| unsafe { describe(h) })?;
        String::from_utf8(bytes).map_err(|_| PluginError::BadReply {
            detector: self.plugin.name.clone(),
            reason: "describe returned non-UTF-8".into(),
        })
    }
}

impl Drop for DetectorInstance {
    fn drop(&mut self) {
        // SAFETY: the handle came from this plugin's `create` and is dropped
        // once; `self.plugin` keeps the library loaded during the call.
        unsafe { (self.plugin.desc.destroy)(self.handle) };
    }
}
