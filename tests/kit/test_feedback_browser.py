"""The feedback page in headless chromium, opened as a student opens it: a file on a laptop
without network. It fits the screen at desktop and phone width (long messages and lines
wrap inside their box) and asks for nothing beyond itself. The page is the one
tests/kit/test_feedback.py renders; the browser helpers are the book's (tests/book/browser.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_feedback import UNBROKEN, feedback_page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book"))
from browser import DESKTOP, PHONE, browser  # noqa: E402 (the book's helpers, beside it)

pytestmark = pytest.mark.browser

# the right edge of the widest element on the page, and what it is
_WIDEST = """() => {
  let right = 0, what = '';
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > right) {
      right = box.right; what = el.tagName + '.' + el.className;
    }
  }
  return [right, what, document.scrollingElement.scrollWidth];
}"""


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_feedback_page_fits_the_screen_and_loads_nothing_else(tmp_path, size):
    path = feedback_page(tmp_path)
    with browser() as chromium:
        page = chromium.new_page(viewport=size)
        asked = []
        page.on("request", lambda request: asked.append(request.url))
        page.goto(path.as_uri(), wait_until="load")
        right, what, scroll_width = page.evaluate(_WIDEST)
        shown = page.evaluate("() => document.body.innerText")
        page.close()
    assert [url for url in asked if url != path.as_uri()] == []
    assert scroll_width <= size["width"], f"the page scrolls sideways ({scroll_width} px)"
    assert right <= size["width"] + 0.5, f"{what} reaches {right:.0f} px of {size['width']}"
    assert "expected 0.25, got 0.3125" in shown and UNBROKEN[:50] in shown
