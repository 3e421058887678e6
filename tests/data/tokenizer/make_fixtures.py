#!/usr/bin/env python3
"""Make the tokenizer test fixtures from independent implementations (never from ossify).

Run:  /opt/venv/bin/python tests/data/tokenizer/make_fixtures.py
Versions used are written into every expected file ("made_with").

What it writes (next to this script):
  tiny/                 a small byte-level BPE trained here with the Python `tokenizers` library, split by the
                        o200k regex like gpt-oss, with gpt-oss-style added tokens, tokenizer_config.json,
                        chat_template.jinja and a config.json whose vocab_size is larger than the vocabulary (so the
                        GGUF vocabulary gets llama.cpp's "[PAD{i}]" padding).
  tiny_expected_vocab.json
                        what llama.cpp's converter (conversion/base.py `get_vocab_base` + gguf-py `SpecialVocab`)
                        makes of tiny/: tokens, token types, merges, special ids, add_*_token, chat template, and the
                        chktxt hash (which llama.cpp does not know, so it would refuse the pre-tokenizer; we map the
                        o200k split regex to "gpt-4o" ourselves, see src/tokenizer).
  tiny_expected_ids.json
                        Python `tokenizers` encodings of sample texts with tiny/tokenizer.json.
  gpt2_expected.json    the pre-tokenizer name llama.cpp's converter gives GPT-2's vocabulary (a non-o200k one).
  o200k_expected.json   the real gpt-oss vocabulary: o200k_base ranks (the file tiktoken-rs ships, checked against
                        tiktoken's published sha256), turned into a tokenizer.json exactly as transformers'
                        convert_gpt_oss_weights_to_hf.py (GptOssConverter) does, then run through llama.cpp's
                        converter with the real get_vocab_base_pre (chktxt hash -> "gpt-4o"). Stored as counts,
                        sha256 digests and samples (the full vocabulary is 27 MB), plus tiktoken's o200k_harmony
                        ids for a multilingual sample and the Python `tokenizers` ids of the same sample.
"""
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

LLAMA = "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp"
sys.path.insert(0, f"{LLAMA}/gguf-py")
sys.path.insert(0, LLAMA)

import tiktoken  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

import gguf  # noqa: E402  (llama.cpp's own gguf-py, as its converter imports it)
from conversion.base import TextModel  # noqa: E402

logging.basicConfig(level=logging.WARNING)
HERE = Path(__file__).resolve().parent
MADE_WITH = {
    "tokenizers": tokenizers.__version__,
    "tiktoken": tiktoken.__version__,
    "transformers": transformers.__version__,
    "llama.cpp": "0c1e570 (llama_cpp_python 0.3.36 vendor tree)",
}

# tiktoken's o200k split regex (tiktoken_ext/openai_public.py, o200k_base)
O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

SAMPLES = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
    "  leading spaces,\ttabs\nand\r\nnewlines\n\n\n   trailing   ",
    "Numbers: 3 33 333 3333 12345678 3.14159 1,000,000",
    "Français: l'été où les élèves ont mangé des crêpes.",
    "Deutsch: Grüße aus München, Straße, Übermäßig.",
    "Русский: Съешь же ещё этих мягких французских булок.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "中文：我想在apple工作1314151天～ 今天天气很好。",
    "日本語：いろはにほへと ちりぬるを カタカナ 漢字",
    "한국어: 다람쥐 헌 쳇바퀴에 타고파",
    "العربية: صِف خَلقَ خَودِ كَمِثلِ الشَمسِ",
    "हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों",
    "ภาษาไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า",
    "Emoji: 🚀 😶\u200d🌫️ ✅ 🦙🦙 👩‍👩‍👧‍👦",
    "code: fn main() { println!(\"{}\", x?); } // <tag/> a/b/c\n",
    "<|start|>user<|message|>hi<|end|>",
]


def load_chktxt() -> str:
    src = Path(f"{LLAMA}/conversion/base.py").read_text(encoding="utf-8")
    for line in src.splitlines():
        if line.strip().startswith("chktxt = "):
            return eval(line.strip()[len("chktxt = "):])  # a Python string literal, as in base.py
    raise SystemExit("chktxt not found in base.py")


