"""Sphinx configuration of jupyter-memguard's documentation (MyST + pydata-sphinx-theme).

Build it warning-free, with every cross-reference checked:

    pip install -e ".[docs]"
    sphinx-build -W -n -b html docs docs/_build/html

The reference pages are generated from the code by ``_ext/memguard_reference.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout's jupyter_memguard, installed or not

import jupyter_memguard  # noqa: E402

project = "jupyter-memguard"
author = "the jupyter-memguard developers"
copyright = "jupyter-memguard developers"
release = jupyter_memguard.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "memguard_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_static", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

# Every reference must resolve (-n); only the kinds below, named outside the site, may not.
nitpicky = True

html_theme = "pydata_sphinx_theme"
html_title = "jupyter-memguard"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}

# The only external check is off: the link check (linkcheck builder) looks at the links
# inside the site; external URLs are never fetched (CI has no network).
linkcheck_ignore = [r"https?://.*"]
linkcheck_anchors = True
