//! Prefill and decode speed of the forward pass, and peak RSS (a benchmark, not a test).
//!
//!     cargo run --release --example forward_bench -- MODEL [--prefill 128,512] [--decode N] [--threads N]
//!         [--precision exact|q8]
//!     cargo run --release --example forward_bench -- --bandwidth [--threads N]
//!
//! Each prefill size runs in a fresh context; the decode steps (one token each) follow the last prefill. Token
//! ids are a fixed pseudo-random sequence inside the vocabulary (bench/forward_llamacpp.py makes the same). The
//! last line is `RESULT key=value ...` for bench/forward.sh. `--bandwidth` measures the read bandwidth of this
//! machine with the same thread count (sums over 2 GiB, best of 5): the roofline of a decode step.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{ForwardOptions, Model, Precision};
use rayon::prelude::*;

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

/// GB/s of a parallel read of 2 GiB of u64 (each thread sums its half), best of 5.
fn bandwidth(threads: usize) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let n = (2usize << 30) / 8;
    let v: Vec<u64> = pool.install(|| (0..n as u64).into_par_iter().collect());
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let s: u64 = pool.install(|| {
            v.par_chunks(1 << 20)
                .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
                .reduce(|| 0, u64::wrapping_add)
        });
        std::hint::black_box(s);
        best = best.max((n * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let usage = "usage: forward_bench MODEL [--prefill 128,512] [--decode N] [--threads N] [--precision exact|q8] | --bandwidth [--threads N]";
    let mut args = std::env::args().skip(1).peekable();
    let first = args.next().context(usage)?;
    let (mut prefill, mut n_decode, mut threads) = (vec![128usize], 8usize, 0usize);
    let mut precision = Precision::Exact;
    while let Some(a) = args.next() {
        let val = args.next().context("missing value")?;
        match a.as_str() {
            "--precision" => {
                precision = match val.as_str() {
                    "exact" => Precision::Exact,
                    "q8" => Precision::Q8Activations,
                    _ => anyhow::bail!("--precision is exact or q8"),
                }
            }
            "--prefill" | "--tokens" => {
                prefill = val
                    .split(',')
                    .map(|v| v.parse::<usize>())
                    .collect::<Result<_, _>>()?
            }
            "--decode" => n_decode = val.parse()?,
            "--threads" => threads = val.parse()?,
            _ => anyhow::bail!("unknown argument {a}; {usage}"),
        }
    }
    if first == "--bandwidth" {
        let t = if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        };
        println!("RESULT read_gbps={:.2} threads={t}", bandwidth(t)?);
        return Ok(());
    }
    let path = PathBuf::from(first);
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
    let longest = prefill.iter().copied().max().unwrap_or(0);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let toks: Vec<u32> = (0..longest + n_decode)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.min(200_000)) as u32
        })
        .collect();
    let mut result = format!(
        "RESULT tool=ossify mode={} threads={} load_s={load:.2}",
        model.options().mode(),
        if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        }
    );
    let mut s = model.session();
    for (i, &n) in prefill.iter().enumerate() {
        s = model.session();
        let (t1, c1) = (Instant::now(), cpu_s());
        s.eval_last(&toks[..n])?;
        let (wall, cpu) = (t1.elapsed().as_secs_f64(), cpu_s() - c1);
        println!(
            "{} [{}]: prefill {n} tok {:.1} tok/s, cpu {:.1} ms/tok",
            path.display(),
            model.options().mode(),
            n as f64 / wall,
            1e3 * cpu / n as f64
        );
        result += &format!(
            " prefill{n}_tps={:.2} prefill{n}_cpu_ms={:.2}",
            n as f64 / wall,
            1e3 * cpu / n as f64
        );
        // Decode continues the last (longest) prompt.
        if i + 1 == prefill.len() && n != longest {
            s = model.session();
            s.eval_last(&toks[..longest])?;
        }
    }
    if n_decode > 0 {
        let (t2, c2) = (Instant::now(), cpu_s());
        for &t in &toks[longest..longest + n_decode] {
            s.eval_last(&[t])?;
        }
        let (wall, cpu) = (t2.elapsed().as_secs_f64(), cpu_s() - c2);
        println!(
            "{} [{}]: decode {n_decode} tok after {longest} {:.2} tok/s, cpu {:.1} ms/tok",
            path.display(),
            model.options().mode(),
            n_decode as f64 / wall,
            1e3 * cpu / n_decode as f64
        );
        result += &format!(
            " decode_tps={:.3} decode_cpu_ms={:.2} decode_after={longest}",
            n_decode as f64 / wall,
            1e3 * cpu / n_decode as f64
        );
    }
    println!(
        "{result} peak_rss_mib={:.0}",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
