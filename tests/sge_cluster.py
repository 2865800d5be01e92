"""A throwaway single-host Grid Engine for the tests: ``sge_qmaster`` and ``sge_execd``
from Debian's ``gridengine-*`` packages, with a private ``SGE_ROOT`` in a temporary
folder, stopped by PID at the end.

The packages install a system cell under ``/var/lib/gridengine``; nothing of it is used.
The private root links the package's binaries and holds its own cell (``bootstrap``,
Berkeley DB spool, configuration with ``min_uid 0`` so root may submit, as CI does), on
free ports (``SGE_QMASTER_PORT``, ``SGE_EXECD_PORT``). One queue, ``all.q``, has this
host's CPUs as slots. ``host_aliases`` names this host ``localhost`` too: in containers
the host name resolves to 127.0.0.1, whose reverse name is ``localhost``, and Grid Engine
refuses clients whose two names differ.

The ``sge`` fixture (session scope) skips, with the reason, where the packages are
missing (``apt-get install gridengine-master gridengine-exec gridengine-client``) or the
daemons do not start.
"""

from __future__ import annotations

import functools
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemons import alive, drain_queue, free_port, last_line, stop_cluster, throwaway_cluster

#: What the Debian packages install: binaries and helpers, and the default configuration.
PACKAGE_ROOT = Path("/var/lib/gridengine")
SHARE = Path("/usr/share/gridengine")
LIBEXEC = Path("/usr/lib/gridengine")
BINARIES = ("sge_qmaster", "sge_execd", "qsub", "qstat", "qconf", "qdel")
START_TIMEOUT_S = 60.0


class SgeUnavailable(RuntimeError):
    """Grid Engine is not installed here, or its daemons did not start (the message says why)."""


@dataclass
class Sge:
    """A running single-host Grid Engine.

    Attributes
    ----------
    root : Path
        The private ``SGE_ROOT`` (cell ``default``).
    host : str
        This host's name, as the queue ``all.q@host`` knows it.
    slots : int
        Slots of ``all.q``.
    env : dict
        Environment for client commands and for framediff: ``SGE_ROOT``, ``SGE_CELL``
        and the two ports set.
    pids : dict
        Daemon name -> PID, in start order.
    """

    root: Path
    host: str
    slots: int
    env: dict
    pids: dict = field(default_factory=dict)

    def run(self, *argv: str, check: bool = True, timeout: float = 60, cwd=None):
        """Run a Grid Engine client command; its ``CompletedProcess`` (text)."""
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=self.env)
        if check and result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}: {message}")
        return result

    def jobs(self) -> list[str]:
        """Ids of the jobs still queued or running."""
        out = self.run("qstat", "-u", "*").stdout
        return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]

    def cancel_all(self, timeout: float = 60) -> None:
        """Delete every job and wait for the queue to empty."""
        cancel = functools.partial(self.run, "qdel", "-u", getpass.getuser(), check=False)
        drain_queue(self.jobs, cancel, timeout=timeout, what="Grid Engine")

    def stop(self) -> None:
        """Delete all jobs, stop the daemons by PID (last started first) and wait until gone.

        Raises
        ------
        RuntimeError
            A daemon still running after SIGKILL.
        """
        stop_cluster(lambda: self.cancel_all(timeout=20), self.pids, "Grid Engine")


