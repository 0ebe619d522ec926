"""Headless Chromium driven through the DevTools protocol: load a page as a person would, and report what happened.

One browser per ``Chromium`` context, one fresh tab per ``load``: every network request the page makes
(but the page itself, data: and blob: URLs), every console error and uncaught exception, the time from
navigation start until the page's plots are drawn, each plot's box, and a PNG screenshot of the whole page.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resolves, in the page, once ``plots`` Bokeh plots each have a drawn canvas, with the time since navigation
# start and each plot's box; or, past ``limit`` ms, with what it found. Bokeh draws inside shadow roots,
# which querySelectorAll does not enter, so the walk does. A plot is a .bk-Canvas whose shadow root holds a canvas
# with size.
_RENDERED = """
new Promise((resolve) => {
  const limit = %(limit)d, wanted = %(plots)d;
  function plots() {
    const found = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll("*")) {
        if (el.classList && el.classList.contains("bk-Canvas")) {
          const canvas = el.shadowRoot && el.shadowRoot.querySelector("canvas");
          const box = el.getBoundingClientRect();
          if (canvas && canvas.width > 0 && box.width > 0) found.push(
            {x: box.left + window.scrollX, y: box.top + window.scrollY, width: box.width, height: box.height});
        }
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    return found;
  }
  function check() {
    const found = plots();
    // Bokeh.index holds the root views; each says is_idle once it has drawn.
    const roots = window.Bokeh ? Object.values(Bokeh.index) : [];
    const idle = roots.length > 0 && roots.every((view) => view.is_idle);
    if ((found.length >= wanted && idle) || performance.now() > limit) {
      resolve({ms: performance.now(), boxes: found, height: document.documentElement.scrollHeight});
    } else {
      requestAnimationFrame(check);
    }
  }
  check();
})
"""


@dataclass
class Page:
    """What one load of a page showed: ``rendered_ms`` from navigation start, ``boxes`` of the plots (page
    pixels: x, y, width, height), the PNG ``screenshot`` of the whole page, and what went wrong."""

    rendered_ms: float
    boxes: list[dict[str, float]]
    screenshot: bytes
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def find_chromium() -> str | None:
    """Debian's chromium (or another Chromium-like browser on the PATH), or None."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


class Chromium:
    """A headless Chromium, its DevTools endpoint on a free loopback port, closed on exit."""

    def __init__(self, profile: Path, *, width: int = 1280, timeout: float = 60.0):
        self.profile, self.width, self.timeout = Path(profile), width, timeout
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        binary = find_chromium()
        if binary is None:
            raise RuntimeError("no chromium on the PATH")
        self.profile.mkdir(parents=True, exist_ok=True)
        flags = ["--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--no-first-run",
                 "--no-default-browser-check", "--disable-gpu", "--disable-extensions", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                 f"--window-size={self.width},1000"]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox (CI containers)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a previous browser's, naming a port nobody listens on now
        self._log = open(self.profile / "chromium.log", "wb")
        self.process = subprocess.Popen([binary, *flags, "about:blank"], stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + self.timeout
        # Chromium writes the port it bound once it listens; wait for that, bounded, or for its death.
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start: see {self.profile / 'chromium.log'}")
            time.sleep(0.05)
        self.http = f"http://127.0.0.1:{port_file.read_text().split()[0]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def load(self, path: Path, *, plots: int, limit_ms: int = 30_000) -> Page:
        """Open ``path`` in a fresh tab, wait for ``plots`` plots drawn (at most ``limit_ms``), screenshot it."""
        import websocket

        request = urllib.request.Request(f"{self.http}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            target = json.load(response)
        self.ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True
        )
        self.events: list[dict[str, Any]] = []
        try:
            for domain in ("Page", "Network", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=1000, deviceScaleFactor=1,
                      mobile=False)  # fmt: skip
            url = Path(path).resolve().as_uri()
            self.send("Page.navigate", url=url)
            self.wait_for("Page.loadEventFired")
            drawn = self.evaluate(_RENDERED % {"limit": limit_ms, "plots": plots})
            # The whole page in one picture: a viewport as tall as the page, then the boxes measured again.
            height = min(int(drawn["height"]), 16_000)
            self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                      mobile=False)  # fmt: skip
            boxes = self.evaluate(_RENDERED % {"limit": 0, "plots": plots})["boxes"]
            shot = self.send("Page.captureScreenshot", format="png")
            import base64

            return Page(
                rendered_ms=drawn["ms"],
                boxes=boxes,
                screenshot=base64.b64decode(shot["data"]),
                requests=self._requests(url),
                errors=self._errors(),
            )
        finally:
            self.ws.close()
            urllib.request.urlopen(f"{self.http}/json/close/{target['id']}", timeout=self.timeout).close()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result, keeping the events that arrive meanwhile."""
        call = next(self._ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        """The first event named ``event``, kept or still to come (the socket's timeout bounds the wait)."""
        while True:
            for message in self.events:
                if message.get("method") == event:
                    return message["params"]
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"in the page: {result['exceptionDetails']}")
        return result["result"]["value"]

    def _requests(self, url: str) -> list[str]:
        requested = (
            e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"
        )
        return [u for u in requested if u != url and not u.startswith(("data:", "blob:"))]

    def _errors(self) -> list[str]:
        errors = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry']['source']}: {params['entry']['text']}")
        return errors
