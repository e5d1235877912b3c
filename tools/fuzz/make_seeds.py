#!/usr/bin/env python3
"""Writes small seed inputs for the fuzz targets (called by run.sh).

usage: make_seeds.py {safetensors|config|tokenizer|text} OUTDIR FIXTURES
"""
import json
import os
import struct
import sys


def safetensors_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, offset, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def write(outdir, name, data):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def seeds_safetensors(outdir, fixtures):
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    write(outdir, "f32.safetensors", safetensors_bytes([("w", "F32", [2, 2], f32)]))
    write(outdir, "mixed.safetensors", safetensors_bytes([
        ("a.weight", "BF16", [3], b"\x80\x3f\x00\x40\x00\xc0"),
        ("b.weight", "F16", [1, 2], b"\x00\x3c\x00\xc0"),
        ("ids", "I64", [2], struct.pack("<2q", 7, -1)),
        ("pos", "I32", [1], struct.pack("<i", 5)),
        ("scalar", "F32", [], struct.pack("<f", 9.0)),
        ("empty", "F32", [0, 4], b""),
    ], metadata={"format": "pt"}))
    write(outdir, "unpadded.safetensors", safetensors_bytes([("x", "F32", [1], f32[:4])], pad=False))
    write(outdir, "header-only.safetensors", safetensors_bytes([]))
    # Real headers (tensor names, shapes) with a little data: offsets point past the end.
    for model in ("ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"):
        path = os.path.join(fixtures, model, "model.safetensors")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            head = f.read(n)
        header = json.loads(head)
        keep = dict(list(header.items())[:6])
        text = json.dumps(keep).encode()
        write(outdir, model + "-head.safetensors", struct.pack("<Q", len(text)) + text + b"\0" * 64)


def seeds_config(outdir, fixtures):
    def load(model):
        with open(os.path.join(fixtures, model, "config.json")) as f:
            return json.load(f)

    ouro = load("ouro-tiny-fp32")
    huginn = load("huginn-tiny-fp32")
    loopus = load("loopus-tiny-qwen3-fp32")
    variants = {
        "ouro-linear-rope": dict(ouro, rope_scaling={"rope_type": "linear", "factor": 2.0}),
        "ouro-llama3-rope": dict(ouro, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        "ouro-exit-step": dict(ouro, early_exit_step=1, early_exit_threshold=0.5, eos_token_id=[0, 2]),
        "ouro-no-head-dim": {k: v for k, v in ouro.items() if k != "head_dim"},
        "huginn-minimal": {k: huginn[k] for k in ("model_type", "n_embd", "n_heads", "intermediate_size",
                                                  "n_layers_in_prelude", "n_layers_in_recurrent_block",
                                                  "n_layers_in_coda", "block_size", "vocab_size")},
        "loopus-cdf": dict(loopus, halting_strategy="cdf", N=2),
        "qwen3-plain": dict(loopus["base_config_dict"]),
        "llama-plain": dict(loopus["base_config_dict"], model_type="llama"),
    }
    for name, cfg in variants.items():
        write(outdir, name + ".json", json.dumps(cfg, indent=1))


def seeds_tokenizer(outdir, _fixtures):
    letters = "abcdefgh"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({"ab": 8, "abc": 9, "Ġ": 10, "Ġa": 11})
    base = {
        "version": "1.0",
        "added_tokens": [{"id": 12, "content": "<s>", "special": True, "lstrip": False, "rstrip": False,
                          "single_word": False, "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": ["a b", "ab c", "Ġ a"]},
    }
    write(outdir, "small.json", json.dumps(base))
    pairs = json.loads(json.dumps(base))
    pairs["model"]["merges"] = [["a", "b"], ["ab", "c"]]
    pairs["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFKD"}]}
    pairs["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]}
    pairs["post_processor"] = {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [12], "tokens": ["<s>"]}}}
    pairs["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteLevel"}]}
    write(outdir, "pairs.json", json.dumps(pairs))
    regex = json.loads(json.dumps(base))
    regex["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\s+|[0-9]{1,3}"}, "behavior": "Isolated", "invert": False}
    regex["post_processor"] = {"type": "BertProcessing", "cls": ["<s>", 12], "sep": ["<s>", 12]}
    regex["model"].update({"unk_token": "h", "fuse_unk": True, "byte_fallback": True, "ignore_merges": True,
                           "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>"})
    write(outdir, "regex.json", json.dumps(regex))


def seeds_text(outdir, tokenizers):
    n = 0
    for name in sorted(os.listdir(tokenizers)):
        path = os.path.join(tokenizers, name, "tokenizer_golden.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            golden = json.load(f)
        for case in golden["cases"]:
            write(outdir, "text%03d.txt" % n, case["text"])
            n += 1
    for extra in ("<|im_start|>user\nhi<|im_end|>", "<|begin_text|>x<|end_turn|>", "\xff\xfe\x00 bytes", "  \n\n\t "):
        write(outdir, "text%03d.txt" % n, extra)
        n += 1


if __name__ == "__main__":
    kind, outdir, fixtures = sys.argv[1], sys.argv[2], sys.argv[3]
    {"safetensors": seeds_safetensors, "config": seeds_config, "tokenizer": seeds_tokenizer, "text": seeds_text}[kind](outdir, fixtures)
