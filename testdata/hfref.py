#!/usr/bin/env python3
"""Float64 PyTorch reference of Hugging Face's functions, for gopeft's fidelity tests.

Run from the repository root:

    /usr/bin/python3 testdata/hfref.py            # (re)write testdata/hfref/*.json
    /usr/bin/python3 testdata/hfref.py --check    # recompute and compare with them

It needs only torch (Debian's python3-torch 1.13 works), not transformers.

For each tiny checkpoint in testdata/ it loads pytorch_model.bin, casts every
float tensor to float64 and runs a re-implementation of the transformers
model class named in config.json (BertForMaskedLM, BartForConditionalGeneration):
the same layers in the same order, LayerNorm eps from config.json (BART: torch's
default 1e-5, as modeling_bart uses), the activation named by hidden_act /
activation_function with transformers' meaning (ACT2FN: "gelu" is the exact erf
form, "gelu_new" / "gelu_pytorch_tanh" / "gelu_fast" the tanh approximation),
no dropout (eval mode). The output embedding is the input table itself (tied,
as transformers ties it), so the gradient of a table row is the sum of the
input path and the output path, as autograd gives it on a tied weight (and as
PEFT's trainable_tokens_delta gets it).

For a fixed batch it writes, per model, testdata/hfref/<model>.json:
  examples     the batch (token ids; BERT also the token strings, masked
               positions and targets; BART source and target ids)
  positions    the positions whose logits are recorded
  logits       those logits (one list of vocab_size floats per position)
  loss         the mean cross entropy over every loss position of the batch
  trained_ids  the token ids whose table rows are "trained"
  grads        d loss / d row, one list of hidden_size floats per trained id

and testdata/hfref/adam.json: a few steps of torch.optim.Adam and AdamW
(float64) on fixed parameters and gradients.

Adding a model family: write a forward function that takes (P, cfg, batch) and
returns (per-example logits, tied table tensor), add a batch builder, and add
an entry to FAMILIES below (keyed by config.json's model_type).
"""

import argparse
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hfref")


# ---------------------------------------------------------------------------
# Building blocks with transformers' semantics
# ---------------------------------------------------------------------------

def act_fn(name):
    """transformers' ACT2FN for the names gopeft supports."""
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return torch.relu
    if name in ("silu", "swish"):
        return lambda x: x * torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh
    if name == "sigmoid":
        return torch.sigmoid
    raise SystemExit("unsupported activation %r" % name)


def linear(P, prefix, x):
    y = x @ P[prefix + ".weight"].t()
    b = P.get(prefix + ".bias")
    return y if b is None else y + b


