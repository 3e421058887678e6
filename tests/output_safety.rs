//! Nothing lost (issue 8, "Never destroy what exists" and "Interrupts"): every command refuses to write over
//! one of its inputs or an existing output without `--force`, builds outputs at an exclusive, locked
//! `X.partial` that is never a link, leaves nothing behind when interrupted (SIGINT 130, SIGTERM 143), takes
//! over a partial left by SIGKILL, and reports an input that shrinks under its memory map by name.
//!
//! Each test asserts the exit code, the one error line, that no output or `.partial` is left, and that the
//! inputs are unchanged (SHA-256 of every file before and after).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{golden, ossify, ossify_exit, s};
use ossify::checkpoint::{expected_tensors, ExpectedDType, ExpertStorage, Layout};
use ossify::gpt_oss::GptOssConfig;
use ossify_formats::safetensors::SafetensorsWriter;
use ossify_formats::DType;
use sha2::{Digest, Sha256};

/// SHA-256 of every file under `dir`, by path (links followed).
fn checksums(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = fs::read(&p) {
                out.insert(p, format!("{:x}", Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// Every `.partial` under `dir`.
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".partial") {
                out.push(p.clone());
            }
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out
}

/// The one error line of a failed run, which must be its whole stderr (notes aside).
fn error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("note:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

/// Runs ossify expecting exit 2 and an error line containing `needle`; returns the line.
fn refused(args: &[&str], needle: &str) -> String {
    let o = ossify(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    let line = error_line(&o);
    assert!(line.contains(needle), "{args:?}: '{line}' lacks '{needle}'");
    line
}

fn ok(args: &[&str]) -> Output {
    ossify_exit(args, 0)
}

/// A scratch folder holding a copy of golden/tiny (HF layout), its GGUF, a text and a tokens file.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        for e in fs::read_dir(golden("tiny")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::copy(&p, src.join(p.file_name().unwrap())).unwrap();
            }
        }
        let sc = Scratch { dir };
        ok(&["convert", s(&src), "-o", s(&sc.p("model.gguf"))]);
        fs::write(
            sc.p("text.txt"),
            "The quick brown fox jumps over the lazy dog. ".repeat(8),
        )
        .unwrap();
        fs::write(sc.p("ids.tokens.json"), "[1, 2, 3, 4, 5, 6, 7, 8]").unwrap();
        sc
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn no_command_writes_over_its_inputs() {
    let sc = Scratch::new();
    let before = checksums(sc.dir.path());
    let (src, gguf, text, tokens) = (
        sc.p("src"),
        sc.p("model.gguf"),
        sc.p("text.txt"),
        sc.p("ids.tokens.json"),
    );
    let shard = src.join("model-00000-of-00002.safetensors");
    std::os::unix::fs::symlink(src.join("config.json"), sc.p("link.json")).unwrap();
    fs::hard_link(&gguf, sc.p("hard.gguf")).unwrap();
    let before_links = checksums(sc.dir.path());
    let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|a| a.to_string()).collect() };
    let cases: Vec<Vec<String>> = vec![
        strings(&["convert", s(&src), "-o", s(&src.join("config.json"))]),
        strings(&["convert", s(&src), "-o", s(&shard)]),
        strings(&["convert", s(&src), "-o", s(&sc.p("link.json"))]),
        strings(&["quantize", s(&gguf), "-o", s(&gguf)]),
        strings(&["quantize", s(&gguf), "-o", s(&sc.p("hard.gguf"))]),
        strings(&[
            "quantize",
            s(&src),
            "-o",
            s(&src),
            "--format",
            "safetensors",
        ]),
        strings(&[
            "perplexity",
            s(&gguf),
            "--text",
            s(&text),
            "--ctx",
            "8",
            "--dump-logits",
            s(&text),
        ]),
        // The tokens file written beside the logits (ids.tokens.json) is the input here.
        strings(&[
            "perplexity",
            s(&gguf),
            "--tokens",
            s(&tokens),
            "--ctx",
            "8",
            "--dump-logits",
            s(&sc.p("ids.npy")),
        ]),
        strings(&[
            "quantize",
            s(&src),
            "-o",
            s(&sc.p("q.gguf")),
            "--calibration",
            s(&text),
            "--imatrix-out",
            s(&text),
        ]),
    ];
    for force in [false, true] {
        for args in &cases {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            if force {
                a.push("--force");
            }
            refused(&a, "is one of this command's inputs");
        }
    }
    assert_eq!(checksums(sc.dir.path()), before_links);
    assert!(before.keys().all(|k| before_links.contains_key(k)));
    assert!(partials(sc.dir.path()).is_empty());
    assert!(!sc.p("q.gguf").exists() && !sc.p("ids.npy").exists());
}

