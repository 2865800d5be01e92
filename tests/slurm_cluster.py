"""A throwaway single-node SLURM for the tests: ``munged``, ``slurmctld`` and ``slurmd``
started in a temporary folder, on this host, and stopped by PID at the end.

The ``slurm`` fixture (session scope) skips, with the reason, where the binaries are
missing (``apt-get install slurm-wlm munge``) or the daemons cannot start. Nothing is
read from or written to ``/etc/slurm`` or ``/etc/munge``: every key, socket, spool,
state, log and PID path lives in the temporary folder, and the client commands find the
configuration through ``SLURM_CONF`` in :attr:`Slurm.env`.

The node has this machine's CPUs (``nproc``) and 80% of its memory. Its partition lets
up to four jobs share a core (``OverSubscribe=FORCE:4``), so that a scheduler job and a
two-task worker array fit together on a two-core CI runner.
"""

from __future__ import annotations

import functools
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemons import STOP_TIMEOUT_S, alive, drain_queue, free_port, last_line, stop_cluster, throwaway_cluster

#: Daemons and client commands the fixture needs.
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "srun")
#: Daemons are often in an sbin directory that is not on a normal user's PATH.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
#: Seconds to wait for a daemon to start (its PID file) or the node to become idle.
START_TIMEOUT_S = 60.0


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed here, or its daemons did not start (the message says why)."""


def which(name: str) -> str | None:
    """``name`` on PATH, or in one of the usual sbin directories; ``None`` if nowhere."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


@dataclass
class Slurm:
    """A running single-node SLURM cluster.

    Attributes
    ----------
    root : Path
        The temporary folder holding its configuration, keys, state and logs.
    conf : Path
        Its ``slurm.conf``.
    node : str
        The node's name (this host's short name).
    cpus, memory_mb : int
        The node's CPUs and memory as configured.
    env : dict
        Environment for client commands and jobs: ``SLURM_CONF`` set, and this Python's
        ``bin`` directory first on ``PATH`` (sbatch exports it, so jobs run the same
        framediff).
    pids : dict
        Daemon name -> PID, in start order.
    """

    root: Path
    conf: Path
    node: str
    cpus: int
    memory_mb: int
    env: dict
    pids: dict = field(default_factory=dict)

    def run(self, *argv: str, check: bool = True, timeout: float = 60, cwd=None, env=None):
        """Run a SLURM client command; its ``CompletedProcess`` (text).

        Raises
        ------
        AssertionError
            ``check`` and a non-zero exit status (the message has its stderr).
        """
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**self.env, **(env or {})}
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def sbatch(self, *argv: str, cwd, env=None) -> str:
        """Submit a batch job (``sbatch --parsable ARGV``) from ``cwd``; its job id."""
        out = self.run("sbatch", "--parsable", *argv, cwd=cwd, env=env).stdout.strip()
        return out.split(";")[0]

    def jobs(self) -> dict[str, str]:
        """Job id -> state (``PENDING``, ``RUNNING``, ...) of every job in the queue.

        Array tasks are listed one by one (``123_0``, ``123_1``).
        """
        out = self.run("squeue", "-h", "-r", "-o", "%i %T").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def state(self, job_id: str) -> str:
        """The state of one job (``COMPLETED``, ``FAILED``, ...) as ``scontrol`` reports it."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        fields_ = dict(item.split("=", 1) for item in out.split() if "=" in item)
        return fields_.get("JobState", "UNKNOWN")

    def wait(self, job_id: str, timeout: float) -> str:
        """Wait until ``job_id`` has left the queue; its final state.

        Raises
        ------
        TimeoutError
            Still queued or running after ``timeout`` seconds (the job is cancelled).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(j == job_id or j.startswith(f"{job_id}_") for j in self.jobs()):
                return self.state(job_id)
            time.sleep(0.5)
        self.run("scancel", job_id, check=False)
        raise TimeoutError(f"SLURM job {job_id} still queued or running after {timeout:g}s (cancelled)")

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job and wait for the queue to empty."""
        cancel = functools.partial(self.run, "scancel", "--user", getpass.getuser(), check=False)
        drain_queue(self.jobs, cancel, timeout=timeout, what="SLURM")

    def log(self, daemon: str) -> str:
        """The log file of ``munged``, ``slurmctld`` or ``slurmd`` (empty if none)."""
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons by PID (last started first) and wait until gone.

        Raises
        ------
        RuntimeError
            A daemon still running after SIGKILL.
        """
        stop_cluster(lambda: self.cancel_all(timeout=STOP_TIMEOUT_S), self.pids, "SLURM")


