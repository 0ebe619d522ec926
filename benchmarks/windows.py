"""Windows spread over a song (``--windows N``) against every window: time, audio decoded, accuracy.

    python -m benchmarks.windows --corpus ../shared/data/gtzan-mini            # 8 library songs, 2 songs a genre a fold
    python -m benchmarks.windows --songs 4 --per-genre 1 --repeats 1           # a quick look

Time: songs of benchmarks.library's generator (3-5 minutes, 44.1 kHz stereo, MP3/FLAC/M4A/OGG),
each cut as a worker cuts it (``windows.file_windows``: decode, resample, features), on one core,
medians over repeats; "decoded" is the share of the song inside the chosen windows, plus FFmpeg's
pre-roll per window where FFmpeg decodes.

Accuracy: each genre's clips of the corpus, sorted, are dealt alternately into two halves. A model
is trained by the CLI (``featurize``, then ``train configs/all_genres.toml``: its own 60/20/20
split inside the half, refit on train + validation) on one half, and tested on songs made of the
other half's clips of one genre (benchmarks.library's ``song_audio``: the clips in a seeded order,
crossfaded, looped where they run out, 3-5 minutes, FLAC); then the halves swap. A song's genre
is the argmax of its windows' mean probabilities, as classify-dir gives it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import add_cache_option, machine, median_seconds, parser, quiet_logging
from benchmarks.library import (
    FORMATS,
    SONG_SECONDS,
    Song,
    cached_library,
    genre_clips,
    song_audio,
    trained_through_cli,
    write_audio,
)

COUNTS = (1, 2, 3, 4, 5)
WINDOW = 30.0
SR = 22050
_FFMPEG_FORMATS = {"m4a"}


def halves(corpus: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each genre's clips dealt alternately into two halves, by sorted name."""
    clips = genre_clips(corpus)
    return {g: c[0::2] for g, c in clips.items()}, {g: c[1::2] for g, c in clips.items()}


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:10]


def trained_model(corpus: Path, half: dict[str, list[str]], *, cache: Path, workers: int) -> Path:
    """A model the CLI trains on ``half`` alone (configs/all_genres.toml's settings); cached."""
    run = cache / f"model-half-{_key(str(corpus), half)}"
    if (run / "model.keras").is_file():
        return run / "model.keras"
    config = Path(__file__).resolve().parents[1] / "configs" / "all_genres.toml"
    with tempfile.TemporaryDirectory() as tmp:
        for genre, clips in half.items():  # the half as a GTZAN-layout folder of links
            (Path(tmp) / genre).mkdir(parents=True)
            for clip in clips:
                (Path(tmp) / clip).symlink_to(corpus / clip)
        # The robust set, whatever the config asks: these figures are the decoder's and the window policy's.
        return trained_through_cli(
            ["featurize", tmp, "--workers", workers], ["train", config, "--features", "robust"], run, what="on a half"
        )


def held_out_songs(corpus: Path, half: dict[str, list[str]], *, per_genre: int, cache: Path, seed: int) -> list[Song]:
    """``per_genre`` FLAC songs of 3-5 minutes per genre, each from ``half``'s clips of that genre; cached."""
    root = cache / f"held-out-{_key(str(corpus), half, per_genre, seed)}"
    rng = np.random.default_rng(seed)
    songs = []
    for genre, clips in sorted(half.items()):
        for k in range(per_genre):
            order = tuple(str(c) for c in rng.permutation(clips))
            seconds = float(rng.uniform(*SONG_SECONDS))
            songs.append(Song(str(root / f"{genre}-{k}.flac"), genre, "flac", seconds, order, int(rng.integers(2**31))))
    root.mkdir(parents=True, exist_ok=True)
    for song in songs:
        if not Path(song.path).is_file():
            partial = Path(song.path).with_suffix(".partial.flac")
            write_audio(partial, song_audio(song, corpus=corpus), fmt="flac")
            partial.rename(song.path)
    return songs


def probabilities(model, path: Path, *, feature_set: str, count: int | None) -> np.ndarray | None:
    """The mean of a song's window probabilities [shape=(genres,)], or None when no window is usable."""
    from batchgenre.classify.windows import Windows, file_windows

    windows = Windows(window=WINDOW, count=count)
    item = file_windows(path, name=path.name, feature_set=feature_set, sr=SR, windows=windows)
    return None if item.features is None else model.probabilities(item.features).mean(axis=0)


