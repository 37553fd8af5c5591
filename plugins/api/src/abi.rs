//! The C ABI between the tickwatch host and a detector plugin (`cdylib`).
//!
//! Owns: the `#[repr(C)]` descriptor a plugin exports, the `extern "C"` shims
//! that [`export_detector!`](crate::export_detector) instantiates for a
//! [`Detector`], and the byte encoding of option specs, options and verdicts
//! that cross the boundary. Does not own: loading (`dlopen`) — the host's.
//!
//! # Rules of the boundary
//! - Only C-ABI types cross: [`RawStr`] (borrowed bytes), [`RawBuf`] (bytes the
//!   plugin allocated; the host copies them and hands them back to
//!   [`PluginDescriptor::free_buf`], so each side frees what it allocated),
//!   plain integers, `f64` pointers and an opaque detector handle.
//! - The plugin exports one symbol, [`ENTRY_SYMBOL`], returning a pointer to a
//!   static [`PluginDescriptor`]. Its first two fields, `abi_version` and
//!   `descriptor_size`, keep their place in every ABI version, so a host can
//!   always read them and refuse a version it does not speak.
//! - Every shim catches panics: a panicking detector returns
//!   [`Status::Panic`] with the message instead of unwinding into the host.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Detector;
use crate::changes::{ChangeWriter, Ranges, StateChanges};
use crate::codec::{ByteReader, ByteWriter, CodecError};
use crate::options::{OptionSpec, Options, Value, ValueKind};
use crate::verdict::Verdict;

/// The ABI version this crate speaks. Bumped whenever the descriptor layout,
/// a shim signature or the boundary byte encoding changes.
pub const ABI_VERSION: u32 = 1;

/// The entry symbol every plugin exports (NUL-terminated for `dlsym`).
pub const ENTRY_SYMBOL: &[u8] = b"tickwatch_detector_entry\0";

/// The entry function's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// An optional second symbol (added within ABI 1): which declared options
/// shape the detector's saved state (see [`OptionSpec::shapes_state`]),
/// encoded by [`encode_state_options`]. A plugin built before it exports
/// only [`ENTRY_SYMBOL`]; the host then treats every option as shaping the
/// state, which is what such a plugin's state was fingerprinted with. A
/// host that predates it never looks it up. So neither the descriptor nor
/// [`ABI_VERSION`] changed.
pub const STATE_OPTIONS_SYMBOL: &[u8] = b"tickwatch_detector_state_options\0";

/// The state-options function's type: no arguments, a [`RawResult`] whose
/// buffer is freed with the descriptor's `free_buf`.
pub type StateOptionsFn = unsafe extern "C" fn() -> RawResult;

/// An optional third symbol (added within ABI 1, like
/// [`STATE_OPTIONS_SYMBOL`]): [`Detector::save_changes`] for a detector
/// handle, its answer encoded by [`encode_changes`]. A plugin built before
/// it lacks it; the host then takes the whole state with `save` after every
/// window, as it always did. A host that predates it never looks it up.
pub const SAVE_CHANGES_SYMBOL: &[u8] = b"tickwatch_detector_save_changes\0";

/// An optional fourth symbol (added within ABI 1, like
/// [`SAVE_CHANGES_SYMBOL`], which it does the work of without copying):
/// [`Detector::save_changes_into`] for a detector handle, into a writer the
/// plugin keeps per thread and reuses, its answer written to a
/// [`RawChanges`] that borrows the writer's buffers. The borrowed bytes stay
/// valid until the plugin is next called on this thread; the host copies
/// them out at once. On success the [`RawResult`]'s buffer is empty (it is
/// still handed to `free_buf`); on an error or a panic it holds the
/// message and `out` is not written. A plugin built before it lacks it:
/// the host then calls [`SAVE_CHANGES_SYMBOL`], or takes whole states.
pub const SAVE_CHANGES_VIEW_SYMBOL: &[u8] = b"tickwatch_detector_save_changes_view\0";

/// The save-changes-view function's type: a handle from `create`, the
/// generation the host holds ([`crate::changes::NO_GENERATION`] for none)
/// and where to write the answer.
pub type SaveChangesViewFn =
    unsafe extern "C" fn(handle: *mut c_void, since: u64, out: *mut RawChanges) -> RawResult;

/// The answer of [`SAVE_CHANGES_VIEW_SYMBOL`], borrowing the plugin's
/// buffers (see there for how long).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawChanges {
    /// As [`StateChanges::generation`].
    pub generation: u64,
    /// 1: the ranges below; 0: take the whole state (the rest is empty).
    pub ranges: u32,
    /// The state's length now.
    pub len: u64,
    /// `spans_len` pairs of `u64`: each range's offset, then its length.
    pub spans: *const u64,
    /// Number of ranges.
    pub spans_len: usize,
    /// The ranges' bytes, one after another.
    pub data: RawStr,
}

