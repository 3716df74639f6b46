"""What a launch asks for, from the resources as Snakemake holds them (values as given)."""

from __future__ import annotations

from embedpipe.config.launch import Launch, LaunchProblem, gpu_count, launch_of


def test_the_slurm_profile_asks_a_gpu_for_extract():
    launch = launch_of("embedpipe-slurm", {"gpu": 1, "gpu_model": "l40s", "mem_mb": "250000 * attempt"},
                       {"mem_mb": 4000, "slurm_account": None}, dryrun=True)
    assert launch.slurm and launch.gpu_requested and launch.gpu_model == "l40s"
    assert launch.slurm_account is None and launch.slurm_partition is None
    assert launch.extract_source == "set-resources: extract"


def test_defaults_and_gres_count_too():
    launch = launch_of("slurm", {}, {"gpu": "2", "slurm_partition": "gpu"}, dryrun=False)
    assert launch.extract_gpus == 2 and launch.extract_source == "default-resources"
    assert launch.slurm_partition == "gpu"
    assert gpu_count({"gres": "gpu:a100:4"}) == 4
    assert gpu_count({"slurm_extra": "--gres=gpu:1"}) == 1
    assert gpu_count({"mem_mb": 10}) is None
    assert not Launch(executor="local").slurm


def test_a_problem_is_one_line_naming_its_key():
    assert LaunchProblem("encoder.device", "cpu").line() == "config key 'encoder.device': cpu"
    assert LaunchProblem("default-resources: slurm_account", "unset", profile=True).line() == \
        "profile key 'default-resources: slurm_account': unset"


def test_the_official_slurm_plugins_settings_are_named_when_embedpipe_slurm_would_ignore_them():
    from dataclasses import MISSING

    from embedpipe.config.launch import official_slurm_problems, official_slurm_settings

    given = {"slurm_array_limit": 200, "slurm_logdir": MISSING, "slurm_jobstep_array_execs": "x",
             "embedpipe_slurm_array_jobs": "extract", "jobs": 100}
    assert official_slurm_settings("embedpipe-slurm", given) == ("slurm-array-limit",)
    assert official_slurm_settings("slurm", given) == ()  # the official plugin reads them itself
    launch = launch_of("embedpipe-slurm", {}, {}, dryrun=True, official_settings=("slurm-array-limit",))
    [problem] = official_slurm_problems(launch)
    assert problem.stop and problem.line() == ("profile key 'slurm-array-limit': is the official SLURM plugin's "
                                               "setting, which executor embedpipe-slurm ignores: write "
                                               "embedpipe-slurm-array-limit")
