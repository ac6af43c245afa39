//! The allocator: mimalloc, tuned for how a pipeline uses memory.
//!
//! Feature rows are built on worker threads and freed on the sinks'
//! thread, in bursts. mimalloc handles that far better than the system
//! allocator, but by default returns freed memory to the OS after 10 ms,
//! and the next burst then pays for the kernel zeroing fresh (huge) pages
//! again: about a tenth of the CPU in the session-features benchmark.

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_e` (mimalloc.h); the
/// Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory instead of returning it to the OS (the working set of
/// a pipeline is steady: batches come and go at the same size), and use
/// ordinary pages, so touching new memory does not zero 2 MiB at a time.
pub fn tune() {
    // SAFETY: sets process-wide options by value; mimalloc reads options
    // atomically, so any time is safe.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 0);
    }
}
