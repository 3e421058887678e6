//! Our writer then our reader: everything written comes back, output is deterministic, the `.partial` file
//! behaves, and the writer refuses what it must.

use std::fs;
use std::path::Path;

use ossify_formats::gguf::constants as c;
use ossify_formats::gguf::{GgufError, GgufFile, GgufWriter, MetaArray, MetaValue};
use ossify_formats::DType;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn metadata() -> Vec<(String, MetaValue)> {
    vec![
        (
            c::GENERAL_ARCHITECTURE.into(),
            MetaValue::String("gpt-oss".into()),
        ),
        (c::key(c::LLM_BLOCK_COUNT, "gpt-oss"), MetaValue::U32(24)),
        (
            "t.empty_u32".into(),
            MetaValue::Array(MetaArray::U32(vec![])),
        ),
        (
            "t.empty_str".into(),
            MetaValue::Array(MetaArray::String(vec![])),
        ),
        (
            "t.empty_nested".into(),
            MetaValue::Array(MetaArray::Array(vec![])),
        ),
        (
            "t.nested".into(),
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::F32(vec![1.5, -0.0]),
                MetaArray::Array(vec![MetaArray::U8(vec![7]), MetaArray::Bool(vec![])]),
                MetaArray::String(vec!["".into(), "é".into()]),
            ])),
        ),
        ("t.i8".into(), MetaValue::I8(-1)),
        ("t.u16".into(), MetaValue::U16(65535)),
        ("t.i16".into(), MetaValue::I16(-2)),
        ("t.i32".into(), MetaValue::I32(i32::MIN)),
        ("t.u64".into(), MetaValue::U64(u64::MAX)),
        ("t.i64".into(), MetaValue::I64(i64::MIN)),
        ("t.f64".into(), MetaValue::F64(f64::MAX)),
        ("t.bool".into(), MetaValue::Bool(false)),
        ("t.empty_string".into(), MetaValue::String(String::new())),
        ("t.f32_nan_free".into(), MetaValue::F32(f32::MIN_POSITIVE)),
        (
            "t.all_arrays".into(),
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::I8(vec![-1, 1]),
                MetaArray::U16(vec![1]),
                MetaArray::I16(vec![-1]),
                MetaArray::I32(vec![-1]),
                MetaArray::U64(vec![1]),
                MetaArray::I64(vec![-1]),
                MetaArray::F64(vec![0.25]),
            ])),
        ),
    ]
}

/// (name, dtype, shape): gpt-oss-like MXFP4 experts and BF16 matrices with sizes that need padding.
fn tensor_plan() -> Vec<(&'static str, DType, Vec<usize>)> {
    vec![
        ("blk.0.ffn_gate_exps.weight", DType::Mxfp4, vec![4, 6, 64]),
        ("blk.0.ffn_down_exps.weight", DType::Mxfp4, vec![4, 64, 96]),
        ("blk.0.attn_q.weight", DType::BF16, vec![5, 3]),
        ("blk.0.attn_sinks.weight", DType::F32, vec![1]),
        ("blk.0.ffn_gate_inp.weight", DType::F32, vec![4, 3]),
        ("token_embd.weight", DType::Q8_0, vec![3, 32]),
        ("blk.0.attn_k.weight", DType::F16, vec![2, 1, 1, 3]),
    ]
}

fn write(path: &Path, kv: &[(String, MetaValue)], order: &[usize]) {
    let plan = tensor_plan();
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_kv(k, v.clone()).unwrap();
    }
    for (n, d, s) in &plan {
        w.add_tensor(n, *d, s).unwrap();
    }
    let out = w.create(path).unwrap();
    for &i in order {
        let (_, d, s) = &plan[i];
        out.write_tensor(i, &pattern(d.nbytes(s.iter().product()).unwrap(), i as u8))
            .unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn round_trip_metadata_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.gguf");
    let kv = metadata();
    write(&path, &kv, &[0, 1, 2, 3, 4, 5, 6]);

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata, kv);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.data_offset % 32, 0);
    let plan = tensor_plan();
    assert_eq!(f.tensors.len(), plan.len());
    for (i, (ti, (n, d, s))) in f.tensors.iter().zip(&plan).enumerate() {
        assert_eq!((ti.name.as_str(), ti.dtype, &ti.shape), (*n, *d, s));
        assert_eq!(ti.offset % 32, 0);
        let v = f.tensor(n).unwrap();
        v.check().unwrap();
        assert_eq!(v.bytes, &pattern(ti.size, i as u8)[..]);
    }
    // MXFP4 experts [4, 6, 64]: 4*6 rows of 2 blocks of 17 bytes.
    assert_eq!(
        f.tensor_info("blk.0.ffn_gate_exps.weight").unwrap().size,
        4 * 6 * 2 * 17
    );
    // from_bytes sees the same file.
    let g = GgufFile::from_bytes(fs::read(&path).unwrap()).unwrap();
    assert_eq!(g.metadata, f.metadata);
    assert_eq!(g.tensors, f.tensors);
    assert_eq!(g.data_offset, f.data_offset);
}

#[test]
fn custom_alignment_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.gguf");
    let mut kv = metadata();
    kv.push((c::GENERAL_ALIGNMENT.into(), MetaValue::U32(256)));
    write(&path, &kv, &[6, 5, 4, 3, 2, 1, 0]);
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.alignment, 256);
    assert_eq!(f.data_offset % 256, 0);
    for ti in &f.tensors {
        assert_eq!(ti.offset % 256, 0, "{}", ti.name);
    }
    let last = f.tensors.last().unwrap();
    // gguf-py pads the last tensor too.
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        f.data_offset + (last.offset + last.size as u64).div_ceil(256) * 256
    );
}

