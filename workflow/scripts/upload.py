#!/usr/bin/env python
"""Push the dataset folder and its README.md card to the Hugging Face Hub.

Pushes exactly the files --file_list names (the parquet rule's dataset.files.json): a link, a file
outside the folder, a size that changed or a file the list does not name refuses the upload. Private
unless --public (the workflow passes the `upload` block as --settings); --public with --credentialed
is refused, and so is --public while the files hold columns that identify people that no
--acknowledge (public_identifying_columns) names, all before anything is sent. The token comes from
HF_TOKEN or the Hub's login cache (never from arguments). --dry-run lists what would be pushed and
contacts nobody.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from embedpipe.publish.settings import UPLOAD, UploadOptions
from embedpipe.publish.upload import UploadRefused, plan_upload, upload
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.runtime.step_settings import SettingError, add_arguments, from_args
from embedpipe.store.atomic import write_text_atomic

log = logging.getLogger("upload")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file_list", required=True, help="dataset.files.json: the folder and the files to push")
    p.add_argument("--folder", help="the dataset folder, if given: must be the one the file list names")
    p.add_argument("--credentialed", action="store_true", help="the source data is credentialed: never public")
    p.add_argument("--receipt", required=True, help="JSON written after the push (or the plan, on a dry run)")
    add_arguments(p, UploadOptions, UPLOAD)
    # The by-hand spellings of two settings: one column at a time, and the dashed flag.
    p.add_argument("--acknowledge", action="append", default=[], metavar="COLUMN",
                   help="an identifying column (e.g. subject_id) that --public may publish; repeat for each")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", default=argparse.SUPPRESS,
                   help="--dry_run")
    args = p.parse_args(argv)
    setup_logging()
    try:
        settings = from_args(UploadOptions, args, UPLOAD)
    except SettingError as exc:
        log.error("%s", exc)
        return 2
    acknowledged = [*settings.public_identifying_columns, *args.acknowledge]
    try:
        plan = plan_upload(Path(args.file_list), settings.repo_id, settings.public, args.credentialed, acknowledged,
                           settings.path_in_repo, settings.config_name)
        if args.folder and not (os.path.isdir(args.folder) and os.path.samefile(args.folder, plan.folder)):
            raise UploadRefused(f"--folder {args.folder} is not {plan.folder}, the folder the file list names")
        if settings.dry_run:
            receipt = {**plan.as_dict(), "dry_run": True}
            for f in receipt["files"]:
                log.info("would push %s (%d bytes)", f["path"], f["bytes"])
            log.info("dry run: %d files to %s (%s); identifying columns: %s; nothing sent", len(plan.files),
                     plan.repo_id, "public" if plan.public else "private", ", ".join(plan.identifying) or "none")
        else:
            receipt = {**upload(plan), "dry_run": False}
            log.info("pushed %d files to %s, commit %s", len(plan.files), plan.repo_id, receipt["commit"])
    except UploadRefused as exc:
        log.error("upload refused: %s", exc)
        return 2
    write_text_atomic(args.receipt, json.dumps(receipt, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
