"""The `validate` config block: thresholds and sampling, the only defaults of these settings in code.

Standard library only: the Snakefile reads it when it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.runtime.step_settings import setting

BLOCK = "validate"


@dataclass(frozen=True)
class ValidationConfig:
    """The `validate` block: thresholds and sampling. A failed check fails the rule."""

    max_error_fraction: float = setting(0.01, "error rows over files above this fails validation")
    max_mean_cosine: float = setting(0.99, "mean cosine of random pairs above this = collapsed embeddings")
    min_effective_rank: float = setting(2.0, "exp(entropy) of the PCA spectrum, exact over all rows, below this fails")
    max_duplicate_embeddings: int = setting(0, "identical vectors under different keys above this fails")
    sample_size: int = setting(10_000, "rows kept (uniformly) for the cosine pairs and the 2-D scatter")
    cosine_pairs: int = setting(20_000, "random pairs whose mean cosine is measured")
    pca_components: int = setting(32, "components shown in the spectrum")
    seed: int = setting(0, "seed of the sampling")
    # Not in the block: the width the encoder's options fix (the family's width()), None when they do not.
    expected_dim: int | None = setting(None, "the embedding width every row must have; none: not checked")