def layer_norm(P, prefix, x, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased, as torch's LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * P[prefix + ".weight"] + P[prefix + ".bias"]


def attention(q, k, v, heads, causal):
    """Multi-head attention of one sequence: q (Lq×d), k, v (Lk×d) already projected."""
    lq, d = q.shape
    lk = k.shape[0]
    dh = d // heads
    q = q.view(lq, heads, dh).transpose(0, 1)
    k = k.view(lk, heads, dh).transpose(0, 1)
    v = v.view(lk, heads, dh).transpose(0, 1)
    scores = q @ k.transpose(1, 2) / math.sqrt(dh)
    if causal:
        mask = torch.ones(lq, lk, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    ctx = torch.softmax(scores, -1) @ v
    return ctx.transpose(0, 1).reshape(lq, d)


def load_model(name):
    d = os.path.join(HERE, name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    sd = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu")
    P = {k: v.to(torch.float64) for k, v in sd.items() if v.is_floating_point()}
    return cfg, P


# ---------------------------------------------------------------------------
# BERT (BertForMaskedLM)
# ---------------------------------------------------------------------------

def bert_mlm_logits(P, cfg, table, ids):
    """Logits (L×V) of one sequence, token types 0, no padding."""
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = act_fn(cfg.get("hidden_act", "gelu"))
    heads = cfg["num_attention_heads"]
    L = len(ids)
    x = table[torch.tensor(ids)] + P["bert.embeddings.position_embeddings.weight"][:L] \
        + P["bert.embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(P, "bert.embeddings.LayerNorm", x, eps)
    for i in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d" % i
        q = linear(P, p + ".attention.self.query", x)
        k = linear(P, p + ".attention.self.key", x)
        v = linear(P, p + ".attention.self.value", x)
        a = linear(P, p + ".attention.output.dense", attention(q, k, v, heads, False))
        x = layer_norm(P, p + ".attention.output.LayerNorm", a + x, eps)
        h = act(linear(P, p + ".intermediate.dense", x))
        x = layer_norm(P, p + ".output.LayerNorm", linear(P, p + ".output.dense", h) + x, eps)
    h = act(linear(P, "cls.predictions.transform.dense", x))
    h = layer_norm(P, "cls.predictions.transform.LayerNorm", h, eps)
    return h @ table.t() + P["cls.predictions.bias"]


def bert_batch(cfg):
    vocab = open(os.path.join(HERE, "bert-tiny", "vocab.txt")).read().split("\n")
    ids = {t: i for i, t in enumerate(vocab) if t}
    sentences = [
        ("every cat climbs trees .", [2]),
        ("the city is by the sea .", [2, 6]),
        ("a old hammer breaks stone .", [3, 5]),
    ]
    examples = []
    for text, masked in sentences:
        tokens = ["[CLS]"] + text.split() + ["[SEP]"]
        for t in tokens:
            assert t in ids, t
        targets = {p: ids[tokens[p]] for p in masked}
        inp = list(tokens)
        for p in masked:
            inp[p] = "[MASK]"
        examples.append({"tokens": inp, "ids": [ids[t] for t in inp],
                         "targets": {str(p): t for p, t in sorted(targets.items())},
                         # the masked positions, then one unmasked position
                         "positions": sorted(masked) + [1 if 1 not in masked else 4]})
    # Trained rows: input-only ("every", "city"), target-only ("trees" is an
    # input of example 0; "sea" is a target), [MASK] (an input everywhere),
    # and "dog", which is in no example (output path only).
    trained = [ids[t] for t in ("every", "city", "sea", "[MASK]", "cat", "dog", "hammer")]
    assert 1037 not in trained  # cybertron leaves the last table row zero
    return examples, trained


def bert_run(cfg, P, table, examples):
    logits, loss_terms = [], []
    for ex in examples:
        out = bert_mlm_logits(P, cfg, table, ex["ids"])
        logits.append(out[ex["positions"]])
        for p, t in ex["targets"].items():
            loss_terms.append(torch.nn.functional.cross_entropy(out[int(p)][None], torch.tensor([t]), reduction="sum"))
    return logits, torch.stack(loss_terms).sum() / len(loss_terms)


# ---------------------------------------------------------------------------
# BART (BartForConditionalGeneration)
# ---------------------------------------------------------------------------

BART_POS_OFFSET = 2  # BartLearnedPositionalEmbedding


def bart_stack_input(P, cfg, table, side, ids):
    scale = math.sqrt(cfg["d_model"]) if cfg.get("scale_embedding", False) else 1.0
    pos = P["model.%s.embed_positions.weight" % side][torch.arange(len(ids)) + BART_POS_OFFSET]
    x = table[torch.tensor(ids)] * scale + pos
    return layer_norm(P, "model.%s.layernorm_embedding" % side, x, 1e-5)


def bart_attn(P, prefix, x, mem, heads, causal):
    q = linear(P, prefix + ".q_proj", x)
    k = linear(P, prefix + ".k_proj", mem)
    v = linear(P, prefix + ".v_proj", mem)
    return linear(P, prefix + ".out_proj", attention(q, k, v, heads, causal))


def bart_logits(P, cfg, table, src, dec_in):
    act = act_fn(cfg.get("activation_function", "gelu"))
    eps = 1e-5  # modeling_bart: nn.LayerNorm(embed_dim), torch's default
    x = bart_stack_input(P, cfg, table, "encoder", src)
    for i in range(cfg["encoder_layers"]):
        p = "model.encoder.layers.%d" % i
        x = layer_norm(P, p + ".self_attn_layer_norm", x + bart_attn(P, p + ".self_attn", x, x, cfg["encoder_attention_heads"], False), eps)
        h = linear(P, p + ".fc2", act(linear(P, p + ".fc1", x)))
        x = layer_norm(P, p + ".final_layer_norm", x + h, eps)
    enc = x
    y = bart_stack_input(P, cfg, table, "decoder", dec_in)
    heads = cfg["decoder_attention_heads"]
    for i in range(cfg["decoder_layers"]):
        p = "model.decoder.layers.%d" % i
        y = layer_norm(P, p + ".self_attn_layer_norm", y + bart_attn(P, p + ".self_attn", y, y, heads, True), eps)
        y = layer_norm(P, p + ".encoder_attn_layer_norm", y + bart_attn(P, p + ".encoder_attn", y, enc, heads, False), eps)
        h = linear(P, p + ".fc2", act(linear(P, p + ".fc1", y)))
        y = layer_norm(P, p + ".final_layer_norm", y + h, eps)
    return y @ table.t() + P["final_logits_bias"][0]


def bart_encode_text(vocab, text):
    """Greedy longest match over the byte-level vocabulary (any valid ids do
    for a function comparison)."""
    s = text.replace(" ", "\u0120")
    out, i = [], 0
    while i < len(s):
        for j in range(len(s), i, -1):
            if s[i:j] in vocab:
                out.append(vocab[s[i:j]])
                i = j
                break
        else:
            raise SystemExit("cannot encode %r" % s[i:])
    return out


def bart_batch(cfg):
    with open(os.path.join(HERE, "bart-tiny", "vocab.json")) as f:
        vocab = json.load(f)
    bos, eos = cfg["bos_token_id"], cfg["eos_token_id"]
    pairs = [
        ("copy : the red cat near the trees", "the red cat near the trees"),
        ("which animal eats fruit ?", "the cat eats fruit ."),
    ]
    examples = []
    for a, b in pairs:
        src = [bos] + bart_encode_text(vocab, a) + [eos]
        tgt = [bos] + bart_encode_text(vocab, b) + [eos]
        dec_in = [cfg["decoder_start_token_id"]] + tgt[:-1]
        examples.append({"source": src, "target": tgt, "decoder_input": dec_in,
                         "positions": [0, 1, len(dec_in) // 2, len(dec_in) - 1]})
    cat = bart_encode_text(vocab, " cat")
    animal = bart_encode_text(vocab, " animal")
    fish = bart_encode_text(vocab, " fish")
    assert len(cat) == 1 and len(animal) == 1 and len(fish) == 1, (cat, animal, fish)
    used_src = {i for ex in examples for i in ex["source"]}
    used_tgt = {i for ex in examples for i in ex["target"]}
    assert cat[0] in used_src and cat[0] in used_tgt
    assert animal[0] in used_src and animal[0] not in used_tgt
    assert fish[0] not in used_src | used_tgt
    # " cat" is on both sides, " animal" in a source only, " fish" and <mask>
    # in no example (output path only), </s> everywhere.
    trained = sorted(set(cat + animal + fish + [eos, vocab["<mask>"]]))
    return examples, trained


def bart_run(cfg, P, table, examples):
    logits, terms = [], []
    for ex in examples:
        out = bart_logits(P, cfg, table, ex["source"], ex["decoder_input"])
        logits.append(out[ex["positions"]])
        terms.append(torch.nn.functional.cross_entropy(out, torch.tensor(ex["target"]), reduction="sum"))
    n = sum(len(ex["target"]) for ex in examples)
    return logits, torch.stack(terms).sum() / n


# ---------------------------------------------------------------------------
# ELECTRA (ElectraForMaskedLM, the generator)
# ---------------------------------------------------------------------------

def electra_mlm_logits(P, cfg, table, ids):
    """ElectraForMaskedLM logits (L×V): BERT's encoder under electra.*, then
    generator_predictions (dense, activation, LayerNorm) and
    generator_lm_head tied to the word embeddings, with its own bias."""
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = act_fn(cfg.get("hidden_act", "gelu"))
    heads = cfg["num_attention_heads"]
    L = len(ids)
    x = table[torch.tensor(ids)] + P["electra.embeddings.position_embeddings.weight"][:L] \
        + P["electra.embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(P, "electra.embeddings.LayerNorm", x, eps)
    assert "electra.embeddings_project.weight" not in P  # embedding_size == hidden_size
    for i in range(cfg["num_hidden_layers"]):
        p = "electra.encoder.layer.%d" % i
        q = linear(P, p + ".attention.self.query", x)
        k = linear(P, p + ".attention.self.key", x)
        v = linear(P, p + ".attention.self.value", x)
        a = linear(P, p + ".attention.output.dense", attention(q, k, v, heads, False))
        x = layer_norm(P, p + ".attention.output.LayerNorm", a + x, eps)
        h = act(linear(P, p + ".intermediate.dense", x))
        x = layer_norm(P, p + ".output.LayerNorm", linear(P, p + ".output.dense", h) + x, eps)
    h = act_fn("gelu")(linear(P, "generator_predictions.dense", x))  # ElectraGeneratorPredictions: get_activation("gelu")
    h = layer_norm(P, "generator_predictions.LayerNorm", h, eps)
    return h @ table.t() + P["generator_lm_head.bias"]


def electra_batch(cfg):
    examples, trained = bert_batch(cfg)  # the same vocabulary and sentences
    return examples, trained


def electra_run(cfg, P, table, examples):
    logits, loss_terms = [], []
    for ex in examples:
        out = electra_mlm_logits(P, cfg, table, ex["ids"])
        logits.append(out[ex["positions"]])
        for p, t in ex["targets"].items():
            loss_terms.append(torch.nn.functional.cross_entropy(out[int(p)][None], torch.tensor([t]), reduction="sum"))
    return logits, torch.stack(loss_terms).sum() / len(loss_terms)


# ---------------------------------------------------------------------------
# Marian (MarianMTModel) and Pegasus (PegasusForConditionalGeneration)
# ---------------------------------------------------------------------------

def sinusoidal(n, d):
    """MarianSinusoidalPositionalEmbedding / PegasusSinusoidalPositionalEmbedding
    (float64 here): sin of the even frequencies in the first half, cos in the second."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    enc = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / d)
    half = d // 2 if d % 2 == 0 else d // 2 + 1
    out = torch.zeros(n, d, dtype=torch.float64)
    out[:, :half] = torch.sin(enc[:, 0::2])
    out[:, half:] = torch.cos(enc[:, 1::2])
    return out


def s2s_stack_input(cfg, table, ids):
    """Scaled token embeddings plus static positions (no offset, no
    layernorm_embedding): Marian's and Pegasus' embedding."""
    scale = math.sqrt(cfg["d_model"]) if cfg.get("scale_embedding", False) else 1.0
    return table[torch.tensor(ids)] * scale + sinusoidal(cfg["max_position_embeddings"], cfg["d_model"])[:len(ids)]


def s2s_logits(P, cfg, table, src, dec_in):
    """MarianMTModel (post-norm) or PegasusForConditionalGeneration
    (pre-norm with final layer norms), per the family's modeling file."""
    act = act_fn(cfg.get("activation_function", "gelu"))
    eps = 1e-5
    pre = cfg["model_type"] == "pegasus"

    def block(p, norm, x, f):
        if pre:
            return x + f(layer_norm(P, p + norm, x, eps))
        return layer_norm(P, p + norm, x + f(x), eps)

    x = s2s_stack_input(cfg, table, src)
    for i in range(cfg["encoder_layers"]):
        p = "model.encoder.layers.%d" % i
        x = block(p, ".self_attn_layer_norm", x, lambda h: bart_attn(P, p + ".self_attn", h, h, cfg["encoder_attention_heads"], False))
        x = block(p, ".final_layer_norm", x, lambda h: linear(P, p + ".fc2", act(linear(P, p + ".fc1", h))))
    if pre:
        x = layer_norm(P, "model.encoder.layer_norm", x, eps)
    enc = x
    heads = cfg["decoder_attention_heads"]
    y = s2s_stack_input(cfg, table, dec_in)
    for i in range(cfg["decoder_layers"]):
        p = "model.decoder.layers.%d" % i
        y = block(p, ".self_attn_layer_norm", y, lambda h: bart_attn(P, p + ".self_attn", h, h, heads, True))
        y = block(p, ".encoder_attn_layer_norm", y, lambda h: bart_attn(P, p + ".encoder_attn", h, enc, heads, False))
        y = block(p, ".final_layer_norm", y, lambda h: linear(P, p + ".fc2", act(linear(P, p + ".fc1", h))))
    if pre:
        y = layer_norm(P, "model.decoder.layer_norm", y, eps)
    return y @ table.t() + P["final_logits_bias"][0]


def s2s_batch_for(name):
    def batch(cfg):
        with open(os.path.join(HERE, name, "vocab.json")) as f:
            vocab = json.load(f)
        eos = cfg["eos_token_id"]
        pairs = [
            ("copy : the red cat near the trees", "the red cat near the trees"),
            ("which animal eats fruit ?", "the cat eats fruit ."),
        ]
        examples = []
        for a, b in pairs:
            src = bart_encode_text(vocab, a) + [eos]  # no <s> in these families
            tgt = bart_encode_text(vocab, b) + [eos]
            dec_in = [cfg["decoder_start_token_id"]] + tgt[:-1]
            examples.append({"source": src, "target": tgt, "decoder_input": dec_in,
                             "positions": [0, 1, len(dec_in) // 2, len(dec_in) - 1]})
        cat = bart_encode_text(vocab, " cat")
        animal = bart_encode_text(vocab, " animal")
        fish = bart_encode_text(vocab, " fish")
        assert len(cat) == 1 and len(animal) == 1 and len(fish) == 1, (cat, animal, fish)
        # as for BART: both sides, source only, no example, and </s>
        trained = sorted(set(cat + animal + fish + [eos]))
        return examples, trained
    return batch


def s2s_run(cfg, P, table, examples):
    logits, terms = [], []
    for ex in examples:
        out = s2s_logits(P, cfg, table, ex["source"], ex["decoder_input"])
        logits.append(out[ex["positions"]])
        terms.append(torch.nn.functional.cross_entropy(out, torch.tensor(ex["target"]), reduction="sum"))
    n = sum(len(ex["target"]) for ex in examples)
    return logits, torch.stack(terms).sum() / n



FAMILIES = {
    # model_type: (directory, table key, batch builder, runner)
    "bert": ("bert-tiny", "bert.embeddings.word_embeddings.weight", bert_batch, bert_run),
    "bart": ("bart-tiny", "model.shared.weight", bart_batch, bart_run),
    "electra": ("electra-tiny", "electra.embeddings.word_embeddings.weight", electra_batch, electra_run),
    "marian": ("marian-tiny", "model.shared.weight", s2s_batch_for("marian-tiny"), s2s_run),
    "pegasus": ("pegasus-tiny", "model.shared.weight", s2s_batch_for("pegasus-tiny"), s2s_run),
}


def r12(v):
    """12 significant digits: far below every tolerance, a third smaller files."""
    return float("%.12g" % v)


def reference(model_type):
    name, table_key, batch, run = FAMILIES[model_type]
    cfg, P = load_model(name)
    assert cfg["model_type"] == model_type
    examples, trained = batch(cfg)
    table = P[table_key].clone().requires_grad_(True)
    logits, loss = run(cfg, P, table, examples)
    loss.backward()
    return {
        "model": name,
        "model_type": model_type,
        "note": "written by testdata/hfref.py; float64 PyTorch re-implementation of transformers' model",
        "examples": examples,
        "trained_ids": trained,
        "loss": float(loss),
        "logits": [[[r12(v) for v in row] for row in l.tolist()] for l in logits],
        "grads": [[r12(v) for v in table.grad[i].tolist()] for i in trained],
    }


# ---------------------------------------------------------------------------
# torch.optim.Adam / AdamW
# ---------------------------------------------------------------------------

def adam_reference():
    gen = torch.Generator().manual_seed(11)
    p0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    # Gradients of very different sizes, including tiny ones where the
    # placement of eps matters, and a zero gradient at step 3.
    grads = []
    for step in range(6):
        g = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        g[0] *= 1e-7
        g[1] *= 1e-3
        if step == 2:
            g.zero_()
        grads.append(g)
    cases = []
    for opt_name, kw in [("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)),
                         ("adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
                         ("adamw", dict(lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
                         ("adam", dict(lr=1e-3, betas=(0.5, 0.9), eps=1e-10, weight_decay=0.05))]:
        p = p0.clone().requires_grad_(True)
        cls = torch.optim.Adam if opt_name == "adam" else torch.optim.AdamW
        opt = cls([p], **kw)
        params = []
        for g in grads:
            p.grad = g.clone()
            opt.step()
            params.append(p.detach().flatten().tolist())
        cases.append({"optimizer": opt_name, "lr": kw["lr"], "beta1": kw["betas"][0], "beta2": kw["betas"][1],
                      "eps": kw["eps"], "weight_decay": kw.get("weight_decay", 0.0), "params": params})
    return {
        "note": "written by testdata/hfref.py; torch.optim.Adam/AdamW steps, float64, torch " + torch.__version__,
        "shape": [3, 4],
        "initial": p0.flatten().tolist(),
        "grads": [g.flatten().tolist() for g in grads],
        "cases": cases,
    }


# ---------------------------------------------------------------------------


def outputs():
    out = {"%s.json" % FAMILIES[t][0]: reference(t) for t in FAMILIES}
    out["adam.json"] = adam_reference()
    return out


def close(a, b, path="$"):
    """Compare two JSON values; floats to 1e-9 relative to their list's scale."""
    if isinstance(a, list) and a and isinstance(a[0], float):
        scale = max(1e-300, max(abs(v) for v in b))
        worst = max(abs(x - y) for x, y in zip(a, b)) / scale if len(a) == len(b) else float("inf")
        return [] if worst <= 1e-9 else ["%s: differs by %.3g relative" % (path, worst)]
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return ["%s: length differs" % path]
        return [e for i, (x, y) in enumerate(zip(a, b)) for e in close(x, y, "%s[%d]" % (path, i))]
    if isinstance(a, dict):
        if not isinstance(b, dict) or sorted(a) != sorted(b):
            return ["%s: keys differ" % path]
        return [e for k in a for e in close(a[k], b[k], "%s.%s" % (path, k)) if k != "note"]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-9 * max(abs(b), 1e-300) else ["%s: %r != %r" % (path, a, b)]
    return [] if a == b else ["%s: %r != %r" % (path, a, b)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    bad = []
    for fname, data in outputs().items():
        path = os.path.join(OUT, fname)
        if args.check:
            with open(path) as f:
                errs = close(data, json.load(f))
            bad += ["%s %s" % (fname, e) for e in errs]
            print("%s: %s" % (fname, "ok" if not errs else "%d differences" % len(errs)))
            continue
        os.makedirs(OUT, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
        print("wrote %s" % os.path.relpath(path))
    if bad:
        print("\n".join(bad[:20]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
