"""HTML to PDF with WeasyPrint, fetching nothing from outside (the after-action report, web/report_pdf.py).

A module of its own so that WeasyPrint is imported only when a PDF is made."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from weasyprint import CSS, HTML
from weasyprint.urls import FatalURLFetchingError, URLFetcher

STATIC_DIR = Path(__file__).with_name("static").resolve()
PRINT_CSS = STATIC_DIR / "report.css"


class _LocalFetcher(URLFetcher):
    """WeasyPrint's fetcher, limited to ``data:`` URIs and files of our own static folder.

    WeasyPrint would otherwise follow any URL a document names (http, ftp, any file): a
    report is built on the box, often with no network at all, and must neither hang on a
    foreign origin nor read a file it was not meant to show. Nothing of ours names such a
    URL (the pictures are inline SVG, the fonts the system's), so one that appears is a
    mistake: ``fail_on_errors`` makes the refusal stop the rendering instead of leaving a
    hole in the report with a warning nobody reads.
    """

    def __init__(self) -> None:
        super().__init__(allowed_protocols=("data", "file"), allow_redirects=False, fail_on_errors=True)

    def fetch(self, url: str, headers: Any = None):  # noqa: ANN201 - WeasyPrint's URLFetcherResponse
        if url.startswith("data:"):
            return super().fetch(url, headers)
        if url.startswith("file:"):
            path = Path(unquote(urlsplit(url).path)).resolve()   # ../ and symlinks resolved before the check
            if STATIC_DIR in path.parents and path.is_file():
                return super().fetch(url, headers)
        raise FatalURLFetchingError(f"the report fetches nothing from outside: {url[:200]} refused")


def html_to_pdf(html: str) -> bytes:
    """The PDF of ``html`` with the print stylesheet, fetching nothing from outside."""
    fetcher = _LocalFetcher()
    stylesheet = CSS(string=PRINT_CSS.read_text(encoding="utf-8"), url_fetcher=fetcher)
    return HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=fetcher).write_pdf(
        stylesheets=[stylesheet])
