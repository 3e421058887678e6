//! The borrowed tensor that every reader produces and every writer and kernel consumes.

use crate::DType;

/// A tensor: name, element type, shape and the bytes that hold it, borrowed (usually from a memory map).
///
/// `shape` is in row-major order, outermost dimension first, as safetensors and numpy write it. GGUF stores
/// dimensions innermost first (`ne[0]` is the row length); the GGUF reader and writer reverse them, as gguf-py
/// does, so a view means the same thing whatever file it came from. For block types the innermost dimension
/// counts elements, not blocks.
#[derive(Clone, Debug)]
pub struct TensorView<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of the innermost dimension (1 for a scalar).
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of all dimensions but the innermost.
    pub fn n_rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }

    /// Checks that `bytes` holds exactly `shape` of `dtype`, and that rows are whole blocks.
    pub fn check(&self) -> Result<(), String> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("tensor '{}': shape {:?} overflows", self.name, self.shape))?;
        if self.dtype.is_quantized() && self.row_len() % self.dtype.block_size() != 0 {
            return Err(format!(
                "tensor '{}': row length {} is not a multiple of {}'s block size {}",
                self.name,
                self.row_len(),
                self.dtype,
                self.dtype.block_size()
            ));
        }
        let want = self.dtype.nbytes(n).ok_or_else(|| {
            format!(
                "tensor '{}': size of {:?} {} overflows",
                self.name, self.shape, self.dtype
            )
        })?;
        if want != self.bytes.len() {
            return Err(format!(
                "tensor '{}': {} {:?} needs {} bytes but {} are stored",
                self.name,
                self.dtype,
                self.shape,
                want,
                self.bytes.len()
            ));
        }
        Ok(())
    }
}
