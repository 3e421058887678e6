#!/usr/bin/env python3
"""Makes parity_metrics_case.json: random reference/candidate logits and the metrics that llama.cpp's
`llama-perplexity --kl-divergence` defines (tools/perplexity/perplexity.cpp, vendored llama.cpp 0c1e570),
transcribed here with numpy in float64 over the whole vocabulary. src/parity/metrics.rs is tested against it.

Run: /opt/venv/bin/python tests/data/parity_metrics_case.py  (numpy 2.x; output is deterministic)
"""
import json
import pathlib

import numpy as np

rng = np.random.default_rng(20261125)
T, V = 41, 37
ref = (rng.standard_normal((T, V)) * 3).astype(np.float32)
cand = (ref + rng.standard_normal((T, V)).astype(np.float32) * 0.7).astype(np.float32)
tokens = rng.integers(0, V, size=T)

r = ref.astype(np.float64)
c = cand.astype(np.float64)


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


# Row i is scored against token i+1; the last row has no following token.
lr = log_softmax(r)[:-1]
lc = log_softmax(c)[:-1]
nxt = tokens[1:]
n = T - 1
idx = np.arange(n)
nll_base = -lr[idx, nxt]
nll = -lc[idx, nxt]
kld = (np.exp(lr) * (lr - lc)).sum(axis=1)
same_top = (r[:-1].argmax(axis=1) == c[:-1].argmax(axis=1))
p_diff = np.exp(-nll) - np.exp(-nll_base)


def mean_unc(x):
    # perplexity.cpp mean_and_uncertainty: sqrt((E[x^2]-E[x]^2)/(n-1)), zero for n <= 10
    f = x.mean()
    df = (x * x).mean() - f * f
    return f, (np.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


def pct(sorted_v, fr):
    p = fr * (len(sorted_v) - 1)
    ip = int(p)
    p -= ip
    return (1 - p) * sorted_v[ip] + p * sorted_v[min(ip + 1, len(sorted_v) - 1)]


lp, lp_u = mean_unc(nll)
lb, lb_u = mean_unc(nll_base)
cov = ((nll * nll_base).mean() - nll.mean() * nll_base.mean()) / (n - 1)
ratio_u = np.sqrt(lp_u**2 + lb_u**2 - 2 * cov)
kl, kl_u = mean_unc(kld)
dp, dp_u = mean_unc(p_diff)
mse, mse_u = mean_unc(p_diff**2)
rms = np.sqrt(mse)
top = same_top.mean()
sk = np.sort(kld)

expected = {
    "n_tokens": n,
    "kld_mean": kl,
    "kld_mean_uncertainty": kl_u,
    "kld_median": float(np.median(kld)),
    "kld_p99": pct(sk, 0.99),
    "kld_max": sk[-1],
    "kld_min": sk[0],
    "top1_agreement": top,
    "top1_agreement_uncertainty": np.sqrt(top * (1 - top) / (n - 1)),
    "max_abs_dlogit": np.abs(c[:-1] - r[:-1]).max(),
    "mean_dp": dp,
    "mean_dp_uncertainty": dp_u,
    "rms_dp": rms,
    "rms_dp_uncertainty": 0.5 / rms * mse_u,
    "max_abs_dp": np.abs(p_diff).max(),
    "ppl_reference": np.exp(lb),
    "ppl_reference_uncertainty": np.exp(lb) * lb_u,
    "ppl_candidate": np.exp(lp),
    "ppl_candidate_uncertainty": np.exp(lp) * lp_u,
    "ln_ppl_ratio": lp - lb,
    "ln_ppl_ratio_uncertainty": ratio_u,
    "ppl_ratio": np.exp(lp - lb),
    "ppl_ratio_uncertainty": np.exp(lp - lb) * ratio_u,
}
assert 0 < top < 1, "the case should mix agreeing and disagreeing rows"
out = {
    "vocab": V,
    "tokens": tokens.tolist(),
    "reference": [float(x) for x in ref.ravel()],
    "candidate": [float(x) for x in cand.ravel()],
    "expected": {k: float(v) for k, v in expected.items()},
}
path = pathlib.Path(__file__).with_suffix(".json")
path.write_text(json.dumps(out) + "\n")
print(path, {k: round(float(v), 6) for k, v in expected.items()})
