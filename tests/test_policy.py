"""The guard policy, exhaustively, without processes: thresholds, escalation, victims, culling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jupyter_memguard.app import default_settings
from jupyter_memguard.guard.policy import PolicyState, decide, level, next_interval
from jupyter_memguard.models import (
    Breakdown,
    Budget,
    Holder,
    KernelState,
    OtherProcess,
    ProcessTreeMemory,
    Tick,
)
from jupyter_memguard.settings import ConfigValueError, MemGuardSettings
from jupyter_memguard.wording import action_reason as reason

MB = 1_000_000
MiB = 2**20
LIMIT = 1000 * MB  # per-kernel limit in most tests: warn 800, halt 900, kill 950
BIG_BUDGET = 100_000 * MB


def settings(**changes) -> MemGuardSettings:
    base = {"kernel_memory_limit": LIMIT, "interrupt_grace": 2.0, "shutdown_grace": 3.0}
    base.update(changes)
    return default_settings(**base)


def kernel(kid: str = "k", rss: int | None = 100 * MB, **kw) -> KernelState:
    memory = None if rss is None else ProcessTreeMemory(1, rss, rss, (1,), 0.0)
    return KernelState(kernel_id=kid, memory=memory, **kw)


def snap(
    now: float, *kernels: KernelState, budget: int = BIG_BUDGET, usage: int | None = None
) -> Tick:
    used = usage if usage is not None else sum(k.usage_bytes or 0 for k in kernels)
    limits = Budget(budget, "config", used, "test", budget)
    return Tick(number=0, at=now, budget=limits, kernels={k.kernel_id: k for k in kernels})


def run(steps, config: MemGuardSettings, state: PolicyState | None = None):
    """Feed (time, kernels...) steps; return the actions of each step and the final state."""
    state = state or PolicyState()
    out = []
    for now, *kernels in steps:
        actions, state = decide(snap(now, *kernels), config, state)
        out.append([(a.kind, a.kernel_id) for a in actions])
    return out, state


@pytest.mark.parametrize(
    ("rss", "expected"),
    [
        (799 * MB, []),
        (800 * MB, [("warn", "k")]),
        (899 * MB, [("warn", "k")]),
        (900 * MB, [("warn", "k"), ("interrupt", "k")]),
        (949 * MB, [("warn", "k"), ("interrupt", "k")]),
        (950 * MB, [("warn", "k"), ("kill", "k")]),
        (2000 * MB, [("warn", "k"), ("kill", "k")]),
    ],
)
def test_thresholds(rss, expected):
    out, _ = run([(0, kernel(rss=rss))], settings())
    assert out[0] == expected


def test_escalation_interrupt_shutdown_kill_over_time():
    over = kernel(rss=920 * MB)
    out, state = run(
        [(0, over), (1.0, over), (2.0, over), (3.0, over), (4.9, over), (5.0, over), (6.0, over)],
        settings(),
    )
    assert out == [
        [("warn", "k"), ("interrupt", "k")],
        [],  # within the interrupt grace
        [("shutdown", "k")],  # still over halt 2 s after the interrupt
        [],
        [],  # within the shutdown grace
        [("kill", "k")],  # 3 s after SIGTERM
        [],  # each step once
    ]
    assert state.kernels["k"].stage == "killed"


def test_interrupt_that_works_resets_the_escalation():
    out, state = run(
        [
            (0, kernel(rss=920 * MB)),
            (1, kernel(rss=300 * MB)),
            (5, kernel(rss=300 * MB)),
            (6, kernel(rss=920 * MB)),
        ],
        settings(),
    )
    assert out[1] == [] and out[2] == []
    # A new crossing starts over (warn re-armed because it fell under warn).
    assert out[3] == [("warn", "k"), ("interrupt", "k")]
    assert state.kernels["k"].stage == "interrupted"


def test_restart_action():
    out, _ = run([(0, kernel(rss=920 * MB)), (3, kernel(rss=920 * MB))], settings(action="restart"))
    assert out[0] == [("warn", "k"), ("restart", "k")]
    assert out[1] == [("shutdown", "k")]


def test_kill_fraction_skips_the_graces_at_any_stage():
    out, _ = run([(0, kernel(rss=920 * MB)), (0.5, kernel(rss=960 * MB))], settings())
    assert out[1] == [("kill", "k")]


def test_warn_once_per_crossing_and_rearm():
    steps = [(t, kernel(rss=r * MB)) for t, r in [(0, 810), (1, 850), (2, 700), (3, 820), (4, 830)]]
    out, _ = run(steps, settings())
    assert [a for a in out] == [[("warn", "k")], [], [], [("warn", "k")], []]


def test_warn_action_carries_figures_and_reason():
    actions, _ = decide(snap(0, kernel(rss=850 * MB)), settings(), PolicyState())
    (warn,) = actions
    assert warn.usage_bytes == 850 * MB and warn.limit_bytes == LIMIT
    assert warn.trigger.kind == "kernel_limit" and warn.trigger.line == "warn"
    assert "810.6 MiB" in reason(warn) and "953.7 MiB" in reason(warn)
    # A configured limit reads back as configured, in the units chosen.
    actions, _ = decide(
        snap(0, kernel(rss=500 * 2**20)), settings(kernel_memory_limit="600M"), PolicyState()
    )
    assert reason(actions[0]) == "kernel uses 500 MiB, over 80% of its 600 MiB limit"
    decimal = settings(display_units="decimal")
    assert "850 MB" in reason(
        decide(snap(0, kernel(rss=850 * MB)), decimal, PolicyState())[0][0], "decimal"
    )


def test_protected_and_unmeasured_kernels_are_never_acted_on():
    out, _ = run(
        [
            (0, kernel("p", rss=990 * MB, protected=True), kernel("u", rss=None)),
            (10, kernel("p", rss=990 * MB, protected=True), kernel("u", rss=None)),
        ],
        settings(),
    )
    assert out == [[], []]


def test_budget_limit_applies_per_kernel_without_a_kernel_limit():
    config = settings(kernel_memory_limit="")
    actions, _ = decide(
        snap(0, kernel(rss=920 * MB), budget=LIMIT, usage=300 * MB), config, PolicyState()
    )
    assert ("interrupt", "k") in [(a.kind, a.kernel_id) for a in actions]


def test_budget_victim_is_the_largest_then_fastest():
    config = settings(kernel_memory_limit="", cull_under_pressure=False)
    kernels = (
        kernel("a", rss=300 * MB, growth_bytes_per_s=1, execution_state="busy"),
        kernel("b", rss=400 * MB, growth_bytes_per_s=1, execution_state="busy"),
        kernel("c", rss=400 * MB, growth_bytes_per_s=50 * MB, execution_state="busy"),
    )
    actions, state = decide(
        snap(0, *kernels, budget=1200 * MB, usage=1100 * MB), config, PolicyState()
    )
    halts = [(a.kind, a.kernel_id, a.trigger.kind) for a in actions if a.kind != "warn"]
    assert halts == [("interrupt", "c", "budget")]
    assert state.budget_victim == "c"
    # Only one victim at a time, and the escalation continues on it.
    actions, state = decide(snap(2.5, *kernels, budget=1200 * MB, usage=1100 * MB), config, state)
    assert [(a.kind, a.kernel_id) for a in actions if a.kind != "warn"] == [("shutdown", "c")]


def test_budget_victim_released_when_pressure_ends():
    config = settings(kernel_memory_limit="", cull_under_pressure=False)
    busy = kernel("a", rss=500 * MB, execution_state="busy")
    _, state = decide(snap(0, busy, budget=1000 * MB, usage=950 * MB - 1), config, PolicyState())
    assert state.budget_victim == "a"
    actions, state = decide(snap(1, busy, budget=1000 * MB, usage=600 * MB), config, state)
    assert state.budget_victim is None and not [a for a in actions if a.kind != "warn"]


def test_budget_kill_fraction_kills_the_victim_at_once():
    config = settings(kernel_memory_limit="", cull_under_pressure=False)
    actions, _ = decide(
        snap(
            0, kernel("a", rss=500 * MB, execution_state="busy"), budget=1000 * MB, usage=960 * MB
        ),
        config,
        PolicyState(),
    )
    assert ("kill", "a") in [(a.kind, a.kernel_id) for a in actions]


def test_headroom_floor_counts_as_exhausted():
    config = settings(kernel_memory_limit="", cull_under_pressure=False, min_headroom=200 * MB)
    actions, _ = decide(
        snap(
            0, kernel("a", rss=100 * MB, execution_state="busy"), budget=1000 * MB, usage=850 * MB
        ),
        config,
        PolicyState(),
    )
    assert [(a.kind, a.trigger.kind) for a in actions] == [("interrupt", "budget")]


def test_protected_kernel_is_never_the_budget_victim():
    config = settings(kernel_memory_limit="", cull_under_pressure=False)
    kernels = (
        kernel("big", rss=700 * MB, protected=True),
        kernel("small", rss=100 * MB, execution_state="busy"),
    )
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=920 * MB), config, PolicyState()
    )
    assert state.budget_victim == "small"
    assert all(a.kernel_id != "big" for a in actions)


def test_pressure_culls_idle_kernels_largest_first_before_halting_busy_ones():
    config = settings(kernel_memory_limit="")
    kernels = (
        kernel("idle-small", rss=100 * MB),
        kernel("idle-big", rss=300 * MB),
        kernel("busy", rss=400 * MB, execution_state="busy"),
    )
    # 850 of 1000: over warn (800); culling idle-big brings it to 550: enough.
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=850 * MB), config, PolicyState()
    )
    assert [(a.kind, a.kernel_id, a.trigger.kind) for a in actions] == [
        ("cull", "idle-big", "idle_pressure")
    ]
    assert state.budget_victim is None
    # Next tick, the culled kernel is still there (shutting down): no second cull, no halt.
    actions, state = decide(snap(0.5, *kernels, budget=1000 * MB, usage=850 * MB), config, state)
    assert actions == []


def test_pressure_culls_nobody_when_culling_cannot_relieve_it_and_halts_the_cause():
    config = settings(kernel_memory_limit="")
    kernels = (
        kernel("i1", rss=50 * MB),
        kernel("i2", rss=40 * MB),
        kernel("busy", rss=800 * MB, execution_state="busy"),
    )
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=990 * MB), config, PolicyState()
    )
    kinds = [(a.kind, a.kernel_id) for a in actions if a.kind != "warn"]
    # Culling both idle kernels would leave 900 MB, still over warn (800): their users keep
    # their state. Stopping the busy one (800 MB) brings usage under the halt line: it goes
    # (990 is over the kill line, 950).
    assert kinds == [("kill", "busy")]
    assert state.budget_victim == "busy"


def outside_breakdown(script_bytes: int, scanned_at: float = 0.0) -> Breakdown:
    script = OtherProcess(4242, "python", "python train.py", "ana", script_bytes, "1")
    server = Holder("server", "server", 0, (), "rss")
    return Breakdown(
        2048 * MiB, "host", scanned_at, (), server, (), (), 0, 0, 0, 0, "", 0, 0,
        largest_outside=(script,),
    )  # fmt: skip


def test_pressure_from_outside_the_kernels_touches_no_kernel_and_names_the_process():
    # A 2 GiB container: two idle kernels of 150 MiB and a 1.7 GiB script from a terminal.
    config = settings(kernel_memory_limit="")
    kernels = (kernel("a", rss=150 * MiB), kernel("b", rss=150 * MiB))
    budget = Budget(2048 * MiB, "cgroup_v1", 2000 * MiB, "test", 24 * 2**30)
    state = PolicyState()
    outcomes = []
    for now, usage in ((0, 2000), (1, 2010), (2, 1500), (3, 2000)):
        tick = Tick(
            number=now,
            at=now,
            budget=replace(budget, usage_bytes=usage * MiB),
            kernels={k.kernel_id: k for k in kernels},
            breakdown=outside_breakdown(1700 * MiB, scanned_at=now),
        )
        actions, state = decide(tick, config, state)
        outcomes.append([(a.kind, a.kernel_id) for a in actions])
        if now == 0:
            (pressure,) = actions
            assert pressure.culprit["pid"] == 4242 and pressure.culprit["terminal"] == "1"
            assert reason(pressure) == (
                "A process outside your notebooks, `python train.py` (pid 4242, terminal 1), "
                "uses 1.7 GiB of the 2 GiB limit"
            )
    # One warning per crossing (re-armed once usage is back under the warn line); no cull, no
    # halt, although usage is over the kill line.
    assert outcomes == [[("pressure", "")], [], [], [("pressure", "")]]


def test_pressure_names_a_culprit_only_from_a_scan_taken_since_it_began():
    config = settings(kernel_memory_limit="")
    kernels = {"a": kernel("a", rss=150 * MiB)}
    budget = Budget(2048 * MiB, "cgroup_v1", 2000 * MiB, "test", 24 * 2**30)
    stale = Tick(1, 10.0, budget, kernels, breakdown=outside_breakdown(10 * MiB, scanned_at=9.5))
    actions, state = decide(stale, config, PolicyState())
    assert actions == [] and state.outside_since == 10.0  # the scan predates the pressure
    fresh = Tick(2, 11.0, budget, kernels, breakdown=outside_breakdown(1700 * MiB, 10.5))
    actions, state = decide(fresh, config, state)
    assert [a.culprit["bytes"] for a in actions] == [1700 * MiB]


def test_budget_victim_only_when_stopping_it_relieves_the_budget():
    config = settings(kernel_memory_limit="", cull_under_pressure=False)
    kernels = (kernel("small", rss=60 * MB, execution_state="busy"),)
    big = (kernel("big", rss=300 * MB, execution_state="busy"),)
    # 930 of 1000 (halt line 900): 630 outside the kernel; stopping it leaves 630.
    actions, state = decide(snap(0, *big, budget=1000 * MB, usage=930 * MB), config, PolicyState())
    assert ("interrupt", "big") in [(a.kind, a.kernel_id) for a in actions]
    # 930 of 1000 with a 60 MB kernel: 870 is outside it, over the warn line by itself.
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=930 * MB), config, PolicyState()
    )
    assert [(a.kind, a.kernel_id) for a in actions] == [("pressure", "")]
    # 990 of 1000: stopping it leaves 930, still over the halt line: it is not the cause.
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=990 * MB), config, PolicyState()
    )
    assert [(a.kind, a.kernel_id) for a in actions] == [("pressure", "")]
    assert state.budget_victim is None


def test_pressure_from_a_runaway_spares_idle_bystanders():
    kernels = (
        kernel("idle", rss=300 * MB),
        kernel("runaway", rss=500 * MB, execution_state="busy", growth_bytes_per_s=200 * MB),
    )
    # 850 of 1000: over warn; the runaway reaches the halt line (900) in 0.25 s: no cull.
    actions, state = decide(
        snap(0, *kernels, budget=1000 * MB, usage=850 * MB),
        settings(kernel_memory_limit=""),
        PolicyState(),
    )
    assert [a for a in actions if a.kind == "cull"] == []
    # Past the halt line, the runaway (largest) is the victim, never the bystander.
    actions, state = decide(
        snap(
            0.5,
            *kernels[:1],
            kernel("runaway", rss=600 * MB, execution_state="busy", growth_bytes_per_s=200 * MB),
            budget=1000 * MB,
            usage=920 * MB,
        ),
        settings(kernel_memory_limit=""),
        state,
    )
    assert {a.kernel_id for a in actions} == {"runaway"} and state.budget_victim == "runaway"
    # A slow grower (5 s to the halt line at 10 MB/s, horizon 1 s) does not stop the cull.
    actions, _ = decide(
        snap(
            0,
            *kernels[:1],
            kernel("slow", rss=500 * MB, growth_bytes_per_s=10 * MB, execution_state="busy"),
            budget=1000 * MB,
            usage=850 * MB,
        ),
        settings(kernel_memory_limit="", runaway_horizon=1),
        PolicyState(),
    )
    assert [(a.kind, a.kernel_id) for a in actions] == [("cull", "idle")]


def test_interrupted_kernel_holding_its_memory_is_shut_down():
    config = settings()
    out, state = run(
        [
            (0, kernel(rss=920 * MB)),  # over halt: interrupt
            (1, kernel(rss=850 * MB)),  # under halt but still over warn: keep watching
            (2.5, kernel(rss=850 * MB)),  # grace over, memory still held: shutdown
        ],
        config,
    )
    assert out == [[("warn", "k"), ("interrupt", "k")], [], [("shutdown", "k")]]
    out, state = run(
        [(0, kernel(rss=920 * MB)), (1, kernel(rss=300 * MB)), (5, kernel(rss=300 * MB))], config
    )
    assert out == [[("warn", "k"), ("interrupt", "k")], [], []]  # memory given back: released
    assert state.kernels["k"].stage == "none"


def test_no_pressure_cull_while_a_halt_is_under_way():
    big = kernel("big", rss=750 * MB, execution_state="busy")
    idle = kernel("idle", rss=100 * MB)
    config = settings(kernel_memory_limit="")
    actions, state = decide(snap(0, big, budget=1000 * MB, usage=920 * MB), config, PolicyState())
    assert [(a.kind, a.kernel_id) for a in actions] == [("interrupt", "big")]
    # Interrupted, still holding 850 of 1000 (over warn): the halt goes on, the idle one stays.
    actions, state = decide(snap(1, big, idle, budget=1000 * MB, usage=850 * MB), config, state)
    assert actions == []
    actions, state = decide(snap(2.5, big, idle, budget=1000 * MB, usage=850 * MB), config, state)
    assert [(a.kind, a.kernel_id) for a in actions] == [("shutdown", "big")]


def test_cull_busy_and_cull_connected_are_respected():
    for config, expected in [
        (settings(kernel_memory_limit="", idle_timeout=10), {"c"}),
        (settings(kernel_memory_limit="", idle_timeout=10, cull_connected=False), set()),
        (settings(kernel_memory_limit="", idle_timeout=10, cull_busy=True), {"b", "c"}),
    ]:
        old = (
            kernel("c", 300 * MB, idle_seconds=20, connections=2),
            kernel("b", 300 * MB, idle_seconds=20, execution_state="busy"),
        )
        actions, _ = decide(snap(0, *old), config, PolicyState())
        assert {a.kernel_id for a in actions if a.kind == "cull"} == expected


def test_idle_timeout_culls_once():
    config = settings(idle_timeout=60)
    young = kernel("y", 100 * MB, idle_seconds=59)
    old = kernel("o", 100 * MB, idle_seconds=61)
    out, _ = run([(0, young, old), (1, young, old)], config)
    assert out == [[("cull", "o")], []]
    assert [a.trigger.kind for a in decide(snap(0, young, old), config, PolicyState())[0]] == [
        "idle"
    ]


def test_no_idle_culling_by_default():
    out, _ = run([(0, kernel("o", 100 * MB, idle_seconds=10**6))], settings())
    assert out == [[]]


def test_dry_run_reports_the_same_actions_and_advances():
    config = settings(dry_run=True)
    over = kernel(rss=920 * MB)
    out, _ = run([(0, over), (1, over), (2.5, over)], config)
    assert out == [[("warn", "k"), ("interrupt", "k")], [], [("shutdown", "k")]]


def test_state_forgets_kernels_that_are_gone():
    _, state = run([(0, kernel("a", rss=920 * MB), kernel("b"))], settings())
    assert set(state.kernels) == {"a", "b"}
    _, state = decide(snap(1, kernel("b")), settings(), state)
    assert set(state.kernels) == {"b"}


def test_decide_does_not_change_its_input_state():
    _, first = run([(0, kernel(rss=920 * MB))], settings())
    before = dict(first.kernels)
    decide(snap(5, kernel(rss=920 * MB)), settings(), first)
    assert dict(first.kernels) == before


def test_level():
    config = settings()
    assert level(None, LIMIT, config) == "ok"
    assert level(799 * MB, LIMIT, config) == "ok"
    assert level(800 * MB, LIMIT, config) == "warning"
    assert level(900 * MB, LIMIT, config) == "critical"
    assert level(5, 0, config) == "ok"


def test_next_interval_bounds():
    config = settings(min_poll_interval=0.05, poll_interval=2.0)
    roomy = settings(kernel_memory_limit=16 * 10**9, min_poll_interval=0.05, poll_interval=2.0)
    assert next_interval(snap(0, kernel(rss=10 * MB)), roomy) == 2.0
    # A small limit is close in absolute terms: 940 MB at 2 GiB/s is 0.44 s away.
    assert next_interval(snap(0, kernel(rss=10 * MB)), config) == pytest.approx(940 * MB / 2**31)
    assert next_interval(snap(0, kernel(rss=949 * MB)), config) == 0.05
    assert next_interval(snap(0, kernel(rss=2000 * MB)), config) == 0.05
    middle = next_interval(snap(0, kernel(rss=(950 - 1000) * MB + 950 * MB)), config)
    assert 0.05 <= middle <= 2.0


@pytest.mark.parametrize("limit_gib", [2, 4, 16])
def test_next_interval_keeps_up_with_2_gb_per_second(limit_gib):
    limit = limit_gib * 2**30
    config = settings(kernel_memory_limit=limit)
    rate = 2 * 2**30
    for fraction in (0.1, 0.5, 0.8, 0.85, 0.89, 0.899):
        rss = int(limit * fraction)
        interval = next_interval(snap(0, kernel(rss=rss), budget=64 * 2**30, usage=rss), config)
        # A 2 GB/s allocator just under halt cannot pass the kill line before the next tick.
        assert rss + interval * rate <= config.kill_fraction * limit + 1024
    # With a 2 GiB limit the 5 % halt→kill gap is covered at the 50 ms floor.
    just_under = int(2 * 2**30 * 0.9) - 1
    gap = 0.05 * 2 * 2**30
    interval = next_interval(
        snap(0, kernel(rss=just_under)), settings(kernel_memory_limit=2 * 2**30)
    )
    assert interval * rate <= gap + 1024


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"warn_fraction": 0.95}, "halt_fraction"),
        ({"kill_fraction": 1.5}, "kill_fraction"),
        ({"interrupt_grace": -1}, "interrupt_grace"),
        ({"action": "nuke"}, "action"),
        ({"min_poll_interval": 5, "poll_interval": 1}, "min_poll_interval"),
        ({"max_growth_rate": 0}, "max_growth_rate"),
        ({"display_units": "furlongs"}, "display_units"),
    ],
)
def test_settings_validation_names_the_field(changes, field):
    with pytest.raises(ConfigValueError, match=field):
        settings(**changes)


def test_kernel_stuck_in_starting_is_idle_for_culling():
    # jupyter_server learns a kernel's state from iopub status messages; when its watcher
    # connects after the kernel's only busy/idle pair (seen under load), the state stays
    # "starting" for good. Such a kernel runs nothing: only "busy" protects from culling.
    config = settings(idle_timeout=60)
    stuck = kernel("s", 100 * MB, idle_seconds=61, execution_state="starting")
    busy = kernel("b", 100 * MB, idle_seconds=61, execution_state="busy")
    actions, _ = decide(snap(0, stuck, busy), config, PolicyState())
    assert [(a.kind, a.kernel_id) for a in actions] == [("cull", "s")]


def test_an_outside_process_still_growing_is_the_cause_not_the_idle_kernels():
    # The total crosses the warn line while the outside process is still growing and the
    # outside part alone is under the line: the idle kernels are not culled for it.
    config = settings(kernel_memory_limit="")
    kernels = {k.kernel_id: k for k in (kernel("a", rss=150 * MiB), kernel("b", rss=150 * MiB))}
    state, seen = PolicyState(), []
    for now, outside in ((0.0, 600), (0.5, 1000), (1.0, 1400)):  # MiB outside, growing fast
        usage = (outside + 300) * MiB
        budget = Budget(2048 * MiB, "cgroup_v1", usage, "test", 24 * 2**30)
        tick = Tick(int(now * 2), now, budget, kernels, breakdown=outside_breakdown(outside, now))
        actions, state = decide(tick, config, state)
        seen.append([a.kind for a in actions])
    assert seen == [[], [], ["pressure"]]  # 1700 of 2048 MiB: over warn, nobody culled
    # The same total, reached with the outside flat: the idle kernels are the relief.
    flat = PolicyState()
    for now in (0.0, 0.5, 1.0):
        budget = Budget(2048 * MiB, "cgroup_v1", 1700 * MiB, "test", 24 * 2**30)
        tick = Tick(int(now * 2), now, budget, kernels, breakdown=outside_breakdown(1400, now))
        actions, flat = decide(tick, config, flat)
        if actions:
            break
    assert [a.kind for a in actions] == ["cull"]


def test_a_single_kernel_growing_fast_is_never_pressure_from_outside():
    # One kernel grows by 1.5 GiB in 3 s in a 2 GiB container. Each tick's budget and kernel
    # figures are read at the same moment (outside_bytes), the outside staying at ~150 MiB.
    config = settings(kernel_memory_limit="", cull_under_pressure=True)
    state, kinds = PolicyState(), []
    history: tuple[tuple[float, int], ...] = ()
    for step in range(7):
        now, grown = step * 0.5, 100 * MiB + step * 256 * MiB
        history = (*history, (now, grown))
        runaway = KernelState(
            "runaway",
            memory=ProcessTreeMemory(1, grown, grown, (1,), now),
            execution_state="busy",
            growth_bytes_per_s=512 * MiB if step else 0.0,
            history=history,
        )
        idle = kernel("idle", rss=60 * MiB)
        usage = grown + 60 * MiB + 150 * MiB
        budget = Budget(2048 * MiB, "cgroup_v1", usage, "test", 24 * 2**30, outside_bytes=150 * MiB)
        tick = Tick(step, now, budget, {"runaway": runaway, "idle": idle})
        actions, state = decide(tick, config, state)
        kinds += [(a.kind, a.kernel_id) for a in actions]
    assert ("pressure", "") not in kinds, kinds
    # The idle bystander is spared: the runaway is halted, as the budget's victim.
    assert kinds == [("interrupt", "runaway")], kinds


def test_pressure_figures_add_up():
    # kernels + outside = usage in the trigger, and the words say the same figures.
    config = settings(kernel_memory_limit="")
    kernels = {"a": kernel("a", rss=150 * MiB)}
    budget = Budget(2048 * MiB, "cgroup_v1", 1900 * MiB, "test", 0, outside_bytes=1750 * MiB)
    actions, _ = decide(Tick(1, 1.0, budget, kernels), config, PolicyState())
    (pressure,) = actions
    t = pressure.trigger
    assert t.kernel_bytes + 1750 * MiB == t.usage_bytes == 1900 * MiB
    assert reason(pressure) == (
        "Memory outside your notebooks fills the budget: 1.9 GiB of 2 GiB in use, "
        "1.7 GiB of it outside the kernels"
    )


def test_containment_limit_is_past_the_kill_line_within_what_the_budget_leaves():
    from jupyter_memguard.guard.policy import containment_limit, effective_lines

    config = settings(kernel_memory_limit="")
    budget = Budget(2048 * MiB, "cgroup_v1", 400 * MiB, "test", 0)
    alone = KernelState(
        "k", limit_bytes=2048 * MiB, memory=ProcessTreeMemory(1, 100 * MiB, 0, (1,), 0)
    )
    # Halfway between the kill line (95 %) and the limit: 97.5 %. Others hold 300 MiB:
    # 0.975 × 2 GiB − 300 MiB is less than the kernel's own 97.5 %.
    assert containment_limit(alone, budget, config) == int(0.975 * 2048 * MiB) - 300 * MiB
    # A per-kernel limit below that: halfway between its own kill line and its limit, above
    # the kill line, so memguard's own kill there comes first.
    small = replace(alone, limit_bytes=512 * MiB)
    assert containment_limit(small, budget, config) == int(0.975 * 512 * MiB)
    assert containment_limit(small, budget, config) > effective_lines(small, budget, config)[2]
    # Others fill the budget: never below the kernel's own usage and a margin.
    full = replace(budget, usage_bytes=2040 * MiB)
    assert containment_limit(alone, full, config) == 100 * MiB + 64 * MiB


def _after_interrupt(
    usage: int, agent, budget_usage: int | None = None, state_now: str = "idle", **config
):
    """The actions of the tick after memguard's interrupt, with what the agent reported."""
    from jupyter_memguard.models import AgentView

    s = settings(**config)
    running = kernel(rss=920 * MB, execution_state="busy")
    state = decide(snap(0, running), s, PolicyState())[1]
    assert state.kernels["k"].stage == "interrupted"
    views = {"ended": AgentView(False, 0.5, "halted", usage), "running": AgentView(True)}
    after = replace(
        kernel(rss=usage), agent=views[agent] if agent else None, execution_state=state_now
    )
    total = budget_usage if budget_usage is not None else usage
    actions, state = decide(snap(0.6, after, usage=total), s, state)
    return [a.kind for a in actions], state.kernels["k"].stage