def start_slurm(root: Path, *, cpus: int | None = None) -> Slurm:
    """Start munged, slurmctld and slurmd with everything under ``root``; wait for an idle node.

    Parameters
    ----------
    root : Path
        An empty folder. ``munged`` refuses a socket folder that others cannot enter, so
        ``root`` is made mode 0755 (the key itself is 0600 in a 0700 folder).
    cpus : int, optional
        CPUs of the node (default: ``os.cpu_count()``, what ``nproc`` reports).

    Returns
    -------
    Slurm
        The running cluster. Call :meth:`Slurm.stop` when done, also after an error.

    Raises
    ------
    SlurmUnavailable
        A binary is missing, or a daemon did not start or the node did not become idle
        within :data:`START_TIMEOUT_S` (the message ends with the daemon's last log line).
        Daemons already started are stopped before this is raised.
    """
    missing = [name for name in BINARIES if which(name) is None]
    if missing:
        raise SlurmUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
    root = Path(root)
    modes = {"": 0o755, "munge": 0o700, "run": 0o755, "log": 0o755, "state": 0o755, "spool": 0o755}
    for sub, mode in modes.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub).chmod(mode)
    node = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    memory_mb = int(0.8 * _memory_total_mb())
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node=node, cpus=cpus, memory_mb=memory_mb))
    python_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": os.pathsep.join([python_bin, os.environ.get("PATH", "")])}
    # Variables of an enclosing SLURM job would be read by sbatch and srun as options.
    env = {k: v for k, v in env.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["SLURM_CONF"] = str(conf)
    cluster = Slurm(root=root, conf=conf, node=node, cpus=cpus, memory_mb=memory_mb, env=env)
    try:
        _start_munged(cluster)
        for daemon in ("slurmctld", "slurmd"):
            _start_daemon(cluster, daemon, [which(daemon), "-f", str(conf)])
        _wait_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM (:class:`Slurm`) for the whole session; skipped if unavailable."""
    # Not under pytest's tmp_path: munged wants every folder above its socket enterable,
    # and the socket path must stay short (108 bytes).
    with throwaway_cluster("framediff-slurm-", start_slurm, SlurmUnavailable, "SLURM") as cluster:
        yield cluster


# -- internals ------------------------------------------------------------------------------


def _memory_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


def _slurm_conf(root: Path, *, node: str, cpus: int, memory_mb: int) -> str:
    user = getpass.getuser()
    lines = [
        "ClusterName=framediff-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'run' / 'munge.socket'}",
        # No cgroups in containers and CI runners: track processes by parentage.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=512",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "JobCompType=jobcomp/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        # Finished jobs stay visible to `scontrol show job` (their final state) a while.
        "MinJobAge=600",
        "KillWait=5",
        "MailProg=/bin/true",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # The node is what this file says, whatever slurmd detects (containers lie).
        "SlurmdParameters=config_overrides",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP",
    ]
    return "\n".join(lines) + "\n"


def _start_munged(cluster: Slurm) -> None:
    key = cluster.root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    argv = [
        which("munged"),
        f"--key-file={key}",
        f"--socket={cluster.root / 'run' / 'munge.socket'}",
        f"--pid-file={cluster.root / 'run' / 'munged.pid'}",
        f"--log-file={cluster.root / 'log' / 'munged.log'}",
        f"--seed-file={cluster.root / 'munge' / 'munged.seed'}",
    ]
    _start_daemon(cluster, "munged", argv)


def _start_daemon(cluster: Slurm, name: str, argv: list[str]) -> None:
    """Run a daemon that forks into the background; record its PID from its PID file."""
    pid_file = cluster.root / "run" / f"{name}.pid"
    result = subprocess.run(argv, capture_output=True, text=True, env=cluster.env, timeout=START_TIMEOUT_S)
    if result.returncode != 0:
        reason = (result.stderr.strip() or last_line(cluster.log(name))).splitlines()[-1:] or ["no message"]
        raise SlurmUnavailable(f"{name} did not start (exit {result.returncode}): {reason[0]}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.is_file() else ""
        if text.isdigit() and alive(int(text)):
            cluster.pids[name] = int(text)
            return
        time.sleep(0.1)
    raise SlurmUnavailable(f"{name} wrote no PID file within {START_TIMEOUT_S:g}s: {last_line(cluster.log(name))}")


def _wait_idle(cluster: Slurm) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        result = cluster.run("sinfo", "-h", "-N", "-n", cluster.node, "-o", "%T", check=False, timeout=15)
        state = result.stdout.strip() or result.stderr.strip()
        if state == "idle":
            return
        for name, pid in cluster.pids.items():
            if not alive(pid):
                raise SlurmUnavailable(f"{name} exited: {last_line(cluster.log(name))}")
        time.sleep(0.5)
    raise SlurmUnavailable(
        f"node {cluster.node} not idle after {START_TIMEOUT_S:g}s (sinfo: {state or 'nothing'}); "
        f"slurmd: {last_line(cluster.log('slurmd'))}"
    )
