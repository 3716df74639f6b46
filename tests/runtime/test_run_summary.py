"""onsuccess's lines: only what this run made, read from metrics.json."""

from __future__ import annotations

import json

from embedpipe.runtime.run_summary import RunOutputs, summary_lines


def outputs(tmp_path, **kw) -> RunOutputs:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"totals": {"files": 30, "rows": 28, "errors": 2},
                                   "errors_by_type": [{"error_type": "VideoReadError", "count": 2, "rows": []}]}))
    return RunOutputs(**{"run": "demo", "run_dir": "results/demo", "metrics": str(metrics),
                         "report": "results/demo/validation/report.html", "dataset_dir": "results/demo/parquet",
                         "card": "results/demo/parquet/README.md", "merged": ("results/demo/m.pt",),
                         "repo_id": "me/demo", "configfiles": ("config/my run.yaml",)} | kw)


def test_a_full_run_says_rows_errors_where_everything_is_and_how_to_upload(tmp_path):
    lines = summary_lines(outputs(tmp_path), {"extract", "validate", "parquet", "all"})
    assert lines == [
        "embedpipe run demo: 28 rows from 30 files, 2 error rows (VideoReadError 2; listed in the report)",
        "  dataset  results/demo/parquet/ (card results/demo/parquet/README.md)",
        "  report   results/demo/validation/report.html",
        "  upload   HF_TOKEN=<your token> snakemake upload --configfile 'config/my run.yaml'  → me/demo",
    ]
    no_repo = summary_lines(outputs(tmp_path, repo_id=None, config_args=("encoder={'batch_size': 8}",)), {"parquet"})
    assert no_repo[-1] == ("  upload   set upload.repo_id, then: HF_TOKEN=<your token> snakemake upload --configfile "
                           "'config/my run.yaml' --config 'encoder={'\"'\"'batch_size'\"'\"': 8}'")


def test_a_trial_says_it_is_one_and_is_not_uploaded(tmp_path):
    lines = summary_lines(outputs(tmp_path, run="demo-trial6", run_dir="results/demo-trial6", trial_files=6),
                          {"validate", "parquet"})
    assert lines[0].startswith("embedpipe trial run demo-trial6 (the first 6 files of each shard): 28 rows")
    assert lines[-1] == ("  a trial is not uploaded: the full run is the same command without extract.limit; its "
                         "outputs stay in results/demo-trial6/")
    assert not any("HF_TOKEN" in line for line in lines)


def test_other_targets_say_only_what_they_made(tmp_path):
    assert summary_lines(outputs(tmp_path), {"merge_all"}) == [
        "embedpipe run demo: merge_all's files written", "  merged   results/demo/m.pt"]
    assert summary_lines(outputs(tmp_path), {"export_folder_pt", "folder_pt"}) == []
    assert summary_lines(outputs(tmp_path), set()) == []  # nothing ran
    validated = summary_lines(outputs(tmp_path), {"validate"})  # `snakemake validate`: no dataset folder yet
    assert len(validated) == 2 and validated[1] == "  report   results/demo/validation/report.html"
