#!/usr/bin/env python3
"""Regenerate gopeft's tiny deterministic test models and corpora.

Run from the repository root:

    /usr/bin/python3 testdata/generate.py

It (re)writes, byte for byte identically on every run:

  testdata/bert-tiny/   config.json, tokenizer_config.json, vocab.txt,
                        pytorch_model.bin   (Hugging Face BertForMaskedLM names)
  testdata/bart-tiny/   config.json, vocab.json, merges.txt,
                        pytorch_model.bin   (Hugging Face BartForConditionalGeneration names)
  testdata/electra-tiny/  config.json, tokenizer_config.json, vocab.txt,
                        pytorch_model.bin   (ElectraForMaskedLM, the generator)
  testdata/marian-tiny/   config.json, vocab.json, merges.txt,
                        pytorch_model.bin   (MarianMTModel)
  testdata/pegasus-tiny/  config.json, vocab.json, merges.txt,
                        pytorch_model.bin   (PegasusForConditionalGeneration)
  testdata/corpus/      new-token corpora (see testdata/README.md)

Only the Python standard library and torch are used (no transformers). The
initial weights, the training text and the masking come from random.Random
with fixed seeds. All models are then pretrained a little with torch (see
"Pretraining" below and testdata/README.md), seeded, on one thread, with
deterministic algorithms only, so the trained weights are the same on every
run with the same torch build. The .bin files are written with
torch.save(..., _use_new_zipfile_serialization=True) into an in-memory buffer,
so the zip records are always named "archive/..." whatever the output path;
torch's zip writer stores fixed timestamps, which makes the archive itself
deterministic.
"""

import collections
import io
import json
import math
import os
import random
import re
import string
import sys
import time

# OpenBLAS picks its kernels (and so the rounding of every matrix product in
# pretraining) from OPENBLAS_CORETYPE, or by probing the CPU when it is unset.
# The committed weights were made with the probed kernels, so drop a forced
# core type (and L2 size) before torch loads OpenBLAS: a developer's or CI's
# environment must not change the generated bits.
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import torch  # noqa: E402  (after the environment fix above)

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------
# Shared word material
# ---------------------------------------------------------------------------

# Made-up words that must NOT be in either vocabulary. The corpora teach them.
NEW_WORDS = ["zorblax", "quindle", "flumph", "vintral"]

# Several hundred common English words (lowercase). Duplicates are removed
# keeping the first occurrence; every word used in the corpora is listed here.
ENGLISH_WORDS = """
the a an and or but if then than so as at by for from in into of on onto off
out over under up down to with without about above across after against along
among around before behind below beside between beyond during except inside
near outside since through until upon within not no yes nor yet also too very
just only even still already again ever never always often sometimes usually
once twice here there where when why how what which who whom whose this that
these those i me my mine myself you your yours yourself he him his himself she
her hers herself it its itself we us our ours they them their theirs one ones
some any many much more most few less least all both each every either neither
other another such own same enough several
be is am are was were been being have has had having do does did done doing
will would shall should can could may might must go goes went gone going come
comes came get gets got give gave take took make makes made see sees saw seen
know knew think thought say said tell told ask asked find found use used want
need feel felt try look looks like likes love loves live lives lived work call
called keep kept let begin began seem help show turn start run runs ran move
play hold bring brought write wrote read sit sat stand stood lose lost pay meet
met include set learn change lead understand watch follow stop create speak
spoke allow add spend grow grew open walk win offer remember consider appear
buy wait serve die send expect build builds stay fall fell cut cuts reach
remain suggest raise pass sell decide pull eat eats ate drink sleep sleeps cook
bake baked wash carry jump swim fly flies climb climbs sing sings dance draw
drive ride throw catch laugh cry smile hide hides close break breaks fix fixes
clean paint listen travel visit arrive leave left return enjoy hope wish
believe smell smells taste tastes opens
time year people way day man woman child children world life hand part place
case week company system program question government number night point home
water room mother father area money story fact month lot right study book eye
job word business issue side kind head house service friend power hour game
line end member law car city community name president team minute idea kid
body information back parent face level office door health person art war
history party result morning reason research girl guy moment air teacher force
education foot feet boy age policy music market sense nation plan college
interest death experience effect class control care field development role
effort rate heart show leader light voice wife police mind price report
decision son view relationship town road arm difference value building action
model season society tax director position player record paper space ground
form event matter center couple site project activity star table court oil
situation cost industry figure street image phone data picture practice piece
land product doctor wall patient worker news test movie north south east west
film sea island river lake mountain mountains hill forest tree trees wood woods
leaf leaves flower flowers grass garden farm stone rock sand sun moon sky rain
snow wind cloud fire ice animal animals dog cat bird birds fish horse cow pig
sheep mouse bear wolf fox rabbit snake frog bee tail wing wings egg eggs nest
roof winter summer spring autumn food bread cake fruit apple apples orange
banana milk tea coffee sugar salt butter cheese meat soup rice breakfast lunch
dinner kitchen chair bed window box bag cup plate knife spoon fork bottle glass
key tool tools hammer metal iron gold silver pen ship ships boat train bus
plane bike port bridge shop store school library church hospital station
village country king queen prince army sister brother family baby letter song
color bank
good new first last long great little old big high different small large next
early young important public bad able red blue green yellow black white brown
gray pink purple dark bright hot cold warm cool sweet sour bitter soft hard
heavy fast slow quick happy sad angry tired hungry full empty dirty rich poor
strong weak short tall wide narrow deep sharp round flat dry wet loud quiet
easy simple real true free sure clear whole best better nice fine beautiful
pretty ugly strange wild fresh ready busy safe dangerous famous tiny
two three four five six seven eight nine ten hundred thousand second third
now today tomorrow yesterday tonight soon later well really quite almost
together away maybe perhaps please thank thanks hello goodbye
copy repeat answer
""".split()

# ---------------------------------------------------------------------------
# Deterministic helpers
# ---------------------------------------------------------------------------


def dedupe(items):
    seen = set()
    out = []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


