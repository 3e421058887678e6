//! Prefill and decode speed of the reference forward pass, and peak RSS (a benchmark, not a test).
//!
//!     cargo run --release --example forward_bench -- MODEL [--tokens N] [--decode N] [--threads N] [--precision exact|q8]
//!
//! Token ids are a fixed pseudo-random sequence inside the vocabulary. bench/forward.sh runs llama.cpp on the
//! same GGUF with the same token count and threads.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{ForwardOptions, Model, Precision};

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// User + system CPU seconds of this process (all threads), from /proc/self/stat (clock ticks of 1/100 s):
/// on a shared machine, CPU time per token is steadier than wall time.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().context(
        "usage: forward_bench MODEL [--tokens N] [--decode N] [--threads N] [--precision exact|q8]",
    )?);
    let (mut n_tokens, mut n_decode, mut threads) = (128usize, 8usize, 0usize);
    let mut precision = Precision::Exact;
    while let Some(a) = args.next() {
        let val = args.next().context("missing value")?;
        if a == "--precision" {
            precision = match val.as_str() {
                "exact" => Precision::Exact,
                "q8" => Precision::Q8Activations,
                _ => anyhow::bail!("--precision is exact or q8"),
            };
            continue;
        }
        let v: usize = val.parse()?;
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
            precision,
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
    let (t1, c1) = (Instant::now(), cpu_s());
    s.eval_last(&toks[..n_tokens])?;
    let (prefill, cpu_prefill) = (t1.elapsed().as_secs_f64(), cpu_s() - c1);
    let (t2, c2) = (Instant::now(), cpu_s());
    for &t in &toks[n_tokens..] {
        s.eval_last(&[t])?;
    }
    let (decode, cpu_decode) = (t2.elapsed().as_secs_f64(), cpu_s() - c2);
    println!(
        "{} [{}]: load {load:.2}s  prefill {n_tokens} tok {:.1} tok/s  decode {n_decode} tok {:.2} tok/s  peak RSS {:.0} MiB  threads {}  cpu ms/tok prefill {:.1} decode {:.1}",
        path.display(),
        model.options().mode(),
        n_tokens as f64 / prefill,
        n_decode as f64 / decode.max(1e-9),
        peak_rss_mib().unwrap_or(f64::NAN),
        if threads == 0 { rayon::current_num_threads() } else { threads },
        1e3 * cpu_prefill / n_tokens as f64,
        1e3 * cpu_decode / n_decode.max(1) as f64,
    );
    Ok(())
}
