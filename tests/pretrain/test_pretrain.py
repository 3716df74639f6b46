"""MyJEPA pretraining: masks, the model's gradient paths, data, checkpoints that the ecg_jepa family
loads, and a killed run that resumes onto the uninterrupted run's loss curve bit for bit."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support.pretrain import TINY, settings
from support.workflow import REPO, run_env

from embedpipe.pretrain import checkpoint
from embedpipe.pretrain.config import build_settings, read_config
from embedpipe.pretrain.data import BatchPlan, EmptyBatch, Key, MaskCollate, PretrainData, ecg_reader, open_sources
from embedpipe.pretrain.masks import BlockMasks
from embedpipe.pretrain.model import MyJepa, MyJepaConfig, encode_patches
from embedpipe.pretrain.schedule import WarmupCosine
from embedpipe.pretrain.train import PretrainStep

CURVE = ("step", "loss", "pred_loss", "sigreg_loss", "lr", "grad_norm", "samples", "skipped")




@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    """24 records of 2.4 s in mV at 500 Hz: sinusoids per lead plus noise."""
    rng = np.random.default_rng(0)
    t = np.arange(1200) / 500
    phase = rng.uniform(0, 2 * np.pi, (24, 12, 1))
    x = 0.3 * np.sin(2 * np.pi * 1.2 * t + phase) + 0.05 * rng.standard_normal((24, 12, 1200))
    path = tmp_path_factory.mktemp("dump") / "ecg.npy"
    np.save(path, x.astype(np.float32))
    return path


def curve(out: Path) -> list[tuple[str, ...]]:
    with open(out / "metrics.csv", newline="") as fh:
        return [tuple(row[c] for c in CURVE) for row in csv.DictReader(fh)]


def test_block_masks_partition_the_patches():
    for n, min_block in ((200, 10), (40, 4), (12, 10)):
        masks = BlockMasks(n, min_block=min_block)
        rng = np.random.default_rng(0)
        keeps = set()
        for _ in range(40):
            context, target = masks(3, rng)
            keep = context.shape[1]
            keeps.add(keep)
            assert math.ceil(0.15 * n) <= keep <= math.ceil(0.25 * n)
            for c, t in zip(context.tolist(), target.tolist(), strict=True):
                assert c == sorted(c) and t == sorted(t) and not set(c) & set(t)
                assert sorted(c + t) == list(range(n))
                runs = np.split(np.array(t), np.flatnonzero(np.diff(t) != 1) + 1)
                assert all(len(r) >= min(min_block, n - keep) for r in runs), runs
        if n == 200:  # the ratio is drawn over the whole range, once per batch
            assert min(keeps) <= 32 and max(keeps) >= 48
    a, b = (BlockMasks(200)(4, np.random.default_rng(5)) for _ in range(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_masked_encoding_is_the_inference_forward_on_the_kept_patches():
    model = MyJepa(MyJepaConfig.from_dict({k: v for k, v in TINY.items() if k in MyJepaConfig.__annotations__}))
    x = torch.randn(2, 12, 1000)
    everything = torch.arange(40).expand(2, -1)
    assert torch.equal(encode_patches(model.encoder, x, everything), model.encoder(x)[1])
    # Positions are added before dropping: a kept patch's token does not depend on its index in the list.
    keep = torch.tensor([[3, 17, 30], [3, 17, 30]])
    y = x.clone()
    y[:, :, 0:25] = 0  # a patch that is not kept
    assert torch.allclose(encode_patches(model.encoder, x, keep), encode_patches(model.encoder, y, keep), atol=1e-6)


def test_gradients_reach_the_encoder_through_the_context_and_the_full_pass():
    config = MyJepaConfig.from_dict({k: v for k, v in TINY.items() if k in MyJepaConfig.__annotations__})
    torch.manual_seed(0)
    model = MyJepa(config)
    context, target = BlockMasks(40, min_block=4)(8, np.random.default_rng(0))
    batch = {"x": torch.randn(8, 12, 1000), "context": context, "target": target, "sigreg_seed": 1}

    def encoder_grad(part: str = "loss", cut: str | None = None) -> torch.Tensor:
        model.zero_grad()
        original = getattr(model, cut) if cut else None
        if cut:  # that pass gives the same values, but no gradient
            setattr(model, cut, lambda *a: original(*a).detach())
        try:
            out = model(batch)
        finally:
            if cut:
                delattr(model, cut)
        assert all(torch.isfinite(v) for v in out.values())
        out[part].backward()
        return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                          for p in model.encoder.parameters()])

    total = encoder_grad()
    through_context = encoder_grad(cut="encode_full")
    through_full = encoder_grad(cut="encode_context")
    assert through_context.abs().sum() > 0 and through_full.abs().sum() > 0
    assert torch.allclose(through_context + through_full, total, atol=1e-7, rtol=1e-4)  # the two paths, and no more
    # The targets are not detached: the prediction loss alone reaches the encoder through the full pass.
    assert encoder_grad("pred_loss", cut="encode_context").abs().sum() > 0
    assert encoder_grad("sigreg_loss", cut="encode_context").abs().sum() > 0


def test_warmup_cosine_schedule():
    s = WarmupCosine(1e-3, 1e-6, warmup=10, total=110)
    assert s.lr(0) == pytest.approx(1e-6) and s.lr(5) == pytest.approx((1e-6 + 1e-3) / 2)
    assert s.lr(10) == pytest.approx(1e-3) and s.lr(60) == pytest.approx((1e-3 + 1e-6) / 2)
    assert s.lr(110) == pytest.approx(1e-6) and s.lr(500) == pytest.approx(1e-6)
    assert all(s.lr(i) >= s.lr(i + 1) for i in range(10, 120))


def test_batch_plan_resumes_where_it_stopped_and_splits_ranks():
    whole = BatchPlan(30, 4, seed=1)
    assert whole.per_epoch == 7
    first = [b for _, b in zip(range(20), whole, strict=False)]
    assert [k.batch for k in first[9]] == [9] * 4 and first[9][0].epoch == 1
    resumed = [b for _, b in zip(range(11), BatchPlan(30, 4, seed=1, start=9), strict=False)]
    assert resumed == first[9:]
    epoch0 = [k.index for b in first[:7] for k in b]
    assert len(set(epoch0)) == 28 and epoch0 != [k.index for b in first[7:14] for k in b]
    ranks = [next(iter(BatchPlan(30, 4, seed=1, rank=r, world=2))) for r in (0, 1)]
    assert not {k.index for k in ranks[0]} & {k.index for k in ranks[1]}


def test_ecg_files_go_through_the_ecg_jepa_reader(tmp_path):
    from embedpipe_demo.ecg import synthetic_ecg, write_mimic_record

    rng = np.random.default_rng(0)
    good = [write_mimic_record(tmp_path / "ecg", 1000 + i, 2000 + i, synthetic_ecg(3.0, 500, rng), 500)
            for i in range(3)]
    short = write_mimic_record(tmp_path / "ecg", 1009, 2009, synthetic_ecg(1.5, 500, rng), 500)
    (tmp_path / "ecg" / "broken.xml").write_text("<restingecgdata>")
    reader = ecg_reader(patch=25)
    sources = open_sources([f"demo={tmp_path / 'ecg'}"], reader)
    dataset = PretrainData(sources, crop=1000, seed=0)
    names = sources[0].paths
    items = {names[k]: dataset[Key(0, 0, k)] for k in range(len(dataset))}
    for path in good:
        item = items[str(path)]
        whole = reader.prepare(str(path)).sample  # extract's preprocessing, cropped
        assert item.error is None
        assert any(torch.equal(whole[:, s:s + 1000], item.signal) for s in range(whole.shape[1] - 999))
    assert "shorter than a 1000-sample crop" in items[str(short)].error
    assert "broken.xml" in items[str(tmp_path / "ecg" / "broken.xml")].error
    collate = MaskCollate(BlockMasks(40, min_block=4), seed=0)
    batch = collate(list(items.values()))
    assert batch["x"].shape == (3, 12, 1000) and len(batch["errors"]) == 2
    # one readable record is no batch (the projector's BatchNorm): one line naming a bad record
    with pytest.raises(EmptyBatch, match=r"batch 0: 1 of its 3 records could be read.*shorter than"):
        collate([items[str(good[0])], items[str(short)], items[str(tmp_path / "ecg" / "broken.xml")]])
    # The same run in a decode worker: the broken records are skipped and counted.
    out = tmp_path / "run"
    assert PretrainStep(settings(out, [str(tmp_path / "ecg")], steps=2, batch_size=5, num_workers=1)).run() == 0
    rows = curve(out)
    assert [r[0] for r in rows] == ["1", "2"] and sum(int(r[-2]) + int(r[-1]) for r in rows) == 10


def test_dump_is_normalised_as_the_reader_normalises(dump):
    reader = ecg_reader(patch=25)
    source = open_sources([str(dump)], reader)[0]
    raw = np.load(dump)[3]
    assert np.array_equal(source.load(3).numpy(), reader.normalise(raw))
    assert np.array_equal(open_sources([str(dump)], reader, normalise_dumps=False)[0].load(3).numpy(), raw)
    bad = dump.with_name("bad.npy")
    np.save(bad, np.zeros((2, 5000, 12), np.float32))  # ECG-JEPA's channels-last dump
    with pytest.raises(ValueError, match=r"\[N, 12, samples\]"):
        open_sources([str(bad)], reader)


KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(int(sys.argv[1]))
    from embedpipe.pretrain import metrics
    append = metrics.MetricsCsv.append
    def append_then_die(self, row):
        append(self, row)
        if row["step"] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: as the OOM killer or a node loss
    metrics.MetricsCsv.append = append_then_die
    sys.path.insert(0, sys.argv[3])
    import pretrain
    sys.exit(pretrain.main(sys.argv[4:]))
""")


