#!/usr/bin/env python3
"""The PyTorch peer of tools/device-check.sh: the compute one Ouro token costs, in plain transformers.

An Ouro token runs its block of layers once per pass; with every pass taken that is a plain
decoder of passes x layers layers. So the peer is transformers' LlamaForCausalLM with an Ouro
shape unrolled (Ouro-1.4B: 4 passes x 24 layers = 96 decoder layers; the sandwich norms and the
exit gate cost next to nothing), random bf16 weights, a KV cache, batch 1: a P-token prefill,
then N greedy decode steps through the cache, timed with CUDA synchronisation (or wall clock on
the CPU). It also measures the device's copy bandwidth and bf16 matrix throughput through
torch, the roofline figures the targets refer to. Prints one JSON object.

    python3 tools/torch_peer.py --shape ouro-1.4b --device cuda --prompt-tokens 512 --decode-tokens 64
"""
import argparse
import json
import sys
import time

# name: (hidden, intermediate, layers, heads, head_dim, vocab, passes)
SHAPES = {
    "ouro-1.4b": (2048, 5632, 24, 16, 128, 49152, 4),
    "ouro-2.6b": (2048, 5632, 48, 16, 128, 49152, 4),
    "ouro-bench": (1024, 2816, 6, 16, 64, 32000, 4),
    "ouro-small": (256, 704, 4, 4, 64, 1024, 4),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="ouro-1.4b", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-roofline", action="store_true", help="skip the copy and matmul measurements")
    a = ap.parse_args()
    if a.prompt_tokens < 1 or a.decode_tokens < 1 or a.runs < 1:
        sys.exit("torch_peer: --prompt-tokens, --decode-tokens and --runs must be >= 1")
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        sys.exit(f"torch_peer: needs torch and transformers ({e})")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("torch_peer: --device cuda but torch sees no CUDA device")
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    hidden, inter, layers, heads, head_dim, vocab, passes = SHAPES[a.shape]
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers * passes,
                      num_attention_heads=heads, num_key_value_heads=heads, head_dim=head_dim, vocab_size=vocab,
                      max_position_embeddings=max(4096, a.prompt_tokens + a.decode_tokens + 8), rope_theta=1e6,
                      rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(0)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    with torch.device(dev):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.eval()
    sync()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    prompt = torch.randint(1, vocab, (1, a.prompt_tokens), device=dev)

    def one_run():
        with torch.inference_mode():
            sync()
            t = time.perf_counter()
            out = model(input_ids=prompt, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            sync()
            prefill = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(a.decode_tokens):
                out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
            sync()
            decode = time.perf_counter() - t
        return a.prompt_tokens / prefill, a.decode_tokens / decode

    one_run()  # warm-up
    runs = [one_run() for _ in range(a.runs)]
    med = lambda xs: sorted(xs)[len(xs) // 2]
    result = {
        "peer": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "shape": a.shape,
        "decoderLayers": layers * passes,
        "dtype": a.dtype,
        "parameters": params,
        "buildSeconds": build_s,
        "promptTokens": a.prompt_tokens,
        "decodeTokens": a.decode_tokens,
        "prefillTokensPerSecond": med([r[0] for r in runs]),
        "decodeTokensPerSecond": med([r[1] for r in runs]),
    }
    if not a.no_roofline:
        # Copy bandwidth: bytes read + written per second, best of 10 copies of 1 GiB (64 MiB on CPU).
        n = (1 << 30 if dev.type == "cuda" else 64 << 20) // 4
        x = torch.empty(n, dtype=torch.float32, device=dev)
        y = torch.empty_like(x)
        best = float("inf")
        for _ in range(10):
            sync(); t = time.perf_counter(); y.copy_(x); sync()
            best = min(best, time.perf_counter() - t)
        result["copyGBPerSecond"] = 2 * n * 4 / best / 1e9
        del x, y
        # bf16 matrix throughput: best of 10 products of 8192^3 (1024^3 on CPU).
        m = 8192 if dev.type == "cuda" else 1024
        p = torch.randn(m, m, dtype=dtype, device=dev)
        q = torch.randn(m, m, dtype=dtype, device=dev)
        p @ q
        best = float("inf")
        for _ in range(10):
            sync(); t = time.perf_counter(); p @ q; sync()
            best = min(best, time.perf_counter() - t)
        result["matmulTFLOPS"] = 2 * m ** 3 / best / 1e12
    print(json.dumps(result))


if __name__ == "__main__":
    main()
