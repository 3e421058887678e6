//! `--dry-run` of convert and quantize: every tensor the output would hold (name, where it comes from, type,
//! bytes) and the files it would be written as, computed by the same planning code as a real run, with
//! nothing created.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use ossify_formats::gguf::PlannedFileInfo;

/// What a run would write.
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    /// Always true: tells this report from a real run's summary.
    pub dry_run: bool,
    pub source: String,
    pub output: String,
    /// Every tensor, in file order.
    pub tensors: Vec<PlannedTensorRow>,
    /// The files, first to last (one, or the shards of a split GGUF).
    pub files: Vec<PlannedFile>,
    /// The tensors' bytes (without headers and padding).
    pub tensor_bytes: u64,
    /// The files' bytes, headers and padding included.
    pub total_bytes: u64,
}

/// One tensor of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedTensorRow {
    pub name: String,
    /// The source tensor(s) it is made from and how (e.g. rows, a gate/up half, an MXFP4 repack).
    pub source: String,
    /// The source's type, where the plan knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(rename = "type")]
    pub dtype: String,
    /// Row-major, outermost first (gguf-dump prints the reverse).
    pub shape: Vec<usize>,
    pub bytes: u64,
}

/// One output file of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub bytes: u64,
    pub tensors: usize,
}

impl From<&PlannedFileInfo> for PlannedFile {
    fn from(f: &PlannedFileInfo) -> Self {
        PlannedFile {
            path: f.path.display().to_string(),
            bytes: f.bytes,
            tensors: f.tensors,
        }
    }
}

impl DryRun {
    pub fn new(
        source: String,
        output: String,
        tensors: Vec<PlannedTensorRow>,
        files: Vec<PlannedFile>,
    ) -> DryRun {
        DryRun {
            dry_run: true,
            source,
            output,
            tensor_bytes: tensors.iter().map(|t| t.bytes).sum(),
            total_bytes: files.iter().map(|f| f.bytes).sum(),
            tensors,
            files,
        }
    }

    /// Prints the plan on standard output: one JSON object, or a table.
    pub fn print(&self, json: bool) -> Result<()> {
        let mut out = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut out, self)?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(
            out,
            "dry run: {} -> {}; nothing is written",
            self.source, self.output
        )?;
        let wide = |f: fn(&PlannedTensorRow) -> usize, head: &str| {
            self.tensors
                .iter()
                .map(f)
                .max()
                .unwrap_or(0)
                .max(head.len())
        };
        let wn = wide(|t| t.name.len(), "tensor");
        let wt = wide(|t| type_cell(t).len(), "type");
        let ws = wide(|t| shape_cell(&t.shape).len(), "shape");
        let wb = wide(|t| t.bytes.to_string().len(), "bytes");
        writeln!(
            out,
            "{:<wn$}  {:<wt$}  {:<ws$}  {:>wb$}  source",
            "tensor", "type", "shape", "bytes"
        )?;
        for t in &self.tensors {
            writeln!(
                out,
                "{:<wn$}  {:<wt$}  {:<ws$}  {:>wb$}  {}",
                t.name,
                type_cell(t),
                shape_cell(&t.shape),
                t.bytes,
                t.source
            )?;
        }
        writeln!(out, "(shapes row-major, outermost first)")?;
        for f in &self.files {
            writeln!(
                out,
                "file {}: {} tensors, {} bytes",
                f.path, f.tensors, f.bytes
            )?;
        }
        writeln!(
            out,
            "total: {} tensors, {} bytes of tensor data, {} bytes in {} file{} ({:.1} MiB)",
            self.tensors.len(),
            self.tensor_bytes,
            self.total_bytes,
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            self.total_bytes as f64 / (1024.0 * 1024.0)
        )?;
        out.flush()?;
        Ok(())
    }
}

fn type_cell(t: &PlannedTensorRow) -> String {
    match &t.source_type {
        Some(s) if *s != t.dtype => format!("{s} -> {}", t.dtype),
        _ => t.dtype.clone(),
    }
}

fn shape_cell(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}
