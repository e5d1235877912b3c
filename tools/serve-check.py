#!/usr/bin/env python3
"""End-to-end check of `loopvk serve` on the bundled model, with the official `openai` client.

For each backend (the CPU reference, then Vulkan — lavapipe here): starts `loopvk serve` on a
free loopback port (--port 0, the bound port read from its log line), then
  * GET /health, /v1/models, /metrics;
  * completions and chat completions, whole and streamed (stream_options.include_usage), through
    the `openai` package; greedy (temperature 0) text and token counts equal `loopvk run`'s for
    the same prompt (and `loopvk run --chat`; `--exit fixed:1` / `q-exit:0.5` for the loop extension);
  * stop strings, the openai client's BadRequestError for n=2;
  * raw HTTP (urllib) for the bad cases: malformed JSON, n=2, max_tokens over the context,
    logprobs, a wrong type, an unknown field -> 400 in OpenAI's error shape; 429 with Retry-After
    while every batch row streams (--max-batch 4 --max-queue 0); clients that disconnect mid-stream
    cancel their generations;
  * continuous batching: 8 concurrent requests with different prompts, lengths and loop settings
    each get the text `loopvk run` gives alone;
  * SIGTERM during a stream: the stream still ends with [DONE], the process exits 0.
Needs the debug build `swift test` made (LOOPVK=path to use another) and `pip install openai`.
SERVE_CHECK_BACKENDS=cpu (or vulkan) runs one backend. Exits non-zero on any failure.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPVK = os.environ.get("LOOPVK", os.path.join(ROOT, ".build/debug/loopvk"))
MODEL = os.path.join(ROOT, "Models/looped-arith")
PROMPTS = ["Q: 7 plus 5 minus 9 A:", "Q: 6 plus 3 A:", "Q: 8 plus 6 minus 0 A:"]
BATCH = 4
failures = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run_cli(backend_args, prompt, *extra):
    out = subprocess.run([LOOPVK, "run", "--model", MODEL, *backend_args, "--prompt", prompt, "--max-tokens", "8", "--json", *extra],
                         capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    return json.loads(out.stdout)


class Server:
    def __init__(self, backend_args):
        self.proc = subprocess.Popen([LOOPVK, "serve", "--model", MODEL, *backend_args, "--port", "0", "--max-queue", "0",
                                      "--max-batch", str(BATCH), "--kv-budget", "64M"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.log = []
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise SystemExit("serve-check: loopvk serve did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.port}"

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def http(self, method, path, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def metric(self, name):
        _, _, text = self.http("GET", "/metrics")
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def open_stream(self, body):
        """A raw streamed request; returns the socket after the first data event arrived."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        payload = json.dumps(body).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        got = b""
        while b"data: " not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return s, got


def error_shape(status, body, want_status, param=None):
    try:
        e = json.loads(body)["error"]
        ok = status == want_status and set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str) and e["message"]
        if param is not None:
            ok = ok and e["param"] == param
        return bool(ok)
    except Exception:
        return False


