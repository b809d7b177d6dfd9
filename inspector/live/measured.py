"""Predicted PCR0/PCR7 next to the replayed ones, at every live stop whose tree holds a TCG log.

Once Tcg2Dxe has its log (SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c), the DXE tables of a stop include it
(inspector/live/modules.py dxe_tables, by the route of inspector/locate.py). This module adds the
`measure-check` node beside it: for PCR0 and PCR7 and every bank the log has, the value predicted
from the session's image and VARS (decoders/measure/tpm.py predict_tpm), the value replayed from
the log as it is at this stop (decoders/eventlog/replay.py), equal or not, and the first reason they
part (decoders/measure/against.py explain_against, whose node is a child).

The log grows during the boot: PCR0's separator is measured at ReadyToBoot (Tcg2Dxe.c OnReadyToBoot)
and PCR7's after the Secure Boot policy (MeasureSecureBootPolicy, when the variable write protocol
appears). So each PCR is compared with its prediction "so far": the predicted events up to as many as
the log holds for that PCR.

The prediction is made once per session, on the first stop that has a log, from what the session
already holds (the decoded image, the VARS path QEMU was started with): no gdbstub traffic. The log
is the one already decoded into the stop's tree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from decoders.measure.against import explain_against
from decoders.measure.model import BANKS, Prediction
from decoders.model import Node

PCRS = (0, 7)
# How deep in a stop's tree the event logs sit: locate() appends them to the node it is given,
# which is the stop's tree itself (dxe-state) or a handoff node's child list (bds).
LOG_DEPTH = 2

Predictor = Callable[[Node, Path | None, tuple[str, ...]], Prediction]


def predict_with_tpm(image_root: Node, vars_path: Path | None, banks: tuple[str, ...],
                     peifv_ram: bytes | None = None) -> Prediction:
    """predict_tpm on the session's image, with the VARS file when there is one."""
    from decoders.measure.tpm import MAX_VARS_FILE, load_vars, predict_tpm

    vars_root = None
    if vars_path is not None:
        with open(vars_path, "rb") as f:      # one byte past the limit says it is too large
            vars_root = load_vars(f.read(MAX_VARS_FILE + 1), Path(vars_path).name)
    return predict_tpm(image_root, vars_root, banks=banks, peifv_ram=peifv_ram)


