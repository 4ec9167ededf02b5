from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import knowledge.index as index_mod
from knowledge.index import IndexCorruptError, IndexMismatchError, LexicalIndex, VectorIndex


def unit(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_search_remove_replace() -> None:
    v = unit(50)
    ix = VectorIndex("m", 32)
    ix.add(np.arange(1000, 1050), v)
    assert ix.size == 50 and ix.kind == "flat"
    top = ix.search(v[:2], 3)
    assert [r[0][0] for r in top] == [1000, 1001]
    assert top[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert ix.remove([1000, 99999]) == 1
    assert ix.search(v[:1], 1)[0][0][0] != 1000
    ix.add([1001], v[5:6])  # replace the vector of an existing id
    assert ix.size == 49
    assert ix.search(v[5:6], 2)[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert ix.search(v[:1], 3, allowed_ids=[1010, 1011])[0][0][0] in (1010, 1011)
    assert ix.search(v[:1], 5, allowed_ids=[]) == [[]]


def test_mismatch_refused() -> None:
    ix = VectorIndex("model-a", 32)
    with pytest.raises(IndexMismatchError):
        ix.add([1], unit(1, dim=16))
    with pytest.raises(IndexMismatchError):
        ix.add([1], unit(1), model_name="model-b")
    with pytest.raises(ValueError):
        ix.add([1, 1], unit(2))
    with pytest.raises(ValueError):
        ix.add([1], np.full((1, 32), np.nan, np.float32))


def test_save_load_and_mismatch_on_load(tmp_path: Path) -> None:
    v = unit(20)
    ix = VectorIndex("m", 32)
    ix.add(np.arange(20), v)
    ix.save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    assert (meta["model_name"], meta["dim"], meta["count"], meta["index_kind"]) == ("m", 32, 20,
                                                                                    "flat")
    back = VectorIndex.load(tmp_path, model_name="m", dim=32)
    assert back.search(v[3:4], 1)[0][0][0] == 3
    with pytest.raises(IndexMismatchError):
        VectorIndex.load(tmp_path, model_name="other")


def test_crash_mid_save_keeps_previous_index(tmp_path: Path, monkeypatch) -> None:
    v = unit(10)
    ix = VectorIndex("m", 32)
    ix.add(np.arange(10), v)
    ix.save(tmp_path)
    ix.add(np.arange(10, 20), unit(10, seed=1))

    real_save = np.save

    def half_written(path, arr, *a, **kw):  # index file written, then the process "dies"
        with open(path, "wb") as fh:
            fh.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(index_mod.np, "save", half_written)
    with pytest.raises(OSError):
        ix.save(tmp_path)
    monkeypatch.setattr(index_mod.np, "save", real_save)
    back = VectorIndex.load(tmp_path)
    assert back.size == 10
    assert len(list(tmp_path.glob("gen-*"))) == 1


def test_crash_before_pointer_switch(tmp_path: Path, monkeypatch) -> None:
    ix = VectorIndex("m", 32)
    ix.add([1], unit(1))
    ix.save(tmp_path)
    ix.add([2], unit(1, seed=3))
    import knowledge.storage as storage

    def boom(*a, **kw):
        raise OSError("killed before rename")

    monkeypatch.setattr(storage.os, "replace", boom)
    with pytest.raises(OSError):
        ix.save(tmp_path)
    monkeypatch.undo()
    assert VectorIndex.load(tmp_path).size == 1


def test_corrupt_files_raise(tmp_path: Path) -> None:
    with pytest.raises(IndexCorruptError):
        VectorIndex.load(tmp_path / "nothing")
    ix = VectorIndex("m", 32)
    ix.add([1, 2], unit(2))
    ix.save(tmp_path)
    (faiss_file,) = tmp_path.glob("gen-*/vectors.faiss")
    faiss_file.write_bytes(faiss_file.read_bytes()[:40])
    with pytest.raises(IndexCorruptError):
        VectorIndex.load(tmp_path)
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(IndexCorruptError):
        VectorIndex.load(tmp_path)


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 50, dim)).astype(np.float32)
    pts = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal(
        (n, dim)).astype(np.float32)
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


def test_approximate_index_recall_and_persistence(tmp_path: Path) -> None:
    data = clustered(6000, 48, seed=5)
    queries = clustered(6100, 48, seed=5)[6000:]  # fresh points around the same centres
    exact = VectorIndex("m", 48, exact_max=10**9)
    exact.add(np.arange(6000), data)
    approx = VectorIndex("m", 48, exact_max=2000)
    approx.add(np.arange(3000), data[:3000])
    approx.add(np.arange(3000, 6000), data[3000:])  # crosses exact_max: trains IVF
    assert approx.kind == "ivf" and approx.size == 6000
    truth = exact.search(queries, 10)
    got = approx.search(queries, 10)
    recall = np.mean([len({i for i, _ in g} & {i for i, _ in t}) / 10
                      for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.95
    approx.remove([int(truth[0][0][0])])
    assert int(truth[0][0][0]) not in {i for i, _ in approx.search(queries[:1], 10)[0]}
    approx.save(tmp_path)
    back = VectorIndex.load(tmp_path)
    assert back.kind == "ivf" and back.size == 5999
    assert back.search(queries[:3], 10) == approx.search(queries[:3], 10)
    # filtered search on the approximate index still finds the allowed ids
    assert {i for i, _ in back.search(queries[:1], 5, allowed_ids=[7, 8])[0]} == {7, 8}


def test_ids_are_a_sorted_array_and_membership_works() -> None:
    ix = VectorIndex("m", 32)
    ix.add([30, 10, 20], unit(3))
    ids = ix.ids()
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64
    assert ids.tolist() == [10, 20, 30]
    assert 20 in ix and 25 not in ix and "20" not in ix
    ix.remove([20, 20, 99])
    assert ix.ids().tolist() == [10, 30] and 20 not in ix
    with pytest.raises(KeyError):
        ix.reconstruct([20])
    with pytest.raises(ValueError):
        VectorIndex("m", 32, nprobe=0)
    with pytest.raises(ValueError):
        VectorIndex("m", 32, codec="pq")


def test_approximate_grows_retrains_and_filters(tmp_path: Path) -> None:
    data = clustered(8000, 32, seed=9)
    ix = VectorIndex("m", 32, exact_max=500)
    ix.add(np.arange(600), data[:600])  # crosses exact_max: IVF trained on 600 vectors
    assert ix.kind == "ivf" and ix._trained_on == 600
    small_nlist = ix.nlist
    ix.add(np.arange(600, 8000), data[600:])  # > 8x the training size: retrained on all
    assert ix._trained_on == 8000 and ix.nlist > small_nlist and ix.size == 8000
    assert ix.ids().tolist() == list(range(8000))
    np.testing.assert_allclose(ix.reconstruct([5, 7000]), data[[5, 7000]], atol=2e-3)
    ix.add([5], data[6:7])  # replace on the IVF index
    assert ix.size == 8000
    np.testing.assert_allclose(ix.reconstruct([5]), data[6:7], atol=2e-3)

    q = clustered(8050, 32, seed=9)[8000:]
    exact = VectorIndex("m", 32, exact_max=10**9)
    exact.add(ix.ids(), ix.reconstruct(ix.ids()))
    # a large filter (> exact_max): IVF with a selector; results only from the allowed set
    allowed = np.arange(0, 8000, 3)
    got = ix.search(q, 10, allowed_ids=allowed)
    want = exact.search(q, 10, allowed_ids=allowed)
    assert all(len(g) == 10 and {i for i, _ in g} <= set(allowed.tolist()) for g in got)
    recall = np.mean([len({i for i, _ in g} & {i for i, _ in w}) / 10
                      for g, w in zip(got, want, strict=True)])
    assert recall >= 0.9
    # a small filter: answered exactly, identical to the exact index
    few = [3, 1000, 2000, 7999, 123456]  # unknown ids are ignored
    got_few = ix.search(q[:4], 3, allowed_ids=few)
    want_few = exact.search(q[:4], 3, allowed_ids=few[:4])
    assert [[i for i, _ in r] for r in got_few] == [[i for i, _ in r] for r in want_few]

    ix.save(tmp_path)
    back = VectorIndex.load(tmp_path, model_name="m", dim=32)
    assert back.kind == "ivf" and back.nlist == ix.nlist and back.nprobe == ix.nprobe
    assert back.search(q[:5], 10) == ix.search(q[:5], 10)
    back.set_nprobe(back.nlist)  # probing every list is exact up to fp16 rounding
    full = back.search(q, 10)
    truth = exact.search(q, 10)
    assert np.mean([len({i for i, _ in a} & {i for i, _ in b}) / 10
                    for a, b in zip(full, truth, strict=True)]) >= 0.98


def test_loads_index_saved_before_new_metadata_keys(tmp_path: Path) -> None:
    data = clustered(3000, 32, seed=2)
    ix = VectorIndex("m", 32, exact_max=1000)
    ix.add(np.arange(3000), data)
    ix.save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    for key in ("nlist_factor", "nprobe"):
        meta.pop(key)
    (tmp_path / "index.json").write_text(json.dumps(meta))
    back = VectorIndex.load(tmp_path)
    assert back.kind == "ivf" and back.size == 3000
    assert back.search(data[:1], 1)[0][0][0] == 0


def test_lexical_index(tmp_path: Path) -> None:
    lex = LexicalIndex().build(
        [10, 20, 30],
        ["KubePodCrashLooping: pod restarting", "disk_full on node", "etcd has no leader"],
    )
    assert lex.search("pods crash looping", 2)[0][0] == 10
    assert lex.search("disk", 3)[0][0] == 20
    assert lex.search("the of and", 3) == []
    lex.save(tmp_path)
    back = LexicalIndex.load(tmp_path)
    assert back.search("leader election", 1)[0][0] == 30
    empty = LexicalIndex().build([], [])
    assert empty.search("anything", 3) == []
