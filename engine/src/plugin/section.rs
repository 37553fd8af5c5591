//! The detector name a plugin library declares in its `.tickwatch_detector`
//! ELF section, read from the file without loading it (loading runs the
//! library's code and costs its relocations). The only module that parses
//! ELF; `export_detector!` writes the section (docs/plugin-abi.md).

use std::fs::File;

use object::elf::FileHeader64;
use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, ReadCache, ReadRef};

pub use tickwatch_plugin_api::abi::NAME_SECTION;

/// The longest name read; a longer section is not a name.
const MAX_NAME: u64 = 256;

/// The name `file` declares, or `None` when it declares none: not a 64-bit
/// ELF file, no such section, an empty or oversized one, or not UTF-8. Only
/// the ELF header, the section headers, their names and the section itself
/// are read.
pub fn declared_name(file: &File) -> Option<String> {
    let cache = ReadCache::new(file);
    let (offset, size) = name_range_in(&cache)?;
    let bytes = cache.read_bytes_at(offset, size).ok()?;
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// Where in `file` the declared name's bytes are: `(offset, length)`.
pub fn name_range(file: &File) -> Option<(u64, u64)> {
    name_range_in(&ReadCache::new(file))
}

fn name_range_in(cache: &ReadCache<&File>) -> Option<(u64, u64)> {
    let header = FileHeader64::<Endianness>::parse(cache).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, cache).ok()?;
    let (_, section) = sections.section_by_name(endian, NAME_SECTION.as_bytes())?;
    let (offset, size) = section.file_range(endian)?;
    (size > 0 && size <= MAX_NAME).then_some((offset, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_elf_declare_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("empty", &b""[..]),
            ("text", &b"not a library at all"[..]),
            ("elf-magic-only", &b"\x7fELF\x02\x01\x01"[..]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(declared_name(&File::open(&path).unwrap()), None, "{name}");
        }
    }

    #[test]
    fn an_elf_file_without_the_section_declares_nothing() {
        // A real 64-bit ELF executable that is no plugin.
        let sh = File::open("/bin/sh").unwrap();
        assert_eq!(name_range(&sh), None);
        assert_eq!(declared_name(&sh), None);
    }
}