def test_killed_run_resumes_onto_the_same_loss_curve_bit_for_bit(dump, tmp_path):
    n, m = 4, 3
    options = {k: v for k, v in TINY.items() if k != "batch_size"} | {"checkpoint_every": n}
    uninterrupted = tmp_path / "whole"
    assert PretrainStep(settings(uninterrupted, [str(dump)], steps=n + m, checkpoint_every=n)).run() == 0

    killed = tmp_path / "killed"
    argv = ["--data", f"ecg={dump}", "--out", str(killed), "--config", "ViTS_mimic", "--steps", str(n + m),
            "--batch_size", "8", "--amp", "float32", "--seed", "0", "--options", json.dumps(options)]
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(torch.get_num_threads()), str(n + 1),
                            str(REPO / "workflow" / "scripts"), *argv], env=run_env(), capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert [p.name for p in (killed / "checkpoints").iterdir()] == ["step_0000004.pt"]
    assert len(curve(killed)) == n + 1  # a step past the checkpoint was logged before the kill

    assert PretrainStep(settings(killed, [str(dump)], steps=n + m, checkpoint_every=n)).run() == 0
    resumed, whole = curve(killed), curve(uninterrupted)
    assert [r[0] for r in resumed] == [str(s) for s in range(1, n + m + 1)]  # each step once
    assert resumed == whole
    a, b = checkpoint.load(uninterrupted / "final.pt"), checkpoint.load(killed / "final.pt")
    assert a["step"] == b["step"] == n + m
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(x, y) for i in a["optimizer"]["state"] for x, y in
               zip(a["optimizer"]["state"][i].values(), b["optimizer"]["state"][i].values(), strict=True))


