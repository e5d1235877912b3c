#!/usr/bin/env python3
"""Load generator for `loopvk serve` (or any OpenAI-compatible completions server). Stdlib only.

For each concurrency level in --streams (default 1,4,16) it runs that many client threads; each
sends streamed /v1/completions requests back to back (a fixed-length prompt, fixed max_tokens,
temperature 0, "ignore_eos": true so every request generates exactly max_tokens,
stream_options.include_usage for the token count) for --duration seconds or --requests requests
per client. It measures per request
  * TTFT: from sending the request to the first SSE data chunk that carries text;
  * ITL: the gaps between consecutive text chunks;
and per level the aggregate decode rate = completion tokens of all requests / the level's wall
time (its start to the end of its last request). It prints a Markdown table

  streams | requests | errors | aggregate tok/s | speedup vs 1 stream | TTFT p50/p99 (ms) | ITL p50/p99 (ms) | mean batch | server RSS MB

and writes everything (settings, per-level figures, per-request samples) to --json FILE.
"mean batch" comes from the server's /metrics (loopvk_batch_size histogram, sum/count deltas over
the level), when it has one. ITL is what a client sees: where the server hands tokens over in
bursts (Vulkan decoding with kernels chain=N submits N tokens at a time) most gaps are ~0 and p50
says little; the JSON's itl_ms.mean and per_request_decode_tok_s_p50 are the steadier figures.

Usage:
  tools/serve-load.py                                  # starts `loopvk serve` on the bundled model
  tools/serve-load.py --streams 1,4 --duration 10 --max-tokens 32 --json load.json
  tools/serve-load.py --model /path/to/ckpt --prompt-tokens 128 -- --max-batch 16
  tools/serve-load.py --url http://127.0.0.1:8080 --streams 1,8,32

Everything after `--` is passed to `loopvk serve` unchanged (e.g. --cpu, --max-batch N,
--kernels ...). Unless those arguments set --max-queue, the server gets
--max-queue max(streams), so no level is answered 429 by design. The binary: $LOOPVK, default
ROOT/.build/release/loopvk. The server binds a free loopback port (--port 0; the bound port is read
from its "listening on http://HOST:PORT" log line, as tools/serve-check.py does).

Prompts are token ids by default (--prompt-tokens N ids, each client's a little different, all of
length N), so their length is exact whatever the tokenizer; --prompt TEXT sends text instead.
`loopvk serve` needs a tokenizer.json; for a checkpoint folder without one (a `loopvk synth`
random-weight model) this script serves a temporary copy (symlinks) with a synthetic byte-level
BPE tokenizer covering config.json's vocab_size (tokens decode as " w<ID>"); --no-synth-tokenizer
turns that off.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPVK = os.environ.get("LOOPVK", os.path.join(ROOT, ".build/release/loopvk"))
DEFAULT_MODEL = os.path.join(ROOT, "Models/looped-arith")


def die(msg, code=2):
    print(f"serve-load: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary_ms(seconds):
    if not seconds:
        return None
    ms = [s * 1000.0 for s in seconds]
    return {"n": len(ms), "mean": sum(ms) / len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90),
            "p99": percentile(ms, 99), "max": max(ms)}


# ---------------------------------------------------------------- the server


def synth_tokenizer_dir(model_dir):
    """A temp folder with the model's files linked and a synthetic tokenizer.json (see the docstring)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    vocab_size = int(cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size") or 0)
    if vocab_size < 258:
        die(f"{model_dir} has no tokenizer.json and config.json's vocab_size ({vocab_size}) is too small to synthesize one")
    eos = cfg.get("eos_token_id", 0)
    eos = eos[0] if isinstance(eos, list) else (eos if isinstance(eos, int) else 0)
    # GPT-2's bytes_to_unicode: the byte-level alphabet.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_chars = [chr(c) for _, c in sorted(zip(bs, cs))]
    vocab, next_id = {}, 0
    special = "<|endoftext|>"
    ids = iter(i for i in range(vocab_size) if i != eos)
    for ch in byte_chars:
        vocab[ch] = next(ids)
    for i in ids:
        vocab["\u0120w" + str(i)] = i                      # "Ġw123" decodes to " w123"
    vocab[special] = eos
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": eos, "content": special, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": []}}
    tmp = tempfile.mkdtemp(prefix="serve-load-model-")
    for name in os.listdir(model_dir):
        os.symlink(os.path.join(os.path.abspath(model_dir), name), os.path.join(tmp, name))
    with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    if not os.path.exists(os.path.join(tmp, "tokenizer_config.json")):
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": special, "eos_token": special, "add_bos_token": False, "add_eos_token": False}, f)
    print(f"serve-load: {model_dir} has no tokenizer.json; serving {tmp} with a synthetic {vocab_size}-token one", file=sys.stderr)
    return tmp


