//! Our GGUF reader and writer against independent implementations: files made by gguf-py's GGUFWriter
//! (tests/data, made by tests/data/make_fixtures.py), gguf-py's constants, and GGUFs made by llama.cpp's converter
//! (golden/llamacpp, when present). The other direction — gguf-py reading what we write — is
//! tests/check_gguf_py.py, which runs `writes_files_for_gguf_py_check` below with OSSIFY_GGUF_PY_OUT set.

mod gguf_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gguf_common::*;
use ossify_formats::gguf::constants::{self as c, GgufValueType, LlamaFileType, TokenType};
use ossify_formats::gguf::{GgufFile, GgufWriter, MetaArray, MetaValue};
use ossify_formats::DType;
use serde_json::{json, Value};

const FIXTURES: &[&str] = &["gguf_py_mixed", "gguf_py_align64", "gguf_py_no_tensors"];

#[test]
fn reads_gguf_py_fixtures_with_the_values_written() {
    for name in FIXTURES {
        let dir = data_dir();
        let side = parse_sidecar(&read_json(&dir.join(format!("{name}.json"))));
        let f = GgufFile::open(&dir.join(format!("{name}.gguf"))).unwrap();
        assert_eq!(f.version, 3, "{name}");
        assert_eq!(f.alignment, side.alignment, "{name}");
        let keys: Vec<&str> = f.metadata.iter().map(|(k, _)| k.as_str()).collect();
        let want_keys: Vec<&str> = side.kv.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, want_keys, "{name}: keys in file order");
        for ((k, got), (_, want)) in f.metadata.iter().zip(&side.kv) {
            assert_eq!(got, want, "{name}: key {k}");
            assert_eq!(f.get(k), Some(want), "{name}: get({k})");
        }
        assert_eq!(f.tensors.len(), side.tensors.len(), "{name}");
        for (ti, want) in f.tensors.iter().zip(&side.tensors) {
            assert_eq!(ti.name, want.name, "{name}");
            assert_eq!(ti.dtype, want.dtype, "{name}: {}", ti.name);
            assert_eq!(ti.shape, want.shape, "{name}: {}", ti.name);
            assert_eq!(ti.size, want.bytes.len(), "{name}: {}", ti.name);
            assert_eq!(ti.offset % f.alignment as u64, 0, "{name}: {}", ti.name);
            let view = f.tensor(&ti.name).unwrap();
            assert_eq!(view.bytes, &want.bytes[..], "{name}: {}", ti.name);
            view.check().unwrap();
        }
        if !f.tensors.is_empty() {
            assert_eq!(f.data_offset % f.alignment as u64, 0, "{name}");
        }
        assert_eq!(f.tensor_views().count(), side.tensors.len());
    }
}

#[test]
fn mixed_fixture_spot_values() {
    // A few values restated by hand from make_fixtures.py, so the sidecar path itself is not the only oracle.
    let f = GgufFile::open(&data_dir().join("gguf_py_mixed.gguf")).unwrap();
    let arch = c::ARCH_GPT_OSS;
    assert_eq!(
        f.get(c::GENERAL_ARCHITECTURE).and_then(|v| v.as_str()),
        Some(arch)
    );
    assert_eq!(
        f.get(&c::key(c::EXPERT_COUNT, arch)),
        Some(&MetaValue::U32(4))
    );
    assert_eq!(
        f.get(&c::key(c::ATTENTION_SLIDING_WINDOW, arch)),
        Some(&MetaValue::U32(128))
    );
    assert_eq!(
        f.get(&c::key(c::ROPE_SCALING_TYPE, arch))
            .and_then(|v| v.as_str()),
        Some(c::ROPE_SCALING_TYPE_YARN)
    );
    assert_eq!(
        f.get(c::GENERAL_FILE_TYPE).and_then(|v| v.as_u32()),
        Some(LlamaFileType::MostlyMxfp4Moe.id())
    );
    assert_eq!(
        f.get(c::TOKENIZER_GGML_TOKEN_TYPE)
            .and_then(|v| v.as_i32_array()),
        Some(&[1, 1, 3][..])
    );
    assert_eq!(f.get("test.f32"), Some(&MetaValue::F32(0.1)));
    assert_eq!(f.get("test.u64"), Some(&MetaValue::U64((1 << 63) + 5)));
    assert_eq!(
        f.get("test.nested"),
        Some(&MetaValue::Array(MetaArray::Array(vec![
            MetaArray::I32(vec![1, 2]),
            MetaArray::I32(vec![3]),
            MetaArray::I32(vec![4, 5, 6]),
        ])))
    );
    let experts = f.tensor("blk.0.ffn_gate_exps.weight").unwrap();
    assert_eq!(experts.dtype, DType::Mxfp4);
    assert_eq!(experts.shape, vec![3, 2, 64]);
    assert_eq!(experts.bytes.len(), 3 * 2 * 2 * 17);
    let f32_odd = f.tensor("f32_odd").unwrap();
    let vals: Vec<f32> = f32_odd
        .bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(
        vals,
        (0..15).map(|i| (i as f32 - 7.0) / 4.0).collect::<Vec<_>>()
    );
}

