#!/usr/bin/env python3
"""Write (and check) Trainable Tokens adapter directories in PEFT's layout.

Run from the repository root:

    /usr/bin/python3 testdata/peft/make_fixtures.py            # (re)write the fixtures
    /usr/bin/python3 testdata/peft/make_fixtures.py --check DIR [--model testdata/bert-tiny] [--check DIR2 ...]

Writing. The fixtures stand for what PEFT's standalone Trainable Tokens method
(`get_peft_model(model, TrainableTokensConfig(...))` then `save_pretrained`)
writes for the tiny test models, produced outside Go so that gopeft's loader
is tested against PEFT's layout rather than against gopeft's own writer:

  bert-tiny/       BertForMaskedLM, target_modules=None, which PEFT resolves to
                   the input embedding's name and writes as a string
                   ("bert.embeddings.word_embeddings"). The model's
                   tie_word_embeddings is true, so PEFT ties
                   cls.predictions.decoder to the embedding's layer and, since
                   the tied layer shares the parameter dict, the checkpoint
                   holds the same rows twice: under
                   base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta
                   and base_model.model.cls.predictions.decoder.trainable_tokens_delta.
  bert-tiny-list/  BertForMaskedLM, target_modules=["word_embeddings"] (list
                   form), init_weights=false, loaded with
                   tie_word_embeddings=False: one tensor only.
  bert-tiny-resized/  PEFT's default output after a vocabulary resize (see
                   write_resized_bert): deltas plus the whole embedding
                   layers, ...base_layer.weight/.bias (needs torch).
  bart-tiny-resized/  the same for BART (see write_resized_bart).
  bert-tiny-newtokens/  new words added in transformers, the adapter and the
                   tokenizer saved together (see write_newtokens_bert).
  bert-tiny-bin/   the bert-tiny adapter as adapter_model.bin (torch.save,
                   PEFT's safe_serialization=False; needs torch).
  bart-tiny/       BartForConditionalGeneration, target_modules=None ->
                   "model.shared". BART's tied modules
                   (model.encoder.embed_tokens, model.decoder.embed_tokens -
                   separate nn.Embedding modules sharing the weight in
                   transformers - and lm_head) get tied layers, so the
                   checkpoint holds four identical tensors, including
                   base_model.model.lm_head.trainable_tokens_delta.

adapter_config.json is json.dumps(config, indent=2, sort_keys=True) of the
fields PEFT's TrainableTokensConfig has (PeftConfigMixin: task_type,
peft_type, auto_mapping, peft_version; PeftConfig: base_model_name_or_path,
revision, inference_mode; TrainableTokensConfig: token_indices,
target_modules, init_weights), with inference_mode true and auto_mapping set
as PeftModel.save_pretrained does when task_type is None.

adapter_model.safetensors is written by hand with struct and json exactly as
the safetensors library lays it out: 8-byte little-endian header length, a
compact JSON header ("__metadata__" first, then the tensors in name order,
all F32) padded with spaces to a multiple of 8 bytes, then the little-endian
data in the same order. Metadata is {"format": "pt"}, as PEFT writes it.

The rows are absolute rows (PEFT's trainable_tokens_delta), one per token id
in token_indices order, from a closed formula so that Go tests can recompute
them independently of any file reader:

    row(id)[j] = float32(((id*7 + j*13) % 41 - 20) / 3.0 * 0.01)

The output is byte-identical on every run (no randomness, no timestamps).

Checking. --check DIR reads an adapter directory (for example one written by
gopeft's Save) the way PEFT and the safetensors library would. With --model
it applies PEFT's loading rules (see peft_load_rules: which modules PEFT
wraps and ties, missing and unexpected keys, token ids beyond the
vocabulary PEFT's injection indexes, resized by the tokenizer files next to
the adapter or by saved embedding layers) and fails wherever PEFT would
warn, raise or leave rows at their initial values; --untied loads the model
as with tie_word_embeddings=False. It also fails on: config keys PEFT does
not know, a wrong peft_type, a safetensors header that is not UTF-8 JSON, an
entry without exactly dtype/shape/data_offsets, offsets that do not tile the
data section, non-string metadata, keys not of the form
base_model.model.<module>.trainable_tokens_delta, shapes other than
[len(token_indices), dim]. The tensors are then loaded with torch
(torch.frombuffer) and summarised. With --model, each <module> must be a
module of that Hugging Face model (its state dict has <module>.weight of
shape [V, dim]) and every token id must be < V.
"""

