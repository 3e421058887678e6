#!/usr/bin/env python3
"""Expected harmony renderings for ossify's chat, made by independent implementations (never by ossify).

Writes, next to this script:
  harmony_expected.json   conversations (a small spec ossify's test reads too) and what OpenAI's openai-harmony
                          0.0.8 renders for them: `render_conversation_for_completion(conv, Role.ASSISTANT)` token
                          ids (o200k_harmony) and their text.
  template_expected.json  HF-style message lists and what transformers' `apply_chat_template(...,
                          tokenize=False, add_generation_prompt=...)` renders with jinja2 for two templates:
                          gpt-oss.chat_template.jinja (gpt-oss's own template, copied from llama.cpp's
                          models/templates/openai-gpt-oss-120b.jinja in the llama_cpp_python 0.3.36 sdist) and
                          golden/tiny/chat_template.jinja. `strftime_now` is pinned to 2025-08-05.

Run with a Python that has openai-harmony==0.0.8, transformers and tokenizers:
  python tests/data/chat/make_chat_fixtures.py
openai-harmony loads o200k_base from TIKTOKEN_ENCODINGS_BASE; this script points it at the copy tiktoken-rs ships.
"""
import datetime as _dt
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATE = "2025-08-05"

# Conversations as data: system (None = no system message), developer instructions, then messages.
HARMONY_CASES = [
    {"name": "default_system_user", "system": {},
     "messages": [{"role": "user", "content": "What is 2+2?"}]},
    {"name": "high_effort_date_developer", "system": {"reasoning": "high", "date": DATE},
     "developer": "Answer like a pirate.",
     "messages": [{"role": "user", "content": "Tell me a joke about compilers."}]},
    {"name": "multi_turn_drops_analysis", "system": {"date": DATE},
     "messages": [
         {"role": "user", "content": "Hi"},
         {"role": "assistant", "channel": "analysis", "content": "The user greets. Reply briefly."},
         {"role": "assistant", "channel": "final", "content": "Hello! How can I help?"},
         {"role": "user", "content": "What's the capital of France?"}]},
    {"name": "low_custom_identity_special_text",
     "system": {"reasoning": "low", "identity": "You are a terse assistant.", "cutoff": None},
     "messages": [{"role": "user", "content": "Write <|end|> and <|start|> literally, then 🦙 and 你好\n\tdone"}]},
    {"name": "tool_call_round_trip", "system": {},
     "developer": "Use tools when needed.",
     "messages": [
         {"role": "user", "content": "Weather in Oslo?"},
         {"role": "assistant", "channel": "analysis", "content": "Need the weather tool."},
         {"role": "assistant", "channel": "commentary", "recipient": "functions.get_weather",
          "content_type": "<|constrain|>json", "content": "{\"location\": \"Oslo\"}"},
         {"role": "tool", "name": "functions.get_weather", "channel": "commentary", "recipient": "assistant",
          "content": "{\"temp_c\": 4}"}]},
    {"name": "no_system", "system": None,
     "messages": [{"role": "user", "content": "Only a user message."}]},
]

