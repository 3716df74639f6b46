"""bench/scale.py works (CI runs it small; its figures at the users' sizes are in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from support.workflow import REPO, run_env


def test_the_scale_bench_runs_every_stage_and_reports_growth(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "scale.py"), "--rows", "300", "600", "--dim", "32",
                           "--dir", str(tmp_path)], capture_output=True, text=True, env=run_env(), check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    small, large, growth = lines
    assert (small["rows"], large["rows"]) == (300, 600)
    for run in (small, large):
        assert set(run["stages"]) == {"discover", "joined", "staged", "merge_all", "validate", "parquet", "upload",
                                      "dag"}
        assert run["stages"]["staged"]["jobs"] == 10 and all(s["cpu_s"] > 0 for s in run["stages"].values())
        assert run["disk_bytes"]["embeddings"] > run["rows"] * 32 * 4  # the float32 rows, at least
        assert set(run["naive"]) == {"torch_save_dict", "pandas_to_parquet"}
    assert set(growth["growth_exponent"]) == set(large["stages"]) and growth["between_rows"] == [300, 600]
    assert not list(tmp_path.iterdir())  # its runs are removed
