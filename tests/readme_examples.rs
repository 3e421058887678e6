//! Every command example in README.md runs as written (issue 12): a doc test of the README's commands on
//! golden/ stand-ins.
//!
//! The examples are the lines of README's fenced code blocks whose info string is empty, `sh`, `bash`, `shell` or
//! `console` (mark a block that is not a command, such as sample output, ```` ```text ````). In a block with `$ `
//! prompts only the prompt lines are commands (the rest is what they printed) and the block runs as one session
//! in one folder; otherwise each line runs on its own, in a fresh folder. Each runs with `bash -o pipefail -c`,
//! `ossify` on PATH being the binary under test and standard input one line, `Hello`.
//!
//! The README names the user's files (`path/to/gpt-oss-20b`, `out.gguf`, `corpus.txt`, ...). One table maps
//! them to golden/ stand-ins: [`FIXTURES`] says what each name is here (a link into golden/, a file ossify makes
//! from golden/, a short text), and every example's folder holds them all, except the files the example itself
//! writes (after `-o`, `--outfile`, `--dump-logits`, `--imatrix-out`). [`SUBSTITUTIONS`] rewrites the few texts
//! that cannot run as they stand here (a size only a 120b checkpoint fills, `cargo run`, the shared /tmp).
//! Before anything runs, every word of an example that looks like a path must be one of those names, a file
//! the example writes, or an existing path under golden/: an example naming a file the table does not map fails
//! here, by name, instead of being skipped. A table entry no example uses fails too, so the table stays exact.
//!
//! Examples that cannot run here are in [`ALLOWED`], by their exact text, with the reason and what they must do
//! instead (the documented failure, such as exit 2 without a GPU, where there is one).
//!
//! Every other example must exit 0.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How a README name is made to exist here.
enum Fixture {
    /// A symbolic link to this path under golden/.
    Golden(&'static str),
    /// Made by running ossify with these arguments in the fixture folder (the name is one of its outputs).
    Ossify(&'static [&'static str]),
    /// A file with this text.
    Text(&'static str),
    /// The first sequence of golden/reference/tokens.json, as `{"tokens": [...]}` (what `--tokens` reads).
    FirstSequenceTokens,
}

/// The README's names for the user's files and folders, and their stand-ins.
const FIXTURES: &[(&str, Fixture)] = &[
    // Checkpoints as published: golden/tiny is gpt-oss in the HF layout (MXFP4 experts, with original/).
    ("path/to/gpt-oss-20b", Fixture::Golden("tiny")),
    ("path/to/gpt-oss-120b", Fixture::Golden("tiny")),
    ("gpt-oss-20b", Fixture::Golden("tiny")),
    ("gpt-oss-120b", Fixture::Golden("tiny")),
    ("src", Fixture::Golden("tiny")),
    // BF16 fine-tunes: golden/tiny-bf16 (experts dequantized, as a fine-tune saves them).
    ("path/to/my-bf16-finetune", Fixture::Golden("tiny-bf16")),
    ("my-bf16-finetune", Fixture::Golden("tiny-bf16")),
    ("ft", Fixture::Golden("tiny-bf16")),
    // Converted models, as the README's own convert examples make them.
    (
        "gpt-oss-20b.gguf",
        Fixture::Ossify(&["convert", "golden/tiny", "-o", "gpt-oss-20b.gguf"]),
    ),
    (
        "out.gguf",
        Fixture::Ossify(&["convert", "golden/tiny/original", "-o", "out.gguf"]),
    ),
    // Any GGUF: the one llama.cpp's own converter made from golden/tiny-bf16.
    ("model.gguf", Fixture::Golden("llamacpp/tiny-bf16.bf16.gguf")),
    // Split sets: the shards `--split-max-size` (SUBSTITUTIONS) and `--split-max-tensors` make of the tiny models.
    (
        "gpt-oss-120b-00002-of-00002.gguf",
        Fixture::Ossify(&[
            "convert",
            "golden/tiny",
            "-o",
            "gpt-oss-120b.gguf",
            "--split-max-size",
            SPLIT_STAND_IN,
        ]),
    ),
    (
        "ft-00001-of-00003.gguf",
        Fixture::Ossify(&[
            "convert",
            "golden/tiny-bf16",
            "-o",
            "ft.gguf",
            "--outtype",
            "bf16",
            "--split-max-tensors",
            "30",
        ]),
    ),
    // Logits from another implementation: transformers' float32 logits of golden/tiny (golden/generate.py) and
    // the token ids they were computed for.
    ("ref.npy", Fixture::Golden("reference/tiny.seq0.logits.npy")),
    ("tokens.json", Fixture::FirstSequenceTokens),
    // Texts. corpus.txt must hold two --ctx 512 chunks of the tiny vocabulary's tokens: golden's README does.
    ("corpus.txt", Fixture::Golden("README.md")),
    (
        "prompts.txt",
        Fixture::Text("The quick brown fox jumps over the lazy dog.\nMXFP4 stores 32 values with one shared exponent.\n"),
    ),
    (
        "text.txt",
        Fixture::Text("Calibration text: a fine-tune's experts see prose, code and chat.\nfn main() { println!(\"hi\"); }\n"),
    ),
    ("question.txt", Fixture::Text("What is 2+2?\n")),
    ("prompt.txt", Fixture::Text("<|start|>user<|message|>Hello<|end|>\n")),
];

/// The size that splits golden/tiny (about 0.5 MB of tensors) in two, as 50G splits gpt-oss-120b.
const SPLIT_STAND_IN: &str = "300K";

/// Texts rewritten before an example runs: (README text, what runs here, why).
const SUBSTITUTIONS: &[(&str, &str, &str)] = &[
    (
        "cargo run --release --",
        "ossify",
        "the same binary, which cargo built for this test (a nested cargo would wait on this run's build lock)",
    ),
    (
        "/tmp/",
        "",
        "outputs go to the example's own folder, not the machine's shared /tmp (where parallel runs would collide)",
    ),
    (
        "--split-max-size 50G",
        "--split-max-size 300K",
        "50G splits gpt-oss-120b in two; 300K (SPLIT_STAND_IN) splits golden/tiny in two",
    ),
];

/// What an example that cannot run as written here must do instead.
enum Instead {
    /// Not run.
    NotRun,
    /// Without a CUDA device: exit 2 with this one-line error; with one: exit 0.
    NeedsGpu(&'static str),
}

/// Examples that cannot run here, by exact text (the whole line, comment included): (text, why, instead).
const ALLOWED: &[(&str, &str, Instead)] = &[
    (
        "cargo install --path .          # Rust 1.89 or newer; no C toolchain or CUDA needed",
        "installs into ~/.cargo/bin, outside the test's reach, and rebuilds the crate in release (minutes); \
         the test runs the binary cargo built, from the same sources",
        Instead::NotRun,
    ),
    (
        "scripts/test-all",
        "the command that runs this test (it would run itself)",
        Instead::NotRun,
    ),
    (
        "ossify verify-parity gpt-oss-20b/ gpt-oss-20b.gguf --device cuda     # the first GPU; exit 2 without one",
        "needs a CUDA GPU; CI has none",
        Instead::NeedsGpu("--device cuda: no CUDA"),
    ),
    (
        "ossify quantize ft/ -o ft.gguf --type mxfp4_moe --calibration text.txt --device cuda",
        "needs a CUDA GPU; CI has none",
        Instead::NeedsGpu("--device cuda: no CUDA"),
    ),
];

/// Arguments after which an example names a file it writes.
const OUTPUT_FLAGS: &[&str] = &["-o", "--outfile", "--dump-logits", "--imatrix-out"];

/// One runnable unit: a line, or a `$` session's lines.
#[derive(Debug)]
struct Example {
    /// README line number of the first command.
    line: usize,
    /// The commands, as written.
    commands: Vec<String>,
}

/// The examples of a README, in order.
fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut block: Option<(usize, Vec<(usize, &str)>)> = None;
    for (i, line) in readme.lines().enumerate() {
        let n = i + 1;
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match block.take() {
                Some((_, lines)) => out.extend(block_examples(&lines)),
                None => {
                    let info = info.trim();
                    let runnable = ["", "sh", "bash", "shell", "console"].contains(&info);
                    block = Some((n, Vec::new()));
                    if !runnable {
                        // Consume the block without running it: mark it with an impossible line number.
                        block = Some((0, Vec::new()));
                    }
                }
            }
            continue;
        }
        if let Some((start, lines)) = block.as_mut() {
            if *start != 0 && !line.trim().is_empty() {
                lines.push((n, line));
            }
        }
    }
    assert!(block.is_none(), "README.md ends inside a code block");
    out
}

