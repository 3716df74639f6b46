"""workflow/submit/sbatch: SLURM jobs are submitted without the Hugging Face token (only the upload,
on the submit host, needs it); everything else reaches the real sbatch unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.workflow import REPO

from embedpipe.runtime.runinfo import HUB_TOKEN_VARS, submit_without_hub_token

SHIM = REPO / "workflow" / "submit"


def fake_sbatch(tmp_path: Path) -> Path:
    real = tmp_path / "bin"
    real.mkdir()
    (real / "sbatch").write_text('#!/bin/sh\nenv > "$SBATCH_ENV_OUT"\nprintf "%s\\n" "$@" > "$SBATCH_ARGS_OUT"\n'
                                 'echo "Submitted batch job 7"\n')
    (real / "sbatch").chmod(0o755)
    return real


def test_the_submission_leaves_the_token_out_and_passes_the_rest(tmp_path, monkeypatch):
    real = fake_sbatch(tmp_path)
    # the shim folder already on PATH in another spelling: the real sbatch is still the one found
    monkeypatch.setenv("PATH", f"{SHIM}/{os.pathsep}{real}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_secret")
    monkeypatch.delenv("EMBEDPIPE_REAL_SBATCH", raising=False)
    assert submit_without_hub_token(str(SHIM))
    assert os.environ["PATH"].split(os.pathsep)[0] == str(SHIM)
    assert os.environ["EMBEDPIPE_REAL_SBATCH"] == str(real / "sbatch")
    env = {**os.environ, "SBATCH_ENV_OUT": str(tmp_path / "env"), "SBATCH_ARGS_OUT": str(tmp_path / "args"),
           "KEEP_ME": "1"}
    # as the plugin calls it: a shell command line
    proc = subprocess.run("sbatch --export=ALL --job-name 'a b' --wrap=\"echo 'x'\"", shell=True, env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    assert proc.stdout == "Submitted batch job 7\n"
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert not set(HUB_TOKEN_VARS) & set(seen) and "hf_secret" not in (tmp_path / "env").read_text()
    assert seen["KEEP_ME"] == "1"
    assert (tmp_path / "args").read_text().splitlines() == ["--export=ALL", "--job-name", "a b", "--wrap=echo 'x'"]


def test_without_a_token_or_a_real_sbatch_nothing_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_sbatch(tmp_path)}{os.pathsep}/usr/bin:/bin")
    for var in HUB_TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not submit_without_hub_token(str(SHIM))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("PATH", f"{SHIM}{os.pathsep}{tmp_path / 'nothing'}")
    assert not submit_without_hub_token(str(SHIM))  # no SLURM here: the shim would have nothing to run
    # run by itself with no real sbatch named, the shim says so instead of calling itself
    proc = subprocess.run([str(SHIM / "sbatch"), "--version"], env={"PATH": str(SHIM)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 127 and "no real sbatch to run" in proc.stderr


def test_the_shim_names_exactly_the_token_variables():
    text = (SHIM / "sbatch").read_text()
    unset = text.split("exec env ", 1)[1].split(' "$real"')[0].replace("-u ", "").split()
    assert sorted(unset) == sorted(HUB_TOKEN_VARS)
