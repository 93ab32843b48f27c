"""Two-process data-parallel step on CPU (gloo): what torchrun / accelerate launch run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_ssl_models import tiny_scorer, toy_batch

    torch.set_num_threads(1)
    # the test process hosts the rendezvous store (as torchrun's agent does), so no rank tears
    # down a store that another rank still uses when it exits
    store = dist.TCPStore("127.0.0.1", port, world, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        model = tiny_scorer("wav2vec2", "ctc", seed=0).train()  # same init on every rank
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        x, mask = toy_batch("wav2vec2", lengths=(3000 + 500 * rank, 2000))  # different data
        labels = torch.full((2, 5), 0.2 + 0.5 * rank)
        out = ddp(x, mask, labels=labels, phone_ids=torch.tensor([[3, 4], [5, 0]]),
                  phone_lengths=torch.tensor([2, 1]))  # fmt: skip
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        out["loss"].backward()
        opt.step()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        same = all(torch.equal(gathered[0], g) for g in gathered)
        frozen = set(model.frozen_parameter_names())
        fixed = all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in frozen)
        moved = not torch.equal(model.head[1].weight, before["head.1.weight"])
        Path(out_dir, f"rank{rank}.txt").write_text(f"{same} {fixed} {moved}")
        dist.barrier()  # neither rank leaves while the other still talks to it
    finally:
        dist.destroy_process_group()
    # done, the result written: skip the interpreter's teardown, where a gloo thread still
    # joinable at exit aborted a rank once in a full `make test` ("terminate called without an
    # active exception", SIGABRT after the rank had written its result)
    os._exit(0)


def test_two_process_gloo_step_keeps_replicas_identical(tmp_path):
    if not dist.is_gloo_available():
        pytest.skip("torch built without gloo")
    store = dist.TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    mp.spawn(_worker, args=(2, store.port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        # gradients were averaged (replicas equal), frozen CNN untouched, the head trained
        assert (tmp_path / f"rank{rank}.txt").read_text() == "True True True"


def test_torchrun_trains_the_cli_data_parallel_with_no_code_change(tmp_path):
    import json
    import subprocess

    from test_ssl_training import save_tiny_backbone, write_dataset

    data, backbone = write_dataset(tmp_path), save_tiny_backbone(tmp_path)
    run = tmp_path / "run"
    # --standalone: torchrun picks its own free rendezvous port (no race for a probed one)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pronscore.cli", "train", "ssl",
           "--data", str(data), "--backbone", str(backbone), "--strategy", "ctc",
           "--out", str(run), "--max-steps", "3", "--batch-size", "2", "--lr", "1e-3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((run / "trainer_state.json").read_text())
    # 12 utterances, 2 per process per step, 2 processes: 3 steps are exactly one epoch
    assert state["global_step"] == 3 and state["epoch"] == pytest.approx(1.0)
