//! Handing freed memory back to the operating system.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse; with many
//! threads and many small connection-sized allocations, memory freed when
//! thousands of connections close can stay resident for good (hundreds of
//! MB were seen). `malloc_trim` returns every free page. The server calls it
//! a little after connections close or sessions park, at most once per
//! [`TRIM_AFTER`], so a steady stream of short connections costs one cheap
//! trim per interval, not one per connection.

use std::time::Duration;

/// Delay between memory being freed and the trim.
pub(crate) const TRIM_AFTER: Duration = Duration::from_secs(1);

/// Returns free heap pages to the OS where the allocator supports it.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and has no preconditions; it
        // only walks glibc's own arenas under their locks.
        unsafe {
            malloc_trim(0);
        }
    }
}
