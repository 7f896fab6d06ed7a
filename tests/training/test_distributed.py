"""Data-parallel training (minift/distributed.py) with 2 CPU processes over gloo, checked against one process.

The key invariant (docs/training.md, exact gradient accumulation): W ranks × K micro-batches train to the weights one process reaches with
grad_accum = W·K on the same micro-batches, even when micro-batches hold unequal numbers of supervised tokens.
The two ranks are started once per module, the way torchrun starts them (RANK, WORLD_SIZE, MASTER_PORT, ... in the
environment), each running this file as a script (`worker` below); the parent compares what they saved.
Tolerance: float64 models, so the only difference is the order of the sums (per rank, then across ranks, DDP's
average then ×W): rounding ≈ 1e-16 relative per step, and AdamW's update m/√v is scale-free, so 3–5 steps stay far
below atol 1e-10 (measured: 0.0 with K = 1, 8e-14 with K = 2), while the mean-of-means error this guards against
moves the weights by 0.04 (checked below).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from minift.errors import ConfigError
from minift.model.gpt import GPT, GPTConfig
from minift.training.batches import lm_loss_fn
from minift.training.config import TrainConfig
from minift.training.loop import train
from minift.files import read_jsonl, torch_load

VOCAB, T, WORLD = 64, 8, 2
TIMEOUT_S = 180  # a hung collective fails the test instead of blocking the suite

pytestmark = [pytest.mark.xdist_group("distributed"),  # its module fixtures run once (pytest -n)
              pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this PyTorch build has no torch.distributed gloo backend")]


def tiny_gpt(seed=0, dropout=0.0, dtype=torch.float64):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, d_model=32, dropout=dropout)).to(dtype)


def masked_batch(i: int):
    """Micro-batch i: 2 rows of 8 positions; row b is supervised on its first L_b targets only, L_b random in 1…8,
    so micro-batches (and ranks) hold unequal supervised-token counts. A pure function of i."""
    g = torch.Generator().manual_seed(1000 + i)
    x = torch.randint(0, VOCAB, (2, T), generator=g)
    y = torch.randint(0, VOCAB, (2, T), generator=g)
    lengths = torch.randint(1, T + 1, (2, 1), generator=g)
    y[torch.arange(T)[None, :] >= lengths] = -100
    return x, y


VAL = [masked_batch(10_000 + j) for j in range(3)]  # 3 batches over 2 ranks: uneven shards (2 and 1)


def cfg(**kw):
    base = dict(max_steps=3, lr=1e-2, weight_decay=0.1, log_every=1, eval_every=1, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw})


# -- the two ranks -------------------------------------------------------------------------------------------------

def audit_writes(root: Path) -> list:
    """Record every file-system change under `root` this process makes (Python audit events)."""
    seen = []
    kinds = {"open", "os.rename", "os.replace", "os.mkdir", "os.remove", "os.unlink", "shutil.rmtree",
             "shutil.copytree", "tempfile.mkstemp"}

    def hook(event, args):
        if event not in kinds:
            return
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else \
                bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if not writing:
                return
            args = (path,)
        for a in args:
            if isinstance(a, (str, os.PathLike)) and str(root) in os.fsdecode(a):
                seen.append((event, os.fsdecode(a)))

    sys.addaudithook(hook)
    return seen


def worker(root: Path) -> None:
    from minift.training import distributed

    rank = int(os.environ["RANK"])
    runs = root / "runs"
    writes = audit_writes(runs)
    out = {}

    # 1. W=2, K=1 with every file (metrics, checkpoints, plot) and W=2, K=2
    model = tiny_gpt()
    res = train(model, lm_loss_fn, masked_batch, cfg(grad_accum=1), val_batches=VAL, out_dir=runs / "k1")
    out["k1"] = (model.state_dict(), res.history, res.tokens_seen)
    model = tiny_gpt()
    res = train(model, lm_loss_fn, masked_batch, cfg(grad_accum=2, eval_every=10))
    out["k2"] = (model.state_dict(), res.history, res.tokens_seen)

    # 2. exact resume with dropout: uninterrupted vs crash after step 3 (last.pt from step 2) + resume
    resume_cfg = cfg(grad_accum=2, max_steps=5, eval_every=2)

    def crashing(i):
        if i >= 3 * 2 * WORLD:
            raise RuntimeError("simulated crash")
        return masked_batch(i)

    model = tiny_gpt(dropout=0.2, dtype=torch.float32)
    res = train(model, lm_loss_fn, masked_batch, resume_cfg, val_batches=VAL, out_dir=runs / "full")
    out["full"] = (model.state_dict(), res.history)
    try:
        train(tiny_gpt(dropout=0.2, dtype=torch.float32), lm_loss_fn, crashing, resume_cfg, val_batches=VAL,
              out_dir=runs / "crash")
    except RuntimeError as e:
        assert "simulated crash" in str(e)
    if rank == 0:  # control: the same checkpoint without the other rank's RNG state
        shutil.copytree(runs / "crash", runs / "control")
        ckpt = torch_load(runs / "control" / "last.pt")
        del ckpt["rng_ranks"]
        torch.save(ckpt, runs / "control" / "last.pt")
    distributed.barrier()
    for name in ("crash", "control"):
        model = tiny_gpt(seed=123, dropout=0.2, dtype=torch.float32)  # all must come from last.pt
        res = train(model, lm_loss_fn, masked_batch, resume_cfg, val_batches=VAL, out_dir=runs / name, resume=True)
        out[name] = (model.state_dict(), res.history)

    out["writes"] = list(writes)
    torch.save(out, root / f"rank{rank}.pt")
    distributed.cleanup()


# -- the parent ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root: Path) -> None:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(WORLD),
               LOCAL_WORLD_SIZE=str(WORLD), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    procs = [subprocess.Popen([sys.executable, __file__, str(root)], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(WORLD)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the {WORLD} ranks did not finish in {TIMEOUT_S} s:\n"
                    + "\n".join(p.communicate()[0] for p in procs))
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log}"


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    launch(root)
    return root, [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def assert_close_weights(a: dict, b: dict, atol=1e-10):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def losses(history, key):
    return [(r["step"], r[key]) for r in history if key in r]


def test_ranks_stay_identical(ranks):
    _, (r0, r1) = ranks
    for name in ("k1", "k2", "full", "crash"):
        for k, v in r0[name][0].items():
            assert torch.equal(v, r1[name][0][k]), (name, k)  # same all-reduced gradient → same AdamW step
    for key in ("train_loss", "val_loss"):  # the same global losses on both ranks: early stopping agrees
        assert losses(r0["k1"][1], key) == losses(r1["k1"][1], key)


def test_micro_batches_have_unequal_token_counts():
    counts = [int((masked_batch(i)[1] != -100).sum()) for i in range(8)]
    assert len(set(counts)) > 2, counts  # else a mean of means would equal the token mean


@pytest.mark.parametrize("k", [1, 2])
def test_two_ranks_equal_one_process_with_w_times_k_accumulation(ranks, k):
    _, (r0, _) = ranks
    ddp_state, ddp_history, ddp_tokens = r0[f"k{k}"]
    model = tiny_gpt()
    res = train(model, lm_loss_fn, masked_batch, cfg(grad_accum=WORLD * k, eval_every=1 if k == 1 else 10),
                val_batches=VAL if k == 1 else None)
    assert_close_weights(ddp_state, model.state_dict())
    for key in ("train_loss", "val_loss", "grad_norm"):
        ours, theirs = losses(ddp_history, key), losses(res.history, key)
        assert [s for s, _ in ours] == [s for s, _ in theirs]
        assert [v for _, v in ours] == pytest.approx([v for _, v in theirs], rel=1e-12, abs=1e-12)
    assert ddp_tokens == res.tokens_seen == 3 * WORLD * k * 2 * T  # input positions of all ranks

    # control: what a mean of per-rank (or per-micro-batch) means would train to is far away
    def mean_loss_fn(m, batch):
        s, n = lm_loss_fn(m, batch)
        return s / n, 1

    wrong = tiny_gpt()
    train(wrong, mean_loss_fn, masked_batch, cfg(grad_accum=WORLD * k, eval_every=10))
    gap = max((ddp_state[n] - p).abs().max().item() for n, p in wrong.state_dict().items())
    assert gap > 1e-2, gap  # measured 0.042 (and 8e-14 for the DDP run, 0.0 with K = 1)


def test_only_rank_0_writes_files(ranks):
    root, (r0, r1) = ranks
    assert r1["writes"] == [], r1["writes"][:5]
    written = {Path(p).name for _, p in r0["writes"]}
    assert {"metrics.jsonl", "last.pt", "best.pt", "loss.png"} <= written  # the audit does see writes
    run = root / "runs" / "k1"
    assert {p.name for p in run.iterdir()} == {"metrics.jsonl", "last.pt", "best.pt", "loss.png"}
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 1, 2, 2, 3, 3]  # each record once
    assert torch_load(run / "last.pt")["world_size"] == WORLD


def test_resume_is_exact_with_per_rank_dropout_streams(ranks):
    _, (r0, r1) = ranks
    for r in (r0, r1):
        full, resumed, control = r["full"], r["crash"], r["control"]
        for k in full[0]:
            assert torch.equal(full[0][k], resumed[0][k]), k
        assert losses(resumed[1], "train_loss") == losses(full[1], "train_loss")
        # without rank 1's own generator state, rank 1 draws other dropout masks after the resume
        assert any(not torch.equal(full[0][k], control[0][k]) for k in full[0])


def test_ddp_checkpoint_resumes_in_one_process_with_the_same_w_times_k(ranks, tmp_path):
    """last.pt of 2 ranks × grad_accum 1 continues in one process with grad_accum 2 as a one-process run would."""
    root, _ = ranks
    shutil.copytree(root / "runs" / "k1", tmp_path / "ddp")
    more = cfg(grad_accum=WORLD, max_steps=5)
    with pytest.raises(ConfigError, match="grad_accum=1 × 2 process"):
        train(tiny_gpt(), lm_loss_fn, masked_batch, cfg(grad_accum=1, max_steps=5), val_batches=VAL,
              out_dir=tmp_path / "ddp", resume=True)
    resumed = tiny_gpt(seed=7)
    train(resumed, lm_loss_fn, masked_batch, more, val_batches=VAL, out_dir=tmp_path / "ddp", resume=True)
    single = tiny_gpt()
    train(single, lm_loss_fn, masked_batch, cfg(grad_accum=WORLD), val_batches=VAL, out_dir=tmp_path / "one")
    train(single, lm_loss_fn, masked_batch, more, val_batches=VAL, out_dir=tmp_path / "one", resume=True)
    assert_close_weights(resumed.state_dict(), single.state_dict())


# -- the command line under torchrun ----------------------------------------------------------------------------

def torchrun(*args, home: Path):
    env = dict(os.environ, MINIFT_HOME=str(home), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           "-m", "minift", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)


def test_cli_finetune_under_torchrun(tmp_path, minift_home, quick_base):
    out = tmp_path / "run"
    args = ["finetune", "--base", "quick", "--task", "sentiment", "--max-steps", "2", "--grad-accum", "2",
            "--n-train", "32", "--n-eval", "8", "--batch-size", "8", "--device", "cpu", "--quiet", "--out", str(out)]
    r = torchrun(*args, home=minift_home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("wrote ") == 1 and r.stdout.count("baseline majority") == 1  # rank 0 alone prints
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == WORLD and res["steps"] == 2 and "2 processes (DDP)" in res["device"]
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "train_loss" in r] == [1, 2]
    # the same command again: the run directory holds results, so it fails with the usual one-line error
    r = torchrun(*args, home=minift_home)
    assert r.returncode != 0
    assert "minift: error: " in r.stderr and "already holds results" in r.stderr, r.stderr


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
