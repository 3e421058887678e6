//! Split GGUF through the commands: `convert --split-max-*` writes a set every command reads as the whole
//! model (given any shard), `quantize --keep-split` keeps a set's shards, and a broken set fails with exit 2
//! naming the file. (Byte-identity with llama-gguf-split and llama.cpp loading our shards:
//! tests/python/test_split_llamacpp.py.)

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{golden, json, ossify, s};
use ossify_formats::gguf::{GgufFile, GgufModel};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "failed: {}", stderr(o));
}

/// golden/tiny converted to one file and to a set of 79 tensors, 20 per shard.
fn single_and_split(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let single = dir.join("single.gguf");
    ok(&ossify(&["convert", s(&golden("tiny")), "-o", s(&single)]));
    let o = ossify(&[
        "convert",
        s(&golden("tiny")),
        "-o",
        s(&dir.join("m.gguf")),
        "--split-max-tensors",
        "20",
        "--json",
    ]);
    ok(&o);
    let files: Vec<PathBuf> = json(&o)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect();
    let names: Vec<String> = (1..=4).map(|i| format!("m-{i:05}-of-00004.gguf")).collect();
    assert_eq!(files, names.iter().map(|n| dir.join(n)).collect::<Vec<_>>());
    (single, files)
}

#[test]
fn every_command_reads_the_whole_set_from_any_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (single, files) = single_and_split(dir.path());
    // The shards carry exactly the single file's tensors.
    let one = GgufFile::open(&single).unwrap();
    let set = GgufModel::open(&files[2]).unwrap();
    assert_eq!(set.n_tensors(), one.tensors.len());
    for t in &one.tensors {
        assert_eq!(set.tensor(&t.name).unwrap().bytes, one.tensor_bytes(t));
    }

    let o = ossify(&["inspect-weights", s(&files[1]), "--json"]);
    ok(&o);
    let r = json(&o);
    assert_eq!(r["tensors"].as_array().unwrap().len(), 79);
    let shards = r["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    assert_eq!(shards[3]["file"], "m-00004-of-00004.gguf");
    assert_eq!(shards[3]["tensors"], 19);
    assert_eq!(r["tensors"][20]["file"], "m-00002-of-00004.gguf");
    assert!(r["architecture"]["layers"].as_u64() == Some(4));

    let o = ossify(&["verify-parity", s(&single), s(&files[3]), "--json"]);
    ok(&o);
    let v = json(&o);
    assert_eq!(v["tensors"]["n_exact"], 79, "{v}");
    assert_eq!(v["logits"]["max_abs_dlogit"].as_f64(), Some(0.0), "{v}");
    assert!(v["logits"]["n_tokens"].as_u64().unwrap() > 0, "{v}");

    let text = golden("README.md");
    let p1 = json(&ossify(&[
        "perplexity",
        s(&single),
        "--text",
        s(&text),
        "--ctx",
        "64",
        "--json",
    ]));
    let p2 = json(&ossify(&[
        "perplexity",
        s(&files[1]),
        "--text",
        s(&text),
        "--ctx",
        "64",
        "--json",
    ]));
    assert_eq!(p1["ppl"], p2["ppl"]);
    assert!(p1["ppl"].as_f64().unwrap() > 1.0);
}

#[test]
fn quantize_keeps_or_drops_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let (single, files) = single_and_split(dir.path());
    let q1 = dir.path().join("q1.gguf");
    ok(&ossify(&[
        "quantize",
        s(&single),
        "-o",
        s(&q1),
        "--type",
        "mxfp4_moe",
        "-q",
    ]));
    // --keep-split: shard i of the output holds the tensors of shard i of the input.
    ok(&ossify(&[
        "quantize",
        s(&files[3]),
        "-o",
        s(&dir.path().join("q.gguf")),
        "--type",
        "mxfp4_moe",
        "--keep-split",
        "-q",
    ]));
    let q_first = dir.path().join("q-00001-of-00004.gguf");
    let kept = GgufModel::open(&q_first).unwrap();
    let input = GgufModel::open(&files[0]).unwrap();
    let whole = GgufFile::open(&q1).unwrap();
    for t in input.tensor_infos() {
        assert_eq!(kept.shard_of(&t.name), input.shard_of(&t.name));
        assert_eq!(
            kept.tensor(&t.name).unwrap().bytes,
            whole.tensor(&t.name).unwrap().bytes
        );
    }
    assert_eq!(kept.model_metadata(), whole.metadata);
    // Without it, a split input gives one file, without the input's split keys.
    let q2 = dir.path().join("q2.gguf");
    ok(&ossify(&[
        "quantize",
        s(&files[2]),
        "-o",
        s(&q2),
        "--type",
        "mxfp4_moe",
        "-q",
    ]));
    assert_eq!(fs::read(&q1).unwrap(), fs::read(&q2).unwrap());
}

#[test]
fn a_broken_set_fails_naming_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (single, files) = single_and_split(dir.path());
    let gone = dir.path().join("gone");
    fs::rename(&files[2], &gone).unwrap();
    let q = dir.path().join("q.gguf");
    for args in [
        vec!["inspect-weights", s(&files[0])],
        vec!["verify-parity", s(&single), s(&files[3])],
        vec!["quantize", s(&files[0]), "-o", s(&q)],
        vec!["quantize", s(&files[0]), "-o", s(&q), "--keep-split"],
    ] {
        let o = ossify(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("m-00003-of-00004.gguf") && e.contains("missing"),
            "{args:?}: {e}"
        );
    }
    // Nothing written.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1 + 3 + 1);
    fs::rename(&gone, &files[2]).unwrap();
    // Truncated: the shard and what is wrong.
    let len = fs::metadata(&files[1]).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let o = ossify(&["inspect-weights", s(&files[0])]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("m-00002-of-00004.gguf") && stderr(&o).contains("outside the file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_split_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    let tiny = golden("tiny");
    for (flags, needle) in [
        (vec!["--split-max-size", "2.5G"], "not a size"),
        (vec!["--split-max-size", "0"], "not a size"),
        (vec!["--split-max-tensors", "0"], "--split-max-tensors"),
        (
            vec!["--split-max-size", "2G", "--split-max-tensors", "4"],
            "cannot be used with",
        ),
    ] {
        let mut args = vec!["convert", s(&tiny), "-o", s(&out)];
        args.extend(flags.iter().copied());
        let o = ossify(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
    }
    // --keep-split needs a GGUF input.
    let o = ossify(&["quantize", s(&tiny), "-o", s(&out), "--keep-split", "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--keep-split"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn split_output_checks_the_shards_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = golden("tiny");
    // A single file at -o does not stop a split output named after it...
    let out = dir.path().join("m.gguf");
    ok(&ossify(&["convert", s(&tiny), "-o", s(&out)]));
    let single = fs::read(&out).unwrap();
    ok(&ossify(&[
        "convert",
        s(&tiny),
        "-o",
        s(&out),
        "--split-max-tensors",
        "40",
    ]));
    assert_eq!(fs::read(&out).unwrap(), single);
    // ...but an existing shard does, until --force.
    let o = ossify(&[
        "convert",
        s(&tiny),
        "-o",
        s(&out),
        "--split-max-tensors",
        "40",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("m-00001-of-00002.gguf") && stderr(&o).contains("already exists"),
        "{}",
        stderr(&o)
    );
    ok(&ossify(&[
        "convert",
        s(&tiny),
        "-o",
        s(&out),
        "--split-max-tensors",
        "40",
        "--force",
    ]));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
}