import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

PEFT_VERSION = "0.20.0"

# Every field PEFT's TrainableTokensConfig (and its bases) has.
PEFT_FIELDS = {
    "task_type", "peft_type", "auto_mapping", "peft_version",
    "base_model_name_or_path", "revision", "inference_mode",
    "token_indices", "target_modules", "init_weights",
}

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}


def row(token_id, dim):
    vals = [((token_id * 7 + j * 13) % 41 - 20) / 3.0 * 0.01 for j in range(dim)]
    # round to float32 exactly as packing does
    return list(struct.unpack("<%df" % dim, struct.pack("<%df" % dim, *vals)))


def safetensors_bytes(tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes)."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(t[3] for t in tensors)


def peft_config(token_indices, target_modules, init_weights, base_class, library, base_name):
    return {
        "auto_mapping": {"base_model_class": base_class, "parent_library": library},
        "base_model_name_or_path": base_name,
        "inference_mode": True,
        "init_weights": init_weights,
        "peft_type": "TRAINABLE_TOKENS",
        "peft_version": PEFT_VERSION,
        "revision": None,
        "target_modules": target_modules,
        "task_type": None,
        "token_indices": token_indices,
    }


def write_adapter(name, config, modules, dim):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    ids = config["token_indices"]
    data = b"".join(struct.pack("<%df" % dim, *row(i, dim)) for i in ids)
    tensors = [("base_model.model.%s.trainable_tokens_delta" % m, "F32", (len(ids), dim), data) for m in modules]
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))


def write_all():
    bert = ("BertForMaskedLM", "transformers.models.bert.modeling_bert", "gopeft/bert-tiny")
    bart = ("BartForConditionalGeneration", "transformers.models.bart.modeling_bart", "gopeft/bart-tiny")
    write_adapter(
        "bert-tiny",
        peft_config([200, 5, 100, 7], "bert.embeddings.word_embeddings", True, *bert),
        ["bert.embeddings.word_embeddings", "cls.predictions.decoder"],
        32,
    )
    write_adapter(
        "bert-tiny-list",
        peft_config([3, 4], ["word_embeddings"], False, *bert),
        ["bert.embeddings.word_embeddings"],
        32,
    )
    write_adapter(
        "bart-tiny",
        peft_config([50, 60, 400], "model.shared", True, *bart),
        ["model.shared", "model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head"],
        32,
    )


