"""The columns of mimic_iv_ecg rows that identify people: what a public upload must name."""

# MIMIC-IV-ECG rows: the ids, the path (it holds both) and the machine's time of the ECG.
ECG_IDENTIFYING = ("subject_id", "study_id", "file_path", "ecg_time")