TEMPLATE_CASES = [
    {"name": "user_only", "kwargs": {}, "add_generation_prompt": True,
     "messages": [{"role": "user", "content": "What is 2+2?"}]},
    {"name": "developer_high_effort", "kwargs": {"reasoning_effort": "high"}, "add_generation_prompt": True,
     "messages": [{"role": "system", "content": "Answer like a pirate."},
                  {"role": "user", "content": "Tell me a joke about compilers."}]},
    {"name": "multi_turn_with_thinking", "kwargs": {"model_identity": "You are a terse assistant."},
     "add_generation_prompt": True,
     "messages": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello! How can I help?", "thinking": "The user greets."},
                  {"role": "user", "content": "Capital of France? 🦙 你好"}]},
    {"name": "training_last_assistant", "kwargs": {"reasoning_effort": "low"}, "add_generation_prompt": False,
     "messages": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!", "thinking": "Greet back."}]},
    {"name": "tools_and_tool_call", "kwargs": {}, "add_generation_prompt": True,
     "tools": [{"type": "function", "function": {
         "name": "get_weather", "description": "Get the current weather",
         "parameters": {"type": "object", "properties": {
             "location": {"type": "string", "description": "The city"},
             "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["location"]}}}],
     "messages": [{"role": "user", "content": "Weather in Oslo?"},
                  {"role": "assistant", "content": "", "thinking": "Call the tool.",
                   "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                                     "arguments": {"location": "Oslo"}}}]},
                  {"role": "tool", "content": "{\"temp_c\": 4}"}]},
]


def harmony_messages(h, case):
    msgs = []
    s = case.get("system")
    if s is not None:
        sc = h.SystemContent.new()
        if "reasoning" in s:
            sc = sc.with_reasoning_effort({"low": h.ReasoningEffort.LOW, "medium": h.ReasoningEffort.MEDIUM,
                                           "high": h.ReasoningEffort.HIGH}[s["reasoning"]])
        if "date" in s:
            sc = sc.with_conversation_start_date(s["date"])
        if "identity" in s:
            sc = sc.with_model_identity(s["identity"])
        if "cutoff" in s:
            sc = sc.with_knowledge_cutoff(s["cutoff"])
        msgs.append(h.Message.from_role_and_content(h.Role.SYSTEM, sc))
    if case.get("developer") is not None:
        msgs.append(h.Message.from_role_and_content(
            h.Role.DEVELOPER, h.DeveloperContent.new().with_instructions(case["developer"])))
    for m in case["messages"]:
        role = h.Role(m["role"])
        if m.get("name"):
            msg = h.Message.from_author_and_content(h.Author.new(role, m["name"]), m["content"])
        else:
            msg = h.Message.from_role_and_content(role, m["content"])
        if m.get("channel"):
            msg = msg.with_channel(m["channel"])
        if m.get("recipient"):
            msg = msg.with_recipient(m["recipient"])
        if m.get("content_type"):
            msg = msg.with_content_type(m["content_type"])
        msgs.append(msg)
    return msgs


def main() -> None:
    import openai_harmony as h
    import transformers
    import transformers.utils.chat_template_utils as ctu
    from transformers import PreTrainedTokenizerFast

    enc_dir = Path(tempfile.mkdtemp(prefix="harmony-enc-"))
    asset = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12.*/assets/o200k_base.tiktoken"))
    shutil.copy(asset[0], enc_dir / "o200k_base.tiktoken")
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(enc_dir)
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)

    out = []
    for case in HARMONY_CASES:
        conv = h.Conversation.from_messages(harmony_messages(h, case))
        ids = enc.render_conversation_for_completion(conv, h.Role.ASSISTANT)
        out.append({**case, "ids": ids, "text": enc.decode_utf8(ids)})
    (HERE / "harmony_expected.json").write_text(json.dumps({
        "made_with": {"openai-harmony": "0.0.8"},
        "stop_tokens_for_assistant_actions": sorted(enc.stop_tokens_for_assistant_actions()),
        "cases": out}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    class FixedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2025, 8, 5, 12, 0, 0)

    ctu.datetime = FixedDatetime
    ctu._compile_jinja_template.cache_clear() if hasattr(ctu._compile_jinja_template, "cache_clear") else None
    tok = PreTrainedTokenizerFast(tokenizer_file=str(ROOT / "golden/tiny/tokenizer.json"))
    templates = {
        "gpt-oss": (HERE / "gpt-oss.chat_template.jinja").read_text(encoding="utf-8"),
        "tiny": (ROOT / "golden/tiny/chat_template.jinja").read_text(encoding="utf-8"),
    }
    rendered = {}
    for tname, template in templates.items():
        rendered[tname] = []
        for case in TEMPLATE_CASES:
            if tname == "tiny" and "tools" in case:
                continue  # the tiny template knows no tools
            text = tok.apply_chat_template(case["messages"], tools=case.get("tools"), chat_template=template,
                                           tokenize=False, add_generation_prompt=case["add_generation_prompt"],
                                           **case["kwargs"])
            rendered[tname].append({"name": case["name"], "text": text})
    (HERE / "template_expected.json").write_text(json.dumps({
        "made_with": {"transformers": transformers.__version__, "strftime_now": DATE},
        "cases": TEMPLATE_CASES, "rendered": rendered}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote harmony_expected.json and template_expected.json")


if __name__ == "__main__":
    main()
