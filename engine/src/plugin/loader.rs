//! `Loader`: `dlopen` a detector plugin, check its ABI, and call it safely.
//!
//! Owns: every `unsafe` call across the plugin boundary. Everything above this
//! module sees [`Plugin`] and [`DetectorInstance`], which are safe to use.
//! Trust model: only files in the configured plugin directories that pass
//! `plugin::trust` are loaded, through the descriptor that was checked
//! (loading a library runs its initializers; see docs/plugin-abi.md).
#![deny(clippy::print_stdout)]

use std::ffi::c_void;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tickwatch_plugin_api::abi::{
    self, ABI_VERSION, ENTRY_SYMBOL, EntryFn, PluginDescriptor, RawBuf, RawChanges, RawResult,
    RawStr, SAVE_CHANGES_SYMBOL, SAVE_CHANGES_VIEW_SYMBOL, STATE_OPTIONS_SYMBOL, SaveChangesFn,
    SaveChangesViewFn, StateOptionsFn, Status,
};
use tickwatch_plugin_api::{OptionSpec, Options, StateChanges, Verdict};

use crate::node::{DetectorError, DetectorFactory, DetectorHandle};
use tickwatch_plugin_api::options::RESERVED_OPTION_NAMES;

/// The longest state a detector may report changes of (1 GiB: a store
/// reads no more back either).
const MAX_STATE_LEN: u64 = 1 << 30;

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file, or a directory above it, is not one only a trusted user
    /// could have written (see `plugin::trust`); it was not loaded.
    #[error("{reason}")]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Which path and why.
        reason: String,
    },
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

/// A mapped plugin library and its descriptor; shared by the [`Plugin`] and
/// every [`DetectorInstance`] made from it, so the code stays mapped while
/// any of them lives.
struct Library {
    desc: &'static PluginDescriptor,
    name: String,
    /// The optional [`SAVE_CHANGES_SYMBOL`] (plugins built before it lack
    /// it: the host then takes whole states).
    save_changes: Option<SaveChangesFn>,
    /// The optional [`SAVE_CHANGES_VIEW_SYMBOL`] (the same answer, borrowed
    /// rather than encoded into a buffer of its own; preferred).
    save_changes_view: Option<SaveChangesViewFn>,
    // Dropped after `desc`'s last use: `desc` points into this library.
    _lib: libloading::Library,
    // The descriptor the library was loaded through (`/proc/self/fd/N`):
    // open for as long as the library is, so no later load reuses the name
    // (the dynamic loader would hand back this library for it).
    _file: std::fs::File,
}

/// A loaded detector plugin.
pub struct Plugin {
    lib: Arc<Library>,
    version: String,
    path: PathBuf,
    options: Vec<OptionSpec>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.lib.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish()
    }
}

