"""Instructions per webhook, counted by callgrind: a cost that a busy machine does not change.

Runs the receiver in process (Flask test client, the intake benchmark's config, a fresh
database of its own) under ``valgrind --tool=callgrind`` with collection off, and switches it
on only around each measured webhook (``--scope request``) or around each write transaction,
from the unit of work's start to its end (``--scope transaction``: on SQLite the time the writer
lock is held). The switch is callgrind's client request, in a three-line C helper compiled with
gcc into ``var/bench/`` (valgrind's headers: Debian's valgrind package). To compare two trees,
run this file against each (``PYTHONPATH`` set to the tree; the tree's own receiver and bench
helpers are used), as docs/benchmarks.md does::

    PYTHONPATH=$tree python bench/intake_instructions.py --database sqlite --path repeat --alerts 10
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import intake, payloads

HELPER_C = "#include <valgrind/callgrind.h>\nvoid toggle(void) { CALLGRIND_TOGGLE_COLLECT; }\n"


def toggle_library() -> Path:
    """The compiled helper (built once per checkout)."""
    library = intake.WORK.parent / "callgrind-toggle.so"
    if not library.exists():
        library.parent.mkdir(parents=True, exist_ok=True)
        source = library.with_suffix(".c")
        source.write_text(HELPER_C)
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def measure(args: argparse.Namespace) -> None:
    """Inside valgrind: post the webhooks, collecting only what ``--scope`` says."""
    toggle = ctypes.CDLL(os.environ["BENCH_TOGGLE"]).toggle
    scratch = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    url = intake.fresh_database(args.database, name="instructions")
    for name in [k for k in os.environ if k.startswith("RECEIVER_")]:
        del os.environ[name]
    os.environ.update(intake.receiver_env(url, scratch))
    from receiver.app import create_app
    from receiver.settings import load_settings
    from receiver.store import unit_of_work

    measuring = [False]
    if args.scope == "transaction":
        enter, leave = unit_of_work.UnitOfWork.__enter__, unit_of_work.UnitOfWork.__exit__

        def entered(self):  # type: ignore[no-untyped-def]
            if measuring[0]:
                toggle()
            return enter(self)

        def left(self, *exc):  # type: ignore[no-untyped-def]
            result = leave(self, *exc)
            if measuring[0]:
                toggle()
            return result

        unit_of_work.UnitOfWork.__enter__ = entered  # type: ignore[method-assign]
        unit_of_work.UnitOfWork.__exit__ = left  # type: ignore[method-assign]
    client = create_app(load_settings()).test_client()
    headers = {"Authorization": f"Bearer {intake.TOKEN}", "Content-Type": "application/json"}
    total = args.warmup + args.requests
    uids = [f"{i:016x}" if args.path == "new" else "0" * 16 for i in range(total)]
    for i, uid in enumerate(uids):
        measuring[0] = i >= args.warmup
        if measuring[0] and args.scope == "request":
            toggle()
        answer = client.post(payloads.PATH, data=payloads.body(args.alerts, uid), headers=headers)
        if measuring[0] and args.scope == "request":
            toggle()
        assert answer.status_code == 200, answer.get_data(as_text=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--path", default="repeat", choices=["repeat", "new"])
    parser.add_argument("--alerts", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100, help="measured webhooks")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured webhooks first")
    parser.add_argument("--scope", default="request", choices=["request", "transaction"])
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        measure(args)
        return
    out = Path(tempfile.mkdtemp(prefix="callgrind-")) / "callgrind.out"
    env = {**os.environ, "BENCH_TOGGLE": str(toggle_library())}
    command = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, os.path.abspath(__file__), *(argv or sys.argv[1:]), "--inside",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"valgrind failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = re.search(r"^summary: (\d+)$", out.read_text(), re.MULTILINE)
    assert found, f"no summary in {out}"
    per = int(found.group(1)) / args.requests
    print(
        f"{args.database} {args.path} {args.alerts} alert(s), {args.scope}: "
        f"{per / 1e6:.3f} M instructions per webhook ({args.requests} measured)"
    )


if __name__ == "__main__":
    main()