def check_backend(name, backend_args):
    import openai
    print(f"== {name}", flush=True)
    t0 = time.time()
    srv = Server(backend_args)
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="unused", max_retries=0, timeout=120)
    try:
        status, _, body = srv.http("GET", "/health")
        check(status == 200 and json.loads(body)["status"] == "ok", "GET /health")
        models = client.models.list()
        check([m.id for m in models.data] == ["looped-arith"], "GET /v1/models lists looped-arith")

        for prompt in PROMPTS:
            ref = run_cli(backend_args, prompt)
            r = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=8, temperature=0)
            check(r.choices[0].text == ref["text"] and r.usage.completion_tokens == len(ref["ids"]) and r.usage.prompt_tokens == ref["prompt_tokens"]
                  and r.usage.total_tokens == ref["prompt_tokens"] + len(ref["ids"]),
                  f"completion {prompt!r} = loopvk run ({r.choices[0].text!r}, usage {r.usage.prompt_tokens}+{r.usage.completion_tokens})")
            check(r.choices[0].finish_reason == ("stop" if ref["stop_reason"] == "eos" else "length"), f"finish_reason {r.choices[0].finish_reason}")
            text, finish, usage = "", None, None
            for chunk in client.completions.create(model="looped-arith", prompt=prompt, max_tokens=8, temperature=0, stream=True,
                                                   stream_options={"include_usage": True}):
                if chunk.choices:
                    text += chunk.choices[0].text
                    finish = chunk.choices[0].finish_reason or finish
                if chunk.usage:
                    usage = chunk.usage
            check(text == ref["text"] and finish == r.choices[0].finish_reason and usage is not None and usage.completion_tokens == len(ref["ids"]),
                  f"streamed completion {prompt!r} = loopvk run")

        prompt = PROMPTS[0]
        ref = run_cli(backend_args, prompt, "--chat")
        c = client.chat.completions.create(model="looped-arith", messages=[{"role": "user", "content": prompt}], max_tokens=8, temperature=0)
        check(c.choices[0].message.role == "assistant" and c.choices[0].message.content == ref["text"]
              and c.usage.prompt_tokens == ref["prompt_tokens"] and c.usage.completion_tokens == len(ref["ids"]),
              f"chat completion = loopvk run --chat ({c.choices[0].message.content!r}, usage {c.usage.prompt_tokens}+{c.usage.completion_tokens})")
        text, roles, usage = "", [], None
        for chunk in client.chat.completions.create(model="looped-arith", messages=[{"role": "user", "content": prompt}], max_tokens=8,
                                                    temperature=0, stream=True, stream_options={"include_usage": True}):
            if chunk.choices:
                roles += [chunk.choices[0].delta.role] if chunk.choices[0].delta.role else []
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        check(roles == ["assistant"] and text == ref["text"] and usage is not None and usage.prompt_tokens == ref["prompt_tokens"],
              "streamed chat completion = loopvk run --chat")

        # The loop extension, through the client's extra_body.
        for loop, cli in [({"passes": 1}, ["--exit", "fixed:1"]), ({"exit": "q-exit:0.5"}, ["--exit", "q-exit:0.5"]),
                          ({"passes": 2, "kv": "shared"}, ["--exit", "fixed:2", "--kv", "shared"])]:
            ref = run_cli(backend_args, prompt, *cli)
            r = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=8, temperature=0, extra_body={"loop": loop})
            got = r.model_extra.get("loop", {})
            check(r.choices[0].text == ref["text"] and got.get("passes") == ref["passes"],
                  f"loop {json.dumps(loop)} = loopvk run {' '.join(cli)} (passes {got.get('passes')})")

        r = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=8, temperature=0, stop=["\n"])
        check("\n" not in r.choices[0].text and r.choices[0].finish_reason == "stop", f"stop ['\\n'] -> {r.choices[0].text!r}, stop")
        r1 = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=6, temperature=1.0, seed=11, extra_body={"ignore_eos": True})
        r2 = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=6, temperature=1.0, seed=11, extra_body={"ignore_eos": True})
        check(r1.choices[0].text == r2.choices[0].text and r1.usage.completion_tokens == 6, "sampling with a seed repeats")
        try:
            client.completions.create(model="looped-arith", prompt=prompt, n=2)
            check(False, "openai client: n=2 raises BadRequestError")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.body.get("param") == "n", "openai client: n=2 raises BadRequestError (param n)")

        # Raw HTTP: bad requests.
        st, _, body = srv.http("POST", "/v1/completions", raw=b'{"prompt": "Q: 1 plus')
        check(error_shape(st, body, 400), "malformed JSON -> 400, OpenAI error shape")
        st, _, body = srv.http("POST", "/v1/completions", {"prompt": prompt, "n": 2})
        check(error_shape(st, body, 400, "n"), "n=2 -> 400")
        st, _, body = srv.http("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 1000000})
        check(error_shape(st, body, 400, "max_tokens"), "max_tokens 1000000 (over the context) -> 400")
        st, _, body = srv.http("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True})
        check(error_shape(st, body, 400, "logprobs"), "logprobs: true -> 400")
        st, _, body = srv.http("POST", "/v1/completions", {"prompt": prompt, "temperature": "hot"})
        check(error_shape(st, body, 400, "temperature"), "temperature \"hot\" -> 400")
        st, _, body = srv.http("POST", "/v1/completions", {"prompt": prompt, "frobnicate": 1})
        check(error_shape(st, body, 400, "frobnicate"), "unknown field -> 400")
        st, _, body = srv.http("POST", "/v1/completions", {"prompt": " 1" * 3000})
        check(error_shape(st, body, 400), "prompt over the context -> 400")
        st, _, body = srv.http("GET", "/v1/nothing")
        check(error_shape(st, body, 404), "unknown route -> 404, OpenAI error shape")

        # Continuous batching: concurrent requests, each as `loopvk run` alone (waves of 4 rows).
        jobs = [(f"Q: {i % 10} plus {(i * 3) % 10} minus {(i * 7) % 10} A:", 3 + i % 6,
                 [({}, []), ({"passes": 2}, ["--exit", "fixed:2"]), ({"exit": "q-exit:0.5"}, ["--exit", "q-exit:0.5"])][i % 3]) for i in range(8)]
        refs = [run_cli(backend_args, p, "--max-tokens", str(n), *cli) for p, n, (_, cli) in jobs]
        results = [None] * len(jobs)

        def one(i):
            p, n, (loop, _) = jobs[i]
            for _ in range(100):   # more than BATCH at once: a 429 says retry
                try:
                    results[i] = client.completions.create(model="looped-arith", prompt=p, max_tokens=n, temperature=0, extra_body={"loop": loop})
                    return
                except openai.RateLimitError:
                    time.sleep(0.05)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        same = [r is not None and r.choices[0].text == ref["text"] and r.usage.completion_tokens == len(ref["ids"]) for r, ref in zip(results, refs)]
        check(all(same), f"8 concurrent requests = loopvk run alone ({sum(same)} of 8)")
        _, _, text = srv.http("GET", "/metrics")
        check(re.search(r'loopvk_batch_size_bucket\{le="2(\.0)?"\} (\d+)', text) is not None and "loopvk_batch_size_sum" in text,
              "/metrics has the batch sizes")

        # Long streams fill every row: one more request gets 429 (--max-queue 0); the clients
        # disconnect, which cancels their generations.
        long = {"prompt": prompt, "max_tokens": 1500, "temperature": 0, "ignore_eos": True, "stream": True}
        before = srv.metric("loopvk_generated_tokens_total")
        cancelled0 = srv.metric("loopvk_cancelled_requests_total")
        streams = [srv.open_stream(long) for _ in range(BATCH)]
        check(all(b"HTTP/1.1 200" in first and b"text/event-stream" in first for _, first in streams), f"{BATCH} long streams started (200, text/event-stream)")
        st, headers, body = srv.http("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 2})
        check(error_shape(st, body, 429) and headers.get("Retry-After") == "1", "one more request while every row streams (--max-queue 0) -> 429 + Retry-After")
        for sock, _ in streams:
            sock.close()
        deadline = time.time() + 30
        while time.time() < deadline and srv.metric("loopvk_cancelled_requests_total") - cancelled0 != BATCH:
            time.sleep(0.1)
        generated = srv.metric("loopvk_generated_tokens_total") - before
        check(srv.metric("loopvk_cancelled_requests_total") - cancelled0 == BATCH and generated < BATCH * 1500,
              f"client disconnects cancel the generations ({generated:.0f} of {BATCH * 1500} tokens generated)")
        r = client.completions.create(model="looped-arith", prompt=prompt, max_tokens=2, temperature=0)
        check(r.usage.completion_tokens >= 1, "the next request is served")

        _, _, text = srv.http("GET", "/metrics")
        for metric in ["loopvk_requests_total{", "loopvk_generated_tokens_total", "loopvk_queue_depth", "loopvk_passes_per_token_bucket",
                     "loopvk_time_to_first_token_seconds_bucket", "loopvk_inter_token_latency_seconds_bucket"]:
            check(metric in text, f"/metrics has {metric}")
        check(re.search(r'loopvk_requests_total\{endpoint="/v1/completions",status="429"\} [1-9]', text) is not None, "/metrics counts the 429")

        # SIGTERM while a stream runs: it finishes, then the process exits 0.
        sock, first = srv.open_stream(dict(long, max_tokens=60))
        srv.proc.send_signal(signal.SIGTERM)
        rest = first
        sock.settimeout(120)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
            if b"data: [DONE]" in rest and rest.endswith(b"\r\n\r\n"):
                break
        sock.close()
        events = [e for e in rest.decode(errors="replace").split("\n\n") if "data: {" in e]
        check(b"data: [DONE]" in rest and len(events) >= 2, f"SIGTERM mid-stream: the stream finishes ({len(events)} events, then [DONE])")
        try:
            code = srv.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0 and any("stopped" in line for line in srv.log), f"SIGTERM: clean exit (code {code})")
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    print(f"  {name}: {time.time() - t0:.1f} s", flush=True)


def main():
    if not os.access(LOOPVK, os.X_OK):
        raise SystemExit(f"serve-check: no {LOOPVK} (run swift build or swift test first, or set LOOPVK)")
    try:
        import openai  # noqa: F401
    except ImportError:
        raise SystemExit("serve-check: the openai package is not installed (pip install openai)")
    wanted = os.environ.get("SERVE_CHECK_BACKENDS", "cpu,vulkan").split(",")
    for name, args in [("cpu", ["--cpu"]), ("vulkan", [])]:
        if name in wanted:
            check_backend(name, args)
    if failures:
        print(f"serve-check: {len(failures)} failure(s):\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("serve-check: all checks passed")


if __name__ == "__main__":
    main()