impl RawChanges {
    /// Nothing reported yet (what the host passes in).
    pub fn empty() -> Self {
        Self {
            generation: crate::changes::NO_GENERATION,
            ranges: 0,
            len: 0,
            spans: std::ptr::null(),
            spans_len: 0,
            data: RawStr { ptr: std::ptr::null(), len: 0 },
        }
    }

    /// Checks the answer as [`decode_changes`] does (ranges within the
    /// state's length, data exactly theirs, a state no longer than
    /// `max_len`) and borrows its spans and data.
    ///
    /// # Safety
    /// The pointers must be as [`SAVE_CHANGES_VIEW_SYMBOL`] promises, and
    /// the plugin not called again while the borrows live.
    pub unsafe fn checked<'a>(&self, max_len: u64) -> Result<Option<RangesView<'a>>, CodecError> {
        let bad = |what: String| CodecError { offset: 0, what };
        if self.ranges == 0 {
            return Ok(None);
        }
        if self.len > max_len {
            return Err(bad(format!("state of {} bytes exceeds {max_len}", self.len)));
        }
        let n = self.spans_len.checked_mul(2).ok_or_else(|| bad("too many ranges".into()))?;
        let spans: &[u64] = if n == 0 {
            &[]
        } else if self.spans.is_null() || !self.spans.is_aligned() {
            return Err(bad("ranges at a bad address".into()));
        } else {
            // SAFETY: the plugin wrote `spans_len` pairs of u64 there,
            // valid for the caller's borrow.
            unsafe { std::slice::from_raw_parts(self.spans, n) }
        };
        if self.data.len > 0 && self.data.ptr.is_null() {
            return Err(bad("range bytes at a bad address".into()));
        }
        // SAFETY: the plugin's bytes, valid for the caller's borrow.
        let data = unsafe { self.data.as_slice() };
        let mut total: u64 = 0;
        for pair in spans.chunks_exact(2) {
            let (off, n) = (pair[0], pair[1]);
            if off.checked_add(n).is_none_or(|end| end > self.len) {
                return Err(bad(format!("range {off}+{n} past the state's {} bytes", self.len)));
            }
            total = total.saturating_add(n);
        }
        if total != data.len() as u64 {
            return Err(bad(format!("ranges of {total} bytes, {} bytes given", data.len())));
        }
        Ok(Some(RangesView { len: self.len, spans, data }))
    }
}

/// Changed ranges borrowed from a plugin ([`RawChanges::checked`]).
#[derive(Debug, Clone, Copy)]
pub struct RangesView<'a> {
    /// The state's length now.
    pub len: u64,
    /// Each range's offset then length, pair after pair; each within `len`.
    pub spans: &'a [u64],
    /// The ranges' bytes, one after another (exactly theirs).
    pub data: &'a [u8],
}

impl RangesView<'_> {
    /// `(offset, length)` of each range, in order.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.spans.chunks_exact(2).map(|p| (p[0], p[1]))
    }
}

/// The ELF section in which [`export_detector!`](crate::export_detector)
/// writes the detector's [`Detector::NAME`] (its UTF-8 bytes, nothing
/// else; added within ABI 1). A host reads it from the file to find the
/// library providing a detector without loading the others; a library
/// without it (built before it) is loaded to learn its name, as before. A
/// library whose section names another detector than its descriptor is
/// refused.
pub const NAME_SECTION: &str = ".tickwatch_detector";

