//! Text -> ids against independent tokenizers: the Python `tokenizers` library (tiny fixture) and tiktoken's
//! o200k_harmony (expected ids in tests/data/tokenizer/*.json, made by make_fixtures.py).

use std::path::{Path, PathBuf};

use ossify::tokenizer::{GgufVocab, TextTokenizer};
use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer")
}

fn samples(file: &str, key: &str) -> Vec<(String, Vec<u32>)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(data().join(file)).unwrap()).unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            (s["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

#[test]
fn tokenizer_json_matches_python_tokenizers() {
    let tok = TextTokenizer::from_tokenizer_json(&data().join("tiny/tokenizer.json")).unwrap();
    let cases = samples("tiny_expected_ids.json", "samples");
    assert!(cases.len() > 10);
    for (text, ids) in cases {
        assert_eq!(tok.encode(&text, true).unwrap(), ids, "{text:?}");
    }
}

#[test]
fn gguf_vocab_bpe_matches_python_tokenizers_on_tiny() {
    let vocab = GgufVocab::from_dir(&data().join("tiny"), 555).unwrap();
    let tok = TextTokenizer::from_gguf_vocab(&vocab).unwrap();
    for (text, ids) in samples("tiny_expected_ids.json", "samples") {
        assert_eq!(tok.encode(&text, true).unwrap(), ids, "{text:?}");
    }
}

#[test]
fn o200k_harmony_matches_tiktoken() {
    let tok = TextTokenizer::o200k_harmony().unwrap();
    let cases = samples("o200k_expected.json", "tiktoken_o200k_harmony_ids");
    for (text, ids) in cases {
        assert_eq!(tok.encode(&text, true).unwrap(), ids, "{text:?}");
    }
}

#[test]
fn gguf_vocab_bpe_from_o200k_matches_tiktoken() {
    let vocab = GgufVocab::from_o200k_harmony(201_088).unwrap();
    let tok = TextTokenizer::from_gguf_vocab(&vocab).unwrap();
    for (text, ids) in samples("o200k_expected.json", "tiktoken_o200k_harmony_ids") {
        assert_eq!(tok.encode(&text, true).unwrap(), ids, "{text:?}");
    }
}

#[test]
fn special_tokens_are_text_unless_asked() {
    let tok = TextTokenizer::o200k_harmony().unwrap();
    let text = "<|start|>user<|message|>hi<|end|>";
    let parsed = tok.encode(text, true).unwrap();
    assert_eq!(parsed.first(), Some(&200_006));
    let plain = tok.encode(text, false).unwrap();
    assert!(!plain.contains(&200_006));
    let vocab = GgufVocab::from_o200k_harmony(201_088).unwrap();
    let gguf = TextTokenizer::from_gguf_vocab(&vocab).unwrap();
    assert_eq!(gguf.encode(text, true).unwrap(), parsed);
    assert_eq!(gguf.encode_ordinary(text).unwrap(), plain);
    // llama.cpp reads <|start|>, <|message|> and <|end|> of o200k_harmony even with parse_special = false
    // (its gpt-oss user-defined override; tests/tokenize_cli.rs pins the ids to llama.cpp's)
    assert_eq!(gguf.encode(text, false).unwrap(), parsed);
}

#[test]
fn long_pieces_match_tiktoken() {
    // one pre-tokenizer piece of thousands of symbols exercises the heap merge order on equal ranks
    let text = format!(
        "{}{}x{}\n\n{}",
        " ".repeat(3001),
        "a".repeat(2999),
        "ab".repeat(1500),
        "🦙😶\u{200d}🌫\u{fe0f}".repeat(300)
    );
    let vocab = GgufVocab::from_o200k_harmony(201_088).unwrap();
    let ours = TextTokenizer::from_gguf_vocab(&vocab)
        .unwrap()
        .encode(&text, false)
        .unwrap();
    let reference = TextTokenizer::o200k_harmony()
        .unwrap()
        .encode(&text, false)
        .unwrap();
    assert_eq!(ours, reference);
}

#[test]
fn decode_inverts_encode_for_all_three() {
    let text = "Grüße 🦙 <|start|>user<|message|>你好, world!\n\t  x";
    let vocab = GgufVocab::from_o200k_harmony(201_088).unwrap();
    for tok in [
        TextTokenizer::o200k_harmony().unwrap(),
        TextTokenizer::from_gguf_vocab(&vocab).unwrap(),
        TextTokenizer::from_tokenizer_json(&data().join("tiny/tokenizer.json")).unwrap(),
    ] {
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "{}", tok.describe());
    }
}