#[test]
fn an_existing_output_is_refused_unless_force() {
    let sc = Scratch::new();
    let (src, gguf, text) = (sc.p("src"), sc.p("model.gguf"), sc.p("text.txt"));
    let old = b"an existing file".to_vec();
    let outs = [
        "out.gguf",
        "q.gguf",
        "logits.npy",
        "logits2.tokens.json",
        "imatrix.gguf",
    ];
    for o in outs {
        fs::write(sc.p(o), &old).unwrap();
    }
    let inputs = checksums(&src);
    let perplexity = |logits: PathBuf| -> Vec<String> {
        let args = [s(&gguf), "--text", s(&text), "--ctx", "8", "--dump-logits"];
        let mut v: Vec<String> = std::iter::once("perplexity")
            .chain(args)
            .map(str::to_string)
            .collect();
        v.push(logits.to_string_lossy().into_owned());
        v
    };
    let run = |extra: &[&str], needle: Option<&str>| {
        let cmds: Vec<Vec<String>> = vec![
            vec!["convert", s(&src), "-o", s(&sc.p("out.gguf"))],
            vec!["quantize", s(&gguf), "-o", s(&sc.p("q.gguf")), "-q"],
            vec![
                "quantize",
                s(&src),
                "-o",
                s(&sc.p("q2.gguf")),
                "-q",
                "--calibration",
                s(&text),
                "--imatrix-out",
                s(&sc.p("imatrix.gguf")),
            ],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(str::to_string).collect())
        .chain([
            perplexity(sc.p("logits.npy")),
            // Only the side file exists.
            perplexity(sc.p("logits2.npy")),
        ])
        .collect();
        for c in cmds {
            let mut a: Vec<&str> = c.iter().map(String::as_str).collect();
            a.extend_from_slice(extra);
            match needle {
                Some(n) => {
                    refused(&a, n);
                }
                None => {
                    ok(&a);
                }
            }
        }
    };
    run(
        &[],
        Some("already exists; not replacing it (--force replaces it)"),
    );
    for o in outs {
        assert_eq!(fs::read(sc.p(o)).unwrap(), old, "{o}");
    }
    assert!(!sc.p("logits2.npy").exists() && !sc.p("q2.gguf").exists());
    assert!(partials(sc.dir.path()).is_empty());
    run(&["--force"], None);
    for o in outs {
        assert_ne!(fs::read(sc.p(o)).unwrap(), old, "{o}");
    }
    assert!(sc.p("logits.tokens.json").is_file());
    assert_eq!(checksums(&src), inputs);
    assert!(partials(sc.dir.path()).is_empty());
}

#[test]
fn folder_outputs_trailing_slash_and_user_folders() {
    let sc = Scratch::new();
    let src = sc.p("src");
    let inputs = checksums(&src);
    // `-o ft/` (as the README writes it) makes ft, not ft/.partial.
    let ft = format!("{}/", sc.p("ft").display());
    ok(&[
        "quantize",
        s(&src),
        "-o",
        &ft,
        "--format",
        "safetensors",
        "-q",
    ]);
    assert!(sc.p("ft/config.json").is_file() && sc.p("ft/model.safetensors").is_file());
    assert!(!sc.p("ft/.ossify-partial").exists());
    ossify::checkpoint::Checkpoint::open(&sc.p("ft"), None).unwrap();
    // A folder with contents is never replaced, not even with --force.
    let ft_sums = checksums(&sc.p("ft"));
    for extra in [&[][..], &["--force"][..]] {
        let mut a = vec!["quantize", s(&src), "-o", &ft, "--format", "safetensors"];
        a.extend_from_slice(extra);
        refused(
            &a,
            "is a folder that is not empty; ossify never removes a folder",
        );
    }
    assert_eq!(checksums(&sc.p("ft")), ft_sums);
    // An empty folder is filled.
    fs::create_dir(sc.p("empty")).unwrap();
    ok(&[
        "quantize",
        s(&src),
        "-o",
        s(&sc.p("empty")),
        "--format",
        "safetensors",
        "-q",
    ]);
    assert!(sc.p("empty/model.safetensors").is_file());
    // A user's folder named like our partial is neither used nor removed.
    fs::create_dir(sc.p("mine.partial")).unwrap();
    fs::write(sc.p("mine.partial/notes.txt"), b"keep me").unwrap();
    refused(
        &[
            "quantize",
            s(&src),
            "-o",
            s(&sc.p("mine")),
            "--format",
            "safetensors",
        ],
        "was not made by ossify; not removing it",
    );
    assert_eq!(
        fs::read(sc.p("mine.partial/notes.txt")).unwrap(),
        b"keep me"
    );
    assert!(!sc.p("mine").exists());
    assert_eq!(checksums(&src), inputs);
}

#[test]
fn a_partial_that_is_a_symlink_is_never_followed() {
    let sc = Scratch::new();
    let src = sc.p("src");
    let victim = sc.p("victim.bin");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, sc.p("out.gguf.partial")).unwrap();
    std::os::unix::fs::symlink(&victim, sc.p("q.gguf.partial")).unwrap();
    std::os::unix::fs::symlink(&victim, sc.p("l.npy.partial")).unwrap();
    let before = checksums(sc.dir.path());
    let (out, q) = (sc.p("out.gguf"), sc.p("q.gguf"));
    for force in [false, true] {
        let mut cases: Vec<Vec<&str>> = vec![
            vec!["convert", s(&src), "-o", s(&out)],
            vec!["quantize", s(&src), "-o", s(&q)],
        ];
        let gguf = sc.p("model.gguf");
        let text = sc.p("text.txt");
        let l = sc.p("l.npy");
        cases.push(vec![
            "perplexity",
            s(&gguf),
            "--text",
            s(&text),
            "--ctx",
            "8",
            "--dump-logits",
            s(&l),
        ]);
        for mut c in cases {
            if force {
                c.push("--force");
            }
            refused(
                &c,
                "is a symbolic link; ossify does not write through links",
            );
        }
    }
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(checksums(sc.dir.path()), before);
    assert!(!out.exists() && !q.exists());
}

