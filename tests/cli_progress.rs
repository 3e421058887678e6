//! Progress on a terminal: every step that can take long draws a bar when standard error is a terminal (a
//! pseudo-terminal here), none with `-q` or when standard error is a pipe, and no colour under `NO_COLOR`.

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use common::{golden, ossify, s};

/// Runs ossify with standard error on a fresh pseudo-terminal (standard output a pipe); returns the exit
/// status, standard output and everything written to the terminal.
fn on_terminal(args: &[&str], env: &[(&str, &str)]) -> (bool, Vec<u8>, String) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the given ints; no name buffer, no termios.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ossify"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    // The parent's copy of the terminal's slave end must be closed, or reading the master never ends.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut buf = Vec::new();
        // Ends with EIO once the child (the last holder of the slave end) exits.
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    });
    let out = child.wait_with_output().unwrap();
    let term = reader.join().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&term).into_owned(),
    )
}

/// An SGR colour sequence (ESC [ 3x m, or 38;5 / 9x bright colours).
fn has_colour(t: &str) -> bool {
    t.match_indices("\x1b[").any(|(i, _)| {
        let rest = &t[i + 2..];
        let code: String = rest.chars().take_while(|c| *c != 'm').take(12).collect();
        code.split(';')
            .any(|p| p.len() == 2 && (p.starts_with('3') || p.starts_with('9')) && p != "39")
    })
}

/// The steps, each with the label its bar shows.
fn steps(dir: &std::path::Path) -> Vec<(Vec<String>, Vec<&'static str>)> {
    let g = |p: &str| s(&golden(p)).to_string();
    let o = |p: &str| s(&dir.join(p)).to_string();
    vec![
        (
            vec![
                "verify-parity".into(),
                g("tiny"),
                g("llamacpp/tiny.q8_0.gguf"),
            ],
            vec![
                "comparing tensors",
                "forward pass, source",
                "forward pass, candidate",
            ],
        ),
        (
            vec![
                "perplexity".into(),
                g("tiny"),
                "-f".into(),
                g("tiny/config.json"),
                "-c".into(),
                "16".into(),
            ],
            vec!["perplexity", "chunks"],
        ),
        (
            vec!["inspect-weights".into(), g("tiny"), "--stats".into()],
            vec!["statistics"],
        ),
        (
            vec![
                "convert".into(),
                g("tiny"),
                "-o".into(),
                o("c.gguf"),
                "--force".into(),
            ],
            vec!["writing"],
        ),
        (
            vec![
                "quantize".into(),
                g("tiny-bf16"),
                "-o".into(),
                o("q.gguf"),
                "--calibration".into(),
                g("tiny/config.json"),
                "--force".into(),
            ],
            vec!["calibration", "quantizing"],
        ),
    ]
}

#[test]
fn bars_on_a_terminal_none_with_quiet_or_on_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    for (args, labels) in steps(dir.path()) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();

        let (ok, _, term) = on_terminal(&args, &[]);
        assert!(ok, "{args:?}: {term}");
        for l in &labels {
            assert!(
                term.contains(l),
                "{args:?}: no '{l}' bar on the terminal: {term:?}"
            );
        }
        assert!(has_colour(&term), "{args:?}: {term:?}");

        let (ok, _, plain) = on_terminal(&args, &[("NO_COLOR", "1")]);
        assert!(ok, "{args:?}: {plain}");
        for l in &labels {
            assert!(
                plain.contains(l),
                "{args:?}: no '{l}' under NO_COLOR: {plain:?}"
            );
        }
        assert!(
            !has_colour(&plain),
            "{args:?}: colour under NO_COLOR: {plain:?}"
        );

        let mut quiet = args.clone();
        quiet.push("-q");
        let (ok, _, silent) = on_terminal(&quiet, &[]);
        assert!(ok, "{quiet:?}: {silent}");
        for l in &labels {
            assert!(
                !silent.contains(l),
                "{quiet:?}: '{l}' despite -q: {silent:?}"
            );
        }

        let o = ossify(&args);
        assert!(o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains('\r') && !err.contains("\x1b["),
            "{args:?}: {err:?}"
        );
    }
}

#[test]
fn colour_detection_sees_colour() {
    assert!(has_colour("x\x1b[36mbar\x1b[0m"));
    assert!(has_colour("\x1b[1;32mok"));
    assert!(!has_colour("\x1b[2K\x1b[1A\rplain"));
    assert!(!has_colour("\x1b[0m"));
}
