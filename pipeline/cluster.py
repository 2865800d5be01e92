"""Where a scan's tasks run: local pools, a LocalCluster, a batch system, or a running scheduler.

``framediff scan`` runs on local pools (``--scheduler threads|processes|synchronous``)
unless one of the options here asks for a dask.distributed cluster:

- ``--cluster local``: a ``distributed.LocalCluster`` on this machine, bound to
  127.0.0.1, one single-threaded worker process per core (``--workers``).
- ``--cluster slurm|pbs|sge|lsf``: dask-jobqueue submits ``--jobs`` batch jobs of
  ``--cores``/``--memory``/``--walltime`` each; every job runs one worker process with
  ``--cores`` threads (``--processes`` to split it). The scheduler runs inside this
  framediff process (run it on a login node).
- ``--scheduler-file PATH``: join a scheduler started elsewhere (``dask scheduler
  --scheduler-file PATH``), e.g. by one of the batch scripts in ``scripts/``.
- ``--scheduler tcp://host:port`` or ``tls://host:port``: join a scheduler by address.

``--tls-ca-file``, ``--tls-cert`` and ``--tls-key`` encrypt and authenticate every
connection (``distributed.security.Security(require_encryption=True)``); addresses then
use ``tls://``.

Walltime: a batch system kills a job at its walltime, whatever its workers are doing.
With ``--walltime`` each worker is given ``--lifetime`` (default: walltime minus 5
minutes) and ``--lifetime-stagger`` (default 2 minutes), so it stops taking tasks,
hands its results to other workers and exits before the kill; the jobs are then
resubmitted to keep ``--jobs`` running (as is a job cancelled, preempted or lost
with its node). A task still running on a retiring worker is
run again elsewhere (framediff tasks only read files, so that is safe). Resubmission
needs one worker process per job (the default): dask-jobqueue does not notice that a
job of several ``--processes`` has ended.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import FramediffError, ParameterError

__all__ = [
    "BATCH_SYSTEMS",
    "CLUSTERS",
    "ClusterSettings",
    "add_cluster_arguments",
    "cluster_settings",
    "job_script",
    "open_cluster",
]

#: Batch systems dask-jobqueue submits worker jobs to, and its cluster class for each.
BATCH_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
CLUSTERS = ("local", "cuda", *BATCH_SYSTEMS)

#: Workers leave this long before the walltime when ``--lifetime`` is not given.
LIFETIME_MARGIN_S = 5 * 60
#: Default ``--lifetime-stagger``: workers of one job do not all leave at the same moment.
DEFAULT_STAGGER_S = 2 * 60
#: Default seconds to wait for a scheduler (``--connect-timeout``).
DEFAULT_CONNECT_TIMEOUT_S = 30.0

#: Scheduler options: no dashboard. The scheduler still serves /health and /metrics over
#: HTTP, by default on port 8787 of every interface (and a warning when another cluster
#: holds it): keep that on loopback, on a free port.
_NO_DASHBOARD = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
_INSTALL_HINT = "pip install 'framediff[cluster]'"
_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")
#: Options that only describe batch jobs; each is an error without a batch ``--cluster``.
_BATCH_ONLY = (
    ("jobs", "--jobs"),
    ("cores", "--cores"),
    ("processes", "--processes"),
    ("memory", "--memory"),
    ("queue", "--queue"),
    ("account", "--account"),
    ("walltime", "--walltime"),
    ("job_extra_directive", "--job-extra-directive"),
    ("lifetime", "--lifetime"),
    ("lifetime_stagger", "--lifetime-stagger"),
    ("interface", "--interface"),
)


@dataclass(frozen=True)
class ClusterSettings:
    """Where to run, as given by the cluster options (``None``: not given).

    Attributes
    ----------
    cluster : {None, 'local', 'slurm', 'pbs', 'sge', 'lsf'}
    scheduler : str, optional
        ``tcp://`` or ``tls://`` address of a running scheduler. Local scheduler names
        (threads, processes, synchronous) are not kept here.
    scheduler_file : str, optional
    workers : int, optional
        ``--cluster local``: worker processes (default: CPU count).
    jobs, cores, processes, memory, queue, account, walltime
        Batch jobs: how many, and each one's cores, worker processes (default 1, with
        ``cores`` threads), memory ('16GB'), queue, account (project on SGE and LSF)
        and walltime (HH:MM:SS).
    job_extra_directive : tuple of str
        Extra batch directives, without the prefix (``--gres=gpu:1`` for ``#SBATCH``).
    local_directory : str, optional
        Workers' scratch directory (spilled data).
    lifetime, lifetime_stagger : str, optional
        Durations ('55m', '3300s', '00:55:00'); see the module docstring.
    tls_ca_file, tls_cert, tls_key : str, optional
    interface : str, optional
        Network interface of the scheduler and the batch workers ('ib0').
    connect_timeout : float
        Seconds to wait for a scheduler (or its scheduler file).
    """

    cluster: str | None = None
    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = None
    jobs: int | None = None
    cores: int | None = None
    processes: int | None = None
    memory: str | None = None
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    job_extra_directive: tuple = ()
    local_directory: str | None = None
    lifetime: str | None = None
    lifetime_stagger: str | None = None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    interface: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S

    @property
    def tls(self) -> bool:
        """True when any TLS file was given."""
        return any((self.tls_ca_file, self.tls_cert, self.tls_key))


def add_cluster_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the ``cluster`` option group (``--cluster``, ``--scheduler-file``, ...) to ``parser``.

    ``--workers`` and ``--scheduler`` are not added: the scan parser has them already
    (``--workers`` sizes ``--cluster local``; a ``tcp://``/``tls://`` ``--scheduler``
    is joined by :func:`open_cluster`).

    Returns
    -------
    argparse._ArgumentGroup
    """
    g = parser.add_argument_group(
        "cluster",
        "Run on dask.distributed instead of local pools: a LocalCluster, batch jobs (dask-jobqueue, "
        "pip install 'framediff[cluster]'), or a running scheduler. See README, 'Running on a cluster'.",
    )
    g.add_argument(
        "--cluster",
        choices=CLUSTERS,
        help="local: a LocalCluster on this machine (--workers processes); cuda: one worker per GPU (dask-cuda); "
        "slurm/pbs/sge/lsf: submit --jobs "
        "batch jobs of workers, the scheduler runs in this process",
    )
    g.add_argument(
        "--scheduler-file",
        metavar="PATH",
        help="join the scheduler that wrote this file (dask scheduler --scheduler-file)",
    )
    g.add_argument("--jobs", type=int, metavar="N", help="batch jobs to keep running (default 1)")
    g.add_argument("--cores", type=int, metavar="N", help="cores per job")
    g.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="worker processes per job, sharing --cores as threads (default 1; see README before raising it)",
    )
    g.add_argument("--memory", metavar="SIZE", help="memory per job, e.g. 16GB (split between its processes)")
    g.add_argument("--queue", metavar="NAME", help="queue / partition")
    g.add_argument("--account", metavar="NAME", help="account to charge (SGE and LSF: project)")
    g.add_argument("--walltime", metavar="HH:MM:SS", help="walltime per job")
    g.add_argument(
        "--job-extra-directive",
        action="append",
        metavar="LINE",
        help="extra batch directive without its prefix, e.g. '--gres=gpu:1' for #SBATCH (repeatable)",
    )
    g.add_argument("--local-directory", metavar="PATH", help="workers' scratch directory (node-local disk)")
    g.add_argument(
        "--lifetime",
        metavar="DURATION",
        help="workers leave after this long, e.g. 55m (default with --walltime: walltime minus 5 minutes)",
    )
    g.add_argument(
        "--lifetime-stagger",
        metavar="DURATION",
        help="spread the workers' lifetimes by up to +- this (default 2m when a lifetime applies)",
    )
    g.add_argument("--tls-ca-file", metavar="PATH", help="TLS: CA certificate(s), PEM; connections use tls://")
    g.add_argument("--tls-cert", metavar="PATH", help="TLS: certificate of this client and of the workers, PEM")
    g.add_argument("--tls-key", metavar="PATH", help="TLS: private key of --tls-cert, PEM")
    g.add_argument("--interface", metavar="NAME", help="network interface of scheduler and batch workers, e.g. ib0")
    g.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"wait this long for a scheduler or scheduler file (default {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )
    g.add_argument(
        "--print-job-script",
        action="store_true",
        help="print the batch script each --cluster slurm/pbs/sge/lsf job would run, and exit",
    )
    return g