def test_after_the_interrupt_a_kernel_under_its_kill_line_is_kept_when_the_server_has_room():
    assert _after_interrupt(930 * MB, "ended") == (["keep"], "kept")
    # The same, with the budget itself short: stopped at once, without waiting the grace.
    assert _after_interrupt(930 * MB, "ended", budget_usage=BIG_BUDGET) == (
        ["shutdown"],
        "shutdown",
    )
    # Over its kill line: killed, whatever the agent says.
    assert _after_interrupt(960 * MB, "ended") == (["kill"], "killed")
    # No agent, or the cell not ended yet: the grace is waited out, as before.
    assert _after_interrupt(930 * MB, None) == ([], "interrupted")
    assert _after_interrupt(930 * MB, "running") == ([], "interrupted")
    # The agent reported the end, but the kernel's own messages (the traceback, then idle)
    # have not reached jupyter_server yet: nothing is decided, so no shutdown cuts them off.
    assert _after_interrupt(930 * MB, "ended", BIG_BUDGET, state_now="busy") == (
        [],
        "interrupted",
    )


def test_a_kept_kernel_is_interrupted_again_only_by_a_new_cell():
    from jupyter_memguard.models import AgentView

    s = settings()
    state = decide(snap(0, kernel(rss=920 * MB, execution_state="busy")), s, PolicyState())[1]
    idle = replace(kernel(rss=930 * MB), agent=AgentView(False, 0.5, "halted", 930 * MB))
    actions, state = decide(snap(0.6, idle), s, state)
    assert [a.kind for a in actions] == ["keep"]
    for now in (1, 5, 30):  # still over its stop line, running nothing: left alone
        actions, state = decide(snap(now, idle), s, state)
        assert actions == [] and state.kernels["k"].stage == "kept"
    # A new cell that takes nothing more: left alone; one that grows toward the kill line: a
    # new escalation (with a new intent: the first was used by the kept record).
    small = replace(idle, agent=AgentView(True, 0.5, "halted", 930 * MB), execution_state="busy")
    actions, state = decide(snap(31, small), s, state)
    assert actions == [] and state.kernels["k"].stage == "kept"
    grows = replace(small, memory=ProcessTreeMemory(1, 942 * MB, 942 * MB, (1,), 32.0))
    actions, state = decide(snap(32, grows), s, state)
    assert [(a.kind, a.first) for a in actions] == [("interrupt", True)]
