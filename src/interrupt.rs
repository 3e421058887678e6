//! What the process does when it is told to stop, or when an input shrinks under its memory map.
//!
//! - SIGINT / SIGTERM: a watcher thread ([`signal_hook::iterator::Signals`]) removes every partial output
//!   (`atomic::remove_live_partials`), says so in one line and exits 130 / 143, the shell's codes for death by
//!   those signals. An output already renamed into place stays: it is complete.
//! - SIGBUS: raised on the thread that touched a page of a mapped input past the file's new end (someone
//!   truncated it while we read). A check before mapping cannot close that window, so the signal is handled:
//!   the handler (async-signal-safe: one `write`, then `pause` forever, so the faulting access is never
//!   retried) wakes a watcher thread, which names the file that shrank (`mmap::shrunk_input`), removes the
//!   partial outputs and exits 2, as for any bad input.
//! - SIGKILL cannot be handled: it leaves `X.partial`, which the next run recognises as stale (its lock died
//!   with the process) and replaces, saying so (`atomic`).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use ossify_formats::atomic;
use signal_hook::consts::{SIGBUS, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Installs the handlers (once, at the start of `main`). Failing to install one only loses that cleanup.
pub fn install() {
    if let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) {
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let removed = atomic::remove_live_partials();
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    eprintln!("error: interrupted by {name}{}", removed_note(&removed));
                    std::process::exit(128 + sig);
                }
            });
    }
    install_sigbus();
}

fn removed_note(removed: &[std::path::PathBuf]) -> String {
    if removed.is_empty() {
        return String::new();
    }
    let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    format!("; removed the partial output {}", names.join(", "))
}

fn install_sigbus() {
    let Ok((mut watch, wake)) = UnixStream::pair() else {
        return;
    };
    let fd = wake.as_raw_fd();
    // The write end lives as long as the process.
    std::mem::forget(wake);
    let spawned = std::thread::Builder::new()
        .name("sigbus".into())
        .spawn(move || {
            let mut b = [0u8; 1];
            if watch.read_exact(&mut b).is_err() {
                return;
            }
            let removed = atomic::remove_live_partials();
            match ossify_formats::mmap::shrunk_input() {
                Some(s) => eprintln!("error: {s}{}", removed_note(&removed)),
                None => eprintln!(
                    "error: bus error reading a memory-mapped input (a file changed while being read){}",
                    removed_note(&removed)
                ),
            }
            std::process::exit(2);
        });
    if spawned.is_err() {
        return;
    }
    let handler = move || {
        // SAFETY (of the calls): write(2) and pause(2) are async-signal-safe; `fd` stays open for the life of
        // the process. Returning would retry the faulting access, so the thread waits here for the watcher to
        // end the process.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    };
    // SAFETY: the handler only makes async-signal-safe system calls (above) and touches no locks or memory
    // that could be in an inconsistent state.
    let _ = unsafe { signal_hook::low_level::register(SIGBUS, handler) };
}
