//! `ossify convert SRC -o OUT`: an HF or original checkpoint to a GGUF that equals, byte for byte in every tensor
//! and every metadata value llama.cpp reads, what llama.cpp's own converter writes.
//!
//! Streaming: the source is memory-mapped and every tensor goes out in pieces of a few MiB, each written at its
//! planned offset by a writer thread while the next piece is made, through a channel of capacity two:
//!
//! - A tensor the conversion leaves unchanged (BF16 embeddings, attention and `lm_head` into a BF16 GGUF: most
//!   of the bytes) is written straight from the map, with no copy in user space, after a scan for NaNs (the
//!   one value the encoders would change; a piece holding one takes the full path, so the bytes stay exact).
//! - Any other piece (MXFP4 repacks, type changes, gate/up splits, transposes) is made with its rows spread over
//!   the thread pool into one of a few reused buffers.
//!
//! Each source range is released from the resident set once consumed ([`Checkpoint::release`]), so memory
//! stays at a few pieces whatever the model size. Rows are independent and land at planned offsets, so the
//! output is the same at any thread count. Output goes to `<out>.partial` and is renamed when complete.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use ossify_formats::atomic::{Existing, Kind};
use ossify_formats::gguf::constants::{self as k, ARCH_GPT_OSS};
use ossify_formats::gguf::{GgufWriter, MetaArray, MetaValue, SplitRule};

use crate::checkpoint::{Checkpoint, Layout};
use crate::gpt_oss::{AttentionKind, GptOssConfig};
use crate::plan::{OutType, Plan};
use crate::stream::{drive, Job, PlanJob};
use crate::tokenizer::GgufVocab;

/// Options of `ossify convert`.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub src: PathBuf,
    pub out: PathBuf,
    pub outtype: OutType,
    pub layout: Option<Layout>,
    /// 0 = rayon's default (all cores).
    pub threads: usize,
    pub json: bool,
    /// Show a progress bar (only honoured on a terminal).
    pub progress: bool,
    /// Bytes per streamed piece; 0 = the defaults. The output is the same at any size (tests use tiny pieces).
    pub piece_bytes: usize,
    /// Cut the output into a split GGUF (`--split-max-size` / `--split-max-tensors`).
    pub split: SplitRule,
    /// Replace an existing output file (never an input).
    pub force: bool,
}

/// What a conversion did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvertSummary {
    pub source: String,
    pub layout: String,
    pub output: String,
    pub outtype: String,
    pub file_type: u32,
    pub tensors: usize,
    pub tensor_bytes: u64,
    /// The files written: `output` itself, or the shards of a split GGUF, first to last.
    pub files: Vec<String>,
    /// All the files' bytes.
    pub file_bytes: u64,
    pub seconds: f64,
}

