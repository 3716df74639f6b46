"""MyJEPA pretraining of an ECG encoder (ECG-JEPA's masking and prediction, LeJEPA's single encoder
and SIGReg), whose checkpoints the `ecg_jepa` encoder family loads for extract.

sigreg.py (the regulariser), masks.py (block masking), model.py (MyJepa), data.py (ECG files and
dumps, crops, batches, masks), schedule.py (AdamW, warm-up + cosine), checkpoint.py, metrics.py, settings.py
(`PretrainSettings`), train.py (`PretrainStep`, the step's `run()`), config.py (presets and YAML
configs → settings).
Importing this package imports no torch; its modules do.
"""
