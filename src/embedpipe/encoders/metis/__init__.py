"""`metis`: Metis's 8-D semantic latents of speech (w2v-bert-2.0 layer 17 → MaskGCT's semantic codec)."""

from __future__ import annotations

import os
from pathlib import Path

from embedpipe.encoders.family import Export, Family, OptionError, Options

LATENT_DIM = 8  # the semantic codec's latent width


def checks(options: Options, files: bool) -> None:
    if not options["stats_path"]:
        raise OptionError("encoder.stats_path", "metis needs the codec's wav2vec2bert_stats.pt (mean and var)")
    for key in ("stats_path", "codec_path"):
        if files and options[key] and not os.path.isfile(options[key]):
            raise OptionError(f"encoder.{key}", f"{options[key]!r} is not a file")


FAMILY = Family(
    name="metis",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder="embedpipe.encoders.metis.build:build",
    checks=checks,
    width=lambda options: LATENT_DIM,
    exports=(Export("export_json", "semantic_audio_embeddings.json",
                    "embedpipe.encoders.metis.export:export_latents_json"),),
)
