//! `ossify inspect-weights PATH`: layout, architecture summary and tensor table of a GGUF, one .safetensors or a
//! checkpoint folder (any layout). Without `--stats` only headers are read (instant on a 13 GB checkpoint);
//! with it every tensor is decoded over the memory map, in parallel, into min / max / mean / std and NaN / Inf
//! counts, and MXFP4 tensors add their scale-exponent histogram and the share of codes at ±6 (saturation).
//!
//! A GGUF's key/value metadata is listed as gguf-py's `gguf-dump` lists it (type, count, key, value; long arrays
//! cut to their first items; strings escaped), and in full in `--json`. Shapes are printed outermost dimension
//! first (numpy / safetensors order), the reverse of GGUF's `ne` that gguf-dump prints; both outputs say so.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ossify_formats::gguf::{GgufModel, MetaArray, MetaValue};
use ossify_formats::quant;
use ossify_formats::safetensors::SafetensorsModel;
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;
use serde::Serialize;

use crate::checkpoint::{config_from_gguf, detect_layout, Checkpoint, Layout};
use crate::gpt_oss::config::read_json;
use crate::gpt_oss::names;
use crate::gpt_oss::{AttentionKind, GptOssConfig};

#[derive(Clone, Debug)]
pub struct InspectOptions {
    pub path: PathBuf,
    pub stats: bool,
    pub layout: Option<Layout>,
    pub threads: usize,
    pub json: bool,
    /// A progress bar for --stats on standard error (only on a terminal).
    pub progress: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Architecture {
    pub layers: usize,
    pub experts: usize,
    pub experts_per_token: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub context: usize,
    pub sliding_window: usize,
    /// "S" sliding, "F" full, one letter per layer.
    pub layer_types: String,
    pub rope_theta: f64,
    pub rope_scaling: Option<String>,
}

impl Architecture {
    fn of(c: &GptOssConfig) -> Architecture {
        Architecture {
            layers: c.num_hidden_layers,
            experts: c.num_local_experts,
            experts_per_token: c.num_experts_per_tok,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            hidden: c.hidden_size,
            intermediate: c.intermediate_size,
            vocab: c.vocab_size,
            context: c.max_position_embeddings,
            sliding_window: c.sliding_window,
            layer_types: c
                .layer_types
                .iter()
                .map(|t| {
                    if *t == AttentionKind::Sliding {
                        'S'
                    } else {
                        'F'
                    }
                })
                .collect(),
            rope_theta: c.rope_theta,
            rope_scaling: c.rope_scaling.as_ref().map(|r| {
                format!(
                    "yarn factor {} original context {} beta_fast {} beta_slow {}",
                    r.factor, r.original_max_position_embeddings, r.beta_fast, r.beta_slow
                )
            }),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TensorStats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub nan: u64,
    pub inf: u64,
    /// MXFP4 only: scale exponent (e8m0 byte − 127) → number of blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_exponents: Option<BTreeMap<i32, u64>>,
    /// MXFP4 only: share of 4-bit codes that are ±6, the largest magnitude.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_at_6: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: usize,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<TensorStats>,
}

/// The order of every `shape` in the report: outermost (slowest-varying) dimension first, as numpy, PyTorch and
/// safetensors write shapes. GGUF stores `ne`, innermost first (what gguf-dump prints): the reverse.
pub const SHAPE_ORDER: &str = "outermost-first";

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub path: String,
    pub layout: String,
    pub architecture: Option<Architecture>,
    pub total_bytes: u64,
    /// The files of a split GGUF, first to last (empty otherwise); each tensor's `file` says which holds it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<Shard>,
    /// A GGUF's header (of the file holding the metadata: the first shard of a split set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufHeader>,
    /// A GGUF's key/value pairs, in file order, whole (`split.*` keys included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<MetaEntry>,
    /// [`SHAPE_ORDER`].
    pub shape_order: &'static str,
    pub tensors: Vec<TensorRow>,
}

/// What gguf-py's reader shows as the `GGUF.version`, `GGUF.tensor_count` and `GGUF.kv_count` fields.
#[derive(Clone, Debug, Serialize)]
pub struct GgufHeader {
    pub version: u32,
    pub tensor_count: usize,
    pub kv_count: usize,
}

/// One metadata key/value. `type` is gguf-py's name of the value type (`UINT32`, `STRING`, `ARRAY`, ...); an
/// array also has its `element_type` and `length`, and `value` holds every item.
#[derive(Clone, Debug, Serialize)]
pub struct MetaEntry {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    pub value: MetaValue,
}

impl MetaEntry {
    fn of(key: &str, value: &MetaValue) -> MetaEntry {
        let array = value.as_array();
        MetaEntry {
            key: key.to_string(),
            value_type: value.value_type().gguf_py_name(),
            element_type: array.map(|a| a.element_type().gguf_py_name()),
            length: array.map(|a| a.len()),
            value: value.clone(),
        }
    }

