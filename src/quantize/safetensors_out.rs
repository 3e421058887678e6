//! `--format safetensors`: OpenAI's Hugging Face MXFP4 layout, as openai/gpt-oss-20b ships it.
//!
//! - Expert matrices as `*_blocks` (U8, (E, out, in/32, 16)) + `*_scales` (U8, (E, out, in/32)), rows in the
//!   checkpoint's order, so gate/up rows stay interleaved (row 2i gate, 2i + 1 up). A BF16 fine-tune's experts
//!   are (E, in, out): each output row is a column of that, encoded with the same MXFP4 rule as the GGUF path
//!   and repacked (`repack_ggml_to_hf`), so both decode to identical values.
//! - Every other tensor BF16.
//! - config.json gains `quantization_config` {quant_method: mxfp4, modules_to_not_convert: [...]}.
//! - Shards of at most `shard_bytes` (5 GB by default, as `save_pretrained`), `model-0000i-of-0000n.safetensors`
//!   plus `model.safetensors.index.json`; a model that fits one shard is a single `model.safetensors`.
//! - Tokenizer files, generation config and chat template are copied.
//! - Written into `<dir>.partial/` and renamed to `<dir>` at the end; removed on error.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::quant::{
    self, quantize_row_mxfp4_mse, quantize_row_mxfp4_ref, repack_ggml_to_hf,
};
use ossify_formats::safetensors::{SafetensorsWriter, INDEX_FILE, SINGLE_FILE};
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;
use serde_json::json;

use super::encode::Mxfp4Scale;
use super::pipeline::{progress_bar, QuantizeOptions};
use crate::checkpoint::{Checkpoint, ExpertStorage, Layout};

/// `save_pretrained`'s default `max_shard_size` ("5GB").
pub const DEFAULT_SHARD_BYTES: usize = 5_000_000_000;

/// Files copied next to the weights when the source has them.
const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// `quantization_config.modules_to_not_convert` as in openai/gpt-oss-20b's config.json.
const MODULES_NOT_CONVERTED: &[&str] = &[
    "model.layers.*.self_attn",
    "model.layers.*.mlp.router",
    "model.embed_tokens",
    "lm_head",
];

/// How one output tensor (or MXFP4 pair) is made.
enum Job {
    /// BF16 copy or conversion of a float tensor.
    Bf16 { src: String },
    /// Existing MXFP4 blocks or scales, copied.
    Copy { src: String },
    /// Dense (E, in, out) experts encoded as (blocks, scales) of (E, out, in).
    Experts {
        src: String,
        /// GGUF names whose importance applies to even / odd output rows (gate / up), or to all rows (down).
        importance: (String, String),
    },
}

struct Planned {
    job: Job,
    /// (name, dtype, shape) of the one or two tensors the job writes.
    outputs: Vec<(String, DType, Vec<usize>)>,
}

impl Planned {
    fn nbytes(&self) -> usize {
        self.outputs
            .iter()
            .map(|(_, d, s)| d.nbytes(s.iter().product()).unwrap_or(0))
            .sum()
    }
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("model.layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn plan(ckpt: &Checkpoint) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for name in ckpt.tensor_names() {
        let t = ckpt.tensor(name)?;
        let dense_expert = matches!(ckpt.experts, ExpertStorage::Dense(_))
            && (name.ends_with(".mlp.experts.gate_up_proj")
                || name.ends_with(".mlp.experts.down_proj"));
        if dense_expert {
            let [e, n_in, n_out] = t.shape[..] else {
                bail!(
                    "tensor '{name}': expected (experts, in, out), found {:?}",
                    t.shape
                );
            };
            if n_in % 32 != 0 {
                bail!(
                    "tensor '{name}' {:?}: MXFP4 cannot hold rows of {n_in} (not a multiple of 32)",
                    t.shape
                );
            }
            let layer = layer_of(name).ok_or_else(|| anyhow!("tensor '{name}': no layer index"))?;
            let importance = if name.ends_with("gate_up_proj") {
                (
                    format!("blk.{layer}.ffn_gate_exps.weight"),
                    format!("blk.{layer}.ffn_up_exps.weight"),
                )
            } else {
                let d = format!("blk.{layer}.ffn_down_exps.weight");
                (d.clone(), d)
            };
            out.push(Planned {
                job: Job::Experts {
                    src: name.to_string(),
                    importance,
                },
                outputs: vec![
                    (
                        format!("{name}_blocks"),
                        DType::U8,
                        vec![e, n_out, n_in / 32, 16],
                    ),
                    (
                        format!("{name}_scales"),
                        DType::U8,
                        vec![e, n_out, n_in / 32],
                    ),
                ],
            });
        } else if t.dtype == DType::U8 {
            out.push(Planned {
                job: Job::Copy {
                    src: name.to_string(),
                },
                outputs: vec![(name.to_string(), DType::U8, t.shape.clone())],
            });
        } else if matches!(t.dtype, DType::BF16 | DType::F16 | DType::F32) {
            out.push(Planned {
                job: Job::Bf16 {
                    src: name.to_string(),
                },
                outputs: vec![(name.to_string(), DType::BF16, t.shape.clone())],
            });
        } else {
            bail!(
                "tensor '{name}': {} cannot be written as BF16 or MXFP4",
                t.dtype
            );
        }
    }
    Ok(out)
}

