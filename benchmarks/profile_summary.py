"""Where a worker's time went: summarise a profile written by ``bench_*.py --profile``.

    python benchmarks/profile_summary.py benchmarks/results/pyspy-<case>.txt [--top 25]
    python benchmarks/profile_summary.py benchmarks/results/profile-<case>.prof [--top 25]

Both cover the processing window only (from ``go`` to the last task). For py-spy (raw collapsed stacks
of every thread, sampled while running) it prints the leaf functions ("self" time), the functions
on the most stacks (inclusive time), and self time per package or repository file. For cProfile
(main thread only: work done in driver threads, e.g. aiosqlite's, shows up as the event loop waiting
in ``epoll``) it prints the same from ``pstats``.
"""

from __future__ import annotations

import argparse
import pstats
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def bucket(filename: str) -> str:
    """``…/site-packages/pydantic/main.py`` -> ``pydantic``; ``…/lib/python3.11/asyncio/x.py`` ->
    ``stdlib:asyncio``; a file of this repository -> its path from the repository root."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else filename
    for anchor in ("sheppy_core", "plugins", "benchmarks"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    for i, part in enumerate(parts):
        if part.startswith("python3") and i + 1 < len(parts):
            return "stdlib:" + parts[i + 1].removesuffix(".py")
    return filename


def short(filename: str, func: str, line: str | int | None) -> str:
    return f"{bucket(filename)}:{func}" + (f":{line}" if line else "")


def summarise_raw(path: Path, top: int) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own_bucket: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for text in path.read_text().splitlines():
        stack, _, count_text = text.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        names = []
        for frame in frames:
            m = FRAME.match(frame)
            if m is None or m.group("func").startswith(("thread", "process")):
                if frame.startswith("thread"):
                    threads[frame] += count
                continue
            names.append((m.group("func"), m.group("file"), m.group("line")))
        if not names:
            continue
        func, filename, _ = names[-1]
        own[short(filename, func, None)] += count
        own_bucket[bucket(filename)] += count
        for name in {short(f, fn, None) for fn, f, _ in names}:
            inclusive[name] += count
    print(f"{path.name}: {total} samples (all threads, active only) in the processing window")
    if threads:
        print("  per thread: " + ", ".join(f"{t} {c / total:.0%}" for t, c in threads.most_common(6)))
    print(f"\nself time, top {top}")
    for name, count in own.most_common(top):
        print(f"  {count / total:6.1%}  {name}")
    print(f"\ninclusive time (on the stack), top {top}")
    for name, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nself time per package / file")
    for name, count in own_bucket.most_common(top):
        print(f"  {count / total:6.1%}  {name}")


def summarise_cprofile(path: Path, top: int) -> None:
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values()) or 1e-9

    def name(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        return func if filename == "~" else short(filename, func, line)

    print(f"{path.name}: {total:.3f} s of main-thread time in the processing window")
    print(f"\nown time, top {top}")
    for key, (_, _, tt, _, _) in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        print(f"  {tt / total:6.1%}  {tt:7.3f} s  {name(key)}")
    print(f"\ncumulative time, top {top} (coroutine resumptions count as calls)")
    for key, (_, _, _, ct, _) in sorted(entries.items(), key=lambda kv: -kv[1][3])[:top]:
        print(f"  {ct / total:6.1%}  {ct:7.3f} s  {name(key)}")
    per: Counter[str] = Counter()
    for (filename, _, func), (_, _, tt, _, _) in entries.items():
        per[func if filename == "~" else bucket(filename)] += tt
    print("\nown time per package / file")
    for key, tt in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {tt / total:6.1%}  {tt:7.3f} s  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    if args.profile.suffix == ".prof":
        summarise_cprofile(args.profile, args.top)
    else:
        summarise_raw(args.profile, args.top)


if __name__ == "__main__":
    main()
