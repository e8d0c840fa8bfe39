//! The plugin's global allocator in a component: freed small blocks are
//! kept on one list per size class and handed out again, in front of the C
//! library's `malloc`.
//!
//! Every string and list the host passes into a call is a fresh allocation
//! the plugin frees when the call ends, and every string of its answer is
//! one more. Through wasi-libc's `dlmalloc` that allocating and freeing was
//! about a fifth of a pricing or routing call. A block of at most
//! [`CLASS_BYTES_MAX`] bytes now comes off its class's list and goes back
//! onto it: a load and a store each way.
//!
//! What the lists hold is bounded: at most [`CACHED_BLOCKS_PER_CLASS_MAX`]
//! blocks per class, under 256 KiB over all classes; a block freed beyond
//! that goes back to `malloc`. Larger or more strictly aligned allocations
//! go to `malloc` directly.
//!
//! It is the global allocator of every component built with this crate's
//! `allocator` feature (on by default). A plugin that brings its own
//! `#[global_allocator]` depends on this crate with `default-features =
//! false` and its world feature.

// A global allocator is unsafe by its nature: it hands out raw memory.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Log2 of the smallest class: room for the list's link, and the size most
/// short strings round up to.
const CLASS_BYTES_MIN_LOG2: u32 = 4;
/// Size classes: 16, 32, ..., 1,024 bytes.
const CLASSES: usize = 7;
/// The largest size served from a list; an identifier, a short text or a
/// small list fits.
pub const CLASS_BYTES_MAX: usize = 1 << (CLASS_BYTES_MIN_LOG2 as usize + CLASSES - 1);
/// The alignment of every block, and the strictest a request may ask for
/// to be served from a list: `malloc`'s own on wasm32.
const BLOCK_ALIGN: usize = 8;
/// Freed blocks kept per class: a call's worth of strings and more. At
/// 1,024 bytes a class holds at most 128 KiB.
pub const CACHED_BLOCKS_PER_CLASS_MAX: u32 = 128;

/// The size-class allocator. Components are single-threaded (wasm32-wasip2
/// has no threads), so its lists need no lock: the module is compiled only
/// for wasm32 without the `atomics` feature, and for its own tests, which
/// use each instance from one thread.
pub struct SizeClasses {
    /// One list of free blocks per class.
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

/// Free blocks of one class, linked through their first word.
#[derive(Clone, Copy)]
struct FreeList {
    /// The first free block, or null.
    head: *mut u8,
    /// Blocks on the list.
    len: u32,
}

// SAFETY: compiled only where a component has one thread, and for the
// tests below, each of which uses its own instance from one thread.
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    /// An allocator with every list empty.
    pub const fn new() -> Self {
        const EMPTY: FreeList = FreeList { head: ptr::null_mut(), len: 0 };
        Self { lists: UnsafeCell::new([EMPTY; CLASSES]) }
    }

    /// The list of `class`.
    ///
    /// # Safety
    ///
    /// No other reference to the lists may be alive: true on one thread
    /// with the reference dropped before the allocator returns.
    #[allow(clippy::mut_from_ref)]
    unsafe fn list(&self, class: usize) -> &mut FreeList {
        // SAFETY: the caller's promise; `class` is below CLASSES by
        // construction in `class_of`.
        unsafe { &mut (*self.lists.get())[class] }
    }
}

/// The class a layout is served from, if any.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > CLASS_BYTES_MAX || layout.align() > BLOCK_ALIGN {
        return None;
    }
    let rounded = layout.size().max(1 << CLASS_BYTES_MIN_LOG2).next_power_of_two();
    Some((rounded.trailing_zeros() - CLASS_BYTES_MIN_LOG2) as usize)
}

/// The layout `malloc` gives a block of `class`.
fn block_layout(class: usize) -> Layout {
    Layout::from_size_align(1 << (class + CLASS_BYTES_MIN_LOG2 as usize), BLOCK_ALIGN)
        .expect("a power of two up to CLASS_BYTES_MAX, aligned to a power of two, is a layout")
}