def cluster_settings(args_or_settings) -> ClusterSettings:
    """:class:`ClusterSettings` from parsed arguments, a mapping, or settings (returned as is).

    Missing attributes take their defaults; ``scheduler`` is kept only when it is a
    ``tcp://`` or ``tls://`` address.
    """
    if isinstance(args_or_settings, ClusterSettings):
        return args_or_settings
    if isinstance(args_or_settings, argparse.Namespace):
        source = vars(args_or_settings)
    elif isinstance(args_or_settings, dict):
        source = args_or_settings
    else:
        raise TypeError(f"expected argparse.Namespace, dict or ClusterSettings, got {type(args_or_settings).__name__}")
    values = {}
    for f in fields(ClusterSettings):
        value = source.get(f.name)
        if value is None:
            continue
        if f.name == "job_extra_directive":
            value = (value,) if isinstance(value, str) else tuple(value)
        values[f.name] = value
    scheduler = values.get("scheduler")
    if scheduler is not None and not (isinstance(scheduler, str) and "://" in scheduler):
        del values["scheduler"]  # threads / processes / synchronous, or a Client
    return ClusterSettings(**values)


@contextmanager
def open_cluster(args_or_settings):
    """Start or join the dask.distributed cluster the options ask for.

    Parameters
    ----------
    args_or_settings : argparse.Namespace, dict or ClusterSettings
        See :func:`cluster_settings`.

    Yields
    ------
    distributed.Client or None
        A client to pass to :func:`framediff.scan.run_scan` as ``scheduler``; ``None``
        when no cluster option was given (use the local schedulers). The client, and
        a cluster started here, are closed on exit.

    Raises
    ------
    FramediffError
        Conflicting options, dask-jobqueue not installed, the batch system's submit
        command missing, or the scheduler (file) not reachable within
        ``connect_timeout`` seconds.
    """
    s = cluster_settings(args_or_settings)
    _check(s)
    security = _security(s)
    if s.cluster in BATCH_SYSTEMS:
        with _batch_cluster(s, security) as client:
            yield client
    elif s.cluster == "local":
        with _local_cluster(s, security) as client:
            yield client
    elif s.cluster == "cuda":
        with _cuda_cluster(s, security) as client:
            yield client
    elif s.scheduler_file is not None:
        with _connect(s, security, scheduler_file=s.scheduler_file) as client:
            yield client
    elif s.scheduler is not None:
        with _connect(s, security, address=s.scheduler) as client:
            yield client
    else:
        yield None