#[test]
fn writes_gguf_py_fixtures_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let dir = data_dir();
        let side = parse_sidecar(&read_json(&dir.join(format!("{name}.json"))));
        let out = tmp.path().join(format!("{name}.gguf"));
        write_with_ours(&side, &out);
        let ours = std::fs::read(&out).unwrap();
        let theirs = std::fs::read(dir.join(format!("{name}.gguf"))).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: length");
        if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!("{name}: first difference from gguf-py at byte {i}");
        }
    }
}

#[test]
fn constants_match_gguf_py() {
    let k = read_json(&data_dir().join("gguf_py_constants.json"));
    let keys = &k["Keys"];
    // (our constant, gguf-py's name for it)
    let table: &[(&str, &str)] = &[
        (c::GENERAL_TYPE, "General.TYPE"),
        (c::GENERAL_ARCHITECTURE, "General.ARCHITECTURE"),
        (
            c::GENERAL_QUANTIZATION_VERSION,
            "General.QUANTIZATION_VERSION",
        ),
        (c::GENERAL_ALIGNMENT, "General.ALIGNMENT"),
        (c::GENERAL_FILE_TYPE, "General.FILE_TYPE"),
        (c::GENERAL_NAME, "General.NAME"),
        (c::GENERAL_AUTHOR, "General.AUTHOR"),
        (c::GENERAL_VERSION, "General.VERSION"),
        (c::GENERAL_ORGANIZATION, "General.ORGANIZATION"),
        (c::GENERAL_FINETUNE, "General.FINETUNE"),
        (c::GENERAL_BASENAME, "General.BASENAME"),
        (c::GENERAL_DESCRIPTION, "General.DESCRIPTION"),
        (c::GENERAL_QUANTIZED_BY, "General.QUANTIZED_BY"),
        (c::GENERAL_SIZE_LABEL, "General.SIZE_LABEL"),
        (c::GENERAL_LICENSE, "General.LICENSE"),
        (c::GENERAL_LICENSE_NAME, "General.LICENSE_NAME"),
        (c::GENERAL_LICENSE_LINK, "General.LICENSE_LINK"),
        (c::GENERAL_URL, "General.URL"),
        (c::GENERAL_DOI, "General.DOI"),
        (c::GENERAL_UUID, "General.UUID"),
        (c::GENERAL_REPO_URL, "General.REPO_URL"),
        (c::GENERAL_SOURCE_URL, "General.SOURCE_URL"),
        (c::GENERAL_SOURCE_DOI, "General.SOURCE_DOI"),
        (c::GENERAL_SOURCE_UUID, "General.SOURCE_UUID"),
        (c::GENERAL_SOURCE_REPO_URL, "General.SOURCE_REPO_URL"),
        (c::GENERAL_BASE_MODEL_COUNT, "General.BASE_MODEL_COUNT"),
        (c::GENERAL_BASE_MODEL_NAME, "General.BASE_MODEL_NAME"),
        (c::GENERAL_BASE_MODEL_AUTHOR, "General.BASE_MODEL_AUTHOR"),
        (c::GENERAL_BASE_MODEL_VERSION, "General.BASE_MODEL_VERSION"),
        (
            c::GENERAL_BASE_MODEL_ORGANIZATION,
            "General.BASE_MODEL_ORGANIZATION",
        ),
        (
            c::GENERAL_BASE_MODEL_DESCRIPTION,
            "General.BASE_MODEL_DESCRIPTION",
        ),
        (c::GENERAL_BASE_MODEL_URL, "General.BASE_MODEL_URL"),
        (c::GENERAL_BASE_MODEL_DOI, "General.BASE_MODEL_DOI"),
        (c::GENERAL_BASE_MODEL_UUID, "General.BASE_MODEL_UUID"),
        (
            c::GENERAL_BASE_MODEL_REPO_URL,
            "General.BASE_MODEL_REPO_URL",
        ),
        (c::GENERAL_DATASET_COUNT, "General.DATASET_COUNT"),
        (c::GENERAL_DATASET_NAME, "General.DATASET_NAME"),
        (c::GENERAL_TAGS, "General.TAGS"),
        (c::GENERAL_LANGUAGES, "General.LANGUAGES"),
        (c::LLM_VOCAB_SIZE, "LLM.VOCAB_SIZE"),
        (c::LLM_CONTEXT_LENGTH, "LLM.CONTEXT_LENGTH"),
        (c::LLM_EMBEDDING_LENGTH, "LLM.EMBEDDING_LENGTH"),
        (c::LLM_BLOCK_COUNT, "LLM.BLOCK_COUNT"),
        (c::LLM_FEED_FORWARD_LENGTH, "LLM.FEED_FORWARD_LENGTH"),
        (c::LLM_USE_PARALLEL_RESIDUAL, "LLM.USE_PARALLEL_RESIDUAL"),
        (c::LLM_LOGIT_SCALE, "LLM.LOGIT_SCALE"),
        (
            c::EXPERT_FEED_FORWARD_LENGTH,
            "LLM.EXPERT_FEED_FORWARD_LENGTH",
        ),
        (
            c::EXPERT_SHARED_FEED_FORWARD_LENGTH,
            "LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH",
        ),
        (c::EXPERT_COUNT, "LLM.EXPERT_COUNT"),
        (c::EXPERT_USED_COUNT, "LLM.EXPERT_USED_COUNT"),
        (c::EXPERT_SHARED_COUNT, "LLM.EXPERT_SHARED_COUNT"),
        (c::EXPERT_WEIGHTS_SCALE, "LLM.EXPERT_WEIGHTS_SCALE"),
        (c::EXPERT_WEIGHTS_NORM, "LLM.EXPERT_WEIGHTS_NORM"),
        (c::EXPERT_GATING_FUNC, "LLM.EXPERT_GATING_FUNC"),
        (c::ATTENTION_HEAD_COUNT, "Attention.HEAD_COUNT"),
        (c::ATTENTION_HEAD_COUNT_KV, "Attention.HEAD_COUNT_KV"),
        (c::ATTENTION_KEY_LENGTH, "Attention.KEY_LENGTH"),
        (c::ATTENTION_VALUE_LENGTH, "Attention.VALUE_LENGTH"),
        (c::ATTENTION_LAYERNORM_EPS, "Attention.LAYERNORM_EPS"),
        (
            c::ATTENTION_LAYERNORM_RMS_EPS,
            "Attention.LAYERNORM_RMS_EPS",
        ),
        (c::ATTENTION_CAUSAL, "Attention.CAUSAL"),
        (c::ATTENTION_SLIDING_WINDOW, "Attention.SLIDING_WINDOW"),
        (
            c::ATTENTION_SLIDING_WINDOW_PATTERN,
            "Attention.SLIDING_WINDOW_PATTERN",
        ),
        (c::ATTENTION_SCALE, "Attention.SCALE"),
        (c::ROPE_DIMENSION_COUNT, "Rope.DIMENSION_COUNT"),
        (c::ROPE_FREQ_BASE, "Rope.FREQ_BASE"),
        (c::ROPE_SCALING_TYPE, "Rope.SCALING_TYPE"),
        (c::ROPE_SCALING_FACTOR, "Rope.SCALING_FACTOR"),
        (c::ROPE_SCALING_ATTN_FACTOR, "Rope.SCALING_ATTN_FACTOR"),
        (c::ROPE_SCALING_ORIG_CTX_LEN, "Rope.SCALING_ORIG_CTX_LEN"),
        (c::ROPE_SCALING_FINETUNED, "Rope.SCALING_FINETUNED"),
        (c::ROPE_SCALING_YARN_LOG_MUL, "Rope.SCALING_YARN_LOG_MUL"),
        (
            c::ROPE_SCALING_YARN_EXT_FACTOR,
            "Rope.SCALING_YARN_EXT_FACTOR",
        ),
        (
            c::ROPE_SCALING_YARN_ATTN_FACTOR,
            "Rope.SCALING_YARN_ATTN_FACTOR",
        ),
        (
            c::ROPE_SCALING_YARN_BETA_FAST,
            "Rope.SCALING_YARN_BETA_FAST",
        ),
        (
            c::ROPE_SCALING_YARN_BETA_SLOW,
            "Rope.SCALING_YARN_BETA_SLOW",
        ),
        (c::SPLIT_NO, "Split.LLM_KV_SPLIT_NO"),
        (c::SPLIT_COUNT, "Split.LLM_KV_SPLIT_COUNT"),
        (c::SPLIT_TENSORS_COUNT, "Split.LLM_KV_SPLIT_TENSORS_COUNT"),
        (c::TOKENIZER_GGML_MODEL, "Tokenizer.MODEL"),
        (c::TOKENIZER_GGML_PRE, "Tokenizer.PRE"),
        (c::TOKENIZER_GGML_TOKENS, "Tokenizer.LIST"),
        (c::TOKENIZER_GGML_TOKEN_TYPE, "Tokenizer.TOKEN_TYPE"),
        (
            c::TOKENIZER_GGML_TOKEN_TYPE_COUNT,
            "Tokenizer.TOKEN_TYPE_COUNT",
        ),
        (c::TOKENIZER_GGML_SCORES, "Tokenizer.SCORES"),
        (c::TOKENIZER_GGML_MERGES, "Tokenizer.MERGES"),
        (c::TOKENIZER_GGML_BOS_TOKEN_ID, "Tokenizer.BOS_ID"),
        (c::TOKENIZER_GGML_EOS_TOKEN_ID, "Tokenizer.EOS_ID"),
        (c::TOKENIZER_GGML_EOT_TOKEN_ID, "Tokenizer.EOT_ID"),
        (c::TOKENIZER_GGML_EOM_TOKEN_ID, "Tokenizer.EOM_ID"),
        (c::TOKENIZER_GGML_UNKNOWN_TOKEN_ID, "Tokenizer.UNK_ID"),
        (c::TOKENIZER_GGML_SEPERATOR_TOKEN_ID, "Tokenizer.SEP_ID"),
        (c::TOKENIZER_GGML_PADDING_TOKEN_ID, "Tokenizer.PAD_ID"),
        (c::TOKENIZER_GGML_MASK_TOKEN_ID, "Tokenizer.MASK_ID"),
        (c::TOKENIZER_GGML_ADD_BOS_TOKEN, "Tokenizer.ADD_BOS"),
        (c::TOKENIZER_GGML_ADD_EOS_TOKEN, "Tokenizer.ADD_EOS"),
        (c::TOKENIZER_GGML_ADD_SEP_TOKEN, "Tokenizer.ADD_SEP"),
        (c::TOKENIZER_GGML_ADD_SPACE_PREFIX, "Tokenizer.ADD_PREFIX"),
        (
            c::TOKENIZER_GGML_NORMALIZER_LOWERCASE,
            "Tokenizer.NORMALIZER_LOWERCASE",
        ),
        (
            c::TOKENIZER_GGML_NORMALIZER_STRIP_ACCENTS,
            "Tokenizer.NORMALIZER_STRIP_ACCENTS",
        ),
        (
            c::TOKENIZER_GGML_PRECOMPILED_CHARSMAP,
            "Tokenizer.PRECOMPILED_CHARSMAP",
        ),
        (
            c::TOKENIZER_GGML_REMOVE_EXTRA_WHITESPACES,
            "Tokenizer.REMOVE_EXTRA_WS",
        ),
        (c::TOKENIZER_GGML_FIM_PRE_TOKEN_ID, "Tokenizer.FIM_PRE_ID"),
        (c::TOKENIZER_GGML_FIM_SUF_TOKEN_ID, "Tokenizer.FIM_SUF_ID"),
        (c::TOKENIZER_GGML_FIM_MID_TOKEN_ID, "Tokenizer.FIM_MID_ID"),
        (c::TOKENIZER_GGML_FIM_PAD_TOKEN_ID, "Tokenizer.FIM_PAD_ID"),
        (c::TOKENIZER_GGML_FIM_REP_TOKEN_ID, "Tokenizer.FIM_REP_ID"),
        (c::TOKENIZER_GGML_FIM_SEP_TOKEN_ID, "Tokenizer.FIM_SEP_ID"),
        (c::TOKENIZER_HUGGINGFACE_JSON, "Tokenizer.HF_JSON"),
        (c::TOKENIZER_CHAT_TEMPLATE, "Tokenizer.CHAT_TEMPLATE"),
        (c::TOKENIZER_CHAT_TEMPLATE_N, "Tokenizer.CHAT_TEMPLATE_N"),
        (c::TOKENIZER_CHAT_TEMPLATES, "Tokenizer.CHAT_TEMPLATES"),
    ];
    // PyPI's gguf first; keys only llama.cpp's bundled gguf-py knows from there.
    let newer = &k["Keys_llama_cpp"];
    for (ours, theirs) in table {
        let want = keys[theirs].as_str().or_else(|| newer[theirs].as_str());
        assert_eq!(Some(*ours), want, "Keys.{theirs}");
        if let Some(n) = newer[theirs].as_str() {
            assert_eq!(*ours, n, "Keys.{theirs} in llama.cpp's gguf-py");
        }
    }

    assert_eq!(
        u32::from_le_bytes(c::GGUF_MAGIC),
        k["GGUF_MAGIC"].as_u64().unwrap() as u32
    );
    assert_eq!(
        u64::from(c::GGUF_VERSION),
        k["GGUF_VERSION"].as_u64().unwrap()
    );
    assert_eq!(
        c::GGUF_DEFAULT_ALIGNMENT as u64,
        k["GGUF_DEFAULT_ALIGNMENT"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(c::GGML_QUANT_VERSION),
        k["GGML_QUANT_VERSION"].as_u64().unwrap()
    );
    assert_eq!(
        c::GGML_MAX_DIMS as u64,
        k["GGML_MAX_DIMS"].as_u64().unwrap()
    );
    assert_eq!(
        c::ARCH_GPT_OSS,
        k["MODEL_ARCH_NAMES.GPT_OSS"].as_str().unwrap()
    );

    let vt: BTreeMap<String, u64> = serde_json::from_value(k["GGUFValueType"].clone()).unwrap();
    assert_eq!(vt.len(), 13);
    for (name, id) in &vt {
        let ours = GgufValueType::from_u32(*id as u32).unwrap();
        let ours_name = format!("{ours:?}").to_uppercase();
        assert_eq!(&ours_name, name, "GGUFValueType {id}");
    }

    let ft = &k["LlamaFileType"];
    for t in [
        LlamaFileType::AllF32,
        LlamaFileType::MostlyF16,
        LlamaFileType::MostlyQ4_0,
        LlamaFileType::MostlyQ4_1,
        LlamaFileType::MostlyQ8_0,
        LlamaFileType::MostlyQ5_0,
        LlamaFileType::MostlyQ5_1,
        LlamaFileType::MostlyBF16,
        LlamaFileType::MostlyMxfp4Moe,
    ] {
        assert_eq!(
            Some(u64::from(t.id())),
            ft[t.name()].as_u64(),
            "LlamaFileType.{}",
            t.name()
        );
    }

    let tt = &k["TokenType"];
    for (t, name) in [
        (TokenType::Normal, "NORMAL"),
        (TokenType::Unknown, "UNKNOWN"),
        (TokenType::Control, "CONTROL"),
        (TokenType::UserDefined, "USER_DEFINED"),
        (TokenType::Unused, "UNUSED"),
        (TokenType::Byte, "BYTE"),
    ] {
        assert_eq!(Some(t as i64), tt[name].as_i64(), "TokenType.{name}");
    }

    // The ggml type ids and block sizes the reader and writer rely on (DType's table, formats/src/dtype.rs).
    let qt = &k["GGMLQuantizationType"];
    let qs = &k["GGML_QUANT_SIZES"];
    for d in [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Mxfp4,
    ] {
        let id = d.ggml_type().unwrap();
        assert_eq!(
            Some(u64::from(id)),
            qt[d.name()].as_u64(),
            "GGMLQuantizationType.{d}"
        );
        assert_eq!(
            qs[d.name()],
            json!([d.block_size(), d.type_size()]),
            "GGML_QUANT_SIZES[{d}]"
        );
    }
}

/// Content gguf-py's writer cannot produce (empty arrays, empty nested arrays) and every tensor type, for
/// check_gguf_py.py to read with GGUFReader.
/// name, type, shape, bytes
type OwnedTensor = (String, DType, Vec<usize>, Vec<u8>);

fn extra_content() -> (Vec<(String, MetaValue)>, Vec<OwnedTensor>) {
    let kv = vec![
        (
            c::GENERAL_ARCHITECTURE.to_owned(),
            MetaValue::String("gpt-oss".into()),
        ),
        (
            "ours.empty_u32".into(),
            MetaValue::Array(MetaArray::U32(vec![])),
        ),
        (
            "ours.empty_strings".into(),
            MetaValue::Array(MetaArray::String(vec![])),
        ),
        (
            "ours.nested".into(),
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::String(vec!["x".into(), "yz".into()]),
                MetaArray::String(vec![]),
                MetaArray::String(vec!["✓".into()]),
            ])),
        ),
        (
            "ours.bool_pattern".into(),
            MetaValue::Array(MetaArray::Bool(vec![true, false, true])),
        ),
        ("ours.f32".into(), MetaValue::F32(-0.75)),
        ("ours.u64".into(), MetaValue::U64(u64::MAX)),
        ("ours.i8".into(), MetaValue::I8(-5)),
        (
            "ours.string".into(),
            MetaValue::String("multi\nline ✓".into()),
        ),
        (c::key(c::EXPERT_COUNT, c::ARCH_GPT_OSS), MetaValue::U32(32)),
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    };
    let mut tensors = Vec::new();
    for (name, dtype, shape) in [
        ("experts_mxfp4", DType::Mxfp4, vec![2usize, 3, 64]),
        ("attn_bf16", DType::BF16, vec![3, 7]),
        ("q8", DType::Q8_0, vec![1, 32]),
        ("q4_0", DType::Q4_0, vec![2, 32]),
        ("q4_1", DType::Q4_1, vec![1, 64]),
        ("q5_0", DType::Q5_0, vec![1, 32]),
        ("q5_1", DType::Q5_1, vec![1, 32]),
        ("f16", DType::F16, vec![5]),
        ("i32", DType::I32, vec![2, 2]),
        ("f32_4d", DType::F32, vec![1, 2, 1, 3]),
    ] {
        let n = dtype.nbytes(shape.iter().product()).unwrap();
        tensors.push((name.to_owned(), dtype, shape, bytes(n)));
    }
    (kv, tensors)
}