// SAFETY: every block handed out is at least as large and as aligned as
// its layout asks (a class block is the class's size, 8-aligned, and only
// layouts of at most that size and alignment map to the class); a block is
// on at most one list and never handed out twice; everything else is
// `System`'s.
unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's layout, passed on.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread, and the reference ends in this block.
        let list = unsafe { self.list(class) };
        let block = list.head;
        if block.is_null() {
            // SAFETY: a valid, non-zero-sized layout.
            return unsafe { System.alloc(block_layout(class)) };
        }
        // SAFETY: a listed block is free, 8-aligned and holds its link.
        list.head = unsafe { block.cast::<*mut u8>().read() };
        list.len -= 1;
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: allocated by `System` with this layout.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: one thread, and the reference ends in this block.
        let list = unsafe { self.list(class) };
        if list.len >= CACHED_BLOCKS_PER_CLASS_MAX {
            // SAFETY: every block of the class came from `System` with it.
            return unsafe { System.dealloc(block, block_layout(class)) };
        }
        // SAFETY: the block is the caller's to give up, 8-aligned and at
        // least 16 bytes long: room for the link.
        unsafe { block.cast::<*mut u8>().write(list.head) };
        list.head = block;
        list.len += 1;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block is already the class's size.
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: allocated by `System` with `layout`.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a valid layout; on success both blocks are live
                // and at least `min(old, new)` bytes long, and distinct.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_size_maps_to_the_smallest_class_that_holds_it() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(class(0, 1), Some(0));
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(1_000, 4), Some(6));
        assert_eq!(class(CLASS_BYTES_MAX, 8), Some(CLASSES - 1));
        assert_eq!(class(CLASS_BYTES_MAX + 1, 1), None);
        assert_eq!(class(16, 16), None);
        for size in 1..=CLASS_BYTES_MAX {
            let class = class(size, 1).unwrap();
            assert!(block_layout(class).size() >= size);
            assert!(class == 0 || block_layout(class - 1).size() < size);
        }
    }

    #[test]
    fn a_freed_block_is_reused_and_the_lists_stay_bounded() {
        let allocator = SizeClasses::new();
        let layout = Layout::from_size_align(24, 4).unwrap();
        // SAFETY: every block is used within its layout and freed once.
        unsafe {
            let first = allocator.alloc(layout);
            first.write_bytes(7, 24);
            allocator.dealloc(first, layout);
            let again = allocator.alloc(Layout::from_size_align(30, 8).unwrap());
            assert_eq!(again, first, "a block of the same class comes back");
            allocator.dealloc(again, Layout::from_size_align(30, 8).unwrap());

            let blocks: Vec<*mut u8> =
                (0..CACHED_BLOCKS_PER_CLASS_MAX + 10).map(|_| allocator.alloc(layout)).collect();
            for block in &blocks {
                allocator.dealloc(*block, layout);
            }
            assert_eq!(allocator.list(1).len, CACHED_BLOCKS_PER_CLASS_MAX);
            for _ in 0..CACHED_BLOCKS_PER_CLASS_MAX {
                let block = allocator.alloc(layout);
                assert!(blocks.contains(&block));
                allocator.dealloc(block, layout);
            }
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_stays_put_within_one() {
        let allocator = SizeClasses::new();
        // SAFETY: every block is used within its layout and freed once.
        unsafe {
            let small = Layout::from_size_align(20, 1).unwrap();
            let block = allocator.alloc(small);
            for index in 0..20 {
                block.add(index).write(index as u8);
            }
            let same = allocator.realloc(block, small, 31);
            assert_eq!(same, block, "20 and 31 bytes share the 32-byte class");
            let grown = allocator.realloc(same, Layout::from_size_align(31, 1).unwrap(), 5_000);
            let large = Layout::from_size_align(5_000, 1).unwrap();
            for index in 0..20 {
                assert_eq!(grown.add(index).read(), index as u8);
            }
            let shrunk = allocator.realloc(grown, large, 8);
            for index in 0..8 {
                assert_eq!(shrunk.add(index).read(), index as u8);
            }
            allocator.dealloc(shrunk, Layout::from_size_align(8, 1).unwrap());
        }
    }
}