/// `name`'s bytes as an array of its length, for the [`NAME_SECTION`]
/// static (`N` must be `name.len()`).
pub const fn name_bytes<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    assert!(bytes.len() == N, "N must be the name's length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The save-changes function's type: a handle from `create` and the
/// generation the host holds ([`crate::changes::NO_GENERATION`] for none);
/// the [`RawResult`]'s buffer is freed with the descriptor's `free_buf`.
pub type SaveChangesFn = unsafe extern "C" fn(handle: *mut c_void, since: u64) -> RawResult;

/// Borrowed bytes. Valid only for the duration of the call that passes them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawStr {
    /// Start of the bytes (may dangle when `len` is 0).
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl RawStr {
    /// Borrows a `'static` str (usable in a `static` descriptor).
    pub const fn from_static(s: &'static str) -> Self {
        Self { ptr: s.as_ptr(), len: s.len() }
    }

    /// Borrows a slice for one call.
    pub fn from_slice(s: &[u8]) -> Self {
        Self { ptr: s.as_ptr(), len: s.len() }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialized bytes that stay valid for `'a`.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees ptr/len describe live, initialized bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes owned by the plugin's allocator; returned to the plugin's `free_buf`.
#[repr(C)]
#[derive(Debug)]
pub struct RawBuf {
    /// Start of the allocation.
    pub ptr: *mut u8,
    /// Initialized bytes.
    pub len: usize,
    /// Allocated capacity.
    pub cap: usize,
}

impl RawBuf {
    /// Leaks `v` into a buffer the host will hand back to `free_buf`.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        Self { ptr: v.as_mut_ptr(), len: v.len(), cap: v.capacity() }
    }

    /// Takes the buffer back as a Vec.
    ///
    /// # Safety
    /// Must be called in the module whose allocator made the buffer, once,
    /// on a buffer made by [`RawBuf::from_vec`].
    pub unsafe fn into_vec(self) -> Vec<u8> {
        // SAFETY: the caller guarantees this buffer came from `from_vec` in
        // this module and is reclaimed once.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }
}

/// Outcome of a shim call.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success; the buffer holds the result bytes.
    Ok = 0,
    /// The detector refused (bad options, bad state bytes); the buffer holds
    /// a UTF-8 message.
    Error = 1,
    /// The detector panicked; the buffer holds the panic message. The handle
    /// must not be used again except to destroy it.
    Panic = 2,
}

/// A status and the bytes that go with it.
#[repr(C)]
#[derive(Debug)]
pub struct RawResult {
    /// [`Status`] as a number.
    pub status: u32,
    /// Result bytes or message; always handed back to `free_buf`.
    pub buf: RawBuf,
}

impl RawResult {
    fn ok(v: Vec<u8>) -> Self {
        Self { status: Status::Ok as u32, buf: RawBuf::from_vec(v) }
    }
    fn error(msg: String) -> Self {
        Self { status: Status::Error as u32, buf: RawBuf::from_vec(msg.into_bytes()) }
    }
    fn panic(msg: String) -> Self {
        Self { status: Status::Panic as u32, buf: RawBuf::from_vec(msg.into_bytes()) }
    }
}

/// What a plugin exports. Layout is part of the ABI (see [`ABI_VERSION`]).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Must equal the host's [`ABI_VERSION`]; always the first field.
    pub abi_version: u32,
    /// `size_of::<PluginDescriptor>()` in the plugin; always the second field.
    pub descriptor_size: u32,
    /// Detector name (`--detector NAME`), UTF-8.
    pub name: RawStr,
    /// Detector version (semver), UTF-8, for display.
    pub version: RawStr,
    /// [`Detector::STATE_VERSION`]: state saved under another is not loaded.
    pub state_version: u32,
    /// Encoded `Vec<OptionSpec>` (see [`encode_specs`]).
    pub option_specs: unsafe extern "C" fn() -> RawResult,
    /// Builds a detector from encoded [`Options`]; writes the handle to `out`.
    pub create: unsafe extern "C" fn(options: RawStr, out: *mut *mut c_void) -> RawResult,
    /// Drops a handle made by `create`.
    pub destroy: unsafe extern "C" fn(handle: *mut c_void),
    /// Scores a window; the result is an encoded `Option<Verdict>`.
    pub score:
        unsafe extern "C" fn(handle: *mut c_void, values: *const f64, len: usize) -> RawResult,
    /// The detector's state bytes.
    pub save: unsafe extern "C" fn(handle: *mut c_void) -> RawResult,
    /// Replaces the detector's state with saved bytes.
    pub load: unsafe extern "C" fn(handle: *mut c_void, state: RawStr) -> RawResult,
    /// The state as a JSON object (UTF-8).
    pub describe: unsafe extern "C" fn(handle: *mut c_void) -> RawResult,
    /// Frees a buffer returned by any function above.
    pub free_buf: unsafe extern "C" fn(buf: RawBuf),
    /// [`Detector::MIN_WINDOW`]. Appended within ABI 1: the host reads it
    /// only when `descriptor_size` covers it, and takes 2 from a plugin
    /// built before it existed ([`BASE_DESCRIPTOR_SIZE`]).
    pub min_window: u32,
}

/// The size of an ABI 1 descriptor without the fields appended later
/// (everything up to and including `free_buf`): the least the host accepts.
pub const BASE_DESCRIPTOR_SIZE: usize = std::mem::offset_of!(PluginDescriptor, min_window);

// SAFETY: a descriptor is immutable after construction; its pointers refer to
// 'static strings and its functions are thread-safe entry points.
unsafe impl Sync for PluginDescriptor {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for PluginDescriptor {}

/// The descriptor for `D` (what [`export_detector!`](crate::export_detector) exports).
pub const fn descriptor<D: Detector>() -> PluginDescriptor {
    PluginDescriptor {
        abi_version: ABI_VERSION,
        descriptor_size: std::mem::size_of::<PluginDescriptor>() as u32,
        name: RawStr::from_static(D::NAME),
        version: RawStr::from_static(D::VERSION),
        state_version: D::STATE_VERSION,
        option_specs: shim_option_specs::<D>,
        create: shim_create::<D>,
        destroy: shim_destroy::<D>,
        score: shim_score::<D>,
        save: shim_save::<D>,
        load: shim_load::<D>,
        describe: shim_describe::<D>,
        free_buf: shim_free_buf,
        min_window: D::MIN_WINDOW,
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Runs `f`, turning a panic into [`Status::Panic`].
fn guarded(f: impl FnOnce() -> Result<Vec<u8>, String>) -> RawResult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RawResult::ok(v),
        Ok(Err(msg)) => RawResult::error(msg),
        Err(p) => RawResult::panic(panic_message(p)),
    }
}

unsafe extern "C" fn shim_option_specs<D: Detector>() -> RawResult {
    guarded(|| Ok(encode_specs(&D::options())))
}

/// The [`STATE_OPTIONS_SYMBOL`] function for `D` (what
/// [`export_detector!`](crate::export_detector) exports). Callable from
/// any thread; a panic comes back as [`Status::Panic`].
pub extern "C" fn state_options<D: Detector>() -> RawResult {
    guarded(|| Ok(encode_state_options(&D::options())))
}

unsafe extern "C" fn shim_create<D: Detector>(options: RawStr, out: *mut *mut c_void) -> RawResult {
    guarded(|| {
        // SAFETY: the host passes bytes it owns for the duration of this call.
        let bytes = unsafe { options.as_slice() };
        let opts = decode_options(bytes).map_err(|e| e.to_string())?;
        let det = D::new(&opts)?;
        let handle = Box::into_raw(Box::new(det)).cast::<c_void>();
        // SAFETY: the host passes a valid, writable pointer for the handle.
        unsafe { out.write(handle) };
        Ok(Vec::new())
    })
}

unsafe extern "C" fn shim_destroy<D: Detector>(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    // A panic in Drop must not unwind into the host either.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the handle came from `shim_create::<D>` and is destroyed once.
        drop(unsafe { Box::from_raw(handle.cast::<D>()) });
    }));
}

