"""Evaluate the embeddings: a linear probe and k-NN on frozen embeddings against a labels table or PTB-XL.

settings.py (the config block, start-up checks; standard library only, the Snakefile reads it) ·
labels.py (a labels table) · ptbxl.py (PTB-XL as it ships) · join.py (dataset rows meet labels,
every unmatched row counted) · probe.py (the probe, k-NN, the folds) · auroc.py (AUROC, bootstrap) ·
metrics.py (metrics.json) · report.py (roc.png, report.html) · run.py (the step).
Nothing is imported here, so reading the settings costs no scikit-learn import.
"""
