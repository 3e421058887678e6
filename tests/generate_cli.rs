//! `ossify generate` and `ossify chat`: greedy tokens equal transformers' `generate` (float32, exact mode) on
//! the golden checkpoints and their GGUF conversion; expected ids in tests/data/chat/generate_expected.json, made
//! by tests/data/chat/make_generate_fixtures.py. (q8 mode against llama.cpp: tests/python/test_generate_llamacpp.py.)

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{golden, json, ossify, s};
use serde_json::Value;

fn expected() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat/generate_expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn generate_json(model: &Path, prompt: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "generate",
        s(model),
        "--raw",
        "-p",
        prompt,
        "-n",
        "24",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = ossify(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json(&o)
}

#[test]
fn greedy_equals_transformers_generate() {
    let e = expected();
    let cases = e["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let model = golden(c["model"].as_str().unwrap());
        let prompt = c["prompt"].as_str().unwrap();
        let v = generate_json(&model, prompt, &[]);
        assert_eq!(ids(&v["prompt_ids"]), ids(&c["prompt_ids"]), "{model:?}");
        assert_eq!(
            ids(&v["tokens"]),
            ids(&c["generated"]),
            "{model:?} {prompt:?}"
        );
        assert_eq!(v["mode"], "f32-reference");
        assert!(c["min_margin"].as_f64().unwrap() > 1e-3);
    }
}

#[test]
fn greedy_on_the_converted_gguf_equals_transformers() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    let o = ossify(&["convert", s(&golden("tiny")), "-o", s(&gguf)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for c in e["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["model"] == "tiny")
    {
        let v = generate_json(&gguf, c["prompt"].as_str().unwrap(), &[]);
        assert_eq!(ids(&v["prompt_ids"]), ids(&c["prompt_ids"]));
        assert_eq!(ids(&v["tokens"]), ids(&c["generated"]));
    }
}

/// Without --raw the prompt is harmony's rendering (tests/chat_render.rs pins that to openai-harmony).
#[test]
fn prompt_is_the_harmony_rendering() {
    let h: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat/harmony_expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let case = h["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "default_system_user")
        .unwrap();
    let o = ossify(&[
        "generate",
        s(&golden("tiny")),
        "-p",
        "What is 2+2?",
        "-n",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let tok = ossify::tokenizer::TextTokenizer::for_checkpoint(&golden("tiny")).unwrap();
    let want = tok.encode(case["text"].as_str().unwrap(), true).unwrap();
    assert_eq!(ids(&v["prompt_ids"]), want);
}

fn chat(args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// chat reads one message per line from a pipe; sampling is deterministic given the seed.
#[test]
fn chat_from_a_pipe_with_a_seed_is_reproducible() {
    let tiny = golden("tiny");
    let args = [
        "chat",
        s(&tiny),
        "-n",
        "8",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
        "--seed",
        "7",
        "--json",
    ];
    let input = "Hello\n\nWhat is 2+2?\n/exit\nnot read\n";
    let a = chat(&args, input);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = chat(&args, input);
    let turns: Vec<Value> = String::from_utf8(a.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        turns.len(),
        2,
        "an empty line is skipped and /exit ends the chat"
    );
    assert_eq!(turns[0]["seed"], 7);
    let strip = |o: &[u8]| -> Vec<Value> {
        String::from_utf8(o.to_vec())
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["tokens"].clone()
            })
            .collect()
    };
    assert_eq!(strip(&a.stdout), strip(&b.stdout));
    // the second prompt holds the first exchange
    assert!(turns[1]["prompt_tokens"].as_u64() > turns[0]["prompt_tokens"].as_u64());
    let greedy = chat(
        &[
            "chat",
            s(&golden("tiny")),
            "-n",
            "8",
            "--seed",
            "7",
            "--json",
        ],
        "Hello\n",
    );
    let g: Value = serde_json::from_slice(&greedy.stdout).unwrap();
    assert!(g.get("seed").is_none(), "greedy reports no seed");
}

#[test]
fn model_template_needs_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    assert!(ossify(&["convert", s(&golden("tiny")), "-o", s(&gguf)])
        .status
        .success());
    // the tiny GGUF carries the tiny chat template: --template model renders with it
    let o = ossify(&[
        "generate",
        s(&gguf),
        "-p",
        "Hi",
        "-n",
        "1",
        "--template",
        "model",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert!(v["template"]
        .as_str()
        .unwrap()
        .ends_with("tokenizer.chat_template"));
    let tok = ossify::tokenizer::TextTokenizer::for_checkpoint(&gguf).unwrap();
    let want = tok
        .encode("<|start|>user<|message|>Hi<|end|><|start|>assistant", true)
        .unwrap();
    assert_eq!(ids(&v["prompt_ids"]), want);
}

#[test]
fn bad_options_are_one_line_errors() {
    for args in [
        vec!["generate", "golden/none", "-p", "x"],
        vec!["generate", "golden/tiny", "-p", "x", "--top-p", "1.5"],
        vec!["generate", "golden/tiny", "-p", "x", "--date", "yesterday"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
}