fn block_examples(lines: &[(usize, &str)]) -> Vec<Example> {
    let prompts: Vec<(usize, &str)> = lines
        .iter()
        .filter_map(|&(n, l)| l.strip_prefix("$ ").map(|c| (n, c)))
        .collect();
    if prompts.is_empty() {
        lines
            .iter()
            .map(|&(n, l)| Example {
                line: n,
                commands: vec![l.to_string()],
            })
            .collect()
    } else {
        vec![Example {
            line: prompts[0].0,
            commands: prompts.iter().map(|&(_, c)| c.to_string()).collect(),
        }]
    }
}

/// A shell word: its text with quotes removed, and whether any of it was quoted.
#[derive(Debug, PartialEq)]
struct Word {
    text: String,
    quoted: bool,
}

/// Splits a command line as the shell does, far enough to find paths: quotes, backslashes, `#` comments and the
/// operators `|`, `&&`, `||`, `;`, `>`, `<` (returned as unquoted words of their own).
fn words(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, quoted: &mut bool, in_word: &mut bool, out: &mut Vec<Word>| {
        if *in_word {
            out.push(Word {
                text: std::mem::take(cur),
                quoted: *quoted,
            });
        }
        *quoted = false;
        *in_word = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            ' ' | '\t' => flush(&mut cur, &mut quoted, &mut in_word, &mut out),
            '\'' => {
                in_word = true;
                quoted = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            '|' | '&' | ';' | '>' | '<' => {
                flush(&mut cur, &mut quoted, &mut in_word, &mut out);
                let mut op = c.to_string();
                if chars.peek() == Some(&c) {
                    op.push(c);
                    chars.next();
                }
                out.push(Word {
                    text: op,
                    quoted: false,
                });
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut quoted, &mut in_word, &mut out);
    out
}

/// Whether an unquoted word names a file or folder.
fn looks_like_path(w: &str) -> bool {
    const EXTENSIONS: &[&str] = &[".gguf", ".txt", ".npy", ".json", ".safetensors", ".jinja"];
    !w.starts_with('-') && (w.contains('/') || EXTENSIONS.iter().any(|e| w.ends_with(e)))
}

fn is_operator(w: &Word) -> bool {
    !w.quoted && ["|", "||", "&", "&&", ";", ">", ">>", "<"].contains(&w.text.as_str())
}

/// The files an example writes: the word after each output flag.
fn outputs(commands: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in commands {
        let ws = words(c);
        for pair in ws.windows(2) {
            if !pair[0].quoted && OUTPUT_FLAGS.contains(&pair[0].text.as_str()) {
                out.insert(pair[1].text.trim_end_matches('/').to_string());
            }
        }
    }
    out
}

/// Whether `name` is a file `output` makes: itself, or a shard `PREFIX-NNNNN-of-NNNNN.gguf` of it.
fn is_written(name: &str, outputs: &BTreeSet<String>) -> bool {
    outputs.iter().any(|o| {
        if name == o {
            return true;
        }
        let prefix = o.strip_suffix(".gguf").unwrap_or(o);
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_suffix(".gguf"))
            .is_some_and(|nn| {
                let b = nn.as_bytes();
                b.len() == 14
                    && &nn[5..9] == "-of-"
                    && b[..5].iter().chain(&b[9..]).all(u8::is_ascii_digit)
            })
    })
}

/// The paths an example names that nothing maps: each unquoted path-like word (not a command name) must be a
/// fixture (or under one), a file the example writes, or an existing path under golden/.
fn unmapped(commands: &[String]) -> Vec<String> {
    let outs = outputs(commands);
    let mut bad = Vec::new();
    for c in commands {
        let ws = words(c);
        let mut command_word = true;
        for w in &ws {
            if is_operator(w) {
                command_word = true;
                continue;
            }
            if std::mem::replace(&mut command_word, false) || w.quoted || !looks_like_path(&w.text)
            {
                continue;
            }
            let p = w.text.trim_end_matches('/');
            let mapped = FIXTURES
                .iter()
                .any(|(name, _)| p == *name || p.starts_with(&format!("{name}/")))
                || is_written(p, &outs)
                || (p.starts_with("golden/") && root().join(p).exists());
            if !mapped {
                bad.push(w.text.clone());
            }
        }
    }
    bad
}

fn substitute(command: &str, used: &mut BTreeSet<&'static str>) -> String {
    let mut c = command.to_string();
    for &(from, to, _) in SUBSTITUTIONS {
        if c.contains(from) {
            c = c.replace(from, to);
            used.insert(from);
        }
    }
    c
}

fn ossify_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ossify")
}

