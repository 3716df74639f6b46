"""Start-up checks both ECG families run (torch-free: the Snakefile runs them)."""

from __future__ import annotations

import os

from embedpipe.encoders.family import OptionError, Options


def ecg_checks(options: Options, files: bool) -> None:
    name = options["name"]
    if not options["path"]:
        raise OptionError("encoder.path", f"{name} needs its checkpoint file")
    if files and not os.path.isfile(options["path"]):
        raise OptionError("encoder.path", f"{options['path']!r} is not a file")
    if options["notch_hz"] is not None and options["filter"] == "none":
        raise OptionError("encoder.notch_hz", "is the notch of filter: ecgfounder; set encoder.filter or drop notch_hz")
