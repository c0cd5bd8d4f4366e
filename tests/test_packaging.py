"""Packaging that explains itself: a wheel and an sdist that install without Node.js, an sdist
of the project's own sources only, JupyterLab told which Python package installed the
extension, and one clear line from a checkout without Node.js.

``python -m build`` runs once, on a copy of the project's sources with stray files planted in
it (a notebook, a kernel connection file), with no ``node`` on PATH: the built JupyterLab
extension is copied along, as a built checkout has it. The wheel and the sdist are each
installed into a fresh virtual environment, again with no ``node`` on PATH. It needs the
package index (for the build's and the packages' dependencies) and ``build`` (pip install
build); without them it is skipped with the reason. MEMGUARD_SKIP_PACKAGING=1 skips it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILT = Path("jupyter_memguard", "labextension")
NODE_TOOLS = ("node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg", "jlpm")
STRAYS = (
    "Untitled.ipynb",
    "kernel-0f3c7e1a.json",
    "jupyter_memguard/scratch.ipynb",
    "docs/.ipynb_checkpoints/index-checkpoint.md",
    "docs/_build/html/_sources/index.md",
    "notes.txt",
)
NETWORK = re.compile(
    r"No matching distribution|Could not find a version|Network is unreachable|"
    r"Failed to establish a new connection|Temporary failure in name resolution"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ONE_LINE = re.compile(r"jupyter-memguard: building its JupyterLab extension needs Node\.js.*")

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        bool(os.environ.get("MEMGUARD_SKIP_PACKAGING")), reason="MEMGUARD_SKIP_PACKAGING is set"
    ),
]


def _git_files(*options: str) -> set[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the project's sources cannot be listed")
    out = subprocess.run(
        ["git", "ls-files", "-z", *options], cwd=ROOT, capture_output=True, check=True
    ).stdout
    names = {p for p in out.decode().split("\0") if p and (ROOT / p).is_file()}
    return {p for p in names if not p.startswith("docs/_build/")}  # a docs build


def tracked() -> set[str]:
    return _git_files("--cached")


def sources() -> list[str]:
    """The project's files as git sees them: tracked, and new ones git does not ignore."""
    return sorted(_git_files("--cached", "--others", "--exclude-standard"))


def path_without_node(shadows: Path) -> str:
    """PATH with every directory that holds Node.js (or jlpm) replaced by a copy of links to
    everything else in it."""
    entries = []
    for index, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        directory = Path(entry)
        if not entry or not directory.is_dir():
            continue
        if not any((directory / tool).exists() for tool in NODE_TOOLS):
            entries.append(entry)
            continue
        shadow = shadows / f"{index}"
        shadow.mkdir(parents=True, exist_ok=True)
        for item in directory.iterdir():
            if item.name not in NODE_TOOLS and not (shadow / item.name).exists():
                (shadow / item.name).symlink_to(item)
        entries.append(str(shadow))
    path = os.pathsep.join(entries)
    for tool in ("node", "jlpm", "npm"):
        assert shutil.which(tool, path=path) is None, f"{tool} still on the test's PATH"
    return path


def run(command: list[str], path: str, cwd: Path | None = None, timeout: float = 900):
    env = {**os.environ, "PATH": path}
    env.pop("SKIP_JUPYTER_BUILDER", None)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def copy_sources(into: Path, with_built: bool) -> None:
    for name in sources():
        if name.startswith(str(BUILT) + "/"):
            continue
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    if with_built:
        shutil.copytree(ROOT / BUILT, into / BUILT)


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path
    sources: frozenset[str]
    tracked: frozenset[str]
    path: str  # PATH without node


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    pytest.importorskip("build", reason="python -m build is not installed (pip install build)")
    if not (ROOT / BUILT / "static" / "style.js").is_file():
        pytest.skip("the JupyterLab extension is not built in this checkout (pip install -e .)")
    work = tmp_path_factory.mktemp("packaging")
    path = path_without_node(work / "bin")
    tree = work / "src"
    copy_sources(tree, with_built=True)
    for stray in STRAYS:
        (tree / stray).parent.mkdir(parents=True, exist_ok=True)
        (tree / stray).write_text("{}\n")
    out = work / "dist"
    result = run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)], path)
    output = result.stdout + result.stderr
    if result.returncode != 0 and NETWORK.search(output):
        pytest.skip("the package index is not reachable for the build's dependencies")
    assert result.returncode == 0, f"python -m build failed:\n{output[-5000:]}"
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dists(wheel, sdist, frozenset(sources()), frozenset(tracked()), path)


def fresh_venv(where: Path, path: str) -> Path:
    result = run([sys.executable, "-m", "venv", str(where)], path)
    assert result.returncode == 0, result.stderr
    return where / "bin"


def pip_install(bin_dir: Path, path: str, *what: str) -> None:
    result = run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *what], path)
    output = result.stdout + result.stderr
    if result.returncode != 0 and NETWORK.search(output):
        pytest.skip("the package index is not reachable for the dependencies")
    assert result.returncode == 0, f"pip install {' '.join(what)} failed:\n{output[-5000:]}"