/// The folder holding every fixture (made once per run, under cargo's scratch folder for tests), and
/// `bin/ossify`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-examples");
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let d = dir.as_path();
        fs::create_dir(d.join("bin")).unwrap();
        std::os::unix::fs::symlink(ossify_bin(), d.join("bin/ossify")).unwrap();
        std::os::unix::fs::symlink(root().join("golden"), d.join("golden")).unwrap();
        for (name, how) in FIXTURES {
            let path = d.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            match how {
                Fixture::Golden(p) => {
                    let target = root().join("golden").join(p);
                    assert!(target.exists(), "fixture {name}: golden/{p} is missing");
                    std::os::unix::fs::symlink(target, &path).unwrap();
                }
                Fixture::Ossify(args) => {
                    let o = Command::new(ossify_bin())
                        .args(*args)
                        .current_dir(d)
                        .output()
                        .unwrap();
                    assert!(
                        o.status.success(),
                        "making fixture {name} (ossify {}): {}",
                        args.join(" "),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    assert!(
                        path.exists(),
                        "ossify {} did not make {name}",
                        args.join(" ")
                    );
                }
                Fixture::Text(t) => fs::write(&path, t).unwrap(),
                Fixture::FirstSequenceTokens => {
                    let j: serde_json::Value = serde_json::from_str(
                        &fs::read_to_string(root().join("golden/reference/tokens.json")).unwrap(),
                    )
                    .unwrap();
                    let first = &j["sequences"][0];
                    assert!(
                        first.is_array(),
                        "golden/reference/tokens.json: no sequences"
                    );
                    fs::write(&path, serde_json::json!({ "tokens": first }).to_string()).unwrap();
                }
            }
        }
        dir
    })
}

