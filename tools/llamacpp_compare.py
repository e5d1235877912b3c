#!/usr/bin/env python3
"""Logits of LoopVK against llama.cpp on the same GGUF files, in one run.

Usage: tools/llamacpp_compare.py --loopvk .build/release/loopvk --dump DUMP_LOGITS FILE.gguf [FILE.gguf ...]
       [--tokens 1,5,9] [--reference FILE.gguf]

DUMP_LOGITS is a small program against llama.cpp's libllama (`dump_logits MODEL OUT.bin ids...`
writing float32 [tokens, vocab]); build llama.cpp from the llama-cpp-python sdist (README).
For each file: LoopVK's last-pass logits (`loopvk lens --cpu`) against llama.cpp's: max |diff|,
relative RMS, top-1 agreement, KL(llama.cpp || LoopVK). With --reference, each file's LoopVK
logits are also compared with the reference file's (format error against e.g. the f16 file).
Needs numpy and safetensors-free parsing only (the lens file is read by hand).
"""
import argparse, json, os, struct, subprocess, sys, tempfile
import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=np.float32).reshape(v["shape"])
    return out


def ours(loopvk, model, tokens, tmp):
    out = os.path.join(tmp, "lens.safetensors")
    subprocess.run([loopvk, "lens", "--cpu", "--model", model, "--tokens", ",".join(map(str, tokens)), "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    t = read_safetensors(out)
    last = max(int(k.split(".")[1]) for k in t if k.startswith("logits."))
    return t[f"logits.{last}"]


def theirs(dump, model, tokens, tmp):
    out = os.path.join(tmp, "lc.bin")
    r = subprocess.run([dump, model, out] + [str(x) for x in tokens], check=True, capture_output=True, text=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), -1)


def stats(a, b):
    """a: reference logits, b: the other; per position."""
    d = np.abs(a - b).max()
    rel = np.sqrt(((a - b) ** 2).sum() / (a ** 2).sum())
    top1 = float((a.argmax(-1) == b.argmax(-1)).mean())
    pa = np.exp(a - a.max(-1, keepdims=True)); pa /= pa.sum(-1, keepdims=True)
    lb = b - b.max(-1, keepdims=True); lb -= np.log(np.exp(lb).sum(-1, keepdims=True))
    la = np.log(pa)
    kl = float((pa * (la - lb)).sum(-1).mean())
    return {"max_abs": float(d), "rel_rms": float(rel), "top1": top1, "kl": kl}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loopvk", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--tokens", default="1,5,9,100,200,7,42,3,17,250,11,64")
    ap.add_argument("--reference")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    tokens = [int(x) for x in a.tokens.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = ours(a.loopvk, a.reference, tokens, tmp) if a.reference else None
        for f in a.files:
            o = ours(a.loopvk, f, tokens, tmp)
            l = theirs(a.dump, f, tokens, tmp)
            row = {"file": os.path.basename(f), "vs_llama_cpp": stats(l, o)}
            if ref is not None:
                row["loopvk_vs_reference"] = stats(ref, o)
                row["llama_cpp_vs_reference"] = stats(ref, l)
            rows.append(row)
    print("| file | max abs diff vs llama.cpp | rel. RMS | top-1 agree | KL(llama.cpp‖ours) |" + (" ours vs ref: top-1 / KL | llama.cpp vs ref: top-1 / KL |" if ref is not None else ""))
    print("|---|---|---|---|---|" + ("---|---|" if ref is not None else ""))
    for r in rows:
        s = r["vs_llama_cpp"]
        line = f"| {r['file']} | {s['max_abs']:.2e} | {s['rel_rms']:.2e} | {s['top1']:.3f} | {s['kl']:.2e} |"
        if ref is not None:
            o, l = r["loopvk_vs_reference"], r["llama_cpp_vs_reference"]
            line += f" {o['top1']:.3f} / {o['kl']:.2e} | {l['top1']:.3f} / {l['kl']:.2e} |"
        print(line)
    json.dump(rows, sys.stderr, indent=1)


if __name__ == "__main__":
    main()