class FakeModel:
    """Just enough of llama.cpp's TextModel for get_vocab_base()."""

    get_vocab_base = TextModel.get_vocab_base
    does_token_look_special = TextModel.does_token_look_special

    def __init__(self, dir_model: Path, pre_override: str | None):
        self.dir_model = dir_model
        self.hparams = json.loads((dir_model / "config.json").read_text())
        self._pre_override = pre_override

    def get_vocab_base_pre(self, tokenizer):
        if self._pre_override is not None:
            return self._pre_override
        return TextModel.get_vocab_base_pre(self, tokenizer)


def llama_cpp_vocab(dir_model: Path, pre_override: str | None = None) -> dict:
    tokens, toktypes, tokpre = FakeModel(dir_model, pre_override).get_vocab_base()
    sv = gguf.SpecialVocab(dir_model, load_merges=True)
    return {
        "model": "gpt2",
        "pre": tokpre,
        "tokens": tokens,
        "token_types": [int(t) for t in toktypes],
        "merges": sv.merges,
        # dict order is the order llama.cpp writes the keys in
        "special_token_ids": list(sv.special_token_ids.items()),
        "add_special_token": list(sv.add_special_token.items()),
        "chat_template": sv.chat_template,
    }


def chk_hash(tok: Tokenizer, chktxt: str) -> str:
    ids = tok.encode(chktxt).ids
    return hashlib.sha256(str(ids).encode()).hexdigest()


