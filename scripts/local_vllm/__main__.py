"""`python -m scripts.local_vllm prepare|start|stop|status|env` (see the package's docstring)."""

import argparse
import io
import sys

import scripts.local_vllm
from scripts.local_vllm.control import print_env, start, status, stop
from scripts.local_vllm.prepare import prepare
from scripts.local_vllm.servers import servers


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows at once through a pipe
    description = (scripts.local_vllm.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m scripts.local_vllm", description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="create the venv and the models (idempotent)")
    begin = commands.add_parser("start", help="prepare, then start or reuse both servers")
    begin.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    end = commands.add_parser("stop", help="stop servers started by `start`")
    # No `choices`: argparse rejects an empty `nargs="*"` list against them (Python 3.11).
    end.add_argument("names", nargs="*", metavar="{chat,embed}", help="default: both")
    commands.add_parser("status", help="state of both servers")
    commands.add_parser("env", help="print SIFT_VLLM_*_URL lines")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare()
    elif args.command == "start":
        start(args.timeout)
    elif args.command == "stop":
        known = servers()
        if unknown := set(args.names) - set(known):
            parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
        stop([known[name] for name in args.names or known])
    elif args.command == "status":
        status()
    else:
        print_env()


if __name__ == "__main__":
    main()
