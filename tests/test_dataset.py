"""Seeded stratified splits of a store's rows, and the tf.data stream that feeds them to Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchgenre.errors import BatchgenreError
from batchgenre.features import get_feature_set
from batchgenre.store import DONE, FAILED, BlockRows, FeatureStore
from batchgenre.training.dataset import (
    cross_validation,
    final_split,
    read_features,
    select_rows,
    split_rows,
    stream,
    with_groups,
)

TUTORIAL = get_feature_set("tutorial")


def make_store(
    url: Path,
    *,
    genres: tuple[str, ...] = ("low", "high", "noise"),
    per_genre: int = 20,
    rows_per_chunk: int = 7,
    failed: tuple[int, ...] = (),
    feature_set: str = "tutorial",
    copies: int = 0,
    windows: int = 1,
    folder: str = "",
    seed: int = 0,
) -> FeatureStore:
    """A store of separable tutorial-shaped vectors, written as featurize writes them (block by block).

    Files alternate genres; each file's row is followed by ``copies`` rows of augmented copies,
    as featurize --augment plans them; with ``windows`` k > 1, the file and each copy have k
    window rows of 30/k s, as featurize --window plans them. Paths are ``folder + genre/00000.wav``.
    Column 0 holds the store row number, so a test can tell
    rows apart; each genre shifts its chroma columns and raises its mel powers by a factor of 100.
    ``failed`` are store row numbers.
    """
    fs = get_feature_set(feature_set)
    rng = np.random.default_rng(seed)
    files = per_genre * len(genres)
    per_file = (1 + copies) * windows
    n = files * per_file
    labels = np.repeat(np.arange(files) % len(genres), per_file)
    augment = np.tile(np.repeat(np.arange(1 + copies), windows), files)
    window = np.tile(np.arange(windows), files * (1 + copies))
    paths = [f"{folder}{genres[g]}/{i // per_file:05d}.wav" for i, g in enumerate(labels)]
    features = rng.normal(size=(n, fs.size)).astype(np.float32)
    features[:, 1:36] += 2.0 * labels[:, None]
    mel = np.array([name.startswith("melspectrogram.") for name in fs.names])
    features[:, mel] = 10.0 ** (features[:, mel] + 2.0 * labels[:, None] - 4)
    features[:, 0] = np.arange(n)
    status = np.full(n, DONE, dtype=np.uint8)
    status[list(failed)] = FAILED
    features[status == FAILED] = np.nan
    attrs = {
        "feature_set": fs.name,
        "feature_params": fs.params,
        "feature_names": fs.names,
        "sample_rate": 22050,
        "offset": 0.0,
        "duration": 30.0,
        "window": 30.0 / windows if windows > 1 else None,
        "root": "/synthetic",
        "genres": list(genres),
    }
    store = FeatureStore.create(str(url), attrs=attrs, n_features=fs.size, rows_per_chunk=rows_per_chunk)
    store.plan_rows(paths, labels.tolist(), augment.tolist(), window.tolist())
    for block in range(store.n_blocks):
        start, stop = store.block_bounds(block)
        error = np.where(status[start:stop] == FAILED, "silent", "").astype(object)
        store.write_block(block, BlockRows(features[start:stop], status[start:stop], error))
    return store


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    return make_store(tmp_path / "f.zarr", failed=(4, 31))


def test_rows_are_the_done_rows_of_the_configured_genres_labelled_in_config_order(store):
    rows = select_rows(store, genres=["noise", "low"])
    assert rows.genres == ["noise", "low"]
    expected = [i for i in range(60) if i % 3 in (0, 2) and i not in (4, 31)]
    assert rows.index.tolist() == expected
    assert rows.label.tolist() == [0 if i % 3 == 2 else 1 for i in expected]
    assert select_rows(store, genres="all").genres == ["low", "high", "noise"]


def test_a_genre_without_rows_is_refused_by_name(store, tmp_path):
    with pytest.raises(
        BatchgenreError, match="no featurized rows of genre 'jazz'; the genres it holds .*low \\(20\\), high \\(18\\)"
    ):
        select_rows(store, genres=["low", "jazz"])
    all_failed = make_store(tmp_path / "g.zarr", per_genre=2, failed=(1, 4))
    with pytest.raises(BatchgenreError, match="no featurized rows of genre 'high'"):
        select_rows(all_failed, genres=["low", "high"])
    assert select_rows(all_failed, genres="all").genres == ["low", "noise"]  # "all" means the genres it has


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_split_is_seeded_stratified_disjoint_and_complete(store, seed):
    rows = select_rows(store, genres="all")
    split = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=seed)
    parts = [split.train, split.validation, split.test]
    assert sorted(np.concatenate(parts).tolist()) == rows.index.tolist()
    assert [len(p) for p in parts] == [34, 12, 12]
    share = np.bincount(rows.label) / len(rows.label)
    for part in parts:
        counts = np.bincount(rows.labels_of(part), minlength=3)
        assert np.all(np.abs(counts - share * len(part)) <= 1)  # stratified: every genre in proportion
        assert np.all(np.diff(part) > 0)
    again = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, [again.train, again.validation, again.test], strict=True))
    other = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=seed + 100)
    assert not np.array_equal(split.test, other.test)


@pytest.mark.parametrize("folds, repeats", [(2, 1), (3, 2), (5, 3)])
def test_repeated_k_fold_tests_every_row_once_per_repeat(store, folds, repeats):
    rows = select_rows(store, genres="all")
    splits = cross_validation(rows, folds=folds, repeats=repeats, validation=0.25, seed=3)
    assert len(splits) == folds * repeats
    tested = np.concatenate([s.test for s in splits])
    assert np.array_equal(np.bincount(tested, minlength=60)[rows.index], np.full(len(rows.index), repeats))
    for s in splits:
        assert (
            not set(s.train) & set(s.validation)
            and not set(s.train) & set(s.test)
            and not set(s.validation) & set(s.test)
        )
        assert len(s.train) + len(s.validation) + len(s.test) == len(rows.index)
    final = final_split(rows, validation=0.25, seed=3)
    assert len(final.test) == 0 and sorted(np.concatenate([final.train, final.validation])) == rows.index.tolist()


def test_too_few_rows_of_a_genre_for_the_folds_is_refused(tmp_path):
    rows = select_rows(make_store(tmp_path / "f.zarr", per_genre=3), genres="all")
    with pytest.raises(BatchgenreError, match="genre 'low' has 3 featurized rows, too few for 5-fold cross-validation"):
        cross_validation(rows, folds=5, repeats=1, validation=0.25, seed=0)


# Paths past 15 bytes, as real ones are: NumPy 2.4's searchsorted misplaces such StringDType strings.
@pytest.mark.parametrize("folder", ["", "a folder name well past fifteen bytes/"])
def test_augmented_copies_follow_their_source_and_are_never_scored(tmp_path, folder):
    store = make_store(tmp_path / "f.zarr", per_genre=10, copies=2, failed=(3, 7), folder=folder)  # 7: a copy of file 2
    rows = select_rows(store, genres="all")
    assert rows.index.tolist() == [i for i in range(0, 90, 3) if i != 3]  # sources only; file 1 failed
    assert 4 not in rows.copies and 5 not in rows.copies and 7 not in rows.copies  # file 1's copies have no source
    assert len(rows.copies) == 2 * 29 - 1
    np.testing.assert_array_equal(rows.copy_of, rows.copies - (rows.copies % 3))
    np.testing.assert_array_equal(rows.labels_of(rows.copies), rows.labels_of(rows.copy_of))
    for split in cross_validation(rows, folds=3, repeats=2, validation=0.25, seed=0):
        fit = rows.fit_rows(split.train)
        assert set(fit) == set(split.train) | {
            c for c, s in zip(rows.copies, rows.copy_of, strict=True) if s in split.train
        }
        scored = set(split.validation) | set(split.test)
        assert not scored & set(rows.copies) and not {s for s in rows.copy_of[np.isin(rows.copies, fit)]} & scored


def test_window_rows_follow_their_file_everywhere_and_a_file_is_scored_whole(tmp_path):
    # Three windows per file, one copy (three more windows); file 0 lost its first window, file 1 every window.
    store = make_store(
        tmp_path / "f.zarr",
        per_genre=6,
        copies=1,
        windows=3,
        failed=(0, 6, 7, 8),
        folder="a folder name past fifteen bytes/",
    )
    rows = select_rows(store, genres="all")
    files = np.arange(18) * 6
    assert rows.index.tolist() == [1] + files[2:].tolist()  # each file's first done window; file 1 has none
    assert rows.windows.tolist() == [2] + sorted((files[2:, None] + [1, 2]).ravel().tolist())
    np.testing.assert_array_equal(rows.window_of, np.where(rows.windows == 2, 1, rows.windows - rows.windows % 6))
    assert len(rows.copies) == 3 * 17 and not {9, 10, 11} & set(rows.copies)  # file 1's copy has no source
    np.testing.assert_array_equal(rows.labels_of(rows.windows), rows.labels_of(rows.window_of))
    for split in cross_validation(rows, folds=3, repeats=1, validation=0.25, seed=0):
        fit = set(rows.fit_rows(split.train))
        scored, file_of = rows.file_rows(split.test)
        assert set(scored) == {r for r in range(108) if r - r % 6 in set(split.test - split.test % 6) and r % 6 < 3} - {
            0
        }
        np.testing.assert_array_equal(
            file_of, [r if r in split.test else rows.window_of[rows.windows == r][0] for r in scored]
        )
        assert not fit & set(scored) and not fit & set(rows.file_rows(split.validation)[0])
        assert set(rows.file_rows(split.train)[0]) <= fit


def write_groups(path: Path, store: FeatureStore, *, per_group: int, skip: int | None = None) -> dict[str, str]:
    """A CSV that puts each run of ``per_group`` consecutive files in one group (an artist); returns path -> group."""
    paths = sorted({str(p) for p in store.column("path")})
    groups = {p: f"artist {i // per_group}" for i, p in enumerate(paths) if i != skip}
    path.write_text("path,group\n" + "".join(f'"{p}",{g}\n' for p, g in groups.items()))
    return groups


def group_of(store: FeatureStore, groups: dict[str, str], index: np.ndarray) -> set[str]:
    return {groups[str(p)] for p in store.column("path")[index]}


@pytest.mark.parametrize("folds, repeats, windows", [(3, 2, 1), (5, 1, 1), (3, 1, 3)])
def test_group_splits_keep_every_group_on_one_side_and_copies_and_windows_with_their_file(
    tmp_path, folds, repeats, windows
):
    store = make_store(tmp_path / "f.zarr", per_genre=12, copies=1, windows=windows)
    groups = write_groups(tmp_path / "meta.csv", store, per_group=3)  # files alternate genres: mixed-genre groups
    rows = with_groups(select_rows(store, genres="all"), store, tmp_path / "meta.csv")
    assert len(np.unique(rows.group)) == 12
    splits = cross_validation(rows, folds=folds, repeats=repeats, validation=0.25, seed=0)
    tested = np.concatenate([s.test for s in splits])
    assert np.array_equal(np.bincount(tested, minlength=store.n_rows)[rows.index], np.full(len(rows.index), repeats))
    one = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=0)
    for s in [*splits, one, final_split(rows, validation=0.25, seed=0)]:
        used = (rows.fit_rows(s.train), rows.file_rows(s.validation)[0], rows.file_rows(s.test)[0])
        parts = [group_of(store, groups, part) for part in used]
        assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
        assert len(s.train) + len(s.validation) + len(s.test) == len(rows.index)
    assert {len(s.test) for s in splits[:folds]} != {0}
    again = cross_validation(rows, folds=folds, repeats=repeats, validation=0.25, seed=0)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(splits, again, strict=True))


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,artist\nlow/00000.wav,a\n", "needs the columns path and group; its columns are file, artist"),
        (None, "no group for 1 of the 36 files of this run, like 'high/00004.wav'"),
        ("path,group\nlow/00000.wav,a\nlow/00000.wav,b\n", "line 3: low/00000.wav is in two groups, 'a' and 'b'"),
        ("path,group\nlow/00000.wav,\n", "line 2: an empty path or group"),
    ],
)
def test_bad_group_metadata_is_named(tmp_path, text, message):
    store = make_store(tmp_path / "f.zarr", per_genre=12)
    rows = select_rows(store, genres="all")
    if text is None:
        write_groups(tmp_path / "meta.csv", store, per_group=3, skip=1)
    else:
        (tmp_path / "meta.csv").write_text(text)
    with pytest.raises(BatchgenreError, match=message):
        with_groups(rows, store, tmp_path / "meta.csv")
    with pytest.raises(BatchgenreError, match="nowhere.csv: cannot read it"):
        with_groups(rows, store, tmp_path / "nowhere.csv")


def test_too_few_groups_for_the_folds_is_refused(tmp_path):
    store = make_store(tmp_path / "f.zarr", per_genre=4)
    write_groups(tmp_path / "meta.csv", store, per_group=4)  # 3 groups
    rows = with_groups(select_rows(store, genres="all"), store, tmp_path / "meta.csv")
    with pytest.raises(BatchgenreError, match="cannot make 4 folds that keep groups whole: 3 groups"):
        cross_validation(rows, folds=4, repeats=1, validation=0.25, seed=0)


def epoch_rows(dataset) -> list[np.ndarray]:
    """Column 0 (the row number) of every batch of one pass."""
    return [x[:, 0].astype(int) for x, _ in dataset.as_numpy_iterator()]


@pytest.mark.parametrize(
    "rows_per_chunk, batch_size, buffer, chunks",
    [(7, 5, 1024, 64), (4, 16, 3, 2), (64, 1, 10, 64), (1, 8, 8, 4), (3, 4, 1, 1)],
)
def test_the_stream_yields_each_training_row_exactly_once_per_epoch(
    tmp_path, rows_per_chunk, batch_size, buffer, chunks
):
    store = make_store(tmp_path / "f.zarr", rows_per_chunk=rows_per_chunk, failed=(4, 31))
    rows = select_rows(store, genres="all")
    train = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=0).train

    def shuffled():
        labels = rows.labels_of(train)
        return stream(
            store, train, labels, batch_size=batch_size, shuffle_seed=5, shuffle_buffer=buffer, shuffle_chunks=chunks
        )

    dataset, orders = shuffled(), []
    for _ in range(3):
        batches = epoch_rows(dataset)
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == train.tolist()  # every row, once
        assert all(len(b) == batch_size for b in batches[:-1]) and len(batches) == -(-len(train) // batch_size)
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])  # shuffled anew every epoch
    fresh = shuffled()
    # The same run for the same seed.
    assert all(np.array_equal(np.concatenate(epoch_rows(fresh)), order) for order in orders)


@pytest.mark.parametrize(
    "rows_per_chunk, batch_size, chunks, seed",
    [(7, 5, 64, 5), (4, 16, 2, 5), (1, 8, 4, 5), (7, 5, 64, None), (3, 4, 1, None)],
)
def test_a_repeated_stream_runs_the_passes_of_the_plain_one_each_in_batches_of_its_own(
    tmp_path, rows_per_chunk, batch_size, chunks, seed
):
    """What a fit trains on: one endless iteration whose pass p is the p-th iteration of the plain stream.

    Rows in one window (64 chunks of 7) or in many (2 chunks of 4 a window), shuffled or in order.
    """
    from batchgenre.training.dataset import batches

    store = make_store(tmp_path / "f.zarr", rows_per_chunk=rows_per_chunk, failed=(4, 31))
    rows = select_rows(store, genres="all")
    train = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=0).train

    def made(**repeat):
        labels = rows.labels_of(train)
        return stream(store, train, labels, batch_size=batch_size, shuffle_seed=seed, shuffle_chunks=chunks, **repeat)

    plain = made()
    passes = [epoch_rows(plain) for _ in range(3)]
    endless = made(repeat=True).as_numpy_iterator()
    per_pass = batches(len(train), batch_size)
    assert per_pass == len(passes[0]) and len(passes[0][-1]) < batch_size  # the short last batch of each pass
    for expected in passes:
        got = [next(endless)[0][:, 0].astype(int) for _ in range(per_pass)]
        assert [b.tolist() for b in got] == [b.tolist() for b in expected]
    assert seed is None or not np.array_equal(np.concatenate(passes[0]), np.concatenate(passes[1]))


@pytest.mark.parametrize("n_chunks, per_window", [(1, 64), (9, 64), (10, 3), (160, 64), (391, 64), (100, 7), (5, 1)])
def test_a_window_takes_one_chunk_from_each_stretch_of_the_store(n_chunks, per_window):
    from batchgenre.training.dataset import _windows

    windows = _windows(n_chunks, per_window=per_window, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(windows).tolist()) == list(range(n_chunks))  # every chunk, once
    stretch = len(windows)  # chunks per stretch = number of windows
    assert all(len(w) <= per_window for w in windows)  # memory: at most per_window chunks at once
    for w in windows:
        assert len(np.unique(w // stretch)) == len(w)  # never two chunks of one stretch
        assert len(w) >= -(-n_chunks // stretch) - 1  # and a chunk of every full stretch
    again = _windows(n_chunks, per_window=per_window, rng=np.random.default_rng(1))
    assert n_chunks <= per_window or not all(np.array_equal(a, b) for a, b in zip(windows, again, strict=True))
    in_order = _windows(n_chunks, per_window=per_window, rng=None)
    assert np.array_equal(np.concatenate(in_order), np.arange(n_chunks)) and all(len(w) <= per_window for w in in_order)


def genre_ordered_store(
    url: Path, *, genres: int, per_genre: int, rows_per_chunk: int
) -> tuple[FeatureStore, np.ndarray]:
    """A store whose rows are planned genre by genre, as sorted genre folders plan them, and their labels.

    Features are random, 4 a row, but column 0 holds the row number.
    """
    attrs = {"genres": [f"g{i}" for i in range(genres)]}
    store = FeatureStore.create(str(url), attrs=attrs, n_features=4, rows_per_chunk=rows_per_chunk)
    labels = np.repeat(np.arange(genres, dtype=np.int32), per_genre)
    store.plan_rows([f"g{g}/{i:05d}.wav" for i, g in enumerate(labels)], labels.tolist())
    rng = np.random.default_rng(0)
    for block in range(store.n_blocks):
        start, stop = store.block_bounds(block)
        x = rng.normal(size=(stop - start, 4)).astype(np.float32)
        x[:, 0] = np.arange(start, stop)
        done, no_error = np.full(stop - start, DONE, np.uint8), np.full(stop - start, "", dtype=object)
        store.write_block(block, BlockRows(x, done, no_error))
    return store, labels


@pytest.fixture(scope="module")
def genre_ordered(tmp_path_factory) -> tuple[FeatureStore, np.ndarray]:
    url = tmp_path_factory.mktemp("genres") / "g.zarr"
    return genre_ordered_store(url, genres=10, per_genre=1024, rows_per_chunk=64)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_batch_mixes_the_genres_as_the_store_does_however_the_store_orders_them(genre_ordered, seed):
    """10,240 rows in genre order, 160 chunks of 64 rows, read 64 chunks at most at once.

    A batch of b rows drawn at random from the whole store has a chi-square statistic against
    the store's genre shares of about 9 on average (10 genres: 9 degrees of freedom), and holds
    9.7 of 10 genres at b = 32 and all ten at b = 256. The former stream (chunks in random
    order through a 1024-row shuffle buffer) averaged 15-17 here at b = 32, and 209 at b = 256
    with 256-row chunks, where some of its batches held four genres.
    """
    store, labels = genre_ordered
    share = np.full(10, 0.1)
    for batch_size, least_mean, least in ((32, 9.3, 6), (256, 10, 10)):
        dataset = stream(store, np.arange(len(labels)), labels, batch_size=batch_size, shuffle_seed=seed)
        chi2, genres = [], []
        for _ in range(2):
            seen = []
            for x, y in dataset.as_numpy_iterator():
                np.testing.assert_array_equal(y, labels[x[:, 0].astype(int)])
                seen.append(x[:, 0])
                if len(y) == batch_size:
                    expected = share * batch_size
                    chi2.append(np.sum((np.bincount(y, minlength=10) - expected) ** 2 / expected))
                    genres.append(len(np.unique(y)))
            assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(len(labels)))
        assert np.mean(chi2) < 1.5 * 9, f"batch {batch_size}: mean chi-square {np.mean(chi2):.1f}"
        mix = f"batch {batch_size}: {np.mean(genres):.2f} genres, min {min(genres)}"
        assert np.mean(genres) >= least_mean and min(genres) >= least, mix


def test_the_stream_carries_the_right_labels_and_features(store):
    rows = select_rows(store, genres=["noise", "high"])
    dataset = stream(store, rows.index, rows.label, batch_size=4, shuffle_seed=1)
    for x, y in dataset.as_numpy_iterator():
        assert np.array_equal(y, rows.labels_of(x[:, 0].astype(int)))
    in_order = np.concatenate([x for x, _ in stream(store, rows.index, rows.label, batch_size=4).as_numpy_iterator()])
    assert np.array_equal(in_order, read_features(store, rows.index))
    assert np.array_equal(in_order[:, 0].astype(int), rows.index)


@pytest.mark.parametrize("seed", [None, 3])
def test_the_stream_reads_only_the_chunks_that_hold_its_rows(store, monkeypatch, seed):
    from zarr.storage import LocalStore

    read = []
    original = LocalStore.get

    async def spy(self, key, *args, **kwargs):
        if key.startswith("features/c/"):
            read.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", spy)
    index = np.array([0, 1, 15, 16, 20])  # chunks 0, 2 (14-20) only
    dataset = stream(store, index, np.zeros(5, dtype=np.int32), batch_size=2, shuffle_seed=seed)
    batches = list(dataset.as_numpy_iterator())
    assert sorted(read) == ["features/c/0/0", "features/c/2/0"]
    assert sorted(np.concatenate([x[:, 0] for x, _ in batches]).astype(int).tolist()) == index.tolist()


def test_an_empty_stream_has_no_batches(store):
    for seed in (None, 0):
        assert list(stream(store, np.array([], dtype=np.int64), np.array([]), batch_size=4, shuffle_seed=seed)) == []
