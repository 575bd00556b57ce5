#!/usr/bin/python3
"""PyTorch side of `go run ./examples/benchmark -only versus`.

One process times, interleaved round by round (medians), on a BERT masked-LM
model of the given size and the benchmark's batch shape (B sequences of T
tokens, `masks` masked positions each, k trainable rows = the last k ids):

- peft_same:  a Trainable Tokens step with PEFT's algorithm written out by
              hand (index_copy of the V×d table on every forward, the tied
              decoder through that table), head at the masked positions only;
- ideal_same: the same step without any V×d work: frozen table and decoder,
              the k rows substituted in the embedding output and in the
              logits (what gopeft computes);
- users:      PEFT as Hugging Face users run it: the MLM head (transform and
              tied decoder) at all B·T positions, labels -100 elsewhere,
              PEFT's index_copy table, so autograd computes the tied
              decoder's V×d weight gradient;
- eval_same:  the inference forward (no_grad) of the merged model, head at
              the masked positions;
- gemm:       torch.mm peak (2048³) and the step's product shapes.

Every weight is frozen except the k×d delta (Adam, lr 1e-3). Prints one JSON
line. threadpoolctl's report of the BLAS in use is included.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads", "filepath")
    return [{k: p.get(k) for k in keep if k in p} for p in threadpool_info()]


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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default="peft_same,ideal_same,users,eval_same,gemm")
    ap.add_argument("--shapes", default="", help="m,n,k,transB;... product shapes to time")
    ap.add_argument("--serve", action="store_true",
                    help="after the warm-up, read variant names from stdin, run each once and print its time "
                         "(one JSON line per request): the caller interleaves torch with its own runs")
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if v]

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
    labels = torch.full((B, T), -100, dtype=torch.long)
    labels[mask] = targets
    is_tt = inputs >= V - a.k
    tt_index = (inputs - (V - a.k)).clamp(min=0)

    def encoder(x):
        x = F.layer_norm(x + pos[:T] + typ[types], (d,), ones, zeros, 1e-12)
        for p in layers:
            q = F.linear(x, p["wq"], p["bq"]).view(B, T, H, dh).transpose(1, 2)
            k = F.linear(x, p["wk"], p["bk"]).view(B, T, H, dh).transpose(1, 2)
            v = F.linear(x, p["wv"], p["bv"]).view(B, T, H, dh).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, d)
            x = F.layer_norm(x + F.linear(ctx, p["wo"], p["bo"]), (d,), ones, zeros, 1e-12)
            f = F.linear(F.gelu(F.linear(x, p["w1"], p["b1"]), approximate="tanh"), p["w2"], p["b2"])
            x = F.layer_norm(x + f, (d,), ones, zeros, 1e-12)
        return x

    def transform(h):
        return F.layer_norm(F.gelu(F.linear(h, wt, bt), approximate="tanh"), (d,), ones, zeros, 1e-12)

    def peft_same():
        w = table.index_copy(0, idx, delta)  # PEFT: a new V×d table per forward
        h = transform(encoder(F.embedding(inputs, w))[mask])
        return F.cross_entropy(F.linear(h, w, dec_bias), targets)

    def ideal_same():
        x = torch.where(is_tt.unsqueeze(-1), delta[tt_index], F.embedding(inputs, table))
        h = transform(encoder(x)[mask])
        logits = F.linear(h, table, dec_bias)  # frozen: no weight gradient
        logits = logits.index_copy(1, idx, F.linear(h, delta, dec_bias[idx]))
        return F.cross_entropy(logits, targets)

    def users():
        w = table.index_copy(0, idx, delta)
        h = transform(encoder(F.embedding(inputs, w)))  # the head at every position
        logits = F.linear(h, w, dec_bias)
        return F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100)

    merged = table.clone()

    def eval_same():
        with torch.no_grad():
            h = transform(encoder(F.embedding(inputs, merged))[mask])
            return F.linear(h, merged, dec_bias)

    def train(loss_fn):
        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            opt.step()
            return loss.item()
        return step

    fns = {
        "peft_same": train(peft_same),
        "ideal_same": train(ideal_same),
        "users": train(users),
        "eval_same": lambda: eval_same().sum().item(),
    }
    timed = [v for v in variants if v in fns]
    for v in timed:  # warm-up
        fns[v]()
    if a.serve:
        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_")) or k == "LD_PRELOAD"},
                          "blas": blas_info()}), flush=True)
        for line in sys.stdin:
            v = line.strip()
            if v not in fns:
                print(json.dumps({"error": "unknown variant %r" % v}), flush=True)
                continue
            t0 = time.perf_counter()
            fns[v]()
            print(json.dumps({"variant": v, "ms": (time.perf_counter() - t0) * 1000}), flush=True)
        return 0
    times = {v: [] for v in timed}
    for r in range(a.rounds):
        order = timed[r % len(timed):] + timed[: r % len(timed)] if timed else []
        for v in order:
            t0 = time.perf_counter()
            fns[v]()
            times[v].append(time.perf_counter() - t0)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_")) or k == "LD_PRELOAD"},
        "blas": blas_info(),
        "ms": {v: statistics.median(ts) * 1000 for v, ts in times.items()},
        "all_ms": {v: [t * 1000 for t in ts] for v, ts in times.items()},
    }
    if "gemm" in variants:
        def best_ms(fn, reps):
            fn()
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            return best * 1000
        n = 2048
        x, y = torch.randn(n, n), torch.randn(n, n)
        ms = best_ms(lambda: torch.mm(x, y), 5)
        out["peak_gflops"] = 2 * n ** 3 / ms / 1e6
        shapes = {}
        for s in [s for s in a.shapes.split(";") if s]:
            m, nn, kk, tb = (int(v) for v in s.split(","))
            A = torch.randn(m, kk)
            Bm = torch.randn(nn, kk).t() if tb else torch.randn(kk, nn)  # a transposed view: no copy
            ms = best_ms(lambda: torch.mm(A, Bm), 7)
            shapes[s] = {"ms": ms, "gflops": 2 * m * nn * kk / ms / 1e6}
        out["shapes"] = shapes
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
