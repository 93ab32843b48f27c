"""SSL training: real CTC, cached-feature equivalence, the CLI end to end on a tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pronscore.acoustic.encoders import build_backbone, default_feature_extractor
from pronscore.constants import SAMPLE_RATE, UTTERANCE_ASPECTS
from pronscore.models.ssl_inputs import AudioScores, pad_batch, phone_ids_of
from pronscore.training.ssl import pooled_features
from test_ssl_models import tiny_config, tiny_scorer, toy_batch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads; on a shared machine they lose a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_dataset(root: Path, n_train: int = 12, n_dev: int = 6) -> Path:
    """A prepared dataset of short synthetic clips whose scores follow their loudness."""
    from datasets import Dataset, DatasetDict

    from pronscore.dataset import dataset_features

    rng = np.random.default_rng(0)

    def rows(split: str, n: int) -> list[dict]:
        out = []
        for i in range(n):
            level = rng.uniform(0.05, 1.0)
            samples = rng.standard_normal(int(SAMPLE_RATE * rng.uniform(0.2, 0.4))) * level
            score = float(np.clip(10 * level, 0, 10))
            out.append({
                "id": f"{split}{i:03d}", "speaker": f"{split}{i % 3}", "age": 20,
                "gender": "m", "text": "WE CALL IT BEAR",
                "audio": samples.astype(np.float32).tolist(),
                "duration": samples.size / SAMPLE_RATE,
                **{a: score for a in UTTERANCE_ASPECTS},
                "words": [
                    {"text": "WE", "accuracy": score, "stress": 10.0, "total": score,
                     "phones": ["W", "IY0"], "phones_accuracy": [2.0, 2.0]},
                    {"text": "CALL", "accuracy": score, "stress": 10.0, "total": score,
                     "phones": ["K", "AO0", "L"], "phones_accuracy": None},
                ],
            })  # fmt: skip
        return out

    feats = dataset_features()
    dd = DatasetDict({
        "train": Dataset.from_list(rows("train", n_train), features=feats),
        "dev": Dataset.from_list(rows("dev", n_dev), features=feats),
    })  # fmt: skip
    dd.save_to_disk(str(root / "data"))
    return root / "data"


def test_phone_ids_drop_stress_and_reserve_blank():
    ids = phone_ids_of([{"phones": ["W", "IY0"]}, {"phones": ["K", "AO1", "L"]}])
    assert ids.tolist() == [36, 18, 20, 4, 21]  # PHONES index + 1; 0 is the CTC blank


def test_real_ctc_loss_decreases_on_a_toy_batch():
    model = tiny_scorer("wav2vec2", "ctc", ctc_weight=1.0).train()
    model.backbone.config.hidden_dropout = 0.0
    x, mask = toy_batch("wav2vec2")
    phones = torch.tensor([[5, 9, 12, 5], [7, 7, 3, 0]])  # repeats need a blank between them
    lengths = torch.tensor([4, 3])
    labels = torch.full((2, 5), 0.5)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(x, mask, labels=labels, phone_ids=phones, phone_lengths=lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["ctc_loss"]))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("family", ["wavlm", "whisper"])
def test_cached_pooled_features_give_the_end_to_end_prediction(family, tmp_path):
    model = tiny_scorer(family, "frozen", layer_sum=True).eval()
    data = AudioScores(
        _load(write_dataset(tmp_path, 3, 1), "train"), family,
        default_feature_extractor(tiny_config(family)), UTTERANCE_ASPECTS,
    )  # fmt: skip
    pooled = pooled_features(model, data)
    batch = pad_batch([data[i] for i in range(len(data))])
    with torch.no_grad():
        cached = model(pooled=torch.from_numpy(pooled))["logits"]
        e2e = model(batch["input_values"], batch["attention_mask"])["logits"]
    torch.testing.assert_close(cached, e2e, atol=1e-5, rtol=0)


def _load(path: Path, split: str):
    from pronscore.dataset import load_split

    return load_split(path, split)


def save_tiny_backbone(root: Path, family: str = "hubert") -> Path:
    """A local backbone folder: the same code path as a hub checkpoint."""
    cfg = tiny_config(family)
    folder = root / f"tiny-{family}"
    torch.manual_seed(0)
    build_backbone(cfg).save_pretrained(str(folder))
    default_feature_extractor(cfg).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [("ctc", ["--pooling", "attention"]), ("frozen", ["--cache-features", "--layer-sum"])],
)
def test_train_cli_writes_a_run_that_evaluate_loads(strategy, extra, tmp_path, capsys):
    from pronscore.cli import main
    from pronscore.dataset import load_split
    from pronscore.runs import load_predictor

    data = write_dataset(tmp_path)
    backbone = save_tiny_backbone(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "ssl", "--data", str(data), "--backbone", str(backbone),
            "--strategy", strategy, "--out", str(run), "--max-steps", "3",
            "--batch-size", "4", "--lr", "1e-3", *extra]  # fmt: skip
    assert main(argv) == 0
    names = {p.name for p in run.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "trainer_state.json",
            "args.json", "metrics.json", "README.md"} <= names  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "ssl" and config["strategy"] == strategy
    card = (run / "README.md").read_text()
    assert strategy in card and str(data.resolve()) in card
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_metric"] is not None  # selected on dev mean PCC
    hyps = load_predictor(run).predict_rows(load_split(data, "dev"))
    assert sorted(hyps) == [f"dev{i:03d}" for i in range(6)]
    totals = [h.utterance.total for h in hyps.values()]
    assert all(0.0 <= t <= 10.0 for t in totals)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_utterances"] == 6 and "total" in metrics["utterance"]
    capsys.readouterr()
    preds = tmp_path / "preds.jsonl"
    argv = ["evaluate", str(run), "--data", str(data), "--json", "--bootstrap", "10"]
    assert main([*argv, "--predictions", str(preds)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["scored_by"] == "scorer"  # SSL runs score single recordings too
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    # the Scorer rounds scores to 3 decimals; otherwise the split predictor's numbers
    got = {r["id"]: r["utterance"]["total"] for r in lines}
    assert got == pytest.approx({k: h.utterance.total for k, h in hyps.items()}, abs=1e-3)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_extract_then_pca_writes_json_and_png(suffix, tmp_path):
    from pronscore.cli import main
    from pronscore.commands.extract import read_arrays

    data = write_dataset(tmp_path)
    backbone = save_tiny_backbone(tmp_path, "wav2vec2")
    files = {}
    for split in ("train", "dev"):
        files[split] = tmp_path / f"{split}{suffix}"
        argv = ["extract", "--backbone", str(backbone), "--data", str(data), "--split", split,
                "--layer", "1", "--out", str(files[split])]  # fmt: skip
        assert main(argv) == 0
    arrays = read_arrays(files["train"])
    assert arrays["features"].shape == (12, 16) and arrays["labels"].shape == (12, 5)
    assert bytes(arrays["ids"]).decode().split("\n")[0] == "train000"
    frames = tmp_path / f"frames{suffix}"
    argv = ["extract", "--backbone", str(backbone), "--data", str(data), "--split", "dev",
            "--pooling", "none", "--out", str(frames)]  # fmt: skip
    assert main(argv) == 0
    f = read_arrays(frames)
    assert f["offsets"][0] == 0 and f["offsets"][-1] == len(f["frames"]) and len(f["offsets"]) == 7
    out = tmp_path / "pca"
    argv = ["analyze", "pca", str(files["train"]), "--out", str(out), "--eval", str(files["dev"])]
    assert main(argv) == 0
    result = json.loads((out / "pca.json").read_text())
    ratios = result["explained_variance_ratio"]
    assert ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1 + 1e-9
    assert len(result["pc_score_pcc"]["total"]) == 10
    assert set(result["pc_subset"]["pcc_by_k"]) >= {"1", "2", "5", "10"}
    assert (out / "pca_scatter.png").stat().st_size > 1000
