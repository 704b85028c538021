"""The command line's ``--dask``: ``streamdiv score`` on a Dask cluster, a local one of N worker processes or a
running scheduler, through :mod:`streamdiv.dask` (the public API, like the rest of the command line)."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from importlib.util import find_spec
from typing import Any, Iterator

import click

from .cli_options import Scoring, say_warnings
from .evaluate import StreamdivWarning
from .plan import ColumnPlan, GaussianPlan
from .sources import Source

MISSING_EXTRA = 'streamdiv: error: --dask needs Dask and distributed: pip install "streamdiv[dask]"'
EXIT_USAGE = 2


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--dask's value: 'local', 'local:N' (N worker processes) or a scheduler's address (tcp://HOST:PORT)."""
    if value is None or "://" in value or value == "local":
        return value
    count = value.partition(":")[2]
    if value.startswith("local:") and count.isdigit() and int(count) >= 1:
        return value
    raise click.BadParameter(f"expected local, local:N (N worker processes) or a scheduler's address such as "
                             f"tcp://10.0.0.5:8786, not {value!r}", param_hint="--dask")


DASK_OPTION = click.option(
    "--dask", "dask_address", metavar="local[:N]|tcp://HOST:PORT", callback=_address,
    help="Score on Dask: a local cluster of N worker processes (local: one per core), or the scheduler at this "
         "address, whose workers read the files themselves (pip install \"streamdiv[dask]\").")


def dask_source(sources: tuple[str, ...], address: str | None, every: int | None) -> Source | None:
    """With --dask, the first file of ``sources`` (local or a URL such as s3://...), whose columns the options
    are resolved against; None without --dask.  Says which extra to install when Dask is missing."""
    if address is None:
        return None
    if every is not None:
        raise click.UsageError("--every follows one process's stream: leave out --dask to use it")
    return _dask_module().first_source(_collection(sources))


def score_on_dask(sources: tuple[str, ...], scoring: Scoring, address: str, threads: int | None) -> None:
    """Score ``sources`` on the cluster at ``address`` into ``scoring``'s accumulator (``threads``: the kernels'
    threads in each worker of a local cluster), then say on stderr what deserves attention."""
    streamdiv_dask = _dask_module()
    with _client(address, threads) as client:
        workers = len(client.scheduler_info().get("workers", {}))
        # the dashboard of a local cluster needs bokeh, which the extra leaves out; a remote scheduler has its own
        dashboard = f"; dashboard: {client.dashboard_link}" if "://" in address or find_spec("bokeh") else ""
        click.echo(f"streamdiv: scoring on Dask at {client.scheduler.address} ({workers} workers{dashboard})",
                   err=True)
        with warnings.catch_warnings():  # said below as one process says them
            warnings.simplefilter("ignore", StreamdivWarning)
            streamdiv_dask.evaluate(_collection(sources), **plan_keywords(scoring.plan),
                                    accumulator=scoring.accumulator, batch_size=scoring.batch_size)
    say_warnings(scoring.accumulator.report())


def plan_keywords(plan: ColumnPlan | GaussianPlan) -> dict[str, Any]:
    """The column keywords of :func:`streamdiv.evaluate` that resolve to ``plan`` again."""
    if isinstance(plan, GaussianPlan):
        return {"mean": plan.mean, "log_variance": plan.log_variance, "prior_mean": plan.prior_mean,
                "prior_log_variance": plan.prior_log_variance, "weights": plan.weights, "by": plan.by,
                "time": plan.time}
    return {plan.prediction_role: plan.prediction, "labels": plan.labels, "targets": plan.targets,
            "weights": plan.weights, "by": plan.by, "class_names": plan.class_names, "time": plan.time}


def _collection(sources: tuple[str, ...]) -> str | list[str]:
    return sources[0] if len(sources) == 1 else list(sources)


def _dask_module() -> Any:
    try:
        import distributed  # noqa: F401  (a cluster's client)

        from . import dask as streamdiv_dask
    except ImportError:
        click.echo(MISSING_EXTRA, err=True)
        click.get_current_context().exit(EXIT_USAGE)
    return streamdiv_dask


@contextlib.contextmanager
def _client(address: str, threads: int | None) -> Iterator[Any]:
    """A client of the scheduler at ``address``, or of a local cluster started (and stopped) here: N worker
    processes of one Dask thread each, whose kernels share the cores (``threads`` each, by default
    cores / N)."""
    from distributed import Client, LocalCluster

    if "://" in address:
        with Client(address) as client:
            yield client
        return
    count = int(address.partition(":")[2] or os.cpu_count() or 1)
    kernel_threads = threads or max(1, (os.cpu_count() or 1) // count)
    # silence_logs: a task's error reaches the caller, which says it in one paragraph; the workers' log of it
    # (a traceback, and the tasks cancelled after it) would say it again, three times
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL, env={"NUMBA_NUM_THREADS": str(kernel_threads)}) as cluster, \
            Client(cluster) as client:
        yield client
