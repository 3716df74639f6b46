"""The joined rule's slices: a staged file made from a shard's slice equals one made by joining the
whole lists in the staged job (the join it replaces), and a slice never joins a key it was not made for."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from support.integrity import write_shard
from support.workflow import run_script

from embedpipe.publish.joined import JoinedSlice, write_joined
from embedpipe.publish.kinds import build_joiner
from embedpipe.publish.source_rows import WithSourceRows, write_source_rows
from embedpipe.publish.staged import write_dataset_shard
from embedpipe.store.footer import read_provenance

RECORDS = [
    "10000000,90000000,2180-01-01 10:00:00,files/p10/p10000000/s90000000/90000000_0001.dcm",
    "10002221,94106955,2181-02-02 10:00:00,files/p10/p10002221/s94106955/94106955_0001.dcm",
    "11999999,91999999,,files/p11/p11999999/s91999999/91999999_0007.dcm",
]
STUDIES = ["10000000,90000000,2180-01-01 09:00:00,10000000-EC-1,1,2180-01-02 12:00:00"]
SHARDS = {
    "p10": ["p10/p10000000/s90000000/90000000_0001.mp4", "p10/p10002221/s94106955/94106955_0001.mp4",
            "p10/p10005555/s95555555/95555555_0001.mp4"],  # no record row: ids from its path
    "p11": ["p11/p11999999/s91999999/91999999_0007.mp4", "p11/notes.mp4"],  # outside MIMIC's naming
}


@pytest.fixture
def lists(tmp_path):
    (tmp_path / "r.csv").write_text("subject_id,study_id,acquisition_datetime,dicom_filepath\n"
                                    + "".join(f"{r}\n" for r in RECORDS))
    (tmp_path / "s.csv").write_text("subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n"
                                    + "".join(f"{r}\n" for r in STUDIES))
    return {"record_list": str(tmp_path / "r.csv"), "study_list": str(tmp_path / "s.csv")}


def test_a_staged_file_from_the_slice_equals_the_whole_list_join(tmp_path, lists):
    for shard, keys in SHARDS.items():
        write_shard(tmp_path, shard, keys[:-1], keys[-1:])  # the last key an error row: not staged
    run_script("joined.py", "--manifests", tmp_path / "p10.txt", tmp_path / "p11.txt", "--output_dir",
               tmp_path / "joined", "--metadata", "mimic_iv_echo", "--record_list", lists["record_list"],
               "--study_list", lists["study_list"])
    for shard in SHARDS:
        direct, sliced = tmp_path / f"direct-{shard}.parquet", tmp_path / f"sliced-{shard}.parquet"
        whole = build_joiner("mimic_iv_echo", lists)
        write_dataset_shard(tmp_path / f"{shard}.parquet", direct, whole, {"shard": shard})
        joined = JoinedSlice(tmp_path / "joined" / f"{shard}.parquet")
        write_dataset_shard(tmp_path / f"{shard}.parquet", sliced, joined, {"shard": shard})
        assert pq.read_table(sliced).equals(pq.read_table(direct))
        assert read_provenance(sliced) == read_provenance(direct)  # the judgement too: same parses, columns
        assert (joined.matched_records, joined.matched_studies) == (whole.matched_records, whole.matched_studies)
    assert pq.read_table(tmp_path / "sliced-p10.parquet").column("subject_id").to_pylist() == [10000000, 10002221]
    assert "subject_id" in read_provenance(tmp_path / "sliced-p10.parquet")["identifying_columns"]


def test_a_slice_refuses_a_key_it_was_not_made_for(tmp_path, lists):
    write_joined(build_joiner("mimic_iv_echo", lists), SHARDS["p10"][:2], tmp_path / "p10.parquet")
    joined = JoinedSlice(tmp_path / "p10.parquet")
    assert joined.rows([SHARDS["p10"][1]])["subject_id"] == [10002221]
    with pytest.raises(ValueError, match=r"1 keys are not in this joined slice, e.g. '.*95555555_0001.mp4'.*"
                                         "made from another manifest: rerun the joined rule"):
        joined.rows(SHARDS["p10"])
    with pytest.raises(ValueError, match="rerun the joined rule"):
        joined.parses(SHARDS["p10"][2])


def test_source_rows_join_into_the_slice(tmp_path):
    rows = {"a/x.wav": [0, 3], "a/y.wav": [1]}
    write_source_rows(rows, "train", tmp_path / "hf_rows.parquet")
    joiner = WithSourceRows(build_joiner("none", {}), rows, "train")
    write_joined(joiner, ["a/y.wav", "a/x.wav"], tmp_path / "a.parquet")
    got = JoinedSlice(tmp_path / "a.parquet").rows(["a/x.wav", "a/y.wav"])
    assert got == {"key": ["a/x.wav", "a/y.wav"], "hf_row_indices": [[0, 3], [1]], "hf_split": ["train", "train"]}


def test_an_ambiguous_record_stops_the_joined_job_in_one_line_naming_the_file(tmp_path, lists):
    (tmp_path / "r.csv").write_text("subject_id,study_id,acquisition_datetime,dicom_filepath\n"
                                    "1,2,,files/p10/p1/s2/x.dcm\n3,4,,files/p11/p3/s4/x.dcm\n")
    (tmp_path / "flat.txt").write_text("x.mp4\n")
    proc = run_script("joined.py", "--manifests", tmp_path / "flat.txt", "--output_dir", tmp_path / "joined",
                      "--metadata", "mimic_iv_echo", "--record_list", lists["record_list"],
                      "--study_list", lists["study_list"], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "shard flat: x.mp4 matches several record rows by its path's tail" in proc.stderr
    assert not (tmp_path / "joined" / "flat.parquet").exists()
