# embedpipe: media files → foundation-model embedding datasets.
#   snakemake --cores 2 --configfile config/demo.yaml                     (the video demo)
#   snakemake --cores 2 --configfile config/demo_audio.yaml               (the audio demo)
#   snakemake --cores 2 --configfile config/demo_ecg.yaml                 (the ECG demo; demo_ecg_jepa.yaml)
#   snakemake --cores 2 --configfile config/demo_pretrain.yaml            (MyJEPA pretraining, then the ECG demo)
#   snakemake --profile profiles/slurm --configfile config/examples/mimic_iv_echo.yaml
#   snakemake doctor --configfile <run.yaml>                            (what a job finds on a node)
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config/config.yaml")


import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # the library's torch-free config checks
from embedpipe.config.unknown_keys import unknown_key_problem  # noqa: E402
from snakemake.exceptions import WorkflowError  # noqa: E402

# Before any job: a misspelt key is one line naming it and the closest valid key (validate() would
# print the schema it failed against, for a top-level key all of it), then a wrong type or value
# stops here, naming the key.
if problem := unknown_key_problem(config, os.path.join(workflow.basedir, "config/schema.yaml")):
    raise WorkflowError("config key {!r}: {}".format(*problem))
validate(config, os.path.join(workflow.basedir, "config/schema.yaml"))


include: "rules/common.smk"


if DEMO:

    include: "rules/demo.smk"


include: "rules/discover.smk"


if PRETRAIN["enabled"]:

    include: "rules/pretrain.smk"


include: "rules/extract.smk"


if PCA_COMPONENTS:

    include: "rules/pca.smk"


include: "rules/merge.smk"
include: "rules/staged.smk"
include: "rules/validate.smk"
include: "rules/evaluate.smk"
include: "rules/parquet.smk"


if TRIAL_FILES:

    include: "rules/plan.smk"


include: "rules/upload.smk"
include: "rules/export.smk"
include: "rules/doctor.smk"
include: "rules/status.smk"
include: "rules/console.smk"


rule all:
    input:
        MERGED_IN_RUN,
        METRICS,
        DATASET_FILE_LIST,
        EVALUATION_OUTPUTS,
        PLAN_OUTPUTS,  # a trial's plan of its full run
    default_target: True
