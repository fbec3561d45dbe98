"""Run a check on many files in worker processes, so that a file which crashes its reader
costs only its own result.

A damaged HDF5 file can do worse than raise: a corrupt chunk or B-tree can make the HDF5 C
library or a decoder crash the process (a segmentation fault, an abort, a memory blow-up),
which no ``except`` catches. Each file is therefore checked in a worker process, at most one
file in flight per worker. When a worker dies, each file that was in flight is checked again
alone in a fresh process: the one that kills it again gets ``crashed(item)``, the others
their real result. Workers come from a fork server that has already imported the check's
module, so starting one costs milliseconds, and a parent that runs threads (torch, pytest)
is never forked.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from rdtflow.errors import RdtflowError

Item = TypeVar("Item")
Result = TypeVar("Result")


def _pool(workers: int, preload: str) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _module(check: Callable) -> str:
    """The module that defines ``check`` (or the function a functools.partial wraps)."""
    return getattr(check, "func", check).__module__


class WorkersFailed(RdtflowError):
    """Worker processes die even on a check of nothing: the machine, not a file, is at fault."""


def _alive() -> bool:
    return True


def _alone(check: Callable[[Item], Result], item: Item, crashed: Callable[[Item], Result]) -> Result:
    """``check(item)`` in a process of its own; ``crashed(item)`` if that process dies, unless a
    process that checks nothing dies too (then no file is to blame, and WorkersFailed says so)."""
    with _pool(1, _module(check)) as pool:
        try:
            return pool.submit(check, item).result()
        except BrokenProcessPool:
            pass
    with _pool(1, _module(check)) as pool:
        try:
            pool.submit(_alive).result()
        except BrokenProcessPool as err:
            raise WorkersFailed(
                "the processes that check the files die before checking anything (out of memory, a process limit, or "
                "Python started from standard input); run with data.validate_workers: 1 on a machine with free memory"
            ) from err
    return crashed(item)


def isolated_map(check: Callable[[Item], Result], items: list[Item], workers: int,
                 crashed: Callable[[Item], Result]) -> Iterator[Result]:
    """``check(item)`` for each item, in the items' order, computed by ``workers`` processes.

    ``check`` must be a module-level function or a functools.partial of one (workers import
    it by name), its arguments and results picklable. ``crashed(item)`` stands in for the result of an item whose check kills its
    process.
    """
    waiting = deque(range(len(items)))
    in_flight: dict[Future, int] = {}
    results: dict[int, Result] = {}
    next_out = 0
    pool = _pool(workers, _module(check))
    try:
        while next_out < len(items):
            while waiting and len(in_flight) < workers:
                index = waiting.popleft()
                in_flight[pool.submit(check, items[index])] = index
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            suspects = []
            for future in done:
                index = in_flight.pop(future)
                try:
                    results[index] = future.result()
                except BrokenProcessPool:
                    suspects.append(index)
            if suspects:  # a worker died, and the pool with it: every file in flight may be why
                suspects += in_flight.values()
                in_flight.clear()
                pool.shutdown(cancel_futures=True)
                for index in sorted(suspects):
                    results[index] = _alone(check, items[index], crashed)
                pool = _pool(workers, _module(check))
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
    finally:
        pool.shutdown(cancel_futures=True)