def test_checkpoint_loads_through_the_ecg_jepa_encoder(dump, tmp_path):
    from embedpipe.encoders import build_encoder
    from embedpipe.encoders.batch import Batch
    from embedpipe_demo.ecg import synthetic_ecg, write_mimic_record

    out = tmp_path / "run"
    assert PretrainStep(settings(out, [str(dump)], steps=3, checkpoint_every=2)).run() == 0
    state = checkpoint.load(out / "final.pt")
    assert {"model", "config", "optimizer", "scheduler", "step", "rng", "train"} <= set(state)
    model = MyJepa(MyJepaConfig.from_dict(state["train"]["model"]))
    model.load_state_dict(state["model"])
    model.eval()

    # A record through extract's whole path (its reader, the checkpoint's config, the family's model)
    # and through pretraining's reader and the trained encoder itself.
    rng = np.random.default_rng(1)
    records = [str(write_mimic_record(tmp_path / "ecg", 100 + i, 200 + i, synthetic_ecg(2.0, 500, rng), 500))
               for i in range(3)]
    encoder = build_encoder("ecg_jepa", {"model": "myjepa", "path": str(out / "final.pt"), "device": "cpu"})
    encoder.model.ensure_loaded(torch.device("cpu"))
    rows = encoder.model.encode(Batch([encoder.reader.prepare(p).sample for p in records]))
    x = torch.stack([open_sources([str(tmp_path / "ecg")], ecg_reader(patch=25))[0].load(i) for i in range(3)])
    with torch.no_grad():
        own = model.encoder(x)[1].mean(1)
    assert torch.allclose(torch.from_numpy(rows["embedding"]), own, atol=1e-6)
    assert not torch.allclose(own, MyJepa(model.config).encoder(x)[1].mean(1), atol=1e-3)  # trained weights, not fresh


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    import random

    checkpoint.save(tmp_path / "c.pt", {"rng": checkpoint.rng_state()})
    draws = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "c.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_sigterm_checkpoints_and_the_rerun_finishes(dump, tmp_path, monkeypatch):
    from embedpipe.pretrain import metrics

    out = tmp_path / "run"
    append = metrics.MetricsCsv.append

    def append_then_term(self, row):
        append(self, row)
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(metrics.MetricsCsv, "append", append_then_term)
    assert PretrainStep(settings(out, [str(dump)], steps=5, checkpoint_every=10)).run() == 128 + signal.SIGTERM
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_0000002.pt"] and not (out / "final.pt").exists()
    monkeypatch.setattr(metrics.MetricsCsv, "append", append)
    assert PretrainStep(settings(out, [str(dump)], steps=5, checkpoint_every=10)).run() == 0
    assert [r[0] for r in curve(out)] == ["1", "2", "3", "4", "5"] and (out / "final.pt").is_file()
    # Resuming with settings that change the curve is refused, naming them.
    assert PretrainStep(settings(out, [str(dump)], steps=5, learning_rate=0.1)).run() == 1