#[test]
fn same_input_same_bytes_in_any_write_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    write(&a, &metadata(), &[0, 1, 2, 3, 4, 5, 6]);
    write(&b, &metadata(), &[3, 6, 0, 5, 1, 4, 2]);
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
}

#[test]
fn partial_file_until_finish_and_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.gguf");
    let partial = dir.path().join("m.gguf.partial");
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", MetaValue::String("x".into()))
        .unwrap();
    let i = w.add_tensor("t", DType::F32, &[3]).unwrap();
    let header_len = w.header_bytes().len() as u64;

    let out = w.clone().create(&target).unwrap();
    assert!(partial.exists() && !target.exists());
    assert_eq!(out.tensor_offset(i), header_len);
    assert_eq!(out.tensor_size(i), 12);
    out.write_tensor(i, &[0; 12]).unwrap();
    out.finish().unwrap();
    assert!(target.exists() && !partial.exists());

    let target2 = dir.path().join("n.gguf");
    let out = w.create(&target2).unwrap();
    assert!(dir.path().join("n.gguf.partial").exists());
    drop(out);
    assert!(!dir.path().join("n.gguf.partial").exists());
    assert!(!target2.exists());
}

#[test]
fn writer_refuses_duplicates_and_bad_plans() {
    let mut w = GgufWriter::new();
    w.add_kv("a", MetaValue::U8(1)).unwrap();
    assert!(matches!(
        w.add_kv("a", MetaValue::U8(2)),
        Err(GgufError::DuplicateKey { .. })
    ));
    assert!(matches!(
        w.add_kv("", MetaValue::U8(2)),
        Err(GgufError::InvalidKey { .. })
    ));
    assert!(matches!(
        w.add_kv(c::GENERAL_ALIGNMENT, MetaValue::U32(48)),
        Err(GgufError::BadAlignment { .. })
    ));
    assert!(matches!(
        w.add_kv(c::GENERAL_ALIGNMENT, MetaValue::U64(64)),
        Err(GgufError::BadAlignment { .. })
    ));
    w.add_tensor("t", DType::F32, &[2, 2]).unwrap();
    assert!(matches!(
        w.add_tensor("t", DType::F32, &[2]),
        Err(GgufError::DuplicateTensor { .. })
    ));
    let bad_shapes: &[(DType, &[usize])] = &[
        (DType::F32, &[]),
        (DType::F32, &[1, 1, 1, 1, 1]),
        (DType::F32, &[2, 0]),
        (DType::Mxfp4, &[2, 48]),
        (DType::Q8_0, &[31]),
        (DType::F32, &[usize::MAX, 2]),
    ];
    for (d, s) in bad_shapes {
        assert!(
            matches!(
                w.add_tensor("u", *d, s),
                Err(GgufError::InvalidShape { .. })
            ),
            "{d} {s:?}"
        );
    }
    assert!(matches!(
        w.add_tensor("u", DType::U8, &[4]),
        Err(GgufError::UnsupportedDType { .. })
    ));
    assert!(matches!(
        w.add_tensor(&"n".repeat(64), DType::F32, &[4]),
        Err(GgufError::InvalidKey { .. })
    ));
    w.add_tensor(&"n".repeat(63), DType::F32, &[4]).unwrap();
}

#[test]
fn output_refuses_wrong_writes_and_early_finish() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("w.gguf");
    let mut w = GgufWriter::new();
    let a = w.add_tensor("a", DType::BF16, &[2, 3]).unwrap();
    let b = w.add_tensor("b", DType::Mxfp4, &[1, 32]).unwrap();
    let out = w.create(&target).unwrap();
    let err = out.write_tensor(a, &[0; 11]).unwrap_err();
    assert!(
        err.to_string().contains("'a'") && err.to_string().contains("11"),
        "{err}"
    );
    assert!(err.to_string().contains("w.gguf"), "{err}");
    assert!(out.write_tensor(7, &[]).is_err());
    out.write_tensor(a, &[1; 12]).unwrap();
    assert!(out
        .write_tensor(a, &[1; 12])
        .unwrap_err()
        .to_string()
        .contains("twice"));
    let _ = b;
    let err = out.finish().unwrap_err();
    assert!(
        err.to_string().contains("never written") && err.to_string().contains("'b'"),
        "{err}"
    );
    assert!(!target.exists());
    assert!(!dir.path().join("w.gguf.partial").exists());
}

#[test]
fn nesting_limit_is_the_same_for_writer_and_reader() {
    let nest = |levels: usize| {
        let mut a = MetaArray::U8(vec![1]);
        for _ in 1..levels {
            a = MetaArray::Array(vec![a]);
        }
        MetaValue::Array(a)
    };
    let mut w = GgufWriter::new();
    assert!(matches!(
        w.add_kv("deep", nest(5)),
        Err(GgufError::ArrayTooDeep { .. })
    ));
    w.add_kv("deep", nest(4)).unwrap();
    let f = GgufFile::from_bytes(w.header_bytes()).unwrap();
    assert_eq!(f.get("deep"), Some(&nest(4)));
}

#[test]
fn handles_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GgufFile>();
    send_sync::<ossify_formats::gguf::GgufOutput>();
}
