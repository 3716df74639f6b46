"""workflow/submit/sbatch: SLURM jobs are submitted without the Hugging Face token (only the upload,
on the submit host, needs it); everything else reaches the real sbatch unchanged."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO

from embedpipe.runinfo import HUB_TOKEN_VARS

SHIM = REPO / "workflow" / "submit"


def test_the_submission_leaves_the_token_out_and_passes_the_rest(tmp_path):
    real = tmp_path / "bin"
    real.mkdir()
    (real / "sbatch").write_text('#!/bin/sh\nenv > "$SBATCH_ENV_OUT"\nprintf "%s\\n" "$@" > "$SBATCH_ARGS_OUT"\n'
                                 'echo "Submitted batch job 7"\n')
    (real / "sbatch").chmod(0o755)
    env = {"PATH": f"{SHIM}{os.pathsep}{real}{os.pathsep}/usr/bin:/bin", "SBATCH_ENV_OUT": str(tmp_path / "env"),
           "SBATCH_ARGS_OUT": str(tmp_path / "args"), "KEEP_ME": "1", **dict.fromkeys(HUB_TOKEN_VARS, "hf_secret")}
    # as the plugin calls it: a shell command line
    proc = subprocess.run("sbatch --export=ALL --job-name 'a b' --wrap=\"echo 'x'\"", shell=True, env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout == "Submitted batch job 7\n"
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert not set(HUB_TOKEN_VARS) & set(seen) and "hf_secret" not in (tmp_path / "env").read_text()
    assert seen["KEEP_ME"] == "1" and str(SHIM) not in seen["PATH"].split(os.pathsep)
    assert (tmp_path / "args").read_text().splitlines() == ["--export=ALL", "--job-name", "a b", "--wrap=echo 'x'"]


def test_the_shim_names_exactly_the_token_variables():
    text = (SHIM / "sbatch").read_text()
    assert sorted(text.split("env ", 1)[1].split(" sbatch")[0].replace("-u ", "").split()) == sorted(HUB_TOKEN_VARS)