class Server:
    """`loopvk serve --port 0` as a child process; the bound port read from its log."""

    def __init__(self, model_dir, extra_args, start_timeout):
        self.log = []
        self.cmd = [LOOPVK, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0", *extra_args]
        print("serve-load: starting " + " ".join(self.cmd), file=sys.stderr, flush=True)
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        except OSError as e:
            die(f"cannot run {LOOPVK}: {e}")
        self.port = None
        got = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://[^\s:]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    got.set()
            got.set()                                       # EOF: the process ended
        threading.Thread(target=read, daemon=True).start()
        got.wait(start_timeout)
        if self.port is None:
            code = self.proc.poll()
            self.stop()
            why = f"exited with code {code}" if code is not None else f"did not report a port within {start_timeout:.0f} s (killed)"
            tail = "".join(self.log[-40:]) or "(no output)\n"
            if "Unknown option '--model'" in tail:
                why += f" ({LOOPVK} seems to have no `serve` subcommand: an older build?)"
            die(f"loopvk serve {why}.\ncommand: {' '.join(self.cmd)}\nits log:\n{tail}")
        self.url = f"http://127.0.0.1:{self.port}"
        print(f"serve-load: {self.log[-1].strip()}", file=sys.stderr, flush=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- the client


def http_get(url, path, timeout=30):
    with urllib.request.urlopen(url + path, timeout=timeout) as r:
        return r.read().decode()


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def fetch_metrics(url):
    try:
        return parse_metrics(http_get(url, "/metrics"))
    except Exception:
        return None


def metrics_delta(before, after):
    """The level's batch-size figures (and generated tokens) from two /metrics snapshots."""
    if before is None or after is None:
        return None
    d = {}
    if "loopvk_generated_tokens_total" in after:
        d["generated_tokens"] = after["loopvk_generated_tokens_total"] - before.get("loopvk_generated_tokens_total", 0)
    if "loopvk_batch_size_count" in after:
        count = after["loopvk_batch_size_count"] - before.get("loopvk_batch_size_count", 0)
        total = after["loopvk_batch_size_sum"] - before.get("loopvk_batch_size_sum", 0)
        d["batch_size_observations"] = count
        d["batch_size_mean"] = total / count if count else None
        buckets = []
        for key, v in after.items():
            m = re.match(r'loopvk_batch_size_bucket\{le="([^"]+)"\}$', key)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                buckets.append((le, m.group(1), v - before.get(key, 0)))
        buckets.sort()
        hist, prev = {}, 0.0
        for _, label, cum in buckets:                       # cumulative -> per bucket
            hist["<=" + label] = cum - prev
            prev = cum
        d["batch_size_histogram"] = hist
    return d


class Client:
    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "") or not u.hostname:
            die(f"--url must be http://HOST:PORT, got {url!r}")
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.prefix = u.path.rstrip("/")
        self.conn = None

    def stream(self, body):
        """One streamed request -> a dict (ttft, itls, tokens, ...) or {'error': ...}."""
        payload = json.dumps(body).encode()
        t0 = time.perf_counter()
        chunk_times = []
        usage = None
        finish = None
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request("POST", self.prefix + "/v1/completions", body=payload,
                              headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
            resp = self.conn.getresponse()
            if resp.status != 200:
                text = resp.read().decode(errors="replace")
                retry = resp.getheader("Retry-After")
                self._after(resp)
                return {"error": f"HTTP {resp.status}: {text[:200]}", "status": resp.status, "retry_after": retry}
            done = False
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                now = time.perf_counter()
                ev = json.loads(data)
                for ch in ev.get("choices") or []:
                    if ch.get("text"):
                        chunk_times.append(now)
                    finish = ch.get("finish_reason") or finish
                if ev.get("usage"):
                    usage = ev["usage"]
            resp.read()                                     # the end of the chunked body: keep the connection
            self._after(resp)
            t_end = time.perf_counter()
            if not done:
                return {"error": "the stream ended without data: [DONE]", "status": 200}
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.close()
            return {"error": f"{type(e).__name__}: {e}", "status": None}
        tokens = usage["completion_tokens"] if usage and "completion_tokens" in usage else len(chunk_times)
        r = {"start": t0, "end": t_end, "tokens": tokens, "text_chunks": len(chunk_times), "finish_reason": finish,
             "usage_reported": usage is not None, "ttft": (chunk_times[0] - t0) if chunk_times else None,
             "itls": [b - a for a, b in zip(chunk_times, chunk_times[1:])]}
        if len(chunk_times) >= 2 and tokens >= 2:
            r["decode_tok_s"] = (tokens - 1) / (chunk_times[-1] - chunk_times[0])
        return r

    def _after(self, resp):
        if resp.will_close:
            self.close()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make_body(args, model, client_index, request_index):
    if args.prompt is not None:
        prompt = args.prompt
    else:
        # Fixed length, different per client and request (so nothing can be cached across them),
        # ids in [3, vocab) to keep clear of the usual special tokens at 0..2.
        span = max(1, min(args.vocab, 4096) - 3)
        seed = client_index * 7919 + request_index * 104729
        prompt = [3 + (seed + i * 31) % span for i in range(args.prompt_tokens)]
    body = {"model": model, "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if not args.no_ignore_eos:
        body["ignore_eos"] = True
    return body


def rss_mb(pid):
    """The started server's resident memory (VmRSS), MB; None without one."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_level(args, url, model, streams, pid=None):
    barrier = threading.Barrier(streams + 1)
    results = [[] for _ in range(streams)]
    state = {}

    def worker(ci):
        client = Client(url, args.request_timeout)
        barrier.wait()
        n = 0
        while True:
            if args.requests is not None:
                if n >= args.requests:
                    break
            elif time.perf_counter() >= state["deadline"]:
                break
            r = client.stream(make_body(args, model, ci, n))
            r["client"] = ci
            results[ci].append(r)
            n += 1
            if "error" in r:
                if r.get("status") == 429:
                    time.sleep(float(r.get("retry_after") or 1))
                elif r.get("status") is None:
                    time.sleep(0.2)
                if sum(1 for x in results[ci] if "error" in x) > args.max_errors:
                    break
        client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    before = fetch_metrics(url)
    rss_before = rss_mb(pid)
    state["deadline"] = time.perf_counter() + args.duration
    t_start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    t_end = time.perf_counter()
    after = fetch_metrics(url)
    flat = [r for rs in results for r in rs]
    ok = [r for r in flat if "error" not in r]
    errors = [r for r in flat if "error" in r]
    wall = (max(r["end"] for r in ok) - t_start) if ok else (t_end - t_start)
    tokens = sum(r["tokens"] for r in ok)
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    itls = [g for r in ok for g in r["itls"]]
    dec = [r["decode_tok_s"] for r in ok if "decode_tok_s" in r]
    short = [r for r in ok if r["tokens"] != args.max_tokens]
    level = {"streams": streams, "requests": len(ok), "errors": len(errors),
             "error_samples": sorted({e["error"] for e in errors})[:5], "wall_s": wall, "completion_tokens": tokens,
             "aggregate_tok_s": tokens / wall if wall > 0 else 0.0,
             "requests_not_max_tokens": len(short), "usage_missing": sum(1 for r in ok if not r["usage_reported"]),
             "ttft_ms": summary_ms(ttfts), "itl_ms": summary_ms(itls),
             "per_request_decode_tok_s_p50": percentile(dec, 50),
             "server_metrics": metrics_delta(before, after),
             "server_rss_mb": {"before": rss_before, "after": rss_mb(pid)},
             "samples": [{"client": r["client"], "start_s": r["start"] - t_start, "duration_s": r["end"] - r["start"],
                          "tokens": r["tokens"], "ttft_ms": r["ttft"] * 1000 if r["ttft"] is not None else None,
                          "finish_reason": r["finish_reason"]} for r in ok]}
    return level


# ---------------------------------------------------------------- output


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def pair(s):
    return "-" if s is None else f"{fmt(s['p50'])} / {fmt(s['p99'])}"


def table(levels):
    base = next((lv for lv in levels if lv["streams"] == 1), None)
    rows = ["| streams | requests | errors | aggregate tok/s | speedup vs 1 stream | TTFT p50/p99 (ms) | ITL p50/p99 (ms) | mean batch | server RSS MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in levels:
        sp = lv["aggregate_tok_s"] / base["aggregate_tok_s"] if base and base["aggregate_tok_s"] > 0 else None
        lv["speedup_vs_1_stream"] = sp
        sm = lv["server_metrics"] or {}
        rows.append(f"| {lv['streams']} | {lv['requests']} | {lv['errors']} | {fmt(lv['aggregate_tok_s'])} | "
                    f"{fmt(sp, 2) + 'x' if sp is not None else '-'} | {pair(lv['ttft_ms'])} | {pair(lv['itl_ms'])} | "
                    f"{fmt(sm.get('batch_size_mean'), 2)} | {fmt((lv.get('server_rss_mb') or {}).get('after'), 0)} |")
    return "\n".join(rows)


def main():
    argv = sys.argv[1:]
    server_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, server_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description="Streamed-completion load generator for loopvk serve (see the module docstring).",
                                epilog="Arguments after `--` go to `loopvk serve` (e.g. -- --cpu --max-batch 16).")
    p.add_argument("--url", help="target a running server (http://HOST:PORT) instead of starting one")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model folder for the started server (default: the bundled looped-arith)")
    p.add_argument("--streams", default="1,4,16", help="concurrency levels, comma-separated (default 1,4,16)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per level: clients start requests until then (default 10)")
    p.add_argument("--requests", type=int, help="requests per client per level instead of --duration")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens of each request (default 32)")
    p.add_argument("--prompt-tokens", type=int, default=16, help="prompt length in token ids (default 16)")
    p.add_argument("--prompt", help="send this text as the prompt instead of token ids")
    p.add_argument("--vocab", type=int, help="token ids stay below this (default: the model's config.json vocab_size, else 256)")
    p.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos (for servers that lack it)")
    p.add_argument("--no-synth-tokenizer", action="store_true", help="do not add a synthetic tokenizer to a model folder without one")
    p.add_argument("--warmup", type=int, default=1, help="requests before the first level, not measured (default 1)")
    p.add_argument("--model-id", help="the request's model field (default: the first id /v1/models lists)")
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server to listen (default 300)")
    p.add_argument("--request-timeout", type=float, default=600.0, help="socket timeout per request (default 600)")
    p.add_argument("--max-errors", type=int, default=20, help="a client stops after this many failed requests (default 20)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    try:
        levels = [int(s) for s in args.streams.split(",") if s.strip()]
    except ValueError:
        die(f"--streams must be comma-separated integers, got {args.streams!r}")
    if not levels or min(levels) < 1:
        die("--streams needs levels >= 1")
    if args.requests is not None and args.requests < 1:
        die("--requests must be >= 1")
    if args.url and server_args:
        die("arguments after `--` are for a started server; with --url there is none")

    server, tmp_model = None, None
    if args.vocab is None:
        args.vocab = 256                                    # safe for any real model's vocabulary
        if not args.url or args.model != DEFAULT_MODEL:     # a local model: its own vocab_size
            try:
                with open(os.path.join(args.model, "config.json")) as f:
                    cfg = json.load(f)
                args.vocab = int(cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size"))
            except Exception:
                pass
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            if not (os.path.isfile(LOOPVK) and os.access(LOOPVK, os.X_OK)):
                die(f"no executable {LOOPVK} (build it: swift build -c release, or set LOOPVK)")
            if not os.path.exists(args.model):
                die(f"no model at {args.model}")
            model_dir = args.model
            if os.path.isdir(model_dir) and not os.path.exists(os.path.join(model_dir, "tokenizer.json")) and not args.no_synth_tokenizer:
                model_dir = tmp_model = synth_tokenizer_dir(model_dir)
            extra = list(server_args)
            if tmp_model and "--model-name" not in extra and not any(a.startswith("--model-name=") for a in extra):
                extra += ["--model-name", os.path.basename(os.path.abspath(args.model))]
            if "--max-queue" not in extra and not any(a.startswith("--max-queue=") for a in extra):
                extra += ["--max-queue", str(max(levels))]
            server = Server(model_dir, extra, args.start_timeout)
            url = server.url
        try:
            health = http_get(url, "/health")
            models = json.loads(http_get(url, "/v1/models"))
        except Exception as e:
            die(f"{url} does not answer /health and /v1/models: {e}")
        model = args.model_id or (models.get("data") or [{}])[0].get("id")
        print(f"serve-load: {url} health {health.strip()}, model {model}", file=sys.stderr, flush=True)

        warm = Client(url, args.request_timeout)
        for i in range(args.warmup):
            r = warm.stream(make_body(args, model, 10_000 + i, 0))
            if "error" in r:
                die(f"the warm-up request failed: {r['error']}")
            if not args.no_ignore_eos and r["tokens"] != args.max_tokens:
                print(f"serve-load: note: the warm-up made {r['tokens']} tokens, not max_tokens {args.max_tokens}", file=sys.stderr)
        warm.close()

        results = []
        for n in levels:
            what = f"{args.requests} requests per client" if args.requests is not None else f"{args.duration:g} s"
            print(f"serve-load: {n} stream(s), {what} ...", file=sys.stderr, flush=True)
            lv = run_level(args, url, model, n, server.proc.pid if server else None)
            print(f"serve-load:   {lv['requests']} requests, {lv['errors']} errors, {lv['aggregate_tok_s']:.1f} tok/s"
                  + (f"; errors: {lv['error_samples']}" if lv["errors"] else ""), file=sys.stderr, flush=True)
            results.append(lv)
            if server is not None and server.proc.poll() is not None:
                die(f"the server exited (code {server.proc.returncode}) during the {n}-stream level:\n" + "".join(server.log[-20:]))
        md = table(results)
        print(md, flush=True)
        if args.json:
            out = {"tool": "serve-load", "url": url, "model": model, "server_command": server.cmd if server else None,
                   "settings": {"streams": levels, "duration_s": None if args.requests else args.duration, "requests_per_client": args.requests,
                                "max_tokens": args.max_tokens, "prompt": args.prompt, "prompt_tokens": None if args.prompt else args.prompt_tokens,
                                "ignore_eos": not args.no_ignore_eos, "temperature": 0, "warmup": args.warmup},
                   "levels": results, "table_markdown": md}
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
            print(f"serve-load: wrote {args.json}", file=sys.stderr)
        if any(lv["requests"] == 0 for lv in results):
            die("a level completed no request", 1)
    finally:
        if server is not None:
            server.stop()
        if tmp_model is not None:
            shutil.rmtree(tmp_model, ignore_errors=True)


if __name__ == "__main__":
    main()