fn sidecar_json(kv: &[(String, MetaValue)], tensors: &[OwnedTensor]) -> Value {
    json!({
        "made_by": "ossify GgufWriter (formats/tests/gguf_interop.rs)",
        "alignment": 32,
        "kv": kv.iter().map(|(k, v)| {
            let (t, val) = meta_to_json(v);
            json!({"key": k, "type": t, "value": val})
        }).collect::<Vec<_>>(),
        "tensors": tensors.iter().map(|(n, d, s, b)| json!({
            "name": n, "ggml_type": d.name(), "shape": s, "hex": hex_encode(b)
        })).collect::<Vec<_>>(),
    })
}

/// Writes `ours_extra.gguf` (+ `.json` describing it) and our rewrite of each gguf-py fixture into
/// $OSSIFY_GGUF_PY_OUT for tests/check_gguf_py.py; without that variable, into a temporary folder, and checks them
/// with our own reader.
#[test]
fn writes_files_for_gguf_py_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = std::env::var_os("OSSIFY_GGUF_PY_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();

    let (kv, tensors) = extra_content();
    let mut w = GgufWriter::new();
    for (k, v) in &kv {
        w.add_kv(k, v.clone()).unwrap();
    }
    for (n, d, s, _) in &tensors {
        w.add_tensor(n, *d, s).unwrap();
    }
    let out_path = dir.join("ours_extra.gguf");
    let out = w.create(&out_path).unwrap();
    // Write from several threads, in an order unrelated to the plan.
    std::thread::scope(|s| {
        let out = &out;
        for chunk in [vec![3usize, 0, 7], vec![9, 1, 5], vec![2, 8, 6, 4]] {
            let tensors = &tensors;
            s.spawn(move || {
                for i in chunk {
                    out.write_tensor(i, &tensors[i].3).unwrap();
                }
            });
        }
    });
    out.finish().unwrap();
    let side = sidecar_json(&kv, &tensors);
    std::fs::write(
        dir.join("ours_extra.json"),
        serde_json::to_string_pretty(&side).unwrap(),
    )
    .unwrap();

    // Our reader agrees with what we meant to write.
    let f = GgufFile::open(&out_path).unwrap();
    assert_eq!(f.metadata, kv);
    for (ti, (n, d, s, b)) in f.tensors.iter().zip(&tensors) {
        assert_eq!((&ti.name, ti.dtype, &ti.shape), (n, *d, s));
        assert_eq!(f.tensor(n).unwrap().bytes, &b[..]);
    }

    for name in FIXTURES {
        let side = parse_sidecar(&read_json(&data_dir().join(format!("{name}.json"))));
        write_with_ours(&side, &dir.join(format!("ours_{name}.gguf")));
    }
}

