"""The documentation: built warning-free, a page entry for everything the code has, no broken
link inside the site, and a README that stays short.

The lists come from the code (the traits, the routes, the event schemas, the argument parser,
the verdict table, the metrics, the JupyterLab settings schema), never from the docs, so a
setting or an endpoint added without its documentation fails here as well as in the build.

The site is built once per test run into a temporary directory, or taken from
``MEMGUARD_DOCS_HTML`` when CI has just built it (``sphinx-build -W -n``).
"""

from __future__ import annotations

import functools
import html.parser
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_BYTES = 8 * 1024
SCREENSHOT = "docs/_static/screenshots/status-bar-and-notice.png"
TWO_COMMANDS = """```bash
# 1. install and start JupyterLab with memguard on
pip install ".[lab]" && jupyter lab

# 2. install the test dependencies and run the whole test suite (ruff, jest, pytest with real
#    kernels, cgroups where allowed, and a real Chromium; installs Debian's chromium when root)
bash .ci/run
```"""


def _needs_sphinx() -> None:
    for module in ("sphinx", "myst_parser", "pydata_sphinx_theme"):
        pytest.importorskip(module, reason='the docs need pip install -e ".[docs]"')


@functools.cache
def _build_once(base: str) -> tuple[Path, int, str]:
    out = Path(base) / "memguard-docs" / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(DOCS), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    return out, result.returncode, result.stdout + result.stderr


