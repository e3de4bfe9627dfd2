"""Redraws the README's screenshot of the app (`serving/app_screenshot.png`).

Not a test: run it by hand after `keras-lit demo` (which trains the demo
model and exports it to `lit_runs/demo/export`), from the repository root:

    .venv/bin/python tests/app_readme_screenshot.py \
        --model lit_runs/demo/export --output serving/app_screenshot.png

It starts the app in-process on a free loopback port, opens the Zero-shot
tab in headless Chromium with a sample and a few labels, and saves the
page as a 256-colour PNG.
"""

import argparse
import os
import sys
import tempfile
from urllib.parse import urlencode

from keras_lit.app import build_parser
from keras_lit.app import make_server

CHROMIUM = os.environ.get("KERAS_LIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LABELS = [
    "red ring",
    "red circle",
    "blue ring",
    "red cross",
    "orange circle",
    "black star",
]
SAMPLE = "red-ring.jpg"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lit_runs/demo/export")
    parser.add_argument("--output", default="serving/app_screenshot.png")
    parser.add_argument("--width", type=int, default=1200)
    options = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as cache_dir:
        args = build_parser().parse_args(
            ["--model", options.model, "--port", "0", "--cache-dir", cache_dir]
        )
        server, _, _ = make_server(args)
        with server:
            query = urlencode([("label", label) for label in LABELS])
            url = f"{server.url}?{query}&sample={SAMPLE}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_FLAGS
                )
                page = browser.new_page(
                    viewport={"width": options.width, "height": 560}
                )
                # Twice: the first visit may wait for the model's warm-up.
                for _ in range(2):
                    page.goto(url)
                    page.wait_for_selector(
                        "body[data-ready=true]", timeout=120_000
                    )
                page.screenshot(path=options.output, full_page=True)
                browser.close()
    try:
        from PIL import Image

        image = Image.open(options.output).convert("RGB")
        image.quantize(colors=256).save(options.output, optimize=True)
    except ImportError:
        pass
    print(f"Wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
