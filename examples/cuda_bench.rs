//! The CUDA forward pass's speed (a benchmark, not a test; bench/cuda.sh runs it on a GPU machine).
//!
//!     cargo run --release --example cuda_bench -- MODEL [--prefill 512,2048] [--decode 64] [--precision exact|q8]
//!
//! Prints, per prefill length, tokens/s from an empty context; then decode tokens/s after the longest prefill,
//! the bytes a decode step must read (weights it touches once, routed experts, KV cache), the device's measured
//! copy bandwidth (device-to-device copy of 1 GiB, bytes read + written), and decode as a fraction of that
//! roofline; the weights' bytes on the device and the device memory in use. Token ids are a fixed pseudo-random
//! sequence inside the vocabulary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{Device, ForwardOptions, Model, Precision};
use ossify_kernels::cuda::Gpu;

/// Copy bandwidth in bytes/s (read + written) of a device-to-device copy, the median of 10 after a warm-up.
fn copy_bandwidth() -> Result<f64> {
    let gpu = Gpu::open(0).map_err(|e| anyhow!("{e}"))?;
    let n = 256 << 20; // f32: 1 GiB
    let src = gpu.zeros::<f32>(n).map_err(|e| anyhow!("{e}"))?;
    let mut dst = gpu.zeros::<f32>(n).map_err(|e| anyhow!("{e}"))?;
    let mut times = Vec::new();
    for i in 0..11 {
        gpu.synchronize().map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        gpu.copy(&src, &mut dst, 0, n).map_err(|e| anyhow!("{e}"))?;
        gpu.synchronize().map_err(|e| anyhow!("{e}"))?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(2.0 * (n * 4) as f64 / times[times.len() / 2])
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().context(
        "usage: cuda_bench MODEL [--prefill 512,2048] [--decode 64] [--precision exact|q8]",
    )?);
    let (mut prefill, mut n_decode, mut precision) =
        (vec![512usize, 2048], 64usize, Precision::Exact);
    while let Some(a) = args.next() {
        let val = args.next().context("missing value")?;
        match a.as_str() {
            "--prefill" => {
                prefill = val
                    .split(',')
                    .map(|v| v.parse::<usize>())
                    .collect::<Result<_, _>>()?
            }
            "--decode" => n_decode = val.parse()?,
            "--precision" => {
                precision = match val.as_str() {
                    "exact" => Precision::Exact,
                    "q8" => Precision::Q8Activations,
                    _ => bail!("--precision is exact or q8"),
                }
            }
            _ => bail!("unknown argument {a}"),
        }
    }
    let longest = prefill.iter().copied().max().unwrap_or(1).max(1);
    let bw = copy_bandwidth()?;

    let t0 = Instant::now();
    let ckpt = Checkpoint::open(&path, None)?;
    let model = Model::new(
        &ckpt,
        ForwardOptions {
            precision,
            device: Device::Cuda,
            batch_size: longest,
            context: longest + n_decode,
            ..ForwardOptions::default()
        },
    )?;
    let load = t0.elapsed().as_secs_f64();
    let gpu = model.cuda().context("the model is not on a GPU")?;
    let vocab = model.config().vocab_size as u64;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let toks: Vec<u32> = (0..longest + n_decode)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.min(200_000)) as u32
        })
        .collect();
    // Warm-up: the first launches load the modules' code.
    model.session().eval_last(&toks[..8])?;
    let mode = model.options().mode();
    println!(
        "{} on {} [{mode}]: load + upload {load:.2}s",
        path.display(),
        model.device()
    );
    let mut s = model.session();
    for &n in &prefill {
        s = model.session();
        let t = Instant::now();
        s.eval_last(&toks[..n])?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "  prefill {n:5} tokens: {:10.1} tok/s ({:.1} ms)",
            n as f64 / dt,
            dt * 1e3
        );
    }
    if s.n_past() != longest {
        s = model.session();
        s.eval_last(&toks[..longest])?;
    }
    let t = Instant::now();
    let mut bytes = 0u64;
    for (i, &tok) in toks[longest..].iter().enumerate() {
        bytes += gpu.decode_bytes(longest + i);
        s.eval_last(&[tok])?;
    }
    let dt = t.elapsed().as_secs_f64();
    let tps = n_decode as f64 / dt.max(1e-9);
    let per_step = bytes as f64 / n_decode.max(1) as f64;
    let (weights, used) = gpu.memory()?;
    println!(
        "  decode  {n_decode:5} tokens: {tps:10.2} tok/s after {longest}; {:.1} MB read per step; copy bandwidth {:.0} GB/s; \
         roofline {:.0} tok/s, decode at {:.1}% of it",
        per_step / 1e6,
        bw / 1e9,
        bw / per_step,
        100.0 * tps * per_step / bw
    );
    println!(
        "  device memory: weights {:.2} GB, in use now {:.2} GB (all contexts on the device)",
        weights as f64 / 1e9,
        used as f64 / 1e9
    );
    Ok(())
}