def write_resized_bert():
    """bert-tiny-resized/: what PEFT's save_pretrained writes by default
    (save_embedding_layers="auto") for BertForMaskedLM after
    model.resize_token_embeddings(1042) and a Trainable Tokens adapter on the
    four new ids plus one old id: the two trainable_tokens_delta tensors (the
    embedding and the tied decoder), then the whole layers
    bert.embeddings.word_embeddings.base_layer.weight [1042, 32],
    cls.predictions.decoder.base_layer.weight [1042, 32] (the same tied
    table) and cls.predictions.decoder.base_layer.bias [1042] (the old bias,
    then transformers' zero padding for the new ids). The base rows are
    testdata/bert-tiny's; the new ids' base rows, which transformers draws at
    random, are a closed formula (base_row below); the adapter rows are row()."""
    import torch

    sd = torch.load(os.path.join(HERE, "..", "bert-tiny", "pytorch_model.bin"), map_location="cpu")
    table = sd["bert.embeddings.word_embeddings.weight"].to(torch.float32)
    bias = sd["cls.predictions.bias"].to(torch.float32)
    v, dim = table.shape
    new = 4
    extra = torch.tensor([base_row(v + i, dim) for i in range(new)], dtype=torch.float32)
    grown = torch.cat([table, extra]).contiguous()
    grown_bias = torch.cat([bias, torch.zeros(new)]).contiguous()
    ids = [v + i for i in range(new)] + [5]
    bert = ("BertForMaskedLM", "transformers.models.bert.modeling_bert", "gopeft/bert-tiny")
    cfg = peft_config(ids, "bert.embeddings.word_embeddings", True, *bert)
    out = os.path.join(HERE, "bert-tiny-resized")
    os.makedirs(out, exist_ok=True)
    delta = b"".join(struct.pack("<%df" % dim, *row(i, dim)) for i in ids)
    layer = grown.numpy().astype("<f4").tobytes()
    tensors = [("base_model.model.%s.trainable_tokens_delta" % m, "F32", (len(ids), dim), delta)
               for m in ("bert.embeddings.word_embeddings", "cls.predictions.decoder")]
    tensors += [("base_model.model.%s.base_layer.weight" % m, "F32", (v + new, dim), layer)
                for m in ("bert.embeddings.word_embeddings", "cls.predictions.decoder")]
    tensors.append(("base_model.model.cls.predictions.decoder.base_layer.bias", "F32", (v + new,),
                    grown_bias.numpy().astype("<f4").tobytes()))
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
    with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))


def write_resized_bart():
    """bart-tiny-resized/: as bert-tiny-resized for BartForConditionalGeneration
    resized to 1104: the four tied deltas (model.shared, the encoder's and
    decoder's embed_tokens, lm_head) and each module's whole layer
    <module>.base_layer.weight [1104, 32] (the same shared table; lm_head has
    no bias, final_logits_bias is a buffer PEFT does not save)."""
    import torch

    sd = torch.load(os.path.join(HERE, "..", "bart-tiny", "pytorch_model.bin"), map_location="cpu")
    table = sd["model.shared.weight"].to(torch.float32)
    v, dim = table.shape
    new = 4
    extra = torch.tensor([base_row(v + i, dim) for i in range(new)], dtype=torch.float32)
    layer = torch.cat([table, extra]).contiguous().numpy().astype("<f4").tobytes()
    ids = [v + i for i in range(new)]
    bart = ("BartForConditionalGeneration", "transformers.models.bart.modeling_bart", "gopeft/bart-tiny")
    cfg = peft_config(ids, "model.shared", True, *bart)
    out = os.path.join(HERE, "bart-tiny-resized")
    os.makedirs(out, exist_ok=True)
    delta = b"".join(struct.pack("<%df" % dim, *row(i, dim)) for i in ids)
    mods = ("model.shared", "model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head")
    tensors = [("base_model.model.%s.trainable_tokens_delta" % m, "F32", (len(ids), dim), delta) for m in mods]
    tensors += [("base_model.model.%s.base_layer.weight" % m, "F32", (v + new, dim), layer) for m in mods]
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
    with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))


def write_bin_bert():
    """bert-tiny-bin/: the bert-tiny fixture as PEFT writes it with
    safe_serialization=False: adapter_model.bin, torch.save of the dict of
    tensors (zip format, written to an in-memory buffer so the archive name
    is fixed), and the same adapter_config.json."""
    import io
    import torch

    src = os.path.join(HERE, "bert-tiny")
    out = os.path.join(HERE, "bert-tiny-bin")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "adapter_config.json")) as f:
        cfg = json.load(f)
    ids, dim = cfg["token_indices"], 32
    rows_ = torch.tensor([row(i, dim) for i in ids], dtype=torch.float32)
    sd = {"base_model.model.%s.trainable_tokens_delta" % m: rows_.clone()
          for m in ("bert.embeddings.word_embeddings", "cls.predictions.decoder")}
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=True)
    with open(os.path.join(out, "adapter_model.bin"), "wb") as f:
        f.write(buf.getvalue())
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))


