//! The quantize pipeline: decide every tensor's type first (so bad input fails before anything is written),
//! then stream tensors one at a time through [`encode_tensor`] into the output, each one spread over all cores.
//! Memory stays bounded by one tensor's output (plus one f32 row per thread), not by the model.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ossify_formats::atomic::Existing;
use ossify_formats::gguf::constants::{
    GENERAL_FILE_TYPE, GENERAL_QUANTIZATION_VERSION, GGML_QUANT_VERSION,
};
use ossify_formats::gguf::{GgufFile, GgufWriter, MetaValue};
use ossify_formats::DType;

use crate::checkpoint::{detect_layout, Checkpoint, Layout};
use crate::gpt_oss::names;
use crate::plan::{OutType, Plan};

use super::encode::{check_source_len, Mxfp4Scale, TensorEncoder};
use super::imatrix::ImportanceMatrix;
use super::select::{Choice, TypeRules};

/// Source bytes per piece a tensor is encoded and written in: large enough to keep every core busy within a
/// piece, small enough that the resident set stays far below a gigabyte.
pub const PIECE_BYTES: usize = 32 << 20;

/// Produces a source tensor's bytes when it is its turn (borrowed from a memory map, or computed).
pub type Loader<'a> = Box<dyn Fn() -> Result<Cow<'a, [u8]>> + Sync + 'a>;

/// One tensor of the output, named as in the output, with where its data comes from.
pub struct SourceTensor<'a> {
    pub name: String,
    /// Row-major, outermost first.
    pub shape: Vec<usize>,
    /// The type `load` returns the bytes in (ggml block layout for block types).
    pub dtype: DType,
    pub load: Loader<'a>,
}

/// Everything the user chose.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub rules: TypeRules,
    pub allow_requantize: bool,
    /// Quantize NaN / Inf weights instead of refusing them (`--allow-nonfinite`).
    pub allow_nonfinite: bool,
    pub mxfp4_scale: Mxfp4Scale,
    pub imatrix: Option<ImportanceMatrix>,
    pub progress: bool,
    /// What to do about an existing output (`--force` replaces a file, never an input).
    pub existing: Existing,
}

/// What was written, per tensor.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub tensors: Vec<(String, DType, DType)>,
    pub notes: Vec<String>,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// Chooses every output type and checks that the choice can be carried out; the error names the tensor.
