"""Open a page in headless Chromium and measure its SVG charts in the DOM, as the browser laid them out.

:func:`measure` injects a script that, after layout, records for every ``<svg>`` its box and the
box of each drawn element inside it (bars, points, lines, labels), plus every text's content, and
writes them as JSON into the page; ``--dump-dom`` returns the page with that JSON.  Boxes are the
browser's own (``getBoundingClientRect``), so the checks hold whatever fonts or Chromium build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run", "--hide-scrollbars"]

_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("svg")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const items = [...svg.querySelectorAll("rect, circle, line, polyline, path, text")].map((el) => {
      const r = el.getBoundingClientRect();
      return {tag: el.tagName, cls: el.getAttribute("class") || "", text: el.tagName === "text" ? el.textContent : "",
              left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height};
    });
    return {label: svg.getAttribute("aria-label") || "", left: box.left, top: box.top, right: box.right,
            bottom: box.bottom, items};
  });
  const out = document.createElement("pre");
  out.id = "l1stream-measured";
  out.textContent = JSON.stringify({charts, text: document.body.innerText});
  document.body.appendChild(out);
});
</script>
"""


def measure(html: str, workdir) -> dict:
    """Lay ``html`` out in Chromium; return ``{"charts": [...], "text": page text}`` (see module doc)."""
    page = os.path.join(str(workdir), "measured.html")
    with open(page, "w") as handle:
        handle.write(html.replace("</body>", _SCRIPT + "</body>") if "</body>" in html else html + _SCRIPT)
    env = {**os.environ, "HOME": str(workdir)}
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={os.path.join(str(workdir), 'profile')}",
                          "--window-size=1200,2000", "--virtual-time-budget=5000", "--dump-dom", f"file://{page}"],
                         capture_output=True, text=True, timeout=120, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"chromium failed: {run.stderr[-2000:]}")
    dom = run.stdout
    start = dom.index('<pre id="l1stream-measured">') + len('<pre id="l1stream-measured">')
    raw = dom[start:dom.index("</pre>", start)]
    import html as html_module

    return json.loads(html_module.unescape(raw))


def outside(chart: dict, tolerance: float = 0.5) -> list:
    """The drawn elements of ``chart`` whose box leaves the chart's own box (empty boxes ignored)."""
    bad = []
    for item in chart["items"]:
        if item["width"] == 0 and item["height"] == 0:
            continue
        if (item["left"] < chart["left"] - tolerance or item["right"] > chart["right"] + tolerance
                or item["top"] < chart["top"] - tolerance or item["bottom"] > chart["bottom"] + tolerance):
            bad.append(item)
    return bad


def screenshot(html_path, workdir, size: str = "1100,1800") -> str:
    shot = os.path.join(str(workdir), "shot.png")
    env = {**os.environ, "HOME": str(workdir)}
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={os.path.join(str(workdir), 'profile-shot')}",
                          f"--window-size={size}", f"--screenshot={shot}", f"file://{html_path}"],
                         capture_output=True, text=True, timeout=120, env=env)
    if run.returncode != 0 or not os.path.exists(shot):
        raise RuntimeError(f"chromium screenshot failed: {run.stderr[-2000:]}")
    return shot
