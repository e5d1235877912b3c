#!/usr/bin/env python3
"""Loads `loopvk report` pages in headless Chromium and checks them (stdlib only).

For each HTML file: the page loads with no console message at all (the report logs nothing, so
any message is an error: an exception, a failed load), the DOM after the script ran has every
section, the detail table the script fills has one row per pass, the page references nothing
outside itself, and a screenshot is not blank (many distinct colours).

usage: report_browser_check.py [--screenshot-dir DIR] FILE.html[:PASSES] ...
(PASSES: the run's pass count, to check the detail table's rows.)
Exits non-zero on any failure, printing one line per problem.
"""
import argparse
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


def png_colours(path):
    """Distinct RGB colours of an 8-bit RGB/RGBA PNG (Chromium's screenshots), sampled."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    i = 0
    for y in range(height):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):  # undo the PNG filter of this scanline
            left = line[x - bpp] if x >= bpp else 0
            up = prev[x]
            ul = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + left) & 255
            elif f == 2:
                line[x] = (line[x] + up) & 255
            elif f == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)) & 255
        prev = line
        if y % 4 == 0:
            for x in range(0, width, 2):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
    return width, height, colours


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
    ap.add_argument("pages", nargs="+")
    a = ap.parse_args()
    ok = True
    for spec in a.pages:
        path, _, passes = spec.partition(":")
        ok = check(path, int(passes) if passes else None, a.screenshot_dir) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
