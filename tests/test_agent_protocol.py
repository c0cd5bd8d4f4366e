"""The protocol's two ends agree, the kernel module stays standard library only, and the
sizing code's edge cases (in this process, on real objects)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types

import pytest

from jupyter_memguard.agent import messages, provisioner
from jupyter_memguard.agent.kernel import jupyter_memguard_agent as agent
from jupyter_memguard.agent.messages import ProtocolError, Variable, VariablesReport

AGENT_SOURCE = agent.__file__


def test_both_ends_share_the_constants() -> None:
    assert agent.PROTOCOL_VERSION == messages.PROTOCOL_VERSION
    assert agent.MAX_LINE == messages.MAX_LINE
    assert agent.SOCKET_ENV == provisioner.SOCKET_ENV
    assert agent.KERNEL_ID_ENV == provisioner.KERNEL_ID_ENV
    assert os.path.dirname(AGENT_SOURCE) == str(provisioner.AGENT_DIR)
    assert sorted(os.listdir(provisioner.AGENT_DIR)) in (
        ["jupyter_memguard_agent.py"],
        ["__pycache__", "jupyter_memguard_agent.py"],
    )


def test_kernel_module_is_standard_library_and_python38() -> None:
    with open(AGENT_SOURCE) as handle:
        tree = ast.parse(handle.read(), feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_decode_rejects_what_breaks_the_protocol() -> None:
    assert messages.decode(b'{"v": 1, "type": "x"}\n') == {"v": 1, "type": "x"}
    for line in (
        b"[1]",
        b'{"v": 1}',
        b'{"v": "1", "type": "x"}',
        b'{"v": 1, "type": "x", "n": NaN}',
        b"\xff\xfe",
        b"{" * 10,
        b" " * (messages.MAX_LINE + 1),
    ):
        with pytest.raises(ProtocolError):
            messages.decode(line)
    start = {"v": 1, "type": "cell_start", "code": "x", "at": 1.5, "rss": True}
    with pytest.raises(ProtocolError):
        messages.parse_cell_start(start, "k", 1)  # a bool is no byte count
    start["rss"] = 10
    assert messages.parse_cell_start(start, "k", 1).rss_bytes == 10
    with pytest.raises(ProtocolError):
        messages.parse_hello({"type": "hello", "kernel_id": "", "pid": 3}, 0.0)


def test_report_json_is_exactly_the_api() -> None:
    variable = Variable("a", "numpy.ndarray", 8, "exact", "nbytes", None, "float64 (1,)")
    report = VariablesReport("k", "ok", None, 1.0, 8, (variable,))
    assert report.to_json() == {
        "kernel_id": "k",
        "status": "ok",
        "reason": None,
        "taken_at": 1.0,
        "total_bytes": 8,
        "variables": [
            {
                "name": "a",
                "type": "numpy.ndarray",
                "bytes": 8,
                "qualifier": "exact",
                "method": "nbytes",
                "device": None,
                "note": "float64 (1,)",
            }
        ],
    }
    json.dumps(report.to_json())


@pytest.mark.parametrize(
    "user_path, expected",
    [(None, None), ("", None), ("/mine", "/mine"), (f"/a{os.pathsep}/b", f"/a{os.pathsep}/b")],
)
def test_environment_is_given_back(user_path: str | None, expected: str | None) -> None:
    """The kernel's environment after loading is what it was before the provisioner added."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[provisioner.SOCKET_ENV] = "/tmp/x.sock"
    env[provisioner.KERNEL_ID_ENV] = "kid"
    env["PYTHONPATH"] = (
        f"{user_path}{os.pathsep}{provisioner.AGENT_DIR}"
        if user_path
        else str(provisioner.AGENT_DIR)
    )
    code = (
        "import json, os, sys\n"
        "import jupyter_memguard_agent as a\n"
        "found = a._take_environment()\n"
        "print(json.dumps([found, os.environ.get('PYTHONPATH'),"
        " [k for k in os.environ if k.startswith('JUPYTER_MEMGUARD')],"
        f" {str(provisioner.AGENT_DIR)!r} in sys.path]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout) == [["/tmp/x.sock", "kid"], expected, [], False], out.stderr


def shell(**names: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(user_ns=dict(names), user_ns_hidden={})


def sizes(ip: types.SimpleNamespace, limit: int = 50) -> dict[str, dict[str, object]]:
    return {v["name"]: v for v in agent.measure_namespace(ip, limit)["variables"]}  # type: ignore[union-attr]


def test_numpy_edge_cases() -> None:
    np = pytest.importorskip("numpy")
    objects = np.empty(1000, dtype=object)
    base = np.ones(1000)
    found = sizes(shell(objects=objects, orphan=base[10:], other=base[20:]))
    assert found["objects"]["qualifier"] == "at_least"
    # A view whose base has no name: the first view counts the whole buffer, once.
    assert found["orphan"]["bytes"] + found["other"]["bytes"] == 8000
    assert "base buffer" in str(found["orphan"]["note"])


def test_pandas_small_and_sampled() -> None:
    pd = pytest.importorskip("pandas")
    small = pd.Series(["x" * 50] * 100, dtype=object)
    big = pd.DataFrame({"s": [f"{i:0100d}" for i in range(300_000)]}, dtype=object)
    index = pd.Index([f"label {i}" for i in range(1000)])
    found = sizes(shell(small=small, big=big, index=index))
    assert found["small"]["bytes"] == small.memory_usage(deep=True)
    assert found["small"]["qualifier"] == "exact"
    truth = big.memory_usage(deep=True).sum()
    assert abs(found["big"]["bytes"] - truth) < 0.05 * truth  # type: ignore[operator]
    assert found["big"]["qualifier"] == "estimate" and "sampled" in str(found["big"]["method"])
    assert found["index"]["bytes"] == index.memory_usage(deep=True)


def test_containers_share_and_nest() -> None:
    shared = [bytes([i]) * 1000 for i in range(10)]
    found = sizes(
        shell(
            shared=shared,
            holder={"a": shared, "b": [1, 2]},
            obj=types.SimpleNamespace(x=b"y" * 5000),
        )
    )
    assert found["shared"]["bytes"] >= 10 * 1000
    assert found["holder"]["bytes"] < 1000  # the shared list is counted under its own name
    assert found["obj"]["bytes"] >= 5000 and found["obj"]["method"] == "getsizeof walk"


def test_outcome_of_a_cell() -> None:
    cell = agent._Cell("m", 1)
    ok = types.SimpleNamespace(error_before_exec=None, error_in_exec=None)
    assert agent._outcome(ok, cell) == ("ok", None)
    error = types.SimpleNamespace(error_before_exec=None, error_in_exec=ValueError())
    assert agent._outcome(error, cell) == ("error", "ValueError")
    stopped = types.SimpleNamespace(error_before_exec=None, error_in_exec=KeyboardInterrupt())
    assert agent._outcome(stopped, cell) == ("interrupted", "KeyboardInterrupt")
    halted = types.SimpleNamespace(
        error_before_exec=None, error_in_exec=agent.MemoryLimitInterrupt("why")
    )
    assert agent._outcome(halted, cell) == ("halted", "MemoryLimitInterrupt")
    assert agent._outcome(None, cell) == ("error", None)
    cell.sigint = True
    assert agent._outcome(None, cell) == ("interrupted", None)
    assert issubclass(agent.MemoryLimitInterrupt, KeyboardInterrupt)
