"""The hex cursor's path line, headless (Textual's run_test): from an arrow key in the bytes to the
line naming the nodes that hold the new byte redrawn, on the real decode of Debian's OVMF.fd.

Two places: SecMain's code in the image (7 nodes deep) and DxeCore's code inside the LZMA
section's DXEFV (11 nodes, the path continued out of the decompressed blob). Each key is timed
with a key bound to nothing after it (the harness: pilot, message loop, refresh); the figure is the
difference of the medians. The lookup and the line's text alone (NodeIndex.chain + path_text) are
timed in process too.

Run: `.venv/bin/python -m benchmarks.bench_hex_cursor [--runs N]`. Budget: a cursor move to the
path line redrawn <= 30 ms.
"""
from __future__ import annotations

import asyncio
import statistics
import time

import sample_images
from benchmarks.common import Timing, bench_main

SIZE = (120, 40)
KEYS = 40  # arrow presses per run: right and down alternately


async def _moves(root, node, start: int) -> tuple[float, float]:
    """(median key -> path line redrawn, median idle key) with the cursor starting at `start`."""
    from views.app import FwInspectApp
    from views.widgets.hex_view import HexView

    app = FwInspectApp(root, "OVMF.fd")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.node_tree.reveal(node)
        await pilot.pause()
        hv = screen.query_one(HexView)
        hv.focus()
        hv.move_cursor_to(start)
        await pilot.pause()
        line = screen.query_one("#hex-path")
        moves, idle = [], []
        for i in range(KEYS):
            key = "right" if i % 2 else "down"
            t0 = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            moves.append(time.perf_counter() - t0)
            # The line shows the byte the cursor is on now: the figure is of a real redraw.
            assert str(line.render()).startswith(f"0x{hv.cursor:x}"), str(line.render())
            t0 = time.perf_counter()
            await pilot.press("z")
            await pilot.pause()
            idle.append(time.perf_counter() - t0)
    return statistics.median(moves), statistics.median(idle)


def _lookup(root, space, start: int, count: int = 2000) -> float:
    from inspector.nodes_at import NodeIndex
    from views.screens.inspect import path_text

    index = NodeIndex(root)
    t0 = time.perf_counter()
    for i in range(count):
        path_text(space, start + i, index.chain(space, start + i))
    return (time.perf_counter() - t0) / count


def bench(runs: int) -> list[Timing]:
    path = sample_images.bookworm("OVMF.fd")
    if path is None:
        return [Timing("hex cursor: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    from inspector.sources import load_source

    root = load_source(path)[1]
    secmain = next(next(f.find("pe")) for f in root.find("ffs") if f.get("UI") == "SecMain")
    dxecore = next(next(f.find("pe")) for f in root.find("ffs") if f.get("UI") == "DxeCore")
    out = []
    for label, pe in (("SecMain in the image", secmain), ("DxeCore in the LZMA blob's DXEFV", dxecore)):
        text = next(s for s in pe.children if s.title.startswith(".text"))
        nets, gross = [], []
        for _ in range(runs):
            move, idle = asyncio.run(_moves(root, pe, text.offset + 0x100))
            nets.append(move - idle)
            gross.append(move)
        out.append(Timing(f"hex cursor move to path line redrawn, {label}, net of the harness",
                          statistics.median(nets), nets,
                          note=f"budget <= 30 ms; with the harness {statistics.median(gross) * 1000:.1f} ms"))
        per = [_lookup(root, text.space, text.offset) for _ in range(runs)]
        out.append(Timing(f"path lookup + line text alone, {label}", statistics.median(per), per))
    return out


if __name__ == "__main__":
    bench_main(bench, __doc__)
