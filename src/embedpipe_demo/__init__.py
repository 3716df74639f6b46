"""embedpipe_demo: generators of the demos' synthetic data and tiny random-weight models.

`video` (MIMIC-IV-Echo-shaped H.264 videos, CSVs, a tiny V-JEPA 2), `audio` (a VersaFace-shaped WAV
tree, a tiny Metis stack), `ecg` (MIMIC-IV-ECG WFDB and Philips XML, tiny ECGFounder and ECG-JEPA)
and `image` (a DeepEarth taxon tree of drawn photos). workflow/scripts/make_demo.py, the tests and
the benchmarks use them; the pipeline itself (the `embedpipe` package) does not.
"""
