//! The global allocator of fak's binary, examples and benchmarks: mimalloc.
//!
//! A decision builds its views from many small strings and lists; glibc's malloc spent about a
//! third of a long command's decision (benches/README.md, session 11). The `mimalloc` crate's
//! allocator asks for every block through mimalloc's aligned entry points, whose slow path
//! (taken whenever a page's free list runs dry: a quarter of a decision's allocations)
//! over-allocates by the alignment and rounds up; that was about 4% of the 4 KiB chain's
//! instructions. Rust asks for alignments of 16 bytes or less almost always, and plain
//! `mi_malloc` already gives them (as any C `malloc`: 16 bytes for a block of 16 bytes or
//! more, 8 for smaller ones), so those go to the plain entry points and only larger
//! alignments to the aligned ones. No crate offers this; it is these few lines.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// mimalloc, through its plain entry points where they give the alignment asked for.
pub struct Mimalloc;

/// Whether a block `mi_malloc` returns for `size` bytes is aligned to `align`: 16 bytes for
/// blocks of 16 or more (the C standard's `max_align_t`, which mimalloc guarantees), 8 below.
fn plain(size: usize, align: usize) -> bool {
    align <= 8 || (align <= 16 && size >= 16)
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at least `size` bytes
// aligned as `plain` says (or as asked, through the aligned entry points), null on failure,
// and frees any block it returned with `mi_free`; `realloc` keeps the alignment the same way.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls with sizes and alignments from a valid `Layout`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment (`plain` for the new size, or the aligned entry point).
        unsafe {
            if plain(new_size, layout.align()) {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_as_asked() {
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 7, 8, 9, 15, 16, 17, 24, 31, 48, 100, 1000, 5000, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else { continue };
                let mut held = Vec::new();
                for _ in 0..64 {
                    // SAFETY: a valid non-zero layout; the block is freed below.
                    let p = unsafe { Mimalloc.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    // SAFETY: `p` holds `size` bytes.
                    unsafe { p.write_bytes(0xab, size) };
                    held.push(p);
                }
                for p in held {
                    // SAFETY: `p` came from `alloc` with `layout`; grown, then freed.
                    unsafe {
                        let q = Mimalloc.realloc(p, layout, size * 3);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                        assert_eq!(*q, 0xab);
                        Mimalloc.dealloc(q, Layout::from_size_align_unchecked(size * 3, align));
                    }
                }
            }
        }
    }
}
