//! Number formats: one module per block type, scalar reference encoders and decoders bit-exact with ggml.
