"""Summarise ``py-spy record --format raw`` files: where each service's Python time went.

``throughput.py --profile DIR`` and ``precision.py --profile DIR`` leave one raw file per
service (a line per distinct stack, ``frame;frame;... count``, sampled only while a
thread holds the GIL). This prints, per file, the share of samples of each thread and the
functions with the largest inclusive share (the function or anything it called) and self
share, as Markdown, for docs/benchmarks.md.

    .venv/bin/python bench/profile_summary.py /tmp/profile --top 15
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_THREAD = re.compile(r"^thread \(\d+\): ?")
_NUMBERED = re.compile(r"-\d+$")
_BOOTSTRAP = ("Thread._bootstrap", "Thread.run (threading.py", "Thread._bootstrap_inner")


@dataclass
class Profile:
    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)


def read_raw(path: Path) -> Profile:
    profile = Profile()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith("thread") else "?"
        profile.samples += samples
        name = _THREAD.sub("", thread) or thread
        profile.threads[_NUMBERED.sub("-*", name)] += samples  # slot-1, slot-2... as slot-*
        calls = [f for f in frames[1:] if not f.startswith(_BOOTSTRAP)] or frames[-1:]
        profile.own[calls[-1]] += samples
        for frame in set(calls):
            profile.inclusive[frame] += samples
    return profile


def markdown(name: str, profile: Profile, top: int) -> str:
    total = profile.samples or 1
    lines = [f"#### {name} ({profile.samples:,} samples holding the GIL)", ""]
    lines += ["| thread | share |", "|---|---|"]
    lines += [f"| {t} | {n / total:.0%} |" for t, n in profile.threads.most_common(6)]
    lines += ["", "| function (inclusive) | share | self |", "|---|---|---|"]
    for frame, n in profile.inclusive.most_common(top):
        lines.append(f"| `{frame}` | {n / total:.0%} | {profile.own[frame] / total:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="where --profile wrote its files")
    parser.add_argument("--top", type=int, default=15, help="functions per service")
    args = parser.parse_args()
    files = sorted(args.directory.glob("*.txt"))
    if not files:
        parser.error(f"no py-spy raw files (*.txt) in {args.directory}: run with --profile")
    print("\n\n".join(markdown(path.stem, read_raw(path), args.top) for path in files))


if __name__ == "__main__":
    main()