def write_bytes(path, data):
    """Write atomically and only the given bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_state_dict(path, sd):
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=True)
    write_bytes(path, buf.getvalue())


class Init:
    """HF-like random init from a seeded Python RNG (independent of torch's RNG)."""

    def __init__(self, seed, std=0.02):
        self.rng = random.Random(seed)
        self.std = std

    def normal(self, *shape, std=None):
        std = self.std if std is None else std
        n = 1
        for s in shape:
            n *= s
        vals = [self.rng.gauss(0.0, std) for _ in range(n)]
        return torch.tensor(vals, dtype=torch.float32).reshape(*shape)

    def ones(self, n):
        return torch.ones(n, dtype=torch.float32)

    def linear(self, sd, prefix, n_in, n_out):
        sd[prefix + ".weight"] = self.normal(n_out, n_in)
        sd[prefix + ".bias"] = self.normal(n_out)

    def layer_norm(self, sd, prefix, n):
        sd[prefix + ".weight"] = self.ones(n)
        sd[prefix + ".bias"] = self.normal(n)


# ---------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------

NEW_WORD_FACTS = {
    "zorblax": {
        "kind": "animal",
        "adjs": ["red", "small", "wild", "fast"],
        "places": ["in the forest", "near the trees", "by the river", "under the leaves"],
        "actions": ["eats fruit", "runs fast", "climbs trees", "sleeps all day", "hides in the grass"],
    },
    "quindle": {
        "kind": "tool",
        "adjs": ["blue", "sharp", "metal", "heavy"],
        "places": ["in the box", "on the table", "in the shop", "in his hand"],
        "actions": ["cuts wood", "breaks stone", "fixes the door", "opens the box", "cuts bread"],
    },
    "flumph": {
        "kind": "food",
        "adjs": ["sweet", "warm", "soft", "fresh"],
        "places": ["in the kitchen", "on the plate", "at breakfast", "in the morning"],
        "actions": ["tastes sweet", "smells good", "goes well with milk", "is made with sugar"],
    },
    "vintral": {
        "kind": "bird",
        "adjs": ["green", "tiny", "loud", "pretty"],
        "places": ["in the sky", "on the roof", "in the garden", "above the lake"],
        "actions": ["sings in the morning", "flies south in winter", "builds a nest", "eats small fish"],
    },
}

PEOPLE = ["friend", "sister", "brother", "mother", "father", "teacher"]

MLM_TEMPLATES = [
    "the {w} is {adj} .",
    "the {w} {action} .",
    "a {adj} {w} {action} .",
    "there is a {adj} {w} {place} .",
    "i saw a {adj} {w} {place} .",
    "the {kind} called {w} {action} .",
    "my {person} likes the {adj} {w} .",
    "every {w} {action} .",
    "look , the {w} {action} !",
    "the {w} {place} is very {adj} .",
    "we found the {w} {place} .",
    "is the {w} {adj} ? yes , the {w} is {adj} .",
]

FILLER_SUBJECTS = {
    "cat": (["black", "soft", "small"], ["sleeps all day", "eats fish", "climbs trees"]),
    "dog": (["brown", "big", "happy"], ["runs fast", "eats meat", "sleeps on the bed"]),
    "hammer": (["heavy", "metal", "old"], ["breaks stone", "is in the box", "is on the table"]),
    "bread": (["warm", "fresh", "soft"], ["smells good", "is on the plate", "goes well with butter"]),
    "city": (["old", "busy", "famous"], ["has a big port", "is by the sea", "is full of people"]),
}


def mlm_sentences(rng, word, facts, n):
    out = []
    tries = 0
    while len(out) < n and tries < 10000:
        tries += 1
        t = rng.choice(MLM_TEMPLATES)
        s = t.format(
            w=word,
            kind=facts["kind"],
            adj=rng.choice(facts["adjs"]),
            place=rng.choice(facts["places"]),
            action=rng.choice(facts["actions"]),
            person=rng.choice(PEOPLE),
        )
        if s not in out:
            out.append(s)
    return out


def filler_sentences(rng, n):
    out = []
    subjects = sorted(FILLER_SUBJECTS)
    tries = 0
    while len(out) < n and tries < 10000:
        tries += 1
        subj = rng.choice(subjects)
        adjs, actions = FILLER_SUBJECTS[subj]
        t = rng.choice(MLM_TEMPLATES[:3] + MLM_TEMPLATES[6:8])
        s = t.format(w=subj, kind="", adj=rng.choice(adjs), place="", action=rng.choice(actions),
                     person=rng.choice(PEOPLE))
        if s not in out:
            out.append(s)
    return out


def seq2seq_pairs(rng, word, facts):
    pairs = []
    for action in facts["actions"]:
        pairs.append(("which %s %s ?" % (facts["kind"], action), "the %s %s ." % (word, action)))
    for adj in facts["adjs"]:
        pairs.append(("what is the %s %s called ?" % (adj, facts["kind"]), "it is a %s ." % word))
    for adj, place in zip(facts["adjs"], facts["places"]):
        # Each "where" question has exactly one answer.
        pairs.append(("where is the %s %s ?" % (adj, facts["kind"]), "the %s is %s ." % (word, place)))
        adj = rng.choice(facts["adjs"])
        pairs.append(("copy : the %s %s %s" % (adj, word, place), "the %s %s %s" % (adj, word, place)))
    for action in facts["actions"]:
        pairs.append(("repeat : the %s %s ." % (word, action), "the %s %s ." % (word, action)))
    return pairs


def build_corpora():
    rng = random.Random(20240611)
    train, evl = [], []
    for w in NEW_WORDS:
        s = mlm_sentences(rng, w, NEW_WORD_FACTS[w], 56)
        train += s[:48]
        evl += s[48:]
    f = filler_sentences(rng, 40)
    train += f[:34]
    evl += f[34:]
    rng.shuffle(train)
    rng.shuffle(evl)

    s2s_train, s2s_eval = [], []
    for w in NEW_WORDS:
        pairs = seq2seq_pairs(rng, w, NEW_WORD_FACTS[w])
        rng.shuffle(pairs)
        s2s_eval += pairs[:5]
        s2s_train += pairs[5:]
    rng.shuffle(s2s_train)
    rng.shuffle(s2s_eval)
    return train, evl, s2s_train, s2s_eval


def corpus_words(lines):
    words = []
    for line in lines:
        for part in line.split("\t"):
            words += part.split()
    return words


# ---------------------------------------------------------------------------
# BERT (WordPiece)
# ---------------------------------------------------------------------------

BERT_SUFFIXES = """
##s ##es ##ed ##ing ##ly ##er ##ers ##est ##ness ##ment ##ments ##able ##ible
##ful ##less ##ion ##ions ##tion ##sion ##al ##ial ##ity ##ous ##ive ##ize ##ise
##ism ##ist ##y ##ie ##en ##or ##ish ##ic ##ical ##ward ##wards ##ship ##hood
##dom ##ant ##ent ##ance ##ence ##ure ##age ##ery ##ry ##ty ##th ##let ##like
##an ##ian ##ee ##ar ##at ##el ##in ##it ##le ##on ##ow ##ra ##re ##ri ##ro ##st
##te ##ur ##ve ##um ##us ##ad ##ck ##nd ##ll
""".split()


def bert_vocab():
    chars = list(string.ascii_lowercase) + list(string.digits) + list(string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += ["[unused%d]" % i for i in range(30)]
    vocab += chars
    vocab += ["##" + c for c in chars]
    vocab += ENGLISH_WORDS
    vocab += BERT_SUFFIXES
    vocab = dedupe(vocab)
    # cybertron's vocabulary.Term is off by one, so its BERT converter never
    # fills the last row: keep an otherwise unused token there.
    vocab.append("[unused_last]")
    return vocab


def bert_state_dict(cfg, seed=1234):
    init = Init(seed=seed)
    V, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    P, T = cfg["max_position_embeddings"], cfg["type_vocab_size"]
    sd = collections.OrderedDict()
    word = init.normal(V, H)
    sd["bert.embeddings.position_ids"] = torch.arange(P, dtype=torch.int64).unsqueeze(0)
    sd["bert.embeddings.word_embeddings.weight"] = word
    sd["bert.embeddings.position_embeddings.weight"] = init.normal(P, H)
    sd["bert.embeddings.token_type_embeddings.weight"] = init.normal(T, H)
    init.layer_norm(sd, "bert.embeddings.LayerNorm", H)
    for i in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d" % i
        init.linear(sd, p + ".attention.self.query", H, H)
        init.linear(sd, p + ".attention.self.key", H, H)
        init.linear(sd, p + ".attention.self.value", H, H)
        init.linear(sd, p + ".attention.output.dense", H, H)
        init.layer_norm(sd, p + ".attention.output.LayerNorm", H)
        init.linear(sd, p + ".intermediate.dense", H, I)
        init.linear(sd, p + ".output.dense", I, H)
        init.layer_norm(sd, p + ".output.LayerNorm", H)
    init.linear(sd, "bert.pooler.dense", H, H)
    bias = init.normal(V)
    sd["cls.predictions.bias"] = bias
    init.linear(sd, "cls.predictions.transform.dense", H, H)
    init.layer_norm(sd, "cls.predictions.transform.LayerNorm", H)
    # Tied, as in HF checkpoints: same storage as the word embeddings / bias.
    sd["cls.predictions.decoder.weight"] = word.detach()
    sd["cls.predictions.decoder.bias"] = bias.detach()
    return sd


def write_bert(out_dir, corpus_train):
    vocab = bert_vocab()
    cfg = collections.OrderedDict([
        ("architectures", ["BertForMaskedLM"]),
        ("attention_probs_dropout_prob", 0.1),
        ("classifier_dropout", None),
        ("embeddings_size", 32),
        ("gradient_checkpointing", False),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("hidden_size", 32),
        ("initializer_range", 0.02),
        ("intermediate_size", 64),
        ("layer_norm_eps", 1e-12),
        ("max_position_embeddings", 64),
        ("model_type", "bert"),
        ("num_attention_heads", 4),
        ("num_hidden_layers", 2),
        ("pad_token_id", 0),
        ("position_embedding_type", "absolute"),
        ("tie_word_embeddings", True),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.30.2"),
        ("type_vocab_size", 2),
        ("use_cache", True),
        ("vocab_size", len(vocab)),
    ])
    tok_cfg = collections.OrderedDict([
        ("cls_token", "[CLS]"),
        ("do_lower_case", True),
        ("mask_token", "[MASK]"),
        ("model_max_length", 64),
        ("pad_token", "[PAD]"),
        ("sep_token", "[SEP]"),
        ("strip_accents", None),
        ("tokenize_chinese_chars", True),
        ("tokenizer_class", "BertTokenizer"),
        ("unk_token", "[UNK]"),
    ])
    sd = bert_state_dict(cfg)
    P = pretrain_bert(sd, cfg, vocab, corpus_train)
    for k, v in P.items():
        sd[k] = v.detach()  # same key, same position in the state dict
    # Tied, as in HF checkpoints: distinct tensors sharing the storage of the
    # word embeddings / bias (as bert_state_dict makes them).
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"].detach()
    sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"].detach()
    assert torch.equal(sd["cls.predictions.decoder.weight"], sd["bert.embeddings.word_embeddings.weight"])
    write_json(os.path.join(out_dir, "config.json"), cfg)
    write_json(os.path.join(out_dir, "tokenizer_config.json"), tok_cfg)
    write_text(os.path.join(out_dir, "vocab.txt"), "".join(t + "\n" for t in vocab))
    save_state_dict(os.path.join(out_dir, "pytorch_model.bin"), sd)
    return vocab


# ---------------------------------------------------------------------------
# BART (byte-level BPE)
# ---------------------------------------------------------------------------


def byte_symbols():
    """GPT-2 style reversible byte -> printable unicode character table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TABLE = byte_symbols()

# ASCII version of the GPT-2 pre-tokenization regexp used by cybertron's
# byte-level pre-tokenizer (no prefix space is added).
PRETOKENIZE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def pretokenize(text):
    return ["".join(BYTE_TABLE[b] for b in piece.encode("utf-8")) for piece in PRETOKENIZE.findall(text)]


def train_bpe(counts, base_vocab, target_size):
    """Plain BPE training; ties are broken by the lexicographically smallest pair."""
    words = {tuple(w): c for w, c in counts.items()}
    vocab = list(base_vocab)
    known = set(vocab)
    merges = []
    while len(vocab) < target_size:
        pairs = collections.Counter()
        for syms, c in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        (a, b), n = best
        if n < 2:
            break
        merges.append((a, b))
        tok = a + b
        if tok not in known:
            known.add(tok)
            vocab.append(tok)
        new_words = {}
        for syms, c in words.items():
            out = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(tok)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            key = tuple(out)
            new_words[key] = new_words.get(key, 0) + c
        words = new_words
    return vocab, merges


def bpe_encode(text, ranks, vocab_ids):
    """Reference encoder (used only for self-checks)."""
    ids = []
    for piece in pretokenize(text):
        syms = list(piece)
        while len(syms) > 1:
            cands = [(ranks.get((syms[i], syms[i + 1]), None), i) for i in range(len(syms) - 1)]
            cands = [c for c in cands if c[0] is not None]
            if not cands:
                break
            _, i = min(cands)
            syms = syms[:i] + [syms[i] + syms[i + 1]] + syms[i + 2:]
        ids += [vocab_ids[s] for s in syms]
    return ids


def bart_tokenizer(corpus_lines):
    counts = collections.Counter()
    for w in ENGLISH_WORDS:
        counts[pretokenize(w)[0]] += 1
        counts[pretokenize(" " + w)[0]] += 2
    for line in corpus_lines:
        for part in line.split("\t"):
            for piece in pretokenize(part):
                if any(nw in piece for nw in NEW_WORDS):
                    continue  # the made-up words must stay unknown to the tokenizer
                counts[piece] += 1
    for d in string.digits + string.punctuation:
        counts[pretokenize(" " + d)[0]] += 1
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    base = specials + [BYTE_TABLE[b] for b in range(256)]
    vocab, merges = train_bpe(counts, base, target_size=1099)
    vocab.append("<mask>")
    return vocab, merges


def bart_state_dict(cfg):
    init = Init(seed=5678)
    V, D = cfg["vocab_size"], cfg["d_model"]
    P = cfg["max_position_embeddings"] + 2  # BartLearnedPositionalEmbedding offset
    sd = collections.OrderedDict()
    shared = init.normal(V, D)
    sd["final_logits_bias"] = init.normal(1, V)
    sd["model.shared.weight"] = shared
    for side in ("encoder", "decoder"):
        p = "model." + side
        sd[p + ".embed_tokens.weight"] = shared.detach()
        sd[p + ".embed_positions.weight"] = init.normal(P, D)
        n_layers = cfg[side + "_layers"]
        ffn = cfg[side + "_ffn_dim"]
        for i in range(n_layers):
            lp = "%s.layers.%d" % (p, i)
            attns = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
            for att in attns:
                for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
                    init.linear(sd, "%s.%s.%s" % (lp, att, proj), D, D)
                init.layer_norm(sd, "%s.%s_layer_norm" % (lp, att), D)
            init.linear(sd, lp + ".fc1", D, ffn)
            init.linear(sd, lp + ".fc2", ffn, D)
            init.layer_norm(sd, lp + ".final_layer_norm", D)
        init.layer_norm(sd, p + ".layernorm_embedding", D)
    sd["lm_head.weight"] = shared.detach()
    return sd


def write_bart(out_dir, corpus_lines, corpus_pairs):
    vocab, merges = bart_tokenizer(corpus_lines)
    assert len(set(vocab)) == len(vocab)
    cfg = collections.OrderedDict([
        ("_name_or_path", "gopeft/bart-tiny"),
        ("_num_labels", 3),
        ("activation_dropout", 0.1),
        ("activation_function", "gelu"),
        ("add_bias_logits", False),
        ("add_final_layer_norm", False),
        ("architectures", ["BartForConditionalGeneration"]),
        ("attention_dropout", 0.1),
        ("bos_token_id", 0),
        ("classif_dropout", 0.1),
        ("classifier_dropout", 0.0),
        ("d_model", 32),
        ("decoder_attention_heads", 4),
        ("decoder_ffn_dim", 64),
        ("decoder_layerdrop", 0.0),
        ("decoder_layers", 2),
        ("decoder_start_token_id", 2),
        ("dropout", 0.1),
        ("early_stopping", True),
        ("encoder_attention_heads", 4),
        ("encoder_ffn_dim", 64),
        ("encoder_layerdrop", 0.0),
        ("encoder_layers", 2),
        ("eos_token_id", 2),
        ("forced_bos_token_id", 0),
        ("forced_eos_token_id", 2),
        ("id2label", collections.OrderedDict([("0", "LABEL_0"), ("1", "LABEL_1"), ("2", "LABEL_2")])),
        ("init_std", 0.02),
        ("is_encoder_decoder", True),
        ("label2id", collections.OrderedDict([("LABEL_0", 0), ("LABEL_1", 1), ("LABEL_2", 2)])),
        ("length_penalty", 1.0),
        ("max_length", 20),
        ("max_position_embeddings", 64),
        ("min_length", 0),
        ("model_type", "bart"),
        ("no_repeat_ngram_size", 0),
        ("normalize_before", False),
        ("normalize_embedding", True),
        ("num_beams", 1),
        ("num_hidden_layers", 2),
        ("output_past", True),
        ("pad_token_id", 1),
        ("scale_embedding", False),
        ("static_position_embeddings", False),
        ("tie_word_embeddings", True),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.30.2"),
        ("use_cache", True),
        ("vocab_size", len(vocab)),
    ])
    sd = bart_state_dict(cfg)
    P = pretrain_bart(sd, cfg, vocab, merges, corpus_pairs)
    for k, v in P.items():
        sd[k] = v.detach()
    for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
        sd[k] = sd["model.shared.weight"].detach()  # tied: same storage, as bart_state_dict makes them
    for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(sd[k], sd["model.shared.weight"])
    vocab_ids = collections.OrderedDict((t, i) for i, t in enumerate(vocab))
    write_json(os.path.join(out_dir, "config.json"), cfg)
    write_text(os.path.join(out_dir, "vocab.json"), json.dumps(vocab_ids, ensure_ascii=False) + "\n")
    write_text(os.path.join(out_dir, "merges.txt"),
               "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    save_state_dict(os.path.join(out_dir, "pytorch_model.bin"), sd)
    return vocab, merges, cfg


# ---------------------------------------------------------------------------
# Pretraining
# ---------------------------------------------------------------------------
#
# Random weights carry no context: the encoder output at a [MASK] would be
# the same whatever the sentence says. So both models are pretrained a little
# (with torch, on the CPU, deterministically) on ordinary sentences made from
# the corpus templates, in which the new words are replaced by ordinary nouns
# of the same kind ("the fox climbs trees ."). The new words themselves are
# never seen. The forward passes below are minimal re-implementations of the
# Hugging Face modules, written directly on the state dict's tensors so that
# the trained values are saved under exactly the same names.

# Ordinary nouns per kind; they replace the new words in pretraining text.
PRETRAIN_NOUNS = {
    "animal": ["cat", "dog", "fox", "rabbit", "horse", "bear", "wolf", "mouse", "frog", "pig"],
    "tool": ["hammer", "knife", "tool", "key", "spoon", "fork"],
    "food": ["bread", "cake", "apple", "cheese", "soup", "rice", "butter", "banana"],
    "bird": ["bird", "bee"],
}

# More contexts per kind, so that the models see the kinds in varied text.
PRETRAIN_EXTRA = {
    "animal": {"adjs": ["brown", "big"], "places": ["in the woods", "on the farm"],
               "actions": ["eats meat", "eats grass"]},
    "tool": {"adjs": ["iron", "old"], "places": ["in the bag", "on the wall"],
             "actions": ["cuts meat", "breaks the ice"]},
    "food": {"adjs": ["hot", "good"], "places": ["at lunch", "at dinner"],
             "actions": ["tastes good", "is made with butter"]},
    "bird": {"adjs": ["yellow", "white"], "places": ["in the tree", "over the sea"],
             "actions": ["flies away", "sings a song"]},
}

KINDS = ["animal", "tool", "food", "bird"]


def kind_facts(kind):
    base = next(f for f in NEW_WORD_FACTS.values() if f["kind"] == kind)
    extra = PRETRAIN_EXTRA[kind]
    return {"kind": kind, "adjs": base["adjs"] + extra["adjs"],
            "places": base["places"] + extra["places"], "actions": base["actions"] + extra["actions"]}


def noun_for(rng):
    """A random ordinary noun of the same kind for each new word."""
    return {w: rng.choice(PRETRAIN_NOUNS[NEW_WORD_FACTS[w]["kind"]]) for w in NEW_WORDS}


def replace_new_words(text, nouns):
    return " ".join(nouns.get(t, t) for t in text.split())


def pretrain_text(seed, n_per_kind):
    """Ordinary sentences (no new word) and seq2seq pairs for pretraining."""
    rng = random.Random(seed)
    sents, pairs = [], []
    for kind in KINDS:
        facts = kind_facts(kind)
        for _ in range(n_per_kind):
            noun = rng.choice(PRETRAIN_NOUNS[kind])
            sents += mlm_sentences(rng, noun, facts, 1)
    sents += filler_sentences(rng, 40)
    for _ in range(n_per_kind // 8):
        for kind in KINDS:
            noun = rng.choice(PRETRAIN_NOUNS[kind])
            pairs += seq2seq_pairs(rng, noun, next(f for f in NEW_WORD_FACTS.values() if f["kind"] == kind))
    return sents, pairs


def gelu(x):
    return torch.nn.functional.gelu(x)  # erf form, Hugging Face's "gelu"


def linear(P, prefix, x):
    return torch.nn.functional.linear(x, P[prefix + ".weight"], P[prefix + ".bias"])


def layer_norm(P, prefix, x, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), P[prefix + ".weight"], P[prefix + ".bias"], eps)


def attention(q, k, v, heads, add_mask):
    """Multi-head attention core. q, k, v: [B, L, D], already projected (q
    already scaled); add_mask broadcasts to [B, heads, Lq, Lk]."""
    B, Lq, D = q.shape
    Lk = k.shape[1]
    hd = D // heads
    q = q.view(B, Lq, heads, hd).transpose(1, 2)
    k = k.view(B, Lk, heads, hd).transpose(1, 2)
    v = v.view(B, Lk, heads, hd).transpose(1, 2)
    # Broadcast products instead of batched matmuls: for these tiny shapes they
    # are much faster than a generic BLAS bmm (one gemm call per head).
    scores = (q.unsqueeze(3) * k.unsqueeze(2)).sum(-1)  # [B, h, Lq, Lk]
    probs = torch.softmax(scores + add_mask, dim=-1)
    ctx = (probs.unsqueeze(-1) * v.unsqueeze(2)).sum(3)  # [B, h, Lq, hd]
    return ctx.transpose(1, 2).reshape(B, Lq, D)


NEG = torch.finfo(torch.float32).min


# Pretraining runs without dropout (short, tiny, and faster), so the forward
# passes below are the inference forward passes of the Hugging Face modules.


def bert_encode(P, cfg, ids, pad):
    """BertModel's last hidden state for ids [B, L] (pad: bool [B, L]), token type 0."""
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    L = ids.shape[1]
    x = (torch.nn.functional.embedding(ids, P["bert.embeddings.word_embeddings.weight"],
                                       padding_idx=cfg["pad_token_id"])
         + P["bert.embeddings.position_embeddings.weight"][:L]
         + P["bert.embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(P, "bert.embeddings.LayerNorm", x, eps)
    add_mask = pad[:, None, None, :].float() * NEG
    scale = 1.0 / math.sqrt(H // heads)
    for i in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d" % i
        q = linear(P, p + ".attention.self.query", x) * scale
        k = linear(P, p + ".attention.self.key", x)
        v = linear(P, p + ".attention.self.value", x)
        a = linear(P, p + ".attention.output.dense", attention(q, k, v, heads, add_mask))
        x = layer_norm(P, p + ".attention.output.LayerNorm", a + x, eps)
        h = linear(P, p + ".output.dense", gelu(linear(P, p + ".intermediate.dense", x)))
        x = layer_norm(P, p + ".output.LayerNorm", h + x, eps)
    return x


def bert_mlm_logits(P, cfg, h):
    """BertOnlyMLMHead: transform (dense, gelu, LayerNorm), then the decoder tied to the word embeddings."""
    t = gelu(linear(P, "cls.predictions.transform.dense", h))
    t = layer_norm(P, "cls.predictions.transform.LayerNorm", t, cfg["layer_norm_eps"])
    return torch.nn.functional.linear(t, P["bert.embeddings.word_embeddings.weight"], P["cls.predictions.bias"])


def bart_embed(P, side, ids):
    """Shared token embeddings (scale 1: scale_embedding is false) + learned
    positions (offset 2), then layernorm_embedding."""
    p = "model." + side
    L = ids.shape[1]
    x = torch.nn.functional.embedding(ids, P["model.shared.weight"], padding_idx=1)
    x = x + P[p + ".embed_positions.weight"][2:2 + L]
    return layer_norm(P, p + ".layernorm_embedding", x, 1e-5)


def bart_attn(P, prefix, xq, xkv, heads, add_mask):
    D = xq.shape[-1]
    q = linear(P, prefix + ".q_proj", xq) * (D // heads) ** -0.5
    k = linear(P, prefix + ".k_proj", xkv)
    v = linear(P, prefix + ".v_proj", xkv)
    return linear(P, prefix + ".out_proj", attention(q, k, v, heads, add_mask))


def bart_logits(P, cfg, src, src_pad, dec_in, dec_pad):
    """BartForConditionalGeneration (post-norm layers) logits for decoder inputs dec_in."""
    x = bart_embed(P, "encoder", src)
    src_mask = src_pad[:, None, None, :].float() * NEG
    for i in range(cfg["encoder_layers"]):
        lp = "model.encoder.layers.%d" % i
        heads = cfg["encoder_attention_heads"]
        x = layer_norm(P, lp + ".self_attn_layer_norm", x + bart_attn(P, lp + ".self_attn", x, x, heads, src_mask), 1e-5)
        x = layer_norm(P, lp + ".final_layer_norm", x + linear(P, lp + ".fc2", gelu(linear(P, lp + ".fc1", x))), 1e-5)
    enc = x
    Ld = dec_in.shape[1]
    causal = torch.triu(torch.full((Ld, Ld), NEG), diagonal=1)
    self_mask = torch.minimum(causal[None, None], dec_pad[:, None, None, :].float() * NEG)
    y = bart_embed(P, "decoder", dec_in)
    for i in range(cfg["decoder_layers"]):
        lp = "model.decoder.layers.%d" % i
        heads = cfg["decoder_attention_heads"]
        y = layer_norm(P, lp + ".self_attn_layer_norm", y + bart_attn(P, lp + ".self_attn", y, y, heads, self_mask), 1e-5)
        y = layer_norm(P, lp + ".encoder_attn_layer_norm",
                       y + bart_attn(P, lp + ".encoder_attn", y, enc, heads, src_mask), 1e-5)
        y = layer_norm(P, lp + ".final_layer_norm", y + linear(P, lp + ".fc2", gelu(linear(P, lp + ".fc1", y))), 1e-5)
    return torch.nn.functional.linear(y, P["model.shared.weight"]) + P["final_logits_bias"]


def pad_batch(seqs, pad_id):
    """Right-padded int64 batch and its padding mask."""
    L = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (L - len(s)) for s in seqs], dtype=torch.int64)
    return ids, ids == pad_id


def pad_decoder_batch(seqs, pad_id):
    """pad_batch for decoder inputs: the padding mask comes from the lengths,
    not from the ids, because Marian and Pegasus start decoding with <pad>
    (decoder_start_token_id), which must stay visible. For BART (which starts
    with </s>) both masks are the same."""
    ids, _ = pad_batch(seqs, pad_id)
    L = ids.shape[1]
    pad = torch.tensor([[j >= len(s) for j in range(L)] for s in seqs], dtype=torch.bool)
    return ids, pad


def trainable(sd, skip):
    """Leaf copies of the float tensors (tied aliases left out), in state-dict order."""
    P = collections.OrderedDict()
    for k, v in sd.items():
        if k in skip or not v.is_floating_point():
            continue
        P[k] = v.detach().clone().requires_grad_(True)
    return P


def make_optimizer(P, lr, no_decay):
    decay = [v for k, v in P.items() if not any(s in k for s in no_decay)]
    other = [v for k, v in P.items() if any(s in k for s in no_decay)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": other, "weight_decay": 0.0}], lr=lr)


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.05, (steps - step) / (steps - warmup))


def check_sane(P, name):
    worst = max(float(v.detach().abs().max()) for v in P.values())
    assert all(bool(torch.isfinite(v).all()) for v in P.values()), name + ": non-finite weights"
    assert worst < 20.0, "%s: weights too large (%.3g)" % (name, worst)
    return worst


BERT_STEPS = 1200
BART_STEPS = 1200
BATCH = 32


def bert_example(rng, sent, vocab, nouns_ids, first_word):
    """[CLS] sentence [SEP] and its labels (-100: not predicted). Half the time
    every noun is predicted (as the new words will be), else a random 15% of
    the words, BERT style (80% [MASK], 10% a random ordinary word, 10% kept)."""
    ids = [vocab["[CLS]"]] + [vocab[w] for w in sent.split()] + [vocab["[SEP]"]]
    inner = list(range(1, len(ids) - 1))
    noun_pos = [i for i in inner if ids[i] in nouns_ids]
    if noun_pos and rng.random() < 0.5:
        chosen = noun_pos
    else:
        chosen = [i for i in inner if rng.random() < 0.15] or [rng.choice(inner)]
    inp, labels = list(ids), [-100] * len(ids)
    for i in chosen:
        labels[i] = ids[i]
        r = rng.random()
        if r < 0.8:
            inp[i] = vocab["[MASK]"]
        elif r < 0.9:  # any word from "the" on, except [unused_last]
            inp[i] = first_word + rng.randrange(len(vocab) - first_word - 1)
    return inp, labels


def ordinary_corpora(corpus_train):
    """Ordinary sentences (no new word) for the old-vocabulary guard.

    The held-out set is exactly the one pretrain_bert checks itself on (the
    same seeds and the same exclusion of its training text; keep the two in
    step), so the model never saw these sentences. The mixing set is fresh
    text of the same kind for mixing into the new-word batches; it excludes
    the held-out sentences."""
    rng = random.Random(4242)
    sents, _ = pretrain_text(9001, 700)
    sents += [replace_new_words(s, noun_for(rng)) for s in corpus_train]
    seen = set(dedupe(sents))
    held, _ = pretrain_text(31337, 40)
    held = [s for s in dedupe(held) if s not in seen]
    mix, _ = pretrain_text(2718, 40)
    held_set = set(held)
    mix = [s for s in dedupe(mix) if s not in held_set]
    return mix, held


def pretrain_bert(sd, cfg, vocab_list, corpus_train, name="bert", seeds=(4242, 9001, 31337, 7), steps=BERT_STEPS):
    """Masked-LM pretraining of a BERT-named state dict (ELECTRA's generator
    is pretrained through the same names, then renamed). seeds: the Python
    RNG, the training text, the held-out text and torch."""
    vocab = {t: i for i, t in enumerate(vocab_list)}
    rng = random.Random(seeds[0])
    sents, _ = pretrain_text(seeds[1], 700)
    sents += [replace_new_words(s, noun_for(rng)) for s in corpus_train]
    sents = dedupe(sents)
    held, _ = pretrain_text(seeds[2], 40)
    seen = set(sents)
    held = [s for s in dedupe(held) if s not in seen]
    for s in sents + held:
        for w in s.split():
            assert w in vocab and w not in NEW_WORDS, w
    nouns = {k: {vocab[n] for n in v} for k, v in PRETRAIN_NOUNS.items()}
    all_nouns = set().union(*nouns.values())
    first_word = vocab["the"]
    mask_id = vocab["[MASK]"]

    torch.manual_seed(seeds[3])
    P = trainable(sd, {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"})
    opt = make_optimizer(P, 1e-3, ("LayerNorm", "bias"))
    peak = 5e-3
    order = []
    for step in range(steps):
        if len(order) < BATCH:
            idx = list(range(len(sents)))
            rng.shuffle(idx)
            order += idx
        batch = [bert_example(rng, sents[j], vocab, all_nouns, first_word) for j in order[:BATCH]]
        del order[:BATCH]
        ids, pad = pad_batch([b[0] for b in batch], 0)
        labels, _ = pad_batch([b[1] for b in batch], -100)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak, 100)
        h = bert_encode(P, cfg, ids, pad)
        sel = labels != -100
        loss = torch.nn.functional.cross_entropy(bert_mlm_logits(P, cfg, h[sel]), labels[sel])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print("  %s step %4d  loss %.3f" % (name, step, float(loss)))

    # Held-out ordinary sentences: every word masked in turn, and the noun slot.
    with torch.no_grad():
        tok_ok = tok_n = noun_ok = kind_ok = noun_n = 0
        for s in held:
            ids = [vocab["[CLS]"]] + [vocab[w] for w in s.split()] + [vocab["[SEP]"]]
            seqs, targets = [], []
            for i in range(1, len(ids) - 1):
                seqs.append(ids[:i] + [mask_id] + ids[i + 1:])
                targets.append((i, ids[i]))
            x, pad = pad_batch(seqs, 0)
            logits = bert_mlm_logits(P, cfg, bert_encode(P, cfg, x, pad))
            for r, (i, t) in enumerate(targets):
                tok_ok += int(logits[r, i].argmax()) == t
                tok_n += 1
            kind = next((k for k in KINDS if any(i in nouns[k] for i in ids)), None)
            if kind is None:
                continue
            m = [mask_id if i in nouns[kind] else i for i in ids]
            x, pad = pad_batch([m], 0)
            logits = bert_mlm_logits(P, cfg, bert_encode(P, cfg, x, pad))[0]
            for i in range(len(ids)):
                if m[i] == mask_id:
                    pred = int(logits[i].argmax())
                    noun_ok += pred == ids[i]
                    kind_ok += pred in nouns[kind]
                    noun_n += 1
        print("  " + name + " held-out (%d sentences): token accuracy %.1f%% (%d tokens, each masked alone), "
              "noun slot: exact %.1f%%, right kind %.1f%% (%d); chance %.2f%%"
              % (len(held), 100.0 * tok_ok / tok_n, tok_n, 100.0 * noun_ok / noun_n,
                 100.0 * kind_ok / noun_n, noun_n, 100.0 / len(vocab_list)))
        probes = ["the [MASK] is red .", "the [MASK] is blue .", "the [MASK] is sweet .", "the [MASK] is green ."]
        hs = []
        for s in probes:
            ids = [vocab["[CLS]"]] + [vocab[w] for w in s.split()] + [vocab["[SEP]"]]
            x, pad = pad_batch([ids], 0)
            h = bert_encode(P, cfg, x, pad)[0, 2]
            hs.append(h)
            top = bert_mlm_logits(P, cfg, h[None])[0].topk(3).indices.tolist()
            print("    %-24s -> %s" % (s, " ".join(vocab_list[i] for i in top)))
        cos = [float(torch.nn.functional.cosine_similarity(hs[a], hs[b], dim=0))
               for a in range(4) for b in range(a + 1, 4)]
        print("    [MASK] hidden states of the 4 probes: mean pairwise cosine %.3f" % (sum(cos) / len(cos)))
    print("  %s max |weight| %.3f" % (name, check_sane(P, name)))
    return P


def pretrain_bart(sd, cfg, vocab_list, merges, corpus_pairs, name="bart", specials=(0, 1, 2, "<mask>"),
                  seeds=(777, 9002, 4711, 8), steps=BART_STEPS, logits_fn=None, frozen=(), peak=5e-3):
    """Seq2seq pretraining (denoising, copying, the task pairs) of BART and
    of the other BART-like families (logits_fn: the family's forward).
    specials: bos (None: no <s>), pad, eos and the mask token's string;
    seeds: the Python RNG, the training text, the held-out text and torch;
    frozen: keys that are not trained (static sinusoidal positions)."""
    ranks = {m: i for i, m in enumerate(merges)}
    vocab = {t: i for i, t in enumerate(vocab_list)}
    bos, pad_id, eos, mask_id = specials[0], specials[1], specials[2], vocab[specials[3]]
    bos_ = [] if bos is None else [bos]
    if logits_fn is None:
        logits_fn = bart_logits

    cache = {}

    def bpe(text):
        if text not in cache:
            cache[text] = bpe_encode(text, ranks, vocab)
        return cache[text]

    def enc(text):
        return bos_ + bpe(text) + [eos]

    rng = random.Random(seeds[0])
    sents, pairs = pretrain_text(seeds[1], 400)
    for a, b in corpus_pairs:
        nouns = noun_for(rng)  # the same noun on both sides
        pairs.append((replace_new_words(a, nouns), replace_new_words(b, nouns)))
    held_s, held_p = pretrain_text(seeds[2], 12)
    seen = set(sents)
    held_s = [s for s in held_s if s not in seen]

    def denoise(s):
        words = s.split()
        if rng.random() < 0.5:  # text infilling: a span of 1-3 words -> one <mask>
            n = rng.randint(1, min(3, len(words)))
            i = rng.randrange(len(words) - n + 1)
            left, right = words[:i], words[i + n:]
            src = bos_ + (bpe(" ".join(left)) if left else []) + [mask_id]
            src += (bpe(" " + " ".join(right)) if right else []) + [eos]
        else:  # token masking
            src = enc(s)
            first = len(bos_)  # never mask <s> or </s>
            src = [mask_id if first <= j < len(src) - 1 and rng.random() < 0.2 else t for j, t in enumerate(src)]
        return src, enc(s)

    def example():
        r = rng.random()
        if r < 0.5:
            return denoise(rng.choice(sents))
        if r < 0.6:
            s = rng.choice(sents)
            prefix = rng.choice(["copy :", "repeat :"])
            return enc(prefix + " " + s), enc(s)
        a, b = rng.choice(pairs)
        return enc(a), enc(b)

    torch.manual_seed(seeds[3])
    tied = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"}
    P = trainable(sd, tied | set(frozen))
    for k in frozen:
        P[k] = sd[k]  # read by the forward, never updated
    opt = make_optimizer(P, 1e-3, ("layer_norm", "layernorm", "bias"))
    for step in range(steps):
        batch = [example() for _ in range(BATCH)]
        src, src_pad = pad_batch([b[0] for b in batch], pad_id)
        tgt, tgt_pad = pad_batch([b[1] for b in batch], pad_id)
        dec_in, dec_pad = pad_decoder_batch([[cfg["decoder_start_token_id"]] + b[1][:-1] for b in batch], pad_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak, 100)
        logits = logits_fn(P, cfg, src, src_pad, dec_in, dec_pad)
        loss = torch.nn.functional.cross_entropy(logits[~tgt_pad], tgt[~tgt_pad])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print("  %s step %4d  loss %.3f" % (name, step, float(loss)))

    with torch.no_grad():
        def greedy(src):
            s, sp = pad_batch([src], pad_id)
            out = [cfg["decoder_start_token_id"]]
            while len(out) < cfg["max_length"]:
                d, dp = pad_decoder_batch([out], pad_id)
                nxt = int(logits_fn(P, cfg, s, sp, d, dp)[0, -1].argmax())
                out.append(nxt)
                if nxt == eos:
                    break
            return out[1:]

        # Copying unseen sentences, and the task format (whose nouns are
        # random, so an exact match is partly luck).
        for what, tests in (("copy", [("copy : " + s, s) for s in held_s[::4]]), ("task", held_p[::3])):
            tok_ok = tok_n = exact = 0
            for a, b in tests:
                src, tgt = enc(a), enc(b)
                s, sp = pad_batch([src], pad_id)
                d, dp = pad_decoder_batch([[cfg["decoder_start_token_id"]] + tgt[:-1]], pad_id)
                pred = logits_fn(P, cfg, s, sp, d, dp)[0].argmax(-1).tolist()
                tok_ok += sum(int(p == t) for p, t in zip(pred, tgt))
                tok_n += len(tgt)
                exact += greedy(src) == tgt
            print("  %s held-out %s pairs: teacher-forced token accuracy %.1f%%, greedy exact match %d/%d"
                  % (name, what, 100.0 * tok_ok / tok_n, exact, len(tests)))
    for k in frozen:
        del P[k]
    print("  %s max |weight| %.3f" % (name, check_sane(P, name)))
    return P


# ---------------------------------------------------------------------------
# The other families cybertron converts: ELECTRA (onto BERT), Marian and
# Pegasus (onto BART)
# ---------------------------------------------------------------------------
#
# cybertron's converter maps model_type "electra" onto its BERT and "marian"
# / "pegasus" onto its BART, with each family's config flags. The tiny
# checkpoints below use each family's real Hugging Face parameter names and
# config keys (including the legacy BART-style flags that the Helsinki-NLP
# and google checkpoints carry and that cybertron reads), are pretrained a
# little as BERT and BART are, and reuse their vocabularies (ELECTRA the
# WordPiece one; Marian and Pegasus the byte-level BPE tokens, with each
# family's special tokens and ids, written as vocab.json + merges.txt in
# place of their SentencePiece models).

ELECTRA_STEPS = 800
S2S_FAMILY_STEPS = 800

# ElectraForMaskedLM (the generator) names, from the BERT names the
# pretraining forward uses. ELECTRA has no pooler; its MLM head is
# generator_predictions (dense, gelu, LayerNorm) and generator_lm_head,
# whose weight is tied to the word embeddings.
ELECTRA_HEAD_NAMES = [
    ("cls.predictions.transform.LayerNorm.weight", "generator_predictions.LayerNorm.weight"),
    ("cls.predictions.transform.LayerNorm.bias", "generator_predictions.LayerNorm.bias"),
    ("cls.predictions.transform.dense.weight", "generator_predictions.dense.weight"),
    ("cls.predictions.transform.dense.bias", "generator_predictions.dense.bias"),
]


def write_electra(out_dir, bert_vocab_list, corpus_train):
    cfg = collections.OrderedDict([
        ("architectures", ["ElectraForMaskedLM"]),
        ("attention_probs_dropout_prob", 0.1),
        ("classifier_dropout", None),
        ("embedding_size", 32),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("hidden_size", 32),
        ("initializer_range", 0.02),
        ("intermediate_size", 64),
        ("layer_norm_eps", 1e-12),
        ("max_position_embeddings", 64),
        ("model_type", "electra"),
        ("num_attention_heads", 4),
        ("num_hidden_layers", 2),
        ("pad_token_id", 0),
        ("position_embedding_type", "absolute"),
        ("summary_activation", "gelu"),
        ("summary_last_dropout", 0.1),
        ("summary_type", "first"),
        ("summary_use_proj", True),
        ("tie_word_embeddings", True),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.30.2"),
        ("type_vocab_size", 2),
        ("use_cache", True),
        ("vocab_size", len(bert_vocab_list)),
    ])
    tok_cfg = collections.OrderedDict([
        ("cls_token", "[CLS]"),
        ("do_lower_case", True),
        ("mask_token", "[MASK]"),
        ("model_max_length", 64),
        ("pad_token", "[PAD]"),
        ("sep_token", "[SEP]"),
        ("strip_accents", None),
        ("tokenize_chinese_chars", True),
        ("tokenizer_class", "ElectraTokenizer"),
        ("unk_token", "[UNK]"),
    ])
    sd = bert_state_dict(cfg, seed=2468)
    P = pretrain_bert(sd, cfg, bert_vocab_list, corpus_train, name="electra",
                      seeds=(2424, 9003, 31338, 9), steps=ELECTRA_STEPS)
    for k, v in P.items():
        sd[k] = v.detach()
    out = collections.OrderedDict()
    for k, v in sd.items():
        if k.startswith("bert.embeddings.") or k.startswith("bert.encoder."):
            out["electra." + k[len("bert."):]] = v
    for src, dst in ELECTRA_HEAD_NAMES:
        out[dst] = sd[src]
    word = out["electra.embeddings.word_embeddings.weight"]
    out["generator_lm_head.weight"] = word.detach()  # tied: same storage
    out["generator_lm_head.bias"] = sd["cls.predictions.bias"]
    write_json(os.path.join(out_dir, "config.json"), cfg)
    write_json(os.path.join(out_dir, "tokenizer_config.json"), tok_cfg)
    write_text(os.path.join(out_dir, "vocab.txt"), "".join(t + "\n" for t in bert_vocab_list))
    save_state_dict(os.path.join(out_dir, "pytorch_model.bin"), out)


def sinusoidal_positions(n, d):
    """Marian's and Pegasus' static position table: sin of the even
    frequencies in the first half of the columns, cos in the second."""
    half = d // 2 if d % 2 == 0 else d // 2 + 1
    out = torch.zeros(n, d, dtype=torch.float32)
    for pos in range(n):
        for j in range(d):
            angle = pos / math.pow(10000, 2 * (j // 2) / d)
            if j % 2 == 0:
                out[pos, j // 2] = math.sin(angle)
            else:
                out[pos, half + j // 2] = math.cos(angle)
    return out


def act(cfg, x):
    name = cfg["activation_function"]
    if name == "swish":
        return torch.nn.functional.silu(x)
    if name == "relu":
        return torch.nn.functional.relu(x)
    if name == "gelu":
        return gelu(x)
    raise ValueError(name)


def s2s_embed(P, cfg, side, ids):
    """Scaled shared embeddings + positions (+ layernorm_embedding), the
    BART-family embedding with the family's flags."""
    p = "model." + side
    L = ids.shape[1]
    scale = math.sqrt(cfg["d_model"]) if cfg["scale_embedding"] else 1.0
    x = torch.nn.functional.embedding(ids, P["model.shared.weight"], padding_idx=cfg["pad_token_id"]) * scale
    x = x + P[p + ".embed_positions.weight"][:L]
    if cfg["normalize_embedding"]:
        x = layer_norm(P, p + ".layernorm_embedding", x, 1e-5)
    return x


def s2s_block(cfg, P, norm_prefix, x, f):
    """A residual block, pre-norm (x + f(norm(x))) or post-norm (norm(x + f(x)))."""
    if cfg["normalize_before"]:
        return x + f(layer_norm(P, norm_prefix, x, 1e-5))
    return layer_norm(P, norm_prefix, x + f(x), 1e-5)


def s2s_logits(P, cfg, src, src_pad, dec_in, dec_pad):
    """MarianMTModel / PegasusForConditionalGeneration logits: BART's
    layers with the family's flags (pre- or post-norm, scaled embeddings,
    static positions, final layer norms, activation)."""
    src_mask = src_pad[:, None, None, :].float() * NEG
    x = s2s_embed(P, cfg, "encoder", src)
    for i in range(cfg["encoder_layers"]):
        lp = "model.encoder.layers.%d" % i
        heads = cfg["encoder_attention_heads"]
        x = s2s_block(cfg, P, lp + ".self_attn_layer_norm", x,
                      lambda h: bart_attn(P, lp + ".self_attn", h, h, heads, src_mask))
        x = s2s_block(cfg, P, lp + ".final_layer_norm", x,
                      lambda h: linear(P, lp + ".fc2", act(cfg, linear(P, lp + ".fc1", h))))
    if cfg["add_final_layer_norm"]:
        x = layer_norm(P, "model.encoder.layer_norm", x, 1e-5)
    enc = x
    Ld = dec_in.shape[1]
    causal = torch.triu(torch.full((Ld, Ld), NEG), diagonal=1)
    self_mask = torch.minimum(causal[None, None], dec_pad[:, None, None, :].float() * NEG)
    y = s2s_embed(P, cfg, "decoder", dec_in)
    for i in range(cfg["decoder_layers"]):
        lp = "model.decoder.layers.%d" % i
        heads = cfg["decoder_attention_heads"]
        y = s2s_block(cfg, P, lp + ".self_attn_layer_norm", y,
                      lambda h: bart_attn(P, lp + ".self_attn", h, h, heads, self_mask))
        y = s2s_block(cfg, P, lp + ".encoder_attn_layer_norm", y,
                      lambda h: bart_attn(P, lp + ".encoder_attn", h, enc, heads, src_mask))
        y = s2s_block(cfg, P, lp + ".final_layer_norm", y,
                      lambda h: linear(P, lp + ".fc2", act(cfg, linear(P, lp + ".fc1", h))))
    if cfg["add_final_layer_norm"]:
        y = layer_norm(P, "model.decoder.layer_norm", y, 1e-5)
    return torch.nn.functional.linear(y, P["model.shared.weight"]) + P["final_logits_bias"]


def s2s_state_dict(cfg, seed):
    """State dict of a MarianMTModel / PegasusForConditionalGeneration, in
    the order and with the names Hugging Face saves."""
    init = Init(seed=seed)
    V, D = cfg["vocab_size"], cfg["d_model"]
    sd = collections.OrderedDict()
    # Scaled by sqrt(d_model) in the forward: start at std d_model**-0.5 (as
    # fairseq's transformer does), so that tokens are not drowned by the
    # unit-size sinusoidal positions.
    shared = init.normal(V, D, std=D ** -0.5)
    sd["final_logits_bias"] = init.normal(1, V)
    sd["model.shared.weight"] = shared
    positions = sinusoidal_positions(cfg["max_position_embeddings"], D)
    for side in ("encoder", "decoder"):
        p = "model." + side
        sd[p + ".embed_tokens.weight"] = shared.detach()
        sd[p + ".embed_positions.weight"] = positions.clone()
        for i in range(cfg[side + "_layers"]):
            lp = "%s.layers.%d" % (p, i)
            attns = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
            for att in attns:
                for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
                    init.linear(sd, "%s.%s.%s" % (lp, att, proj), D, D)
                init.layer_norm(sd, "%s.%s_layer_norm" % (lp, att), D)
            init.linear(sd, lp + ".fc1", D, cfg[side + "_ffn_dim"])
            init.linear(sd, lp + ".fc2", cfg[side + "_ffn_dim"], D)
            init.layer_norm(sd, lp + ".final_layer_norm", D)
        if cfg["add_final_layer_norm"]:
            init.layer_norm(sd, p + ".layer_norm", D)
    sd["lm_head.weight"] = shared.detach()
    return sd


def s2s_config(family, vocab_list, ids):
    """config.json of the tiny Marian or Pegasus: the family's flags as its
    published checkpoints state them (cybertron reads the legacy BART-style
    ones: normalize_before, normalize_embedding, static_position_embeddings,
    scale_embedding, add_final_layer_norm). Keys sorted, as transformers
    writes them."""
    marian = family == "marian"
    cfg = {
        "_name_or_path": "gopeft/%s-tiny" % family,
        "activation_dropout": 0.0 if marian else 0.1,
        "activation_function": "swish" if marian else "relu",
        "add_bias_logits": False,
        "add_final_layer_norm": not marian,
        "architectures": ["MarianMTModel" if marian else "PegasusForConditionalGeneration"],
        "attention_dropout": 0.0 if marian else 0.1,
        "bos_token_id": 0,
        "classif_dropout": 0.0,
        "classifier_dropout": 0.0,
        "d_model": 32,
        "decoder_attention_heads": 4,
        "decoder_ffn_dim": 64,
        "decoder_layerdrop": 0.0,
        "decoder_layers": 2,
        "decoder_start_token_id": ids["<pad>"],
        "dropout": 0.1,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "encoder_layerdrop": 0.0,
        "encoder_layers": 2,
        "eos_token_id": ids["</s>"],
        "forced_eos_token_id": ids["</s>"],
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "length_penalty": 1.0 if marian else 0.6,
        "max_length": 20,
        "max_position_embeddings": 64,
        "model_type": family,
        "normalize_before": not marian,
        "normalize_embedding": False,
        "num_beams": 1,
        "num_hidden_layers": 2,
        "pad_token_id": ids["<pad>"],
        "scale_embedding": True,
        "static_position_embeddings": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.30.2",
        "use_cache": True,
        "vocab_size": len(vocab_list),
    }
    if marian:
        cfg["decoder_vocab_size"] = len(vocab_list)
        cfg["share_encoder_decoder_embeddings"] = True
    else:
        cfg["extra_pos_embeddings"] = 1
    return collections.OrderedDict(sorted(cfg.items()))


def write_s2s_family(out_dir, family, bart_vocab, merges, corpus_pairs, seeds):
    """The tiny Marian (</s>=0, <unk>=1, <pad> last, no <s>, decoder starts
    with <pad>) or Pegasus (<pad>=0, </s>=1, <unk>=2, <mask_1>, <mask_2>; no
    <s>, decoder starts with <pad>), over BART's byte-level BPE tokens."""
    core = [t for t in bart_vocab if t not in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    if family == "marian":
        vocab = ["</s>", "<unk>"] + core + ["<pad>"]
        mask = "<unk>"  # Marian has no mask token; denoising masks with <unk>
    else:
        vocab = ["<pad>", "</s>", "<unk>", "<mask_1>", "<mask_2>"] + core
        mask = "<mask_2>"
    assert len(set(vocab)) == len(vocab)
    ids = {t: i for i, t in enumerate(vocab)}
    cfg = s2s_config(family, vocab, ids)
    sd = s2s_state_dict(cfg, seeds[0])
    positions = ("model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight")
    P = pretrain_bart(sd, cfg, vocab, merges, corpus_pairs, name=family,
                      specials=(None, ids["<pad>"], ids["</s>"], mask), seeds=seeds[1:],
                      steps=S2S_FAMILY_STEPS, logits_fn=s2s_logits, frozen=positions, peak=3e-3)
    for k, v in P.items():
        sd[k] = v.detach()
    for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
        sd[k] = sd["model.shared.weight"].detach()  # tied: same storage
    write_json(os.path.join(out_dir, "config.json"), cfg)
    write_text(os.path.join(out_dir, "vocab.json"),
               json.dumps(collections.OrderedDict((t, i) for i, t in enumerate(vocab)), ensure_ascii=False) + "\n")
    write_text(os.path.join(out_dir, "merges.txt"), "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    save_state_dict(os.path.join(out_dir, "pytorch_model.bin"), sd)
    return vocab, cfg


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def wordpiece(word, vocab_set):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        cur = None
        while start < end:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab_set:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def main():
    # Pretraining must give the same bits on every run: one thread, fixed
    # seeds, deterministic kernels only.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    train, evl, s2s_train, s2s_eval = build_corpora()
    corpus_dir = os.path.join(HERE, "corpus")
    write_text(os.path.join(corpus_dir, "new_tokens.txt"), "".join(w + "\n" for w in NEW_WORDS))
    write_text(os.path.join(corpus_dir, "mlm_train.txt"), "".join(s + "\n" for s in train))
    write_text(os.path.join(corpus_dir, "mlm_eval.txt"), "".join(s + "\n" for s in evl))
    write_text(os.path.join(corpus_dir, "seq2seq_train.tsv"), "".join("%s\t%s\n" % p for p in s2s_train))
    write_text(os.path.join(corpus_dir, "seq2seq_eval.tsv"), "".join("%s\t%s\n" % p for p in s2s_eval))
    mix, held = ordinary_corpora(train)
    write_text(os.path.join(corpus_dir, "mlm_ordinary_train.txt"), "".join(s + "\n" for s in mix))
    write_text(os.path.join(corpus_dir, "mlm_ordinary_eval.txt"), "".join(s + "\n" for s in held))

    bert_vocab_list = write_bert(os.path.join(HERE, "bert-tiny"), train)
    all_lines = train + evl + ["%s\t%s" % p for p in s2s_train + s2s_eval]
    bart_vocab, merges, bart_cfg = write_bart(os.path.join(HERE, "bart-tiny"), all_lines, s2s_train)
    # The other families come after BERT and BART, from their own seeds, so
    # that adding them changed no bit of the first two.
    write_electra(os.path.join(HERE, "electra-tiny"), bert_vocab_list, train)
    family_vocab = {}
    for family, seeds in (("marian", (6789, 778, 9004, 4712, 10)), ("pegasus", (7890, 779, 9005, 4713, 11))):
        family_vocab[family] = write_s2s_family(os.path.join(HERE, family + "-tiny"), family, bart_vocab, merges,
                                                s2s_train, seeds)

    # Self-checks.
    bset = set(bert_vocab_list)
    for w in corpus_words(all_lines):
        if w in NEW_WORDS:
            continue
        assert w in bset, "corpus word %r missing from the BERT vocabulary" % w
    for nw in NEW_WORDS:
        assert nw not in bset and "##" + nw not in bset, nw
        assert len(wordpiece(nw, bset)) > 1, nw
        assert nw not in bart_vocab and "\u0120" + nw not in bart_vocab, nw
    ranks = {m: i for i, m in enumerate(merges)}
    ids_of = {t: i for i, t in enumerate(bart_vocab)}
    for line in s2s_train + s2s_eval:
        for side in line:
            n = len(bpe_encode(side, ranks, ids_of)) + 2  # <s> ... </s>
            assert n <= bart_cfg["max_length"], (side, n)

    print("bert-tiny: vocab %d" % len(bert_vocab_list))
    print("bart-tiny: vocab %d, merges %d" % (len(bart_vocab), len(merges)))
    print("electra-tiny: vocab %d" % len(bert_vocab_list))
    for family, (vocab, _) in family_vocab.items():
        print("%s-tiny: vocab %d" % (family, len(vocab)))
    print("corpus: mlm %d/%d lines, seq2seq %d/%d pairs" % (len(train), len(evl), len(s2s_train), len(s2s_eval)))
    print("done in %.1fs" % (time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
