//! The allocator: mimalloc, tuned for how a pipeline uses memory.
//!
//! Feature rows are built on worker threads and freed on the sinks'
//! thread, in bursts. mimalloc handles that far better than the system
//! allocator, but by default returns freed memory to the OS after 10 ms,
//! and the next burst then pays for the kernel zeroing fresh (huge) pages
//! again: about a tenth of the CPU in the session-features benchmark.

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h); the
/// Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory for a second before returning it to the OS.
pub fn tune() {
    // SAFETY: sets a process-wide option by value; mimalloc reads options
    // atomically, so any time is safe.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1_000);
    }
}