/// GGUFs made by llama.cpp's own converter (golden/llamacpp, or $OSSIFY_LLAMACPP_GGUF_DIR): our reader accepts
/// them, every tensor is self-consistent, and our writer reproduces each file byte for byte from what we read.
#[test]
fn reads_and_rewrites_llama_cpp_ggufs() {
    let dir = std::env::var_os("OSSIFY_LLAMACPP_GGUF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/llamacpp"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        eprintln!(
            "SKIPPED reads_and_rewrites_llama_cpp_ggufs: no *.gguf in {} (golden data not present)",
            dir.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for path in files {
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(
            f.get(c::GENERAL_ARCHITECTURE).and_then(|v| v.as_str()),
            Some(c::ARCH_GPT_OSS),
            "{}",
            path.display()
        );
        let mut w = GgufWriter::new();
        for (k, v) in &f.metadata {
            w.add_kv(k, v.clone()).unwrap();
        }
        for t in f.tensor_views() {
            t.check().unwrap();
            w.add_tensor(&t.name, t.dtype, &t.shape).unwrap();
        }
        let out_path = tmp.path().join("rewrite.gguf");
        let out = w.create(&out_path).unwrap();
        for (i, t) in f.tensor_views().enumerate() {
            out.write_tensor(i, t.bytes).unwrap();
        }
        out.finish().unwrap();
        let ours = std::fs::read(&out_path).unwrap();
        let theirs = std::fs::read(&path).unwrap();
        assert!(ours == theirs, "{}: our rewrite differs", path.display());
        // The writer refuses an existing output; the next file's rewrite reuses the name.
        std::fs::remove_file(&out_path).unwrap();
        eprintln!(
            "{}: {} tensors, rewritten byte for byte",
            path.display(),
            f.tensors.len()
        );
    }
}
