"""evaluate: the linear probe and k-NN measure what the labels say, joined to the right rows.

The bounds come from the statistics of the data the tests make: the theoretical AUROC of two Gaussian
classes a known distance apart, and the Hanley–McNeil (Mann–Whitney) standard error for the test-set
sizes; z = 4 puts a chance failure near 1 in 30,000.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from support.workflow import REPO, run_script, snakemake

from embedpipe.evaluate.auroc import auroc_columns, bootstrap_intervals
from embedpipe.evaluate.join import join_labels, read_embeddings
from embedpipe.evaluate.labels import LabelError, read_labels
from embedpipe.evaluate.probe import assign_folds
from embedpipe.evaluate.ptbxl import ptbxl_labels, record_of
from embedpipe.evaluate.run import evaluate
from embedpipe.evaluate.settings import EvaluationSettings, config_problems
from embedpipe.store.footer import with_provenance

Z = 4.0
DIM, EFFECT = 16, 2.0  # class means EFFECT apart (Mahalanobis) in DIM dimensions of unit-variance noise
N_TRAIN, N_VALIDATION, N_TEST = 400, 200, 400


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    return math.sqrt(var / (positives * negatives))


def expected_auroc(n_train: int) -> float:
    """Φ(d/√2) for the Bayes direction, shrunk by the direction's estimation error from n_train rows:
    cos² ≈ d² / (d² + 4·DIM/n) for the mean-difference estimate, the noise term doubled for a probe
    that is not that estimator."""
    cos2 = EFFECT**2 / (EFFECT**2 + 2 * 4 * DIM / n_train)
    return float(norm.cdf(EFFECT * math.sqrt(cos2) / math.sqrt(2)))


def write_dataset(folder: Path, keys: list[str], vectors: list | np.ndarray, key_column: str = "key",
                  shards: int = 2, **columns: list) -> list[Path]:
    """Staged-like dataset files: the key column, metadata columns, the embedding, the footer's key_column."""
    folder.mkdir(parents=True, exist_ok=True)
    width = len(next(v for v in vectors if v is not None))
    fields = [pa.field(key_column, pa.string()), *(pa.field(c, pa.array(v).type) for c, v in columns.items()),
              pa.field("embedding", pa.list_(pa.float32(), width))]
    schema = with_provenance(fields, {"key_column": key_column})
    bounds = np.linspace(0, len(keys), shards + 1).astype(int)
    files = []
    for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        rows = [None if v is None else [float(x) for x in v] for v in vectors[a:b]]
        table = pa.table([keys[a:b], *(v[a:b] for v in columns.values()), rows], schema=schema)
        pq.write_table(table, folder / f"shard-{s}.parquet")
        files.append(folder / f"shard-{s}.parquet")
    return files


def learnable(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose class means lie EFFECT apart along a random direction, and the classes."""
    y = rng.integers(0, 2, n)
    direction = rng.standard_normal(DIM)
    direction /= np.linalg.norm(direction)
    return rng.standard_normal((n, DIM)) + 3.0 + (y[:, None] - 0.5) * EFFECT * direction, y


def labelled_set(tmp_path: Path, seed: int = 0) -> tuple[list[Path], pd.DataFrame]:
    """Two shard files of keyed rows; the labels table (`fast`: learnable, `noise`: independent of the
    embeddings, a split column) in another row order, so only a join by key puts labels on their rows."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALIDATION + N_TEST
    x, y = learnable(rng, n)
    keys = [f"p{i % 7}/record_{i:05d}.hea" for i in range(n)]
    split = ["train"] * N_TRAIN + ["val"] * N_VALIDATION + ["test"] * N_TEST
    labels = pd.DataFrame({"key": keys, "fast": y, "noise": rng.integers(0, 2, n), "split": split})
    return write_dataset(tmp_path / "staged", keys, x), labels.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_auroc_columns_match_roc_auc_score_with_ties_and_say_nan_for_one_class():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, (200, 3))
    targets[:, 2] = 1
    scores = np.round(rng.standard_normal((200, 3)) + targets, 1)  # rounded: many ties
    got = auroc_columns(targets, scores)
    for c in range(2):
        assert got[c] == pytest.approx(roc_auc_score(targets[:, c], scores[:, c]), abs=1e-12)
    assert np.isnan(got[2])
    resampled = bootstrap_intervals([(targets[:5, :2], scores[:5, :2])], 200, seed=0)
    skipped = resampled.skipped_per_class  # five rows: many resamples lack a class; the macro skips any that does
    assert 0 < max(skipped) <= resampled.skipped_macro <= sum(skipped) < 200


