"""Configuration validation: bad values name the setting; a bad config stops the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_memguard.app import MemGuard
from jupyter_memguard.settings import ConfigValueError, resolve_settings


def defaults(**changes):
    raw = {name: trait.default() for name, trait in MemGuard.class_own_traits(config=True).items()}
    raw.update(changes)
    return raw


def test_defaults_resolve():
    settings = resolve_settings(defaults())
    assert settings.memory_limit_bytes is None
    assert settings.kernel_memory_limit.resolve(1000) is None
    assert (settings.warn_fraction, settings.halt_fraction, settings.kill_fraction) == (
        0.8,
        0.9,
        0.95,
    )
    assert settings.min_headroom_bytes == 100 * 1024**2
    assert settings.max_growth_rate_bytes == 2 * 1024**3


def test_sizes_and_percentages():
    settings = resolve_settings(defaults(memory_limit="4G", kernel_memory_limit="25%"))
    assert settings.memory_limit_bytes == 4 * 1024**3
    assert settings.kernel_memory_limit.resolve(4000) == 1000
    absolute = resolve_settings(defaults(kernel_memory_limit=300 * 1024**2))
    assert absolute.kernel_memory_limit.resolve(10**12) == 300 * 1024**2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("memory_limit", "4X"),
        ("memory_limit", "lots"),
        ("kernel_memory_limit", "150%"),
        ("kernel_memory_limit", "abc%"),
        ("poll_interval", -1.0),
        ("min_poll_interval", 50.0),
        ("warn_fraction", 1.5),
        ("halt_fraction", 0.5),
        ("kill_fraction", 0.85),
        ("action", "explode"),
        ("interrupt_grace", -2.0),
        ("oom_score_adj", 2000),
        ("max_growth_rate", "0"),
        ("journal_max_rows", 0),
    ],
)
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(ConfigValueError) as info:
        resolve_settings(defaults(**{name: value}))
    assert f"c.MemGuard.{name}" in str(info.value)


@pytest.mark.parametrize(
    ("argument", "name"),
    [
        ("--MemGuard.poll_interval=-1", "poll_interval"),
        ("--MemGuard.memory_limit=4X", "memory_limit"),
        ("--MemGuard.poll_interval=fast", "poll_interval"),
    ],
)
def test_server_refuses_to_start_with_bad_config(tmp_path, argument, name):
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.allow_root=True",
        "--ServerApp.jpserver_extensions={'jupyter_memguard': True}",
        f"--ServerApp.root_dir={tmp_path}",
        "--no-browser",
        "--port=0",
        argument,
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert result.returncode != 0
    assert name in result.stderr
    assert "invalid configuration" in result.stderr


def test_docs_document_every_setting(tmp_path_factory):
    """Every setting has its entry in the docs' settings reference (generated from the traits:
    name, type, default, help), on a page that exists (the README has no settings table)."""
    from .test_docs import built_docs, inventory, page_has_anchor

    site = built_docs(tmp_path_factory)
    entries = inventory(site).get("std:setting", {})
    names = [n for n, t in MemGuard.class_own_traits().items() if t.metadata.get("config")]
    missing = [n for n in names if n not in entries]
    assert not missing, f"settings missing from the docs' reference: {missing}"
    assert all(page_has_anchor(site, entries[n]) for n in names)
    assert all(entries[n].startswith("reference/settings.html#") for n in names)


def test_spawner_mem_limit_from_the_environment():
    hub = resolve_settings(defaults(), environ={"MEM_LIMIT": "1073741824"})
    assert (hub.spawner_mem_limit_bytes, hub.spawner_mem_limit_problem) == (2**30, None)
    assert resolve_settings(defaults(), environ={}).spawner_mem_limit_bytes is None
    bad = resolve_settings(defaults(), environ={"MEM_LIMIT": "lots"})
    assert bad.spawner_mem_limit_bytes is None and "MEM_LIMIT='lots' ignored" in str(
        bad.spawner_mem_limit_problem
    )
    off = resolve_settings(
        defaults(use_spawner_mem_limit=False), environ={"MEM_LIMIT": "1073741824"}
    )
    assert off.spawner_mem_limit_bytes is None


def test_a_server_started_by_a_spawner_with_mem_limit_guards_it(tmp_path):
    from .servers import ServerProcess

    with ServerProcess(root=tmp_path, env={"MEM_LIMIT": str(600 * 2**20)}) as server:
        status = server.get("api/memguard/status")
        assert status["budget"]["limit_bytes"] == 600 * 2**20
        assert status["budget"]["limit_source"] == "spawner_mem_limit"