def start_sge(root: Path, *, slots: int | None = None) -> Sge:
    """Create a private cell under ``root``, start qmaster and execd, and wait for the queue.

    Parameters
    ----------
    root : Path
        An empty folder; it becomes ``SGE_ROOT``.
    slots : int, optional
        Slots of the queue (default: ``os.cpu_count()``).

    Returns
    -------
    Sge
        The running cluster. Call :meth:`Sge.stop` when done.

    Raises
    ------
    SgeUnavailable
        The packages are missing, or a step failed (the message has the step's error).
        Daemons already started are stopped before this is raised.
    """
    search = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])
    missing = [name for name in BINARIES if shutil.which(name, path=search) is None]
    if missing or not (PACKAGE_ROOT / "utilbin").is_dir() or not (LIBEXEC / "spoolinit").is_file():
        raise SgeUnavailable(
            f"not installed ({', '.join(missing) or 'spoolinit'} missing; "
            "apt-get install gridengine-master gridengine-exec gridengine-client)"
        )
    root = Path(root)
    user, host = getpass.getuser(), socket.gethostname().split(".")[0]
    slots = slots or os.cpu_count() or 1
    common, spool = root / "default" / "common", root / "spool"
    for d in (common, spool / "qmaster", spool / "spooldb", spool / "execd"):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "lib", "utilbin", "util"):
        (root / name).symlink_to(PACKAGE_ROOT / name)
    (common / "bootstrap").write_text(_bootstrap(user, spool))
    (common / "act_qmaster").write_text(host + "\n")
    (common / "host_aliases").write_text(f"{host} localhost\n")
    env = {
        **os.environ,
        "SGE_ROOT": str(root),
        "SGE_CELL": "default",
        "SGE_QMASTER_PORT": str(free_port()),
        "SGE_EXECD_PORT": str(free_port()),
        "PATH": search,
    }
    cluster = Sge(root=root, host=host, slots=slots, env=env)
    try:
        _init_spool(cluster, user, spool)
        _start(cluster, "sge_qmaster", spool / "qmaster" / "qmaster.pid")
        _wait(cluster, lambda: cluster.run("qconf", "-sh", check=False).returncode == 0, "sge_qmaster answering")
        (root / "host.txt").write_text(_HOST.format(host=host))
        (root / "queue.txt").write_text(_QUEUE.format(host=host, slots=slots))
        cluster.run("qconf", "-Ae", str(root / "host.txt"))
        cluster.run("qconf", "-as", host)
        cluster.run("qconf", "-Aq", str(root / "queue.txt"))
        _start(cluster, "sge_execd", None)
        _wait(cluster, lambda: _queue_ready(cluster), f"all.q@{host} reporting load")
    except (SgeUnavailable, AssertionError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        raise SgeUnavailable(str(exc)) from None
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def sge():
    """A running single-host Grid Engine (:class:`Sge`) for the session; skipped if unavailable."""
    with throwaway_cluster("framediff-sge-", start_sge, SgeUnavailable, "Grid Engine") as cluster:
        yield cluster


# -- internals ------------------------------------------------------------------------------


def _bootstrap(user: str, spool: Path) -> str:
    return (
        "Version: 6.2\n"
        f"admin_user {user}\n"
        "default_domain none\n"
        "ignore_fqdn true\n"
        "spooling_method berkeleydb\n"
        "spooling_lib libspoolb\n"
        f"spooling_params {spool / 'spooldb'}\n"
        "binary_path /usr/sbin\n"
        f"qmaster_spool_dir {spool / 'qmaster'}\n"
        "security_mode none\n"
        "listener_threads 2\n"
        "worker_threads 2\n"
        "scheduler_threads 1\n"
    )


def _init_spool(cluster: Sge, user: str, spool: Path) -> None:
    """The steps of Debian's ``init_cluster``, with a private spool and configuration."""
    conf = (SHARE / "default-configuration").read_text().splitlines()
    edits = {"execd_spool_dir": str(spool / "execd"), "min_uid": "0", "min_gid": "0", "load_report_time": "00:00:05"}
    lines = []
    for line in conf:
        key = line.split()[0] if line.strip() and not line.startswith("#") else None
        lines.append(f"{key} {edits[key]}" if key in edits else line)
    (cluster.root / "configuration").write_text("\n".join(lines) + "\n")
    steps = (
        [str(LIBEXEC / "spoolinit"), "berkeleydb", "libspoolb", str(spool / "spooldb"), "init"],
        [str(LIBEXEC / "spooldefaults"), "configuration", str(cluster.root / "configuration")],
        [str(LIBEXEC / "spooldefaults"), "complexes", str(SHARE / "util" / "resources" / "centry")],
        [str(LIBEXEC / "spooldefaults"), "usersets", str(SHARE / "util" / "resources" / "usersets")],
        [str(LIBEXEC / "spooldefaults"), "managers", user],
    )
    for argv in steps:
        result = cluster.run(*argv, check=False)
        if result.returncode != 0:
            raise SgeUnavailable(f"{Path(argv[0]).name} {argv[1]} failed: {last_line(result.stderr + result.stdout)}")


def _start(cluster: Sge, name: str, pid_file: Path | None) -> None:
    result = cluster.run(f"/usr/sbin/{name}", check=False)
    if result.returncode != 0:
        raise SgeUnavailable(f"{name} did not start: {last_line(result.stderr + result.stdout)}")
    spool = cluster.root / "spool"

    def started() -> bool:
        files = [pid_file] if pid_file is not None else list((spool / "execd").glob("*/execd.pid"))
        for f in files:
            text = f.read_text().strip() if f.is_file() else ""
            if text.isdigit() and alive(int(text)):
                cluster.pids[name] = int(text)
                return True
        return False

    _wait(cluster, started, f"{name} PID file")


def _queue_ready(cluster: Sge) -> bool:
    out = cluster.run("qstat", "-f", "-q", "all.q", check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        # all.q@host  BIP  0/0/N  load  arch  [states]: no state (e.g. 'au', 'E') means ready.
        if parts and parts[0].startswith("all.q@") and len(parts) == 5 and parts[3] != "-NA-":
            return True
    return False


def _wait(cluster: Sge, ready, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    messages = list((cluster.root / "spool").glob("**/messages"))
    last = "; ".join(f"{m.parent.name}: {last_line(m.read_text(errors='replace'))}" for m in messages) or "no messages"
    raise SgeUnavailable(f"no {what} after {START_TIMEOUT_S:g}s ({last})")


_HOST = """hostname {host}
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
"""

_QUEUE = """qname all.q
hostlist {host}
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list make
rerun FALSE
slots {slots}
tmpdir /tmp
shell /bin/bash
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
"""