def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built HTML site: built once per test run (test_settings uses it too), or the one
    CI has just built (MEMGUARD_DOCS_HTML)."""
    given = os.environ.get("MEMGUARD_DOCS_HTML")
    if given:
        path = Path(given)
        assert (path / "objects.inv").is_file(), f"MEMGUARD_DOCS_HTML={given} has no built site"
        return path
    _needs_sphinx()
    out, code, output = _build_once(str(tmp_path_factory.getbasetemp()))
    assert code == 0, f"sphinx-build -W -n failed:\n{output[-6000:]}"
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_docs(tmp_path_factory)


# --------------------------------------------------------------------------- objects.inv
_INVENTORY_LINE = re.compile(r"(.+?)\s+(\S+)\s+(-?\d+)\s+?(\S*)\s+(.*)")


def inventory(site: Path) -> dict[str, dict[str, str]]:
    """objects.inv as {"std:setting": {name: "page.html#anchor"}}."""
    data = (site / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    found: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        match = _INVENTORY_LINE.match(line.rstrip())
        if match:
            name, role, _priority, uri, _shown = match.groups()
            if uri.endswith("$"):
                uri = uri[:-1] + name
            found.setdefault(role, {})[name] = uri
    return found


def _reference():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import memguard_reference
    finally:
        sys.path.pop(0)
    return memguard_reference


def code_names(kind: str) -> set[str]:
    """What the code has, listed by the code itself (the same lists the build checks)."""
    from jupyter_memguard.app import MemGuard
    from jupyter_memguard.models import VERDICTS
    from jupyter_memguard.views.cli import build_parser
    from jupyter_memguard.views.events import EVENT_KINDS

    if kind == "setting":
        return set(MemGuard.class_own_traits(config=True))
    if kind == "verdict":
        return set(VERDICTS)
    if kind == "event":
        return set(EVENT_KINDS)
    if kind == "clicommand":
        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        return set(sub.choices)
    return _reference().expected(kind)


def page_has_anchor(site: Path, uri: str) -> bool:
    page, _, anchor = uri.partition("#")
    path = site / page
    return path.is_file() and (not anchor or f'id="{anchor}"' in path.read_text())


@pytest.mark.parametrize(
    "kind", ["setting", "endpoint", "event", "clicommand", "verdict", "metric", "labsetting"]
)
def test_every_name_the_code_has_has_its_entry(site: Path, kind: str) -> None:
    entries = inventory(site).get(f"std:{kind}", {})
    wanted = code_names(kind)
    assert wanted, f"the code lists no {kind}"
    missing = sorted(wanted - set(entries))
    assert not missing, f"{kind}s without an entry in the docs: {missing}"
    stale = sorted(set(entries) - wanted)
    assert not stale, f"{kind}s documented but gone from the code: {stale}"
    broken = [name for name, uri in entries.items() if not page_has_anchor(site, uri)]
    assert not broken, f"{kind} entries whose page or anchor is missing: {broken}"


def test_every_endpoint_lists_its_declared_parameters(site: Path) -> None:
    from jupyter_memguard.views.handlers import handlers

    page = (site / "reference" / "rest.html").read_text()
    for _pattern, cls in handlers():
        for parameter in getattr(cls, "parameters", {}) or {}:
            assert f">{parameter}<" in page, f"{cls.__name__}: parameter {parameter} not shown"


def test_every_cli_option_is_documented(site: Path) -> None:
    import argparse

    from jupyter_memguard.views.cli import build_parser

    documented = set(inventory(site).get("std:cmdoption", {}))
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest
            # Sphinx names options "program option" (older) or "program-with-dashes.option"
            keys = (f"jupyter memguard {name} {flag}", f"jupyter-memguard-{name}.{flag}")
            assert any(key in documented for key in keys), (name, flag)


def test_every_event_field_is_documented(site: Path) -> None:
    import yaml

    from jupyter_memguard.views.events import EVENT_KINDS, SCHEMA_DIR, SCHEMA_VERSION

    page = (site / "reference" / "events.html").read_text()
    for kind in EVENT_KINDS:
        schema = yaml.safe_load((SCHEMA_DIR / kind / f"{SCHEMA_VERSION}.yaml").read_text())
        assert schema["$id"] in page
        for field in schema["properties"]:
            assert f">{field}<" in page, f"{kind}: field {field} not shown"


# --------------------------------------------------------------------------- links
class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("name"):
            self.ids.add(str(values["name"]))
        for attribute in ("href", "src"):
            target = values.get(attribute)
            if target and tag in ("a", "img", "link", "script"):
                self.links.append(target)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_no_broken_link_inside_the_site(site: Path) -> None:
    """Every relative link of every page names a file of the site and, with #anchor, an id
    on that page. External links are never fetched (CI has no network)."""
    pages = {
        p: _parse(p) for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts
    }
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//") or link.startswith("mailto:"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "broken links inside the site:\n" + "\n".join(sorted(broken)[:50])


def test_every_page_is_in_the_table_of_contents(site: Path) -> None:
    """Sphinx -W already fails on a page in no toctree; this checks the nav reaches them."""
    index = (site / "index.html").read_text()
    for section in (
        "install",
        "user/index",
        "admin/index",
        "how-it-works/index",
        "reference/index",
    ):
        assert f'href="{section}.html"' in index, section


# --------------------------------------------------------------------------- the README
def test_readme_is_short_and_keeps_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.encode()) <= README_MAX_BYTES, f"README.md is {len(text.encode())} bytes"
    assert TWO_COMMANDS in text, "the README's two commands changed"
    for heading in ("## Two commands", "## For admins"):
        assert heading in text


def _github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_resolve() -> None:
    """The README's relative links (into docs/) name files that exist, and their #anchors
    name a heading of that page (as GitHub makes anchors)."""
    text = README.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target == SCREENSHOT:
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists():
            broken.append(target)
            continue
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.MULTILINE)
            if anchor not in {_github_slug(h) for h in headings}:
                broken.append(f"{target} (no such heading)")
    assert not broken, f"broken links in README.md: {broken}"


def test_readme_screenshot_is_in_place() -> None:
    assert f"]({SCREENSHOT})" in README.read_text()
    if not (ROOT / SCREENSHOT).is_file():
        pytest.skip(
            f"{SCREENSHOT} not copied yet (take it from the browser test's tests/artifacts/)"
        )