/// An error with its sources: libloading's says "dlopen failed" and keeps
/// the dynamic loader's own words (which file, which symbol) in its source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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
        let (checked, declared) = Self::check(path)?;
        Self::load_checked(path.to_path_buf(), checked, declared)
    }

    /// Loads the plugin at `path` unless the name it declares in its
    /// [`NAME_SECTION`](super::section::NAME_SECTION) is not `wanted`
    /// (`Ok(None)`: the file was checked and read, not loaded). A file that
    /// declares no name is loaded, as [`Plugin::load`] does.
    pub fn load_if(
        path: &Path,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Option<Arc<Plugin>>, LoadError> {
        let (checked, declared) = Self::check(path)?;
        if declared.as_deref().is_some_and(|name| !wanted(name)) {
            return Ok(None);
        }
        Self::load_checked(path.to_path_buf(), checked, declared).map(Some)
    }

    /// Opens `path` if it may be loaded (checked before dlopen: loading a
    /// library runs its code), and reads the name it declares.
    fn check(path: &Path) -> Result<(super::trust::Checked, Option<String>), LoadError> {
        let checked = super::trust::open_checked(path)
            .map_err(|reason| LoadError::Untrusted { path: path.to_path_buf(), reason })?;
        let declared = super::section::declared_name(&checked.file);
        Ok((checked, declared))
    }

    /// Loads a checked file through its descriptor, not its path.
    fn load_checked(
        path: PathBuf,
        checked: super::trust::Checked,
        declared: Option<String>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let by_fd = format!("/proc/self/fd/{}", checked.file.as_raw_fd());
        // RTLD_NOW: a plugin with an unresolved symbol fails here, at load,
        // not in the middle of a stream when the symbol is first called.
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        let lib: libloading::Library =
            // SAFETY: loading a library runs its initializers. We only load
            // files from the configured plugin directories, which the operator
            // trusts like the binary itself (docs/plugin-abi.md, "Trust").
            unsafe { libloading::os::unix::Library::open(Some(&by_fd), flags) }
                .map_err(|e| LoadError::Open { path: path.clone(), reason: error_chain(&e) })?
                .into();
        let described = describe(&lib, path.clone()).and_then(|d| match &declared {
            Some(section) if *section != d.name => Err(LoadError::BadDescriptor {
                path: path.clone(),
                reason: format!(
                    "its {} section names detector {section:?} but it provides {:?}",
                    super::section::NAME_SECTION,
                    d.name
                ),
            }),
            _ => Ok(d),
        });
        match described {
            Ok(Described { desc, name, version, options }) => {
                // SAFETY: `SaveChangesFn` is the documented type of
                // SAVE_CHANGES_SYMBOL; as for the entry symbol, a library
                // exporting the name with another type breaks the plugin
                // contract. The pointer is used only while `lib` is loaded
                // (both live in the same `Library`).
                let save_changes =
                    unsafe { lib.get::<SaveChangesFn>(SAVE_CHANGES_SYMBOL) }.ok().map(|f| *f);
                // SAFETY: as above, for SAVE_CHANGES_VIEW_SYMBOL and its
                // documented type.
                let save_changes_view =
                    unsafe { lib.get::<SaveChangesViewFn>(SAVE_CHANGES_VIEW_SYMBOL) }
                        .ok()
                        .map(|f| *f);
                let lib = Arc::new(Library {
                    desc,
                    name,
                    save_changes,
                    save_changes_view,
                    _lib: lib,
                    _file: checked.file,
                });
                Ok(Arc::new(Plugin { lib, version, path, options }))
            }
            Err(e) => {
                // A refused library may stay mapped (dlclose need not unload
                // it): its descriptor stays open too, so its
                // `/proc/self/fd/N` name is never given to another file.
                let _ = checked.file.into_raw_fd();
                Err(e)
            }
        }
    }
}

/// What a loaded library declares about itself.
struct Described {
    desc: &'static PluginDescriptor,
    name: String,
    version: String,
    options: Vec<OptionSpec>,
}

