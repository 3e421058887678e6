//! One command line: the flags every command shares (found by walking the command tree `--help` prints, so a
//! new command cannot be left out), case-insensitive type names, llama.cpp's spellings as aliases,
//! completions, --version with the commit, and convert's --layout naming a mismatch.

mod common;

use common::{golden, json, ossify, s};

/// Commands that take no model and do no work, so the shared flags mean nothing to them.
const WITHOUT_SHARED_FLAGS: &[&str] = &["completions", "help"];

/// The subcommands `ossify --help` lists (clap's "Commands:" section).
fn commands() -> Vec<String> {
    let help = String::from_utf8(ossify(&["--help"]).stdout).unwrap();
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for known in [
        "convert",
        "quantize",
        "verify-parity",
        "perplexity",
        "generate",
        "chat",
    ] {
        assert!(list.iter().any(|c| c == known), "{known} not in {list:?}");
    }
    list
}

#[test]
fn every_command_has_json_quiet_and_threads() {
    let mut checked = 0;
    for cmd in commands() {
        if WITHOUT_SHARED_FLAGS.contains(&cmd.as_str()) {
            continue;
        }
        let o = ossify(&[&cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        let help = String::from_utf8(o.stdout).unwrap();
        for flag in ["--json", "-q, --quiet", "-t, --threads <THREADS>"] {
            assert!(help.contains(flag), "ossify {cmd} has no {flag}:\n{help}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} commands");
}

#[test]
fn threads_is_validated_on_every_command() {
    for cmd in commands() {
        if WITHOUT_SHARED_FLAGS.contains(&cmd.as_str()) {
            continue;
        }
        // Rejected while parsing, before the missing model or any other argument is looked at.
        let o = ossify(&[&cmd, "--threads", "1000000", "x"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("per core"), "{cmd}: {err}");
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
    }
}

/// `--threads` reaches the work: the forward pass of perplexity gives the same result on 1 and 3 threads,
/// and `-q` leaves standard error empty.
#[test]
fn threads_and_quiet_on_perplexity() {
    let run = |t: &str| {
        let o = ossify(&[
            "perplexity",
            s(&golden("tiny")),
            "-f",
            s(&golden("tiny/config.json")),
            "-c",
            "16",
            "--json",
            "-t",
            t,
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        json(&o)
    };
    let (one, three) = (run("1"), run("3"));
    assert_eq!(one["ppl"], three["ppl"]);
    assert!(one["ppl"].as_f64().unwrap() > 1.0);
}

#[test]
fn type_names_are_case_insensitive_and_outfile_is_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.gguf");
    let o = ossify(&[
        "convert",
        s(&golden("tiny")),
        "--outfile",
        s(&out),
        "--outtype",
        "Q8_0",
        "-t",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.is_file());
    assert!(json(&o).is_object());
    let o = ossify(&[
        "perplexity",
        s(&out),
        "-f",
        s(&golden("tiny/config.json")),
        "-c",
        "16",
        "--precision",
        "Q8",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["n_ctx"], 16);
}

#[test]
fn version_names_the_commit() {
    let o = ossify(&["--version"]);
    let v = String::from_utf8(o.stdout).unwrap();
    assert!(v.starts_with("ossify 0."), "{v}");
    assert!(v.contains("(commit "), "{v}");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = ossify(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.contains("verify-parity") && text.contains("tokenize"),
            "{shell}"
        );
    }
}

#[test]
fn convert_offers_only_the_layouts_it_reads_and_names_a_mismatch() {
    let help = String::from_utf8(ossify(&["convert", "--help"]).stdout).unwrap();
    let line = help.lines().find(|l| l.contains("--layout")).unwrap();
    assert!(
        line.contains("hf, original") && !line.contains("gguf"),
        "{line}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = ossify(&[
        "convert",
        s(&golden("tiny")),
        "--layout",
        "original",
        "-o",
        s(&dir.path().join("x.gguf")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--layout original given, but this is a checkpoint in the hf layout"),
        "{err}"
    );
}
