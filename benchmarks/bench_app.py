"""The app's interactive figures, headless (Textual's run_test): first frame on a 3,000-node tree,
one key to redraw net of the harness, a jump to the end of a 16 MiB hex space, and a tour chapter
switch.

Run: `.venv/bin/python -m benchmarks.bench_app [--runs N]`; `make bench` includes it. Budgets: first
frame <= 1 s, a key to redraw <= 50 ms (README, "Budgets"); a tour chapter switch <= 100 ms.
"""
from __future__ import annotations

import asyncio
import statistics
import time

import sample_images
from benchmarks.common import Timing, bench_main
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


def _tour_chapters(image_path, stops) -> list:
    """Eight chapters, each told over another root than the one before: the image's tree (as
    load_image decodes OVMF.fd) and the HOB list of a stop, so every switch refills the tree."""
    from inspector.image import load_image
    from inspector.tour.model import Writer

    image = load_image(image_path)
    root = image.root
    dxe = next(s for s in stops if s.tree is not None)
    chapters = []
    for i in range(8):
        if i % 2 == 0:
            w = Writer(f"flash-{i}", "offline", f"The flash image ({i})", root=root)
            fv = next(n for n in root.children if n.kind == "fv")
            w.say("It holds {n} volumes; the first is {length} bytes long.", w.count("n", root, "fv"),
                  w.field("length", fv, "FvLength"))
        else:
            w = Writer(f"dxe-{i}", "dxe-core", f"The DXE core ({i})", root=dxe.tree, stop=dxe.index)
            w.say("The HOB list holds {n} HOBs.", w.count("n", dxe.tree))
        chapters.append(w.done())
    return chapters, image


async def _tour_switches(chapters, stops, image) -> tuple[float, float]:
    """Median time of n / p to redraw, and of a key bound to nothing (the harness)."""
    from views.tour_app import TourApp
    from views.widgets.chapter_text import ChapterText

    app = TourApp(chapters, stops, image)
    async with app.run_test(size=SIZE) as pilot:
        while not isinstance(app.focused, ChapterText):
            await pilot.pause(0.01)
        screen = app.tour_screen
        # The first pass builds each root's index; time the switches after it.
        for _ in range(len(chapters) - 1):
            await pilot.press("n")
        await pilot.pause()
        switches, idle = [], []
        for key in "p" * (len(chapters) - 1) + "n" * (len(chapters) - 1):
            for k, times in ((key, switches), ("z", idle)):
                t0 = time.perf_counter()
                await pilot.press(k)
                await pilot.pause()
                times.append(time.perf_counter() - t0)
        assert screen.position == len(chapters) - 1
    return statistics.median(switches) - statistics.median(idle), statistics.median(switches)


def bench_tour(runs: int) -> list[Timing]:
    path = sample_images.bookworm("OVMF.fd")
    if path is None or sample_images.bookworm("OVMF_CODE_4M.fd") is None:
        return [Timing("tour chapter switch: bookworm OVMF images missing (install `ovmf`)", float("nan"), [])]
    from tests.views.live_helpers import real_stops

    stops = real_stops()
    chapters, image = _tour_chapters(path, stops)
    nets, gross = [], []
    for _ in range(runs):
        net, whole = asyncio.run(_tour_switches(chapters, stops, image))
        nets.append(net)
        gross.append(whole)
    return [
        Timing("tour chapter switch (n/p) to redraw, net of the harness", statistics.median(nets), nets,
               note=f"target <= 100 ms; with the harness {statistics.median(gross) * 1000:.0f} ms"),
    ]


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
        *bench_tour(runs),
    ]


if __name__ == "__main__":
    bench_main(bench, __doc__)
