"""MAD-NG runs on the benchmarks, as a pipeline of stages (book: Chapters 6-10; CLI: :mod:`madng_lite.cli`).

* ``config``: the validated configuration of a run (:data:`FULL`, :data:`QUICK`, ``--set``);
* ``rundir``: the output folder: lock, atomic writes, resume state;
* ``context``: data, splits (train / validation / test), truth, the resume key;
* ``stages``: pretraining the auto-decoder, the MAD-PINN baseline;
* ``samples``: per scored sample, fit every arm with one optimiser, evolve, score;
* ``summary``: statistics over samples, the report table;
* ``figure``: the run's figure;
* ``run``: :func:`run_benchmark`, the stages in order.
"""
from .config import ARMS, BENCHMARKS, FULL, QUICK, ConfigError, RunConfig, bench_config, resolve, validate, \
    with_overrides
from .rundir import RunDir, RunDirError, RunLockedError
from .run import ProvenanceError, run_benchmark
from .summary import ReportError, report

__all__ = ["ARMS", "BENCHMARKS", "FULL", "QUICK", "ConfigError", "RunConfig", "bench_config", "resolve", "validate",
           "with_overrides", "RunDir", "RunDirError", "RunLockedError", "ProvenanceError", "run_benchmark",
           "ReportError", "report"]