/// Checks a freshly loaded library's ABI and descriptor. `desc` points into
/// `lib`: the caller keeps `lib` loaded for as long as it uses `desc`.
fn describe(lib: &libloading::Library, path: PathBuf) -> Result<Described, LoadError> {
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
    if (size as usize) < abi::BASE_DESCRIPTOR_SIZE {
        return Err(LoadError::BadDescriptor {
            path,
            reason: format!(
                "descriptor is {size} bytes, ABI {ABI_VERSION} needs {}",
                abi::BASE_DESCRIPTOR_SIZE
            ),
        });
    }
    let desc: &'static PluginDescriptor =
        if (size as usize) >= std::mem::size_of::<PluginDescriptor>() {
            // SAFETY: the version matches ours and the size covers our layout,
            // so `raw` points to a descriptor of our layout in static memory of
            // `lib`, which this Plugin keeps loaded for as long as the
            // reference is used.
            unsafe { &*raw }
        } else {
            // A plugin built before fields were appended to the ABI 1
            // descriptor: copy the base it has and fill the rest with the
            // defaults, once per loaded library (a few dozen bytes).
            let mut full = std::mem::MaybeUninit::<PluginDescriptor>::uninit();
            // SAFETY: `raw` points to at least BASE_DESCRIPTOR_SIZE readable
            // bytes (checked above) laid out as our descriptor's prefix; the
            // destination is a fresh, large enough, non-overlapping buffer.
            // `min_window`, the only field past the base, is written next, so
            // every field is initialized before `assume_init`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    raw.cast::<u8>(),
                    full.as_mut_ptr().cast::<u8>(),
                    abi::BASE_DESCRIPTOR_SIZE,
                );
                std::ptr::addr_of_mut!((*full.as_mut_ptr()).min_window).write(2);
                Box::leak(Box::new(full.assume_init()))
            }
        };
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
    let mut options = abi::decode_specs(&bytes).map_err(|e| LoadError::BadDescriptor {
        path: path.clone(),
        reason: format!("option specs: {e}"),
    })?;
    // Which options shape the state: an optional symbol added within ABI 1.
    // A plugin built before it lacks it, and every option then shapes the
    // state (as its state was fingerprinted).
    // SAFETY: `StateOptionsFn` is the documented type of
    // STATE_OPTIONS_SYMBOL; as for the entry symbol, a library exporting
    // the name with another type breaks the plugin contract.
    if let Ok(state_options) = unsafe { lib.get::<StateOptionsFn>(STATE_OPTIONS_SYMBOL) } {
        // SAFETY: calling the plugin's no-argument state-options shim; its
        // buffer is freed by the same library's `free_buf` in `take`.
        let (status, bytes) = take(desc, unsafe { state_options() });
        if status != Status::Ok as u32 {
            return Err(LoadError::BadDescriptor {
                path,
                reason: format!("state_options failed: {}", String::from_utf8_lossy(&bytes)),
            });
        }
        abi::apply_state_options(&bytes, &mut options).map_err(|e| LoadError::BadDescriptor {
            path: path.clone(),
            reason: format!("state options: {e}"),
        })?;
    }
    for (i, spec) in options.iter().enumerate() {
        if RESERVED_OPTION_NAMES.contains(&spec.name.as_str()) {
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
    Ok(Described { desc, name, version, options })
}

impl Plugin {
    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds one detector instance from validated options.
    pub fn instance(&self, options: &Options) -> Result<DetectorInstance, DetectorError> {
        let desc = self.lib.desc;
        let bytes = abi::encode_options(options);
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: `bytes` lives across the call; `handle` is a valid out pointer.
        let r = unsafe { (desc.create)(RawStr::from_slice(&bytes), &mut handle) };
        let (status, msg) = take(desc, r);
        if status != Status::Ok as u32 {
            return Err(self.lib.error(status, msg));
        }
        if handle.is_null() {
            return Err(DetectorError::BadReply {
                detector: self.lib.name.clone(),
                reason: "create returned a null handle".into(),
            });
        }
        Ok(DetectorInstance { lib: Arc::clone(&self.lib), handle, broken: None })
    }
}

impl Library {
    fn error(&self, status: u32, bytes: Vec<u8>) -> DetectorError {
        let message = String::from_utf8_lossy(&bytes).into_owned();
        if status == Status::Error as u32 {
            DetectorError::Refused(message)
        } else if status == Status::Panic as u32 {
            DetectorError::Panicked { detector: self.name.clone(), message }
        } else {
            DetectorError::BadReply {
                detector: self.name.clone(),
                reason: format!("unknown status {status}: {message}"),
            }
        }
    }
}

impl DetectorFactory for Plugin {
    fn name(&self) -> &str {
        &self.lib.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn state_version(&self) -> u32 {
        self.lib.desc.state_version
    }

    fn min_window(&self) -> u32 {
        self.lib.desc.min_window
    }

    fn options(&self) -> &[OptionSpec] {
        &self.options
    }

    fn create(&self, options: &Options) -> Result<Box<dyn DetectorHandle>, DetectorError> {
        Ok(Box::new(self.instance(options)?))
    }
}

/// One live detector (one per group and field).
pub struct DetectorInstance {
    lib: Arc<Library>,
    handle: *mut c_void,
    /// Set after a panic: the instance must not be called again.
    broken: Option<DetectorError>,
}

impl std::fmt::Debug for DetectorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorInstance").field("plugin", &self.lib.name).finish()
    }
}

// SAFETY: `Detector: Send` is required by the plugin API, so the handle may
// move between threads; `&mut self` on every call keeps calls serialized.
unsafe impl Send for DetectorInstance {}

impl DetectorInstance {
    fn call(&mut self, r: impl FnOnce(*mut c_void) -> RawResult) -> Result<Vec<u8>, DetectorError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let (status, bytes) = take(self.lib.desc, r(self.handle));
        if status == Status::Ok as u32 {
            return Ok(bytes);
        }
        let e = self.lib.error(status, bytes);
        if matches!(e, DetectorError::Panicked { .. }) {
            self.broken = Some(e.clone());
        }
        Err(e)
    }
}

