"""Scan tasks hold BLAS to one thread: the workers already fill the cores."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from framediff.schedule import _LocalRunner


def _blas_threads() -> list:
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})


@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_tasks_see_one_blas_thread_and_the_caller_gets_its_setting_back(scheduler):
    import numpy  # noqa: F401  (loads the BLAS library whose threads are counted)

    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == [2]
        with _LocalRunner.open(scheduler, 2) as runner:
            (inside,) = runner.gather([runner.submit(_blas_threads)])
        assert inside == [1]
        assert _blas_threads() == [2]
