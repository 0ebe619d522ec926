"""The command line's value types and the option groups several commands share; argparse only, no work."""

from __future__ import annotations

import argparse
import difflib
import re
import sys

from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP

# Exit statuses, documented in the README.
EXIT_OK = 0
EXIT_USAGE = 2  # a bad command line or unusable input: one line on stderr says what
EXIT_SOME_FAILED = 3  # the run finished, but some files failed; they are listed


def whole_number(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number from ``minimum`` to ``maximum``, refused in words otherwise."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {n}")
        if maximum is not None and n > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {n}")
        return n

    return parse


positive = whole_number(1)


count = whole_number(0)


def seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not s >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return s


def positive_seconds(text: str) -> float:
    s = seconds(text)
    if s == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return s


MIB_PER_UNIT = {"": 1, "m": 1, "mib": 1, "g": 1024, "gib": 1024}


def mebibytes(text: str) -> int:
    """An argparse type: a size in MiB, bare (1024) or with a unit (512M, 1.5G, 2GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", text, flags=re.IGNORECASE)
    if not match or match[2].lower() not in MIB_PER_UNIT:
        raise argparse.ArgumentTypeError(
            f"must be a size in MiB like 1024, or with a unit like 512M or 2G, got {text!r}"
        )
    mib = round(float(match[1]) * MIB_PER_UNIT[match[2].lower()])
    if mib < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 MiB, got {text!r}")
    return mib


def genre_list(text: str) -> list[str]:
    genres = [g.strip() for g in text.split(",") if g.strip()]
    if not genres:
        raise argparse.ArgumentTypeError("give at least one genre, e.g. reggae,classical,rock")
    return genres


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("cluster")
    group.add_argument(
        "--workers", type=positive, default=2, help="local worker processes, one thread each (default 2)"
    )
    group.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    group.add_argument(
        "--file-timeout",
        type=positive_seconds,
        default=DEFAULT_FILE_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on a file after this long (default {DEFAULT_FILE_TIMEOUT:g})",
    )
    group.add_argument(
        "--memory-cap",
        type=mebibytes,
        default=DEFAULT_MEMORY_CAP,
        metavar="SIZE",
        help="give up on a file whose decoding helper needs more memory than this: MiB, or 512M, 2G "
        f"(default {DEFAULT_MEMORY_CAP})",
    )


def add_clip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offset", type=seconds, default=0.0, help="seconds into each file to start (default 0)")
    p.add_argument("--duration", type=seconds, default=30.0, help="seconds of audio per file (default 30)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    from batchgenre.classify.builtin import BUILTIN, TAG_THRESHOLD
    from batchgenre.classify.client import DEFAULT_MODEL

    p.add_argument(
        "--model",
        metavar="MODEL",
        help=f"a model.keras from `batchgenre train`, or {BUILTIN}: the built-in model, musicnn's Million Song "
        f"Dataset tagger, no training (a file called {BUILTIN} is ./{BUILTIN}). Default {DEFAULT_MODEL}, "
        f"or {BUILTIN} where there is none",
    )
    p.add_argument(
        "--tags",
        action="store_true",
        help="also give musicnn's 50 tags: the likely ones (probability at least "
        f"{TAG_THRESHOLD:g}) in a tags column, and each one's probability; from the same forward pass, for a "
        f"model whose features include musicnn (like robust+musicnn); always on with --model {BUILTIN}",
    )


def probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text!r}") from None
    if not 0 <= p <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return p


def add_confidence_option(p: argparse.ArgumentParser) -> None:
    from batchgenre.classify.builtin import BUILTIN
    from batchgenre.classify.builtin import DEFAULT_MIN_CONFIDENCE as BUILTIN_MIN_CONFIDENCE
    from batchgenre.classify.client import DEFAULT_MIN_CONFIDENCE

    p.add_argument(
        "--min-confidence",
        type=probability,
        metavar="P",
        help="call a file 'unknown' when no genre's mean probability reaches P, keeping the probabilities "
        f"(default {DEFAULT_MIN_CONFIDENCE:g}, with --model {BUILTIN} {BUILTIN_MIN_CONFIDENCE:g}; "
        "0 always names a genre)",
    )


def window_count(text: str) -> int:
    """An argparse type: how many windows to classify per file; ``all`` is 0, every window."""
    if text.strip().lower() == "all":
        return 0
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a whole number of windows, or all, got {text!r}") from None


def add_window_options(p: argparse.ArgumentParser) -> None:
    from batchgenre.classify.windows import DEFAULT_COUNT

    group = p.add_argument_group(
        "which audio", "by default a few windows spread over each file are decoded and their probabilities averaged"
    )
    group.add_argument(
        "--windows",
        type=window_count,
        metavar="N",
        help=f"classify N windows spread evenly over each file, decoding only those; all (or 0): every window, "
        f"--hop apart (default {DEFAULT_COUNT}, or all when --hop is given)",
    )
    group.add_argument(
        "--window",
        type=seconds,
        help="window length in seconds (default: the model's, from featurize --window; else 30)",
    )
    group.add_argument(
        "--hop", type=seconds, help="seconds between window starts with --windows all (default: the window)"
    )
    group.add_argument("--offset", type=seconds, help="classify one excerpt starting here instead (seconds)")
    group.add_argument("--duration", type=seconds, help="length of that excerpt in seconds (default 30)")


def windows_of(args: argparse.Namespace):
    from batchgenre.classify.windows import Windows

    return Windows.choose(
        count=args.windows, window=args.window, hop=args.hop, offset=args.offset, duration=args.duration
    )


class Parser(argparse.ArgumentParser):
    """argparse with whole option names only, and usage errors said in one line.

    A misspelt option is named before argparse can take it for something else: ``featurize
    --wrkers 2 gtzan/`` would otherwise blame ``gtzan/``, and ``--ouput`` would print the
    top-level usage.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        self._refuse_unknown_options(args)
        return super().parse_args(args, namespace)

    def _refuse_unknown_options(self, args: list[str]) -> None:
        subparsers = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        parser, known = self, set(self._option_string_actions)
        for arg in args:
            if arg == "--":
                return
            if subparsers is not None and parser is self and arg in subparsers.choices:
                parser = subparsers.choices[arg]
                known = set(parser._option_string_actions)
            elif arg.startswith("--") and arg.split("=", 1)[0] not in known:
                name = arg.split("=", 1)[0]
                close = difflib.get_close_matches(name, sorted(k for k in known if k.startswith("--")), n=1)
                parser.error(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))

    def error(self, message: str):
        positionals = " ".join(a.metavar or a.dest for a in self._actions if not a.option_strings)
        usage = f"{self.prog} [options] {positionals}".rstrip()
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; usage: {usage} (more in `{self.prog} --help`)\n")


def escaped(text: str) -> str:
    """``text`` as argparse shows it: argparse formats help with %, so a literal % is doubled."""
    return text.replace("%", "%%")