def job_script(args_or_settings) -> str:
    """The batch script each ``--cluster slurm|pbs|sge|lsf`` job would run.

    Built without starting a scheduler or submitting anything, so the scheduler
    address in it is a placeholder (``tcp://<scheduler-address>:8786``).

    Raises
    ------
    FramediffError
        No batch ``--cluster``, conflicting options, or dask-jobqueue not installed.
    """
    s = cluster_settings(args_or_settings)
    if s.cluster not in BATCH_SYSTEMS:
        raise FramediffError(f"--print-job-script needs --cluster {', '.join(BATCH_SYSTEMS)}")
    _check(s)
    security = _security(s)
    cls = _jobqueue_class(s.cluster)
    scheme = "tls" if security is not None else "tcp"
    job = cls.job_cls(f"{scheme}://<scheduler-address>:8786", name="framediff-worker", **_job_kwargs(s, security))
    return job.job_script()


# -- checks ------------------------------------------------------------------------------


def _check(s: ClusterSettings) -> None:
    if s.cluster is not None and s.cluster not in CLUSTERS:
        raise FramediffError(f"--cluster must be one of {', '.join(CLUSTERS)}, got {s.cluster!r}")
    ways = [
        name
        for name, given in (
            (f"--cluster {s.cluster}", s.cluster is not None),
            ("--scheduler-file", s.scheduler_file is not None),
            (f"--scheduler {s.scheduler}", s.scheduler is not None),
        )
        if given
    ]
    if len(ways) > 1:
        raise FramediffError(f"{' and '.join(ways)} conflict: give only one way to reach a cluster")
    if s.scheduler is not None and not s.scheduler.startswith(("tcp://", "tls://")):
        raise FramediffError(f"--scheduler {s.scheduler}: only tcp:// and tls:// addresses are supported")
    if s.cluster not in BATCH_SYSTEMS:
        given = [flag for attr, flag in _BATCH_ONLY if getattr(s, attr) not in (None, ())]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise FramediffError(f"{', '.join(given)} only {verb} to --cluster {'/'.join(BATCH_SYSTEMS)}")
    if s.workers is not None and s.workers < 1:
        raise FramediffError(f"--workers must be >= 1, got {s.workers}")
    if s.connect_timeout <= 0:
        raise FramediffError(f"--connect-timeout must be positive, got {s.connect_timeout}")
    if s.tls:
        files = (("--tls-ca-file", s.tls_ca_file), ("--tls-cert", s.tls_cert), ("--tls-key", s.tls_key))
        missing = [flag for flag, value in files if not value]
        if missing:
            raise FramediffError(
                f"TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing {', '.join(missing)}"
            )
        for flag, value in files:
            if not os.path.isfile(value):
                raise FramediffError(f"{flag} {value}: no such file")
    if s.scheduler is not None:
        if s.scheduler.startswith("tls://") and not s.tls:
            raise FramediffError(f"--scheduler {s.scheduler} needs --tls-ca-file, --tls-cert and --tls-key")
        if s.scheduler.startswith("tcp://") and s.tls:
            raise FramediffError(f"--scheduler {s.scheduler}: with TLS options the address must start with tls://")
    if s.cluster in BATCH_SYSTEMS:
        _check_batch(s)


