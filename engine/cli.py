"""The ``rankstab`` command: datasets, score, validate, run, analyze, report, verify.

The error boundary (:func:`main`): every error a user can cause (a :class:`~engine.errors.UserError`, and
any ``OSError``/``ValueError`` that escaped a more specific message) prints one line to stderr naming the
file or key and the fix, and exits with code 2; a bad command line too (argparse's usage block is left
out). Anything else is an internal error: one line saying so and pointing at ``--debug`` (which shows the
traceback), exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import UserError, check_output_folder, cli_messages, os_error_line

#: The spec ``rankstab run`` runs by default, and the store it writes (``analyze``/``report``/``verify``'s default).
DEFAULT_SPEC = "gtii-2019"
DEFAULT_STORE = f"results/{DEFAULT_SPEC}.zarr"
STORE_HELP = f"a run's zarr store (default {DEFAULT_STORE}, where `rankstab run` writes by default)"



class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``rankstab run: error: ... (see rankstab run --help)``, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rankstab", description="Scenario and sensitivity sweeps of composite-index "
                                "rankings on Dask (Monte Carlo and Sobol), stored in xarray/zarr.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    p.add_argument("--version", action="version", version=f"rankstab {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("datasets", help="list the embedded datasets")
    s.set_defaults(func=cmd_datasets)

    s = sub.add_parser("score", help="score and rank one methodology (the nominal one, with --set overrides)")
    s.add_argument("source", help="an embedded dataset name, a data path, or a scenario spec (.toml)")
    s.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a methodology setting, e.g. normalisation=zscore:10,2 (repeatable)")
    s.add_argument("--meta", help="metadata file (TOML/CSV) for a tidy CSV/Parquet data file")
    s.add_argument("--out", help="write CSV here instead of printing")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("validate", help="check a scenario spec and its dataset; print the factor table")
    s.add_argument("spec", help="spec TOML path or shipped spec name (e.g. gtii-2019)")
    s.add_argument("--out", help="also check this store path (default results/<spec name>.zarr): its name, "
                   "folder and free space")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("run", help="run a spec's sweep on a Dask cluster into a zarr store")
    s.add_argument("spec", nargs="?", default=DEFAULT_SPEC, help=f"spec TOML path or shipped name (default {DEFAULT_SPEC})")
    s.add_argument("--out", help="store path (default results/<spec name>.zarr)")
    s.add_argument("--cluster", default="local", help="'local' or a cluster YAML file (see cluster/)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--scheduler", help="attach to a running scheduler, tcp://HOST:PORT")
    g.add_argument("--scheduler-file", help="attach to the scheduler described by this file (dask-mpi, jobqueue)")
    s.add_argument("--workers", type=int, help="number of local worker processes (default: cores)")
    s.add_argument("--synchronous", action="store_true", help="no cluster: compute in this process")
    m = s.add_mutually_exclusive_group()
    m.add_argument("--resume", action="store_true", help="finish an interrupted run in the same store")
    m.add_argument("--overwrite", action="store_true", help="replace an existing store")
    s.add_argument("--quiet", action="store_true", help="one progress line every few seconds (batch logs)")
    s.add_argument("--no-analyze", action="store_true", help="skip the analysis after the run")
    s.add_argument("--no-report", action="store_true", help="skip the HTML report after the run")
    s.add_argument("--until-ci", type=float, metavar="WIDTH", help="Sobol runs: double N along the same "
                   "Sobol' sequence until the widest ST confidence half-width is at most WIDTH")
    s.add_argument("--max-doublings", type=int, default=3, help="at most this many doublings (default 3)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("analyze", help="rank stability and Sobol indices of a run, written to its store")
    s.add_argument("store", nargs="?", help=STORE_HELP)
    s.add_argument("--partial", action="store_true", help="analyse the completed Monte Carlo part of an "
                   "incomplete store")
    s.add_argument("--remove-one", dest="remove_one", metavar="DATASET_OR_SPEC",
                   help="remove-one analysis of a dataset's or spec's nominal methodology instead")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("report", help="figures and a self-contained HTML report of an analysed run")
    s.add_argument("store", nargs="?", default=DEFAULT_STORE, help=STORE_HELP)
    s.add_argument("--out", help="HTML path (default: next to the store)")
    s.add_argument("--png-dir", help="also write the figures as PNG files here")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("verify", help="check a store's integrity: completeness, hashes, ranks against scores")
    s.add_argument("store", nargs="?", default=DEFAULT_STORE, help=STORE_HELP)
    s.set_defaults(func=cmd_verify)
    return p


def _version() -> str:
    from . import __version__

    return __version__


def cmd_datasets(args) -> int:
    from .data import list_datasets

    for info in list_datasets():
        tag = "SYNTHETIC" if info.synthetic else "real"
        print(f"{info.name:<12} {tag:<9} {info.shape:<46} {info.title}")
    return 0


def cmd_score(args) -> int:
    from .data import load_dataset
    from .kernel.scoring import score

    out = _csv_out(args.out) if args.out else None
    src = args.source
    if src.endswith(".toml") and not Path(src).name == "meta.toml":
        from .spec import Spec

        spec = Spec.from_toml(src)
        result = score(spec.ds, spec.nominal, args.settings)
    else:
        result = score(load_dataset(src, args.meta), settings=args.settings)
    names = ["city_name"] if "city_name" in result.coords else []
    df = result.to_dataframe().reset_index()[["city", *names, "field", "score", "rank"]]
    df = df.sort_values(["field", "rank", "city"], key=lambda c: c.map(_field_order(result)) if c.name == "field"
                        else c)
    if out is not None:
        from .store.atomic import write_text

        df["score"] = [float32_text(x) for x in df["score"]]  # the stored precision: reads back exactly
        write_text(out, df.to_csv(index=False))  # an existing file is replaced whole or not at all
        print(f"wrote {len(df)} rows to {out}")
    else:
        df["score"] = df["score"].astype(float).round(4)  # for reading; --out keeps every digit
        print(df.to_csv(index=False), end="")
    return 0


def _csv_out(text: str) -> Path:
    """``score --out``: a file path (not a folder) in a writable folder, checked before any work."""
    out = Path(text).expanduser()
    if out.is_dir() or text.endswith(("/", os.sep)):
        raise UserError(f"--out {text} is a folder; give a file path such as {out / 'scores.csv'}")
    check_output_folder(out)
    return out


def float32_text(x) -> str:
    """The shortest decimal that reads back as the same float32 ('' for a missing value)."""
    import numpy as np

    x = np.float32(x)
    return "" if np.isnan(x) else np.format_float_positional(x, unique=True, trim="-")


def _field_order(result) -> dict:
    return {f: k for k, f in enumerate(result["field"].values)}


def cmd_validate(args) -> int:
    from .validate import check_target, default_out, describe, load

    spec = load(args.spec)
    out = Path(args.out) if args.out else default_out(spec)
    print(describe(spec, out))
    check_target(spec, out, flag="--out" if args.out else None)  # what `run` would refuse, validate refuses
    return 0


def cmd_run(args) -> int:
    if not (args.synchronous or args.scheduler or args.scheduler_file) and args.cluster in ("local", "") \
            and os.environ.get("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "spawn") == "spawn":
        from .clusters.forkserver import start

        start()  # the local workers' preloaded server imports the engine on the other core meanwhile
    from .pipeline import run_cli

    return run_cli(args)


def cmd_analyze(args) -> int:
    from .analysis import analyze_cli

    if args.store and args.remove_one:
        raise UserError("give either a store or --remove-one DATASET_OR_SPEC, not both")
    if not args.remove_one:
        args.store = args.store or DEFAULT_STORE

    return analyze_cli(args)


def cmd_report(args) -> int:
    from .reporting import report_cli

    return report_cli(args)


def cmd_verify(args) -> int:
    from .store import verify_cli

    return verify_cli(args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.debug:  # Dask's own error logs (with tracebacks) would bury our one-line messages
        logging.disable(logging.ERROR)
    shown = warnings.showwarning
    if not args.debug:  # numerical and library warnings would add lines to the one-line messages
        warnings.showwarning = _no_warning
    try:
        with cli_messages():  # name options as flags (--resume), not as Python keywords
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"rankstab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        code, line = explain(exc)
        print(f"rankstab {args.command}: {line}", file=sys.stderr)
        return code
    finally:
        warnings.showwarning = shown


def _no_warning(*args, **kwargs) -> None:
    """``warnings.showwarning`` while a command runs without --debug."""


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line :func:`main` prints for an exception."""
    if isinstance(exc, UserError):
        return exc.exit_code, f"error: {_one_line(str(exc))}"
    if isinstance(exc, OSError):
        return 2, f"error: {_one_line(os_error_line(exc))}"
    if isinstance(exc, MemoryError):
        return 2, "error: not enough memory; lower [design] chunk (or n), or run on a machine with more memory"
    if isinstance(exc, ValueError):
        return 2, (f"error: {_one_line(str(exc)) or type(exc).__name__}; check the inputs of this command "
                   f"(--debug shows where it was raised)")
    return 1, (f"internal error ({type(exc).__name__}: {_one_line(str(exc))[:200]}); rerun with --debug for the "
               f"traceback and report it")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def console() -> None:
    """The ``rankstab`` command (and ``python -m engine.cli``): :func:`main`, then a fast exit.

    Once the command has returned, its atexit handlers have run and its output is flushed, tearing the
    interpreter down (freeing every module and object of NumPy, numba, xarray, Dask...) only costs time:
    about half a second measured here, on every command. So the process leaves with ``os._exit``.
    """
    rc = main()
    import atexit

    logging.shutdown()
    atexit._run_exitfuncs()  # what a normal exit would run (closing clients, removing temporary folders)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    console()
