"""What the llm-gateway adds on top of a zero-delay upstream, next to going direct and LiteLLM.

Run from the repository root: `python -m bench.gateway_overhead [options]`. Everything is set
up here, idempotently, and torn down on exit (Ctrl-C and SIGTERM included):

* `upstream`: nginx (Debian package; installed with apt-get if missing) serves a canned OpenAI
  chat completion from a temp dir: the upstream that costs nothing, so what remains is the
  gateway.
* `targets`, `litellm`: `direct` (the driver talks to nginx), `sift` (`python -m sift_gateway`,
  request log as configured by default), `sift-nolog` (`SIFT_GATEWAY_REQUEST_LOG=false`),
  `litellm` (LiteLLM proxy in its own venv under ~/.cache/sift/bench, one worker, no database).
* `load`: open loop and constant rate, as wrk2 does it: request i is due at t0 + i/rate and
  its latency is counted from that *intended* time. A target that falls behind therefore shows
  its queueing in the percentiles instead of quietly lowering the send rate (coordinated
  omission). In-flight requests are capped; a request that finds the cap full is not sent and
  is counted as an error (`shed_in_flight_cap`), never dropped silently.
* `measuring`: the target's CPU per request (user + system of its process tree, psutil) over
  the measured window, its peak RSS (sampled through each step), and the CPU of the embedded
  PostgreSQL that Sift's request log writes to (its postmaster and backends), reported apart.
* `results`, `verdicts`, `report`: the JSON (fields in bench/README.md) and the table.

CPU pinning (2 cores): the driver (this process) and nginx share core 0 (`--driver-cpu`), the
gateway under test has core 1 (`--gateway-cpu`) to itself. nginx costs a few microseconds per
request, so it disturbs the driver far less than it would disturb the gateway; and `direct`
then measures exactly the driver + nginx path that every other target also contains.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
