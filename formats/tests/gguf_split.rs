//! Split GGUF sets: our split writer then our reader gives back the single file's model, and every way a set
//! can be broken (a shard missing, left over from another split, from another set, truncated, a tensor count
//! that does not add up, a tensor in two shards) is refused naming the file. Byte-identity with llama.cpp's own
//! `llama-gguf-split` is checked in tests/python/test_split_llamacpp.py.

use std::fs;
use std::path::{Path, PathBuf};

use ossify_formats::atomic::Existing;
use ossify_formats::gguf::constants as c;
use ossify_formats::gguf::{
    split_path, GgufError, GgufFile, GgufModel, GgufWriter, MetaValue, SplitRule,
};
use ossify_formats::DType;

/// Five tensors of different sizes (32-byte padded: 64, 96, 32, 160, 64).
const TENSORS: &[(&str, usize)] = &[("a", 16), ("b", 20), ("c", 3), ("d", 40), ("e", 9)];

fn bytes(name: &str, n: usize) -> Vec<u8> {
    let seed = name.as_bytes()[0];
    (0..n).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

fn writer(extra_kv: &[(&str, MetaValue)]) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_kv(c::GENERAL_ARCHITECTURE, MetaValue::String("gpt-oss".into()))
        .unwrap();
    w.add_kv("t.answer", MetaValue::U32(42)).unwrap();
    for (k, v) in extra_kv {
        w.add_kv(k, v.clone()).unwrap();
    }
    for (name, n) in TENSORS {
        w.add_tensor(name, DType::F32, &[*n]).unwrap();
    }
    w
}

fn write(w: GgufWriter, path: &Path, rule: SplitRule) -> Vec<PathBuf> {
    let out = w.create_split(path, rule, Existing::Refuse).unwrap();
    let paths: Vec<PathBuf> = out.paths().iter().map(|p| p.to_path_buf()).collect();
    for (i, (name, n)) in TENSORS.iter().enumerate() {
        out.write_tensor(i, &bytes(name, n * 4)).unwrap();
    }
    out.finish().unwrap();
    paths
}

fn assert_whole_model(m: &GgufModel) {
    let names: Vec<&str> = m.tensor_infos().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    for (name, n) in TENSORS {
        assert_eq!(m.tensor(name).unwrap().bytes, bytes(name, n * 4).as_slice());
    }
    assert_eq!(m.get("t.answer").and_then(MetaValue::as_u32), Some(42));
    assert_eq!(m.architecture(), Some("gpt-oss"));
    assert!(m
        .model_metadata()
        .iter()
        .all(|(k, _)| !k.starts_with("split.")));
}

#[test]
fn rule_cuts_as_gguf_split() {
    // Padded sizes 64, 96, 32, 160, 64. gguf-split cuts before the tensor that takes the shard past the limit.
    let sizes: Vec<usize> = TENSORS.iter().map(|(_, n)| n * 4).collect();
    assert_eq!(SplitRule::MaxSize(160).assign(&sizes), [0, 0, 1, 2, 3]);
    assert_eq!(SplitRule::MaxSize(192).assign(&sizes), [0, 0, 0, 1, 2]);
    // A tensor over the limit gets a shard of its own; the first tensor never leaves an empty shard.
    assert_eq!(SplitRule::MaxSize(50).assign(&sizes), [0, 1, 2, 3, 4]);
    assert_eq!(SplitRule::MaxTensors(2).assign(&sizes), [0, 0, 1, 1, 2]);
    assert_eq!(SplitRule::MaxTensors(5).assign(&sizes), [0; 5]);
    assert_eq!(SplitRule::None.assign(&sizes), [0; 5]);
}

#[test]
fn split_reads_back_as_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.gguf");
    write(writer(&[]), &single, SplitRule::None);
    let paths = write(
        writer(&[]),
        &dir.path().join("m.gguf"),
        SplitRule::MaxTensors(2),
    );
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "m-00001-of-00003.gguf",
            "m-00002-of-00003.gguf",
            "m-00003-of-00003.gguf"
        ]
    );
    assert!(!dir.path().join("m.gguf").exists());
    // The first shard holds the model's key/values then the split keys; the others only the split keys.
    let first = GgufFile::open(&paths[0]).unwrap();
    let keys: Vec<&str> = first.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            c::GENERAL_ARCHITECTURE,
            "t.answer",
            c::SPLIT_NO,
            c::SPLIT_TENSORS_COUNT,
            c::SPLIT_COUNT
        ]
    );
    let third = GgufFile::open(&paths[2]).unwrap();
    assert_eq!(
        third.metadata,
        [
            (c::SPLIT_NO.to_string(), MetaValue::U16(2)),
            (c::SPLIT_TENSORS_COUNT.to_string(), MetaValue::I32(5)),
            (c::SPLIT_COUNT.to_string(), MetaValue::U16(3)),
        ]
    );
    // Any shard opens the whole model.
    for p in &paths {
        let m = GgufModel::open(p).unwrap();
        assert!(m.is_split());
        assert_eq!(m.paths(), paths.as_slice());
        assert_whole_model(&m);
        assert_eq!(m.shard_of("c"), Some(1));
        assert_eq!(m.path_of("e"), Some(paths[2].as_path()));
    }
    let one = GgufModel::open(&single).unwrap();
    assert!(!one.is_split());
    assert_whole_model(&one);
}