// ---- runs long enough to be interrupted ----

/// An HF checkpoint with tiny's vocabulary and wider experts (about 60 MB), which `convert --piece-bytes 1
/// --threads 1` takes a few seconds to write: long enough to interrupt, race or truncate mid-run.
fn slow_checkpoint(dir: &Path) -> PathBuf {
    let src = dir.join("big");
    fs::create_dir(&src).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "generation_config.json",
    ] {
        fs::copy(golden("tiny").join(f), src.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(golden("tiny/config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = 512.into();
    cfg["intermediate_size"] = 1024.into();
    cfg["num_local_experts"] = 32.into();
    cfg["num_hidden_layers"] = 2.into();
    cfg["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
    let cfg_path = src.join("config.json");
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let config = GptOssConfig::from_hf_json(&cfg, &cfg_path).unwrap();
    let mut w = SafetensorsWriter::new();
    let mut sizes = Vec::new();
    for t in expected_tensors(Layout::Hf, &config, ExpertStorage::Mxfp4) {
        let dtype = match t.dtype {
            ExpectedDType::Float | ExpectedDType::Any => DType::BF16,
            ExpectedDType::Exact(d) => d,
        };
        w.add_tensor(&t.name, dtype, &t.shape).unwrap();
        sizes.push(dtype.nbytes(t.shape.iter().product()).unwrap());
    }
    let out = w.create(&src.join("model.safetensors")).unwrap();
    for (i, n) in sizes.iter().enumerate() {
        // 0x3c: BF16 0.0117 pairs / MXFP4 codes and scale 60: finite everywhere.
        out.write_tensor(i, &vec![0x3c; *n]).unwrap();
    }
    out.finish().unwrap();
    src
}

fn slow_convert(src: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args([
            "convert",
            s(src),
            "-o",
            s(out),
            "--piece-bytes",
            "1",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` exists (the run has created its partial output).
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn interrupts_remove_the_partial_and_exit_130_143_and_sigkill_leaves_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = slow_checkpoint(dir.path());
    let inputs = checksums(&src);
    let out = dir.path().join("out.gguf");
    let partial = dir.path().join("out.gguf.partial");
    for (sig, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let child = slow_convert(&src, &out);
        wait_for(&partial);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{name}: {o:?}");
        let line = error_line(&o);
        assert!(line.contains(&format!("interrupted by {name}")), "{line}");
        assert!(line.contains("out.gguf.partial"), "{line}");
        assert!(!partial.exists() && !out.exists(), "{name} left output");
    }
    // SIGKILL cannot be handled: the partial stays; the next run names it and replaces it.
    let child = slow_convert(&src, &out);
    wait_for(&partial);
    signal(&child, libc::SIGKILL);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), None);
    assert!(partial.exists() && !out.exists());
    let o = ok(&["convert", s(&src), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "note: {}: left by an interrupted run; replacing it",
            partial.display()
        )),
        "{err}"
    );
    assert!(!partial.exists());
    // The result is the same as an uninterrupted run's.
    let fresh = dir.path().join("fresh.gguf");
    ok(&["convert", s(&src), "-o", s(&fresh)]);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&fresh).unwrap());
    assert_eq!(checksums(&src), inputs);
}

#[test]
fn a_second_writer_of_the_same_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = slow_checkpoint(dir.path());
    let inputs = checksums(&src);
    let out = dir.path().join("out.gguf");
    let first = slow_convert(&src, &out);
    wait_for(&dir.path().join("out.gguf.partial"));
    for extra in [&[][..], &["--force"][..]] {
        let mut a = vec!["convert", s(&src), "-o", s(&out), "--outtype", "f32"];
        a.extend_from_slice(extra);
        refused(&a, "another process is writing it");
    }
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    // The file is the first run's, whole.
    let fresh = dir.path().join("fresh.gguf");
    ok(&["convert", s(&src), "-o", s(&fresh)]);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&fresh).unwrap());
    assert!(partials(dir.path()).is_empty());
    assert_eq!(checksums(&src), inputs);
}

#[test]
fn a_source_that_shrinks_under_the_map_is_named_not_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let src = slow_checkpoint(dir.path());
    let out = dir.path().join("out.gguf");
    let child = slow_convert(&src, &out);
    wait_for(&dir.path().join("out.gguf.partial"));
    let shard = src.join("model.safetensors");
    fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let line = error_line(&o);
    assert!(
        line.contains(&format!("{}: the file shrank from", shard.display())),
        "{line}"
    );
    assert!(!out.exists());
    assert!(partials(dir.path()).is_empty());
}