/// # Safety
/// `handle` must come from `shim_create::<D>` and not be used concurrently.
unsafe fn detector<'a, D: Detector>(handle: *mut c_void) -> &'a mut D {
    // SAFETY: guaranteed by the caller (the host serializes calls per handle).
    unsafe { &mut *handle.cast::<D>() }
}

unsafe extern "C" fn shim_score<D: Detector>(
    handle: *mut c_void,
    values: *const f64,
    len: usize,
) -> RawResult {
    guarded(|| {
        // SAFETY: the host owns a live handle and `len` values at `values`.
        let (det, window) = unsafe {
            let window = if len == 0 { &[][..] } else { std::slice::from_raw_parts(values, len) };
            (detector::<D>(handle), window)
        };
        Ok(encode_verdict(det.score(window).as_ref()))
    })
}

unsafe extern "C" fn shim_save<D: Detector>(handle: *mut c_void) -> RawResult {
    // SAFETY: the host owns a live handle.
    guarded(|| Ok(unsafe { detector::<D>(handle) }.save()))
}

/// The [`SAVE_CHANGES_SYMBOL`] function for `D` (what
/// [`export_detector!`](crate::export_detector) exports).
///
/// # Safety
/// `handle` must come from `D`'s `create` shim and not be used concurrently.
pub unsafe fn save_changes<D: Detector>(handle: *mut c_void, since: u64) -> RawResult {
    // SAFETY: the caller's guarantees.
    guarded(|| Ok(encode_changes(&unsafe { detector::<D>(handle) }.save_changes(since))))
}

thread_local! {
    /// The writer [`save_changes_view`] reuses on this thread (its buffers
    /// are what the host borrows until its next call).
    static VIEW_WRITER: std::cell::RefCell<(ChangeWriter, Vec<u64>)> =
        std::cell::RefCell::new((ChangeWriter::new(), Vec::new()));
}

