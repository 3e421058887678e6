//! Prefill and decode speed of the reference forward pass, and peak RSS (a benchmark, not a test).
//!
//!     cargo run --release --example forward_bench -- MODEL [--tokens N] [--decode N] [--threads N]
//!
//! Token ids are a fixed pseudo-random sequence inside the vocabulary. bench/forward.sh runs llama.cpp on the
//! same GGUF with the same token count and threads.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{ForwardOptions, Model};

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .context("usage: forward_bench MODEL [--tokens N] [--decode N] [--threads N]")?,
    );
    let (mut n_tokens, mut n_decode, mut threads) = (128usize, 8usize, 0usize);
    while let Some(a) = args.next() {
        let v: usize = args.next().context("missing value")?.parse()?;
        match a.as_str() {
            "--tokens" => n_tokens = v,
            "--decode" => n_decode = v,
            "--threads" => threads = v,
            _ => anyhow::bail!("unknown argument {a}"),
        }
    }
    let t0 = Instant::now();
    let ckpt = Checkpoint::open(&path, None)?;
    let model = Model::new(
        &ckpt,
        ForwardOptions {
            threads,
            ..ForwardOptions::default()
        },
    )?;
    let load = t0.elapsed().as_secs_f64();
    let vocab = model.config().vocab_size as u64;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let toks: Vec<u32> = (0..n_tokens + n_decode)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.min(200_000)) as u32
        })
        .collect();
    let mut s = model.session();
    let t1 = Instant::now();
    s.eval_last(&toks[..n_tokens])?;
    let prefill = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    for &t in &toks[n_tokens..] {
        s.eval_last(&[t])?;
    }
    let decode = t2.elapsed().as_secs_f64();
    println!(
        "{}: load {load:.2}s  prefill {n_tokens} tok {:.1} tok/s  decode {n_decode} tok {:.2} tok/s  peak RSS {:.0} MiB  threads {}",
        path.display(),
        n_tokens as f64 / prefill,
        n_decode as f64 / decode.max(1e-9),
        peak_rss_mib().unwrap_or(f64::NAN),
        if threads == 0 { rayon::current_num_threads() } else { threads },
    );
    Ok(())
}
