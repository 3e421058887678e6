//! verify-parity's built-in input: the shipped documents, tokenized with the source's own tokenizer (checked
//! against the Python `tokenizers` library's ids for golden/tiny in tests/tokenize_cli.rs), named in the report.

mod common;

use common::{golden, json, ossify, s};
use ossify::parity::input::{DEFAULT_INPUT, DEFAULT_INPUT_NAME};
use ossify::tokenizer::TextTokenizer;

#[test]
fn default_input_is_the_shipped_set_and_the_report_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    assert!(ossify(&["convert", s(&golden("tiny")), "-o", s(&gguf)])
        .status
        .success());
    let o = ossify(&["verify-parity", s(&golden("tiny")), s(&gguf), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let tok = TextTokenizer::for_checkpoint(&golden("tiny")).unwrap();
    let n: usize = DEFAULT_INPUT
        .iter()
        .map(|(_, t)| tok.encode(t, true).unwrap().len())
        .sum();
    assert_eq!(v["logits"]["n_sequences"], DEFAULT_INPUT.len());
    // each sequence scores every next-token prediction: one fewer than its tokens
    assert_eq!(v["logits"]["n_tokens"], n - DEFAULT_INPUT.len());
    assert!(v["logits"]["input"]
        .as_str()
        .unwrap()
        .starts_with(DEFAULT_INPUT_NAME));
    // three harmony conversations with reasoning, prose and code, as the README says
    let names: Vec<&str> = DEFAULT_INPUT.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("conversation"))
            .count(),
        3
    );
    for (name, text) in DEFAULT_INPUT
        .iter()
        .filter(|(n, _)| n.starts_with("conversation"))
    {
        assert!(text.contains("<|channel|>analysis<|message|>"), "{name}");
        assert!(text.contains("<|channel|>final<|message|>"), "{name}");
    }

    let o = ossify(&["verify-parity", s(&golden("tiny")), s(&gguf)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("input:") && l.contains(DEFAULT_INPUT_NAME)),
        "{out}"
    );
}
