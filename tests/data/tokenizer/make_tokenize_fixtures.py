#!/usr/bin/env python3
"""Expected token ids for `ossify tokenize`, made by independent tokenizers (never by ossify).

Writes tests/data/tokenizer/tokenize_expected.json: for every text (llama.cpp's own tokenizer test strings, the
`models/ggml-vocab-*.gguf.inp` files of its sources, then harmony-formatted strings with special tokens), the ids
that
  - the Python `tokenizers` library gives with golden/tiny/tokenizer.json            (tiny.tokenizers)
  - llama.cpp gives with the GGUF `ossify convert golden/tiny` writes               (tiny.llama_cpp)
  - openai-harmony's o200k_harmony encoding gives (tiktoken, the real gpt-oss vocabulary) (o200k.openai_harmony)
  - the Python `tokenizers` library gives with the real gpt-oss tokenizer.json, made from the o200k ranks as
    transformers' GptOssConverter makes it                                          (o200k.tokenizers)
  - llama.cpp gives with the GGUF `ossify convert` writes from that tokenizer.json  (o200k.llama_cpp)
all with special tokens parsed (tokenizers' default; llama.cpp `tokenize(..., special=True)`), and llama.cpp's
ids with special tokens read as text (`special=False`) under `*_plain`. ossify only writes the GGUF files here;
every id comes from the other libraries.

Run (two Python environments: one with tokenizers + openai-harmony + transformers, the other with
llama-cpp-python 0.3.36, e.g. the test venv):
  OSSIFY_BIN=target/release/ossify LLAMA_PYTHON=/work/venv/bin/python \\
    LLAMA_CPP_SRC=.../llama_cpp_python-0.3.36/vendor/llama.cpp \\
    python tests/data/tokenizer/make_tokenize_fixtures.py
LLAMA_CPP_SRC is the vendored llama.cpp tree of the llama-cpp-python 0.3.36 sdist
(`pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`). openai-harmony loads o200k_base from
TIKTOKEN_ENCODINGS_BASE; this script points it at the copy tiktoken-rs ships (same sha256, checked by harmony).
"""
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUT = HERE / "tokenize_expected.json"

# Strings in the harmony format, special tokens written as text, as a chat client sends them.
HARMONY_TEXTS = [
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: "
    "2024-06\nCurrent date: 2025-08-05\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. "
    "Channel must be included for every message.<|end|><|start|>user<|message|>What is 2+2?<|end|>"
    "<|start|>assistant",
    "<|start|>assistant<|channel|>analysis<|message|>User asks: 2+2. Answer 4.<|end|><|start|>assistant"
    "<|channel|>final<|message|>2 + 2 = 4.<|return|>",
    "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Oslo\"}<|call|>",
    "text<|start|>glued<|end|>  <|message|>\n<|channel|>x<|constrain|>json<|endoftext|>",
    "<|start|> spaces around <|end|> and <|reserved_200013|> then <|startoftext|>",
    "half <|start not special |> and <|unknown|> and <||>",
]


def inp_texts(llama_src: Path) -> list[str]:
    """Every test string of llama.cpp's models/ggml-vocab-*.gguf.inp, in file-name order, duplicates dropped."""
    texts, seen = [], set()
    for f in sorted(glob.glob(str(llama_src / "models" / "ggml-vocab-*.gguf.inp"))):
        parts = Path(f).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
        for t in parts[:-1]:  # each file ends with the separator
            if t not in seen:
                seen.add(t)
                texts.append(t)
    return texts


def llama_cpp_ids(gguf: Path, texts: list[str]) -> dict:
    """Run in the llama-cpp-python environment: ids with and without special-token parsing."""
    code = r"""
import json, sys
from llama_cpp import Llama
m = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
texts = json.load(sys.stdin)
out = {"special": [m.tokenize(t.encode(), add_bos=False, special=True) for t in texts],
       "plain": [m.tokenize(t.encode(), add_bos=False, special=False) for t in texts]}
json.dump(out, sys.stdout)
"""
    py = os.environ.get("LLAMA_PYTHON", sys.executable)
    r = subprocess.run([py, "-c", code, str(gguf)], input=json.dumps(texts), capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)


def llama_cpp_version() -> str:
    py = os.environ.get("LLAMA_PYTHON", sys.executable)
    return subprocess.run([py, "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def ossify_convert(src: Path, dst: Path) -> None:
    ossify = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))
    subprocess.run([ossify, "convert", str(src), "-o", str(dst)], check=True, capture_output=True)