impl DetectorInstance {
    /// [`DetectorHandle::save_changes_with`] through the plugin's
    /// [`SAVE_CHANGES_VIEW_SYMBOL`]: its bytes copied once, straight into
    /// `buf`, the answer's.
    fn save_changes_view(
        &mut self,
        view: SaveChangesViewFn,
        since: u64,
        mut buf: Vec<u8>,
    ) -> Result<StateChanges, DetectorError> {
        let mut out = RawChanges::empty();
        // SAFETY: live handle of this plugin; the function is the plugin's
        // own SAVE_CHANGES_VIEW_SYMBOL, `out` is valid for its write, and
        // its (empty, or message) buffer is freed by `free_buf` in `call`.
        self.call(|h| unsafe { view(h, since, &mut out) })?;
        let bad = |e: tickwatch_plugin_api::CodecError| DetectorError::BadReply {
            detector: self.lib.name.clone(),
            reason: e.to_string(),
        };
        // SAFETY: the plugin answered Ok, so `out` borrows its buffers,
        // valid until it is next called (after this copy).
        let ranges = match unsafe { out.checked(MAX_STATE_LEN) }.map_err(bad)? {
            None => None,
            Some(v) => {
                buf.clear();
                buf.extend_from_slice(v.data);
                Some(tickwatch_plugin_api::Ranges {
                    len: v.len,
                    spans: v.spans().collect(),
                    data: buf,
                })
            }
        };
        Ok(StateChanges { generation: out.generation, ranges })
    }
}

impl DetectorHandle for DetectorInstance {
    fn score(&mut self, window: &[f64]) -> Result<Option<Verdict>, DetectorError> {
        let score = self.lib.desc.score;
        // SAFETY: live handle; `window` outlives the call.
        let bytes = self.call(|h| unsafe { score(h, window.as_ptr(), window.len()) })?;
        abi::decode_verdict(&bytes).map_err(|e| DetectorError::BadReply {
            detector: self.lib.name.clone(),
            reason: e.to_string(),
        })
    }

    fn save(&mut self) -> Result<Vec<u8>, DetectorError> {
        let save = self.lib.desc.save;
        // SAFETY: live handle.
        self.call(|h| unsafe { save(h) })
    }

    fn save_changes(&mut self, since: u64) -> Result<Option<StateChanges>, DetectorError> {
        self.save_changes_with(since, Vec::new())
    }

    fn save_changes_with(
        &mut self,
        since: u64,
        buf: Vec<u8>,
    ) -> Result<Option<StateChanges>, DetectorError> {
        if let Some(view) = self.lib.save_changes_view {
            return self.save_changes_view(view, since, buf).map(Some);
        }
        let Some(save_changes) = self.lib.save_changes else { return Ok(None) };
        // SAFETY: live handle of this plugin; the function is the plugin's
        // own SAVE_CHANGES_SYMBOL, and its buffer is freed by `free_buf`.
        let bytes = self.call(|h| unsafe { save_changes(h, since) })?;
        abi::decode_changes(&bytes, MAX_STATE_LEN).map(Some).map_err(|e| DetectorError::BadReply {
            detector: self.lib.name.clone(),
            reason: e.to_string(),
        })
    }

    fn load(&mut self, state: &[u8]) -> Result<(), DetectorError> {
        let load = self.lib.desc.load;
        // SAFETY: live handle; `state` outlives the call.
        self.call(|h| unsafe { load(h, RawStr::from_slice(state)) }).map(|_| ())
    }

    fn describe(&mut self) -> Result<String, DetectorError> {
        let describe = self.lib.desc.describe;
        // SAFETY: live handle.
        let bytes = self.call(|h| unsafe { describe(h) })?;
        String::from_utf8(bytes).map_err(|_| DetectorError::BadReply {
            detector: self.lib.name.clone(),
            reason: "describe returned non-UTF-8".into(),
        })
    }
}

impl Drop for DetectorInstance {
    fn drop(&mut self) {
        // SAFETY: the handle came from this plugin's `create` and is dropped
        // once; `self.lib` keeps the library loaded during the call.
        unsafe { (self.lib.desc.destroy)(self.handle) };
    }
}
