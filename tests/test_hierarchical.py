"""Hierarchical attention scorer (Lin & Wang 2021): structure, masking, persistence, pooling,
and a tiny end-to-end training run on a synthetic FEATURES_DIR."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pronscore.constants import PHONE_SCALE, UTTERANCE_ASPECTS, WORD_SCALE
from pronscore.errors import ModelError
from pronscore.features.deep import pool_phones, whisper_model, write_pooled
from pronscore.features.extract import load_features
from pronscore.heads.hier_head import HierHead, predict_items
from pronscore.heads.hier_inputs import InputSpec, build_items, collate, phone_vectors
from pronscore.heads.hierarchical import HierarchicalScorer, HierConfig, phone_id
from pronscore.text import PHONES
from pronscore.training.hier import FitOptions, HierTrainOptions, fit, save_run, train_seeds
from pronscore.training.hier_teacher import relabel
from synthetic_features import random_phone_batch

PAPER_PARAMS = 20_289


def test_paper_config_parameter_count_and_structure() -> None:
    model = HierarchicalScorer(HierConfig())  # 256-d input, d=32, 4 heads, one output
    n = model.n_parameters()
    print(f"hierarchical scorer, paper config: {n} parameters (paper: {PAPER_PARAMS})")
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.05
    attns = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attns) == 2 and all(a.num_heads == 4 and a.embed_dim == 32 for a in attns)
    norms = [m.normalized_shape for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms == [(256,), (32,), (32,)]  # frame, phone, sentence
    assert model.proj.in_features == 256 and model.proj.out_features == 32
    assert model.phone_emb.embedding_dim == 32 and model.phone_emb.num_embeddings > len(PHONES)
    assert model.utt_head.out_features == 1


def test_averaging_switch_removes_attention() -> None:
    avg = HierarchicalScorer(HierConfig(attention=False))
    assert not any(isinstance(m, nn.MultiheadAttention) for m in avg.modules())
    assert avg.n_parameters() == HierarchicalScorer(HierConfig()).n_parameters() - 2 * 4224


@pytest.mark.parametrize("attention", [True, False])
def test_padding_never_leaks(attention: bool) -> None:
    torch.manual_seed(0)
    model = HierarchicalScorer(HierConfig.multi(8, attention=attention)).eval()
    gen = torch.Generator().manual_seed(1)
    x, ids = random_phone_batch(gen, [[2, 3, 1], [4, 1, 2, 5]], 8)
    out = model(x, ids)
    # the first utterance alone, unpadded
    alone = model(x[:1, :3, :3], ids[:1, :3, :3])
    torch.testing.assert_close(out.utterance[:1], alone.utterance, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.word[:1, :3], alone.word, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.phone[:1, :3, :3], alone.phone, atol=1e-5, rtol=1e-5)
    # garbage in the padded slots changes nothing
    x2 = x.clone()
    x2[ids == 0] = 1e3
    out2 = model(x2, ids)
    torch.testing.assert_close(out.utterance, out2.utterance)
    assert torch.equal(out2.phone[ids == 0], torch.zeros_like(out2.phone[ids == 0]))
    assert not out2.word_mask[0, 3]


def test_outputs_depend_on_inputs_and_phone_identity() -> None:
    torch.manual_seed(0)
    model = HierarchicalScorer(HierConfig.multi(8)).eval()
    x, ids = random_phone_batch(torch.Generator().manual_seed(2), [[3, 2]], 8)
    base = model(x, ids).utterance
    assert ((base > 0) & (base < 1)).all() and base.shape == (1, 5)
    # (a constant shift would be removed by the frame LayerNorm, as it should)
    assert not torch.allclose(base, model(x + torch.randn(x.shape), ids).utterance)
    ids2 = ids.clone()
    ids2[ids > 0] = ids[ids > 0] % len(PHONES) + 1
    assert not torch.allclose(base, model(x, ids2).utterance)


def test_save_pretrained_round_trip_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = HierConfig.multi(6, n_input_layers=3, extra={"inputs": "whisper:1-3"})
    model = HierarchicalScorer(config)
    with torch.no_grad():
        model.layer_logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
        model.in_mean.copy_(torch.randn(6))
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["kind"] == "hier" and (tmp_path / "model.safetensors").is_file()
    loaded = HierarchicalScorer.from_pretrained(tmp_path)
    assert loaded.config == config
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(2, 3, 4, 3, 6)
    ids = torch.randint(1, 10, (2, 3, 4))
    assert torch.equal(model.eval()(x, ids).utterance, loaded(x, ids).utterance)


def test_from_pretrained_bad_dir_is_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        HierarchicalScorer.from_pretrained(tmp_path)


def test_pool_phones_means_each_span_and_flags_missing_times() -> None:
    frames = np.arange(20, dtype=np.float32).reshape(2, 10, 1)  # 2 layers, 10 frames, 1 dim
    pooled, has = pool_phones(frames, [0.0, 0.2, np.nan, 0.95], [0.2, 0.5, np.nan, 1.5], 10.0)
    assert pooled.shape == (2, 4, 1)
    np.testing.assert_allclose(pooled[0, :, 0], [0.5, 3.0, 0.0, 9.0])
    np.testing.assert_allclose(pooled[1, :, 0], [10.5, 13.0, 0.0, 19.0])
    assert has.tolist() == [True, True, False, True]


def test_input_spec_parsing() -> None:
    assert InputSpec.parse("gop") == InputSpec(gop=True)
    s = InputSpec.parse("whisper:3-6+gop+ps-frames")
    assert s.whisper_layers == (3, 4, 5, 6) and s.gop and s.ps_frames
    assert InputSpec.parse("whisper:4").whisper_layers == (4,)
    assert InputSpec.parse("gop+utt").utt
    for bad in ("", "mfcc", "whisper:x", "utt"):
        with pytest.raises(ModelError):
            InputSpec.parse(bad)
    assert phone_id("AA") == 1 and phone_id("??") == len(PHONES) + 1


# --- a tiny synthetic FEATURES_DIR ---------------------------------------------------------


def _make_split(root: Path, split: str, n_utts: int, seed: int, deep: Path) -> None:
    """Utterances whose labels follow a hidden per-phone quality q: p_gop ~ q, frames ~ q."""
    rng = np.random.default_rng(seed)
    (root / split / "frames").mkdir(parents=True)
    urows, wrows, prows = [], [], []
    for u in range(n_utts):
        uid = f"{split}{u:04d}"
        n_words = int(rng.integers(2, 5))
        t, pi, qs = 0.1, 0, []
        for w in range(n_words):
            n_ph = int(rng.integers(1, 4))
            wq = []
            w_start = t
            for _ in range(n_ph):
                q = float(rng.uniform(0, 1))
                dur = float(rng.uniform(0.05, 0.15))
                prows.append(
                    {
                        "id": uid,
                        "word_index": w,
                        "phone_index": pi,
                        "phone": "AA1",
                        "base_phone": str(rng.choice(PHONES)),
                        "position": "I",
                        "start": t,
                        "end": t + dur,
                        "p_gop_forced": q + rng.normal(0, 0.1),
                        "p_duration": dur,
                        "y_score": PHONE_SCALE * q,
                        **{f"p_noise{k}": rng.normal() for k in range(6)},
                    }
                )
                wq.append(q)
                qs.append(q)
                t += dur
                pi += 1
            wrows.append(
                {
                    "id": uid,
                    "word_index": w,
                    "text": "W",
                    "start": w_start,
                    "end": t,
                    "y_accuracy": WORD_SCALE * np.mean(wq),
                    "y_stress": 10.0,
                    "y_total": WORD_SCALE * np.mean(wq),
                }
            )
        score = 10.0 * float(np.mean(qs))
        urows.append(
            {
                "id": uid,
                "status": "ok",
                "reason": None,
                "speaker": f"s{u % 7}",
                "age": 20,
                "gender": "f",
                **{f"y_{a}": score for a in UTTERANCE_ASPECTS},
            }
        )
        n_frames = int(t * 100) + 5
        ph = [r for r in prows if r["id"] == uid]
        scores = np.zeros((n_frames, 39), np.float32)
        for r in ph:
            scores[int(r["start"] * 100) : int(r["end"] * 100), 0] = r["y_score"]
        from safetensors.numpy import save_file

        save_file(
            {"phone_scores": scores, "nonspeech_scores": np.zeros((n_frames, 3), np.float32)},
            str(root / split / "frames" / f"{uid}.safetensors"),
        )
        # a 3-layer "encoder" at 50 frames/s whose middle layer carries the quality
        enc = rng.normal(0, 1, (3, n_frames // 2 + 1, 4)).astype(np.float32)
        for r in ph:
            enc[1, int(r["start"] * 50) : int(r["end"] * 50) + 1, 0] += 3 * r["y_score"]
        pooled, has = pool_phones(enc, [r["start"] for r in ph], [r["end"] for r in ph], 50.0)
        write_pooled(deep, uid, pooled, has)
    pd.DataFrame(urows).to_parquet(root / split / "utterances.parquet")
    pd.DataFrame(wrows).to_parquet(root / split / "words.parquet")
    pd.DataFrame(prows).to_parquet(root / split / "phones.parquet")


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("feats")
    deep = root / "deep"
    deep.mkdir()
    _make_split(root, "train", 160, 0, deep)
    _make_split(root, "dev", 40, 1, deep)
    return root, deep


def test_whisper_model_and_cache_come_from_arguments_or_environment(
    tiny_features, monkeypatch
) -> None:
    monkeypatch.delenv("PRONSCORE_WHISPER", raising=False)
    assert whisper_model() == "openai/whisper-base"
    monkeypatch.setenv("PRONSCORE_WHISPER", "models/enc")
    assert whisper_model() == "models/enc" and whisper_model("other/enc") == "other/enc"
    dev = load_features(tiny_features[0], "dev")
    with pytest.raises(ModelError, match=r"\[deep_cache\].*--deep-cache"):
        phone_vectors(dev, InputSpec.parse("whisper:0"), deep_cache=None, gop_cols=[])
    assert len(phone_vectors(dev, InputSpec.parse("gop"), deep_cache=None, gop_cols=[])) == 40


def test_items_group_phones_by_word_with_scaled_labels(tiny_features) -> None:
    root, deep = tiny_features
    split = load_features(root, "dev")
    spec = InputSpec.parse("gop+ps-frames+whisper:0-2")
    vecs = phone_vectors(split, spec, deep_cache=deep, gop_cols=["p_gop_forced", "p_duration"])
    items = build_items(split, vecs)
    it = items[0]
    g = split.phones[split.phones["id"] == it.id]
    assert it.x.shape[:2] == (g["word_index"].nunique(), g.groupby("word_index").size().max())
    assert it.x.shape[2:] == (3, 4 + 2 + 42)  # layers, whisper dim + gop + pooled frames
    assert (it.phone_ids > 0).sum() == len(g)
    assert np.nanmax(it.y_phone) <= 1.0 and 0.0 <= it.y_utt[0] <= 1.0
    b = collate(items[:5])
    assert b["x"].shape[0] == 5 and torch.isnan(b["yp"][b["ids"] == 0]).all()


@pytest.mark.parametrize("inputs", ["gop", "ps-frames", "whisper:0-2", "ps-frames+utt"])
def test_training_learns_the_hidden_quality(tiny_features, inputs: str) -> None:
    root, deep = tiny_features
    train, dev = load_features(root, "train"), load_features(root, "dev")
    opts = HierTrainOptions(inputs=inputs, epochs=30, deep_cache=str(deep), seed=0)
    result = train_seeds(train, dev, opts, [0], n_boot=50, log=lambda s: None)
    best, m = result.best, result.runs[0]["metrics"]
    assert m["utterance"]["total"]["pcc"] > 0.6, m["utterance"]["total"]
    assert m["phone"]["accuracy"]["pcc"] > 0.5, m["phone"]["accuracy"]
    if inputs.startswith("whisper"):  # the learned layer weights find the informative layer
        w = torch.softmax(best.model.layer_logits.detach(), 0)
        assert int(w.argmax()) == 1


def test_saved_run_predicts_all_levels_in_range(tiny_features, tmp_path: Path) -> None:
    root, deep = tiny_features
    train, dev = load_features(root, "train"), load_features(root, "dev")
    opts = HierTrainOptions(inputs="gop", epochs=3, deep_cache=str(deep))
    result = train_seeds(train, dev, opts, [1, 2], n_boot=20, log=lambda s: None)
    best, run_dir = result.best, tmp_path / "run"
    save_run(run_dir, result, {"features_dir": str(root), "deep_cache": str(deep)})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["seeds"]) == 2
    mean = metrics["mean"]["utterance"]["total"]
    by_seed = [r["metrics"]["utterance"]["total"]["pcc"] for r in metrics["seeds"]]
    assert mean["pcc"] == pytest.approx(np.mean(by_seed)) and mean["n"] == len(dev.utterances)
    assert mean["ci95"][0] < mean["pcc"] < mean["ci95"][1]  # a bootstrap CI of that mean
    head = HierHead.from_pretrained(run_dir)
    preds = head.predict_features(dev)
    assert set(preds) == set(dev.utterances["id"])
    a = preds[dev.utterances["id"][0]]
    assert 0 <= a.utterance.total <= 10 and all(0 <= w.total <= 10 for w in a.words)
    assert all(0 <= p.score <= 2 for p in a.phones) and a.phones[0].start is not None
    # the loaded model reproduces the in-memory one exactly
    items = build_items(
        dev,
        phone_vectors(
            dev,
            InputSpec.parse("gop"),
            deep_cache=deep,
            gop_cols=head.model.config.extra["gop_columns"],
        ),
    )
    p1 = predict_items(best.model, items[:3])
    p2 = predict_items(head.model, items[:3])
    for k in p1:
        assert np.array_equal(p1[k]["utterance"], p2[k]["utterance"])


def test_relabel_writes_predictions_as_labels(tiny_features) -> None:
    root, deep = tiny_features
    dev = load_features(root, "dev")
    model = HierarchicalScorer(HierConfig.multi(2, extra={"inputs": "gop"}))
    items = build_items(
        dev,
        phone_vectors(
            dev, InputSpec.parse("gop"), deep_cache=deep, gop_cols=["p_gop_forced", "p_duration"]
        ),
    )
    fit(model, items, None, FitOptions(epochs=1))
    from pronscore.heads.hier_head import assessments

    preds = assessments(model, dev, items)
    syn = relabel(dev, preds)
    uid = str(dev.utterances["id"][0])
    assert syn.utterances["y_total"][0] == pytest.approx(preds[uid].utterance.total)
    got = syn.phones[syn.phones["id"] == uid]["y_score"].tolist()
    assert got == pytest.approx([p.score for p in preds[uid].phones])


def test_whisper_frames_on_a_tiny_random_encoder(tmp_path: Path) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    from pronscore.features.deep import WhisperFrames

    cfg = WhisperConfig(
        d_model=16,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
    )
    torch.manual_seed(0)
    WhisperForAudioClassification(cfg).save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path)
    frames = WhisperFrames(tmp_path)
    samples = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)  # 1 s
    states = frames(samples)
    assert states.shape == (3, 50, 16) and np.isfinite(states).all()  # ceil(16000 / 320)
    # one Whisper forward: the SSL scorers' encoder gives the same frames
    from pronscore.acoustic.encoders import Encoder

    np.testing.assert_array_equal(
        Encoder.from_pretrained(str(tmp_path)).encode(samples).hidden_states, states
    )
    pooled, has = pool_phones(states, [0.1], [0.3], frames.frame_rate)
    assert has.all()
    np.testing.assert_allclose(pooled[:, 0], states[:, 5:15].mean(1), rtol=1e-6)


def test_report_renders_one_table_per_paper_table() -> None:
    from pronscore.commands.report import render

    m = {"pcc": 0.8, "pcc_sd": 0.01, "ci95": [0.75, 0.85], "mse": 1.0, "n": 240}
    run = {"mean": {"utterance": {"total": m}}, "seeds": [{"info": {"cpu_seconds": 12.0}}]}
    md = render({"gop": run, "gop/no-attention": run}, "pronscore report hier ...")
    assert "## Inputs" in md and "## Self-attention vs averaging" in md and "## Stages" not in md
    header = next(line for line in md.splitlines() if line.startswith("| row"))
    assert header.count("|") == row_cells(md)
    row = next(line for line in md.splitlines() if line.startswith("| gop/no-attention"))
    assert "0.800 [0.75, 0.85]" in row and "| avg |" in row and row.endswith("| 12 |")


def row_cells(md: str) -> int:
    return next(line for line in md.splitlines() if line.startswith("| gop")).count("|")


def test_a_missing_frame_file_is_an_error_naming_it(tiny_features, tmp_path: Path) -> None:
    from dataclasses import replace

    dev = replace(load_features(tiny_features[0], "dev"), frames_dir=tmp_path)
    uid = str(dev.phones["id"].iloc[0])
    with pytest.raises(ModelError, match=rf"{uid}\.safetensors"):
        phone_vectors(dev, InputSpec.parse("ps-frames"), deep_cache=None, gop_cols=[])


def test_whisper_inputs_come_from_the_splits_encoder_vectors(tiny_features) -> None:
    """Vectors of layers 0-2 (as ``pronscore features --encoder --layers 0-2`` writes them):
    whisper:1-2 reads layers 1 and 2; a phone without time reads zeros, as the deep cache had."""
    from dataclasses import replace

    from pronscore.heads.hier_inputs import encoder_inputs

    dev = load_features(tiny_features[0], "dev")
    rng = np.random.default_rng(0)
    layered = rng.normal(0, 1, (len(dev.phones), 3, 4)).astype(np.float32)
    flat = layered.reshape(len(dev.phones), 12).copy()
    flat[1] = np.nan
    dev = replace(dev, phone_vectors=flat)
    spec = InputSpec.parse("whisper:1-2")
    got = encoder_inputs(dev, spec, (0, 1, 2))
    np.testing.assert_array_equal(got[0], layered[0, 1:])
    assert got.shape == (len(dev.phones), 2, 4) and not got[1].any()
    vecs = phone_vectors(dev, spec, deep_cache=None, gop_cols=[], vector_layers=(0, 1, 2))
    uid = str(dev.phones["id"].iloc[0])
    np.testing.assert_array_equal(vecs[uid][0], layered[0, 1:])  # no deep cache needed
    with pytest.raises(ModelError, match=r"layers \[3\].*layers \[0, 1, 2\]"):
        encoder_inputs(dev, InputSpec.parse("whisper:3"), (0, 1, 2))


def test_ps_frames_pool_the_phone_span_of_trimmed_audio(tmp_path: Path) -> None:
    """Phone times are the recording's; frame 0 is where trimming cut (``offset``)."""
    import pandas as pd
    from safetensors.numpy import save_file

    from pronscore.features.extract import SplitFeatures
    from pronscore.heads.hier_inputs import _frame_pooled

    scores = np.repeat(np.arange(50, dtype=np.float32)[:, None], 39, axis=1)  # row t holds t
    nonspeech = np.zeros((50, 3), np.float32)
    save_file({"phone_scores": scores, "nonspeech_scores": nonspeech,
               "offset": np.array([0.3])}, str(tmp_path / "u1.safetensors"))  # fmt: skip
    save_file({"phone_scores": scores, "nonspeech_scores": nonspeech},
              str(tmp_path / "u0.safetensors"))  # fmt: skip
    phones = pd.DataFrame({"start": [0.40], "end": [0.50]})
    split = SplitFeatures(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), tmp_path)
    # 0.40-0.50 s of the recording are frames 10-19 of audio trimmed from 0.30 s
    assert _frame_pooled(split, "u1", phones)[0, 0] == pytest.approx(14.5)
    assert _frame_pooled(split, "u0", phones)[0, 0] == pytest.approx(44.5)  # no offset stored