def _check_batch(s: ClusterSettings) -> None:
    for attr in ("jobs", "cores", "processes"):
        value = getattr(s, attr)
        if value is not None and value < 1:
            raise FramediffError(f"--{attr} must be >= 1, got {value}")
    if s.cores is not None and s.processes is not None:
        if s.processes > s.cores or s.cores % s.processes:
            raise FramediffError(f"--cores {s.cores} must be a multiple of --processes {s.processes}")
    if s.memory is not None:
        from dask.utils import parse_bytes

        try:
            if parse_bytes(s.memory) <= 0:
                raise ValueError
        except ValueError:
            raise FramediffError(f"--memory must be a size such as 16GB, got {s.memory!r}") from None
    if s.walltime is not None:
        _walltime_seconds(s.walltime)
    _lifetime(s)


def _walltime_seconds(text: str) -> int:
    m = _WALLTIME.match(text)
    if not m:
        raise FramediffError(f"--walltime must be HH:MM:SS, got {text!r}")
    h, mi, sec = (int(v) for v in m.groups())
    seconds = 3600 * h + 60 * mi + sec
    if seconds <= 0:
        raise FramediffError(f"--walltime must be positive, got {text!r}")
    return seconds


def _duration_seconds(text: str, flag: str) -> float:
    from dask.utils import parse_timedelta

    m = _WALLTIME.match(text.strip())
    if m:
        h, mi, sec = (int(v) for v in m.groups())
        return float(3600 * h + 60 * mi + sec)
    try:
        seconds = parse_timedelta(text.strip().replace(" ", ""))
    except (ValueError, KeyError, TypeError):
        raise FramediffError(f"{flag} must be a duration such as 55m, 3300s or 00:55:00, got {text!r}") from None
    if seconds is None or seconds <= 0:
        raise FramediffError(f"{flag} must be a positive duration, got {text!r}")
    return float(seconds)


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _lifetime(s: ClusterSettings) -> tuple[str, str] | None:
    """The workers' (--lifetime, --lifetime-stagger) as dask durations, or None."""
    walltime = _walltime_seconds(s.walltime) if s.walltime is not None else None
    if s.lifetime is not None:
        lifetime = _duration_seconds(s.lifetime, "--lifetime")
    elif walltime is not None:
        lifetime = walltime - LIFETIME_MARGIN_S
    else:
        if s.lifetime_stagger is not None:
            raise FramediffError("--lifetime-stagger needs --lifetime or --walltime")
        return None
    stagger = DEFAULT_STAGGER_S
    if s.lifetime_stagger is not None:
        stagger = _duration_seconds(s.lifetime_stagger, "--lifetime-stagger")
    if stagger >= lifetime:
        raise FramediffError(
            f"the worker lifetime ({_format_duration(lifetime)}) must be longer than its stagger "
            f"({_format_duration(stagger)}); give a longer --walltime or set --lifetime and --lifetime-stagger"
        )
    if walltime is not None and lifetime + stagger >= walltime:
        raise FramediffError(
            f"--lifetime {_format_duration(lifetime)} plus --lifetime-stagger {_format_duration(stagger)} must be "
            f"shorter than --walltime {s.walltime}, so workers leave before the batch system kills them"
        )
    return _format_duration(lifetime), _format_duration(stagger)


