//! One command line: case-insensitive type names, llama.cpp's spellings as aliases, completions, --version with
//! the commit, and convert's --layout naming a mismatch.

mod common;

use common::{golden, json, ossify, s};

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
