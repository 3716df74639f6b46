"""What a run plans to merge: a plain `snakemake` run no merged copy (unless merge.in_default_run), and
`snakemake merge_all` the formats merge.formats lists, the .pt alone by default. Dry runs only."""

from __future__ import annotations

import re

from support.workflow import REPO, snakemake

AUDIO = ["--configfile", str(REPO / "config" / "demo_audio.yaml")]


def merge_command(dry: str) -> str:
    found = re.findall(r"^.*merge_all\.py --shards .*$", dry, flags=re.M)
    assert len(found) == 1, dry[-3000:]
    return found[0]


def test_a_plain_run_plans_no_merged_copy_and_merge_all_plans_the_pt_alone(tmp_path):
    plain = snakemake(tmp_path, "-n", *AUDIO).stdout
    assert "rule parquet" in plain and "merge_all" not in plain
    command = merge_command(snakemake(tmp_path, "-np", "merge_all", *AUDIO).stdout)
    assert "--pt=results/demo-audio/metis-tiny_embeddings_all.pt" in command
    assert "--npy=" not in command and "--keys=" not in command
    # a .npy left by an earlier merge_all that asked for it is removed, not left stale
    assert command.split("--remove ")[1].split(" >")[0].split() == [
        "results/demo-audio/metis-tiny_embeddings_all.npy", "results/demo-audio/metis-tiny_embeddings_all.keys.txt"]


def test_the_npy_and_its_keys_when_asked_and_in_the_plain_run_when_asked(tmp_path):
    both = merge_command(snakemake(tmp_path, "-np", "merge_all", *AUDIO, "--config",
                                   "merge={'formats': ['pt', 'npy']}").stdout)
    assert all(f"--{flag}=" in both for flag in ("pt", "npy", "keys")) and "--remove  >" in both
    overlay = tmp_path / "merge.yaml"  # --config would pass true as the string 'True'
    overlay.write_text("merge:\n  formats: [npy]\n  in_default_run: true\n")
    plain = snakemake(tmp_path, "-np", *AUDIO, str(overlay)).stdout
    command = merge_command(plain)
    assert "--npy=" in command and "--pt=" not in command
    # the parquet rule waits for them, so the card counts them
    parquet = plain[plain.index("rule parquet:"):]
    assert "metis-tiny_embeddings_all.npy" in parquet.split("output:")[0]