def digest(items) -> str:
    """sha256 over each item's UTF-8 bytes followed by a NUL; the Rust test computes the same."""
    h = hashlib.sha256()
    for it in items:
        h.update(str(it).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def make_tiny(chktxt: str) -> None:
    out = HERE / "tiny"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    corpus = SAMPLES[:-1] + [chktxt] + [
        "The tokenizer splits text with the o200k regex, then merges byte pairs.",
        "gpt-oss speaks the harmony format: channels, messages, returns and calls.",
    ] * 3
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(O200K_PAT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    n = tok.get_vocab_size()
    # gpt-oss-like added tokens: all special, plus one non-special added token (-> USER_DEFINED in llama.cpp)
    specials = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|start|>", "<|end|>", "<|message|>",
                "<|channel|>", "<|call|>"]
    tok.add_special_tokens(specials)
    tok.add_tokens([tokenizers.AddedToken("ossify", normalized=False, special=False)])
    tok.save(str(out / "tokenizer.json"))
    vocab_len = tok.get_vocab_size(with_added_tokens=True)
    (out / "tokenizer_config.json").write_text(json.dumps({
        # no bos_token here: config.json's bos_token_id supplies it, after eos and pad (SpecialVocab's order)
        "eos_token": "<|return|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }, indent=2))
    (out / "chat_template.jinja").write_text(
        "{%- for m in messages -%}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{%- endfor -%}"
        "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"
    )
    (out / "config.json").write_text(json.dumps({
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "vocab_size": vocab_len + 7,  # padding, like gpt-oss's 201088 over 200019
        "bos_token_id": n,  # <|startoftext|>
        "eos_token_id": n + 1,  # <|endoftext|>: ignored, tokenizer_config's <|return|> came first
    }, indent=2))
    exp = llama_cpp_vocab(out, pre_override="gpt-4o")
    exp["chkhsh"] = chk_hash(tok, chktxt)
    exp["base_vocab_size"] = n
    exp["made_with"] = MADE_WITH
    (HERE / "tiny_expected_vocab.json").write_text(json.dumps(exp, indent=1, ensure_ascii=False))
    ids = [{"text": t, "ids": tok.encode(t).ids} for t in SAMPLES + [chktxt]]
    (HERE / "tiny_expected_ids.json").write_text(json.dumps(
        {"made_with": MADE_WITH, "samples": ids}, indent=1, ensure_ascii=False))


def o200k_harmony_encoding(asset: Path) -> tiktoken.Encoding:
    """tiktoken's own o200k_harmony, loaded offline: the asset is put where tiktoken caches the download, and
    tiktoken checks it against the published sha256."""
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    shutil.copy(asset, cache / hashlib.sha1(url.encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return tiktoken.get_encoding("o200k_harmony")


def make_o200k(chktxt: str) -> None:
    assets = glob.glob(os.path.expanduser(
        "~/.cargo/registry/src/*/tiktoken-rs-0.12.*/assets/o200k_base.tiktoken"))
    if not assets:
        raise SystemExit("tiktoken-rs's o200k_base.tiktoken not found: run `cargo fetch` first")
    enc = o200k_harmony_encoding(Path(assets[0]))

    # transformers' convert_gpt_oss_weights_to_hf.py, GptOssConverter: the special tokens of the real gpt-oss
    # tokenizer.json (ids 199998..=200018, with o200k_base's <|endofprompt|> at 200018)
    special_tokens_map = {
        "<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002, "<|constrain|>": 200003,
        "<|channel|>": 200005, "<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008,
        "<|call|>": 200012, "<|endofprompt|>": 200018,
    }
    used = set(special_tokens_map.values())
    for k in range(199999, 200018):
        if k not in used:
            special_tokens_map.setdefault(f"<|reserved_{k}|>", k)
    extra = [t for t, _ in sorted(special_tokens_map.items(), key=lambda x: x[1])]
    conv = transformers.convert_slow_tokenizer.TikTokenConverter(
        vocab_file=assets[0], pattern=enc._pat_str, extra_special_tokens=extra)
    tok = conv.converted()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|return|>", pad_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"])
    d = Path(tempfile.mkdtemp(prefix="gpt-oss-tok-"))
    fast.save_pretrained(str(d))
    (d / "config.json").write_text(json.dumps({
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "vocab_size": 201088,
        "eos_token_id": 200002, "pad_token_id": 199999}))
    v = llama_cpp_vocab(d)  # real get_vocab_base_pre: chktxt hash lookup
    tj = Tokenizer.from_file(str(d / "tokenizer.json"))
    pick = [0, 1, 255, 256, 1000, 12345, 100000, 199997, 199998, 199999, 200000, 200002, 200012, 200017,
            200018, 200019, 201087]
    mpick = [0, 1, 2, 1000, 100000, len(v["merges"]) - 1]
    exp = {
        "made_with": MADE_WITH,
        "pre": v["pre"],
        "chkhsh": chk_hash(tj, chktxt),
        "n_tokens": len(v["tokens"]),
        "n_merges": len(v["merges"]),
        "tokens_sha256": digest(v["tokens"]),
        "token_types_sha256": digest(v["token_types"]),
        "merges_sha256": digest(v["merges"]),
        "token_samples": [[i, v["tokens"][i], v["token_types"][i]] for i in pick],
        "merge_samples": [[i, v["merges"][i]] for i in mpick],
        "token_type_counts": {str(t): v["token_types"].count(t) for t in sorted(set(v["token_types"]))},
        "special_token_ids": v["special_token_ids"],
        "add_special_token": v["add_special_token"],
        "pre_tokenizer_regex": enc._pat_str,
        "tiktoken_o200k_harmony_ids": [
            {"text": t, "ids": enc.encode(t, allowed_special="all")} for t in SAMPLES + [chktxt]],
        "tokenizers_ids": [{"text": t, "ids": tj.encode(t).ids} for t in SAMPLES + [chktxt]],
    }
    (HERE / "o200k_expected.json").write_text(json.dumps(exp, indent=1, ensure_ascii=False))
    print("gpt-oss tokenizer dir (for the ignored from_dir test):", d)


def make_gpt2(chktxt: str) -> None:
    """A vocabulary that is not o200k: GPT-2's, from the encoder.json / vocab.bpe that tiktoken-rs ships, as a
    Hugging Face tokenizer; llama.cpp's real get_vocab_base_pre names it from its hash."""
    assets = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12.*/assets"))
    if not assets:
        raise SystemExit("tiktoken-rs's assets not found: run `cargo fetch` first")
    a = Path(assets[0])
    d = Path(tempfile.mkdtemp(prefix="gpt2-tok-"))
    merges = [tuple(line.split(" ")) for line in (a / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
              if line]
    vocab = json.loads((a / "encoder.json").read_text(encoding="utf-8"))
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens(["<|endoftext|>"])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    fast.save_pretrained(str(d))
    (d / "config.json").write_text(json.dumps({"vocab_size": len(vocab)}))
    tokens, toktypes, tokpre = FakeModel(d, None).get_vocab_base()
    exp = {"made_with": MADE_WITH, "pre": tokpre, "chkhsh": chk_hash(tok, chktxt), "n_tokens": len(tokens)}
    (HERE / "gpt2_expected.json").write_text(json.dumps(exp, indent=1))


def main() -> None:
    chktxt = load_chktxt()
    make_tiny(chktxt)
    make_o200k(chktxt)
    make_gpt2(chktxt)


if __name__ == "__main__":
    main()
