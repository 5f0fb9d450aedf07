//! Giving freed heap back to the system while the watches list.
//!
//! A listing decodes every object of a page (tens of KiB to MiB of JSON, then the full objects)
//! and keeps only a slim copy of each. glibc keeps the freed space of those decodes between the
//! small long-lived copies, resident, until the process ends: the resident set grows with the
//! listing's garbage, not with what is stored. `malloc_trim` hands the free pages inside the heap
//! back (`MADV_DONTNEED`); called once per listed page and when a listing ends, it keeps the
//! peak near what the stores hold (see README "Benchmarks").

use std::sync::atomic::{AtomicU32, Ordering};

/// Listed objects between two trims: one page of the watches' listing.
const EVERY: u32 = super::LIST_PAGE;

/// Counts listed objects and trims the heap after each page's worth.
#[derive(Debug, Default)]
pub struct Trimmer {
    listed: AtomicU32,
}

impl Trimmer {
    /// Notes one object of a listing; every [`EVERY`]th one trims the heap.
    pub fn listed_one(&self) {
        if self.listed.fetch_add(1, Ordering::Relaxed) % EVERY == EVERY - 1 {
            release_free_heap();
        }
    }
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`; elsewhere nothing).
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory; it is
    // thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// This process's resident set, bytes (from /proc/self/statm).
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        pages * 4096
    }

    #[test]
    fn a_trim_returns_the_garbage_between_kept_objects() {
        // A listing in miniature: decode 64 MiB in 2 KiB pieces, keep one piece in 16.
        let mut kept = Vec::new();
        let mut garbage = Vec::new();
        for i in 0..32 * 1024 {
            let piece = vec![i as u8; 2048];
            if i % 16 == 0 {
                kept.push(piece);
            } else {
                garbage.push(piece);
            }
        }
        drop(garbage);
        let before = resident();
        release_free_heap();
        let after = resident();
        assert!(before - after.min(before) > 32 << 20, "trimmed from {before} to {after} bytes");
        assert_eq!(kept.len(), 2048);
    }

    #[test]
    fn trims_once_per_page_of_listed_objects() {
        let t = Trimmer::default();
        for _ in 0..EVERY * 3 {
            t.listed_one();
        }
        assert_eq!(t.listed.load(Ordering::Relaxed), EVERY * 3);
    }
}