#[test]
fn one_shard_is_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    let paths = write(writer(&[]), &out, SplitRule::MaxSize(1 << 30));
    assert_eq!(paths, std::slice::from_ref(&out));
    assert!(GgufFile::open(&out).unwrap().get(c::SPLIT_COUNT).is_none());
}

#[test]
fn merged_file_with_count_zero_is_whole() {
    // `llama-gguf-split --merge` leaves split.count = 0 in the merged file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.gguf");
    let kv = [
        (c::SPLIT_NO, MetaValue::U16(0)),
        (c::SPLIT_COUNT, MetaValue::U16(0)),
        (c::SPLIT_TENSORS_COUNT, MetaValue::I32(5)),
    ];
    write(writer(&kv), &out, SplitRule::None);
    let m = GgufModel::open(&out).unwrap();
    assert!(!m.is_split());
    assert_whole_model(&m);
}

fn three_shards(dir: &Path) -> Vec<PathBuf> {
    write(writer(&[]), &dir.join("m.gguf"), SplitRule::MaxTensors(2))
}

/// The error's text, and the file it names.
fn open_err(p: &Path) -> (String, PathBuf) {
    let e = GgufModel::open(p).unwrap_err();
    let file = match &e {
        GgufError::File { path, .. } => path.clone(),
        other => panic!("error names no file: {other}"),
    };
    (e.to_string(), file)
}

#[test]
fn missing_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    fs::remove_file(&paths[1]).unwrap();
    for given in [&paths[0], &paths[2]] {
        let (msg, file) = open_err(given);
        assert_eq!(file, paths[1]);
        assert!(
            msg.contains("missing: shard 2 of the 3-file split model"),
            "{msg}"
        );
    }
}

#[test]
fn stray_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    // A shard number past the count, and a shard of another split of the same prefix.
    for stray in ["m-00004-of-00003.gguf", "m-00001-of-00004.gguf"] {
        let p = dir.path().join(stray);
        fs::copy(&paths[2], &p).unwrap();
        let (msg, file) = open_err(&paths[0]);
        assert_eq!(file, p);
        assert!(msg.contains("not one of its 3 files"), "{msg}");
        fs::remove_file(&p).unwrap();
    }
    // Another model's shards beside it are no concern.
    fs::copy(&paths[2], dir.path().join("other-00001-of-00004.gguf")).unwrap();
    GgufModel::open(&paths[0]).unwrap();
}

#[test]
fn shard_of_another_set_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    // A shard with split.count 4 under a name of the 3-file set.
    let other = tempfile::tempdir().unwrap();
    let four = write(
        writer(&[]),
        &other.path().join("m.gguf"),
        SplitRule::MaxSize(160),
    );
    assert_eq!(four.len(), 4);
    fs::copy(&four[1], &paths[1]).unwrap();
    let (msg, file) = open_err(&paths[0]);
    assert_eq!(file, paths[1]);
    assert!(msg.contains("split.count is 4, expected 3"), "{msg}");
    // A shard in the wrong place: shard 3 under shard 2's name.
    fs::copy(&paths[2], &paths[1]).unwrap();
    let (msg, file) = open_err(&paths[0]);
    assert_eq!(file, paths[1]);
    assert!(msg.contains("split.no is 2, expected 1"), "{msg}");
}

#[test]
fn truncated_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    let len = fs::metadata(&paths[2]).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&paths[2]).unwrap();
    f.set_len(len - 40).unwrap();
    let (msg, file) = open_err(&paths[0]);
    assert_eq!(file, paths[2]);
    assert!(msg.contains("lies outside the file"), "{msg}");
}