def read_safetensors(path: Path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    return meta, {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
                  for k, v in header.items()}


def write_safetensors(path: Path, tensors: dict, meta) -> None:
    header, off, blobs = {}, 0, []
    if meta:
        header["__metadata__"] = meta
    for k, (dtype, shape, b) in tensors.items():
        header[k] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def real_vocab_checkpoint(work: Path) -> Path:
    """golden/tiny's weights with gpt-oss's real vocabulary: tokenizer.json from the o200k ranks exactly as
    transformers' GptOssConverter (convert_gpt_oss_weights_to_hf.py) builds it, 201088 embedding rows."""
    import transformers
    from transformers.convert_slow_tokenizer import TikTokenConverter
    asset = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12.*/assets/o200k_base.tiktoken"))
    if not asset:
        raise SystemExit("tiktoken-rs's o200k_base.tiktoken not found: run `cargo fetch` first")
    special = {
        "<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002, "<|constrain|>": 200003,
        "<|channel|>": 200005, "<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008,
        "<|call|>": 200012, "<|endofprompt|>": 200018,
    }
    used = set(special.values())
    for k in range(199999, 200018):
        if k not in used:
            special.setdefault(f"<|reserved_{k}|>", k)
    pat = "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ])
    conv = TikTokenConverter(
        vocab_file=asset[0], pattern=pat,
        extra_special_tokens=[t for t, _ in sorted(special.items(), key=lambda x: x[1])])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=conv.converted(), bos_token="<|startoftext|>", eos_token="<|return|>",
        pad_token="<|endoftext|>", model_input_names=["input_ids", "attention_mask"])
    ck = work / "real-vocab"
    fast.save_pretrained(str(ck))
    cfg = json.loads((ROOT / "golden/tiny/config.json").read_text())
    cfg.update(vocab_size=201088, eos_token_id=200002, pad_token_id=199999)
    (ck / "config.json").write_text(json.dumps(cfg, indent=2))
    tensors, meta = {}, None
    for shard in sorted((ROOT / "golden/tiny").glob("model-*.safetensors")):
        meta, t = read_safetensors(shard)
        tensors.update(t)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        dtype, shape, _ = tensors[name]
        tensors[name] = (dtype, [201088, shape[1]], bytes(201088 * shape[1] * 2))
    write_safetensors(ck / "model.safetensors", tensors, meta)
    return ck


def main() -> None:
    import openai_harmony
    import tokenizers
    from tokenizers import Tokenizer

    llama_src = Path(os.environ["LLAMA_CPP_SRC"])
    enc_dir = Path(tempfile.mkdtemp(prefix="harmony-enc-"))
    asset = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12.*/assets/o200k_base.tiktoken"))
    shutil.copy(asset[0], enc_dir / "o200k_base.tiktoken")
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(enc_dir)
    harmony = openai_harmony.load_harmony_encoding(openai_harmony.HarmonyEncodingName.HARMONY_GPT_OSS)

    texts = inp_texts(llama_src) + HARMONY_TEXTS
    work = Path(tempfile.mkdtemp(prefix="tokenize-fixtures-"))

    tiny_tok = Tokenizer.from_file(str(ROOT / "golden/tiny/tokenizer.json"))
    ossify_convert(ROOT / "golden/tiny", work / "tiny.gguf")
    tiny_llama = llama_cpp_ids(work / "tiny.gguf", texts)

    real = real_vocab_checkpoint(work)
    real_tok = Tokenizer.from_file(str(real / "tokenizer.json"))
    ossify_convert(real, work / "real.gguf")
    real_llama = llama_cpp_ids(work / "real.gguf", texts)
    o200k_harmony = [harmony.encode(t, allowed_special="all") for t in texts]
    o200k_tokenizers = [real_tok.encode(t, add_special_tokens=False).ids for t in texts]
    # tiktoken (what gpt-oss was trained with) and `tokenizers` must agree before they pin ossify; llama.cpp's own
    # regex engine splits a few scripts differently (its Unicode categories), recorded by index
    for t, a, b in zip(texts, o200k_harmony, o200k_tokenizers):
        assert a == b, (t, a, b)
    llama_differs = {
        name: [i for i, (a, c) in enumerate(zip(ref, llama)) if a != c]
        for name, ref, llama in [
            ("o200k", o200k_harmony, real_llama["special"]),
            ("tiny", [tiny_tok.encode(t, add_special_tokens=False).ids for t in texts], tiny_llama["special"]),
        ]
    }

    import transformers
    exp = {
        "made_with": {
            "tokenizers": tokenizers.__version__,
            "openai-harmony": "0.0.8",
            "transformers": transformers.__version__,
            "llama-cpp-python": llama_cpp_version(),
            "texts": "llama.cpp models/ggml-vocab-*.gguf.inp (llama_cpp_python 0.3.36 sdist), then harmony strings",
        },
        "texts": texts,
        "tiny": {
            "tokenizers": [tiny_tok.encode(t, add_special_tokens=False).ids for t in texts],
            "llama_cpp": tiny_llama["special"],
            "llama_cpp_plain": tiny_llama["plain"],
            "llama_cpp_differs": llama_differs["tiny"],
        },
        "o200k": {
            "openai_harmony": o200k_harmony,
            "tokenizers": o200k_tokenizers,
            "llama_cpp": real_llama["special"],
            "llama_cpp_plain": real_llama["plain"],
            "llama_cpp_differs": llama_differs["o200k"],
        },
    }
    OUT.write_text(json.dumps(exp, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(texts)} texts; llama.cpp differs from the reference on {llama_differs}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
