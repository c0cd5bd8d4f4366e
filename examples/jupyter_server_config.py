# An example jupyter_server_config.py for a JupyterHub single-user server (or any server)
# running inside a container with a memory limit. Every c.MemGuard setting is optional.
import os
import sys

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

# The budget: detected from the container's cgroup (memory.max); set one only to be stricter.
# c.MemGuard.memory_limit = "8G"

# Halt one runaway kernel before it takes the whole container: each kernel may use 70 % of it.
c.MemGuard.kernel_memory_limit = "70%"
c.MemGuard.warn_fraction = 0.8
c.MemGuard.halt_fraction = 0.9
c.MemGuard.kill_fraction = 0.95

# Under memory pressure, shut idle kernels down (largest first) before halting a busy one;
# also shut kernels down after two idle hours.
c.MemGuard.cull_under_pressure = True
c.MemGuard.idle_timeout = 2 * 3600

# Keep the journal on the persistent home volume, so it survives pod restarts.
c.MemGuard.journal_path = os.path.expanduser("~/.local/share/jupyter/memguard/journal.sqlite")

# Only admins may halt kernels through /api/memguard/kernels/{id}/halt.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memguard_authorizer import MemGuardAdminAuthorizer  # noqa: E402

c.ServerApp.authorizer_class = MemGuardAdminAuthorizer
c.MemGuardAdminAuthorizer.admins = {"admin"}

# Let Prometheus scrape /metrics without a token. On a hub this opens /user/<name>/metrics to
# anyone who can reach the proxy: block that path at your ingress and scrape the pods directly,
# or remove this line and give Prometheus the token of a JupyterHub service that has only the
# access:servers scope (see docs/admin/jupyterhub.md).
c.ServerApp.authenticate_prometheus = False