def test_a_checkpoint_that_fails_while_written_leaves_the_previous_one(dump, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def fail_third(obj, f, *a, **kw):
        calls.append(f)
        if len(calls) < 3:
            return real_save(obj, f, *a, **kw)
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", fail_third)
    assert PretrainStep(settings(out, [str(dump)], steps=4, checkpoint_every=1)).run() == 1
    assert "No space left on device" in caplog.text and "resumes from the newest checkpoint" in caplog.text
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000001.pt", "step_0000002.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert PretrainStep(settings(out, [str(dump)], steps=4, checkpoint_every=1)).run() == 0
    assert [r[0] for r in curve(out)] == ["1", "2", "3", "4"]


def test_wandb_is_optional_and_logs_when_enabled(dump, tmp_path, monkeypatch, caplog):
    import types

    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed: a one-line error before any step
    assert PretrainStep(settings(tmp_path / "a", [str(dump)], steps=1, wandb=True)).run() == 1
    assert "wandb is enabled but not installed" in caplog.text and not (tmp_path / "a" / "metrics.csv").exists()

    logged, inits = [], []
    run = types.SimpleNamespace(log=lambda values, step: logged.append((step, values)), finish=lambda: None)
    fake = types.SimpleNamespace(init=lambda **kw: inits.append(kw) or run,
                                 util=types.SimpleNamespace(generate_id=lambda: "run123"))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = tmp_path / "b"
    assert PretrainStep(settings(out, [str(dump)], steps=2, wandb=True, wandb_project="p")).run() == 0
    assert [step for step, _ in logged] == [1, 2]
    assert {"train/loss", "train/pred_loss", "train/sigreg_loss", "train/lr", "gradients/norm"} <= set(logged[0][1])
    assert inits[0]["project"] == "p" and inits[0]["id"] == "run123" and inits[0]["config"]["steps"] == 2
    assert (out / "wandb_id.txt").read_text().strip() == "run123"  # a resumed job continues this wandb run
    assert PretrainStep(settings(tmp_path / "c", [str(dump)], steps=1)).run() == 0 and len(inits) == 1


def test_config_reads_presets_yaml_and_ecg_jepa_names(tmp_path):
    assert build_settings("o", ["d.npy"], read_config("ViTS_mimic")).model == MyJepaConfig()
    assert MyJepaConfig().dim == 384 and MyJepaConfig().pred_dim == 192 and MyJepaConfig().sigreg_lambda == 0.02
    path = tmp_path / "ViTS_mimic.yaml"
    path.write_text("channels: [I, II, III, AVR, AVL, AVF, V1, V2, V3, V4, V5, V6]\nsampling_frequency: 500\n"
                    "dim: 192\nlearning_rate_warmup_steps: 5\nopt_betas: [0.9, 0.95]\ngradient_clip: 0\n"
                    "learning_rate: 1e-3\ndropout: 0.\n")
    s = build_settings("o", ["d.npy"], read_config(str(path)))
    assert (s.model.dim, s.warmup_steps, s.betas, s.grad_clip, s.learning_rate) == (192, 5, (0.9, 0.95), 0.0, 1e-3)
    for bad, message in (({"encoder_momentum": 0.99}, "not a setting"), ({"dropout": 0.1}, "supports only"),
                         ({"steps": "many"}, "not a number"), ({"channel_size": 1010}, "whole number of 25")):
        with pytest.raises(ValueError, match=message):
            build_settings("o", [], bad)


DDP_CHILD = textwrap.dedent("""
    import os, socket, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    def worker(rank, out, port, argv):
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                          LOCAL_RANK=str(rank))
        from embedpipe.pretrain.sigreg import sigreg
        dist.init_process_group("gloo")
        z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.2
        half = z[rank * 32:(rank + 1) * 32].clone().requires_grad_()
        value = sigreg(half, torch.Generator().manual_seed(5), slices=16)
        value.backward()
        torch.save({"value": value.detach(), "grad": half.grad}, Path(out) / f"sigreg_{rank}.pt")
        sys.path.insert(0, argv[0])
        import pretrain
        code = pretrain.main(argv[1:])
        dist.destroy_process_group()
        sys.exit(code)

    if __name__ == "__main__":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.start_processes(worker, args=(sys.argv[1], port, sys.argv[2:]), nprocs=2, start_method="fork")
""")


def test_ddp_two_ranks_on_the_cpu(dump, tmp_path):
    from embedpipe.pretrain.sigreg import sigreg

    out = tmp_path / "run"
    options = {k: v for k, v in TINY.items() if k != "batch_size"} | {"checkpoint_every": 2}
    argv = [str(REPO / "workflow" / "scripts"), "--data", str(dump), "--out", str(out), "--steps", "2",
            "--batch_size", "8", "--options", json.dumps(options)]
    child = subprocess.run([sys.executable, "-c", DDP_CHILD, str(tmp_path), *argv], env=run_env(),
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    # SIGReg of the global batch on every rank; each rank's samples get W × their share of its
    # gradient, which DDP's mean over the ranks turns into the global statistic's gradient.
    z = (torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.2).requires_grad_()
    value = sigreg(z, torch.Generator().manual_seed(5), slices=16)
    value.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"sigreg_{rank}.pt")
        assert torch.allclose(got["value"], value.detach(), rtol=1e-5)
        assert torch.allclose(got["grad"], 2 * z.grad[rank * 32:(rank + 1) * 32], rtol=1e-4, atol=1e-7)
    rows = curve(out)  # one CSV (rank 0's), the global batch in each row
    assert [(r[0], r[-2]) for r in rows] == [("1", "8"), ("2", "8")]
    assert checkpoint.load(out / "final.pt")["world_size"] == 2
    assert child.stderr.count("step 1/2") == 1  # one progress log, not one per rank


def test_the_script_with_decode_workers_ends_and_leaves_no_worker(tmp_path):
    # The batch plan never ends, so nothing but the step stops the DataLoader's workers; they ignore
    # SIGTERM, and one left alive hung the job in multiprocessing's exit handler (WFDB files: a
    # reference cycle kept the iterator, and so its workers, alive to the end).
    from embedpipe_demo.ecg import make_demo_ecg

    make_demo_ecg(tmp_path / "ecgs", ["p1000"], 12, seed=0)
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "workflow" / "scripts" / "pretrain.py"), "--data", str(tmp_path / "ecgs"),
           "--out", str(out), "--config", "tiny", "--steps", "3", "--batch_size", "8", "--num_workers", "1"]
    with subprocess.Popen(cmd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            _, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            for pid in [*workers, str(proc.pid)]:
                os.kill(int(pid), signal.SIGKILL)
            pytest.fail(f"pretrain.py did not exit after its last step; its workers {workers} were still alive")
    assert proc.returncode == 0, err[-3000:]
    assert [int(r[0]) for r in curve(out)] == [1, 2, 3] and (out / "final.pt").is_file()
    assert "still alive" not in err  # stopped by the step itself, not by the last-resort kill
