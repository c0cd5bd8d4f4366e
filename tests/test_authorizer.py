"""The halt endpoint needs 'write' on resource 'memguard': the admin-only authorizer example."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import get_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


@pytest.fixture
def jp_server_config(tmp_path: Any) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_memguard": True},
            "authorizer_class": "memguard_authorizer.MemGuardAdminAuthorizer",
        },
        "MemGuardAdminAuthorizer": {"admins": ["somebody-else"]},
        "MemGuard": {"journal_path": str(tmp_path / "journal.sqlite")},
    }


async def test_non_admin_can_read_but_not_halt(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    status = await get_json(jp_fetch, "status")
    assert status["can_halt"] is False
    assert (await get_json(jp_fetch, "kernels", kernel.id))["id"] == kernel.id
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "api", "memguard", "kernels", kernel.id, "halt", method="POST", body=json.dumps({})
        )
    assert info.value.code == 403
    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    assert [k["id"] for k in kernels] == [kernel.id]  # nothing was halted