class MeasureCheck:
    """The `measure-check` node of a session's stops; the prediction is made lazily and cached."""

    def __init__(self, image_root: Node, vars_path: str | Path | None = None, *, vars_known: bool = True,
                 predictor: Predictor = predict_with_tpm,
                 read_phys: Callable[[int, int], bytes] | None = None):
        self.image_root = image_root
        # Guest physical memory: PEIFV is read there once (the PEIMs that run before Tcg2Pei write
        # their globals into it, so only the RAM copy gives the logged digest).
        self.read_phys = read_phys
        self.vars_path = Path(vars_path) if vars_path is not None else None
        self.vars_known = vars_known          # False: attached to a guest whose VARS we do not know
        self.predictor = predictor
        self._cache: dict[tuple[str, ...], Prediction | str] = {}

    @classmethod
    def for_session(cls, image, qemu=None, read_phys=None) -> "MeasureCheck":
        """For a Session: its decoded image, and the VARS template the QEMU we started booted from
        (QemuProcess.vars; None means -bios, the image's own varstore)."""
        if qemu is not None:
            return cls(image.root, getattr(qemu, "vars", None), read_phys=read_phys)
        return cls(image.root, None, vars_known=False, read_phys=read_phys)

    def prediction(self, banks: tuple[str, ...]) -> Prediction | str:
        """The prediction in these banks, or why there is none (made once per set of banks)."""
        if banks not in self._cache:
            try:
                pred = self.predictor(self.image_root, self.vars_path, banks)
                ram = self._peifv_ram(pred)
                if ram is not None:
                    pred = self.predictor(self.image_root, self.vars_path, banks, peifv_ram=ram)
                self._cache[banks] = pred
            except Exception as e:   # a live stop must survive any predictor failure; it is reported
                self._cache[banks] = f"the prediction failed: {type(e).__name__}: {e}"
        return self._cache[banks]

    def _peifv_ram(self, pred) -> bytes | None:
        """PEIFV as the guest holds it (one read), when the prediction says where and memory can be
        read; None otherwise (the prediction then hashes the image's decompressed PEIFV)."""
        where = getattr(pred, "peifv_range", None)
        if self.read_phys is None or where is None:
            return None
        base, length = where
        try:
            data = self.read_phys(base, length)
        except Exception:   # noqa: BLE001 - no RAM copy: the image's PEIFV is predicted instead
            return None
        return data if len(data) == length else None

    def attach(self, tree: Node | None) -> Node | None:
        """Append the measure-check node to `tree` when it holds a TCG log; returns it."""
        if tree is None:
            return None
        node = self.node(tree)
        if node is not None:
            tree.append(node)
        return node

    def node(self, tree: Node) -> Node | None:
        log = find_tcg_log(tree)
        if log is None:
            return None
        algs = log.get("Algorithms")
        log_banks = tuple(b for b in BANKS if isinstance(algs, dict) and b in algs)
        node = Node("measure-check", "PCR0/PCR7: predicted vs replayed", log.space, 0, log.size)
        node.add("Log", log.get("Address"), display=log.title)
        node.add("Vars", str(self.vars_path) if self.vars_path else None,
                 display=str(self.vars_path) if self.vars_path else
                 ("the image's own variable store" if self.vars_known else "unknown"))
        if not self.vars_known:
            node.note(None, "attached to a guest: its VARS are not known, so PCR7 is predicted from the "
                            "image's own variable store")
        if not log_banks:
            node.problem(None, "the log lists no bank that can be predicted (sha1, sha256, sha384, sha512)")
            return node
        pred = self.prediction(log_banks)
        if isinstance(pred, str):
            node.problem(None, pred)
            return node
        for p in getattr(pred, "problems", []) or []:
            node.problems.append(p)
        against = explain_against(pred, log, so_far=True)
        reasons: dict[int, str] = {}
        for d in against.children:
            if d.kind == "against-divergence" and d.get("Kind") != "data":
                reasons.setdefault(d.get("PCRIndex"), d.get("Reason"))
        checked = differ = 0
        for r in against.children:
            if r.kind != "against-register" or int(r.get("Register")[3:]) not in PCRS:
                continue
            child = node.append(_register(r, reasons.get(int(r.get("Register")[3:]))))
            node.add(f"{r.get('Register')}.{r.get('Bank')}", r.get("Equal"),
                     display=f"{r.field('Equal').display}: predicted {_short(r.get('Predicted'))}, "
                             f"replayed {_short(r.get('Replayed'))}")
            checked += 1
            differ += not r.get("Equal")
        node.add("FirstDivergence", against.get("FirstDivergence"), display=against.field("FirstDivergence").display)
        node.append(against)
        # The title stays the same from stop to stop (the live screen keeps the selection by
        # kind and title); the verdict is a field.
        node.add("Summary", differ, display=f"all {checked} equal so far" if not differ else f"{differ} of {checked} differ")
        return node


def _register(r: Node, reason: str | None) -> Node:
    """One PCR in one bank, from explain_against's against-register node."""
    reg, bank, equal = r.get("Register"), r.get("Bank"), r.get("Equal")
    n = Node("measure-check-register", "")
    n.add("Register", reg)
    n.add("Bank", bank)
    n.add("Predicted", r.get("Predicted"), display=r.field("Predicted").display)
    n.add("Replayed", r.get("Replayed"), display=r.field("Replayed").display)
    n.add("Equal", equal, display=r.field("Equal").display)
    if reason and not equal:
        n.add("Reason", reason)
    verdict = r.field("Equal").display
    n.title = f"{reg} {bank}: {verdict}" + (f": {reason}" if reason and not equal else "")
    return n


def _short(value) -> str:
    return f"{value[:16]}…" if isinstance(value, str) and len(value) > 16 else str(value)


def find_tcg_log(tree: Node) -> Node | None:
    """The first TCG crypto-agile event log at most LOG_DEPTH levels below `tree`."""
    level = [tree]
    for _ in range(LOG_DEPTH + 1):
        for n in level:
            if n.kind == "event-log" and n.get("Format") == "tcg":
                return n
        level = [c for n in level for c in n.children]
    return None