/// Encodes dense experts (E, in, out) as HF MXFP4 (blocks, scales) of (E, out, in).
fn encode_experts(
    name: &str,
    t: &TensorView<'_>,
    importance: &(String, String),
    opts: &QuantizeOptions,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let [n_exp, n_in, n_out] = t.shape[..] else {
        bail!("tensor '{name}': expected 3 dimensions");
    };
    let esize = t.dtype.type_size();
    if t.bytes.len() != n_exp * n_in * n_out * esize {
        bail!(
            "tensor '{name}': {} bytes for {:?} {}",
            t.bytes.len(),
            t.shape,
            t.dtype
        );
    }
    let nb = n_in / 32;
    let imp: Vec<[Option<Vec<f32>>; 2]> = (0..n_exp)
        .map(|e| {
            let get = |n: &str| {
                opts.imatrix
                    .as_ref()
                    .filter(|_| opts.mxfp4_scale == Mxfp4Scale::Mse)
                    .and_then(|m| m.expert(n, e))
                    .filter(|v| v.len() == n_in)
            };
            [get(&importance.0), get(&importance.1)]
        })
        .collect();
    let mut blocks = vec![0u8; n_exp * n_out * nb * 16];
    let mut scales = vec![0u8; n_exp * n_out * nb];
    blocks
        .par_chunks_mut(nb * 16)
        .zip(scales.par_chunks_mut(nb))
        .enumerate()
        .try_for_each(|(row, (b, s))| -> Result<()> {
            let (e, o) = (row / n_out, row % n_out);
            let mut x = vec![0f32; n_in];
            for (i, v) in x.iter_mut().enumerate() {
                let at = ((e * n_in + i) * n_out + o) * esize;
                quant::dequantize_row(t.dtype, &t.bytes[at..at + esize], std::slice::from_mut(v))?;
            }
            let mut ggml = vec![0u8; nb * 17];
            match opts.mxfp4_scale {
                Mxfp4Scale::Ref => quantize_row_mxfp4_ref(&x, &mut ggml),
                Mxfp4Scale::Mse => {
                    let w = imp.get(e).and_then(|p| p[o % 2].as_deref());
                    quantize_row_mxfp4_mse(&x, w, &mut ggml)
                }
            }
            repack_ggml_to_hf(&ggml, b, s)?;
            Ok(())
        })
        .with_context(|| format!("tensor '{name}'"))?;
    Ok((blocks, scales))
}

fn to_bf16(name: &str, t: &TensorView<'_>) -> Result<Vec<u8>> {
    if t.dtype == DType::BF16 {
        return Ok(t.bytes.to_vec());
    }
    let n = t.n_elements();
    let mut f = vec![0f32; n];
    quant::dequantize_row(t.dtype, t.bytes, &mut f).with_context(|| format!("tensor '{name}'"))?;
    let mut out = vec![0u8; 2 * n];
    quant::quantize_row(DType::BF16, &f, &mut out).with_context(|| format!("tensor '{name}'"))?;
    Ok(out)
}

