"""The forgetting record's closed form, and the result record (results.json) written and read one way."""

import json
import math

import pytest

from minift.errors import CheckpointError
from minift.finetune.forgetting import forgetting
from minift.finetune.record import ResultRecord


def test_forgetting_record():
    r = forgetting(2.0, 2.5)
    assert r["delta_loss"] == 0.5 and r["ppl_ratio"] == pytest.approx(math.exp(0.5))
    assert r["before_ppl"] == pytest.approx(math.exp(2.0)) and r["after_ppl"] == pytest.approx(math.exp(2.5))


def make_record(**changes) -> ResultRecord:
    fields = dict(run="r1", task="sentiment", kind="labelled", method="lora", base="quick", preset="quick",
                  config={"seed": 0}, method_config={"method": "lora", "r": 8}, metrics={"test": {"accuracy": 0.9}},
                  baselines={}, forgetting=forgetting(2.0, 2.1), trainable_params=1234, total_params=10_000,
                  trainable_pct=12.34, optimizer_state_bytes=8 * 1234, weights_file="adapter.pt", weights_bytes=99,
                  adapter_bytes=99, mergeable=True, lr=2e-3, steps=10, best_step=10, stop_reason="max_steps",
                  train_loss=0.5, val_loss=0.6, final_val_loss=0.6, train_seconds=1.0, wall_seconds=2.0,
                  tokens_per_s=100.0, peak_memory_mb=300.0, peak_memory_kind="process_rss", device="cpu",
                  world_size=1, data={"n_train": 5}, max_new_tokens=0)
    return ResultRecord(**{**fields, **changes})


def test_result_record_roundtrip(tmp_path):
    rec = make_record()
    path = tmp_path / "results.json"
    rec.save(path)
    assert ResultRecord.load(path) == rec
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2 and data["metrics"]["test"]["accuracy"] == 0.9
    assert set(data) == set(rec.to_dict())  # one way to write it: every key is a field


def test_result_record_from_another_version_is_refused(tmp_path):
    data = make_record().to_dict()
    del data["weights_bytes"], data["lr"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="lacks .*lr.*weights_bytes"):
        ResultRecord.load(tmp_path / "results.json")
