import numpy as np
import pytest

from seal_rag.atomic_file import atomic_path


def test_the_target_is_replaced_whole_and_no_scratch_file_is_left(tmp_path):
    target = tmp_path / "shard.npz"
    target.write_bytes(b"old")
    with atomic_path(target) as partial:
        assert partial.parent == tmp_path and partial.suffix == ".npz" and ".tmp" in partial.name
        np.savez(partial, x=np.arange(3))  # savez keeps a name ending in .npz as it is
        assert target.read_bytes() == b"old"  # nothing visible before the block ends
    with np.load(target) as saved:
        assert saved["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.npz"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_scratch(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("stopped mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
