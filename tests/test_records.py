"""Run records (dean_nb.experiment.records): JSON round trips, provenance, atomic writes.

Properties: a record round-trips through its JSON file and names where it was made; a write
killed midway leaves no file (not even a partial one); records get the usual file mode.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from dean_nb.experiment import records
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import atomic_write_json, load_run


def test_run_result_json_round_trip(tmp_path, tiny):
    result = run_active_learning(tiny(strategy="dean", denoise=True))
    path = result.to_json(tmp_path / "run.json")
    back = load_run(path)
    assert back.to_dict() == result.to_dict()
    assert back.config == result.config
    prov = back.provenance
    assert {"dean_nb_version", "git_commit", "date", "hostname", "torch", "device"} <= set(prov)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"

    def broken_dump(obj, fh, **kwargs):
        fh.write('{"config": {"dataset": "dig')  # a partial write, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(records.json, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_records_get_the_usual_file_mode(tmp_path):
    # like any file the user writes (umask applied), not mkstemp's private 0600
    atomic_write_json(tmp_path / "run.json", {"a": 1})
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o666 & ~umask
