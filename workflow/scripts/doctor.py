#!/usr/bin/env python
"""What a job finds on this node (torch, GPUs, decoders, writable folders, the Hub token by name): the
`doctor` rule's report, as `python -m embedpipe doctor`. Exit status 1 when the run needs what is missing."""

from __future__ import annotations

import sys

from embedpipe.runtime.doctor import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
