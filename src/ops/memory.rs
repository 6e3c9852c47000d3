//! Keeping the process's resident memory near what it uses (bench/README.md "Soak", the RSS
//! growth). A heap profile of the soak showed a live heap of 3-9 MB while RSS grew from 23 to
//! 55 MB in 12 minutes: glibc's allocator keeps one arena per thread that allocated (up to 8 per
//! core) and returns freed memory in them to the system only from the top. So, with glibc:
//!
//! - at most `ARENAS` arenas (unless `MALLOC_ARENA_MAX` is set, which glibc reads itself), set
//!   before the runtime starts its threads;
//! - every `TRIM_EVERY` the free pages of every arena go back to the system (`malloc_trim`).
//!
//! Other C libraries: nothing is done. A build with the `mimalloc` feature (src/main.rs) takes
//! the gateway's own allocations to mimalloc; these settings then cover what C code (SQLite)
//! allocates with glibc.

use std::time::Duration;

/// Arenas at most (glibc's default is 8 per core).
pub const ARENAS: i32 = 2;
/// How often free pages are handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Call first thing in `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Hand free heap pages back to the system (cheap: a walk over the arenas' free lists).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trim every `TRIM_EVERY` for the life of the runtime.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}