/// The [`SAVE_CHANGES_VIEW_SYMBOL`] function for `D` (what
/// [`export_detector!`](crate::export_detector) exports).
///
/// # Safety
/// `handle` must come from `D`'s `create` shim and not be used
/// concurrently; `out` must be valid for a write.
pub unsafe fn save_changes_view<D: Detector>(
    handle: *mut c_void,
    since: u64,
    out: *mut RawChanges,
) -> RawResult {
    guarded(|| {
        VIEW_WRITER.with(|cell| {
            let mut held = cell.try_borrow_mut().map_err(|_| "save_changes_view re-entered")?;
            let (w, flat) = &mut *held;
            w.reset();
            // SAFETY: the caller's guarantees.
            let taken = unsafe { detector::<D>(handle) }.save_changes_into(since, w);
            let answer = if taken.ranges {
                // Pairs of u64 (a tuple's layout is the compiler's, not
                // the ABI's).
                flat.clear();
                flat.shrink_to(crate::changes::KEEP_BYTES / 8);
                flat.extend(w.spans().iter().flat_map(|&(off, n)| [off, n]));
                RawChanges {
                    generation: taken.generation,
                    ranges: 1,
                    len: w.offset(),
                    spans: flat.as_ptr(),
                    spans_len: w.spans().len(),
                    data: RawStr::from_slice(w.data()),
                }
            } else {
                RawChanges { generation: taken.generation, ..RawChanges::empty() }
            };
            // SAFETY: the caller passes a pointer valid for a write.
            unsafe { out.write(answer) };
            Ok(Vec::new())
        })
    })
}

unsafe extern "C" fn shim_load<D: Detector>(handle: *mut c_void, state: RawStr) -> RawResult {
    guarded(|| {
        // SAFETY: the host owns a live handle and the state bytes for this call.
        let (det, bytes) = unsafe { (detector::<D>(handle), state.as_slice()) };
        det.load(bytes).map(|()| Vec::new())
    })
}

unsafe extern "C" fn shim_describe<D: Detector>(handle: *mut c_void) -> RawResult {
    // SAFETY: the host owns a live handle.
    guarded(|| Ok(unsafe { detector::<D>(handle) }.describe().to_json().into_bytes()))
}

unsafe extern "C" fn shim_free_buf(buf: RawBuf) {
    // SAFETY: every RawBuf this module hands out comes from `RawBuf::from_vec`
    // in this module, and the host returns each exactly once.
    drop(unsafe { buf.into_vec() });
}

// ---- boundary byte encoding (shared by plugin and host) ----

fn put_value(w: &mut ByteWriter, v: &Value) {
    w.u8(v.kind() as u8);
    match v {
        Value::Bool(b) => {
            w.bool(*b);
        }
        Value::Int(i) | Value::Duration(i) => {
            w.i64(*i);
        }
        Value::Double(d) => {
            w.f64(*d);
        }
        Value::String(s) => {
            w.str(s);
        }
    }
}

fn get_kind(r: &mut ByteReader<'_>) -> Result<ValueKind, CodecError> {
    let b = r.u8()?;
    ValueKind::from_u8(b).ok_or_else(|| r.error(&format!("unknown value kind {b}")))
}

fn get_value(r: &mut ByteReader<'_>) -> Result<Value, CodecError> {
    Ok(match get_kind(r)? {
        ValueKind::Bool => Value::Bool(r.bool()?),
        ValueKind::Int => Value::Int(r.i64()?),
        ValueKind::Duration => Value::Duration(r.i64()?),
        ValueKind::Double => Value::Double(r.f64()?),
        ValueKind::String => Value::String(r.str()?.to_string()),
    })
}

/// Encodes option specs.
pub fn encode_specs(specs: &[OptionSpec]) -> Vec<u8> {
    let mut w = ByteWriter::new();
    w.u64(specs.len() as u64);
    for s in specs {
        w.str(&s.name).u8(s.kind as u8).str(&s.help);
        match &s.default {
            None => {
                w.u8(0);
            }
            Some(v) => {
                w.u8(1);
                put_value(&mut w, v);
            }
        }
    }
    w.finish()
}

