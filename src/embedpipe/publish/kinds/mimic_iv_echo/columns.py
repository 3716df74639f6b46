"""The columns of mimic_iv_echo rows that identify people: what a public upload must name."""

# MIMIC-IV-Echo rows: every id, the path (it holds the subject and study ids), the datetimes and the
# note ids. The datetimes are shifted in MIMIC but still tie a row to a person's timeline.
ECHO_IDENTIFYING = ("subject_id", "study_id", "dicom_id", "file_path", "acquisition_datetime", "study_datetime",
                    "note_id", "note_seq", "note_charttime")