def test_a_learnable_label_scores_its_theoretical_auroc_and_an_independent_one_chance(tmp_path):
    files, labels = labelled_set(tmp_path)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    settings = {"labels": str(tmp_path / "labels.csv"), "split_column": "split", "label_columns": ["fast", "noise"],
                "bootstrap": 1000, "seed": 1}
    out = tmp_path / "evaluation"
    run_script("evaluate.py", "--dataset_files", *files, "--settings", json.dumps(settings), "--out_dir", out)
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_train"], m["n_validation"], m["n_test"]) == (N_TRAIN, N_VALIDATION, N_TEST)
    assert m["classes"] == ["fast", "noise"] and m["dropped_classes"] == {}
    assert m["join"]["rows_evaluated"] == len(labels) and m["join"]["rows_without_label"] == 0
    fast, noise = m["per_class"]["fast"], m["per_class"]["noise"]
    pos, neg = fast["positives"]["test"], N_TEST - fast["positives"]["test"]
    expected = expected_auroc(N_TRAIN)
    se = hanley_mcneil_se(expected, pos, neg)
    assert expected - Z * se <= fast["auroc"] <= norm.cdf(EFFECT / math.sqrt(2)) + Z * se
    npos = noise["positives"]["test"]
    assert abs(noise["auroc"] - 0.5) <= Z * hanley_mcneil_se(0.5, npos, N_TEST - npos)
    # The bootstrap is over the test rows: its interval is about ±1.96 Hanley–McNeil SEs wide.
    low, high = fast["ci95"]
    assert low < fast["auroc"] < high and 0.6 < (high - low) / (2 * 1.96 * se) < 1.6
    assert m["macro_auroc"]["value"] == pytest.approx((fast["auroc"] + noise["auroc"]) / 2, abs=1e-6)
    knn = m["knn"]["per_class"]
    assert knn["fast"] > 0.5 + Z * hanley_mcneil_se(0.5, pos, neg)
    assert abs(knn["noise"] - 0.5) <= Z * hanley_mcneil_se(0.5, npos, N_TEST - npos)
    assert m["probe"]["chosen_c"] in m["probe"]["c_grid"] and m["bootstrap"]["resamples"] == 1000
    page = (out / "report.html").read_text()
    assert "fast" in page and "data:image/png;base64," in page and (out / "roc.png").stat().st_size > 1000


def test_shuffled_labels_score_chance(tmp_path):
    files, labels = labelled_set(tmp_path, seed=2)
    rng = np.random.default_rng(5)
    labels[["fast", "noise"]] = labels[["fast", "noise"]].to_numpy()[rng.permutation(len(labels))]
    labels.to_parquet(tmp_path / "labels.parquet")
    m = evaluate(EvaluationSettings(labels=str(tmp_path / "labels.parquet"), split_column="split",
                                    label_columns=["fast", "noise"], bootstrap=100), files).metrics
    for name, c in m["per_class"].items():
        pos = c["positives"]["test"]
        assert abs(c["auroc"] - 0.5) <= Z * hanley_mcneil_se(0.5, pos, N_TEST - pos), name
    assert abs(m["knn"]["accuracy"] - 0.5) <= Z * math.sqrt(0.25 / (2 * N_TEST))


