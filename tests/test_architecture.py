"""The structure holds: no import cycles where the design forbids them, one vocabulary of
verdicts (worded once, in Python), and no copy of those words in the frontend."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import get_args

from jupyter_memguard import wording
from jupyter_memguard.models import VERDICTS, Verdict

PACKAGE = Path(__file__).resolve().parents[1] / "jupyter_memguard"
FRONTEND = PACKAGE.parent / "labextension" / "src"


def _imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {name for name in out.split() if name.startswith("jupyter_memguard")}


def test_the_handlers_import_without_the_app():
    loaded = _imported_after("jupyter_memguard.views.handlers")
    assert "jupyter_memguard.views.handlers" in loaded
    assert "jupyter_memguard.app" not in loaded


def test_models_import_no_stage():
    tree = ast.parse((PACKAGE / "models.py").read_text())
    imported = [
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert all(name in ("units",) for name in imported), imported
    loaded = _imported_after("jupyter_memguard.models")
    for stage in ("probe", "guard", "forensics", "views", "lifecycle", "app"):
        assert not any(name.startswith(f"jupyter_memguard.{stage}") for name in loaded), loaded


def test_every_verdict_has_its_words_in_the_one_vocabulary():
    names = set(get_args(Verdict))
    assert set(VERDICTS) == names
    assert set(wording.SUMMARIES) == names
    for name, info in VERDICTS.items():
        assert info.name == name and info.headline and info.severity in ("info", "warning", "error")
        words = wording.describe({"verdict": name, "evidence": {}})
        assert words["headline"] and words["summary"], name
        assert words["severity"] == info.severity and words["survived"] == info.survived
    assert wording.vocabulary()["interrupted_kept"]["survived"] is True


def test_an_unknown_verdict_still_has_words():
    words = wording.describe({"verdict": "from_a_newer_memguard", "evidence": {}})
    assert words["headline"] == VERDICTS["unknown"].headline


def test_the_frontend_holds_no_verdict_headline():
    headlines = {info.headline for info in VERDICTS.values()} | set(wording.STEP_HEADLINES.values())
    found = []
    for source in sorted(FRONTEND.rglob("*.ts*")):
        if "__tests__" in source.parts:
            continue  # fixtures may quote what the server sends
        text = source.read_text()
        found += [f"{source.name}: {h!r}" for h in headlines if h in text]
    assert not found, found
