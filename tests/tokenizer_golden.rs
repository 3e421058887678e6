//! Against the golden checkpoint (golden/README.md): our vocabulary metadata must equal, key for key and in
//! order, the `tokenizer.*` keys llama.cpp's converter wrote into golden/llamacpp/*.gguf from golden/tiny; and
//! the three text tokenizers must give the ids transformers gave (golden/reference/tokens.json).

use std::path::{Path, PathBuf};

use ossify::tokenizer::{GgufVocab, TextTokenizer};
use ossify_formats::gguf::{GgufFile, GgufWriter, MetaValue};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn golden_vocab_size() -> usize {
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("golden/tiny/config.json")).unwrap(),
    )
    .unwrap();
    cfg["vocab_size"].as_u64().unwrap() as usize
}

fn llama_cpp_tokenizer_kv(gguf: &str) -> Vec<(String, MetaValue)> {
    let file = GgufFile::open(&root().join("golden/llamacpp").join(gguf)).unwrap();
    file.metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .collect()
}

#[test]
fn metadata_equals_what_llama_cpp_wrote() {
    let ours = GgufVocab::from_dir(&root().join("golden/tiny"), golden_vocab_size())
        .unwrap()
        .to_metadata();
    let theirs = llama_cpp_tokenizer_kv("tiny.f32.gguf");
    let keys = |kv: &[(String, MetaValue)]| kv.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&theirs));
    for ((k, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "{k}");
    }
    // the same from the BF16 fine-tune's GGUF (same tokenizer files)
    assert_eq!(ours, llama_cpp_tokenizer_kv("tiny-bf16.bf16.gguf"));
}

#[test]
fn from_gguf_reads_back_what_llama_cpp_wrote() {
    let dir_vocab = GgufVocab::from_dir(&root().join("golden/tiny"), golden_vocab_size()).unwrap();
    let file = GgufFile::open(&root().join("golden/llamacpp/tiny.q8_0.gguf")).unwrap();
    assert_eq!(GgufVocab::from_gguf(&file).unwrap(), dir_vocab);
}

#[test]
fn metadata_round_trips_through_our_writer() {
    let v = GgufVocab::from_o200k_harmony(201_088).unwrap();
    let mut w = GgufWriter::new();
    for (k, val) in v.to_metadata() {
        w.add_kv(&k, val).unwrap();
    }
    let file = GgufFile::from_bytes(w.header_bytes()).unwrap();
    assert_eq!(GgufVocab::from_gguf(&file).unwrap(), v);
}

#[test]
fn from_gguf_rejects_wrong_types_and_out_of_range_ids() {
    let mut kv = GgufVocab::from_dir(&root().join("golden/tiny"), golden_vocab_size())
        .unwrap()
        .to_metadata();
    let eos = kv
        .iter()
        .position(|(k, _)| k == "tokenizer.ggml.eos_token_id")
        .unwrap();
    kv[eos].1 = MetaValue::U32(1_000_000);
    let err = GgufVocab::from_metadata(&kv).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.ggml.eos_token_id") && err.contains("outside"),
        "{err}"
    );
    kv[eos].1 = MetaValue::String("x".into());
    let err = GgufVocab::from_metadata(&kv).unwrap_err().to_string();
    assert!(err.contains("expected a u32"), "{err}");
    kv.retain(|(k, _)| k != "tokenizer.ggml.tokens");
    let err = GgufVocab::from_metadata(&kv).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}

#[test]
fn text_tokenizers_match_transformers_on_golden_texts() {
    let t: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("golden/reference/tokens.json")).unwrap(),
    )
    .unwrap();
    let from_json =
        TextTokenizer::from_tokenizer_json(&root().join("golden/tiny/tokenizer.json")).unwrap();
    let file = GgufFile::open(&root().join("golden/llamacpp/tiny.f32.gguf")).unwrap();
    let from_gguf = TextTokenizer::from_gguf_vocab(&GgufVocab::from_gguf(&file).unwrap()).unwrap();
    for (text, seq) in t["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(t["sequences"].as_array().unwrap())
    {
        let text = text.as_str().unwrap();
        let want: Vec<u32> = seq
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        // the reference keeps the first tokens of each text
        for tok in [&from_json, &from_gguf] {
            let ids = tok.encode(text, true).unwrap();
            assert_eq!(
                &ids[..want.len()],
                &want[..],
                "{} on {text:?}",
                tok.describe()
            );
        }
    }
}

#[test]
fn for_checkpoint_reads_gguf_files_and_folders() {
    let text = "The quick brown fox <|start|>";
    let gguf =
        TextTokenizer::for_checkpoint(&root().join("golden/llamacpp/tiny.f32.gguf")).unwrap();
    let dir = TextTokenizer::for_checkpoint(&root().join("golden/tiny")).unwrap();
    assert_eq!(gguf.describe(), "GGUF vocabulary");
    assert_eq!(dir.describe(), "tokenizer.json");
    assert_eq!(
        gguf.encode(text, true).unwrap(),
        dir.encode(text, true).unwrap()
    );
    // OpenAI's original/ layout has no tokenizer.json: the HF folder around it has, else o200k_harmony
    let orig = TextTokenizer::for_checkpoint(&root().join("golden/tiny/original")).unwrap();
    assert_eq!(
        orig.encode(text, true).unwrap(),
        dir.encode(text, true).unwrap()
    );
    let lone = tempfile::tempdir().unwrap();
    let bare = TextTokenizer::for_checkpoint(lone.path()).unwrap();
    assert_eq!(bare.describe(), "o200k_harmony (tiktoken-rs)");
}