pub fn choose_types(sources: &[SourceTensor<'_>], opts: &QuantizeOptions) -> Result<Vec<Choice>> {
    sources
        .iter()
        .map(|s| {
            let c = opts
                .rules
                .choose(&s.name, &s.shape, s.dtype)
                .map_err(anyhow::Error::msg)?;
            if c.dtype != s.dtype && s.dtype.is_quantized() && !opts.allow_requantize {
                bail!(
                    "tensor '{}' is already {} and would be re-quantized to {}; re-quantizing loses accuracy, \
                     pass --allow-requantize to do it anyway",
                    s.name,
                    s.dtype,
                    c.dtype
                );
            }
            let n: usize = s.shape.iter().product();
            if c.dtype.nbytes(n).is_none() {
                bail!("tensor '{}' {:?} cannot be stored as {}", s.name, s.shape, c.dtype);
            }
            Ok(c)
        })
        .collect()
}

/// Writes `sources` as a GGUF at `output` with `metadata` (in order), `general.file_type` set to the preset's
/// and `general.quantization_version` to ggml's, as llama-quantize does (replaced in place when present).
/// Each tensor is encoded and written in pieces of about [`PIECE_BYTES`] of source, through one reused buffer;
/// `release` is handed each source piece once it is written (to drop mapped pages, so the resident set stays
/// about one piece rather than the whole input).
pub fn write_gguf(
    mut metadata: Vec<(String, MetaValue)>,
    sources: &[SourceTensor<'_>],
    output: &Path,
    opts: &QuantizeOptions,
    release: &dyn Fn(&[u8]),
) -> Result<Summary> {
    let choices = choose_types(sources, opts)?;
    set_kv(
        &mut metadata,
        GENERAL_QUANTIZATION_VERSION,
        MetaValue::U32(GGML_QUANT_VERSION),
    );
    set_kv(
        &mut metadata,
        GENERAL_FILE_TYPE,
        MetaValue::U32(opts.rules.preset.ftype),
    );
    let mut w = GgufWriter::new();
    for (k, v) in metadata {
        w.add_kv(&k, v)
            .with_context(|| output.display().to_string())?;
    }
    for (s, c) in sources.iter().zip(&choices) {
        w.add_tensor(&s.name, c.dtype, &s.shape)
            .with_context(|| format!("{}: tensor '{}'", output.display(), s.name))?;
    }
    let out = w.create_with(output, opts.existing)?;
    let mut summary = Summary::default();
    let bar = progress_bar(opts.progress, sources.len());
    // Reused across tensors: the output of one piece.
    let mut buf: Vec<u8> = Vec::new();
    for (i, (s, c)) in sources.iter().zip(&choices).enumerate() {
        bar.set_message(s.name.clone());
        let src = (s.load)()?;
        check_source_len(&s.name, src.len(), s.dtype, &s.shape)?;
        let write = |off: usize, bytes: &[u8]| {
            out.write_tensor_at(i, off, bytes)
                .with_context(|| format!("tensor '{}'", s.name))
        };
        let written = if s.dtype == c.dtype {
            for (k, piece) in src.chunks(PIECE_BYTES).enumerate() {
                write(k * PIECE_BYTES, piece)?;
                release(piece);
            }
            src.len()
        } else {
            let enc = TensorEncoder::new(
                &s.name,
                s.dtype,
                &s.shape,
                c.dtype,
                opts.mxfp4_scale,
                opts.imatrix.as_ref(),
            )?
            .allow_nonfinite(opts.allow_nonfinite);
            let rows_per_piece = (PIECE_BYTES / enc.src_row.max(1)).max(1);
            let mut r0 = 0;
            while r0 < enc.nrows {
                let r1 = (r0 + rows_per_piece).min(enc.nrows);
                let piece = src
                    .get(r0 * enc.src_row..r1 * enc.src_row)
                    .with_context(|| format!("tensor '{}': rows {r0}..{r1}", s.name))?;
                buf.resize((r1 - r0) * enc.dst_row, 0);
                enc.encode_rows(piece, r0, &mut buf)?;
                write(r0 * enc.dst_row, &buf)?;
                release(piece);
                r0 = r1;
            }
            enc.nrows * enc.dst_row
        };
        if let Some(n) = c.note(&s.name) {
            summary.notes.push(n);
        }
        summary.bytes_in += src.len();
        summary.bytes_out += written;
        summary.tensors.push((s.name.clone(), s.dtype, c.dtype));
        bar.inc(1);
    }
    out.finish()?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Quantizes a GGUF file: every tensor and key/value of `input`, in its order, as llama-quantize does.
pub fn quantize_gguf(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<Summary> {
    let f = GgufFile::open(input)?;
    let sources: Vec<SourceTensor<'_>> = f
        .tensors
        .iter()
        .map(|ti| {
            let f = &f;
            SourceTensor {
                name: ti.name.clone(),
                shape: ti.shape.clone(),
                dtype: ti.dtype,
                load: Box::new(move || Ok(Cow::Borrowed(f.tensor_bytes(ti)))),
            }
        })
        .collect();
    let mut rules = opts.rules.clone();
    rules.tied_embeddings = f.tensor_info(names::OUTPUT.gguf).is_none();
    let opts = QuantizeOptions {
        rules,
        ..opts.clone()
    };
    write_gguf(f.metadata.clone(), &sources, output, &opts, &|b| {
        f.release(b)
    })
    .with_context(|| format!("quantizing {}", input.display()))
}

/// Quantizes any checkpoint ossify reads into a GGUF. An HF or original folder goes through `convert`'s plan
/// (its tensors, names, transforms and metadata, with `--outtype auto`, i.e. lossless), so the result is what
/// `ossify convert` followed by llama-quantize would give, without the intermediate file.
pub fn quantize_to_gguf(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<Summary> {
    // A GGUF is re-typed as it is, whatever its metadata (as llama-quantize does).
    if detect_layout(input)? == Layout::Gguf {
        return quantize_gguf(input, output, opts);
    }
    let ckpt = Checkpoint::open(input, None)?;
    let plan = Plan::new(&ckpt, OutType::Auto)?;
    let metadata = crate::cli::convert::metadata(&ckpt, &plan)?;
    let ckpt_ref = &ckpt;
    let sources: Vec<SourceTensor<'_>> = plan
        .tensors
        .iter()
        .map(|t| SourceTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            load: Box::new(move || Ok(Cow::Owned(t.materialize(ckpt_ref)?))),
        })
        .collect();
    write_gguf(metadata, &sources, output, opts, &|b| ckpt_ref.release(b))
        .with_context(|| format!("quantizing {}", input.display()))
}

fn set_kv(kvs: &mut Vec<(String, MetaValue)>, key: &str, value: MetaValue) {
    match kvs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => kvs.push((key.to_string(), value)),
    }
}

pub(crate) fn progress_bar(enabled: bool, n: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tensors {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