    /// One line as gguf-dump prints a field: `  {n:5}: {type:10} | {count:8} | {key} = {value}`, the count
    /// being gguf-py's (1 for a scalar or string, the items of an array; the innermost items of nested arrays).
    fn dump_line(&self, n: usize) -> String {
        fn leaves(a: &MetaArray) -> usize {
            match a {
                MetaArray::Array(v) => v.iter().map(leaves).sum(),
                other => other.len(),
            }
        }
        let (ty, count) = match self.value.as_array() {
            Some(a) => (a.dump_type(), leaves(a)),
            None => (self.value_type.to_string(), 1),
        };
        format!(
            "  {n:5}: {ty:10} | {count:8} | {} = {}",
            self.key,
            self.value.dump()
        )
    }
}

/// One file of a split GGUF.
#[derive(Clone, Debug, Serialize)]
pub struct Shard {
    pub file: String,
    pub tensors: usize,
    /// The file's size.
    pub bytes: u64,
}

/// Builds the report.
pub fn inspect(opts: &InspectOptions) -> Result<Report> {
    let path = &opts.path;
    let is_safetensors_file = path.is_file()
        && path.extension().is_some_and(|e| e == "safetensors")
        && opts.layout.is_none();
    if is_safetensors_file {
        return inspect_safetensors_file(path, opts);
    }
    let layout = match opts.layout {
        Some(l) => l,
        None => detect_layout(path)?,
    };
    if layout == Layout::Gguf {
        return inspect_gguf(path, opts);
    }
    let ckpt = Checkpoint::open(path, Some(layout))?;
    let names = ckpt.tensor_names();
    let views: Vec<TensorView<'_>> = names.iter().filter_map(|n| ckpt.get(n)).collect();
    let files: Vec<String> = names
        .iter()
        .map(|n| ckpt.file_of(n).map(file_label).unwrap_or_default())
        .collect();
    let rows = table(&views, &files, opts)?;
    Ok(Report {
        path: path.display().to_string(),
        layout: ckpt.layout.to_string(),
        architecture: Some(Architecture::of(&ckpt.config)),
        total_bytes: rows.iter().map(|r| r.bytes as u64).sum(),
        shards: Vec::new(),
        gguf: None,
        metadata: Vec::new(),
        shape_order: SHAPE_ORDER,
        tensors: rows,
    })
}

/// A GGUF file: the format is validated in full, but the model need not be a complete gpt-oss (any
/// architecture's tensors are listed; the summary appears when the metadata describes gpt-oss).
fn inspect_gguf(path: &Path, opts: &InspectOptions) -> Result<Report> {
    let model = GgufModel::open(path)?;
    // Another architecture's file is listed without a summary; a gpt-oss file whose metadata is broken is
    // bad input like any other.
    let is_gpt_oss = model.architecture() == Some(ossify_formats::gguf::constants::ARCH_GPT_OSS);
    let architecture = match config_from_gguf(&model, path) {
        Ok(c) => Some(Architecture::of(&c)),
        Err(e) if is_gpt_oss => return Err(e),
        Err(_) => None,
    };
    let views: Vec<TensorView<'_>> = model.tensor_views().collect();
    let files: Vec<String> = views
        .iter()
        .map(|v| model.path_of(&v.name).map(file_label).unwrap_or_default())
        .collect();
    let rows = table(&views, &files, opts)?;
    let shards = if model.is_split() {
        model
            .paths()
            .iter()
            .zip(model.shards())
            .map(|(p, s)| Shard {
                file: file_label(p),
                tensors: s.tensors.len(),
                bytes: std::fs::metadata(p).map_or(0, |m| m.len()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let first = model.first();
    let gguf = GgufHeader {
        version: first.version,
        tensor_count: first.tensors.len(),
        kv_count: first.metadata.len(),
    };
    let metadata = model
        .metadata()
        .iter()
        .map(|(k, v)| MetaEntry::of(k, v))
        .collect();
    Ok(Report {
        path: path.display().to_string(),
        layout: Layout::Gguf.to_string(),
        architecture,
        total_bytes: rows.iter().map(|r| r.bytes as u64).sum(),
        shards,
        gguf: Some(gguf),
        metadata,
        shape_order: SHAPE_ORDER,
        tensors: rows,
    })
}

/// A lone .safetensors file: its tensors; the architecture if a config.json beside it says gpt-oss.
fn inspect_safetensors_file(path: &Path, opts: &InspectOptions) -> Result<Report> {
    let model = SafetensorsModel::open(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let cfg_path = dir.join("config.json");
    let (layout, architecture) = match detect_layout(dir) {
        Ok(l @ (Layout::Hf | Layout::Original)) => {
            let json = read_json(&cfg_path)?;
            let c = if l == Layout::Hf {
                GptOssConfig::from_hf_json(&json, &cfg_path)?
            } else {
                GptOssConfig::from_original_json(&json, &cfg_path)?
            };
            (format!("{l} (one file)"), Some(Architecture::of(&c)))
        }
        _ => ("safetensors".to_string(), None),
    };
    let views: Vec<TensorView<'_>> = model
        .entries()
        .iter()
        .filter_map(|e| model.view(e))
        .collect();
    let files = vec![file_label(path); views.len()];
    let rows = table(&views, &files, opts)?;
    Ok(Report {
        path: path.display().to_string(),
        layout,
        architecture,
        total_bytes: rows.iter().map(|r| r.bytes as u64).sum(),
        shards: Vec::new(),
        gguf: None,
        metadata: Vec::new(),
        shape_order: SHAPE_ORDER,
        tensors: rows,
    })
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn table(
    views: &[TensorView<'_>],
    files: &[String],
    opts: &InspectOptions,
) -> Result<Vec<TensorRow>> {
    let stats: Vec<Option<TensorStats>> = if opts.stats {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .context("starting the thread pool")?;
        let total: usize = views.iter().map(|v| v.bytes.len()).sum();
        let bar = crate::progress::bar(
            opts.progress,
            total as u64,
            "statistics",
            crate::progress::Unit::Bytes,
        );
        let stats = pool.install(|| {
            views
                .par_iter()
                .map(|v| {
                    let s = tensor_stats(v, views).map(Some);
                    bar.inc(v.bytes.len() as u64);
                    s
                })
                .collect::<Result<Vec<_>>>()
        });
        bar.finish_and_clear();
        stats?
    } else {
        vec![None; views.len()]
    };
    Ok(views
        .iter()
        .zip(files)
        .zip(stats)
        .map(|((v, f), s)| TensorRow {
            name: v.name.clone(),
            dtype: v.dtype.to_string(),
            shape: v.shape.clone(),
            bytes: v.bytes.len(),
            file: f.clone(),
            stats: s,
        })
        .collect())
}

/// Mergeable running statistics (Chan et al.'s parallel variance).
#[derive(Clone, Copy, Debug)]
struct Acc {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            nan: 0,
            inf: 0,
        }
    }
    fn push_all(mut self, xs: &[f32]) -> Acc {
        for &x in xs {
            if x.is_nan() {
                self.nan += 1;
                continue;
            }
            if x.is_infinite() {
                self.inf += 1;
                continue;
            }
            let x = f64::from(x);
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self
    }
    fn merge(self, o: Acc) -> Acc {
        if self.n == 0 {
            return Acc {
                nan: self.nan + o.nan,
                inf: self.inf + o.inf,
                ..o
            };
        }
        if o.n == 0 {
            return Acc {
                nan: self.nan + o.nan,
                inf: self.inf + o.inf,
                ..self
            };
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        Acc {
            n,
            mean: self.mean + d * o.n as f64 / n as f64,
            m2: self.m2 + o.m2 + d * d * (self.n as f64) * (o.n as f64) / n as f64,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan + o.nan,
            inf: self.inf + o.inf,
        }
    }
    fn finish(self) -> TensorStats {
        let has = self.n > 0;
        TensorStats {
            count: self.n + self.nan + self.inf,
            min: if has { self.min } else { 0.0 },
            max: if has { self.max } else { 0.0 },
            mean: self.mean,
            std: if has {
                (self.m2 / self.n as f64).sqrt()
            } else {
                0.0
            },
            nan: self.nan,
            inf: self.inf,
            scale_exponents: None,
            share_at_6: None,
        }
    }
}

/// Rows decoded per work item.
const CHUNK_ELEMENTS: usize = 1 << 16;

fn tensor_stats(v: &TensorView<'_>, all: &[TensorView<'_>]) -> Result<TensorStats> {
    let ctx = || format!("tensor '{}'", v.name);
    // HF / original MXFP4 pairs: decode blocks with their scales; the scales tensor reports its histogram.
    if v.dtype == DType::U8 {
        if let Some(scales) =
            names::mxfp4_scales_of(&v.name).and_then(|s| all.iter().find(|t| t.name == s))
        {
            return hf_mxfp4_stats(v, scales).with_context(ctx);
        }
        if names::is_mxfp4_scales(&v.name) {
            let mut s = Acc::new().finish();
            s.count = v.bytes.len() as u64;
            s.scale_exponents = Some(histogram(v.bytes.iter().copied()));
            return Ok(s);
        }
    }
    if quant::codec(v.dtype).is_none() {
        // Integers: statistics of the raw values.
        let xs = raw_integers(v);
        return Ok(Acc::new().push_all(&xs).finish());
    }
    let bs = v.dtype.block_size();
    let elems = (CHUNK_ELEMENTS / bs).max(1) * bs;
    let chunk_bytes = v.dtype.nbytes(elems).unwrap_or(usize::MAX);
    let acc = v
        .bytes
        .par_chunks(chunk_bytes)
        .map(|c| -> Result<Acc> {
            let n = c.len() / v.dtype.type_size() * bs;
            let mut buf = vec![0f32; n];
            quant::dequantize_row(v.dtype, c, &mut buf)?;
            Ok(Acc::new().push_all(&buf))
        })
        .try_reduce(Acc::new, |a, b| Ok(a.merge(b)))
        .with_context(ctx)?;
    let mut s = acc.finish();
    if v.dtype == DType::Mxfp4 {
        let blocks = quant::split_blocks_mxfp4(v.bytes);
        s.scale_exponents = Some(histogram(blocks.clone().map(|(e, _)| e)));
        let (six, total) = blocks.fold((0u64, 0u64), |(s6, t), (_, qs)| {
            (s6 + quant::count_codes_at_6(qs), t + 2 * qs.len() as u64)
        });
        s.share_at_6 = Some(if total > 0 {
            six as f64 / total as f64
        } else {
            0.0
        });
    }
    Ok(s)
}

fn histogram(scales: impl Iterator<Item = u8>) -> BTreeMap<i32, u64> {
    let mut h = BTreeMap::new();
    for e in scales {
        *h.entry(quant::e8m0_exponent(e)).or_insert(0) += 1;
    }
    h
}

fn hf_mxfp4_stats(blocks: &TensorView<'_>, scales: &TensorView<'_>) -> Result<TensorStats> {
    if blocks.bytes.len() != scales.bytes.len() * quant::QS_MXFP4 {
        anyhow::bail!(
            "{} bytes of blocks do not match {} scale bytes ({} per scale)",
            blocks.bytes.len(),
            scales.bytes.len(),
            quant::QS_MXFP4
        );
    }
    const SCALES_PER_CHUNK: usize = 2048;
    let acc = blocks
        .bytes
        .par_chunks(quant::QS_MXFP4 * SCALES_PER_CHUNK)
        .zip(scales.bytes.par_chunks(SCALES_PER_CHUNK))
        .map(|(b, s)| -> Result<Acc> {
            let mut buf = vec![0f32; s.len() * quant::QK_MXFP4];
            quant::dequantize_row_mxfp4_hf(b, s, &mut buf)?;
            Ok(Acc::new().push_all(&buf))
        })
        .try_reduce(Acc::new, |a, b| Ok(a.merge(b)))?;
    let mut st = acc.finish();
    st.scale_exponents = Some(histogram(scales.bytes.iter().copied()));
    let six = quant::count_codes_at_6(blocks.bytes);
    let total = blocks.bytes.len() as u64 * 2;
    st.share_at_6 = Some(if total > 0 {
        six as f64 / total as f64
    } else {
        0.0
    });
    Ok(st)
}

fn raw_integers(v: &TensorView<'_>) -> Vec<f32> {
    let b = v.bytes;
    match v.dtype {
        DType::U8 | DType::Bool => b.iter().map(|&x| f32::from(x)).collect(),
        DType::I8 => b.iter().map(|&x| f32::from(x as i8)).collect(),
        DType::I16 => b
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        DType::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        DType::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        DType::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs `ossify inspect-weights` and prints the report.
pub fn run(opts: &InspectOptions) -> Result<()> {
    let report = inspect(opts)?;
    let mut out = std::io::stdout().lock();
    if opts.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "path    {}", report.path)?;
    writeln!(out, "layout  {}", report.layout)?;
    if let Some(a) = &report.architecture {
        writeln!(
            out,
            "model   gpt-oss: {} layers ({}), {} experts top-{}, {} heads / {} kv heads × {}, hidden {}, expert ffn {}, vocab {}",
            a.layers, a.layer_types, a.experts, a.experts_per_token, a.heads, a.kv_heads, a.head_dim, a.hidden,
            a.intermediate, a.vocab
        )?;
        writeln!(
            out,
            "        context {}, sliding window {}, rope theta {}{}",
            a.context,
            a.sliding_window,
            a.rope_theta,
            a.rope_scaling
                .as_ref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        )?;
    }
    if let Some(h) = &report.gguf {
        writeln!(
            out,
            "gguf    version {}, {} key/values, {} tensors{} (as gguf-dump lists them: type, count, key = value; \
             arrays cut to their first {} items, --json has them whole)",
            h.version,
            h.kv_count,
            h.tensor_count,
            if report.shards.is_empty() {
                ""
            } else {
                " in the first file"
            },
            ossify_formats::gguf::DUMP_ARRAY_ITEMS
        )?;
        for (i, m) in report.metadata.iter().enumerate() {
            writeln!(out, "{}", m.dump_line(i + 1))?;
        }
    }
    if !report.shards.is_empty() {
        writeln!(out, "split   {} files:", report.shards.len())?;
        for s in &report.shards {
            writeln!(
                out,
                "        {}  {} tensors, {:.1} MiB",
                s.file,
                s.tensors,
                s.bytes as f64 / (1024.0 * 1024.0)
            )?;
        }
    }
    writeln!(
        out,
        "tensors {} ({:.1} MiB); shapes outermost dimension first (numpy / safetensors order){}",
        report.tensors.len(),
        report.total_bytes as f64 / (1024.0 * 1024.0),
        if report.gguf.is_some() {
            ": gguf-dump prints GGUF's ne, the reverse"
        } else {
            ""
        }
    )?;
    let w = report
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<w$}  {:<6} {:<22} {:>12}  file",
        "name", "type", "shape", "bytes"
    )?;
    for t in &report.tensors {
        let shape = format!("{:?}", t.shape);
        writeln!(
            out,
            "{:<w$}  {:<6} {:<22} {:>12}  {}",
            t.name, t.dtype, shape, t.bytes, t.file
        )?;
        if let Some(s) = &t.stats {
            write!(
                out,
                "{:<w$}    min {:.6} max {:.6} mean {:.6} std {:.6} nan {} inf {}",
                "", s.min, s.max, s.mean, s.std, s.nan, s.inf
            )?;
            if let Some(p) = s.share_at_6 {
                write!(out, " at±6 {:.4}%", 100.0 * p)?;
            }
            if let Some(h) = &s.scale_exponents {
                let hs: Vec<String> = h.iter().map(|(e, n)| format!("{e}:{n}")).collect();
                write!(out, " scale-exp {{{}}}", hs.join(" "))?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
