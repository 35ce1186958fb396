#!/usr/bin/env python3
"""Renders a run report's index.html in headless Chromium and checks what a
reader sees: the gate table, one error/bound histogram (16 bars) per gate
and target with ratios, a worst-rows table with a row for each of them (its
case whole in results.json), and bars actually painted (the bar colour in a
screenshot, decoded here with the standard library only). The histograms
expected are the (target, gate) tallies of results.json with a ratio; at
least MIN_HISTOGRAMS of them.
Usage: render_report.py REPORT_DIR MIN_HISTOGRAMS"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BAR_BLUE = (0x4A, 0x7B, 0xB7)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("render_report: no Chromium on PATH (ci/setup.sh installs the chromium package)")


def run(args):
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(base + args, capture_output=True, timeout=120, check=True)


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB/RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), f"PNG depth {depth} colour type {colour}"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    report, least = sys.argv[1], int(sys.argv[2])
    results = json.load(open(os.path.join(report, "results.json")))
    # A tally: [pass, fail, skip, worst ratio (-1: none), histogram].
    expected = sum(1 for t in results["targets"] for tally in t["tallies"].values() if tally[3] >= 0)
    assert expected >= least, f"only {expected} gate tallies carry a ratio, expected at least {least}"
    page = "file://" + os.path.abspath(os.path.join(report, "index.html"))
    dom = run(["--dump-dom", page]).stdout.decode()
    histograms, bars = dom.count('<svg class="ratios"'), dom.count('<rect class="bar"')
    assert histograms == expected, f"{histograms} histograms rendered, expected {expected}"
    assert bars == 16 * expected, f"{bars} bars, expected {16 * expected}"
    assert "<table>" in dom and str(results["cases"]) in dom, "the gate table or the case count is missing"
    worst = dom.count('<tr class="worst">')
    assert worst == expected, f"{worst} worst rows rendered, expected {expected}"
    for t in results["targets"]:
        for row in t["worst_rows"]:
            assert row["case"] and "shape" in row["case"] and row["verdict"], f"worst row without its case: {row}"
    with tempfile.TemporaryDirectory() as tmp:
        shot = os.path.join(tmp, "page.png")
        run([f"--screenshot={shot}", "--window-size=1400,2400", page])
        w, h, bpp, rows = png_pixels(shot)
        blue = sum(1 for row in rows for x in range(0, w * bpp, bpp)
                   if all(abs(row[x + k] - BAR_BLUE[k]) <= 8 for k in range(3)))
    assert blue > 50, f"only {blue} pixels of bar colour in the screenshot: the histograms did not paint"
    print(f"render_report: {histograms} histograms, {bars} bars, {worst} worst rows, {blue} bar pixels painted")


if __name__ == "__main__":
    main()
