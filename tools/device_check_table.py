#!/usr/bin/env python3
"""Makes tools/device-check.sh's Markdown table from its steps' outputs.

    device_check_table.py WORK_DIR full|dry OUT.json > OUT.md

WORK_DIR holds NAME.out (each step's stdout: JSON for selftest, compare --golden, bench,
profile and the peer; text for devices) and steps.txt ("NAME RC SECONDS" per step). Writes
every parsed result to OUT.json and prints the table, with the issue's targets checked
against figures of this run only.
"""
import json
import os
import sys


def load(work, name):
    p = os.path.join(work, name + ".out")
    if not os.path.exists(p):
        return None
    text = open(p).read()
    try:
        return json.loads(text)
    except ValueError:
        # bench and profile print one JSON document; take the last {...} block if progress preceded it
        i = text.find("{")
        try:
            return json.loads(text[i:]) if i >= 0 else None
        except ValueError:
            return None


def main():
    work, size, out_json = sys.argv[1], sys.argv[2], sys.argv[3]
    steps = []
    if os.path.exists(os.path.join(work, "steps.txt")):
        for line in open(os.path.join(work, "steps.txt")):
            n, rc, s = line.split()
            steps.append((n, int(rc), int(s)))
    rcs = {n: rc for n, rc, _ in steps}
    devices = open(os.path.join(work, "devices.out")).read() if os.path.exists(os.path.join(work, "devices.out")) else ""
    results = {"size": size, "steps": [{"name": n, "rc": rc, "seconds": s} for n, rc, s in steps], "devices": devices}
    L = []
    first = devices.splitlines()[0] if devices else "(no device listed)"
    L.append(f"### Device check ({'full' if size == 'full' else 'dry run on this machine: reduced sizes'})")
    L.append("")
    L.append(f"Device: `{first.strip()}`")
    kern = [l.strip() for l in devices.splitlines() if l.strip().startswith("kernels:")]
    if kern:
        L.append(f"Configuration: `{kern[0][len('kernels: '):]}`")
    L.append("")
    L.append("| step | result |")
    L.append("|---|---|")

    st = load(work, "selftest")
    results["selftest"] = st
    if st:
        fails = st.get("failures", [])
        L.append(f"| selftest | {'PASS' if not fails else 'FAIL'}: {st.get('cases')} cases, {len(fails)} failures, "
                 f"validation {'on' if st.get('validation') else 'off'}, {st.get('seconds', 0):.1f} s |")
        for f in fails[:5]:
            L.append(f"| | FAIL {f.get('op')} [{f.get('variant')}] {f.get('size')}: {f.get('detail')} |")
    else:
        L.append(f"| selftest | no result (rc {rcs.get('selftest')}) |")

    results["goldens"] = {}
    for n, rc, _ in steps:
        if not n.startswith("golden-"):
            continue
        g = load(work, n)
        results["goldens"][n] = g
        if not g:
            L.append(f"| {n} | no result (rc {rc}) |")
            continue
        worst = max(g["tensors"], key=lambda t: t["toleranceUse"]) if g["tensors"] else None
        w = f"worst {worst['name']}: max abs {worst['maxAbs']:.2e}, tolerance use {worst['toleranceUse']:.2f}" if worst else ""
        L.append(f"| {n[len('golden-'):]} goldens (atol {g['atol']:g}, rtol {g['rtol']:g}) | "
                 f"{'PASS' if g['passed'] else 'FAIL'}: {len(g['tensors'])} tensors, {len(g['exact'])} exact; {w} |")

    results["bench"] = {}
    for m in ["ouro-bench", "ouro-1.4b", "ouro-1.4b-q8_0", "ouro-1.4b-q4_0", "huginn-3.5b"]:
        b = load(work, "bench-" + m)
        results["bench"][m] = b
        if not b:
            L.append(f"| bench {m} | no result (rc {rcs.get('bench-' + m)}) |")
            continue
        L.append(f"| bench {m} ({b['passes']} passes, prompt {b['promptTokens']}, decode {b['decodeTokens']}) | "
                 f"prefill {b['prefillTokensPerSecond']['median']:.1f} tok/s, decode {b['decodeTokensPerSecond']['median']:.2f} tok/s; "
                 f"{b['bytesPerDecodeToken'] / 1e6:.1f} MB/token = {b['decodeGBPerSecond']:.1f} GB/s; copy shader {b['copyGBPerSecond']:.1f} GB/s, "
                 f"weight reads {b['readGBPerSecond']:.1f} GB/s; roofline {100 * b['rooflineFraction']:.1f}%; "
                 f"{b['dispatchesPerToken']} dispatches/token |")

    pr = load(work, "profile-ouro-1.4b")
    results["profile"] = pr
    if pr:
        rows = sorted(pr.get("byOpAndPass", []), key=lambda r: -r["totalMicros"])
        total = sum(r["totalMicros"] for r in pr.get("byPass", [])) or 1
        top = ", ".join(f"{r['section']} {r['op']} {r['totalMicros'] / 1e3:.2f} ms" for r in rows[:4])
        L.append(f"| profile ouro-1.4b ({pr.get('mode')}, {pr.get('promptTokens')}-token prompt + {pr.get('decodeTokens')}) | "
                 f"GPU time {total / 1e3:.2f} ms; largest: {top} |")
    else:
        L.append(f"| profile ouro-1.4b | no result (rc {rcs.get('profile-ouro-1.4b')}) |")

    peer = load(work, "peer-pytorch")
    results["peer"] = peer
    if peer:
        L.append(f"| PyTorch peer ({peer['shape']} unrolled to {peer['decoderLayers']} layers, {peer['dtype']}, {peer['device']}, torch {peer['torch']}) | "
                 f"prefill {peer['prefillTokensPerSecond']:.1f} tok/s, decode {peer['decodeTokensPerSecond']:.2f} tok/s; "
                 f"copy {peer.get('copyGBPerSecond', 0):.0f} GB/s, bf16 matmul {peer.get('matmulTFLOPS', 0):.3g} TFLOP/s |")
    else:
        L.append(f"| PyTorch peer | no result (rc {rcs.get('peer-pytorch')}) |")

    # Targets (issue 15), from this run's figures.
    ours = results["bench"].get("ouro-1.4b") if size == "full" else results["bench"].get("ouro-bench")
    shape = "ouro-1.4b" if size == "full" else "ouro-bench"
    if ours:
        L.append("")
        L.append(f"Targets on the {shape} shape, this run:")
        copy = max(ours["copyGBPerSecond"], (peer or {}).get("copyGBPerSecond", 0))
        frac = ours["decodeGBPerSecond"] / copy if copy else 0
        L.append(f"- decode at {100 * frac:.1f}% of the copy bandwidth ({ours['decodeGBPerSecond']:.1f} of {copy:.1f} GB/s; target >= 85%)")
        if peer and peer.get("shape") == shape:
            r = ours["decodeTokensPerSecond"]["median"] / peer["decodeTokensPerSecond"]
            L.append(f"- decode {r:.2f}x the PyTorch peer (target >= 5x)")
        elif peer:
            L.append(f"- PyTorch peer ran the {peer.get('shape')} shape: no ratio")
        dec = ours["decodeTokensPerSecond"]["median"]
        pre = ours["prefillTokensPerSecond"]["median"]
        L.append(f"- prefill {pre / dec if dec else 0:.1f}x decode (target: >= 40% of the bf16 matrix throughput or 20x decode, the lower)")
        results["targets"] = {"shape": shape, "decodeFractionOfCopy": frac}
    L.append("")
    L.append("Steps: " + ", ".join(f"{n} {'ok' if rc == 0 else f'rc {rc}'} ({s} s)" for n, rc, s in steps))
    json.dump(results, open(out_json, "w"), indent=1)
    print("\n".join(L))


if __name__ == "__main__":
    main()
