"""SSL scorer: every family x strategy on tiny random configs built here (never downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pronscore.acoustic.encoders import (
    Encoder,
    backbone_hidden_states,
    split_model_id,
)
from pronscore.errors import AudioError, ModelError
from pronscore.models.ssl import STRATEGIES, SslConfig, SslScorer

FAMILIES = ("wav2vec2", "hubert", "wavlm", "whisper")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads; on a shared machine they lose a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(family: str, norm: str = "layer"):
    """A 2-layer, 16-dim backbone config. ``norm="layer"`` gives per-frame CNN normalisation
    (large checkpoints); ``"group"`` is the wav2vec2-base CNN, which normalises over time."""
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig, WhisperConfig

    if family == "whisper":
        return WhisperConfig(
            d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
            num_mel_bins=8, max_source_positions=300, decoder_layers=1,
            decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=8, pad_token_id=0,
            bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
        )  # fmt: skip
    kw = dict(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer", apply_spec_augment=False,
    )  # fmt: skip
    cls = {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig, "wavlm": WavLMConfig}[family]
    if family == "wavlm":
        kw.update(num_buckets=8, max_bucket_distance=20)
    return cls(**kw)


def tiny_scorer(family: str, strategy: str = "freeze", seed: int = 0, **kw) -> SslScorer:
    torch.manual_seed(seed)
    cfg = SslConfig(backbone_config=tiny_config(family).to_dict(), strategy=strategy, **kw)
    return SslScorer(cfg)


def toy_batch(family: str, lengths=(4000, 2600)) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs: samples, or (mel frames, 8 bins) for Whisper."""
    g = torch.Generator().manual_seed(1)
    lens = [n // 40 for n in lengths] if family == "whisper" else list(lengths)
    shape = (len(lens), max(lens), 8) if family == "whisper" else (len(lens), max(lens))
    x = torch.randn(shape, generator=g)
    mask = torch.arange(max(lens))[None, :] < torch.tensor(lens)[:, None]
    x[~mask] = 0.0
    return x, mask


def test_collection_ids_split_into_repo_and_subfolder(tmp_path):
    assert split_model_id("org/repo/sub/path") == ("org/repo", "sub/path")
    assert split_model_id("org/repo") == ("org/repo", None)
    assert split_model_id("facebook/wav2vec2-base") == ("facebook/wav2vec2-base", None)
    local = tmp_path / "a" / "b" / "c"
    local.mkdir(parents=True)
    assert split_model_id(str(local)) == (str(local), None)  # a local path always wins
    assert split_model_id("./x/y/z") == ("./x/y/z", None)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_forward_backward_and_frozen_parameters_stay_fixed(family, strategy):
    model = tiny_scorer(family, strategy, layer_sum=True).train()
    frozen = set(model.frozen_parameter_names())
    if strategy == "general":
        assert all(n.endswith(("embed_positions.weight", "masked_spec_embed")) for n in frozen)
    elif strategy == "frozen":
        assert {f"backbone.{n}" for n, _ in model.backbone.named_parameters()} == frozen
    else:
        stem = ("feature_extractor", "conv1", "conv2", "embed_positions", "masked_spec_embed")
        assert frozen and all(n.split(".")[1] in stem for n in frozen)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, mask = toy_batch(family)
    out = model(
        x, mask, labels=torch.tensor([[0.5] * 5, [0.9, 0.8, float("nan"), 0.7, 0.6]]),
        phone_ids=torch.tensor([[3, 4, 5], [6, 7, 0]]), phone_lengths=torch.tensor([3, 2]),
    )  # fmt: skip
    assert out["logits"].shape == (2, 5) and torch.isfinite(out["loss"])
    assert ("ctc_loss" in out) == (strategy == "ctc")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out["loss"].backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert not changed & frozen
    assert any(n.startswith("head.") for n in changed)
    if strategy != "frozen":
        assert any(n.startswith("backbone.") for n in changed)


@pytest.mark.parametrize("strategy", ["general", "freeze", "frozen"])
def test_a_frozen_cnn_builds_no_autograd_graph(strategy):
    """HF's feature encoder records a graph unless told it is frozen: wasted time and memory."""
    model = tiny_scorer("wav2vec2", strategy).train()
    seen = []
    model.backbone.feature_extractor.register_forward_hook(
        lambda mod, inp, out: seen.append(out.requires_grad)
    )
    x, mask = toy_batch("wav2vec2")
    model(x, mask, labels=torch.full((2, 5), 0.5))
    assert seen == [strategy == "general"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_padding_does_not_change_a_prediction(family, pooling):
    # Layer-norm feature encoders normalise each frame on its own; the group-norm CNN of
    # wav2vec2-base normalises over time, so padding leaks into it (see the next test).
    model = tiny_scorer(family, "general", pooling=pooling, layer_sum=True).eval()
    x, mask = toy_batch(family)
    n = int(mask[1].sum())
    with torch.no_grad():
        batched = model(x, mask)["logits"][1]
        alone = model(x[1:, :n], mask[1:, :n])["logits"][0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_group_norm_feature_encoder_is_not_padding_invariant():
    torch.manual_seed(0)
    cfg = SslConfig(backbone_config=tiny_config("wav2vec2", norm="group").to_dict())
    model = SslScorer(cfg).eval()
    x, mask = toy_batch("wav2vec2")
    n = int(mask[1].sum())
    with torch.no_grad():
        diff = model(x, mask)["logits"][1] - model(x[1:, :n], mask[1:, :n])["logits"][0]
    assert diff.abs().max() > 1e-4  # documents why the invariance test uses layer norm


@pytest.mark.parametrize("family", ["wavlm", "whisper"])
def test_save_load_round_trip_is_bit_exact(family, tmp_path):
    model = tiny_scorer(family, "ctc-logits", pooling="attention", layer_sum=True).eval()
    model.save_pretrained(tmp_path)
    loaded = SslScorer.from_pretrained(tmp_path)
    assert loaded.settings == model.settings
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    x, mask = toy_batch(family)
    with torch.no_grad():
        assert torch.equal(model(x, mask)["logits"], loaded(x, mask)["logits"])


def test_ctc_logits_start_from_the_checkpoints_own_ctc_head(tmp_path):
    """The seed's variant: logits of the checkpoint's CTC layer (its characters), not phones."""
    from transformers import Wav2Vec2ForCTC

    cfg = tiny_config("wav2vec2")
    cfg.vocab_size = 12
    torch.manual_seed(3)
    Wav2Vec2ForCTC(cfg).save_pretrained(tmp_path / "ctc")
    ref = Wav2Vec2ForCTC.from_pretrained(tmp_path / "ctc")
    model = SslScorer.from_backbone(str(tmp_path / "ctc"), SslConfig(strategy="ctc-logits"))
    assert model.ctc_head.out_features == 12 and model.head[1].in_features == 12
    assert torch.equal(model.ctc_head.weight, ref.lm_head.weight)
    assert torch.equal(model.backbone.encoder.layers[0].attention.k_proj.weight,
                       ref.wav2vec2.encoder.layers[0].attention.k_proj.weight)  # fmt: skip
    model.save_pretrained(tmp_path / "run")
    assert SslScorer.from_pretrained(tmp_path / "run").ctc_head.out_features == 12


def test_bad_run_dir_and_config_raise_model_error(tmp_path):
    with pytest.raises(ModelError):
        SslScorer.from_pretrained(tmp_path)
    with pytest.raises(ModelError):
        SslConfig(strategy="unfreeze")


@pytest.mark.parametrize("family", ["hubert", "whisper"])
def test_encoder_from_config_returns_every_layer(family):
    cfg = tiny_config(family)
    cfg.max_source_positions = 1500  # a real Whisper's 30 s of positions
    enc = Encoder.from_config(cfg)
    samples = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    out = enc.encode(samples)
    assert out.hidden_states.dtype == np.float32
    assert out.hidden_states.shape[0] == enc.num_layers + 1 == 3
    assert out.hidden_states.shape[2] == enc.hidden_size == 16
    assert out.frame_rate == (50.0 if family == "whisper" else 800.0)  # tiny CNN: stride 20
    assert abs(out.hidden_states.shape[1] - 0.5 * out.frame_rate) <= 2  # CNN kernel overhang
    with pytest.raises(AudioError):
        enc.encode(np.zeros(0, np.float32))


def test_whisper_unpadded_batch_path_matches_hf_layers():
    """Our mask-aware Whisper forward equals WhisperEncoder.forward at the 30 s input size."""
    cfg = tiny_config("whisper")
    cfg.max_source_positions = 1500
    enc = Encoder.from_config(cfg)
    mel = torch.randn(1, 8, 3000)
    with torch.no_grad():
        ref = enc.backbone(mel).last_hidden_state
        ours, fmask = backbone_hidden_states(
            enc.backbone, "whisper", mel.transpose(1, 2), torch.ones(1, 3000, dtype=torch.bool)
        )
    assert fmask.shape == (1, 1500) and bool(fmask.all())
    torch.testing.assert_close(ours[-1], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_whisper_encoder_equals_hf_forward_on_the_same_mel_frames(pad_to_30s):
    """Trimmed (default): HF's own forward on the real mel frames, with a position table cut to
    their length; ``pad_to_30s``: HF's forward on the 30 s input. Both trimmed to real audio."""
    import copy

    cfg = tiny_config("whisper")
    cfg.max_source_positions = 1500
    torch.manual_seed(0)
    enc = Encoder.from_config(cfg, pad_to_30s=pad_to_30s)
    samples = np.random.default_rng(0).standard_normal(32100).astype(np.float32) * 0.1
    out = enc.encode(samples)
    n = 101  # ceil(32100 / 320) encoder frames
    assert out.hidden_states.shape == (3, n, 16)
    mel = enc.feature_extractor(samples, sampling_rate=16000, return_tensors="pt")
    mel = mel["input_features"]  # (1, 8, 3000): Whisper's 30 s-padded log-mel
    ref_enc = enc.backbone
    if not pad_to_30s:
        ref_enc = copy.deepcopy(enc.backbone)
        ref_enc.config.max_source_positions = n
        ref_enc.embed_positions = torch.nn.Embedding.from_pretrained(
            enc.backbone.embed_positions.weight[:n].clone()
        )
        mel = mel[..., : 2 * n]
    with torch.no_grad():
        ref = ref_enc(mel).last_hidden_state[0, :n].numpy()
    np.testing.assert_allclose(out.hidden_states[-1], ref, atol=1e-5, rtol=0)


def test_whisper_encoder_windows_long_audio_in_30s_pieces():
    cfg = tiny_config("whisper")
    cfg.max_source_positions = 1500
    enc = Encoder.from_config(cfg)
    samples = np.random.default_rng(1).standard_normal(16000 * 31 + 100).astype(np.float32)
    out = enc.encode(samples * 0.1)
    assert out.hidden_states.shape == (3, 1500 + 51, 16)
    assert np.isfinite(out.hidden_states).all()


@pytest.mark.realdata
def test_whisper_encoder_on_the_shared_folder_trims_and_windows(whisper_dir):
    torch.set_num_threads(1)
    enc = Encoder.from_pretrained(str(whisper_dir))
    assert (enc.num_layers, enc.hidden_size, enc.frame_rate) == (6, 512, 50.0)
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(16000 * 31 + 100) * 0.05).astype(np.float32)
    out = enc.encode(samples)  # two 30 s windows, each trimmed to its real audio
    assert out.hidden_states.shape == (7, 1500 + 51, 512)
    assert np.isfinite(out.hidden_states).all()
    short = enc.encode(samples[:16000])
    assert short.hidden_states.shape == (7, 50, 512)
    exact = Encoder(enc.backbone, enc.config, enc.feature_extractor, pad_to_30s=True)
    full = exact.encode(samples[:16000]).hidden_states
    assert full.shape == short.hidden_states.shape
    # the conv stem agrees but for the last frame (the conv sees zeros, not padded log-mel)
    np.testing.assert_allclose(full[0, :-1], short.hidden_states[0, :-1], atol=1e-4)
    assert not np.allclose(full[-1], short.hidden_states[-1])  # attention saw the padding
