"""GPU-aware relief (pure): a cell failed with a GPU out-of-memory error; who holds that GPU?

On a shared GPU an idle notebook can keep gigabytes of GPU memory while another user's cell
fails with "CUDA out of memory". Per ``gpu_relief``:
  * ``off``: nothing;
  * ``notify`` (default): the failing kernel's user is told which notebooks hold how much on
    that device (``gpu_notify`` action → ``gpu_pressure`` event);
  * ``cull``: the largest *idle* holders on the device are culled until the requested size
    fits (through the same intent / journal / notice path as every cull), never a busy or a
    protected kernel; when even all idle holders would not make it fit, none is culled and
    the user is told instead. The user is told in both cases.
"""

from __future__ import annotations

from ..models import Action, GpuDevice, KernelState, Tick, Trigger
from ..settings import MemGuardSettings


def gpu_relief(
    tick: Tick,
    settings: MemGuardSettings,
    kernel_id: str,
    device_index: int | None,
    requested_bytes: int | None,
) -> list[Action]:
    """The actions for one GPU out-of-memory error of ``kernel_id``'s cell."""
    if settings.gpu_relief == "off":
        return []
    device = _device(tick, kernel_id, device_index)
    if device is None:
        return []
    holders = [
        (tick.kernels[kid], held)
        for kid, held in device.kernels
        if kid != kernel_id and kid in tick.kernels
    ]
    if not holders:
        return []
    culls: list[Action] = []
    if settings.gpu_relief == "cull":
        culls = _culls(holders, device.free_bytes, requested_bytes, device.index)
    culled = {a.kernel_id for a in culls}
    listing = [
        {
            "kernel_id": state.kernel_id,
            "path": state.path,
            "bytes": held,
            "idle": not state.busy,
            "culled": state.kernel_id in culled,
        }
        for state, held in holders
    ]
    trigger = Trigger(
        "gpu_pressure",
        usage_bytes=device.used_bytes,
        limit_bytes=device.total_bytes,
        device_index=device.index,
        requested_bytes=requested_bytes,
    )
    notice = Action(
        "gpu_notify",
        kernel_id,
        trigger,
        culprit={
            "device": device.index,
            "device_name": device.name,
            "requested_bytes": requested_bytes,
            "free_bytes": device.free_bytes,
            "holders": listing,
        },
    )
    return [*culls, notice]


def _device(tick: Tick, kernel_id: str, device_index: int | None) -> GpuDevice | None:
    """The device the error names, else the one the failing kernel uses, else the only one."""
    devices = {d.index: d for d in tick.gpu_devices}
    if device_index is not None:
        return devices.get(device_index)
    state = tick.kernels.get(kernel_id)
    used = [d["index"] for d in (state.gpu or {}).get("devices", ())] if state else []
    if len(used) == 1:
        return devices.get(used[0])
    return next(iter(devices.values())) if len(devices) == 1 else None


def _culls(
    holders: list[tuple[KernelState, int]],
    free: int,
    requested: int | None,
    device: int,
) -> list[Action]:
    """Largest idle, unprotected holders first, until the request fits; none if it cannot."""
    idle = sorted(
        ((s, held) for s, held in holders if not s.busy and not s.protected),
        key=lambda pair: pair[1],
        reverse=True,
    )
    needed = (requested - free) if requested is not None else 1
    if needed <= 0 or sum(held for _, held in idle) < needed:
        return []
    actions, freed = [], 0
    for state, held in idle:
        if freed >= needed:
            break
        trigger = Trigger(
            "gpu_pressure",
            device_index=device,
            requested_bytes=requested,
            usage_bytes=state.usage_bytes,
            kernel_bytes=held,
        )
        actions.append(Action("cull", state.kernel_id, trigger, first=True))
        freed += held
    return actions
