#!/usr/bin/env python3
"""Loads `loopvk report` pages in headless Chromium and checks them (stdlib only).

For each HTML file: the page loads with no console message at all (the report logs nothing, so
any message is an error: an exception, a failed load), the DOM after the script ran has every
section, the detail table the script fills has one row per pass, the page references nothing
outside itself, and a screenshot is not blank (many distinct colours).

usage: report_browser_check.py [--screenshot-dir DIR] FILE.html[:PASSES] ...
       report_browser_check.py --shrink IN.png OUT.png   (palette PNG for the README)
(PASSES: the run's pass count, to check the detail table's rows.)
Exits non-zero on any failure, printing one line per problem.
"""
import argparse
import collections
import html.parser
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

SECTIONS = ["summary", "sequence", "exit", "lens", "detail", "convergence", "gpu", "eval"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("report_browser_check: no chromium on PATH (apt-get install chromium)")


def run_chromium(args, timeout=90):
    # A fresh profile each time; no sandbox (CI runs as root in a container).
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0"] + args
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class DOM(html.parser.HTMLParser):
    """Ids, the number of <tr> inside #detail-table, <svg> count, external references."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.detail_rows = 0
        self.svgs = 0
        self.external = []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "svg":
            self.svgs += 1
        if tag == "table" and a.get("id") == "detail-table":
            self.stack.append("detail")
        elif tag == "table":
            self.stack.append("table")
        if tag == "tr" and "detail" in self.stack:
            self.detail_rows += 1
        for key in ("src", "href"):
            if key in a and a[key] and not a[key].startswith("#"):
                self.external.append(f"{tag} {key}={a[key]}")

    def handle_endtag(self, tag):
        if tag == "table" and self.stack:
            self.stack.pop()


def png_decode(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA PNG (Chromium's screenshots)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    i = 0
    for _ in range(height):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f != 0:
            for x in range(stride):  # undo the scanline's filter (1 sub, 3 average, 4 Paeth)
                left = line[x - bpp] if x >= bpp else 0
                up = prev[x]
                if f == 1:
                    line[x] = (line[x] + left) & 255
                elif f == 3:
                    line[x] = (line[x] + (left + up) // 2) & 255
                elif f == 4:
                    ul = prev[x - bpp] if x >= bpp else 0
                    p = left + up - ul
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                    line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for k, b in enumerate(line) if k % 4 != 3))
    return width, height, rows


def png_colours(path):
    """Width, height and the distinct colours of a PNG (every 4th row, every 2nd pixel)."""
    w, h, rows = png_decode(path)
    colours = set()
    for y in range(0, h, 4):
        r = rows[y]
        for x in range(0, w, 2):
            colours.add(r[3 * x:3 * x + 3])
    return w, h, colours


def png_shrink(src, dst, colours=256):
    """Re-encodes a screenshot as an 8-bit palette PNG (the most frequent colours, others mapped
    to the nearest), zlib level 9: for the README's committed screenshot."""
    w, h, rows = png_decode(src)
    counts = collections.Counter(r[3 * x:3 * x + 3] for r in rows for x in range(w))
    palette = [c for c, _ in counts.most_common(colours)]
    index = {c: k for k, c in enumerate(palette)}
    def nearest(c):
        return min(range(len(palette)), key=lambda k: sum((a - b) ** 2 for a, b in zip(c, palette[k])))
    for c in counts:
        if c not in index:
            index[c] = nearest(c)
    raw = b"".join(b"\x00" + bytes(index[r[3 * x:3 * x + 3]] for x in range(w)) for r in rows)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    png += chunk(b"PLTE", b"".join(palette)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(dst, "wb").write(png)


def check(path, passes, shot_dir):
    problems = []
    url = "file://" + os.path.abspath(path)
    page = open(path, encoding="utf-8").read()
    styles = " ".join(re.findall(r"<style>(.*?)</style>", page, re.S))
    if re.search(r"@import|url\(", styles):
        problems.append("the page's styles load something")

    r = run_chromium(["--dump-dom", url])
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
    problems += [f"console: {l.split('] ', 1)[-1]}" for l in console]
    if r.returncode != 0:
        problems.append(f"chromium --dump-dom exited {r.returncode}")
    dom = DOM()
    dom.feed(r.stdout)
    missing = [s for s in SECTIONS if s not in dom.ids]
    if missing:
        problems.append("missing sections: " + ", ".join(missing))
    if passes is not None and dom.detail_rows != passes + 1:   # header row + one per pass
        problems.append(f"the detail table has {dom.detail_rows} rows, expected {passes + 1} (the script did not run?)")
    if dom.svgs < 3:
        problems.append(f"only {dom.svgs} SVG charts")
    if dom.external:
        problems.append("external references: " + ", ".join(dom.external[:3]))

    shot = os.path.join(shot_dir, os.path.basename(path)[:-5] + ".png")
    r = run_chromium(["--hide-scrollbars", "--window-size=1280,1600", "--screenshot=" + shot, url])
    if not os.path.exists(shot):
        problems.append("no screenshot")
    else:
        w, h, colours = png_colours(shot)
        if len(colours) < 64:
            problems.append(f"the screenshot looks blank: {len(colours)} distinct colours")
    status = "ok" if not problems else "FAIL"
    detail = f"{len(dom.ids)} ids, detail rows {dom.detail_rows}, {dom.svgs} svgs"
    if os.path.exists(shot):
        detail += f", screenshot {w}x{h} with {len(colours)} colours"
    print(f"{status} {path} ({os.path.getsize(path) // 1024} KB): {detail}")
    for p in problems:
        print(f"   {p}")
    return not problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshot-dir", default=tempfile.gettempdir())
    ap.add_argument("--shrink", nargs=2, metavar=("IN.png", "OUT.png"), help="only re-encode a screenshot as a palette PNG")
    ap.add_argument("pages", nargs="*")
    a = ap.parse_args()
    if a.shrink:
        png_shrink(*a.shrink)
        return
    ok = True
    for spec in a.pages:
        path, _, passes = spec.partition(":")
        ok = check(path, int(passes) if passes else None, a.screenshot_dir) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
