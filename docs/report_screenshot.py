"""Regenerate docs/report.png: the report on the demo data, as headless Chromium paints it.

    python docs/report_screenshot.py          # writes the demo data to a temporary directory first
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is needed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as root:
        data, page = "l1stream-demo", os.path.join(root, "report.html")  # as the README's commands name it
        run = [sys.executable, "-m", "l1stream"]
        subprocess.run(run + ["demo", data, "--quiet"], check=True, stdout=subprocess.DEVNULL, cwd=root)
        subprocess.run(run + ["report", data, "--by", "model", "--html", page, "--max-mae", "60000", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, cwd=root)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={os.path.join(root, 'profile')}", "--window-size=1040,1280",
                        f"--screenshot={os.path.join(HERE, 'report.png')}", f"file://{page}"],
                       check=True, capture_output=True, env={**os.environ, "HOME": root})
    print(f"wrote {os.path.join(HERE, 'report.png')}")


if __name__ == "__main__":
    main()
