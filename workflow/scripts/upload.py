#!/usr/bin/env python
"""Push the Parquet folder and its README.md card to the Hugging Face Hub.

Private unless --public; --public with --credentialed is refused before anything is sent. The token
comes from HF_TOKEN or the Hub's login cache (never from arguments). --dry-run lists what would be
pushed and contacts nobody.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.atomic import write_text_atomic
from embedpipe.runinfo import setup_logging
from embedpipe.upload import UploadRefused, plan_upload, upload

log = logging.getLogger("upload")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True, help="the dataset folder (train-*.parquet and README.md)")
    p.add_argument("--repo_id", required=True, help="<user or org>/<name> of the dataset repository")
    p.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    p.add_argument("--credentialed", action="store_true", help="the source data is credentialed: never public")
    p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                   help="list what would be pushed; send nothing")
    p.add_argument("--receipt", required=True, help="JSON written after the push (or the plan, on a dry run)")
    args = p.parse_args(argv)
    setup_logging()
    try:
        plan = plan_upload(Path(args.folder), args.repo_id, args.public, args.credentialed)
        if args.dry_run:
            receipt = {**plan.as_dict(), "dry_run": True}
            for f in receipt["files"]:
                log.info("would push %s (%d bytes)", f["path"], f["bytes"])
            log.info("dry run: %d files to %s (%s); nothing sent", len(plan.files), plan.repo_id,
                     "public" if plan.public else "private")
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
