"""Shared helpers for the benchmarks: the machine line, run statistics, a quiet log, a home.

Not a benchmark itself; `run_all.py` skips it.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from roost.core.model import Structure, Thermostat, ThermostatMode
from roost.host.log import configure_logging

ACCOUNT = "bench"
THERMOSTATS_PER_STRUCTURE = 20  # 1,000 thermostats = 50 homes of 20 (a landlord's account)


def machine() -> str:
    """CPU model, cores, Python and platform, on one line."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{model}, {os.cpu_count()} cores, {python}, {platform.platform()}"


def quiet_logging(level: str = "warning") -> None:
    """Log as the daemon does (JSON, structlog), but at `level` and into a discarded buffer.

    At the default `info` level the dispatcher writes one line per command; the benchmarks
    measure the engine, not the log sink, so they run at `warning` unless told otherwise.
    """
    configure_logging(level, "json", stream=_Discard())


class _Discard(io.StringIO):
    def write(self, s: str) -> int:
        return len(s)


@dataclass(frozen=True)
class Summary:
    """Median, min and max of one figure over several runs."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(statistics.median(values), min(values), max(values))


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "MEETS target" if ok else "MISSES target"


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return f"load average {os.getloadavg()[0]:.2f} (1 min)"


class CpuMeter(threading.Thread):
    """What else used the machine while a latency benchmark ran, sampled every 0.1 s from
    /proc (Linux; elsewhere no samples): the machine's busy time (steal included), the time
    the hypervisor gave to other guests (steal), and this process's and `other_pid`'s CPU.
    The 1-minute load average printed at start and end lags by a minute and counts the
    benchmark's own processes, so it cannot tell which window of a run shared the cores."""

    def __init__(self, other_pid: int) -> None:
        super().__init__(name="cpu meter", daemon=True)
        self.other_pid = other_pid
        self.samples: list[tuple[float, int, int, int, int]] = []  # at, busy, steal, own, other
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            try:
                with open("/proc/stat", encoding="ascii") as stat:
                    ticks = [int(x) for x in stat.readline().split()[1:9]]
                own, other = _process_ticks(os.getpid()), _process_ticks(self.other_pid)
            except (OSError, ValueError, IndexError):
                return
            busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
            self.samples.append((time.time(), busy, ticks[7], own, other))

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def shares(self, start: float, end: float) -> tuple[float, float] | None:
        """(cores the other processes used, cores stolen by the hypervisor) between two
        `time.time()` instants; None without two samples in between."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        first, last = inside[0], inside[-1]
        span = (last[0] - first[0]) * os.sysconf("SC_CLK_TCK")
        busy, steal, own, other = (last[i] - first[i] for i in range(1, 5))
        return (busy - steal - own - other) / span, steal / span


def _process_ticks(pid: int) -> int:
    """User + system clock ticks of process `pid` (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def header(title: str, detail: str) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")
    print(f"   {detail}; {load()} at start")
    sys.stdout.flush()


# Home Assistant 2024.3.3 on this kind of machine, per CPU-second (../shared/anchors/README.md;
# `make bench-anchor` measures them again, alternated with roost's, and prints the ratios).
HA_AUTOMATION_RUNS_PER_CPU_S = 1_700
HA_STATE_CHANGES_PER_CPU_S = 43_000


def figure(label: str, rates: Sequence[tuple[float, float]], unit: str, target: float) -> str:
    """One line for (elapsed-time rate, CPU-time rate) pairs over the runs: the median of
    the elapsed-time rates with min and max, then the CPU-time median against the target (a
    rate per CPU-second, steadier than elapsed time on a shared machine)."""
    wall = Summary.of([r[0] for r in rates])
    cpu = Summary.of([r[1] for r in rates])
    return (
        f"   {label}: {wall.median:>9,.0f} {unit} (min {wall.min:,.0f}, max {wall.max:,.0f}); "
        f"per CPU-second {cpu.median:,.0f}; target ≥ {target:,.0f}: {verdict(cpu.median, target)}"
    )


READING_WRAP = 99_000  # readings stay within 0.001-99.0 %: a valid humidity for every reader


def reading(n: int) -> float:
    """The humidity (%) that names change n in the stream benchmarks: never 0 (a home's
    first reading) and inside 0-100 %, so no normalizer drops it as out of range."""
    return (n % READING_WRAP + 1) / 1000


def change_of(humidity: float) -> int:
    """The change (modulo READING_WRAP) a humidity reading from `reading` names."""
    return round(humidity * 1000) - 1


def thermostat_id(i: int) -> str:
    return f"thermostat-{i:04d}"


def build_devices(count: int) -> tuple[dict[str, Structure], dict[str, Thermostat]]:
    """`count` heating thermostats at 18 °C with a 20 °C setpoint, 20 to a structure."""
    structures: dict[str, Structure] = {}
    devices: dict[str, Thermostat] = {}
    for i in range(count):
        sid = f"structure-{i // THERMOSTATS_PER_STRUCTURE:03d}"
        if sid not in structures:
            structures[sid] = Structure(id=sid, name=f"Home {len(structures)}")
        devices[thermostat_id(i)] = Thermostat(
            id=thermostat_id(i),
            name=f"Room {i}",
            structure_id=sid,
            room=f"Room {i}",
            mode=ThermostatMode.HEAT,
            heat_setpoint_c=20.0,
            ambient_c=18.0,
            humidity=45.0,
        )
    return structures, devices
