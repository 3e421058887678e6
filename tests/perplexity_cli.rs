//! `ossify perplexity` end to end on golden/tiny.

mod common;

use common::{golden, ossify, ossify_exit, s};
use std::path::{Path, PathBuf};

/// golden/reference/tokens.json's first sequence (32 ids), alone in a file.
fn seq0(dir: &Path) -> PathBuf {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("reference/tokens.json")).unwrap())
            .unwrap();
    let p = dir.join("seq0.json");
    std::fs::write(&p, v["sequences"][0].to_string()).unwrap();
    p
}

/// One chunk of 32 = sequence 0; rows 16..30 are scored. Expected: numpy over transformers' float32 logits
/// golden/reference/tiny.seq0.logits.npy (the same rows against the next ids, nll = logsumexp − logit,
/// PPL = exp(mean), ± PPL·sqrt(var/(n−1)), as llama-perplexity):
/// 15 tokens, PPL 4070.053682750785 ± 1845.296313306414.
#[test]
fn matches_transformers_logits_on_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let toks = seq0(dir.path());
    let dump = dir.path().join("dump.npy");
    let o = ossify_exit(
        &[
            "perplexity",
            s(&golden("tiny")),
            "--tokens",
            s(&toks),
            "--ctx",
            "32",
            "--dump-logits",
            s(&dump),
            "--json",
        ],
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n_tokens"], 15);
    assert_eq!(v["n_chunks"], 1);
    let ppl = v["ppl"].as_f64().unwrap();
    let unc = v["ppl_uncertainty"].as_f64().unwrap();
    assert!((ppl / 4070.053682750785 - 1.0).abs() < 1e-5, "{ppl}");
    assert!((unc / 1845.296313306414 - 1.0).abs() < 1e-5, "{unc}");

    // The dump is [32, 544] float32 and, fed back as reference logits, agrees with transformers' own file
    // to the forward pass's tolerance.
    let a = ossify::npy::read_f32(&dump).unwrap();
    assert_eq!(a.shape, vec![32, 544]);
    let b = ossify::npy::read_f32(&golden("reference/tiny.seq0.logits.npy")).unwrap();
    let max = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-3, "max |Δlogit| vs transformers {max}");
    let o = ossify(&[
        "verify-parity",
        "--reference-logits",
        s(&dump),
        "--tokens",
        s(&dump.with_extension("tokens.json")),
        s(&golden("tiny/original")),
        "--max-kld",
        "0",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn text_shorter_than_one_chunk_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let toks = seq0(dir.path());
    let o = ossify(&[
        "perplexity",
        s(&golden("tiny")),
        "--tokens",
        s(&toks),
        "--ctx",
        "64",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("32 tokens") && e.contains("at least 64"), "{e}");
}

/// `--text` goes through the checkpoint's tokenizer: golden/tiny's tokenizer.json, or the vocabulary inside
/// llama.cpp's GGUF of the same model. The ids are pinned by the Python `tokenizers` library
/// (`Tokenizer.from_file("golden/tiny/tokenizer.json").encode(TEXT, add_special_tokens=False).ids`), and the
/// three ways in (text via HF, text via GGUF, ids) give the same perplexity.
#[test]
fn text_is_tokenized_with_the_checkpoint_tokenizer() {
    const TEXT: &str =
        "The quick brown fox jumps over the lazy dog. A tiny model reads a tiny text, and \
                        ossify checks what it computes.";
    const IDS: [u32; 52] = [
        288, 385, 362, 277, 81, 305, 77, 394, 87, 220, 476, 79, 82, 220, 370, 263, 283, 457, 88,
        402, 13, 379, 256, 262, 88, 324, 384, 459, 259, 256, 262, 88, 256, 327, 83, 11, 270, 220,
        366, 82, 72, 69, 88, 341, 82, 339, 272, 297, 409, 83, 273, 13,
    ];
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.txt");
    std::fs::write(&text, TEXT).unwrap();
    let ids = dir.path().join("ids.json");
    std::fs::write(&ids, serde_json::to_string(&IDS[..]).unwrap()).unwrap();
    let ppl = |model: &str, how: &str, file: &Path| {
        let o = ossify_exit(
            &[
                "perplexity",
                s(&golden(model)),
                how,
                s(file),
                "--ctx",
                "16",
                "--json",
            ],
            0,
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["n_text_tokens"], 52, "{v}");
        assert_eq!(v["n_chunks"], 3);
        v["ppl"].as_f64().unwrap()
    };
    let by_ids = ppl("tiny", "--tokens", &ids);
    assert_eq!(ppl("tiny", "--text", &text), by_ids);
    assert_eq!(ppl("llamacpp/tiny.f32.gguf", "--text", &text), by_ids);
}
