from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support.small_shards import write_shard

from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.kinds.mimic_iv_ecg.join import EcgRecordList
from embedpipe.publish.kinds.mimic_iv_echo.join import EchoMetadata
from embedpipe.publish.metadata import AmbiguousJoin, parse_echo_path
from embedpipe.store.merge import load_merged, merge_all
from embedpipe.validate.checks import ValidationConfig, validate_dataset


def test_merge_all_writes_pt_npy_and_key_index(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    write_shard(tmp_path, "p10", ["p10/x", "p10/y", "p10/z"], a)
    write_shard(tmp_path, "p11", ["p11/x", "p11/y"], b)
    n = merge_all([tmp_path / "p10.parquet", tmp_path / "p11.parquet"], tmp_path / "m.pt", tmp_path / "m.npy",
                  tmp_path / "m.keys.txt")
    assert n == 5
    merged = torch.load(tmp_path / "m.pt")
    assert list(merged) == ["p10/x", "p10/y", "p10/z", "p11/x", "p11/y"]
    np.testing.assert_array_equal(merged["p11/y"].numpy(), b[1].astype(np.float32))
    matrix, keys = load_merged(tmp_path / "m.npy", tmp_path / "m.keys.txt")
    assert isinstance(matrix, np.memmap) and matrix.shape == (5, 4)
    np.testing.assert_array_equal(matrix[keys.index("p10/y")], a[1].astype(np.float32))


def test_echo_metadata_join_by_dicom_id_and_study(tmp_path):
    (tmp_path / "r.csv").write_text(
        "subject_id,study_id,acquisition_datetime,dicom_filepath\n"
        "10000032,90001295,2180-07-23 10:00:00,files/p10/p10000032/s90001295/90001295_0001.dcm\n"
    )
    (tmp_path / "s.csv").write_text(
        "subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n"
        "10000032,90001295,2180-07-23 09:00:00,10000032-EC-1,1,2180-07-24 12:00:00\n"
        "10000099,90009999,2180-01-01 09:00:00,,,\n"
    )
    joiner = EchoMetadata(str(tmp_path / "r.csv"), str(tmp_path / "s.csv"))
    rows = joiner.rows(["p10/p10000032/s90001295/90001295_0001.mp4", "p10/p10000099/s90009999/90009999_0002.mp4",
                        "p10/p10000555/s95555555/95555555_0001.mp4"])
    assert rows["subject_id"] == [10000032, 10000099, 10000555]
    assert rows["acquisition_datetime"] == ["2180-07-23 10:00:00", None, None]
    assert rows["note_id"] == ["10000032-EC-1", None, None]
    assert rows["study_datetime"] == ["2180-07-23 09:00:00", "2180-01-01 09:00:00", None]
    assert rows["dicom_id"][0] == "90001295_0001"
    assert (joiner.matched_records, joiner.matched_studies) == (1, 2)
    assert parse_echo_path("p19/p19999999/s1/abc.mp4") == {"subject_id": 19999999, "study_id": 1, "dicom_id": "abc"}


def echo_lists(tmp_path, records, studies=()):
    (tmp_path / "r.csv").write_text("subject_id,study_id,acquisition_datetime,dicom_filepath\n"
                                    + "".join(f"{r}\n" for r in records))
    (tmp_path / "s.csv").write_text("subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n"
                                    + "".join(f"{r}\n" for r in studies))
    return EchoMetadata(str(tmp_path / "r.csv"), str(tmp_path / "s.csv"))


def test_echo_metadata_joins_by_path_so_a_repeated_stem_keeps_its_own_subject(tmp_path):
    joiner = echo_lists(tmp_path, [
        "10000000,90000000,2180-01-01 10:00:00,files/p10/p10000000/s90000000/90000000_0001.dcm",
        "10002221,94106955,2181-02-02 10:00:00,files/p10/p10002221/s94106955/94106955_0001.dcm",
    ], ["10000000,90000000,2180-01-01 09:00:00,10000000-EC-1,1,2180-01-02 12:00:00"])
    rows = joiner.rows(["p10/p10000000/s90000000/90000000_0001.mp4",
                        "p11/p11999999/s91999999/90000000_0001.mp4",  # same stem, another subject, no record row
                        "p10/p10002221/s94106955/94106955_0001.dcm",  # .dcm keys join as .mp4 keys do
                        "p10002221/s94106955/94106955_0001.mp4"])  # input_dir below files/p10: the path's tail
    assert rows["subject_id"] == [10000000, 11999999, 10002221, 10002221]
    assert rows["study_id"] == [90000000, 91999999, 94106955, 94106955]
    assert rows["acquisition_datetime"] == ["2180-01-01 10:00:00", None, "2181-02-02 10:00:00", "2181-02-02 10:00:00"]
    assert rows["note_id"] == ["10000000-EC-1", None, None, None]
    assert rows["study_datetime"][1] is None
    assert joiner.matched_records == 3


def test_echo_metadata_refuses_an_ambiguous_join_naming_both_rows(tmp_path):
    first = "files/p10/p10000000/s90000000/90000000_0001.dcm"
    second = "files/p11/p11999999/s91999999/90000000_0001.dcm"
    joiner = echo_lists(tmp_path, [f"10000000,90000000,,{first}", f"11999999,91999999,,{second}"])
    with pytest.raises(AmbiguousJoin, match=rf"90000000_0001\.mp4 matches several .*{first}.* and {second}"):
        joiner.rows(["90000000_0001.mp4"])  # a flat input folder: only the stem to go by
    joiner = echo_lists(tmp_path, [f"10000000,90000000,,{first}", f"10000001,90000001,,{first}"])
    with pytest.raises(AmbiguousJoin, match=r"two rows for it: .*subject 10000000.* and .*subject 10000001"):
        joiner.rows(["p10/p10000000/s90000000/90000000_0001.mp4"])
    assert joiner.rows(["p10/p10000555/s95555555/95555555_0001.mp4"])["subject_id"] == [10000555]


def run_validate(tmp_path, shards, max_error_fraction=0.5):
    return validate_dataset(
        shards, {s: tmp_path / f"{s}.txt" for s in shards}, {s: tmp_path / f"{s}.parquet" for s in shards},
        {s: tmp_path / f"{s}.errors.parquet" for s in shards},
        ValidationConfig(max_error_fraction=max_error_fraction, min_effective_rank=0),
    ).metrics


def failed(metrics):
    return {c["name"] for c in metrics["checks"] if not c["passed"]}


def test_validate_passes_a_clean_dataset_and_counts_errors(tmp_path):
    write_shard(tmp_path, "p10", ["a", "b"], np.eye(4)[:2], errors=["c"])
    m = run_validate(tmp_path, ["p10"])
    assert m["passed"] and failed(m) == set()
    assert m["totals"]["files"] == 3 and m["totals"]["rows"] == 2 and m["totals"]["errors"] == 1


def test_validate_catches_nan_zero_rows_duplicates_and_count_gaps(tmp_path):
    write_shard(tmp_path, "p10", ["a", "b", "z"], [[np.nan, 1, 1, 1], [0, 0, 0, 0], [1, 2, 3, 4]])
    write_shard(tmp_path, "p11", ["z"], [[1, 1, 1, 1]])
    (tmp_path / "p11.txt").write_text("z\nlost\n")  # a file that has neither a row nor an error
    m = run_validate(tmp_path, ["p10", "p11"])
    assert not m["passed"]
    assert failed(m) == {"finite", "no_zero_rows", "unique_keys", "counts_reconcile", "keys_match_manifest"}


def test_validate_fails_when_shard_files_differ_in_columns_naming_the_odd_one(tmp_path):
    write_shard(tmp_path, "p10", ["a", "b"], np.eye(4)[:2])
    write_shard(tmp_path, "p11", ["c", "d"], np.eye(4)[2:])
    assert "same_columns" not in failed(run_validate(tmp_path, ["p10", "p11"]))
    w = ShardWriter(tmp_path / "parts" / "p12", [pa.field("embedding", pa.list_(pa.float32(), 4)),
                                                  pa.field("frame_rate", pa.float64())], "fp")
    w.add_rows(["e"], {"embedding": np.ones((1, 4), np.float32), "frame_rate": np.array([25.0])})
    (tmp_path / "p12.txt").write_text("e\n")
    w.finalize(["e"], tmp_path / "p12.parquet", tmp_path / "p12.errors.parquet", {"embedding_dim": 4})
    m = run_validate(tmp_path, ["p10", "p11", "p12"])
    assert failed(m) == {"same_columns"}
    detail = next(c["detail"] for c in m["checks"] if c["name"] == "same_columns")
    assert "p12: lacks [], has ['frame_rate: double']" in detail and "--forcerun extract" in detail


def test_validate_fails_on_too_many_errors_and_wrong_width(tmp_path):
    write_shard(tmp_path, "p10", ["a"], np.ones((1, 4)), errors=["b", "c", "d"])
    m = validate_dataset(["p10"], {"p10": tmp_path / "p10.txt"}, {"p10": tmp_path / "p10.parquet"},
                         {"p10": tmp_path / "p10.errors.parquet"},
                         ValidationConfig(expected_dim=1024, max_error_fraction=0.1)).metrics
    assert failed(m) == {"error_fraction", "dimension"}
    assert pq.read_table(tmp_path / "p10.errors.parquet").num_rows == 3


def test_mimic_iv_ecg_record_list_joins_by_path_as_physionet_ships_it(tmp_path):
    # record_list.csv's columns and path form as in MIMIC-IV-ECG 1.0 (the ids are its documented example)
    listing = tmp_path / "record_list.csv"
    listing.write_text("subject_id,study_id,file_name,ecg_time,path\n"
                       "10000032,40689238,40689238,2180-07-23 08:44:00,files/p1000/p10000032/s40689238/40689238\n"
                       "10000032,44458630,44458630,2180-07-23 09:54:00,files/p1000/p10000032/s44458630/44458630\n")
    meta = EcgRecordList(str(listing))
    keys = ["p1000/p10000032/s40689238/40689238.hea",  # input_dir: files/
            "p10000032/s44458630/44458630.hea",  # input_dir: files/p1000, joined by the path's tail
            "p1001/p10010001/s49999999/49999999.hea"]  # no row: ids from the path, no time
    assert meta.rows(keys) == {"subject_id": [10000032, 10000032, 10010001],
                               "study_id": [40689238, 44458630, 49999999], "file_path": keys,
                               "ecg_time": ["2180-07-23 08:44:00", "2180-07-23 09:54:00", None]}
    assert meta.matched_records == 2
    assert set(meta.identifying) == {"subject_id", "study_id", "file_path", "ecg_time"}
    listing.write_text("subject_id,study_id,path\n1,2,files/p1/p1/s2/2\n")
    with pytest.raises(ValueError, match=r"record_list.csv: missing columns \['ecg_time'\]"):
        EcgRecordList(str(listing))
