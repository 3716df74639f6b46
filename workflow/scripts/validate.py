#!/usr/bin/env python
"""Check the finished dataset against the manifests and write the validation report.

Passed: metrics.json, report.html and four PNG plots in --out_dir. Failed: the same files in
<out_dir>/failed/ (so people can look at them) and exit status 1, so nothing downstream runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from embedpipe.runtime.runinfo import setup_logging
from embedpipe.runtime.step_settings import SettingError, add_arguments, from_args
from embedpipe.store.atomic import out_of_space
from embedpipe.store.footer import read_provenance
from embedpipe.validate.checks import validate_dataset
from embedpipe.validate.report import write_report
from embedpipe.validate.settings import BLOCK, ValidationConfig
from embedpipe.validate.throughput import shard_throughput, throughput_section

log = logging.getLogger("validate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # @<file>: arguments one a line (the rule's per-shard lists: past a command line's 128 KB at 1,000 shards)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                fromfile_prefix_chars="@")
    shards = p.add_mutually_exclusive_group(required=True)
    shards.add_argument("--shards", nargs="+", help="shard ids, in dataset order")
    shards.add_argument("--shards_json", help="shard ids as a JSON list (any folder name, even '-x')")
    p.add_argument("--manifests", nargs="+", required=True)
    p.add_argument("--dataset_files", nargs="+", required=True)
    p.add_argument("--error_files", nargs="+", required=True)
    p.add_argument("--out_dir", required=True, help="validation folder (metrics.json, report.html, plots)")
    p.add_argument("--title", default="embedpipe dataset")
    p.add_argument("--made_with", type=json.loads, help="the config's settings (JSON): every shard must "
                   "record them (embedpipe.store.made_with)")
    p.add_argument("--evaluation", nargs=2, metavar=("METRICS_JSON", "ROC_PNG"),
                   help="the evaluate step's outputs: its section of the report")
    p.add_argument("--pretraining", nargs=2, metavar=("METRICS_CSV", "LOSS_PNG"),
                   help="the pretrain step's outputs: its section of the report")
    p.add_argument("--run_dir", default=None, help="the run's results folder, for its extract jobs' progress files "
                   "(default: the folder above the manifests')")
    add_arguments(p, ValidationConfig, BLOCK)
    args = p.parse_args(argv)
    if args.shards_json:
        args.shards = json.loads(args.shards_json)
    if not len(args.shards) == len(args.manifests) == len(args.dataset_files) == len(args.error_files):
        p.error("--shards, --manifests, --dataset_files and --error_files need one entry per shard")
    return args


def other_sections(args: argparse.Namespace) -> str:
    """The sections of the run's other steps; their modules load only when a run has those steps."""
    parts = []
    if args.pretraining:
        from embedpipe.pretrain.curves import pretraining_section
        from embedpipe.pretrain.metrics import MetricsCsv

        parts.append(pretraining_section(MetricsCsv(Path(args.pretraining[0])).rows(), Path(args.pretraining[1])))
    if args.evaluation:
        from embedpipe.evaluate.report import evaluation_section

        metrics = json.loads(Path(args.evaluation[0]).read_text(encoding="utf-8"))
        parts.append(evaluation_section(metrics, Path(args.evaluation[1])))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        config = from_args(ValidationConfig, args, BLOCK)
    except SettingError as exc:
        log.error("%s", exc)
        return 1
    result = validate_dataset(
        args.shards,
        dict(zip(args.shards, map(Path, args.manifests), strict=True)),
        dict(zip(args.shards, map(Path, args.dataset_files), strict=True)),
        dict(zip(args.shards, map(Path, args.error_files), strict=True)),
        config,
        args.made_with,
    )
    for check in result.metrics["checks"]:
        log.info("%s %s: %s", "PASS" if check["passed"] else "FAIL", check["name"], check["detail"])
    out_dir = Path(args.out_dir)
    provenance = read_provenance(args.dataset_files[0])
    # The extract jobs' stats: a section and `throughput` in metrics.json, never a failed check.
    throughput = shard_throughput(Path(args.run_dir or Path(args.manifests[0]).parent.parent), args.shards)
    result.metrics["throughput"] = throughput
    sections = throughput_section(throughput) + other_sections(args)
    if not result.passed:
        out_dir = out_dir / "failed"
    else:
        shutil.rmtree(out_dir / "failed", ignore_errors=True)  # an earlier failure's report is stale now
    try:
        paths = write_report(result, out_dir, provenance, args.title, config.max_mean_cosine, sections)
    except OSError as exc:
        if (what := out_of_space(exc)) is None:
            raise
        log.error("%s. The dataset files are untouched; free space and rerun validate.", what)
        return 1
    if not result.passed:
        # the last line: what the Snakefile's onerror prints for this job
        failed = sum(not c["passed"] for c in result.metrics["checks"])
        log.error("%d check%s failed: %s; report in %s", failed, "" if failed == 1 else "s", result.failures(),
                  paths["report"])
        return 1
    totals = result.metrics["totals"]
    log.info("validation passed: %d rows, %d errors; report %s", totals["rows"], totals["errors"], paths["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