/// Runs a conversion and returns its summary.
pub fn convert(opts: &ConvertOptions) -> Result<ConvertSummary> {
    let start = Instant::now();
    super::check_output(&opts.out, Kind::File, opts.force, &[&opts.src])?;
    let ckpt = Checkpoint::open(&opts.src, opts.layout)?;
    let plan = Plan::new(&ckpt, opts.outtype)?;

    let mut w = GgufWriter::new();
    for (key, value) in metadata(&ckpt, &plan)? {
        w.add_kv(&key, value)
            .with_context(|| format!("{}: metadata key '{key}'", opts.out.display()))?;
    }
    let mut tensor_bytes = 0u64;
    for t in &plan.tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape)
            .with_context(|| format!("{}: tensor '{}'", opts.out.display(), t.name))?;
        tensor_bytes += t.nbytes() as u64;
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("starting the thread pool")?;
    let output = w
        .create_split(&opts.out, opts.split, Existing::from_force(opts.force))
        .with_context(|| format!("{}", opts.out.display()))?;
    let bar = progress_bar(opts, tensor_bytes);

    let jobs: Vec<Box<dyn Job<'_> + '_>> = plan
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Box::new(PlanJob::new(t, &ckpt, i)) as Box<dyn Job<'_> + '_>)
        .collect();
    let piece_bytes = match opts.piece_bytes {
        0 => PIECE_BYTES,
        n => n,
    };
    let bar = bar.unwrap_or_else(ProgressBar::hidden);
    let written = pool.install(|| drive(&jobs, &output, piece_bytes, &|b| ckpt.release(b), &bar));
    bar.finish_and_clear();
    // On error `output` is dropped here, which removes `<out>.partial` (every shard's).
    written.with_context(|| format!("converting into {}", opts.out.display()))?;
    let files: Vec<PathBuf> = output.paths().iter().map(|p| p.to_path_buf()).collect();
    output
        .finish()
        .with_context(|| format!("{}", opts.out.display()))?;
    let file_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    Ok(ConvertSummary {
        source: ckpt.path.display().to_string(),
        layout: ckpt.layout.to_string(),
        output: opts.out.display().to_string(),
        outtype: plan.outtype.name().to_string(),
        file_type: plan.file_type,
        tensors: plan.tensors.len(),
        tensor_bytes,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        file_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Output bytes per piece. Small enough that a piece the producer just made (or scanned) is still in the CPU
/// cache when the writer copies it into the page cache: on the 4 GB benchmark 2 MiB pieces took about a quarter
/// less CPU than 32 MiB ones (1 MiB was no better); and the few in flight stay far under the memory budget.
const PIECE_BYTES: usize = 2 << 20;

/// Runs `ossify convert` and prints its summary.
pub fn run(opts: &ConvertOptions) -> Result<()> {
    let s = convert(opts)?;
    if opts.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "wrote {}: {} tensors, {:.1} MiB, outtype {} (general.file_type {}), from {} layout {} in {:.2} s",
            match s.files.as_slice() {
                [one] => one.clone(),
                [first, .., last] => format!("{} files, {first} to {last}", s.files.len()),
                [] => s.output.clone(),
            },
            s.tensors,
            s.file_bytes as f64 / (1024.0 * 1024.0),
            s.outtype,
            s.file_type,
            s.layout,
            s.source,
            s.seconds
        )?;
    }
    Ok(())
}

