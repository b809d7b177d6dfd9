"""The app's interactive figures, headless (Textual's run_test): first frame on a 3,000-node tree,
one key to redraw net of the harness, and a jump to the end of a 16 MiB hex space.

Run: `.venv/bin/python -m benchmarks.bench_app [--runs N]`; `make bench` includes it. Budgets: first
frame <= 1 s, a key to redraw <= 50 ms (README, "Budgets").
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import sample_images
from benchmarks.common import Timing, machine
from decoders.model import Node, Space

SIZE = (120, 40)


def _big_tree(image: bytes, count: int) -> Node:
    """`count` nodes over real bytes: volumes of 100 files each, as the view tests build them."""
    from tests.views.handtree import big_tree

    return big_tree(image, count)


async def _first_frame_and_keys(root: Node, keys: int) -> tuple[float, float]:
    from views.app import FwInspectApp

    t0 = time.perf_counter()
    app = FwInspectApp(root, "synthetic")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        first = time.perf_counter() - t0
        await pilot.press("down", "enter")  # open the first volume: 100 files under the cursor
        await pilot.pause()
        # "down" selects a new node (fields, bytes, tree); "z" is bound to nothing: the difference
        # of the medians is the redraw net of the harness.
        times: dict[str, list[float]] = {"down": [], "z": []}
        for _ in range(keys):
            for key in times:
                t1 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                times[key].append(time.perf_counter() - t1)
    return first, statistics.median(times["down"]) - statistics.median(times["z"])


async def _hex_jump() -> float:
    from views.app import FwInspectApp

    blob = bytes(range(256)) * (16 << 12)  # 16 MiB
    app = FwInspectApp(Node("blob", "16 MiB", Space("blob", blob), 0, len(blob)), "blob")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        app.screen.goto("0xfffff0")
        await pilot.pause()
        return time.perf_counter() - t0


def bench(runs: int) -> list[Timing]:
    path = sample_images.bookworm("OVMF.fd")
    if path is None:
        return [Timing("app benchmarks: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    root = _big_tree(path.read_bytes(), 3000)
    firsts, redraws, jumps = [], [], []
    for _ in range(runs):
        first, redraw = asyncio.run(_first_frame_and_keys(root, 7))
        firsts.append(first)
        redraws.append(redraw)
        jumps.append(asyncio.run(_hex_jump()))
    return [
        Timing("app: first frame, 3,000-node tree", statistics.median(firsts), firsts, note="budget <= 1 s"),
        Timing("app: a key to redraw, net of the harness", statistics.median(redraws), redraws,
               note="budget <= 50 ms"),
        Timing("app: hex view jump to the end of 16 MiB + redraw", statistics.median(jumps), jumps),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(machine())
    for t in bench(args.runs):
        print(t.row())


if __name__ == "__main__":
    main()
