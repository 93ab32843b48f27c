"""GOPT-style transformer (pronscore.heads.gopt): structure, masking, persistence through the
``hier`` run folder, the PCC loss term, and training on the tiny synthetic FEATURES_DIR of
tests/synthetic_features.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pronscore.errors import ModelError
from pronscore.heads.gopt import GoptScorer, sinusoid, word_positions
from pronscore.heads.hier_head import HierHead
from pronscore.heads.hier_inputs import InputSpec, collate, gop_columns, prepare_items
from pronscore.heads.hierarchical import HierarchicalScorer, HierConfig, build_scorer
from pronscore.training.hier import HierTrainOptions, _pcc_loss, batch_loss, save_run, train_seeds
from synthetic_features import make_split, random_phone_batch


def test_gopt_config_has_the_papers_sizes_and_one_token_per_aspect() -> None:
    model = build_scorer(HierConfig.gopt(84))
    assert isinstance(model, GoptScorer)
    layers = [m for m in model.modules() if isinstance(m, nn.TransformerEncoderLayer)]
    assert len(layers) == 3
    assert all(la.self_attn.embed_dim == 24 and la.self_attn.num_heads == 1 for la in layers)
    assert model.aspects.shape == (5, 24) and len(model.utt_head) == 5 and len(model.word_head) == 3
    # GOPT reports ~ 20k parameters for 84-d GOP inputs
    assert 15_000 < model.n_parameters() < 30_000, model.n_parameters()
    with pytest.raises(ModelError, match="arch"):
        build_scorer(HierConfig(arch="lstm"))


def test_word_positions_mark_begin_inside_end_and_single() -> None:
    mask = torch.tensor([[[True, True, True], [True, False, False], [False, False, False]]])
    assert word_positions(mask).tolist() == [[[1, 2, 3], [4, 0, 0], [0, 0, 0]]]
    enc = sinusoid(torch.tensor([0, 1, 500]), 24)
    assert enc.shape == (3, 24) and torch.equal(enc[0, 1::2], torch.ones(12))


def test_gopt_padding_never_leaks_and_positions_skip_padding() -> None:
    torch.manual_seed(0)
    model = build_scorer(HierConfig.gopt(8)).eval()
    x, ids = random_phone_batch(torch.Generator().manual_seed(1), [[2, 3, 1], [4, 1, 2, 5]], 8)
    out = model(x, ids)
    alone = model(x[:1, :3, :3], ids[:1, :3, :3])  # the first utterance, unpadded
    torch.testing.assert_close(out.utterance[:1], alone.utterance, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.word[:1, :3], alone.word, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.phone[:1, :3, :3], alone.phone, atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[ids == 0] = 1e3
    torch.testing.assert_close(out.utterance, model(x2, ids).utterance)
    assert torch.equal(out.phone[ids == 0], torch.zeros_like(out.phone[ids == 0]))
    assert ((out.utterance > 0) & (out.utterance < 1)).all() and out.utterance.shape == (2, 5)


def test_gopt_round_trips_through_the_hier_run_folder(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build_scorer(HierConfig.gopt(6, utt_dim=2, extra={"inputs": "gop+utt"}))
    model.save_pretrained(tmp_path)
    loaded = HierarchicalScorer.from_pretrained(tmp_path)  # builds the arch its config names
    assert isinstance(loaded, GoptScorer) and loaded.config == model.config
    x, ids = torch.randn(2, 3, 4, 6), torch.randint(1, 10, (2, 3, 4))
    u = torch.randn(2, 2)
    assert torch.equal(model.eval()(x, ids, u).utterance, loaded(x, ids, u).utterance)


def test_pcc_loss_is_zero_for_a_perfect_ranking_and_two_for_a_reversed_one() -> None:
    y = torch.tensor([[0.1, 0.2], [0.5, float("nan")], [0.9, 0.3], [0.4, 0.9]])
    assert _pcc_loss(2 * y + 1, y).item() == pytest.approx(0.0, abs=1e-6)
    assert _pcc_loss(-y, y).item() == pytest.approx(2.0, abs=1e-6)
    flat = torch.full((4, 1), 0.5)  # constant labels: no correlation to learn, no term
    assert _pcc_loss(torch.rand(4, 1), flat).item() == 0.0


def test_batch_loss_adds_the_weighted_pcc_term() -> None:
    dev = make_split(20, 1)
    items = prepare_items(dev, InputSpec.parse("gop"), None, gop_columns(dev.phones))
    batch = collate(items[:8])
    torch.manual_seed(0)
    model = build_scorer(HierConfig.gopt(items[0].x.shape[-1])).eval()
    mse, both = batch_loss(model, batch), batch_loss(model, batch, pcc_weight=0.5)
    assert both.item() > mse.item()  # an untrained model does not rank perfectly


@pytest.mark.parametrize("pcc_weight", [0.0, 0.5])
def test_gopt_learns_the_hidden_quality_and_serves(tmp_path: Path, pcc_weight: float) -> None:
    train, dev = make_split(160, 0), make_split(40, 1, prefix="d")
    opts = HierTrainOptions(
        inputs="gop", arch="gopt", epochs=30, seed=0, pcc_weight=pcc_weight, select_on="levels"
    )
    result = train_seeds(train, dev, opts, [0], n_boot=50, log=lambda s: None)
    m = result.runs[0]["metrics"]
    assert m["utterance"]["total"]["pcc"] > 0.6, m["utterance"]["total"]
    assert m["phone"]["accuracy"]["pcc"] > 0.5, m["phone"]["accuracy"]
    assert m["word"]["accuracy"]["pcc"] > 0.5, m["word"]["accuracy"]
    save_run(tmp_path / "run", result, {})
    head = HierHead.from_pretrained(tmp_path / "run")
    assert isinstance(head.model, GoptScorer)
    preds = head.predict_features(dev)
    a = preds[str(dev.utterances["id"][0])]
    assert 0 <= a.utterance.total <= 10 and all(0 <= p.score <= 2 for p in a.phones)


def test_refit_ensemble_and_a_mixed_ensemble_serve_what_they_average(tmp_path: Path) -> None:
    """`train hier --refit` (train + dev, fixed epochs, seeds 1,2 -> a seed ensemble) and
    `pronscore ensemble` (GBT + that, utterances and words averaged, phones the GBT's)."""
    import json

    from pronscore.cli import main
    from pronscore.features.extract import load_features
    from pronscore.heads.ensemble import EnsembleHead, average_assessments
    from pronscore.runs import load_predictor

    feats = tmp_path / "feats"
    for name, split in (("train", make_split(80, 0)), ("dev", make_split(30, 1, prefix="d"))):
        (feats / name).mkdir(parents=True)
        for table in ("utterances", "words", "phones"):
            getattr(split, table).to_parquet(feats / name / f"{table}.parquet")
    hier = tmp_path / "gopt"
    argv = ["train", "hier", "--features", str(feats), "--arch", "gopt", "--inputs", "gop+utt",
            "--refit", "--stop-after", "2", "--epochs", "5", "--seeds", "1,2",
            "--out", str(hier)]  # fmt: skip
    assert main(argv) == 0
    refit = load_predictor(hier)
    assert isinstance(refit, EnsembleHead) and refit.names == ("seed-1", "seed-2")
    member = json.loads((hier / "members" / "seed-1" / "config.json").read_text())
    assert member["kind"] == "hier" and member["refit_epochs"] == 2
    assert member["train_info"]["options"]["stop_after"] == 2
    assert main(["train", "hier", "--features", str(feats), "--refit", "--out", "x"]) == 2
    # --cv: the median of the epochs its folds chose; a CV of another architecture is refused
    cv_dir = tmp_path / "cv"
    cv_dir.mkdir()
    folds = [{"selection": {"finetune": {"best_epoch": e, "best_dev_pcc": 0.5}}} for e in (1, 3, 4)]
    options = {
        "arch": "gopt",
        "inputs": "gop",
        "epochs": 6,
        "pcc_weight": 0.0,
        "select_on": "total",
    }
    (cv_dir / "cv.json").write_text(json.dumps({"folds": folds, "options": options}))
    one = tmp_path / "one"
    base = ["train", "hier", "--features", str(feats), "--refit", "--cv", str(cv_dir)]
    assert main([*base, "--arch", "gopt", "--out", str(one)]) == 0
    info = json.loads((one / "config.json").read_text())
    assert info["refit_epochs"] == 3 and info["train_info"]["options"]["epochs"] == 6
    assert main([*base, "--out", str(tmp_path / "two")]) == 2  # arch hier against a gopt CV
    assert not (tmp_path / "two").exists()

    gbt = tmp_path / "gbt"
    assert main(["train", "gop-gbt", "--features", str(feats), "--out", str(gbt), "--threads", "1",
                 "--bootstrap", "10"]) == 0  # fmt: skip
    mixed = tmp_path / "mixed"
    argv = ["ensemble", str(gbt), str(hier), "--levels", "utterance,word", "--out", str(mixed)]
    assert main([*argv, "--names", "gbt,gopt"]) == 0
    assert (mixed / "scorer.json").is_file() and (mixed / "members" / "gopt" / "members").is_dir()
    dev = load_features(feats, "dev")
    got = load_predictor(mixed).predict_features(dev)
    one, two = load_predictor(gbt).predict_features(dev), refit.predict_features(dev)
    uid = str(dev.utterances["id"][0])
    want = average_assessments([one[uid], two[uid]], levels=("utterance", "word"))
    assert got[uid] == want and got[uid].utterance.total != one[uid].utterance.total
    assert [p.score for p in got[uid].phones] == [p.score for p in one[uid].phones]
    assert main(["ensemble", str(gbt), "--out", str(tmp_path / "one")]) == 2