fn progress_bar(opts: &ConvertOptions, total: u64) -> Option<indicatif::ProgressBar> {
    if !opts.progress || opts.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Every metadata key/value, in the order llama.cpp's converter writes them (gguf-py `GGUFWriter`,
/// conversion/base.py `TextModel.set_gguf_parameters`, conversion/gpt_oss.py `GptOssModel.set_gguf_parameters`),
/// with the same GGUF value types.
pub fn metadata(ckpt: &Checkpoint, plan: &Plan) -> Result<Vec<(String, MetaValue)>> {
    let c = &ckpt.config;
    let a = |t: &str| k::key(t, ARCH_GPT_OSS);
    let u32v = |n: usize, what: &str| -> Result<MetaValue> {
        u32::try_from(n)
            .map(MetaValue::U32)
            .map_err(|_| anyhow!("{what} = {n} does not fit GGUF's u32"))
    };
    let mut kv: Vec<(String, MetaValue)> = vec![
        (
            k::GENERAL_ARCHITECTURE.into(),
            MetaValue::String(ARCH_GPT_OSS.into()),
        ),
        (k::GENERAL_TYPE.into(), MetaValue::String("model".into())),
        (k::GENERAL_NAME.into(), MetaValue::String(model_name(ckpt))),
        (
            a(k::LLM_BLOCK_COUNT),
            u32v(c.num_hidden_layers, "num_hidden_layers")?,
        ),
        (
            a(k::LLM_CONTEXT_LENGTH),
            u32v(c.max_position_embeddings, "max_position_embeddings")?,
        ),
        (
            a(k::LLM_EMBEDDING_LENGTH),
            u32v(c.hidden_size, "hidden_size")?,
        ),
        (
            a(k::LLM_FEED_FORWARD_LENGTH),
            u32v(c.intermediate_size, "intermediate_size")?,
        ),
        (
            a(k::ATTENTION_HEAD_COUNT),
            u32v(c.num_attention_heads, "num_attention_heads")?,
        ),
        (
            a(k::ATTENTION_HEAD_COUNT_KV),
            u32v(c.num_key_value_heads, "num_key_value_heads")?,
        ),
    ];
    if let Some(r) = &c.rope_scaling {
        kv.push((a(k::ROPE_SCALING_TYPE), MetaValue::String("yarn".into())));
        kv.push((a(k::ROPE_SCALING_FACTOR), MetaValue::F32(r.factor as f32)));
        kv.push((
            a(k::ROPE_SCALING_ORIG_CTX_LEN),
            u32v(
                r.original_max_position_embeddings,
                "original_max_position_embeddings",
            )?,
        ));
        kv.push((
            a(k::ROPE_SCALING_YARN_BETA_FAST),
            MetaValue::F32(r.beta_fast as f32),
        ));
        kv.push((
            a(k::ROPE_SCALING_YARN_BETA_SLOW),
            MetaValue::F32(r.beta_slow as f32),
        ));
    }
    kv.push((a(k::ROPE_FREQ_BASE), MetaValue::F32(c.rope_theta as f32)));
    kv.push((
        a(k::ATTENTION_LAYERNORM_RMS_EPS),
        MetaValue::F32(c.rms_norm_eps as f32),
    ));
    kv.push((
        a(k::EXPERT_COUNT),
        u32v(c.num_local_experts, "num_local_experts")?,
    ));
    kv.push((
        a(k::EXPERT_USED_COUNT),
        u32v(c.num_experts_per_tok, "num_experts_per_tok")?,
    ));
    kv.push((a(k::ATTENTION_KEY_LENGTH), u32v(c.head_dim, "head_dim")?));
    kv.push((a(k::ATTENTION_VALUE_LENGTH), u32v(c.head_dim, "head_dim")?));
    kv.push((k::GENERAL_FILE_TYPE.into(), MetaValue::U32(plan.file_type)));
    kv.push((
        a(k::ATTENTION_SLIDING_WINDOW),
        u32v(c.sliding_window, "sliding_window")?,
    ));
    kv.push((
        a(k::EXPERT_FEED_FORWARD_LENGTH),
        u32v(c.intermediate_size, "intermediate_size")?,
    ));
    if let Some(pattern) = sliding_window_pattern(c) {
        kv.push((
            a(k::ATTENTION_SLIDING_WINDOW_PATTERN),
            MetaValue::Array(MetaArray::Bool(pattern)),
        ));
    }
    kv.push((
        k::GENERAL_QUANTIZATION_VERSION.into(),
        MetaValue::U32(k::GGML_QUANT_VERSION),
    ));
    kv.extend(vocab_metadata(ckpt)?);
    Ok(kv)
}

/// llama.cpp's converter writes no layer layout: llama.cpp then assumes even layers slide
/// (src/models/openai-moe.cpp `load_swa_pattern(ml, 2)`). That same loader first reads
/// `gpt-oss.attention.sliding_window_pattern` as a per-layer bool array, so a checkpoint with any other
/// `layer_types` gets that array (true = sliding) and stays exact; the default layout gets nothing, so the file
/// equals llama.cpp's.
pub fn sliding_window_pattern(c: &GptOssConfig) -> Option<Vec<bool>> {
    if c.has_default_layer_types() {
        return None;
    }
    Some(
        c.layer_types
            .iter()
            .map(|t| *t == AttentionKind::Sliding)
            .collect(),
    )
}

/// `general.name`: the model folder's name (for `original/`, its parent's), as gguf-py falls back to.
fn model_name(ckpt: &Checkpoint) -> String {
    let dir = match ckpt.layout {
        Layout::Original => ckpt.path.parent().unwrap_or(&ckpt.path),
        _ => &ckpt.path,
    };
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gpt-oss".into())
}

/// The tokenizer key/values, as llama.cpp's `_set_vocab_gpt2` + gguf-py's `SpecialVocab` write them
/// (`GgufVocab::to_metadata`).
fn vocab_metadata(ckpt: &Checkpoint) -> Result<Vec<(String, MetaValue)>> {
    let Some(dir) = &ckpt.tokenizer_dir else {
        bail!(
            "{}: no tokenizer.json here{}; a GGUF needs the vocabulary",
            ckpt.path.display(),
            if ckpt.layout == Layout::Original {
                " or in the parent folder"
            } else {
                ""
            }
        );
    };
    let v = GgufVocab::from_dir(dir, ckpt.config.vocab_size)
        .with_context(|| format!("{}: reading the tokenizer", dir.display()))?;
    Ok(v.to_metadata())
}