/// Every fixture file or folder name at the top of the fixture folder (with the split sets' other shards).
fn fixture_entries() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "bin")
        .collect();
    v.sort();
    v
}

/// A fresh folder holding links to every fixture except what `outs` names (and their shards).
fn example_dir(outs: &BTreeSet<String>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in fixture_entries() {
        // `path` holds nested fixtures; an output inside it is not expected (the README writes beside the cwd).
        if is_written(&name, outs) {
            continue;
        }
        std::os::unix::fs::symlink(fixtures().join(&name), dir.path().join(&name)).unwrap();
    }
    dir
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(command: &str, cwd: &Path) -> Ran {
    let path = format!(
        "{}:{}",
        fixtures().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-o", "pipefail", "-c", command])
        .current_dir(cwd)
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read its input closes the pipe: that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(b"Hello\n");
    let o = child.wait_with_output().unwrap();
    Ran {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn gpu_present() -> bool {
    ossify_kernels::cuda::Gpu::probe().is_ok()
}

#[test]
fn every_readme_example_runs() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let all = examples(&readme);
    assert!(
        all.len() >= 20,
        "found only {} examples in README.md",
        all.len()
    );
    let mut failures = Vec::new();
    let mut used_subs = BTreeSet::new();
    let mut used_allowed = BTreeSet::new();
    let mut used_fixtures = BTreeSet::new();
    let mut ran = 0;
    for ex in &all {
        let allowed = ALLOWED
            .iter()
            .find(|(text, _, _)| ex.commands.len() == 1 && ex.commands[0] == *text);
        if let Some((text, _, Instead::NotRun)) = allowed {
            used_allowed.insert(*text);
            continue;
        }
        let commands: Vec<String> = ex
            .commands
            .iter()
            .map(|c| substitute(c, &mut used_subs))
            .collect();
        let bad = unmapped(&commands);
        if !bad.is_empty() {
            failures.push(format!(
                "README.md:{}: `{}` names {bad:?}, which FIXTURES does not map (add a stand-in there, or \
                 an ALLOWED entry with the reason it cannot run)",
                ex.line,
                ex.commands.join(" ; ")
            ));
            continue;
        }
        for c in &commands {
            for w in words(c) {
                let p = w.text.trim_end_matches('/');
                for (name, _) in FIXTURES {
                    if p == *name || p.starts_with(&format!("{name}/")) {
                        used_fixtures.insert(*name);
                    }
                }
            }
        }
        let outs = outputs(&commands);
        let dir = example_dir(&outs);
        ran += 1;
        for (c, written) in commands.iter().zip(&ex.commands) {
            let r = run(c, dir.path());
            let what = format!("README.md:{}: `{written}` (ran `{c}`)", ex.line);
            match allowed {
                Some((text, _, Instead::NeedsGpu(message))) => {
                    used_allowed.insert(*text);
                    if gpu_present() {
                        if r.code != Some(0) {
                            failures.push(format!(
                                "{what}: exit {:?} with a GPU present\n{}",
                                r.code,
                                tail(&r.stderr)
                            ));
                        }
                    } else if r.code != Some(2)
                        || !r.stderr.contains(message)
                        || r.stderr.lines().count() != 1
                    {
                        failures.push(format!(
                            "{what}: without a GPU it must exit 2 with one line saying `{message}`; it exited \
                             {:?}:\n{}",
                            r.code,
                            tail(&r.stderr)
                        ));
                    }
                }
                _ => {
                    if r.code != Some(0) {
                        failures.push(format!(
                            "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
                            r.code,
                            tail(&r.stdout),
                            tail(&r.stderr)
                        ));
                        break;
                    }
                }
            }
        }
    }
    for (from, _, _) in SUBSTITUTIONS {
        if !used_subs.contains(from) {
            failures.push(format!(
                "SUBSTITUTIONS: no README example contains `{from}` any more: remove the entry"
            ));
        }
    }
    for (text, _, _) in ALLOWED {
        if !used_allowed.contains(text) {
            failures.push(format!(
                "ALLOWED: no README example is `{text}` any more: remove or update the entry"
            ));
        }
    }
    for (name, _) in FIXTURES {
        if !used_fixtures.contains(name) {
            failures.push(format!(
                "FIXTURES: no README example names `{name}` any more: remove the entry"
            ));
        }
    }
    eprintln!(
        "{} README examples, {ran} run, {} allowed without running",
        all.len(),
        ALLOWED
            .iter()
            .filter(|(_, _, i)| matches!(i, Instead::NotRun))
            .count()
    );
    assert!(
        failures.is_empty(),
        "{} of the README's examples fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The README shows a chat session with a converted golden model, and it is what ossify prints for those commands:
/// the same prompt size, number of generated tokens and stop reason (timings aside). The generated text itself,
/// sampled from a random model, is not compared: a last-bit difference in another CPU's float sums may change a
/// sampled token.
#[test]
fn readme_chat_session_is_what_ossify_prints() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let session = examples(&readme)
        .into_iter()
        .find(|e| e.commands.len() > 1 && e.commands.iter().any(|c| c.contains("ossify chat")))
        .expect("README.md shows no chat session (a block of `$ ` commands with `ossify chat`)");
    assert!(
        session.commands[0].starts_with("ossify convert golden/"),
        "the session starts from a golden checkpoint: {:?}",
        session.commands
    );
    // The lines the README shows after the last command.
    let shown: Vec<&str> = readme
        .lines()
        .skip(session.line)
        .take_while(|l| !l.starts_with("```"))
        .skip_while(|l| l.starts_with("$ "))
        .collect();
    let mut subs = BTreeSet::new();
    let commands: Vec<String> = session
        .commands
        .iter()
        .map(|c| substitute(c, &mut subs))
        .collect();
    let dir = example_dir(&outputs(&commands));
    let mut last = None;
    for c in &commands {
        let r = run(c, dir.path());
        assert_eq!(r.code, Some(0), "`{c}`: {}", r.stderr);
        last = Some(r);
    }
    let r = last.unwrap();
    assert!(
        !r.stdout.trim().is_empty(),
        "`{}` printed no answer",
        commands[commands.len() - 1]
    );
    let timing = regex::Regex::new(r"in \d+ ms \([0-9.]+ tok/s\)").unwrap();
    let stats = |lines: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        lines
            .filter(|l| l.starts_with("[prompt "))
            .map(|l| timing.replace_all(l, "in _ ms (_ tok/s)").into_owned())
            .collect()
    };
    let printed = stats(&mut r.stderr.lines());
    let expected = stats(&mut shown.iter().copied());
    assert_eq!(
        expected.len(),
        1,
        "README's session shows no `[prompt ...]` line: {shown:?}"
    );
    assert_eq!(
        printed, expected,
        "README's chat session differs from what ossify prints now"
    );
}

#[test]
fn words_split_as_the_shell_does() {
    let w = |s: &str| -> Vec<(String, bool)> {
        words(s).into_iter().map(|w| (w.text, w.quoted)).collect()
    };
    assert_eq!(
        w(r#"echo 'a b' | ossify x "c \" d" e\ f  # g.gguf"#),
        vec![
            ("echo".into(), false),
            ("a b".into(), true),
            ("|".into(), false),
            ("ossify".into(), false),
            ("x".into(), false),
            ("c \" d".into(), true),
            ("e f".into(), false),
        ]
    );
    assert_eq!(w("a&&b").len(), 3);
}

#[test]
fn unmapped_paths_are_named() {
    let c = |s: &str| vec![s.to_string()];
    assert!(unmapped(&c("ossify convert path/to/gpt-oss-20b -o new.gguf")).is_empty());
    assert!(unmapped(&c("ossify inspect-weights path/to/gpt-oss-20b/original")).is_empty());
    assert!(unmapped(&c("ossify inspect-weights golden/tiny")).is_empty());
    assert_eq!(
        unmapped(&c("ossify inspect-weights path/to/llama --json")),
        vec!["path/to/llama".to_string()]
    );
    assert_eq!(
        unmapped(&c("ossify perplexity out.gguf --text novel.txt")),
        vec!["novel.txt".to_string()]
    );
    assert_eq!(
        unmapped(&c("ossify inspect-weights golden/no-such-model")),
        vec!["golden/no-such-model".to_string()]
    );
    // Shards of an output are written by it.
    let outs = outputs(&c("ossify convert x -o big.gguf --split-max-size 1G"));
    assert!(is_written("big-00001-of-00002.gguf", &outs));
    assert!(!is_written("big-1-of-2.gguf", &outs));
    assert!(!is_written("bigger.gguf", &outs));
}

#[test]
fn blocks_and_sessions_are_found() {
    let md = "text\n```\nossify a\n\nossify b  # c\n```\n```text\nnot run\n```\n```console\n$ ossify c\nout\n$ ossify d\n```\n";
    let ex = examples(md);
    let got: Vec<(usize, Vec<String>)> = ex.into_iter().map(|e| (e.line, e.commands)).collect();
    assert_eq!(
        got,
        vec![
            (3, vec!["ossify a".to_string()]),
            (5, vec!["ossify b  # c".to_string()]),
            (11, vec!["ossify c".to_string(), "ossify d".to_string()]),
        ]
    );
}
