//! safetensors: sharded, memory-mapped reading and a streaming writer.
