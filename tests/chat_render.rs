//! Harmony rendering against OpenAI's openai-harmony 0.0.8 (text and o200k_harmony ids), and chat templates
//! against transformers' `apply_chat_template` (jinja2). Expected values in tests/data/chat/*.json, made by
//! tests/data/chat/make_chat_fixtures.py.

use std::path::{Path, PathBuf};

use ossify::chat::harmony::{render_for_completion, Message, ReasoningEffort, Role, SystemContent};
use ossify::chat::template;
use ossify::tokenizer::{GgufVocab, TextTokenizer};
use serde_json::Value;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/chat")
        .join(p)
}

fn load(p: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(p)).unwrap()).unwrap()
}

fn role(s: &str) -> Role {
    match s {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        "developer" => Role::Developer,
        "system" => Role::System,
        other => panic!("role {other}"),
    }
}

/// The fixture's conversation spec as ossify messages (the script builds the same with openai-harmony).
fn messages(case: &Value) -> Vec<Message> {
    let mut out = Vec::new();
    if let Some(s) = case["system"].as_object() {
        let mut sc = SystemContent::default();
        if let Some(r) = s.get("reasoning").and_then(Value::as_str) {
            sc.reasoning_effort = Some(match r {
                "low" => ReasoningEffort::Low,
                "medium" => ReasoningEffort::Medium,
                _ => ReasoningEffort::High,
            });
        }
        if let Some(d) = s.get("date") {
            sc.conversation_start_date = d.as_str().map(str::to_string);
        }
        if let Some(i) = s.get("identity") {
            sc.model_identity = i.as_str().map(str::to_string);
        }
        if let Some(c) = s.get("cutoff") {
            sc.knowledge_cutoff = c.as_str().map(str::to_string);
        }
        out.push(Message::system(sc));
    }
    if let Some(d) = case["developer"].as_str() {
        out.push(Message::developer(d));
    }
    for m in case["messages"].as_array().unwrap() {
        let mut msg = Message::text(
            role(m["role"].as_str().unwrap()),
            m["content"].as_str().unwrap(),
        );
        let field = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        msg.name = field("name");
        msg.channel = field("channel");
        msg.recipient = field("recipient");
        msg.content_type = field("content_type");
        out.push(msg);
    }
    out
}

#[test]
fn harmony_rendering_equals_openai_harmony() {
    let e = load("harmony_expected.json");
    let tiktoken = TextTokenizer::o200k_harmony().unwrap();
    let gguf =
        TextTokenizer::from_gguf_vocab(&GgufVocab::from_o200k_harmony(201_088).unwrap()).unwrap();
    let cases = e["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let r = render_for_completion(&messages(case), Role::Assistant).unwrap();
        assert_eq!(r.to_text(), case["text"].as_str().unwrap(), "{name}");
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(r.to_ids(&tiktoken).unwrap(), want, "{name}: o200k_harmony");
        // the GGUF vocabulary reads text pieces without llama.cpp's user-defined override, as harmony does
        assert_eq!(r.to_ids(&gguf).unwrap(), want, "{name}: GGUF vocabulary");
    }
}

#[test]
fn chat_templates_render_as_transformers() {
    let e = load("template_expected.json");
    let cases = e["cases"].as_array().unwrap();
    let templates = [
        (
            "gpt-oss",
            std::fs::read_to_string(data("gpt-oss.chat_template.jinja")).unwrap(),
        ),
        (
            "tiny",
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/tiny/chat_template.jinja"),
            )
            .unwrap(),
        ),
    ];
    let mut n = 0;
    for (tname, tpl) in &templates {
        for want in e["rendered"][tname].as_array().unwrap() {
            let name = want["name"].as_str().unwrap();
            let case = cases.iter().find(|c| c["name"] == name).unwrap();
            let mut extra = case["kwargs"].as_object().unwrap().clone();
            if let Some(t) = case.get("tools") {
                extra.insert("tools".into(), t.clone());
            }
            let got = template::render(
                tpl,
                &case["messages"],
                &extra,
                case["add_generation_prompt"].as_bool().unwrap(),
                (2025, 8, 5),
            )
            .unwrap();
            assert_eq!(got, want["text"].as_str().unwrap(), "{tname} {name}");
            n += 1;
        }
    }
    assert_eq!(n, 9);
}

#[test]
fn template_raise_exception_is_an_error() {
    let tpl = std::fs::read_to_string(data("gpt-oss.chat_template.jinja")).unwrap();
    let msgs =
        serde_json::json!([{"role": "assistant", "content": "<|channel|>final<|message|>x"}]);
    let err = template::render(&tpl, &msgs, &Default::default(), true, (2025, 8, 5)).unwrap_err();
    assert!(format!("{err:#}").contains("<|channel|> tags"), "{err:#}");
}

#[test]
fn templates_are_found_where_transformers_and_llama_cpp_keep_them() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let (t, from) = template::find_chat_template(&golden.join("tiny"))
        .unwrap()
        .unwrap();
    assert!(from.ends_with("chat_template.jinja"), "{from}");
    assert!(t.contains("<|start|>"));
    let (t2, _) = template::find_chat_template(&golden.join("tiny/original"))
        .unwrap()
        .unwrap();
    assert_eq!(t, t2);
}
