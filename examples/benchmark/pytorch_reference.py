#!/usr/bin/python3
"""PyTorch reference for `go run ./examples/benchmark`: the same BERT
masked-LM configuration and batch, trained with PEFT's Trainable Tokens
algorithm written out by hand (no transformers, no peft):

- every weight frozen; the k trainable rows are a [k, dim] tensor `delta`;
- on every forward, `table.index_copy(0, idx, delta)` builds the V×dim table
  the input embedding and the tied MLM decoder use (F.embedding and
  F.linear with that table, plus the decoder bias), as PEFT's
  TrainableTokensLayer does for a tied lm_head;
- mean cross-entropy over the masked positions, Adam (lr 1e-3) on delta.

Prints one JSON line with the median step time and training tokens/s.
OPENBLAS_CORETYPE is set from the CPU flags (SkylakeX with AVX-512, Haswell
with AVX2) unless already set: Debian's OpenBLAS otherwise picks slow kernels
for small products on some CPUs.
"""
import argparse
import json
import os
import statistics
import sys
import time


def coretype():
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        return None
    if "avx512f" in flags:
        return "SkylakeX"
    if "avx2" in flags:
        return "Haswell"
    return None


if "OPENBLAS_CORETYPE" not in os.environ and coretype():
    os.environ["OPENBLAS_CORETYPE"] = coretype()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--masks", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=11)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    V, d, H, I, T, B = a.vocab, a.hidden, a.heads, a.intermediate, a.seq, a.batch
    dh = d // H

    def xavier(o, i):
        lim = (6.0 / (o + i)) ** 0.5
        return (torch.rand(o, i) * 2 - 1) * lim

    table = torch.randn(V, d) * 0.1
    pos = torch.randn(512, d) * 0.1
    typ = torch.randn(2, d) * 0.1
    ones, zeros = torch.ones(d), torch.zeros(d)
    layers = []
    for _ in range(a.layers):
        layers.append(dict(
            wq=xavier(d, d), wk=xavier(d, d), wv=xavier(d, d), wo=xavier(d, d),
            bq=torch.zeros(d), bk=torch.zeros(d), bv=torch.zeros(d), bo=torch.zeros(d),
            w1=xavier(I, d), b1=torch.zeros(I), w2=xavier(d, I), b2=torch.zeros(d)))
    wt, bt = xavier(d, d), torch.zeros(d)
    dec_bias = torch.zeros(V)

    idx = torch.arange(V - a.k, V)
    delta = table[idx].clone().requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=1e-3)

    # The batch: [CLS] + content + [SEP], 10% of the content trainable ids,
    # `masks` content positions per sequence replaced by [MASK] (id 4).
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(5, V - a.k - 1, (B, T), generator=g)
    tt = torch.rand(B, T, generator=g) < 0.1
    ids[tt] = idx[torch.randint(0, a.k, (int(tt.sum()),), generator=g)]
    ids[:, 0], ids[:, -1] = 2, 3
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        mask[b, 1 + torch.randperm(T - 2, generator=g)[: a.masks]] = True
    targets = ids[mask]
    inputs = ids.clone()
    inputs[mask] = 4
    types = torch.zeros(B, T, dtype=torch.long)

    def forward():
        w = table.index_copy(0, idx, delta)  # PEFT: a new V×dim table per forward
        x = F.embedding(inputs, w) + pos[:T] + typ[types]
        x = F.layer_norm(x, (d,), ones, zeros, 1e-5)
        for p in layers:
            q = F.linear(x, p["wq"], p["bq"]).view(B, T, H, dh).transpose(1, 2)
            k = F.linear(x, p["wk"], p["bk"]).view(B, T, H, dh).transpose(1, 2)
            v = F.linear(x, p["wv"], p["bv"]).view(B, T, H, dh).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, d)
            x = F.layer_norm(x + F.linear(ctx, p["wo"], p["bo"]), (d,), ones, zeros, 1e-12)
            f = F.linear(F.gelu(F.linear(x, p["w1"], p["b1"]), approximate="tanh"), p["w2"], p["b2"])
            x = F.layer_norm(x + f, (d,), ones, zeros, 1e-12)
        h = x[mask]
        h = F.layer_norm(F.gelu(F.linear(h, wt, bt), approximate="tanh"), (d,), ones, zeros, 1e-12)
        logits = F.linear(h, w, dec_bias)  # tied decoder through the index_copied table
        return F.cross_entropy(logits, targets)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
        with torch.no_grad():
            forward()
    steps, fwds, losses = [], [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        losses.append(step())
        steps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.no_grad():
            forward().item()
        fwds.append(time.perf_counter() - t0)
    med = statistics.median(steps)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "step_ms": med * 1000,
        "forward_ms": statistics.median(fwds) * 1000,
        "tokens_per_s": B * T / med,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }))


if __name__ == "__main__":
    sys.exit(main())