# -- building blocks ---------------------------------------------------------------------


def _security(s: ClusterSettings):
    if not s.tls:
        return None
    from distributed.security import Security

    return Security(
        tls_ca_file=s.tls_ca_file,
        tls_client_cert=s.tls_cert,
        tls_client_key=s.tls_key,
        tls_scheduler_cert=s.tls_cert,
        tls_scheduler_key=s.tls_key,
        tls_worker_cert=s.tls_cert,
        tls_worker_key=s.tls_key,
        require_encryption=True,
    )


def _jobqueue_class(system: str):
    try:
        import dask_jobqueue
    except ImportError:
        raise FramediffError(f"--cluster {system} needs dask-jobqueue: {_INSTALL_HINT}") from None
    return getattr(dask_jobqueue, BATCH_SYSTEMS[system])


def _job_kwargs(s: ClusterSettings, security) -> dict:
    """Keyword arguments of the dask-jobqueue Job (and Cluster) class for ``s``."""
    import dask

    system = s.cluster
    cores = s.cores if s.cores is not None else dask.config.get(f"jobqueue.{system}.cores", None)
    memory = s.memory if s.memory is not None else dask.config.get(f"jobqueue.{system}.memory", None)
    if cores is None or memory is None:
        raise FramediffError(f"--cluster {system} needs --cores and --memory (per job), e.g. --cores 16 --memory 64GB")
    processes = s.processes
    if processes is None:
        # One worker process per job, --cores threads (the kernels release the GIL). Jobs
        # with several processes are not resubmitted when their workers retire at their
        # lifetime (dask-jobqueue matches the job's name, not its processes' names).
        processes = dask.config.get(f"jobqueue.{system}.processes", None) or 1
    worker_args = list(dask.config.get(f"jobqueue.{system}.worker-extra-args", None) or [])
    lifetime = _lifetime(s)
    if lifetime is not None:
        worker_args += ["--lifetime", lifetime[0], "--lifetime-stagger", lifetime[1]]
    directives = list(dask.config.get(f"jobqueue.{system}.job-extra-directives", None) or [])
    directives += list(s.job_extra_directive)
    kwargs = dict(
        cores=cores,
        memory=memory,
        processes=processes,
        queue=s.queue,
        local_directory=s.local_directory,
        worker_extra_args=worker_args,
        job_extra_directives=directives,
        interface=s.interface,
        protocol="tls://" if security is not None else None,
        security=security,
    )
    walltime = s.walltime
    if walltime is not None and system == "lsf":
        # bsub -W takes [HH:]MM: round the seconds up to a whole minute.
        minutes = -(-_walltime_seconds(walltime) // 60)
        walltime = f"{minutes // 60:02d}:{minutes % 60:02d}"
    if walltime is not None:
        kwargs["walltime"] = walltime
    if s.account is not None:
        kwargs["project" if system in ("sge", "lsf") else "account"] = s.account
    return kwargs


@contextmanager
def _batch_cluster(s: ClusterSettings, security):
    from distributed import Client

    cls = _jobqueue_class(s.cluster)
    job_kwargs = _job_kwargs(s, security)
    submit = cls.job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise FramediffError(
            f"--cluster {s.cluster} submits jobs with {submit!r}, which is not on PATH here; "
            "run framediff on a login node of the cluster"
        )
    jobs = s.jobs or 1
    with cls(scheduler_options=dict(_NO_DASHBOARD), **job_kwargs) as cluster:
        # Adaptive with minimum = maximum keeps `jobs` jobs: one that ends for any reason
        # (workers retired at their lifetime, scancel, preemption, a lost node) is
        # submitted again. A plain scale() never looks again, and the scan would wait for
        # workers forever.
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
        with Client(cluster, security=security) as client:
            yield client


@contextmanager
def _local_cluster(s: ClusterSettings, security):
    from distributed import Client, LocalCluster

    kwargs = dict(
        host="127.0.0.1",
        n_workers=s.workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs=dict(_NO_DASHBOARD),
        local_directory=s.local_directory,
    )
    if security is not None:
        kwargs.update(protocol="tls://", security=security)
    with LocalCluster(**kwargs) as cluster, Client(cluster, security=security) as client:
        yield client


@contextmanager
def _cuda_cluster(s: ClusterSettings, security):
    """One worker per GPU (dask-cuda): each chunk runs on its worker's device."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise FramediffError("--cluster cuda needs dask-cuda: pip install 'framediff[gpu]'") from None
    from distributed import Client

    kwargs = dict(
        host="127.0.0.1",
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_kwargs=dict(_NO_DASHBOARD),
        local_directory=s.local_directory,
    )
    if security is not None:
        kwargs.update(protocol="tls://", security=security)
    try:
        cluster = LocalCUDACluster(**kwargs)
    except Exception as exc:  # no device, driver too old
        raise FramediffError(f"--cluster cuda: cannot start GPU workers ({type(exc).__name__}: {exc})") from None
    with cluster, Client(cluster, security=security) as client:
        yield client


@contextmanager
def _connect(s: ClusterSettings, security, *, address=None, scheduler_file=None):
    from distributed import Client

    timeout = s.connect_timeout
    if scheduler_file is not None:
        _wait_for_file(scheduler_file, timeout)
        _check_scheduler_file(scheduler_file, settle=min(timeout, _SCHEDULER_FILE_SETTLE))
        target = f"the scheduler of {scheduler_file}"
        connect = dict(scheduler_file=scheduler_file)
    else:
        target = f"the Dask scheduler at {address}"
        connect = dict(address=address)
    import asyncio  # only when joining a cluster: a local scan does not pay for it

    try:
        client = Client(**connect, security=security, timeout=timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FramediffError(f"cannot reach {target} within {timeout:g}s: {reason}") from None
    try:
        yield client
    finally:
        client.close()


#: Seconds a scheduler file that does not parse yet is read again: the scheduler creates
#: the file and then writes it, so a job starting at that moment reads it empty.
_SCHEDULER_FILE_SETTLE = 5.0


def _check_scheduler_file(path, *, settle: float = 0.0) -> None:
    """A scheduler file is JSON naming the scheduler's address (what ``dask scheduler
    --scheduler-file`` writes); anything else is one line, not an assertion deep in
    distributed. A file that does not parse is read again for up to ``settle`` seconds
    (it may be half written)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
            break
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            if time.monotonic() >= deadline:
                raise FramediffError(f"--scheduler-file {path}: not a Dask scheduler file ({exc})") from None
            time.sleep(0.1)
    if not isinstance(info, dict) or not isinstance(info.get("address"), str):
        raise FramediffError(f"--scheduler-file {path}: holds no scheduler address (written by 'dask scheduler'?)")
    check_address(info["address"], "--scheduler-file")


def check_address(address: str, where: str = "scheduler") -> None:
    """Refuse a scheduler address that is not ``PROTOCOL://HOST:PORT``.

    Raises
    ------
    FramediffError
        A missing or non-numeric port, or no host.
    """
    protocol, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or not protocol or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        detail = f"{address!r}: expected PROTOCOL://HOST:PORT, such as tcp://10.0.0.5:8786"
        if where == "scheduler":
            raise ParameterError("scheduler", detail)
        raise FramediffError(f"{where} {detail}")


def _wait_for_file(path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    p = Path(path)
    while not p.is_file():
        if time.monotonic() >= deadline:
            raise FramediffError(
                f"--scheduler-file {path}: no such file after {timeout:g}s (is the scheduler running, "
                "and is the file on a filesystem this machine shares?)"
            )
        time.sleep(0.1)
