#!/usr/bin/env python3
"""Checks that llama.cpp honours the `gpt-oss.attention.sliding_window_pattern` ossify writes for a layer layout
llama.cpp's converter cannot express. Run from a scratch folder holding:
  m/            a copy of golden/tiny-bf16 whose config.json has layer_types = [full, sliding, sliding, full]
  lt.gguf       ossify convert m -o lt.gguf --outtype f32
  default.gguf  ossify convert golden/tiny-bf16 -o default.gguf --outtype f32   (no pattern: even layers slide)
It prints the largest |logit| difference between llama.cpp (llama-cpp-python 0.3.36) and transformers (eager,
float32, the FSSF model) on golden sequence 0 (32 tokens, sliding window 8).
Result on 2026-11-25: lt.gguf 0.568, default.gguf 9.45 -- llama.cpp reads the pattern.
"""
import sys, json, numpy as np, torch
import importlib.util
spec = importlib.util.spec_from_file_location("gen", "golden/generate.py"); gen = importlib.util.module_from_spec(spec); spec.loader.exec_module(gen)
import llama_cpp
from transformers import AutoModelForCausalLM
ids = json.load(open('golden/reference/tokens.json'))['sequences'][0]
m = AutoModelForCausalLM.from_pretrained('m', dtype=torch.float32, attn_implementation='eager')
with torch.no_grad(): ref = m(torch.tensor([ids])).logits[0].numpy()
for f in ['lt.gguf', 'default.gguf']:
    out = gen.llamacpp_eval(llama_cpp, f, ids)
    print(f, 'max |llama.cpp - transformers(layer_types FSSF)| =', float(np.abs(out - ref).max()))