def test_without_a_split_stratified_kfold_keeps_a_study_in_one_fold_and_still_measures(tmp_path):
    rng = np.random.default_rng(7)
    studies = 300
    x, y = learnable(rng, studies)
    x = np.repeat(x, 2, axis=0) + 0.1 * rng.standard_normal((2 * studies, DIM))  # two files per study
    study_id = np.repeat(np.arange(5000, 5000 + studies), 2)
    keys = [f"p10/s{s}/{i}.mp4" for i, s in enumerate(study_id)]
    files = write_dataset(tmp_path / "staged", keys, x, key_column="file_path", study_id=study_id.tolist())
    pd.DataFrame({"study_id": np.arange(5000, 5000 + studies)[::-1], "fast": y[::-1]}).to_csv(
        tmp_path / "labels.csv", index=False)
    settings = EvaluationSettings(labels=str(tmp_path / "labels.csv"), join_on="study_id", folds=5, bootstrap=100)
    m = evaluate(settings, files).metrics
    assert m["protocol"]["kind"] == "stratified k-fold" and m["protocol"]["grouped_by"] == "study_id"
    assert m["join"]["rows_evaluated"] == 2 * studies == sum(f["n_test"] for f in m["folds"])  # each row tested once
    folds = assign_folds(np.repeat(y, 2)[:, None], study_id.astype(object), 5, seed=0)
    assert (folds[0::2] == folds[1::2]).all()  # the two files of a study are never split
    per_fold_positives = [int(np.repeat(y, 2)[folds == f].sum()) for f in range(5)]
    assert max(per_fold_positives) - min(per_fold_positives) <= 0.1 * len(y)
    # Studies, not rows, are the independent units: 300 / 5 per test fold, 3/5 of them train.
    per_fold = studies // 5
    expected = expected_auroc(3 * per_fold)
    assert m["macro_auroc"]["value"] >= expected - Z * hanley_mcneil_se(expected, per_fold // 2, per_fold // 2)


def test_label_forms_csv_and_parquet_agree(tmp_path):
    keys = [f"r{i}.hea" for i in range(6)]
    files = write_dataset(tmp_path / "staged", keys, np.eye(6), shards=1)
    afib, sr = [1, 0, 0, 1, 0, 0], [0, 1, 1, 1, 0, 0]
    lists = [[n for n, flag in (("AFIB", a), ("SR", s)) if flag] for a, s in zip(afib, sr, strict=True)]
    columns = pd.DataFrame({"key": keys, "AFIB": afib, "SR": sr})
    listed = pd.DataFrame({"key": keys, "rhythm": lists})
    columns.to_csv(tmp_path / "columns.csv", index=False)
    columns.to_parquet(tmp_path / "columns.parquet")
    listed.to_parquet(tmp_path / "listed.parquet")
    listed.assign(rhythm=[str(v) for v in lists]).to_csv(tmp_path / "listed.csv", index=False)
    emb = read_embeddings(files, "key")
    expected = np.array([afib, sr]).T
    for name in ("columns.csv", "columns.parquet", "listed.csv", "listed.parquet"):
        joined = join_labels(emb, read_labels(tmp_path / name, ["key"], None, None))
        assert joined.classes == ["AFIB", "SR"], name
        np.testing.assert_array_equal(joined.targets, expected, err_msg=name)
    pd.DataFrame({"key": keys, "rate": ["slow", "fast", "slow", "mid", "fast", "slow"]}).to_csv(
        tmp_path / "category.csv", index=False)
    category = join_labels(emb, read_labels(tmp_path / "category.csv", ["key"], None, None))
    assert category.classes == ["fast", "mid", "slow"] and category.targets[:, 2].tolist() == [1, 0, 1, 0, 0, 1]
    binary = join_labels(emb, read_labels(tmp_path / "columns.csv", ["key"], ["SR"], None))
    assert binary.classes == ["SR"] and binary.targets[:, 0].tolist() == sr


def test_rows_without_labels_and_labels_without_rows_are_counted(tmp_path):
    keys = [f"p1/{i:03d}.hea" for i in range(10)]
    vectors = [None if i == 4 else [float(i), 1.0] for i in range(10)]  # row 4 has no embedding
    files = write_dataset(tmp_path / "staged", keys, vectors, key_column="file_path", study_id=list(range(10)))
    # The labels name the dataset's key column (file_path); join_on: key finds it.
    labels = pd.DataFrame({"file_path": keys[:7] + ["p1/900.hea", "p1/901.hea"], "y": [1, 0, None, 1, 0, 1, 0, 1, 0],
                           "split": ["train"] * 5 + ["test", "other"] + ["test"] * 2})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    emb = read_embeddings(files, "key")
    assert emb.join_column == "file_path"
    table = read_labels(tmp_path / "labels.csv", ["key", emb.key_column], None, "split")
    joined = join_labels(emb, table, {"train": ["train"], "test": ["test"]})
    c = joined.counts
    assert (c["dataset_rows"], c["rows_without_label"], c["labels_without_row"]) == (10, 3, 2)
    assert c["labels_without_row_examples"] == ["p1/900.hea", "p1/901.hea"]
    assert (c["rows_with_missing_label"], c["rows_without_usable_embedding"], c["rows_outside_split"]) == (1, 1, 1)
    assert c["rows_evaluated"] == 4 == len(joined.targets)
    assert joined.split.tolist() == ["train", "train", "train", "test"]
    assert joined.vectors[:, 0].tolist() == [0, 1, 3, 5] and joined.targets[:, 0].tolist() == [1, 0, 1, 1]
    # On a metadata column: the CSV's study_id (text) meets the dataset's integers.
    pd.DataFrame({"study_id": ["3", "5"], "y": [1, 0]}).to_csv(tmp_path / "studies.csv", index=False)
    by_study = join_labels(read_embeddings(files, "study_id"), read_labels(tmp_path / "studies.csv", ["study_id"],
                                                                          None, None))
    assert by_study.vectors[:, 0].tolist() == [3, 5] and by_study.counts["rows_without_label"] == 8
    pd.DataFrame({"study_id": [3, 3], "y": [1, 0]}).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(LabelError, match="more than once"):
        read_labels(tmp_path / "twice.csv", ["study_id"], None, None)


STATEMENTS = pd.DataFrame(
    {"description": ["normal ECG", "inferior MI", "non-diagnostic T abnormalities", "LVH", "abnormal QRS",
                     "sinus rhythm", "atrial fibrillation", "sinus tachycardia"],
     "diagnostic": [1.0, 1.0, 1.0, 1.0, None, None, None, None],
     "form": [None, None, 1.0, None, 1.0, None, None, None],
     "rhythm": [None, None, None, None, None, 1.0, 1.0, 1.0],
     "diagnostic_class": ["NORM", "MI", "STTC", "HYP", None, None, None, None],
     "diagnostic_subclass": ["NORM", "IMI", "STTC", "LVH", None, None, None, None],
     "Statement Category": ["Normal/abnormal"] * 8},
    index=pd.Index(["NORM", "IMI", "NDT", "LVH", "ABQRS", "SR", "AFIB", "STACH"]))


def write_ptbxl(folder: Path, codes: list[dict], folds: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ids = range(1, len(codes) + 1)
    pd.DataFrame({"ecg_id": ids, "patient_id": [1000.0 + i for i in ids], "scp_codes": [str(c) for c in codes],
                  "strat_fold": folds, "filename_lr": [f"records100/00000/{i:05d}_lr" for i in ids],
                  "filename_hr": [f"records500/00000/{i:05d}_hr" for i in ids]}).to_csv(
        folder / "ptbxl_database.csv", index=False)
    STATEMENTS.to_csv(folder / "scp_statements.csv")


def test_ptbxl_tasks_and_folds_match_hand_computed_labels(tmp_path):
    write_ptbxl(tmp_path / "ptbxl", [{"NORM": 100.0, "SR": 0.0}, {"IMI": 80.0, "ABQRS": 0.0, "SR": 0.0},
                                     {"NDT": 50.0, "AFIB": 0.0}, {"LVH": 100.0, "NDT": 100.0, "STACH": 0.0},
                                     {"ABQRS": 0.0}, {"NORM": 100.0, "SR": 0.0}], [1, 2, 9, 10, 10, 3])
    keys = [f"records500/00000/{i:05d}_hr.hea" for i in (1, 2, 3, 4, 5, 999)]  # record 6 not embedded
    emb = read_embeddings(write_dataset(tmp_path / "staged", keys, np.eye(6)), "key")
    # task: classes, {embedded row: its labels}, records without a label of the task, labelled records not embedded
    expected = {"rhythm": (["AFIB", "SR", "STACH"], {0: ["SR"], 1: ["SR"], 2: ["AFIB"], 3: ["STACH"]}, 1, 1),
                "superdiagnostic": (["HYP", "MI", "NORM", "STTC"],
                                    {0: ["NORM"], 1: ["MI"], 2: ["STTC"], 3: ["HYP", "STTC"]}, 1, 1),
                "form": (["ABQRS", "NDT"], {1: ["ABQRS"], 2: ["NDT"], 3: ["NDT"], 4: ["ABQRS"]}, 2, 0)}
    for task, (classes, rows, unlabelled, not_embedded) in expected.items():
        table, info = ptbxl_labels(tmp_path / "ptbxl", task)
        assert table.classes == classes and info["records_without_task_label"] == unlabelled, task
        joined = join_labels(emb, table, EvaluationSettings(ptbxl_dir="x").split_map(), normalise=record_of)
        got = {int(np.argmax(v)): [classes[c] for c in np.flatnonzero(t)] for v, t in
               zip(joined.vectors, joined.targets, strict=True)}
        assert got == rows, task
        folds = {1: "train", 2: "train", 9: "validation", 10: "test"}
        assert joined.split.tolist() == [folds[f] for f, r in zip([1, 2, 9, 10, 10], range(5), strict=True)
                                         if r in rows], task
        assert joined.counts["labels_without_row"] == not_embedded, task
        assert joined.counts["rows_without_label"] == 6 - len(rows), task
    assert record_of("00000/00001_hr.hea") == record_of("ptb-xl/1.0.3/records500/00000/00001_hr.dat") == \
        "records500/00000/00001_hr"


def test_ptbxl_probe_drops_a_class_without_test_positives_and_says_so(tmp_path):
    codes, folds = [], []
    for i in range(60):
        fold = i % 10 + 1
        rhythm = {"AFIB": 0.0} if i % 3 == 0 else {"SR": 0.0}
        codes.append({"NORM": 100.0, **rhythm, **({"STACH": 0.0} if fold <= 8 and i % 4 == 1 else {})})
        folds.append(fold)
    write_ptbxl(tmp_path / "ptbxl", codes, folds)
    keys = [f"records500/00000/{i:05d}_hr.hea" for i in range(1, 61)]
    files = write_dataset(tmp_path / "staged", keys, np.random.default_rng(0).standard_normal((60, 8)))
    m = evaluate(EvaluationSettings(ptbxl_dir=str(tmp_path / "ptbxl"), task="rhythm", bootstrap=50), files).metrics
    assert m["task"] == "PTB-XL rhythm" and m["classes"] == ["AFIB", "SR"]
    assert m["dropped_classes"] == {"STACH": "0 positive(s) in test"}
    assert (m["n_train"], m["n_validation"], m["n_test"]) == (48, 6, 6)
    assert m["per_class"]["AFIB"]["positives"] == {"train": 16, "validation": 2, "test": 2}


def test_config_problems_name_the_key(tmp_path):
    (tmp_path / "labels.csv").write_text("key,y\n")
    assert [k for k, _ in config_problems({"enabled": True})] == ["evaluate.labels"]
    assert [k for k, _ in config_problems({"labels": "a.csv", "ptbxl_dir": "ptb-xl"})] == ["evaluate.labels"]
    assert config_problems({"labels": str(tmp_path / "labels.csv")}) == []
    assert [k for k, _ in config_problems({"labels": str(tmp_path / "nope.csv")})] == ["evaluate.labels"]
    assert [k for k, _ in config_problems({"labels": str(tmp_path / "labels.txt")})] == ["evaluate.labels"]
    assert [k for k, _ in config_problems({"ptbxl_dir": str(tmp_path), "join_on": "study_id",
                                           "split_column": "fold"})] == \
        ["evaluate.ptbxl_dir"] * 2 + ["evaluate.join_on", "evaluate.split_column"]


def test_workflow_plans_evaluate_only_when_enabled(tmp_path):
    labels = tmp_path / "my labels.csv"
    labels.write_text("key,y\n")
    (tmp_path / "evaluate.yaml").write_text(f"evaluate:\n  enabled: true\n  labels: {labels}\n")
    demo = str(REPO / "config" / "demo_ecg.yaml")
    on = snakemake(tmp_path, "-np", "--configfile", demo, str(tmp_path / "evaluate.yaml")).stdout
    assert "rule evaluate:" in on and "results/demo-ecg/evaluation/roc.png" in on
    command = on.split("rule evaluate:")[1].split("Shell command:")[1].split("\n")[0]
    assert '--settings=\'{"bootstrap": 1000,' in command and f'"labels": "{labels}"' in command  # one quoted word
    assert "--title='embedpipe ECG demo (synthetic ECGs, ECGFounder)'" in command
    assert "staged/philips.parquet" in on.split("rule evaluate:")[1].split("output:")[0]
    off = snakemake(tmp_path, "-n", "--configfile", demo).stdout
    assert "rule validate:" in off and "rule evaluate" not in off and "evaluation/" not in off
