//! What convert and quantize say about their outputs: `--dry-run` plans exactly the files a real run writes
//! (and creates nothing), `--name` sets `general.name` (read back with our GGUF reader), `quantize --json`
//! reports on stdout, and perplexity's `--dump-logits` writes the files its help names and says so.

mod common;

use std::path::Path;

use common::{golden, json, ossify, s};
use ossify_formats::gguf::{GgufFile, GgufModel};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The dry run's files and sizes are the real run's: same names, same byte counts, same tensor count.
fn check_plan_against_run(plan: &serde_json::Value, dir: &Path) {
    assert_eq!(plan["dry_run"], true);
    let files = plan["files"].as_array().unwrap();
    let mut total = 0;
    for f in files {
        let path = Path::new(f["path"].as_str().unwrap());
        let len = std::fs::metadata(path).unwrap().len();
        assert_eq!(f["bytes"].as_u64().unwrap(), len, "{}", path.display());
        total += len;
    }
    assert_eq!(plan["total_bytes"].as_u64().unwrap(), total);
    assert_eq!(files_in(dir).len(), files.len(), "{:?}", files_in(dir));
    let first = Path::new(files[0]["path"].as_str().unwrap());
    let model = GgufModel::open(first).unwrap();
    let rows = plan["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), model.n_tensors());
    for (row, ti) in rows.iter().zip(model.tensor_infos()) {
        assert_eq!(row["name"].as_str().unwrap(), ti.name);
        assert_eq!(row["type"].as_str().unwrap(), ti.dtype.name());
        let shape: Vec<usize> = row["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, ti.shape, "{}", ti.name);
        assert!(!row["source"].as_str().unwrap().is_empty());
    }
}

#[test]
fn convert_dry_run_writes_nothing_and_plans_what_convert_writes() {
    for split in [None, Some("7")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t.gguf");
        let src = golden("tiny");
        let mut args = vec!["convert", s(&src), "-o", s(&out)];
        if let Some(n) = split {
            args.extend(["--split-max-tensors", n]);
        }
        let mut dry = args.clone();
        dry.extend(["--dry-run", "--json"]);
        let o = ossify(&dry);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
        let plan = json(&o);
        assert_eq!(plan["files"].as_array().unwrap().len() > 1, split.is_some());
        // The table form too, and it names the source tensors.
        let mut table = args.clone();
        table.push("--dry-run");
        let o = ossify(&table);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("nothing is written"), "{text}");
        assert!(text.contains("blk.0.ffn_gate_exps.weight"), "{text}");
        assert!(text.contains("model.layers.0.mlp.experts"), "{text}");
        assert!(files_in(dir.path()).is_empty());

        let o = ossify(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        check_plan_against_run(&plan, dir.path());
    }
}

#[test]
fn quantize_dry_run_writes_nothing_and_plans_what_quantize_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    let src = golden("llamacpp/tiny-bf16.bf16.gguf");
    let args = ["quantize", s(&src), "-o", s(&out), "--type", "q8_0"];
    let o = ossify(&[&args[..], &["--dry-run", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(files_in(dir.path()).is_empty());
    let plan = json(&o);
    let rows = plan["tensors"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["source_type"] == "BF16" && r["type"] == "Q8_0"));
    let o = ossify(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    check_plan_against_run(&plan, dir.path());
}

#[test]
fn quantize_dry_run_plans_safetensors_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    let src = golden("tiny-bf16");
    let args = [
        "quantize",
        s(&src),
        "-o",
        s(&out),
        "--format",
        "safetensors",
        "--shard-size",
        "300000",
    ];
    let o = ossify(&[&args[..], &["--dry-run", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(files_in(dir.path()).is_empty());
    let plan = json(&o);
    let files = plan["files"].as_array().unwrap();
    assert!(files.len() > 1, "{plan}");
    let rows = plan["tensors"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["type"] == "MXFP4_BLOCKS" || r["type"] == "U8"),
        "{plan}"
    );
    let o = ossify(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut n = 0;
    for f in files {
        let p = Path::new(f["path"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(p).unwrap().len(),
            f["bytes"].as_u64().unwrap()
        );
        n += f["tensors"].as_u64().unwrap() as usize;
    }
    assert_eq!(n, rows.len());
}

#[test]
fn quantize_json_on_stdout_summary_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    let o = ossify(&[
        "quantize",
        s(&golden("llamacpp/tiny-bf16.bf16.gguf")),
        "-o",
        s(&out),
        "--type",
        "Q8_0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["type"], "q8_0");
    assert_eq!(v["files"][0], s(&out));
    // llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0
    assert_eq!(v["file_type"], 7);
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get("general.file_type").and_then(|x| x.as_u32()), Some(7));
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), f.tensor_views().count());
    for t in tensors {
        let ti = f.tensor_info(t["name"].as_str().unwrap()).unwrap();
        assert_eq!(t["type"].as_str().unwrap(), ti.dtype.name());
    }
    assert_eq!(
        v["bytes_out"].as_u64().unwrap(),
        f.tensor_views().map(|t| t.bytes.len() as u64).sum::<u64>()
    );
    assert!(stderr(&o).contains("tensors,"), "{}", stderr(&o));

    // -q: the same JSON, nothing on stderr.
    let o = ossify(&[
        "quantize",
        s(&golden("llamacpp/tiny-bf16.bf16.gguf")),
        "-o",
        s(&out),
        "--type",
        "q8_0",
        "--json",
        "--force",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(json(&o)["type"], "q8_0");
}

fn general_name(path: &Path) -> String {
    GgufFile::open(path)
        .unwrap()
        .get("general.name")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string()
}

#[test]
fn name_sets_general_name_and_the_default_is_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.gguf");
    let o = ossify(&["convert", s(&golden("tiny")), "-o", s(&plain)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // llama.cpp's converter (conversion/base.py) falls back to the model folder's name.
    assert_eq!(general_name(&plain), "tiny");

    let named = dir.path().join("named.gguf");
    let o = ossify(&[
        "convert",
        s(&golden("tiny")),
        "-o",
        s(&named),
        "--name",
        "Tiny gpt-oss — test ✓",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(general_name(&named), "Tiny gpt-oss — test ✓");
    // Only general.name differs: the rest of the file is the default conversion's.
    let (a, b) = (
        GgufFile::open(&plain).unwrap(),
        GgufFile::open(&named).unwrap(),
    );
    assert_eq!(a.get("general.architecture"), b.get("general.architecture"));
    assert_eq!(a.tensor_views().count(), b.tensor_views().count());
    for (x, y) in a.tensor_views().zip(b.tensor_views()) {
        assert_eq!(x.bytes, y.bytes, "{}", x.name);
    }

    // quantize: keeps the input's name by default; --model-name (llama.cpp's spelling) replaces it.
    let q = dir.path().join("q.gguf");
    let o = ossify(&["quantize", s(&named), "-o", s(&q)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(general_name(&q), "Tiny gpt-oss — test ✓");
    let q2 = dir.path().join("q2.gguf");
    let o = ossify(&[
        "quantize",
        s(&named),
        "-o",
        s(&q2),
        "--model-name",
        "renamed",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(general_name(&q2), "renamed");
}

#[test]
fn name_with_control_bytes_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    for (cmd, input) in [
        ("convert", golden("tiny")),
        ("quantize", golden("llamacpp/tiny-bf16.bf16.gguf")),
    ] {
        for bad in ["a\nb", "\x1b[31mred", "", "x\u{7f}"] {
            let o = ossify(&[cmd, s(&input), "-o", s(&out), "--name", bad]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {bad:?}");
            let err = stderr(&o);
            assert!(err.contains("--name"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(!err.contains('\x1b'), "{err}");
            assert!(files_in(dir.path()).is_empty());
        }
    }
}

#[test]
fn dump_logits_writes_what_its_help_names_and_says_so() {
    let help = String::from_utf8(ossify(&["perplexity", "--help"]).stdout).unwrap();
    assert!(help.contains("[chunks × ctx, vocab]"), "{help}");
    assert!(help.contains("FILE.tokens.json"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("FILE.npy");
    let o = ossify(&[
        "perplexity",
        s(&golden("tiny")),
        "-f",
        s(&golden("tiny/config.json")),
        "-c",
        "16",
        "--json",
        "--dump-logits",
        s(&dump),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    let (chunks, ctx) = (
        v["n_chunks"].as_u64().unwrap() as usize,
        v["n_ctx"].as_u64().unwrap() as usize,
    );
    assert!(chunks >= 2, "{v}");
    assert_eq!(files_in(dir.path()), ["FILE.npy", "FILE.tokens.json"]);
    let arr = ossify::npy::read_f32(&dump).unwrap();
    let vocab: usize = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(golden("tiny/config.json")).unwrap(),
    )
    .unwrap()["vocab_size"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(arr.shape, [chunks * ctx, vocab]);
    let side: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("FILE.tokens.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["sequences"].as_array().unwrap().len(), chunks);
    let err = stderr(&o);
    assert!(err.contains(&format!("wrote {}", dump.display())), "{err}");
    assert!(err.contains("FILE.tokens.json"), "{err}");

    // -q: the same files, no line.
    let o = ossify(&[
        "perplexity",
        s(&golden("tiny")),
        "-f",
        s(&golden("tiny/config.json")),
        "-c",
        "16",
        "--dump-logits",
        s(&dump),
        "--force",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}
