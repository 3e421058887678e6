//! GGUF: reader and writer (owned by the GGUF work; see DESIGN.md).