def installed_here(bin_dir: Path, path: str) -> Path:
    """Where the venv's python imports jupyter_memguard from."""
    result = run(
        [
            str(bin_dir / "python"),
            "-c",
            "import jupyter_memguard; print(jupyter_memguard.__file__)",
        ],
        path,
        cwd=bin_dir,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def labextension_line(bin_dir: Path, path: str) -> str:
    """The line `jupyter labextension list` prints for memguard under the venv's own prefix."""
    here = f"{bin_dir}{os.pathsep}{path}"
    result = run([str(bin_dir / "jupyter"), "labextension", "list"], here, cwd=bin_dir)
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    prefix = str(bin_dir.parent / "share" / "jupyter" / "labextensions")
    section = None
    for line in output.splitlines():
        if not line.startswith((" ", "\t")):
            section = line.strip()
        elif section == prefix and "jupyter-memguard" in line:
            return line.strip()
    raise AssertionError(f"jupyter-memguard is not listed under {prefix}:\n{output}")


def test_sdist_holds_only_the_project_sources(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as archive:
        names = [m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()]
    for stray in STRAYS:
        assert stray not in names, f"the sdist swept in {stray}"
    strays = [
        n
        for n in names
        if n != "PKG-INFO" and not n.startswith(str(BUILT) + "/") and n not in dists.sources
    ]
    assert not strays, f"the sdist holds files that are not the project's sources: {strays}"
    assert f"{BUILT}/static/style.js" in names, "the sdist lacks the built JupyterLab extension"
    for needed in ("pyproject.toml", "hatch_build.py", "install.json", "README.md"):
        assert needed in names
    missing = sorted(dists.tracked - set(names))
    assert not missing, (
        f"tracked files left out of the sdist (add them to its include list): {missing}"
    )


def test_wheel_ships_install_json(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        names = set(archive.namelist())
        data = next(n for n in names if n.endswith("labextensions/jupyter-memguard/install.json"))
        info = json.loads(archive.read(data))
    assert info["packageManager"] == "python"
    assert info["packageName"] == "jupyter-memguard"
    assert "uninstall" in info["uninstallInstructions"]
    assert any(n.endswith("labextensions/jupyter-memguard/static/style.js") for n in names)
    assert any(n.endswith("jupyter_server_config.d/jupyter_memguard.json") for n in names)


def test_wheel_installs_without_node(dists: Dists, tmp_path: Path) -> None:
    """A fresh venv, no node on PATH: the wheel installs, and `jupyter labextension list`
    names the extension with its Python package."""
    bin_dir = fresh_venv(tmp_path / "venv", dists.path)
    pip_install(bin_dir, dists.path, str(dists.wheel), "jupyterlab>=4,<5")
    assert (tmp_path / "venv") in installed_here(bin_dir, dists.path).parents
    line = labextension_line(bin_dir, dists.path)
    assert "enabled" in line and "OK" in line, line
    assert "(python, jupyter-memguard)" in line, line


def test_sdist_installs_without_node(dists: Dists, tmp_path: Path) -> None:
    """A fresh venv, no node on PATH: pip builds the wheel from the sdist (the built extension
    is in it, so nothing needs Node.js) and installs it with both extensions."""
    bin_dir = fresh_venv(tmp_path / "venv", dists.path)
    pip_install(bin_dir, dists.path, str(dists.sdist))
    assert (tmp_path / "venv") in installed_here(bin_dir, dists.path).parents
    share = tmp_path / "venv" / "share" / "jupyter"
    assert (share / "labextensions" / "jupyter-memguard" / "install.json").is_file()
    assert (share / "labextensions" / "jupyter-memguard" / "static" / "style.js").is_file()
    enabled = tmp_path / "venv" / "etc" / "jupyter" / "jupyter_server_config.d"
    assert (enabled / "jupyter_memguard.json").is_file()
    here = f"{bin_dir}{os.pathsep}{dists.path}"
    result = run([str(bin_dir / "jupyter"), "server", "extension", "list"], here)
    output = ANSI.sub("", result.stdout + result.stderr)
    assert re.search(r"jupyter_memguard\s.*enabled", output), output


def test_checkout_without_node_says_what_to_install(dists: Dists, tmp_path: Path) -> None:
    """From a checkout whose JupyterLab extension is not built, without Node.js, `pip install .`
    stops with one line that says what to install, not a traceback."""
    tree = tmp_path / "checkout"
    copy_sources(tree, with_built=False)
    bin_dir = fresh_venv(tmp_path / "venv", dists.path)
    result = run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", str(tree)], dists.path
    )
    output = result.stdout + result.stderr
    if NETWORK.search(output):
        pytest.skip("the package index is not reachable for the build's dependencies")
    assert result.returncode != 0, output
    lines = ONE_LINE.findall(output)
    assert lines, f"no clear line in:\n{output[-4000:]}"
    assert "Node.js >= 20.19" in lines[0] and "wheel" in lines[0], lines[0]
    assert "Traceback" not in output, output[-4000:]