/// Removes the partial folder unless disarmed.
struct PartialDir(Option<PathBuf>);

impl Drop for PartialDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Writes `input` (an HF folder) as OpenAI-layout MXFP4 safetensors into the folder `output`.
pub fn quantize_to_safetensors(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    shard_bytes: usize,
) -> Result<usize> {
    let ckpt = Checkpoint::open(input, None)?;
    if ckpt.layout != Layout::Hf {
        bail!(
            "{}: --format safetensors reads a Hugging Face folder (this is {} layout)",
            input.display(),
            ckpt.layout
        );
    }
    if output.exists() {
        bail!("{}: already exists; not overwriting", output.display());
    }
    let jobs = plan(&ckpt).with_context(|| format!("{}", input.display()))?;

    // Shards: in order, a new one whenever the next job would pass the limit (a pair stays together).
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0usize;
    for (i, j) in jobs.iter().enumerate() {
        let n = j.nbytes();
        if used > 0 && used + n > shard_bytes {
            shards.push(Vec::new());
            used = 0;
        }
        used += n;
        if let Some(s) = shards.last_mut() {
            s.push(i);
        }
    }
    let n_shards = shards.len();
    let shard_name = |k: usize| {
        if n_shards == 1 {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", k + 1, n_shards)
        }
    };

    let partial = PathBuf::from(format!("{}.partial", output.display()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("{}: removing a stale partial output", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| partial.display().to_string())?;
    let mut guard = PartialDir(Some(partial.clone()));

    let bar = progress_bar(opts.progress, jobs.len());
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for (k, members) in shards.iter().enumerate() {
        let file = partial.join(shard_name(k));
        let mut w = SafetensorsWriter::new();
        w.add_metadata("format", "pt");
        let mut index = Vec::new();
        for &i in members {
            let mut ids = Vec::new();
            for (name, dtype, shape) in &jobs[i].outputs {
                ids.push(w.add_tensor(name, *dtype, shape)?);
                weight_map.insert(name.clone(), json!(shard_name(k)));
            }
            index.push((i, ids));
        }
        let out = w.create(&file)?;
        for (i, ids) in index {
            let job = &jobs[i];
            let src_name = match &job.job {
                Job::Bf16 { src } | Job::Copy { src } | Job::Experts { src, .. } => src,
            };
            bar.set_message(src_name.clone());
            let t = ckpt.tensor(src_name)?;
            let bufs: Vec<Vec<u8>> = match &job.job {
                Job::Bf16 { .. } => vec![to_bf16(src_name, &t)?],
                Job::Copy { .. } => vec![t.bytes.to_vec()],
                Job::Experts { importance, .. } => {
                    let (b, s) = encode_experts(src_name, &t, importance, opts)?;
                    vec![b, s]
                }
            };
            for (id, b) in ids.iter().zip(&bufs) {
                out.write_tensor(*id, b)?;
                total += b.len();
            }
            bar.inc(1);
        }
        out.finish()?;
    }
    bar.finish_and_clear();
    if n_shards > 1 {
        let index = json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
        write_json(&partial.join(INDEX_FILE), &index)?;
    }
    write_config(&ckpt, input, &partial.join("config.json"))?;
    let from = ckpt
        .tokenizer_dir
        .clone()
        .unwrap_or_else(|| input.to_path_buf());
    for f in COPIED_FILES {
        let src = from.join(f);
        if src.is_file() {
            std::fs::copy(&src, partial.join(f))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    std::fs::rename(&partial, output)
        .with_context(|| format!("renaming {} to {}", partial.display(), output.display()))?;
    guard.0 = None;
    Ok(total)
}

fn write_config(ckpt: &Checkpoint, input: &Path, to: &Path) -> Result<()> {
    let path = ckpt
        .config_path
        .clone()
        .unwrap_or_else(|| input.join("config.json"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| anyhow!("{}: not a JSON object", path.display()))?;
    obj.insert(
        "quantization_config".into(),
        json!({ "modules_to_not_convert": MODULES_NOT_CONVERTED, "quant_method": "mxfp4" }),
    );
    write_json(to, &cfg)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    std::fs::write(path, s).with_context(|| path.display().to_string())
}