/// Decodes option specs.
pub fn decode_specs(bytes: &[u8]) -> Result<Vec<OptionSpec>, CodecError> {
    let mut r = ByteReader::new(bytes);
    let n = r.len(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?.to_string();
        let kind = get_kind(&mut r)?;
        let help = r.str()?.to_string();
        let default = if r.bool()? { Some(get_value(&mut r)?) } else { None };
        out.push(OptionSpec { name, kind, default, help, shapes_state: true });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes which options shape the state: `u64` count, then each such
/// option's name (`str`), in declaration order.
pub fn encode_state_options(specs: &[OptionSpec]) -> Vec<u8> {
    let mut w = ByteWriter::new();
    let shaping: Vec<&OptionSpec> = specs.iter().filter(|s| s.shapes_state).collect();
    w.u64(shaping.len() as u64);
    for s in shaping {
        w.str(&s.name);
    }
    w.finish()
}

/// Applies a [`STATE_OPTIONS_SYMBOL`] answer to decoded specs: exactly the
/// named options shape the state. A name the specs do not declare is
/// refused.
pub fn apply_state_options(bytes: &[u8], specs: &mut [OptionSpec]) -> Result<(), CodecError> {
    let mut r = ByteReader::new(bytes);
    let n = r.len(8)?;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?;
        if !specs.iter().any(|s| s.name == name) {
            return Err(r.error(&format!("state option {name:?} is not a declared option")));
        }
        names.push(name.to_string());
    }
    r.finish()?;
    for s in specs {
        s.shapes_state = names.contains(&s.name);
    }
    Ok(())
}

/// Encodes validated options.
pub fn encode_options(opts: &Options) -> Vec<u8> {
    let mut w = ByteWriter::new();
    let pairs: Vec<_> = opts.iter().collect();
    w.u64(pairs.len() as u64);
    for (name, v) in pairs {
        w.str(name);
        put_value(&mut w, v);
    }
    w.finish()
}

/// Decodes validated options.
pub fn decode_options(bytes: &[u8]) -> Result<Options, CodecError> {
    let mut r = ByteReader::new(bytes);
    let n = r.len(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?.to_string();
        out.push((name, get_value(&mut r)?));
    }
    r.finish()?;
    Ok(Options::new(out))
}

/// Encodes a [`StateChanges`]: `u64` generation, then `u8` 0 (take the
/// whole state) or 1 followed by `u64` length, `u64` range count, each
/// range's `u64` offset and `u64` length, and the ranges' bytes to the end.
pub fn encode_changes(c: &StateChanges) -> Vec<u8> {
    // Sized once: the ranges' data is most of it (a 300-value window's
    // slots: kilobytes, otherwise grown in a handful of steps).
    let size = c.ranges.as_ref().map_or(9, |r| 25 + 16 * r.spans.len() + r.data.len());
    let mut w = ByteWriter::with_capacity(size);
    w.u64(c.generation);
    match &c.ranges {
        None => {
            w.u8(0);
        }
        Some(r) => {
            w.u8(1).u64(r.len).u64(r.spans.len() as u64);
            for &(off, len) in &r.spans {
                w.u64(off).u64(len);
            }
            w.raw(&r.data);
        }
    }
    w.finish()
}

/// Decodes a [`StateChanges`], refusing ranges that do not add up: bytes
/// other than the ranges', or a range past the state's length. A state
/// longer than `max_len` is refused too (it would be allocated).
pub fn decode_changes(bytes: &[u8], max_len: u64) -> Result<StateChanges, CodecError> {
    let mut r = ByteReader::new(bytes);
    let generation = r.u64()?;
    if !r.bool()? {
        r.finish()?;
        return Ok(StateChanges { generation, ranges: None });
    }
    let len = r.u64()?;
    if len > max_len {
        return Err(r.error(&format!("state of {len} bytes exceeds {max_len}")));
    }
    let n = r.len(16)?;
    let mut spans = Vec::with_capacity(n);
    let mut total: u64 = 0;
    for _ in 0..n {
        let (off, n) = (r.u64()?, r.u64()?);
        if off.checked_add(n).is_none_or(|end| end > len) {
            return Err(r.error(&format!("range {off}+{n} past the state's {len} bytes")));
        }
        total += n;
        spans.push((off, n));
    }
    if total != r.remaining() as u64 {
        return Err(r.error(&format!("ranges of {total} bytes, {} bytes follow", r.remaining())));
    }
    let at = bytes.len() - r.remaining();
    let data = bytes[at..].to_vec();
    Ok(StateChanges { generation, ranges: Some(Ranges { len, spans, data }) })
}

/// Encodes a verdict (or "nothing yet").
pub fn encode_verdict(v: Option<&Verdict>) -> Vec<u8> {
    // Sized once (it grew from one byte in four or five steps per window).
    let size = v.map_or(1, |v| 18 + v.stats.iter().map(|(n, _)| 16 + n.len()).sum::<usize>());
    let mut w = ByteWriter::with_capacity(size);
    match v {
        None => {
            w.u8(0);
        }
        Some(v) => {
            w.u8(1).f64(v.pvalue).bool(v.anomalous).u64(v.stats.len() as u64);
            for (name, x) in &v.stats {
                w.str(name).f64(*x);
            }
        }
    }
    w.finish()
}

/// Decodes a verdict.
pub fn decode_verdict(bytes: &[u8]) -> Result<Option<Verdict>, CodecError> {
    let mut r = ByteReader::new(bytes);
    let v = if r.bool()? {
        let pvalue = r.f64()?;
        let anomalous = r.bool()?;
        let n = r.len(9)?;
        let mut stats = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str()?.to_string();
            stats.push((name, r.f64()?));
        }
        Some(Verdict { pvalue, anomalous, stats })
    } else {
        None
    };
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Summary;

    /// A detector that panics on demand, to show the shims contain it.
    struct Touchy {
        seen: u64,
    }

    impl Detector for Touchy {
        const NAME: &'static str = "touchy";
        const VERSION: &'static str = "0.0.1";
        const STATE_VERSION: u32 = 1;
        fn options() -> Vec<OptionSpec> {
            vec![OptionSpec::with_default("limit", Value::Int(3), "panic after this many")]
        }
        fn new(options: &Options) -> Result<Self, String> {
            if options.int("limit")? < 0 {
                return Err("option limit must be >= 0".into());
            }
            Ok(Self { seen: 0 })
        }
        fn score(&mut self, window: &[f64]) -> Option<Verdict> {
            assert!(window.len() < 1000, "window too large for touchy");
            self.seen += 1;
            Some(Verdict { pvalue: 0.5, anomalous: false, stats: vec![("n".into(), 1.0)] })
        }
        fn save(&self) -> Vec<u8> {
            self.seen.to_le_bytes().to_vec()
        }
        fn load(&mut self, state: &[u8]) -> Result<(), String> {
            let a: [u8; 8] = state.try_into().map_err(|_| "need 8 bytes".to_string())?;
            self.seen = u64::from_le_bytes(a);
            Ok(())
        }
        fn describe(&self) -> Summary {
            Summary::new().int("seen", self.seen as i64)
        }
    }

    fn take(d: &PluginDescriptor, r: RawResult) -> (u32, Vec<u8>) {
        let bytes = {
            // SAFETY: the buffer was just returned by the plugin and is live.
            let s = unsafe { RawStr { ptr: r.buf.ptr, len: r.buf.len }.as_slice() };
            s.to_vec()
        };
        // SAFETY: handing the buffer back to the module that allocated it, once.
        unsafe { (d.free_buf)(r.buf) };
        (r.status, bytes)
    }

    #[test]
    fn shims_round_trip_and_contain_panics() {
        static D: PluginDescriptor = descriptor::<Touchy>();
        // SAFETY: calling our own shims with valid arguments throughout.
        unsafe {
            let (st, specs) = take(&D, (D.option_specs)());
            assert_eq!(st, 0);
            assert_eq!(decode_specs(&specs).unwrap(), Touchy::options());
            // Which options shape the state travels beside the specs.
            let mut two = vec![
                OptionSpec::with_default("size", Value::Int(3), "s"),
                OptionSpec::with_default("alpha", Value::Double(0.1), "a").scoring_only(),
            ];
            let answer = encode_state_options(&two);
            let mut decoded = decode_specs(&encode_specs(&two)).unwrap();
            assert!(decoded.iter().all(|s| s.shapes_state), "without the answer: all shape");
            apply_state_options(&answer, &mut decoded).unwrap();
            assert_eq!(decoded, two);
            two.pop();
            let e = apply_state_options(&answer, &mut two[..0]).unwrap_err().to_string();
            assert!(e.contains("\"size\" is not a declared option"), "{e}");
            let (st, bytes) = take(&D, state_options::<Touchy>());
            assert_eq!((st, bytes), (0, encode_state_options(&Touchy::options())));

            let bad = encode_options(&Options::new(vec![("limit".into(), Value::Int(-1))]));
            let mut h: *mut c_void = std::ptr::null_mut();
            let (st, msg) = take(&D, (D.create)(RawStr::from_slice(&bad), &mut h));
            assert_eq!(st, Status::Error as u32);
            assert_eq!(String::from_utf8(msg).unwrap(), "option limit must be >= 0");

            let good = encode_options(&Options::new(vec![("limit".into(), Value::Int(1))]));
            let (st, _) = take(&D, (D.create)(RawStr::from_slice(&good), &mut h));
            assert_eq!(st, 0);
            assert!(!h.is_null());

            let w = [1.0, 2.0];
            let (st, v) = take(&D, (D.score)(h, w.as_ptr(), w.len()));
            assert_eq!(st, 0);
            assert_eq!(decode_verdict(&v).unwrap().unwrap().pvalue, 0.5);

            let big = vec![0.0; 2000];
            let (st, msg) = take(&D, (D.score)(h, big.as_ptr(), big.len()));
            assert_eq!(st, Status::Panic as u32);
            assert!(String::from_utf8(msg).unwrap().contains("window too large"));

            let (_, saved) = take(&D, (D.save)(h));
            let (st, msg) = take(&D, (D.load)(h, RawStr::from_slice(&[1, 2])));
            assert_eq!(st, Status::Error as u32);
            assert_eq!(msg, b"need 8 bytes");
            let (st, _) = take(&D, (D.load)(h, RawStr::from_slice(&saved)));
            assert_eq!(st, 0);
            let (_, json) = take(&D, (D.describe)(h));
            assert_eq!(json, br#"{"seen":1}"#);
            (D.destroy)(h);
        }
    }

    /// Reports its counter's 8 bytes as changed (through the default
    /// `save_changes_into`, from its own `save_changes`).
    struct Counting {
        seen: u64,
        generation: u64,
    }

    impl Detector for Counting {
        const NAME: &'static str = "counting";
        const VERSION: &'static str = "0.0.1";
        const STATE_VERSION: u32 = 1;
        fn options() -> Vec<OptionSpec> {
            Vec::new()
        }
        fn new(_: &Options) -> Result<Self, String> {
            Ok(Self { seen: 0, generation: 0 })
        }
        fn score(&mut self, _: &[f64]) -> Option<Verdict> {
            self.seen += 1;
            None
        }
        fn save(&self) -> Vec<u8> {
            let mut v = self.seen.to_le_bytes().to_vec();
            v.extend_from_slice(&[7; 8]);
            v
        }
        fn load(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn save_changes(&mut self, since: u64) -> StateChanges {
            let ranges = (since == self.generation).then(|| Ranges {
                len: 16,
                spans: vec![(0, 8)],
                data: self.seen.to_le_bytes().to_vec(),
            });
            self.generation += 1;
            StateChanges { generation: self.generation, ranges }
        }
        fn describe(&self) -> Summary {
            Summary::new()
        }
    }

    /// The view symbol's answer, borrowed and checked, applied to the
    /// host's copy gives `save`; the first answer is "whole".
    #[test]
    fn the_view_shim_lends_ranges_that_rebuild_the_state() {
        static D: PluginDescriptor = descriptor::<Counting>();
        // SAFETY: our own shims with valid arguments; each view is copied
        // out before the next call.
        unsafe {
            let opts = encode_options(&Options::new(Vec::new()));
            let mut h: *mut c_void = std::ptr::null_mut();
            let (st, _) = take(&D, (D.create)(RawStr::from_slice(&opts), &mut h));
            assert_eq!(st, 0);
            let mut held = Vec::new();
            let mut since = crate::changes::NO_GENERATION;
            for step in 0..5 {
                (D.score)(h, [1.0].as_ptr(), 1);
                let mut out = RawChanges::empty();
                let (st, _) = take(&D, save_changes_view::<Counting>(h, since, &mut out));
                assert_eq!(st, 0);
                since = out.generation;
                match out.checked(1 << 20).unwrap() {
                    None => {
                        assert_eq!(step, 0, "whole only first");
                        held = take(&D, (D.save)(h)).1;
                    }
                    Some(v) => {
                        held.resize(v.len as usize, 0);
                        let mut at = 0;
                        for (off, n) in v.spans() {
                            let (off, n) = (off as usize, n as usize);
                            held[off..off + n].copy_from_slice(&v.data[at..at + n]);
                            at += n;
                        }
                    }
                }
                assert_eq!(held, take(&D, (D.save)(h)).1, "step {step}");
            }
            (D.destroy)(h);
        }
    }

    /// Borrowed ranges that do not add up are refused.
    #[test]
    fn bad_views_are_refused() {
        let spans = [4u64, 8];
        let data = [0u8; 8];
        let view = |len: u64, n: usize| RawChanges {
            generation: 1,
            ranges: 1,
            len,
            spans: spans.as_ptr(),
            spans_len: 1,
            data: RawStr { ptr: data.as_ptr(), len: n },
        };
        // SAFETY: the pointers are to live arrays of the lengths given.
        unsafe {
            assert!(view(12, 8).checked(100).unwrap().is_some());
            let e = view(11, 8).checked(100).unwrap_err().to_string();
            assert!(e.contains("past the state's 11 bytes"), "{e}");
            let e = view(12, 7).checked(100).unwrap_err().to_string();
            assert!(e.contains("ranges of 8 bytes, 7 bytes given"), "{e}");
            let e = view(200, 8).checked(100).unwrap_err().to_string();
            assert!(e.contains("exceeds 100"), "{e}");
            let whole = RawChanges { generation: 3, ..RawChanges::empty() };
            assert!(whole.checked(100).unwrap().is_none());
        }
    }

    #[test]
    fn verdict_encoding_round_trips() {
        let v = Verdict { pvalue: 1e-300, anomalous: true, stats: vec![("t".into(), -4.5)] };
        assert_eq!(decode_verdict(&encode_verdict(Some(&v))).unwrap(), Some(v));
        assert_eq!(decode_verdict(&encode_verdict(None)).unwrap(), None);
        assert!(decode_verdict(&[1, 2]).is_err());
    }
}