def write_newtokens_bert():
    """bert-tiny-newtokens/: the new-token workflow as transformers + PEFT
    leave it: tokenizer.add_tokens(["zorblax", "quindle", "flumph",
    "vintral"]), model.resize_token_embeddings(len(tokenizer)), a Trainable
    Tokens adapter on the new ids, then peft_model.save_pretrained(dir,
    save_embedding_layers=False) and tokenizer.save_pretrained(dir), so that
    AutoPeftModel.from_pretrained(dir) resizes the base itself. The
    tokenizer files follow BertTokenizer.save_pretrained: vocab.txt holds the
    base vocabulary only, the added tokens are in added_tokens.json and in
    tokenizer_config.json's added_tokens_decoder."""
    bert = ("BertForMaskedLM", "transformers.models.bert.modeling_bert", "gopeft/bert-tiny")
    words = ["zorblax", "quindle", "flumph", "vintral"]
    with open(os.path.join(HERE, "..", "bert-tiny", "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read()
    v = len(vocab.splitlines())
    ids = list(range(v, v + len(words)))
    write_adapter("bert-tiny-newtokens", peft_config(ids, "bert.embeddings.word_embeddings", True, *bert),
                  ["bert.embeddings.word_embeddings", "cls.predictions.decoder"], 32)
    out = os.path.join(HERE, "bert-tiny-newtokens")
    with open(os.path.join(HERE, "..", "bert-tiny", "tokenizer_config.json")) as f:
        tc = json.load(f)
    tc["added_tokens_decoder"] = {str(i): {"content": w, "lstrip": False, "normalized": True, "rstrip": False,
                                           "single_word": False, "special": False} for i, w in zip(ids, words)}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        f.write(json.dumps(tc, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write(vocab)
    with open(os.path.join(out, "added_tokens.json"), "w") as f:
        f.write(json.dumps(dict(zip(words, ids)), indent=2) + "\n")


def base_row(token_id, dim):
    vals = [((token_id * 5 + j * 11) % 37 - 18) / 3.0 * 0.01 for j in range(dim)]
    return list(struct.unpack("<%df" % dim, struct.pack("<%df" % dim, *vals)))


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def object_pairs_no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate JSON key in %r" % keys)
    return dict(pairs)


def check(dir_, model_dir=None, untied=False):
    with open(os.path.join(dir_, "adapter_config.json"), "rb") as f:
        cfg = json.loads(f.read().decode("utf-8"), object_pairs_hook=object_pairs_no_dups)
    unknown = set(cfg) - PEFT_FIELDS
    if unknown:
        fail("adapter_config.json keys PEFT does not know (it would warn and drop them): %s" % sorted(unknown))
    if cfg.get("peft_type") != "TRAINABLE_TOKENS":
        fail("peft_type %r" % cfg.get("peft_type"))
    ids = cfg["token_indices"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        fail("token_indices %r" % ids)
    tm = cfg.get("target_modules")
    if not (tm is None or isinstance(tm, str) or (isinstance(tm, list) and all(isinstance(s, str) for s in tm))):
        fail("target_modules %r" % tm)
    if not isinstance(cfg.get("init_weights", True), bool) or not isinstance(cfg.get("inference_mode", False), bool):
        fail("init_weights/inference_mode must be bools")
    if cfg.get("peft_version") is not None:
        v = cfg["peft_version"].partition("@")[0].split(".")
        if len(v) < 3 or not all(p.isdigit() for p in v[:2]):
            fail("peft_version %r is not a version number" % cfg["peft_version"])

    with open(os.path.join(dir_, "adapter_model.safetensors"), "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > 100_000_000 or 8 + n > len(raw):
        fail("header length %d" % n)
    hb = raw[8:8 + n]
    if hb[:1] != b"{":
        fail("header does not start with '{'")
    header = json.loads(hb.decode("utf-8").rstrip(" "), object_pairs_hook=object_pairs_no_dups)
    meta = header.pop("__metadata__", None) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        fail("__metadata__ values must be strings: %r" % meta)
    if meta.get("format") != "pt":
        fail("__metadata__ format %r, PEFT writes 'pt'" % meta.get("format"))
    data = raw[8 + n:]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    pos = 0
    for name, info in entries:
        if set(info) != {"dtype", "shape", "data_offsets"}:
            fail("%s: entry keys %s" % (name, sorted(info)))
        b, e = info["data_offsets"]
        if b != pos:
            fail("%s: begins at %d, expected %d" % (name, b, pos))
        size = DTYPE_BYTES[info["dtype"]]
        for d in info["shape"]:
            size *= d
        if e - b != size:
            fail("%s: %d bytes for shape %s" % (name, e - b, info["shape"]))
        pos = e
    if pos != len(data):
        fail("tensors cover %d of %d data bytes" % (pos, len(data)))

    import torch  # only now: the structural checks need no torch

    weights = None
    if model_dir:
        weights = torch.load(os.path.join(model_dir, "pytorch_model.bin"), map_location="cpu")
        peft_load_rules(cfg, header, weights, model_dir, dir_, untied)
    else:
        print("note: no --model, so PEFT's loading rules (wrapped and tied modules, missing and unexpected keys) were not applied")
    torch_dtype = {"F32": torch.float32, "F64": torch.float64}
    for name, info in sorted(header.items()):
        prefix, suffix = "base_model.model.", ".trainable_tokens_delta"
        if name.endswith(BASE_LAYER_SUFFIXES) and name.startswith(prefix):
            print("ok %s %s %s (a full embedding layer: PEFT's save_embedding_layers)" % (name, info["dtype"], info["shape"]))
            continue
        if not (name.startswith(prefix) and name.endswith(suffix)):
            fail("key %s is not base_model.model.<module>.trainable_tokens_delta" % name)
        module = name[len(prefix):-len(suffix)]
        if info["dtype"] not in torch_dtype:
            fail("%s: dtype %s" % (name, info["dtype"]))
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=torch_dtype[info["dtype"]]).reshape(info["shape"])
        if t.dim() != 2 or t.shape[0] != len(ids):
            fail("%s: shape %s for %d token ids" % (name, list(t.shape), len(ids)))
        if weights is not None:
            w = weights.get(module + ".weight")
            if w is None:
                fail("%s: the model has no module %s" % (name, module))
            if w.shape[1] != t.shape[1]:
                fail("%s: shape %s vs module weight %s" % (name, list(t.shape), list(w.shape)))
        print("ok %s %s %s sum=%.6f" % (name, info["dtype"], list(t.shape), float(t.double().sum())))
    print("ok config target_modules=%s token_indices=%s" % (json.dumps(tm), ids))


# ---------------------------------------------------------------------------
# PEFT's loading rules (PeftModel.from_pretrained / AutoPeftModel on a
# standalone Trainable Tokens adapter), as read in PEFT's source:
#   - src/peft/tuners/trainable_tokens/model.py: target_modules None means the
#     input embedding's name; after injecting the targets, when the input
#     embedding is wrapped and config.tie_word_embeddings is true, every module
#     whose name ends with one of the model's tied-weight modules gets a tied
#     layer sharing the embedding's parameter dict;
#   - tuners_utils.check_target_module_exists: a string target is matched with
#     re.fullmatch, a list entry matches a module named like it or ending with
#     "." + entry;
#   - layer.py update_layer: weight[token_indices] (IndexError for an id >= the
#     table's rows: the base must be resized first);
#   - save_and_load.set_peft_model_state_dict + load_state_dict(strict=False):
#     keys of modules that are not wrapped are dropped silently (their rows are
#     lost), and PeftModel.from_pretrained warns "Found missing adapter keys"
#     for every wrapped module without a key (its rows stay at their initial
#     values unless the module shares its parameter with one that has a key);
#   - save_embedding_layers: <module>.base_layer.weight (and .bias) keys are
#     whole embedding layers, loaded into the (resized) base;
#   - auto.py AutoPeftModel: tokenizer files next to the adapter make it
#     resize the base to len(tokenizer) before injecting.
# The check fails wherever PEFT would warn, raise or leave a row at its
# initial value.
# ---------------------------------------------------------------------------

BASE_LAYER_SUFFIXES = (".base_layer.weight", ".base_layer.bias")

# transformers' _tied_weights_keys (modules tied to the input embedding) and
# get_input_embeddings() per architecture / model_type.
TIED_MODULES = {
    "BertForMaskedLM": ["cls.predictions.decoder"],
    "BartForConditionalGeneration": ["model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head"],
    "ElectraForMaskedLM": ["generator_lm_head"],
    "MarianMTModel": ["model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head"],
    "PegasusForConditionalGeneration": ["model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head"],
}
INPUT_EMBEDDING = {"bert": "bert.embeddings.word_embeddings", "bart": "model.shared",
                   "electra": "electra.embeddings.word_embeddings", "marian": "model.shared", "pegasus": "model.shared"}
TASK_TYPES = {None, "SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"}


def tokenizer_size(dir_):
    """len(tokenizer) of the tokenizer files in dir_, or None when there are none
    (vocab.txt or vocab.json, plus added_tokens.json / tokenizer_config.json's
    added_tokens_decoder entries not in the vocabulary)."""
    if not os.path.exists(os.path.join(dir_, "tokenizer_config.json")):
        return None
    vocab = set()
    if os.path.exists(os.path.join(dir_, "vocab.txt")):
        with open(os.path.join(dir_, "vocab.txt"), encoding="utf-8") as f:
            vocab = {line.rstrip("\n") for line in f}
            vocab.discard("")
    elif os.path.exists(os.path.join(dir_, "vocab.json")):
        with open(os.path.join(dir_, "vocab.json"), encoding="utf-8") as f:
            vocab = set(json.load(f))
    else:
        fail("%s has tokenizer_config.json but no vocab.txt or vocab.json" % dir_)
    extra = set()
    if os.path.exists(os.path.join(dir_, "added_tokens.json")):
        with open(os.path.join(dir_, "added_tokens.json"), encoding="utf-8") as f:
            extra |= set(json.load(f))
    with open(os.path.join(dir_, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    for v in (tc.get("added_tokens_decoder") or {}).values():
        extra.add(v["content"] if isinstance(v, dict) else v)
    return len(vocab | extra)


def peft_load_rules(cfg, header, weights, model_dir, adapter_dir, untied=False):
    with open(os.path.join(model_dir, "config.json")) as f:
        mcfg = json.load(f)
    if untied:
        mcfg["tie_word_embeddings"] = False
    if cfg.get("task_type") not in TASK_TYPES:
        fail("task_type %r is not one of PEFT's TaskType values" % cfg.get("task_type"))
    arch = (mcfg.get("architectures") or [None])[0]
    input_emb = INPUT_EMBEDDING.get(mcfg.get("model_type"))
    if input_emb is None:
        fail("model_type %r: its input embedding is not known to this check" % mcfg.get("model_type"))
    # Module names: every prefix of a state-dict key; candidates for wrapping
    # are the modules with a 2-D weight.
    modules = set()
    for k in weights:
        parts = k.split(".")
        for i in range(1, len(parts)):
            modules.add(".".join(parts[:i]))
    with_weight = sorted(m for m in modules if m + ".weight" in weights and weights[m + ".weight"].dim() == 2)
    tm = cfg.get("target_modules")
    if tm is None:
        tm = input_emb

    def targeted(name):
        if isinstance(tm, str):
            return re.fullmatch(tm, name) is not None
        return name in tm or any(name.endswith("." + t) for t in tm)

    wrapped = [m for m in sorted(modules) if targeted(m)]
    if not wrapped:
        fail("target_modules %s matches no module of %s: PEFT raises 'Target modules ... not found'" % (json.dumps(tm), arch))
    for m in wrapped:
        if m not in with_weight:
            fail("target_modules %s matches module %s, which has no 2-D weight: PEFT cannot wrap it" % (json.dumps(tm), m))
    tied = []
    if input_emb in wrapped and mcfg.get("tie_word_embeddings", True):
        for m in with_weight:
            if m not in wrapped and any(m.endswith(t) for t in TIED_MODULES.get(arch, [])):
                tied.append(m)
    expected = {"base_model.model.%s.trainable_tokens_delta" % m for m in wrapped + tied}
    deltas = {k for k in header if k.endswith(".trainable_tokens_delta")}
    base_layers = {k for k in header if k.endswith(BASE_LAYER_SUFFIXES)}
    missing = sorted(expected - deltas)
    unexpected = sorted(deltas - expected)
    if unexpected:
        # The input embedding and its tied layers share one parameter dict:
        # a key of any of them fills all.
        shared = ([input_emb] + tied) if tied else []
        key = "base_model.model.%s.trainable_tokens_delta"
        shared_loaded = any(key % m not in missing for m in shared)
        lost = [m for m in wrapped + tied if key % m in missing and not (m in shared and shared_loaded)]
        fail("unexpected keys %s: PEFT's load_state_dict(strict=False) drops them silently%s"
             % (unexpected, "; wrapped modules %s then keep their initial rows" % lost if lost else
                "; missing keys %s" % missing if missing else ""))
    if missing:
        fail("missing keys %s: PEFT warns 'Found missing adapter keys while loading the checkpoint'" % missing)
    # The vocabulary PEFT's injection indexes: the base's, resized by
    # AutoPeftModel to the tokenizer next to the adapter, or the saved layers.
    vocab = weights[input_emb + ".weight"].shape[0]
    resized_by = "the base model (%s rows)" % vocab
    ntok = tokenizer_size(adapter_dir)
    if ntok is not None:
        vocab, resized_by = ntok, "the tokenizer next to the adapter (AutoPeftModel resizes the base to %d)" % ntok
    for k in sorted(base_layers):
        mod = k[len("base_model.model."):-len(".base_layer.weight")] if k.endswith(".weight") else None
        if mod is None:
            continue
        if mod not in wrapped + tied:
            fail("%s: a saved embedding layer for %s, which PEFT does not wrap" % (k, mod))
        rows_ = header[k]["shape"][0]
        if ntok is not None and rows_ != ntok:
            fail("%s has %d rows but the tokenizer next to the adapter has %d tokens" % (k, rows_, ntok))
        vocab, resized_by = rows_, "the saved embedding layer %s (%d rows)" % (k, rows_)
    ids = cfg["token_indices"]
    if ids and max(ids) >= vocab:
        fail("token id %d >= %d rows of %s: PEFT raises IndexError at injection; save the tokenizer with the added "
             "tokens next to the adapter (AutoPeftModel then resizes the base) or resize the base first" % (max(ids), vocab, resized_by))
    print("ok PEFT rules: wraps %s, tied %s, %d keys as PEFT expects, vocabulary from %s"
          % (wrapped, tied, len(expected), resized_by))


def main(argv):
    usage = "usage: make_fixtures.py [--check DIR [--model HF_MODEL_DIR [--untied]]]..."
    if not argv:
        write_all()
        write_resized_bert()
        write_resized_bart()
        write_bin_bert()
        write_newtokens_bert()
        return
    jobs = []
    i = 0
    while i < len(argv):
        if argv[i] == "--check" and i + 1 < len(argv):
            jobs.append([argv[i + 1], None, False])
            i += 2
        elif argv[i] == "--model" and i + 1 < len(argv) and jobs and jobs[-1][1] is None:
            jobs[-1][1] = argv[i + 1]
            i += 2
        elif argv[i] == "--untied" and jobs and jobs[-1][1] is not None:
            jobs[-1][2] = True  # load the model with tie_word_embeddings=False
            i += 1
        else:
            fail(usage)
    for dir_, model, untied in jobs:
        check(dir_, model, untied)


if __name__ == "__main__":
    main(sys.argv[1:])
