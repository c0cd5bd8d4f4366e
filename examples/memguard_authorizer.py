"""Only administrators may halt kernels through memguard; everyone may read.

Use it in jupyter_server_config.py (or a JupyterHub single-user config):

    import sys; sys.path.insert(0, "/path/to/examples")
    from memguard_authorizer import MemGuardAdminAuthorizer
    c.ServerApp.authorizer_class = MemGuardAdminAuthorizer
    c.MemGuardAdminAuthorizer.admins = {"alice", "bob"}
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import AllowAllAuthorizer
from traitlets import Set, Unicode


class MemGuardAdminAuthorizer(AllowAllAuthorizer):
    """Allows everything, except 'write' on the 'memguard' resource for non-admins."""

    admins = Set(Unicode(), default_value=set(), help="Usernames allowed to halt kernels.").tag(
        config=True
    )

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "memguard" and action == "write":
            return getattr(user, "username", None) in self.admins
        return super().is_authorized(handler, user, action, resource)
