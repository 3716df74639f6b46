"""`metis`: Metis's 8-D semantic latents of speech (w2v-bert-2.0 layer 17 → MaskGCT's semantic codec)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedpipe.encoders.family import Export, Family, OptionError, Options
from embedpipe.encoders.metis.sizes import LATENT_DIM

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder



DEFAULT_BATCH = 64  # what batch_size: 0 means

def checks(options: Options, files: bool) -> None:
    if not options["stats_path"]:
        raise OptionError("encoder.stats_path", "metis needs the codec's wav2vec2bert_stats.pt (mean and var)")
    for key in ("stats_path", "codec_path"):
        if files and options[key] and not os.path.isfile(options[key]):
            raise OptionError(f"encoder.{key}", f"{options[key]!r} is not a file")


def build_model(options: Options, device: torch.device) -> Encoder:
    """The family's model code (torch, transformers) loads only when a job builds the encoder."""
    from embedpipe.encoders.metis.build import build

    return build(options, device)


def export_latents_json(shards: Iterable[Path], out: Path, **chosen: Any) -> int:
    from embedpipe.encoders.metis.export import export_latents_json as write

    return write(shards, out, **chosen)


FAMILY = Family(
    name="metis",
    expects="a w2v-BERT 2.0 model folder (config.json with model_type wav2vec2-bert, and its weights)",
    model_type="wav2vec2-bert",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder=build_model,
    default_batch=lambda options: DEFAULT_BATCH,
    checks=checks,
    width=lambda options: LATENT_DIM,
    exports=(Export("export_json", "semantic_audio_embeddings.json",
                    export_latents_json),),
)
