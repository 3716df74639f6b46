"""A SLURM launch without `slurm_account` or `slurm_partition`, asked of the cluster itself: is either
required, and what would the user give? Without an answer (no SLURM commands here, a timeout, an
error) nothing is said: the check is there to catch what surely fails, never to block a submit host
it does not understand.

- account: required when the cluster enforces associations (`scontrol show config`:
  AccountingStorageEnforce with associations, limits, qos or safe, each of which implies it) and
  the user has no DefaultAccount (`sacctmgr show user`); the user's accounts are listed from
  `sacctmgr show assoc`.
- partition: when no partition is the default (`sinfo -h -o %P` marks it with `*`), unless the plugin's
  --slurm-partition-config (or SNAKEMAKE_SLURM_PARTITIONS) picks one per job. A warning, not a stop: a
  site's job_submit plugin may route a job without a partition, as the official plugin assumes.

sbatch reads SBATCH_ACCOUNT and SBATCH_PARTITION from the environment: either set counts as given.

The real cluster's test (tests/workflow/test_slurm.py, beside the cluster) calls `slurm_problems`.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Callable, Sequence

from embedpipe.config.launch import Launch, LaunchProblem

Run = Callable[..., subprocess.CompletedProcess]
TIMEOUT_S = 20  # sacctmgr asks slurmdbd, which may be slow; past this, cannot tell
ENFORCING = {"associations", "limits", "qos", "safe"}  # each implies associations (slurm.conf(5))


def ask(run: Run, command: Sequence[str]) -> str | None:
    """A command's output, or None when it is missing, fails or takes too long (argument list, no shell)."""
    try:
        done = run(list(command), capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def enforces_associations(run: Run) -> bool | None:
    """Whether the cluster requires an account association of every job; None: cannot tell."""
    config = ask(run, ["scontrol", "show", "config"])
    if config is None:
        return None
    for line in config.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "AccountingStorageEnforce":
            return bool(ENFORCING & {v.strip().lower() for v in value.split(",")})
    return False


def account_problem(run: Run, user: str) -> LaunchProblem | None:
    if not enforces_associations(run):
        return None
    default = ask(run, ["sacctmgr", "-n", "-P", "show", "user", user, "format=DefaultAccount"])
    if default is None or default.strip():
        return None  # cannot tell, or SLURM uses the default account
    listed = ask(run, ["sacctmgr", "-n", "-P", "show", "assoc", f"user={user}", "format=account"]) or ""
    accounts = sorted({a.strip() for a in listed.splitlines() if a.strip()})
    which = f"yours: {', '.join(accounts)}" if accounts else f"sacctmgr lists none for {user}: ask your admins for one"
    return LaunchProblem("default-resources: slurm_account",
                         f"unset, and the cluster requires an account (AccountingStorageEnforce) while {user} has "
                         f"no default account: every job would be refused at submission. Set it in the profile or "
                         f"with --default-resources slurm_account=<account> ({which})", profile=True)


def partition_problem(run: Run) -> LaunchProblem | None:
    listed = ask(run, ["sinfo", "-h", "-o", "%P"])
    partitions = [p.strip() for p in (listed or "").split() if p.strip()]
    if not partitions or any(p.endswith("*") for p in partitions):
        return None  # cannot tell, or sbatch falls back on the default partition
    return LaunchProblem("default-resources: slurm_partition",
                         "unset, and the cluster has no default partition: unless your site routes jobs without "
                         "one, sbatch will refuse them. Set it in the profile or with --default-resources "
                         f"slurm_partition=<name> (partitions: {', '.join(sorted(set(partitions)))})",
                         stop=False, profile=True)


def slurm_problems(launch: Launch, run: Run = subprocess.run, user: str | None = None) -> list[LaunchProblem]:
    """What SLURM would refuse of this launch for want of an account or a partition; [] when it is not
    a SLURM launch, both are given, or the cluster cannot tell."""
    if not launch.slurm:
        return []
    user = user or os.environ.get("USER") or getpass.getuser()
    problems = []
    if not (launch.slurm_account or os.environ.get("SBATCH_ACCOUNT")) and (problem := account_problem(run, user)):
        problems.append(problem)
    env = os.environ
    picked = launch.partition_config or env.get("SNAKEMAKE_SLURM_PARTITIONS") or env.get("SBATCH_PARTITION")
    if not launch.slurm_partition and not picked and (problem := partition_problem(run)):
        problems.append(problem)
    return problems
