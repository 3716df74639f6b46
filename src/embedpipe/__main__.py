"""`python -m embedpipe <command>`: the commands run outside Snakemake. One line per command below; each
command is a module whose `main(argv) -> exit status` parses its own arguments."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "doctor": ("embedpipe.runtime.doctor", "what a job finds on this node: torch, GPUs, decoders, folders, token"),
    "status": ("embedpipe.runtime.status", "where each shard of a run is: state, files done, rate, ETA, errors"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        usage = "\n".join(f"  {name:<8} {what}" for name, (_, what) in COMMANDS.items())
        print(f"usage: python -m embedpipe <command> [--help]\n\ncommands:\n{usage}")
        return 0 if argv in ([], ["-h"], ["--help"]) else 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
