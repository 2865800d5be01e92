"""Clusters for ``framediff scan``: a LocalCluster on 127.0.0.1, batch job scripts
(dask-jobqueue), joining a real scheduler through its scheduler file, TLS, the
one-line errors, and the batch scripts in ``scripts/``.

Everything listens on and connects to 127.0.0.1 only; every subprocess is stopped.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from framediff.cluster import BATCH_SYSTEMS, ClusterSettings, add_cluster_arguments, job_script, open_cluster
from framediff.errors import FramediffError

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
BATCH_SCRIPTS = ("slurm_scan.sbatch", "slurm_array_scheduler.sbatch", "slurm_array_workers.sbatch", "pbs_scan.pbs")


def _parse(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--workers", type=int)
    add_cluster_arguments(parser)
    return parser.parse_args(list(argv))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- LocalCluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_client():
    with open_cluster(_parse("--cluster", "local", "--workers", "2")) as client:
        yield client


def test_local_cluster_listens_on_loopback_and_computes(local_client):
    assert local_client.scheduler.address.startswith("tcp://127.0.0.1:")
    workers = local_client.nthreads()
    assert len(workers) == 2 and set(workers.values()) == {1}
    assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
    assert local_client.submit(sum, [1, 2, 3]).result() == 6
    # No dashboard; the scheduler's HTTP endpoint (/health) stays on loopback too.
    http = local_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.address)
    assert http == "127.0.0.1"


def test_scan_on_local_cluster_equals_synchronous(local_client, tmp_path):
    from scan_fixtures import drift_sequence

    import framediff

    drift_sequence(tmp_path / "frames", n=12)
    expected = framediff.scan(tmp_path / "frames", scheduler="synchronous", chunk_size=4)
    got = framediff.scan(tmp_path / "frames", scheduler=local_client, chunk_size=4)
    assert got.equals(expected)


def test_no_cluster_option_means_local_schedulers():
    with open_cluster(_parse("--scheduler", "processes")) as client:
        assert client is None


# -- batch job scripts ----------------------------------------------------------------------

#: The header line each batch system writes for queue, account and an extra directive.
HEADERS = {
    "slurm": ("#SBATCH -p short", "#SBATCH -A proj7", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00"),
    "pbs": ("#PBS -q short", "#PBS -A proj7", "#PBS -l select=1:ncpus=8:mem=", "#PBS -l walltime=02:00:00"),
    "sge": ("#$ -q short", "#$ -P proj7", "#$ -l h_rt=02:00:00"),
    "lsf": ("#BSUB -q short", '#BSUB -P "proj7"', "#BSUB -n 8", "#BSUB -W 02:00"),
}


@pytest.mark.parametrize("system", list(BATCH_SYSTEMS))
def test_job_script_has_resources_walltime_and_lifetime(system):
    pytest.importorskip("dask_jobqueue")
    args = _parse(
        "--cluster", system, "--cores", "8", "--processes", "4", "--memory", "16GB", "--queue", "short",
        "--account", "proj7", "--walltime", "02:00:00", "--job-extra-directive", "EXTRA-ONE",
        "--job-extra-directive", "EXTRA-TWO", "--local-directory", "$TMPDIR",
    )  # fmt: skip
    script = job_script(args)
    prefix = HEADERS[system][0].split()[0]
    for line in HEADERS[system] + (f"{prefix} EXTRA-ONE", f"{prefix} EXTRA-TWO"):
        assert line in script, (line, script)
    assert "--nthreads 2" in script and "--nworkers 4" in script
    assert "--memory-limit 3.73GiB" in script  # 16 GB over 4 processes
    assert "--local-directory $TMPDIR" in script
    # Default lifetime: walltime minus 5 minutes, staggered by 2 minutes.
    assert "--lifetime 115m --lifetime-stagger 2m" in script
    assert "tcp://<scheduler-address>:8786" in script


def test_job_script_explicit_lifetime_stagger_and_defaults():
    pytest.importorskip("dask_jobqueue")
    settings = ClusterSettings(
        cluster="slurm", cores=4, memory="8GB", walltime="01:00:00", lifetime="50m", lifetime_stagger="90s"
    )
    script = job_script(settings)
    assert "--lifetime 50m --lifetime-stagger 90s" in script
    # Default: one worker process per job, with a thread per core.
    assert "--nthreads 4" in script and "--nworkers" not in script
    assert "--lifetime" not in job_script(ClusterSettings(cluster="pbs", cores=2, memory="4GB"))
    assert "--interface ib0" in job_script(ClusterSettings(cluster="sge", cores=2, memory="4GB", interface="ib0"))


def test_job_script_with_tls(tmp_path):
    pytest.importorskip("dask_jobqueue")
    ca, cert, key = _tls_files(tmp_path)
    script = job_script(dict(cluster="slurm", cores=2, memory="4GB", tls_ca_file=ca, tls_cert=cert, tls_key=key))
    assert "tls://<scheduler-address>:8786" in script
    assert f"--tls-ca-file {ca}" in script and f"--tls-cert {cert}" in script and f"--tls-key {key}" in script


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(cluster="local"), "needs --cluster slurm"),
        (dict(cluster="slurm", cores=4), "needs --cores and --memory"),
        (dict(cluster="slurm", cores=4, memory="lots"), "--memory must be a size"),
        (dict(cluster="slurm", cores=4, memory="8GB", processes=3), "multiple of --processes"),
        (dict(cluster="slurm", cores=4, memory="8GB", walltime="2h"), "--walltime must be HH:MM:SS"),
        (dict(cluster="slurm", cores=4, memory="8GB", walltime="00:06:00"), "longer than its stagger"),
        (dict(cluster="slurm", cores=4, memory="8GB", walltime="01:00:00", lifetime="59m"), "shorter than --walltime"),
        (dict(cluster="slurm", cores=4, memory="8GB", lifetime="soon"), "--lifetime must be a duration"),
        (dict(cluster="slurm", cores=4, memory="8GB", lifetime_stagger="2m"), "needs --lifetime or --walltime"),
        (dict(cluster="slurm", cores=4, memory="8GB", jobs=0), "--jobs must be >= 1"),
    ],
)
def test_job_script_option_errors(settings, message):
    pytest.importorskip("dask_jobqueue")
    with pytest.raises(FramediffError, match=message):
        job_script(settings)


def test_missing_dask_jobqueue_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # makes `import dask_jobqueue` fail
    with pytest.raises(FramediffError, match=r"needs dask-jobqueue: pip install 'framediff\[cluster\]'"):
        job_script(dict(cluster="pbs", cores=2, memory="4GB"))


def test_batch_cluster_without_submit_command_is_one_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("dask_jobqueue")
    # An empty PATH: the check must hold where SLURM is installed too (as in CI).
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FramediffError, match="'sbatch', which is not on PATH"):
        with open_cluster(dict(cluster="slurm", cores=2, memory="4GB")):
            pass


# -- option conflicts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cluster", "local", "--scheduler-file", "s.json"], "conflict"),
        (["--cluster", "slurm", "--scheduler", "tcp://127.0.0.1:8786"], "conflict"),
        (["--scheduler-file", "s.json", "--scheduler", "tcp://127.0.0.1:8786"], "conflict"),
        (["--cluster", "local", "--queue", "short", "--walltime", "01:00:00"], "--queue, --walltime only apply to"),
        (["--scheduler-file", "s.json", "--jobs", "3"], "--jobs only applies to"),
        (["--scheduler", "tls://127.0.0.1:8786"], "needs --tls-ca-file, --tls-cert and --tls-key"),
        (["--cluster", "local", "--tls-ca-file", "ca.pem"], "missing --tls-cert, --tls-key"),
        (["--scheduler", "ucx://127.0.0.1:8786"], "only tcp:// and tls://"),
        (["--cluster", "local", "--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_conflicting_options_are_one_clear_error(argv, message):
    with pytest.raises(FramediffError, match=message):
        with open_cluster(_parse(*argv)):
            pass


# -- joining a running scheduler --------------------------------------------------------------


@pytest.mark.slow
def test_join_scheduler_and_worker_through_scheduler_file(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "scheduler.log").open("w"), (tmp_path / "worker.log").open("w")
    common = ["--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--no-dashboard"]
    scheduler = [sys.executable, "-m", "dask", "scheduler", *common, "--port", "0"]
    worker = [sys.executable, "-m", "dask", "worker", *common, "--nthreads", "1"]
    procs = []
    try:
        procs.append(subprocess.Popen(scheduler, stdout=logs[0], stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(worker, stdout=logs[1], stderr=subprocess.STDOUT))
        with open_cluster(_parse("--scheduler-file", str(scheduler_file), "--connect-timeout", "30")) as client:
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
            client.wait_for_workers(1, timeout=30)
            assert client.submit(pow, 2, 10).result() == 1024
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()


@pytest.mark.slow
def test_unreachable_scheduler_is_one_clear_error():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.perf_counter()
    with pytest.raises(FramediffError, match=f"cannot reach the Dask scheduler at {address} within 1s") as info:
        with open_cluster(_parse("--scheduler", address, "--connect-timeout", "1")):
            pass
    assert "\n" not in str(info.value)
    assert time.perf_counter() - started < 15


def test_missing_scheduler_file_is_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(FramediffError, match=r"--scheduler-file .*nowhere\.json: no such file after 0\.3s"):
        with open_cluster(dict(scheduler_file=str(missing), connect_timeout=0.3)):
            pass


def test_a_scheduler_file_still_being_written_is_read_again(tmp_path):
    import json
    import threading

    from framediff.cluster import _check_scheduler_file

    path = tmp_path / "scheduler.json"
    path.write_text("")  # created, not written yet: what a job starting then sees
    later = threading.Timer(0.3, path.write_text, [json.dumps({"address": "tcp://127.0.0.1:8786"})])
    later.start()
    try:
        _check_scheduler_file(path, settle=5.0)  # returns once the address is there
    finally:
        later.join()
    path.write_text("{not json")
    started = time.perf_counter()
    with pytest.raises(FramediffError, match="not a Dask scheduler file"):
        _check_scheduler_file(path, settle=0.3)
    assert time.perf_counter() - started < 3


# -- TLS -------------------------------------------------------------------------------------


def _tls_files(directory: Path):
    """A self-signed CA and a certificate it signed for 127.0.0.1 / localhost (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "framediff test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tuple(str(p) for p in paths)


@pytest.mark.slow
def test_tls_local_cluster_and_client(tmp_path):
    ca, cert, key = _tls_files(tmp_path)
    tls = ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]
    with open_cluster(_parse("--cluster", "local", "--workers", "1", *tls)) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [4, 5]).result() == 9
        # A second client joins the same scheduler by its tls:// address.
        with open_cluster(_parse("--scheduler", address, "--connect-timeout", "10", *tls)) as other:
            assert other.submit(max, [4, 5]).result() == 5
        # Plain TCP to a TLS scheduler is refused before any connection is tried.
        with pytest.raises(FramediffError, match="needs --tls-ca-file"):
            with open_cluster(_parse("--scheduler", address)):
                pass
        with pytest.raises(FramediffError, match="must start with tls://"):
            with open_cluster(_parse("--scheduler", address.replace("tls://", "tcp://"), *tls)):
                pass


