"""`minift warmup`: every base the lessons read, built once into the cache; nothing is rebuilt the second time."""

from __future__ import annotations

from minift.base import cache
from minift.cli.parser import main


def test_warmup_builds_the_lessons_bases_once(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MINIFT_HOME", str(tmp_path))
    built = []

    def fake_build(preset, device="cpu", **_):  # pretraining `tiny` takes minutes: record the call, make the folder
        built.append(preset)
        d = cache.base_dir(preset)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def fake_fetch(name, **_):
        built.append(name)
        d = cache.base_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        return d

    monkeypatch.setattr(cache, "build_base", fake_build)
    monkeypatch.setattr(cache, "build_downloaded", fake_fetch)
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert built == ["quick", "tiny"]
    assert "pretrained: the 'quick' base" in out and "lessons 10-11 fetch SmolLM2" in out
    assert main(["warmup", "--smollm2"]) == 0
    out = capsys.readouterr().out
    assert built == ["quick", "tiny", "quick", "tiny", "smollm2"]  # build_base itself skips a complete entry
    assert "already cached: the 'tiny' base" in out and "fetched: SmolLM2" in out
