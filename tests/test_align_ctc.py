"""CTC Viterbi and forward algorithm against brute force and torch's ctc_loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pronscore.align.ctc import (
    CtcAligner,
    ctc_forced_align,
    ctc_gop_substitution,
    ctc_log_likelihood,
    posterior_gop,
)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def _collapse(path: tuple[int, ...], blank: int = 0) -> list[int]:
    out = [k for k, _ in itertools.groupby(path)]
    return [k for k in out if k != blank]


def _brute(lp: np.ndarray, targets: list[int]) -> tuple[float, float]:
    """(best path score, total log-likelihood) by enumerating every path."""
    scores = [
        lp[np.arange(lp.shape[0]), list(path)].sum()
        for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0])
        if _collapse(path) == targets
    ]
    return max(scores), float(np.logaddexp.reduce(scores))


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_and_forward_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_len, v = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    lp = _log_softmax(rng.normal(size=(t_len, v)) * 2)
    n = int(rng.integers(1, 3))
    targets = [int(x) for x in rng.integers(1, v, size=n)]
    best, total = _brute(lp, targets)
    path = ctc_forced_align(lp, targets)
    assert path is not None and path.log_likelihood == pytest.approx(best)
    assert ctc_log_likelihood(lp, targets) == pytest.approx(total)
    starts = [s for s, _, _ in path.spans]
    assert starts == sorted(starts)


def test_forward_matches_torch_ctc_loss() -> None:
    rng = np.random.default_rng(7)
    lp = _log_softmax(rng.normal(size=(30, 6)))
    targets = [1, 3, 3, 5, 2]
    ref = torch.nn.functional.ctc_loss(
        torch.from_numpy(lp).unsqueeze(1), torch.tensor([targets]), torch.tensor([30]),
        torch.tensor([5]), blank=0, reduction="sum",
    )  # fmt: skip
    assert ctc_log_likelihood(lp, targets) == pytest.approx(-ref.item(), rel=1e-6)


def test_repeats_need_a_blank_and_short_input_fails() -> None:
    lp = np.log(np.full((3, 3), 1 / 3))
    assert ctc_forced_align(lp, [1, 1]) is not None  # 1 blank 1
    assert ctc_forced_align(lp[:2], [1, 1]) is None
    assert ctc_forced_align(lp[:2], [1, 2]) is not None


def test_exact_spans_from_sharp_posteriors() -> None:
    frames = [0, 1, 1, 0, 2, 2, 2, 0, 0, 3]
    lp = np.log(np.full((10, 4), 1e-4))
    lp[np.arange(10), frames] = 0.0
    path = ctc_forced_align(lp, [1, 2, 3])
    assert [(s, e) for s, e, _ in path.spans] == [(1, 3), (4, 7), (9, 10)]


def test_aligner_and_gop() -> None:
    # vocabulary: blank + a few phones; the audio "says" K AO L
    vocab = ("<blank>", "K", "AO", "L", "B")
    frames = [0, 1, 1, 2, 2, 2, 3, 3, 0]
    lp = np.log(np.full((9, 5), 0.02))
    lp[np.arange(9), frames] = np.log(0.92)
    aligner = CtcAligner(vocab)
    ali = aligner.align(lp, [("CALL", ("K", "AO1", "L"))], frame_rate=50)
    assert ali.ok and [p.phone for p in ali.phones] == ["K", "AO1", "L"]
    assert [p.position for p in ali.phones] == ["B", "I", "E"]
    assert ali.words[0].start == 1 and ali.words[0].end == 8
    right = posterior_gop(lp, 3, 6, vocab.index("AO"))
    wrong = posterior_gop(lp, 3, 6, vocab.index("B"))
    assert right["lpp"] > wrong["lpp"] and right["lpr_min"] > 0 > wrong["lpr_min"]
    gop_right = ctc_gop_substitution(lp, [1, 2, 3])
    gop_wrong = ctc_gop_substitution(lp, [1, 4, 3])
    assert gop_right[1] > 0 > gop_wrong[1]
    failed = aligner.align(lp[:2], [("CALL", ("K", "AO1", "L"))], frame_rate=50)
    assert not failed.ok and "too few" in failed.reason
    assert "not in the CTC vocabulary" in aligner.align(lp, [("X", ("ZH",))], 50).reason


def test_aligner_bad_input_is_a_failed_result() -> None:
    aligner = CtcAligner()
    lp = _log_softmax(np.random.default_rng(0).normal(size=(20, 40)))
    words = [("CALL", ("K", "AO1", "L"))]
    assert aligner.align(lp, words, 50).ok
    for bad_lp, bad_words in [
        (lp[:, :5], words),  # vocabulary size mismatch
        (lp[0], words),  # 1-D
        (np.where(np.arange(40) == 3, np.nan, lp), words),
        (lp, []),
        (lp, [("CALL", ())]),
    ]:
        ali = aligner.align(bad_lp, bad_words, 50)
        assert not ali.ok and ali.reason