def test_tls_file_must_exist(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(FramediffError, match=r"--tls-ca-file .*missing\.pem: no such file"):
        tls = ["--tls-ca-file", missing, "--tls-cert", missing, "--tls-key", missing]
        with open_cluster(_parse("--cluster", "local", *tls)):
            pass


# -- scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BATCH_SCRIPTS)
def test_batch_script_is_valid_bash(name):
    path = SCRIPTS / name
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "--scheduler-file" in text
    if name != "slurm_array_scheduler.sbatch":  # the others start workers
        assert "--nthreads 1" in text and "--lifetime" in text and "--lifetime-stagger" in text


# -- through the command line (once cli_scan has the cluster options) ----------------------------


def _cli_has_cluster_options() -> bool:
    from framediff.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "--cluster" in sub.choices["scan"]._option_string_actions


@pytest.fixture
def cli():
    if not _cli_has_cluster_options():
        pytest.skip("framediff scan has no cluster options yet (integration pending)")
    from framediff.cli import main

    return main


@pytest.mark.slow
def test_framediff_scan_with_cluster_local_writes_the_same_report(cli, tmp_path):
    from scan_fixtures import drift_sequence

    drift_sequence(tmp_path / "frames", n=8)
    frames, local, pooled = str(tmp_path / "frames"), tmp_path / "local.csv", tmp_path / "pooled.csv"
    assert cli(["scan", frames, "-o", str(pooled), "--chunk-size", "3", "-q"]) == 0
    on_cluster = ["--cluster", "local", "--workers", "2"]
    assert cli(["scan", frames, "-o", str(local), "--chunk-size", "3", "-q", *on_cluster]) == 0
    assert local.read_text() == pooled.read_text()


def test_framediff_scan_prints_the_job_script(cli, capsys):
    pytest.importorskip("dask_jobqueue")
    argv = ["scan", "frames", "--cluster", "pbs", "--cores", "4", "--memory", "8GB", "--walltime", "01:00:00"]
    assert cli(argv + ["--print-job-script"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!") and "#PBS -l walltime=01:00:00" in out and "--lifetime 55m" in out


def test_framediff_scan_cluster_errors_are_one_line(cli, tmp_path, capsys):
    # Inputs are found before a cluster is joined: give the scan an image to find.
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    missing = tmp_path / "nowhere.json"
    assert cli(["scan", str(tmp_path), "--scheduler-file", str(missing), "--connect-timeout", "0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("framediff: error: --scheduler-file") and "\n" not in err
