"""memguard's kernel agent: exact cell boundaries, per-cell peaks, the largest variables and an
interrupt that says why, reported from inside ipykernel kernels.

``kernel/jupyter_memguard_agent.py`` runs inside the kernel (standard library only);
``provisioner`` loads it, ``install`` makes that provisioner the default, ``channel`` is the
server's end of the private Unix socket, ``messages`` the typed protocol.
"""

from .channel import AgentChannel
from .install import AgentSetup, default_socket_path, install, uninstall
from .messages import (
    AgentEvent,
    AgentHello,
    AgentLost,
    AgentStats,
    CellEnded,
    CellStarted,
    Variable,
    VariablesReport,
)
from .provisioner import PROVISIONER_NAME, AgentProvisioner

__all__ = [
    "PROVISIONER_NAME",
    "AgentChannel",
    "AgentEvent",
    "AgentHello",
    "AgentLost",
    "AgentProvisioner",
    "AgentSetup",
    "AgentStats",
    "CellEnded",
    "CellStarted",
    "Variable",
    "VariablesReport",
    "default_socket_path",
    "install",
    "uninstall",
]
