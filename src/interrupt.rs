//! What the process does when it is told to stop, or when an input shrinks under its memory map.
//!
//! - SIGINT / SIGTERM: a watcher thread ([`signal_hook::iterator::Signals`]) removes every partial output
//!   (`atomic::remove_live_partials`), says so in one line and exits 130 / 143, the shell's codes for death by
//!   those signals. An output already renamed into place stays: it is complete.
//! - SIGBUS: raised on the thread that touched a page of a mapped input past the file's new end (someone
//!   truncated it while we read). A check before mapping cannot close that window, so the signal is handled:
//!   the handler (installed with `sigaction`; async-signal-safe: one `write`, then `pause` forever, so the faulting access is never
//!   retried) wakes a watcher thread, which names the file that shrank (`mmap::shrunk_input`), removes the
//!   partial outputs and exits 2, as for any bad input.
//! - SIGKILL cannot be handled: it leaves `X.partial`, which the next run recognises as stale (its lock died
//!   with the process) and replaces, saying so (`atomic`).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use ossify_formats::atomic;
use signal_hook::consts::{SIGINT, SIGTERM};
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
    handle_sigbus(fd);
}

/// Makes every SIGBUS, on any thread and however many, write one byte to `fd` and wait there for the process
/// to end.
///
/// Installed with sigaction directly, not through signal-hook: signal-hook chains to the handler installed
/// before it, which for SIGBUS is the Rust runtime's stack-overflow handler, and that one resets SIGBUS to its
/// default action for a fault outside a guard page. A second thread touching the truncated map then killed the
/// process silently by SIGBUS before the watcher could speak (seen once in CI). On Linux a stack overflow
/// raises SIGSEGV, whose handler stays the runtime's.
fn handle_sigbus(fd: i32) {
    SIGBUS_WAKE.store(fd, Ordering::SeqCst);
    // SAFETY: `on_sigbus` only makes async-signal-safe calls; the sigaction struct is zeroed, then filled.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// The write end of the SIGBUS watcher's socket (-1 before [`install`]).
static SIGBUS_WAKE: AtomicI32 = AtomicI32::new(-1);

/// Wakes the watcher and waits for it to end the process. Returning would retry the faulting access.
extern "C" fn on_sigbus(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let fd = SIGBUS_WAKE.load(Ordering::SeqCst);
    // SAFETY: write(2) and pause(2) are async-signal-safe; `fd` stays open for the life of the process.
    unsafe {
        libc::write(fd, [1u8].as_ptr().cast(), 1);
        loop {
            libc::pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regression: after one SIGBUS the handler must still be installed, or a second faulting thread dies
    /// silently of SIGBUS before the watcher names the file (signal-hook chained to the runtime's handler, which
    /// reset SIGBUS to its default action).
    #[test]
    fn sigbus_stays_handled_after_the_first_one() {
        let (mut watch, wake) = UnixStream::pair().unwrap();
        handle_sigbus(wake.as_raw_fd());
        std::mem::forget(wake);
        let handler = |_| {
            let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: reading the current action into a zeroed struct.
            unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) };
            cur.sa_sigaction
        };
        assert_ne!(handler(()), libc::SIG_DFL);
        for _ in 0..2 {
            // Each SIGBUS lands on a thread of its own, which then waits in the handler for the process to end.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                // SAFETY: pthread_self names this live thread; the signal is delivered to it alone.
                tx.send(unsafe { libc::pthread_self() }).unwrap();
                loop {
                    std::thread::park();
                }
            });
            let thread = rx.recv().unwrap();
            // SAFETY: `thread` is alive (it never returns).
            assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGBUS) }, 0);
            let mut b = [0u8; 1];
            watch.read_exact(&mut b).unwrap();
            assert_ne!(
                handler(()),
                libc::SIG_DFL,
                "SIGBUS was reset after a signal"
            );
        }
    }
}
