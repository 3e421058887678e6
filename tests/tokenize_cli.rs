//! `ossify tokenize` against independent tokenizers, on llama.cpp's own tokenizer test strings
//! (`models/ggml-vocab-*.gguf.inp`) and harmony strings with special tokens. Expected ids in
//! tests/data/tokenizer/tokenize_expected.json, made by make_tokenize_fixtures.py with the Python `tokenizers`
//! library, openai-harmony (tiktoken's o200k_harmony) and llama.cpp (llama-cpp-python 0.3.36, `vocab_only`).

mod common;

use std::path::{Path, PathBuf};

use common::{golden, json, ossify, s};
use ossify::tokenizer::{GgufVocab, TextTokenizer};
use serde_json::Value;

fn expected() -> Value {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer/tokenize_expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn texts(e: &Value) -> Vec<String> {
    e["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn check(
    tok: &TextTokenizer,
    texts: &[String],
    want: &[Vec<u32>],
    parse_special: bool,
    what: &str,
) {
    assert_eq!(texts.len(), want.len());
    assert!(texts.len() > 40, "the fixture lost its texts");
    for (t, w) in texts.iter().zip(want) {
        assert_eq!(&tok.encode(t, parse_special).unwrap(), w, "{what}: {t:?}");
    }
}

fn converted_tiny(dir: &Path) -> PathBuf {
    let out = dir.join("tiny.gguf");
    let o = ossify(&["convert", s(&golden("tiny")), "-o", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn tiny_tokenizer_json_equals_python_tokenizers() {
    let e = expected();
    let tok = TextTokenizer::for_checkpoint(&golden("tiny")).unwrap();
    assert_eq!(tok.describe(), "tokenizer.json");
    check(
        &tok,
        &texts(&e),
        &ids(&e["tiny"]["tokenizers"]),
        true,
        "tiny tokenizer.json",
    );
}

#[test]
fn tiny_gguf_vocabulary_equals_llama_cpp() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let gguf = converted_tiny(dir.path());
    let tok = TextTokenizer::for_checkpoint(&gguf).unwrap();
    assert_eq!(tok.describe(), "GGUF vocabulary");
    assert_eq!(e["tiny"]["llama_cpp_differs"], serde_json::json!([]));
    check(
        &tok,
        &texts(&e),
        &ids(&e["tiny"]["llama_cpp"]),
        true,
        "tiny GGUF",
    );
    check(
        &tok,
        &texts(&e),
        &ids(&e["tiny"]["llama_cpp_plain"]),
        false,
        "tiny GGUF, no special",
    );
}

#[test]
fn real_o200k_harmony_equals_openai_harmony_and_llama_cpp() {
    let e = expected();
    let t = texts(&e);
    // the fixture script checked that openai-harmony, `tokenizers` on the real tokenizer.json and llama.cpp on
    // ossify's GGUF of it agree; ossify's two tokenizers of the real vocabulary must give the same ids
    let tiktoken = TextTokenizer::o200k_harmony().unwrap();
    check(
        &tiktoken,
        &t,
        &ids(&e["o200k"]["openai_harmony"]),
        true,
        "o200k_harmony",
    );
    let vocab = GgufVocab::from_o200k_harmony(201_088).unwrap();
    let gguf = TextTokenizer::from_gguf_vocab(&vocab).unwrap();
    // llama.cpp's own regex engine splits Khmer vowel signs differently from tiktoken (the model's training
    // tokenizer) and `tokenizers`; on those texts ossify follows tiktoken, everywhere else llama.cpp
    let differs: Vec<usize> =
        serde_json::from_value(e["o200k"]["llama_cpp_differs"].clone()).unwrap();
    assert!(
        differs.len() <= 2,
        "llama.cpp now differs on more texts: {differs:?}"
    );
    let mut want = ids(&e["o200k"]["llama_cpp"]);
    let reference = ids(&e["o200k"]["openai_harmony"]);
    for &i in &differs {
        assert!(
            t[i].contains('\u{17b6}'),
            "an unexpected llama.cpp difference: {:?}",
            t[i]
        );
        want[i] = reference[i].clone();
    }
    check(&gguf, &t, &want, true, "o200k GGUF vocabulary");
    let mut plain = ids(&e["o200k"]["llama_cpp_plain"]);
    for &i in &differs {
        assert!(
            !t[i].contains("<|"),
            "no special tokens, so the reference ids hold without parsing too"
        );
        plain[i] = reference[i].clone();
    }
    check(&gguf, &t, &plain, false, "o200k GGUF, no special");
}

/// The command itself: the same ids from a file, from stdin and from -p, as JSON and as llama-tokenize prints.
#[test]
fn command_prints_ids_and_pieces() {
    let e = expected();
    let t = texts(&e);
    let want = ids(&e["tiny"]["tokenizers"]);
    let k = t
        .iter()
        .position(|x| x.contains("<|channel|>analysis"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.txt");
    std::fs::write(&f, &t[k]).unwrap();

    let o = ossify(&["tokenize", s(&golden("tiny")), "--text", s(&f), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let got: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(got, want[k]);
    assert_eq!(v["n_tokens"], want[k].len());
    assert_eq!(v["tokenizer"], "tokenizer.json");

    let o = ossify(&["tokenize", s(&golden("tiny")), "-p", &t[k]]);
    assert!(o.status.success());
    let line = String::from_utf8(o.stdout).unwrap();
    let list: Vec<String> = want[k].iter().map(u32::to_string).collect();
    assert_eq!(line, format!("[{}]\n", list.join(", ")));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(["tokenize", s(&golden("tiny")), "--pieces", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"<|start|>user<|message|>Hi")
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "-q printed {:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, "   498 -> '<|start|>'");
    assert!(text.lines().any(|l| l.ends_with("-> '<|message|>'")));
}

#[test]
fn special_tokens_as_text_on_request() {
    let o = ossify(&[
        "tokenize",
        s(&golden("tiny")),
        "-p",
        "<|start|>",
        "--no-parse-special",
        "--json",
    ]);
    assert!(o.status.success());
    let v = json(&o);
    let got: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert!(!got.contains(&498) && got.len() > 1, "{got:?}");
}

#[test]
fn missing_model_is_one_clear_line() {
    let o = ossify(&["tokenize", "/nonexistent/model", "-p", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/model"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
