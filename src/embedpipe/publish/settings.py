"""The `dataset` (the card) and `upload` config blocks: the only defaults of these settings in code.

Standard library only: the Snakefile reads it when it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.runtime.step_settings import setting

UPLOAD = "upload"


@dataclass(frozen=True)
class CardOptions:
    """The `dataset` block: what the dataset card says."""

    pretty_name: str | None = setting(None, "the card's title; null = the run name")
    description: str | None = setting(None, "the card's first paragraph")
    license: str = setting("other", "a Hub license id; other + license_name/license_link for custom terms")
    license_name: str | None = setting(None, "a custom license's name (license: other)")
    license_link: str | None = setting(None, "a custom license's link (license: other)")
    credentialed: bool = setting(False, "derived from credentialed data (MIMIC): never uploaded publicly")


@dataclass(frozen=True)
class UploadOptions:
    repo_id: str | None = setting(None, "<user or org>/<name> of the dataset repository")
    public: bool = setting(False, "create the repository public; private unless this is true")
    dry_run: bool = setting(False, "list what would be pushed into upload/plan.json; send nothing")
    path_in_repo: str | None = setting(None, "this model's folder in a repository of several (jepa-l-embeddings): "
                                             "the other models' folders stay")
    config_name: str | None = setting(None, "its config in the repository's card: load_dataset(repo_id, "
                                            "config_name); null = the folder's name")
    public_identifying_columns: list[str] = setting(help="with public: true, every column that identifies people "
                                                         "the dataset holds, named to say it may be published",
                                                    factory=list)
