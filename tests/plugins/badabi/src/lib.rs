//! A plugin built for a future ABI: its entry symbol returns a descriptor
//! header claiming ABI 999. The loader must refuse it by reading only the
//! two header fields every ABI version keeps.

/// abi_version, descriptor_size.
static HEADER: [u32; 2] = [999, 8];

/// The tickwatch entry symbol, with a header from another ABI.
#[unsafe(no_mangle)]
pub extern "C" fn tickwatch_detector_entry() -> *const u32 {
    HEADER.as_ptr()
}
