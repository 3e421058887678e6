//! Coverage-guided fuzzing of `ossify_formats::fuzz::gguf`:
//! its docs say what it reads and which invariants it asserts.
#![no_main]

#[global_allocator]
static ALLOC: ossify_fuzz::CappedAlloc = ossify_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ossify_formats::fuzz::gguf(data);
});
