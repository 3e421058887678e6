//! One-token matrix-vector products at gpt-oss-20b's widths, the shapes decode spends its time in: the Q8_0
//! unembedding (201088 × 2880, 615 MB) and MXFP4 expert matrices (2880 × 2880, 4.4 MB each; 48 of them, a
//! different one each call as in decode, so none is cached). Prints GB/s of weights read per precision.
//!
//!     cargo run --release -p ossify-kernels --example matvec_bench -- [--threads N] [--reps N]
//!
//! A measurement aid for kernel work (decode is `bench/forward.sh`'s job); the weights are random but valid.

use std::time::Instant;

use ossify_formats::DType;
use ossify_kernels::cpu::{matmul_prec, Precision, WeightMatrix};

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// `n` random blocks of `block` bytes whose first byte(s) are a sane scale for `dtype`.
fn random_blocks(dtype: DType, n: usize, seed: &mut u64) -> Vec<u8> {
    let block = dtype.nbytes(32).expect("one block");
    let mut v = vec![0u8; n * block];
    for b in v.chunks_exact_mut(block) {
        for x in b.iter_mut() {
            *x = lcg(seed) as u8;
        }
        match dtype {
            // f16 scale near 2^-7
            DType::Q8_0 => {
                b[..2].copy_from_slice(&(0x2000u16 | (lcg(seed) as u16 & 0x3ff)).to_le_bytes())
            }
            // E8M0 near 2^-4
            _ => b[0] = 123 + (lcg(seed) % 4) as u8,
        }
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let threads = arg("--threads", 2);
    let reps = arg("--reps", 10);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut seed = 1u64;
    let h = 2880;
    let vocab = arg("--vocab", 201088);
    let x: Vec<f32> = (0..h)
        .map(|_| (lcg(&mut seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let unembd = random_blocks(DType::Q8_0, vocab * h / 32, &mut seed);
    let n_exp = arg("--experts", 48);
    let experts: Vec<Vec<u8>> = (0..n_exp)
        .map(|_| random_blocks(DType::Mxfp4, h * h / 32, &mut seed))
        .collect();
    for prec in [Precision::Q8Activations, Precision::Exact] {
        pool.install(|| {
            let w = WeightMatrix::new(DType::Q8_0, &unembd, vocab, h).expect("matrix");
            let mut y = vec![0f32; vocab];
            matmul_prec(&w, &x, 1, &mut y, prec).expect("matvec");
            let t = Instant::now();
            for _ in 0..reps {
                matmul_prec(&w, &x, 1, &mut y, prec).expect("matvec");
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "RESULT kernel=q8_0_unembedding precision={prec:?} ms={:.2} gbps={:.2}",
                s * 1e3,
                unembd.len() as f64 / s / 1e9
            );
            let mut y = vec![0f32; h];
            let t = Instant::now();
            let calls = reps * n_exp;
            for i in 0..calls {
                let w = WeightMatrix::new(DType::Mxfp4, &experts[i % n_exp], h, h).expect("matrix");
                matmul_prec(&w, &x, 1, &mut y, prec).expect("matvec");
            }
            let s = t.elapsed().as_secs_f64() / calls as f64;
            println!(
                "RESULT kernel=mxfp4_expert precision={prec:?} us={:.1} gbps={:.2}",
                s * 1e6,
                experts[0].len() as f64 / s / 1e9
            );
        });
    }
}