def decoded_share(path: Path, fmt: str, *, count: int | None) -> float:
    """Share of the song inside the windows ``count`` chooses (every window: all of it), FFmpeg's pre-roll included."""
    from batchgenre.audio import PREROLL_SECONDS, probe_duration, spread_starts

    if count is None:
        return 1.0
    duration = probe_duration(path)
    starts = spread_starts(duration, window=WINDOW, count=count)
    preroll = PREROLL_SECONDS if fmt in _FFMPEG_FORMATS else 0.0
    return sum(min(WINDOW, duration - s) + min(preroll, s) for s in starts) / duration


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--songs", type=int, default=8, help="library songs timed, formats dealt evenly (default 8)")
    p.add_argument("--per-genre", type=int, default=2, help="held-out songs per genre per half (default 2)")
    p.add_argument("--workers", type=int, default=2, help="workers of the featurize that trains each model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=("time", "accuracy"), help="measure one of the two (default both)")
    add_cache_option(p, what="generated songs and trained models")
    args = p.parse_args()
    if args.corpus is None:
        raise SystemExit("give --corpus or set $BATCHGENRE_GTZAN to gtzan-mini")
    quiet_logging()
    corpus = Path(args.corpus).resolve()
    policies: list[int | None] = [None, *COUNTS]
    name = {None: "all", **{n: str(n) for n in COUNTS}}

    if args.only != "accuracy":
        time_per_format(corpus, args, policies, name)
    if args.only != "time":
        accuracy(corpus, args, policies, name)


def time_per_format(corpus: Path, args, policies: list[int | None], name: dict) -> None:
    """Print, per format, a worker's seconds per song (decode, resample, features) and the share decoded, per policy."""
    from threadpoolctl import threadpool_limits

    from batchgenre.classify.windows import Windows, file_windows

    library = cached_library(corpus, cache=args.cache, songs=args.songs, seed=args.seed, jobs=2)
    feature_set = "robust"
    print(f"# time: {len(library.songs)} songs of {library.root}; {args.repeats} repeats, medians, one core")
    print(f"# {machine()}")
    print(f"{'format':<6} {'songs':>5} {'min':>5} " + " ".join(f"{'N=' + name[n]:>21}" for n in policies))
    print(f"{'':<6} {'':>5} {'':>5} " + " ".join(f"{'s/song  vs all decoded':>21}" for _ in policies))
    with threadpool_limits(1):
        for fmt in FORMATS:
            group = [s for s in library.songs if s.fmt == fmt]
            if not group:
                continue
            cells, every = [], 0.0
            for count in policies:
                spent = statistics.median(
                    median_seconds(
                        lambda s=s, count=count: file_windows(
                            library.root / s.path,
                            name=s.path,
                            feature_set=feature_set,
                            sr=SR,
                            windows=Windows(window=WINDOW, count=count),
                        ),
                        repeats=args.repeats,
                    )
                    for s in group
                )
                share = statistics.median(decoded_share(library.root / s.path, fmt, count=count) for s in group)
                every = every if count else spent
                cells.append(f"{spent:6.3f} {spent / every:5.2f}x {share:4.0%}")
            minutes = statistics.median(s.seconds for s in group) / 60
            print(f"{fmt:<6} {len(group):>5} {minutes:5.1f} " + " ".join(f"{c:>21}" for c in cells))


def accuracy(corpus: Path, args, policies: list[int | None], name: dict) -> None:
    """Print each policy's accuracy on held-out songs, and how often it names the genre every window names."""
    from batchgenre.classify.client import load_classifier

    results: dict[int | None, list[bool]] = {n: [] for n in policies}
    agree: dict[int | None, list[bool]] = {n: [] for n in policies}
    halves_ = halves(corpus)
    for train, test in (halves_, halves_[::-1]):
        model = load_classifier(trained_model(corpus, train, cache=args.cache, workers=args.workers))
        metadata, genres = model.metadata, model.genres
        for song in held_out_songs(corpus, test, per_genre=args.per_genre, cache=args.cache, seed=args.seed):
            every = None
            for count in policies:
                mean = probabilities(model, Path(song.path), feature_set=metadata["feature_set"], count=count)
                guess = None if mean is None else genres[int(np.argmax(mean))]
                every = guess if count is None else every
                results[count].append(guess == song.genre)
                agree[count].append(guess == every)
    songs = len(results[None])
    print(f"# accuracy: {songs} held-out songs of 3-5 min ({args.per_genre} per genre per half), ten genres")
    print(f"{'N':<5} {'accuracy':>8} {'same genre as all windows':>26}")
    for count in policies:
        print(f"{name[count]:<5} {np.mean(results[count]):8.3f} {np.mean(agree[count]):26.3f}")


if __name__ == "__main__":
    main()
