//! GgufVocab against llama.cpp's converter: expected values in tests/data/tokenizer/*.json were made by
//! llama.cpp's own conversion code (get_vocab_base + gguf-py SpecialVocab), see make_fixtures.py there.

use std::path::{Path, PathBuf};

use ossify::tokenizer::{chkhsh, GgufVocab, SpecialToken, TextTokenizer, TokenType, CHKTXT};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(data().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn kind(name: &str) -> SpecialToken {
    *SpecialToken::ALL.iter().find(|k| k.name() == name).unwrap()
}

/// sha256 over each item followed by NUL, as make_fixtures.py's digest()
fn digest<T: ToString>(items: &[T]) -> String {
    let mut h = Sha256::new();
    for it in items {
        h.update(it.to_string().as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tiny_vocab_matches_llama_cpp_converter() {
    let exp = load("tiny_expected_vocab.json");
    let dir = data().join("tiny");
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let vocab_size = cfg["vocab_size"].as_u64().unwrap() as usize;
    let v = GgufVocab::from_dir(&dir, vocab_size).unwrap();

    assert_eq!(v.model, "gpt2");
    // llama.cpp would refuse this hash; we take the o200k split regex as gpt-4o (documented in pre.rs)
    assert_eq!(v.pre, exp["pre"].as_str().unwrap());
    assert_eq!(v.tokens, strings(&exp["tokens"]));
    let types: Vec<i32> = exp["token_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    assert_eq!(v.token_types, types);
    assert_eq!(v.merges, strings(&exp["merges"]));
    // padding, control and user-defined are all exercised by the fixture
    for ty in [
        TokenType::Normal,
        TokenType::Control,
        TokenType::UserDefined,
        TokenType::Unused,
    ] {
        assert!(
            v.token_types.contains(&(ty as i32)),
            "{ty:?} missing from the fixture"
        );
    }

    let specials: Vec<(SpecialToken, u32)> = exp["special_token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (kind(p[0].as_str().unwrap()), p[1].as_u64().unwrap() as u32))
        .collect();
    assert_eq!(
        v.special_order,
        specials.iter().map(|(k, _)| *k).collect::<Vec<_>>()
    );
    for (k, id) in &specials {
        assert_eq!(v.special_id(*k), Some(*id), "{k:?}");
    }
    let adds: Vec<(SpecialToken, bool)> = exp["add_special_token"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (kind(p[0].as_str().unwrap()), p[1].as_bool().unwrap()))
        .collect();
    assert_eq!(
        v.add_order,
        adds.iter().map(|(k, _)| *k).collect::<Vec<_>>()
    );
    for (k, b) in &adds {
        assert_eq!(v.add_flag(*k), Some(*b), "{k:?}");
    }
    assert_eq!(v.chat_template.as_deref(), exp["chat_template"].as_str());
    assert!(v.chat_template.is_some());
}

#[test]
fn tiny_chkhsh_matches_python_tokenizers() {
    let exp = load("tiny_expected_vocab.json");
    let tok = tokenizers::Tokenizer::from_file(data().join("tiny/tokenizer.json")).unwrap();
    let ids = tok.encode(CHKTXT, true).unwrap();
    assert_eq!(chkhsh(ids.get_ids()), exp["chkhsh"].as_str().unwrap());
}

#[test]
fn vocab_size_smaller_than_tokenizer_is_an_error() {
    let err = GgufVocab::from_dir(&data().join("tiny"), 100)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("vocab_size 100"),
        "{err}"
    );
}

#[test]
fn missing_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", GgufVocab::from_dir(dir.path(), 10).unwrap_err());
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn unknown_pre_tokenizer_is_refused_like_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let mut tj: Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("tiny/tokenizer.json")).unwrap())
            .unwrap();
    // GPT-2's split regex instead of o200k's: llama.cpp's hash table does not know this vocabulary
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = Value::String(
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+".into(),
    );
    std::fs::write(
        dir.path().join("tokenizer.json"),
        serde_json::to_string(&tj).unwrap(),
    )
    .unwrap();
    let err = GgufVocab::from_dir(dir.path(), 600)
        .unwrap_err()
        .to_string();
    assert!(err.contains("llama.cpp would not recognise"), "{err}");
}

#[test]
fn o200k_harmony_vocab_matches_llama_cpp_on_the_real_gpt_oss_tokenizer() {
    let exp = load("o200k_expected.json");
    let v = GgufVocab::from_o200k_harmony(201_088).unwrap();
    assert_eq!(v.tokens.len() as u64, exp["n_tokens"].as_u64().unwrap());
    assert_eq!(v.merges.len() as u64, exp["n_merges"].as_u64().unwrap());
    assert_eq!(v.pre, exp["pre"].as_str().unwrap());
    for s in exp["token_samples"].as_array().unwrap() {
        let id = s[0].as_u64().unwrap() as usize;
        assert_eq!(v.tokens[id], s[1].as_str().unwrap(), "token {id}");
        assert_eq!(
            v.token_types[id] as i64,
            s[2].as_i64().unwrap(),
            "type of {id}"
        );
    }
    for s in exp["merge_samples"].as_array().unwrap() {
        let i = s[0].as_u64().unwrap() as usize;
        assert_eq!(v.merges[i], s[1].as_str().unwrap(), "merge {i}");
    }
    assert_eq!(digest(&v.tokens), exp["tokens_sha256"].as_str().unwrap());
    assert_eq!(
        digest(&v.token_types),
        exp["token_types_sha256"].as_str().unwrap()
    );
    assert_eq!(digest(&v.merges), exp["merges_sha256"].as_str().unwrap());
    for p in exp["special_token_ids"].as_array().unwrap() {
        assert_eq!(
            v.special_id(kind(p[0].as_str().unwrap())),
            Some(p[1].as_u64().unwrap() as u32)
        );
    }
    for p in exp["add_special_token"].as_array().unwrap() {
        assert_eq!(
            v.add_flag(kind(p[0].as_str().unwrap())),
            Some(p[1].as_bool().unwrap())
        );
    }
    // the facts as the real gpt-oss GGUF has them
    assert_eq!(v.tokens.len(), 201_088);
    assert_eq!(v.token_id("<|endoftext|>"), Some(199_999));
    assert_eq!(v.token_id("<|return|>"), Some(200_002));
    assert_eq!(v.token_id("<|start|>"), Some(200_006));
    assert_eq!(v.token_id("<|call|>"), Some(200_012));
    assert_eq!(v.tokens[201_087], "[PAD201087]");
    assert_eq!(v.token_types[201_087], TokenType::Unused as i32);
    assert_eq!(v.bos_token_id, Some(199_998));
    assert_eq!(v.eos_token_id, Some(200_002));
    assert_eq!(v.padding_token_id, Some(199_999));
}

#[test]
fn o200k_chkhsh_is_llama_cpps_gpt_4o_hash() {
    // tiktoken-rs's ids for chktxt hash to the entry llama.cpp maps to "gpt-4o"; this also checks our CHKTXT
    let exp = load("o200k_expected.json");
    let TextTokenizer::O200kHarmony(bpe) = TextTokenizer::o200k_harmony().unwrap() else {
        unreachable!()
    };
    let ids = bpe.encode_ordinary(CHKTXT);
    assert_eq!(chkhsh(&ids), exp["chkhsh"].as_str().unwrap());
    assert_eq!(
        chkhsh(&ids),
        "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e"
    );
}

/// The full from_dir path on a gpt-oss tokenizer.json made by make_fixtures.py (27 MB, not checked in):
/// `OSSIFY_GPT_OSS_TOKENIZER_DIR=/tmp/gpt-oss-tok-... cargo test --test tokenizer_vocab -- --ignored`
#[test]
#[ignore]
fn gpt_oss_tokenizer_json_from_dir_matches_llama_cpp() {
    let dir = PathBuf::from(std::env::var("OSSIFY_GPT_OSS_TOKENIZER_DIR").unwrap());
    let exp = load("o200k_expected.json");
    let v = GgufVocab::from_dir(&dir, 201_088).unwrap();
    assert_eq!(v.pre, "gpt-4o");
    assert_eq!(digest(&v.tokens), exp["tokens_sha256"].as_str().unwrap());
    assert_eq!(
        digest(&v.token_types),
        exp["token_types_sha256"].as_str().unwrap()
    );
    assert_eq!(digest(&v.merges), exp["merges_sha256"].as_str().unwrap());
    let o = GgufVocab::from_o200k_harmony(201_088).unwrap();
    assert_eq!(v, o);
}

/// A vocabulary that is not o200k gets the name llama.cpp's table gives its hash: GPT-2's, rebuilt from
/// tiktoken-rs's r50k_base ranks as a tokenizer.json, must be "gpt-2" as llama.cpp named the original.
#[test]
fn other_vocabularies_get_llama_cpps_name() {
    let exp = load("gpt2_expected.json");
    let bpe = tiktoken_rs::r50k_base().unwrap();
    let ranks = ossify::tokenizer::tiktoken_ranks(&bpe, 50_256).unwrap();
    let (tokens, merges) = ossify::tokenizer::tiktoken_ranks_to_bpe(&ranks);
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), Value::from(i)))
        .collect();
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
        "use_regex": true});
    let tj = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        serde_json::to_string(&tj).unwrap(),
    )
    .unwrap();
    let tok = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(
        chkhsh(tok.encode(CHKTXT, true).unwrap().get_ids()),
        exp["chkhsh"].as_str().unwrap()
    );
    let v = GgufVocab::from_dir(dir.path(), 50_257).unwrap();
    assert_eq!(v.pre, exp["pre"].as_str().unwrap());
    assert_eq!(v.pre, "gpt-2");
    assert_eq!(v.tokens.len() as u64, exp["n_tokens"].as_u64().unwrap());
}
