"""Build hook: say in one line what is missing before the JupyterLab extension is built.

hatch-jupyter-builder runs ``jlpm install`` and ``jlpm build:prod`` in ``labextension/``; from a
checkout without Node.js that fails deep in a traceback. This hook runs first (pyproject.toml
lists it before the jupyter-builder hook) and stops the build with one line that says what to
install, or how to install a built wheel instead. It does nothing when the extension will not
be built: it is already there (a standard build from an sdist or a built checkout), or
SKIP_JUPYTER_BUILDER is set, as for hatch-jupyter-builder itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILT = Path("jupyter_memguard", "labextension", "static", "style.js")
NODE_MINIMUM = "Node.js >= 20.19 (or >= 22.12)"


def node_version(node: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"v?(\d+)\.(\d+)", out.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def supported(version: tuple[int, int]) -> bool:
    major, minor = version
    return (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major >= 23


def problem() -> str | None:
    """Why the JupyterLab extension cannot be built here, or None."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH"
    version = node_version(node)
    if version is None:
        return f"{node} --version gave no version"
    if not supported(version):
        return f"{node} is Node.js {version[0]}.{version[1]}"
    if shutil.which("jlpm") is None:
        return "jlpm is not on PATH (it comes with the jupyter-builder package)"
    return None


class NodeCheckHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name not in ("wheel", "sdist") or os.getenv("SKIP_JUPYTER_BUILDER"):
            return
        if version == "standard" and (Path(self.root) / BUILT).is_file():
            return  # the built extension is there: nothing to build
        why = problem()
        if why is not None:
            raise SystemExit(
                f"jupyter-memguard: building its JupyterLab extension needs {NODE_MINIMUM}, "
                f"but {why}: install Node.js (https://nodejs.org/), or install a built wheel "
                "instead (pip install jupyter_memguard-<version>-py3-none-any.whl; "
                "python -m build makes one on a machine with Node.js)."
            )
