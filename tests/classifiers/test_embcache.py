from __future__ import annotations

import numpy as np
import pytest

from classifiers.embcache import EmbeddingCache
from classifiers.errors import ClassifierError


def test_computes_only_unseen_and_persists(tmp_path, embed):
    calls: list[list[str]] = []

    def counted(texts):
        calls.append(list(texts))
        return embed(texts)

    cache = EmbeddingCache(tmp_path / "c")
    v1 = cache.get_or_compute(["disk full", "vpn down", "disk full"], counted)
    assert calls == [["disk full", "vpn down"]]
    np.testing.assert_array_equal(v1[0], v1[2])
    cache.save()
    again = EmbeddingCache(tmp_path / "c")
    assert len(again) == 2 and "vpn down" in again
    v2 = again.get_or_compute(["vpn down", "printer jam"], counted)
    assert calls[-1] == ["printer jam"]
    np.testing.assert_array_equal(v2[0], v1[1])
    again.save()
    assert len(EmbeddingCache(tmp_path / "c")) == 3


def test_wrong_shape_from_embed_fn(tmp_path):
    cache = EmbeddingCache(tmp_path, dim=4)
    with pytest.raises(ClassifierError, match="shape"):
        cache.get_or_compute(["a"], lambda t: np.zeros((len(t), 3)))


def _fake_vectors(texts: list[str]) -> np.ndarray:
    """A vector that names its text: row i is the text's hash spread over 8 numbers."""
    from classifiers.embcache import text_key

    return np.array([[int(text_key(t)[j * 2:j * 2 + 2], 16) for j in range(8)] for t in texts],
                    dtype=np.float32)


def test_replicas_saving_at_once_never_leave_vectors_under_the_wrong_texts(tmp_path):
    """Pods sharing the models volume save the cache at the same time: what any of them loads
    afterwards must pair every text with its own vector (same-size batches, so a vectors file
    of one save beside the index of another would pass a shape check)."""
    import threading

    folder = tmp_path / "shared"
    wrong: list[str] = []

    def replica(name: str) -> None:
        for round_ in range(25):
            cache = EmbeddingCache(folder, dim=8)
            texts = [f"{name} alert {round_} {i}" for i in range(5)]
            got = cache.get_or_compute(texts, _fake_vectors)
            cache.save()
            # after its own save, the cache it holds still answers for its texts
            if not np.array_equal(cache.get_or_compute(texts, _fake_vectors), got):
                wrong.append(f"{name}: own texts after save, round {round_}")
            loaded = EmbeddingCache(folder, dim=8)
            keys = loaded._keys
            matrix = loaded._matrix()
            expected = np.array([[int(k[j * 2:j * 2 + 2], 16) for j in range(8)] for k in keys],
                                dtype=np.float32).reshape(len(keys), 8)
            if not np.array_equal(np.asarray(matrix), expected):
                wrong.append(f"{name}: a loaded cache pairs texts with other texts' vectors")

    threads = [threading.Thread(target=replica, args=(f"pod-{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]


def test_old_generations_are_removed_and_fixed_name_files_still_load(tmp_path, monkeypatch):
    import classifiers.embcache as embcache

    folder = tmp_path / "c"
    folder.mkdir()
    texts = ["disk full", "vpn down"]
    np.save(folder / "vectors.npy", _fake_vectors(texts), allow_pickle=False)  # older layout
    (folder / "index.txt").write_text("\n".join(embcache.text_key(t) for t in texts) + "\n")
    cache = EmbeddingCache(folder, dim=8)
    assert len(cache) == 2 and "vpn down" in cache
    monkeypatch.setattr(embcache, "STALE_SECONDS", -1.0)  # every other generation is stale
    for round_ in range(3):
        cache.get_or_compute([f"printer jam {round_}"], _fake_vectors)
        cache.save()
    names = sorted(p.name for p in folder.iterdir())
    generation = (folder / "current").read_text().strip()
    assert names == ["current", f"index.{generation}.txt", f"vectors.{generation}.npy"]
    reloaded = EmbeddingCache(folder, dim=8)
    assert len(reloaded) == 5
    np.testing.assert_array_equal(reloaded.get_or_compute(texts, _fake_vectors),
                                  _fake_vectors(texts))
