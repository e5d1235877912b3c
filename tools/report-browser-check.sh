#!/usr/bin/env bash
# `loopvk report` in a real browser: builds reports for the bundled model (with eval results)
# and one fixture of each family (Huginn at 32 passes), then loads each in headless Chromium
# (tools/report_browser_check.py): no console message, every section in the DOM after the
# script ran, one detail-table row per pass, nothing referenced outside the page, a screenshot
# that is not blank. Needs `chromium` (Debian package) and the debug build `swift test` made
# (LOOPVK=path/to/loopvk to use another). REPORT_OUT=DIR keeps the pages and screenshots;
# README_SHOT=FILE also writes the README's screenshot of the bundled model's report.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
loopvk=${LOOPVK:-.build/debug/loopvk}
[ -x "$loopvk" ] || { echo "report-browser-check: no $loopvk (run swift build or swift test first, or set LOOPVK)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "report-browser-check: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
out=${REPORT_OUT:-$(mktemp -d)}
mkdir -p "$out"
start=$(date +%s)

echo "== eval results for the bundled model (60 dev problems: passes 1, 2, 4; q-exit 0.5, 0.9)"
tasks=Models/looped-arith/eval-dev.jsonl
: > "$out/evals.jsonl"
for p in 1 2 4; do "$loopvk" eval --tasks $tasks --limit 60 --passes "$p" --json >> "$out/evals.jsonl"; done
for q in 0.5 0.9; do "$loopvk" eval --tasks $tasks --limit 60 --exit "q-exit:$q" --json >> "$out/evals.jsonl"; done

echo "== reports"
"$loopvk" report --prompt "Q: 7 plus 5 minus 9 A:" --exit q-exit:0.5 --eval "$out/evals.jsonl" --out "$out/looped-arith.html"
"$loopvk" report --model Tests/Fixtures/ouro-tiny-fp32 --tokens 3,5,7,9,11 --exit q-exit:0.6 --max-tokens 6 --out "$out/ouro.html"
"$loopvk" report --model Tests/Fixtures/huginn-tiny-fp32 --tokens 3,5,7,9,11 --passes 32 --exit kl --max-tokens 6 --out "$out/huginn-32.html"
"$loopvk" report --model Tests/Fixtures/loopus-tiny-qwen3-fp32 --tokens 3,5,7,9,11 --exit cdf:0.9 --max-tokens 6 --out "$out/loopus.html"

echo "== headless Chromium"
python3 tools/report_browser_check.py --screenshot-dir "$out" \
  "$out/looped-arith.html:4" "$out/ouro.html:4" "$out/huginn-32.html:32" "$out/loopus.html:4"

if [ -n "${README_SHOT:-}" ]; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$(mktemp -d)" --window-size=1000,1300 \
    --screenshot="$out/readme-full.png" "file://$(realpath "$out/looped-arith.html")" 2>/dev/null
  python3 tools/report_browser_check.py --shrink "$out/readme-full.png" "$README_SHOT"
  echo "wrote $README_SHOT ($(($(stat -c %s "$README_SHOT") / 1024)) KB)"
fi
echo "report-browser-check: all pages pass ($(($(date +%s) - start)) s)"
