//! What every fuzz target shares: an allocator that turns one oversized allocation into a crash.
//!
//! libFuzzer's `-rss_limit_mb` sees only memory that is touched, and `-malloc_limit_mb` needs a sanitizer's
//! allocator hooks, which a stable build without sanitizers does not have. A reader that sizes a buffer from an
//! unchecked number often asks for gigabytes it never touches (zeroed memory is mapped lazily), so each
//! allocation is checked here instead: more than [`MAX_ALLOCATION`] at once aborts with a message, which the
//! fuzzer reports as a crash and saves the input. Issue 8's bound: a file under 1 MB never makes ossify allocate
//! more than a few hundred MB.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a fuzz input may cause.
pub const MAX_ALLOCATION: usize = 256 << 20;

pub struct CappedAlloc;

fn too_big(size: usize) -> ! {
    // No allocation here: the message is formatted into a stack buffer.
    let mut buf = [0u8; 96];
    let msg = b"ossify-fuzz: one allocation of ";
    let mut n = 0;
    for &b in msg {
        buf[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = size;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    for &b in b" bytes (over the cap)\n" {
        buf[n] = b;
        n += 1;
    }
    // Stderr is unbuffered: this writes without allocating.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf[..n]);
    std::process::abort()
}

// SAFETY: every call is forwarded to the system allocator unchanged; the only addition is an abort before an
// oversized request, which allocates nothing.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_big(layout.size());
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_big(layout.size());
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            too_big(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}