#[test]
fn renamed_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    let p = dir.path().join("renamed.gguf");
    fs::rename(&paths[0], &p).unwrap();
    let (msg, file) = open_err(&p);
    assert_eq!(file, p);
    assert!(
        msg.contains("not named PREFIX-00001-of-00003.gguf"),
        "{msg}"
    );
}

/// Writes shard files by hand, each with the given split keys and tensors.
fn hand_shard(path: &Path, no: u16, count: u16, total: i32, tensors: &[&str]) {
    let mut w = GgufWriter::new();
    if no == 0 {
        w.add_kv(c::GENERAL_ARCHITECTURE, MetaValue::String("gpt-oss".into()))
            .unwrap();
    }
    w.add_kv(c::SPLIT_NO, MetaValue::U16(no)).unwrap();
    w.add_kv(c::SPLIT_COUNT, MetaValue::U16(count)).unwrap();
    w.add_kv(c::SPLIT_TENSORS_COUNT, MetaValue::I32(total))
        .unwrap();
    for t in tensors {
        w.add_tensor(t, DType::F32, &[8]).unwrap();
    }
    let out = w.create(path).unwrap();
    for i in 0..tensors.len() {
        out.write_tensor(i, &[0u8; 32]).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn tensor_count_must_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("m");
    hand_shard(&split_path(&prefix, 0, 2), 0, 2, 4, &["a", "b"]);
    hand_shard(&split_path(&prefix, 1, 2), 1, 2, 4, &["c"]);
    let (msg, file) = open_err(&split_path(&prefix, 1, 2));
    assert_eq!(file, split_path(&prefix, 0, 2));
    assert!(
        msg.contains("split.tensors.count says 4 tensors but the 2 shards hold 3"),
        "{msg}"
    );
}

#[test]
fn tensor_in_two_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("m");
    hand_shard(&split_path(&prefix, 0, 2), 0, 2, 3, &["a", "b"]);
    hand_shard(&split_path(&prefix, 1, 2), 1, 2, 3, &["a"]);
    let (msg, file) = open_err(&split_path(&prefix, 0, 2));
    assert_eq!(file, split_path(&prefix, 1, 2));
    assert!(msg.contains("tensor 'a' is also in"), "{msg}");
}

#[test]
fn split_keys_of_the_wrong_type_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m-00001-of-00002.gguf");
    let kv = [(c::SPLIT_COUNT, MetaValue::String("2".into()))];
    write(writer(&kv), &out, SplitRule::None);
    let (msg, file) = open_err(&out);
    assert_eq!(file, out);
    assert!(msg.contains("split.count should be an integer"), "{msg}");
}

#[test]
fn writer_refuses_a_stray_of_another_split() {
    // Writing a 3-file set beside a 4-file set of the same name would make a folder neither reads back.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("m-00001-of-00004.gguf"), b"old").unwrap();
    let e = writer(&[])
        .create_split(
            &dir.path().join("m.gguf"),
            SplitRule::MaxTensors(2),
            Existing::Refuse,
        )
        .unwrap_err();
    assert!(e.to_string().contains("m-00001-of-00004.gguf"), "{e}");
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn nothing_appears_until_every_shard_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = writer(&[])
        .create_split(
            &dir.path().join("m.gguf"),
            SplitRule::MaxTensors(2),
            Existing::Refuse,
        )
        .unwrap();
    for (i, (name, n)) in TENSORS.iter().enumerate().take(4) {
        out.write_tensor(i, &bytes(name, n * 4)).unwrap();
    }
    let e = out.finish().unwrap_err();
    assert!(e.to_string().contains("m-00003-of-00003.gguf"), "{e}");
    assert!(e.to_string().contains("'e'"), "{e}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn an_existing_shard_is_not_replaced_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_shards(dir.path());
    let before: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    let e = writer(&[("t.other", MetaValue::U8(1))])
        .create_split(
            &dir.path().join("m.gguf"),
            SplitRule::MaxTensors(2),
            Existing::Refuse,
        )
        .unwrap_err();
    assert!(e.to_string().contains("m-00001-of-00003.gguf"), "{e}");
    let after: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    // --force replaces them all.
    let out = writer(&[("t.other", MetaValue::U8(1))])
        .create_split(
            &dir.path().join("m.gguf"),
            SplitRule::MaxTensors(2),
            Existing::Replace,
        )
        .unwrap();
    for (i, (name, n)) in TENSORS.iter().enumerate() {
        out.write_tensor(i, &bytes(name, n * 4)).unwrap();
    }
    out.finish().unwrap();
    let m = GgufModel::open(&paths[1]).unwrap();
    assert_eq!(m.get("t.other"), Some(&MetaValue::U8(1)));
}
