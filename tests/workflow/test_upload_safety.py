"""Upload safety: exactly the files the parquet rule listed, and no column that identifies people made
public without the config naming it. The Hub is the local stand-in."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.hub_standin import Repo
from support.upload import dataset_file
from support.workflow import REPO, run_env, run_script, snakemake

from embedpipe.publish.card import identifying_section
from embedpipe.publish.file_list import read_file_list, write_file_list
from embedpipe.publish.kinds.deepearth.join import DeepEarthNames
from embedpipe.publish.kinds.mimic_iv_echo.join import EchoMetadata
from embedpipe.publish.kinds.none.join import KeyOnly
from embedpipe.publish.upload import UploadRefused, plan_upload
from embedpipe.store.footer import read_provenance

ECHO_COLUMNS = ["acquisition_datetime", "dicom_id", "file_path", "note_charttime", "note_id", "note_seq",
                "study_datetime", "study_id", "subject_id"]
CARD_TEXT = "---\nlicense: cc0-1.0\nconfigs:\n- config_name: default\n  data_files: train-*.parquet\n---\n# t\n"
DATA = "train-00000-of-00001.parquet"
TOKENS = "tokens/p10/part-000000.safetensors"



def echo_joiner(tmp_path: Path) -> EchoMetadata:
    (tmp_path / "r.csv").write_text(
        "subject_id,study_id,acquisition_datetime,dicom_filepath\n"
        "10000032,90001295,2180-07-23 10:00:00,files/p10/p10000032/s90001295/90001295_0001.dcm\n")
    (tmp_path / "s.csv").write_text("subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n"
                                    "10000032,90001295,2180-07-23 09:00:00,10000032-EC-1,1,2180-07-24 12:00:00\n")
    return EchoMetadata(str(tmp_path / "r.csv"), str(tmp_path / "s.csv"))




def make_dataset(tmp_path: Path, joiner=None, keys: tuple[str, ...] = ("a/x.mp4", "b/y.mp4")) -> Path:
    """A dataset folder (rows, card, a sidecar) and the file list the parquet rule writes beside it."""
    folder = tmp_path / "parquet"
    (folder / "tokens" / "p10").mkdir(parents=True)
    dataset_file(tmp_path, folder / DATA, joiner or KeyOnly(), list(keys))
    (folder / "README.md").write_text(CARD_TEXT)
    (folder / TOKENS).write_bytes(b"12345")
    write_file_list(folder, [DATA, "README.md", TOKENS], tmp_path / "dataset.files.json")
    return tmp_path / "dataset.files.json"


def plan(file_list: Path, public: bool = False, acknowledged: tuple[str, ...] = ()):
    return plan_upload(file_list, "lab/x", public, False, acknowledged)


def relist(file_list: Path, **entries: int) -> None:
    """Add entries (path → bytes) to a file list, as a broken or tampered parquet rule would."""
    data = json.loads(file_list.read_text())
    data["files"] += [{"path": p, "bytes": n} for p, n in entries.items()]
    file_list.write_text(json.dumps(data))


def test_file_list_names_the_folder_and_each_file_with_its_size(tmp_path):
    file_list = make_dataset(tmp_path)
    data = json.loads(file_list.read_text())
    assert data["folder"] == str(tmp_path / "parquet")
    assert [e["path"] for e in data["files"]] == ["README.md", TOKENS, DATA]
    assert {e["path"]: e["bytes"] for e in data["files"]}[TOKENS] == 5
    folder, sizes = read_file_list(file_list)
    assert folder == tmp_path / "parquet" and sizes["README.md"] == len(CARD_TEXT)


def test_upload_pushes_exactly_the_listed_files(hub, tmp_path):
    file_list = make_dataset(tmp_path)
    folder = tmp_path / "parquet"
    run_script("upload.py", "--file_list", file_list, "--repo_id", "lab/exact", "--receipt", tmp_path / "r.json",
               env=hub.env)
    repo = hub.record.repos["lab/exact"]
    assert sorted(repo.files) == ["README.md", TOKENS, DATA]  # the sidecar too, where the list puts it
    assert all(data == (folder / name).read_bytes() for name, data in repo.files.items())
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["private"] is True and [f["path"] for f in receipt["files"]] == ["README.md", TOKENS, DATA]


def test_a_second_upload_removes_the_earlier_uploads_other_files_from_the_repo(hub, tmp_path):
    """A rerun on fewer shards renumbers the files: the repo must not keep the old ones (the card's
    train-*.parquet would read them all)."""
    hub.record.repos["lab/again"] = Repo(private=True, files={
        ".gitattributes": b"*.parquet filter=lfs", "train-00000-of-00002.parquet": b"old",
        "train-00001-of-00002.parquet": b"old", "tokens/p11/part-000000.safetensors": b"old"})
    file_list = make_dataset(tmp_path)
    run_script("upload.py", "--file_list", file_list, "--repo_id", "lab/again", "--receipt", tmp_path / "r.json",
               env=hub.env)
    assert sorted(hub.record.repos["lab/again"].files) == [".gitattributes", "README.md", TOKENS, DATA]
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["removed"] == ["tokens/p11/part-000000.safetensors", "train-00000-of-00002.parquet",
                                  "train-00001-of-00002.parquet"]


def test_a_file_added_to_the_folder_after_the_plan_is_refused_before_any_file_is_sent(hub, tmp_path):
    """The whole folder is pushed (a list of patterns cost files × patterns): so it is checked again, just
    before sending, to hold exactly the planned files."""
    file_list = make_dataset(tmp_path)
    late = tmp_path / "parquet" / "train-late.parquet"
    probe = (f"from pathlib import Path; from embedpipe.publish.upload import plan_upload, upload\n"
             f"plan = plan_upload(Path({str(file_list)!r}), 'lab/late', False, False)\n"
             f"Path({str(late)!r}).write_bytes(b'not planned')\n"
             f"upload(plan)")
    proc = subprocess.run([sys.executable, "-c", probe], env=run_env(hub.env), capture_output=True, text=True)
    assert "UploadRefused: train-late.parquet: in " in proc.stderr and "nothing pushed" in proc.stderr
    assert not hub.record.repos["lab/late"].files  # the repository was made; no file reached it


def test_a_symlink_into_the_folder_is_refused_and_nothing_is_sent(hub, tmp_path):
    file_list = make_dataset(tmp_path)
    (tmp_path / "parquet" / "train-zz.parquet").symlink_to("/etc/passwd")
    proc = run_script("upload.py", "--file_list", file_list, "--repo_id", "lab/leak", "--receipt",
                      tmp_path / "r.json", env=hub.env, check=False)
    assert proc.returncode == 2 and "train-zz.parquet: in " in proc.stderr and "not in the file list" in proc.stderr
    assert hub.record.requests == [] and "lab/leak" not in hub.record.repos and not (tmp_path / "r.json").exists()


def test_a_listed_symlink_or_symlinked_parent_is_refused(tmp_path):
    file_list = make_dataset(tmp_path)
    folder = tmp_path / "parquet"
    (tmp_path / "secret").write_text("not this run's\n")
    (folder / "train-zz.parquet").symlink_to(tmp_path / "secret")
    relist(file_list, **{"train-zz.parquet": 15})
    with pytest.raises(UploadRefused, match=r"^train-zz.parquet: is a symlink"):
        plan(file_list)
    (folder / "train-zz.parquet").unlink()
    file_list = make_dataset(tmp_path / "second")
    folder = tmp_path / "second" / "parquet"
    (folder / "tokens").rename(tmp_path / "elsewhere")
    (folder / "tokens").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UploadRefused, match=rf"^{TOKENS}: has a symlinked parent \(tokens\)"):
        plan(file_list)


@pytest.mark.parametrize(("entry", "message"), [
    ("../secret", r"^\.\./secret: goes up with '\.\.'$"),
    ("tokens/../../secret", r"goes up with '\.\.'"),
    ("ABSOLUTE", r": an absolute path"),
    ("train-*.parquet", r"^train-\*\.parquet: not a plain relative path"),
    ("missing.parquet", r"^missing\.parquet: listed but not in "),
])
def test_a_listed_path_outside_the_folder_or_unplain_is_refused(tmp_path, entry, message):
    file_list = make_dataset(tmp_path)
    (tmp_path / "secret").write_text("outside\n")
    relist(file_list, **{entry.replace("ABSOLUTE", str(tmp_path / "secret")): 8})
    with pytest.raises(UploadRefused, match=message) as refused:
        plan(file_list)
    assert "\n" not in str(refused.value)


def test_a_listed_fifo_is_not_a_regular_file(tmp_path):
    file_list = make_dataset(tmp_path)
    os.mkfifo(tmp_path / "parquet" / "pipe")
    relist(file_list, pipe=0)
    with pytest.raises(UploadRefused, match=r"^pipe: not a regular file$"):
        plan(file_list)


def test_an_unlisted_file_in_the_folder_is_refused(tmp_path):
    file_list = make_dataset(tmp_path)
    (tmp_path / "parquet" / "tokens" / "p10" / "part-000001.safetensors").write_bytes(b"stale")
    with pytest.raises(UploadRefused, match=r"^tokens/p10/part-000001\.safetensors: in .* not in the file list"):
        plan(file_list)


def test_a_file_whose_size_changed_since_the_list_is_refused(tmp_path):
    file_list = make_dataset(tmp_path)
    with open(tmp_path / "parquet" / "README.md", "a") as fh:
        fh.write("edited after the parquet rule\n")
    with pytest.raises(UploadRefused, match=rf"^README\.md: {len(CARD_TEXT) + 30} bytes, but the file list says "
                                            rf"{len(CARD_TEXT)}"):
        plan(file_list)


def test_dataset_files_record_the_columns_that_identify_people(tmp_path):
    echo = dataset_file(tmp_path, tmp_path / "echo.parquet", echo_joiner(tmp_path),
                        ["p10/p10000032/s90001295/90001295_0001.mp4"])
    mimic_keys = dataset_file(tmp_path, tmp_path / "ecg.parquet", KeyOnly(),
                              ["p1000/p10000032/s40689238/40689238.hea", "other/x.hea"])
    plain = dataset_file(tmp_path, tmp_path / "audio.parquet", KeyOnly(), ["speaker1/p10/s1/a.wav"])
    photos = dataset_file(tmp_path, tmp_path / "photos.parquet", DeepEarthNames(),
                          ["taxon_1/gbif_1_taxon_1_Aa_bb_img_1.jpg"])
    recorded = {p.stem: (sorted(read_provenance(p)["identifying_columns"]), read_provenance(p)["unjudged_columns"])
                for p in (echo, mimic_keys, plain, photos)}
    # plain paths are not judged harmless: nobody knows what their names hold
    assert recorded == {"echo": (ECHO_COLUMNS, []), "ecg": (["key"], []), "audio": ([], ["key"]),
                        "photos": ([], [])}
    assert set(ECHO_COLUMNS) == {f.name for f in EchoMetadata.fields}  # every echo metadata column


def test_public_upload_of_identifying_columns_needs_each_named(tmp_path):
    file_list = make_dataset(tmp_path, echo_joiner(tmp_path), ("p10/p10000032/s90001295/90001295_0001.mp4",))
    assert plan(file_list).identifying == ECHO_COLUMNS  # private: no acknowledgement needed
    with pytest.raises(UploadRefused, match=r"upload\.public_identifying_columns does not name: "
                                            r"acquisition_datetime, dicom_id, .*, subject_id\. "):
        plan(file_list, public=True)
    with pytest.raises(UploadRefused, match=r"does not name: note_id\. "):
        plan(file_list, public=True, acknowledged=tuple(c for c in ECHO_COLUMNS if c != "note_id"))
    assert plan(file_list, public=True, acknowledged=(*ECHO_COLUMNS, "extra")).public is True


def test_public_upload_refuses_files_without_a_record_and_passes_clean_ones(tmp_path):
    file_list = make_dataset(tmp_path)
    with pytest.raises(UploadRefused, match=r"cannot judge\) that upload\.public_identifying_columns does not "
                                            r"name: key\."):
        plan(file_list, public=True)  # plain file paths: of unknown origin
    assert plan(file_list, public=True, acknowledged=("key",)).identifying == ["key"]
    table = pq.read_table(tmp_path / "parquet" / DATA)
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "parquet" / DATA)  # as an older embedpipe wrote
    write_file_list(tmp_path / "parquet", [DATA, "README.md", TOKENS], file_list)
    assert plan(file_list).identifying == []
    with pytest.raises(UploadRefused, match=rf"^{DATA} records no identifying columns"):
        plan(file_list, public=True)


def test_upload_script_takes_the_acknowledgement_and_refuses_without_it(hub, tmp_path):
    file_list = make_dataset(tmp_path, echo_joiner(tmp_path), ("p10/p10000032/s90001295/90001295_0001.mp4",))
    args = ["--file_list", file_list, "--repo_id", "lab/open", "--public", "--receipt", tmp_path / "r.json"]
    refused = run_script("upload.py", *args, *(f"--acknowledge={c}" for c in ECHO_COLUMNS[1:]), env=hub.env,
                         check=False)
    assert refused.returncode == 2 and "not name: acquisition_datetime." in refused.stderr and hub.record.requests == []
    run_script("upload.py", *args, *(f"--acknowledge={c}" for c in ECHO_COLUMNS), env=hub.env)
    assert hub.record.repos["lab/open"].private is False
    assert json.loads((tmp_path / "r.json").read_text())["identifying_columns"] == ECHO_COLUMNS


def test_snakemake_refuses_public_mimic_upload_without_the_acknowledgement(tmp_path):
    demo = str(REPO / "config" / "demo.yaml")
    public = tmp_path / "public.yaml"
    public.write_text(json.dumps({"upload": {"public": True}}))
    proc = snakemake(tmp_path, "upload", "-n", "--configfile", demo, str(public), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'upload.public'" in out and "subject_id" in out and "note_id" in out
    public.write_text(json.dumps({"upload": {"public": True, "public_identifying_columns": ECHO_COLUMNS}}))
    proc = snakemake(tmp_path, "upload", "-n", "-p", "--configfile", demo, str(public))
    # the upload block reaches the job as one JSON value (--settings), the acknowledgement in it
    words = shlex.split(next(line for line in proc.stdout.splitlines() if "upload.py" in line))
    settings = json.loads(next(w.split("=", 1)[1] for w in words if w.startswith("--settings=")))
    assert {"subject_id", "note_charttime"} <= set(settings["public_identifying_columns"])


def test_card_names_the_identifying_columns_from_the_files(tmp_path):
    echo = dataset_file(tmp_path, tmp_path / "echo.parquet", echo_joiner(tmp_path),
                        ["p10/p10000032/s90001295/90001295_0001.mp4"])
    plain = dataset_file(tmp_path, tmp_path / "plain.parquet", KeyOnly(), ["a/x.wav"])
    section = identifying_section([echo])
    assert section.startswith("## Identifying columns\n") and "`subject_id`" in section and "`note_id`" in section
    assert "`key`: file paths of unknown origin" in identifying_section([plain])
    assert "None:" not in identifying_section([plain])
    photos = dataset_file(tmp_path, tmp_path / "photos.parquet", DeepEarthNames(),
                          ["taxon_1/gbif_1_taxon_1_Aa_bb_img_1.jpg"])
    assert identifying_section([photos]).startswith("## Identifying columns\n\nNone: no column identifies")
    assert "`subject_id`" in identifying_section([plain, echo])  # any file's columns count
    pq.write_table(pq.read_table(plain).replace_schema_metadata({}), tmp_path / "old.parquet")
    assert "Not recorded: old.parquet" in identifying_section([tmp_path / "old.parquet"])
