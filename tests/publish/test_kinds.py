"""Metadata kinds are a registry, as encoder families are: a new kind is its own package plus one line."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from support.small_shards import write_shard

from embedpipe.publish.kinds import KINDS, KindError, build_joiner, kind
from embedpipe.publish.staged import write_dataset_shard

TOY_INIT = '''
from embedpipe.publish.kinds.kind import Kind

def joiner(files):
    from toykind.join import PlateNames
    return PlateNames(files["record_list"])

KIND = Kind(name="toy", files=("record_list",), identifying=("plate",), joiner=joiner)
'''
TOY_JOIN = '''
import pyarrow as pa
from embedpipe.publish.metadata import ListedIdentifying

class PlateNames(ListedIdentifying):
    """Plate and well from names such as plate3/A01.tif; the plate's label from a list."""
    key_column = "file_path"
    fields = [pa.field("file_path", pa.string()), pa.field("plate", pa.string()), pa.field("label", pa.string())]
    identifying = ("plate",)
    kind, naming = "toy", "plate<n>/<well>.<ext>"
    parses = staticmethod(lambda key: key.startswith("plate"))
    judges = None

    def __init__(self, record_list):
        self.labels = dict(line.split(",") for line in open(record_list).read().split())
        self.matched_records = self.matched_studies = 0

    def rows(self, keys):
        plates = [key.split("/")[0] for key in keys]
        self.matched_records += sum(p in self.labels for p in plates)
        return {"file_path": list(keys), "plate": plates, "label": [self.labels.get(p) for p in plates]}
'''


def test_a_new_kind_is_its_own_package_plus_one_registry_line(tmp_path, monkeypatch):
    package = tmp_path / "pkgs" / "toykind"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TOY_INIT)
    (package / "join.py").write_text(TOY_JOIN)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setitem(KINDS, "toy", "toykind")  # the one registry line
    labels = tmp_path / "plates.csv"
    labels.write_text("plate1,control\nplate2,treated\n")
    write_shard(tmp_path, "s1", ["plate1/A01.tif", "plate2/B02.tif"], [[1, 0, 0, 0], [0, 1, 0, 0]])

    assert kind("toy").identifying == ("plate",)  # what a public upload must name, known at DAG time
    with pytest.raises(KindError, match="metadata.kind toy needs metadata.record_list"):
        build_joiner("toy", {"record_list": None})
    out = tmp_path / "staged.parquet"
    assert write_dataset_shard(tmp_path / "s1.parquet", out, build_joiner("toy", {"record_list": str(labels)}),
                               {"shard": "s1"}) == 2
    rows = pq.read_table(out, columns=["file_path", "plate", "label"]).to_pylist()
    assert rows == [{"file_path": "plate1/A01.tif", "plate": "plate1", "label": "control"},
                    {"file_path": "plate2/B02.tif", "plate": "plate2", "label": "treated"}]


def test_an_unknown_kind_is_named_with_the_known_ones():
    with pytest.raises(KindError, match=r"unknown kind 'mimic_iv_eco'; known: none, mimic_iv_echo"):
        kind("mimic_iv_eco")


def test_every_registered_kind_loads_without_pandas_or_pyarrow():
    """The DAG reads kinds; their joins (pandas, pyarrow) load only when a job joins rows."""
    import subprocess
    import sys

    probe = ("import sys; from embedpipe.publish.kinds import KINDS, kind; [kind(n) for n in KINDS]; "
             "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
