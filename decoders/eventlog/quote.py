"""TDX quote v4: header and TD quote body (Intel TDX DCAP Quoting Library API, "Quote Format";
offsets verified on cc-trusted-api quote.bin and go-tdx-guest cos-113-tdx-quote.dat).

Only the header and body are decoded; the signature data (ECDSA quote signature, QE report,
certification data) is shown raw with its length.
"""
from __future__ import annotations

from decoders.errors import DecodeError
from decoders.eventlog import structs as S
from decoders.model import Node, Space

HEADER_SIZE = S.TDX_QUOTE_HEADER_V4.size  # 48
BODY_SIZE = S.TD_QUOTE_BODY_V4.size  # 584
TEE_TYPE_TDX = 0x81
TEE_TYPE_SGX = 0x00
ATT_KEY_TYPES = {2: "ECDSA-256-with-P-256", 3: "ECDSA-384-with-P-384"}

_HEADER_DISPLAYS = {"AttestationKeyType": ATT_KEY_TYPES.get,
                    "TeeType": {TEE_TYPE_TDX: "TDX", TEE_TYPE_SGX: "SGX"}.get}
# Every body member is a byte string (measurement registers, attributes), shown in hex.
_BODY_DISPLAYS = {name: bytes.hex for name in S.TD_QUOTE_BODY_V4.names}
_RTMRS = ("RTMR0", "RTMR1", "RTMR2", "RTMR3")


def decode_tdx_quote(data: bytes, space_name: str = "quote") -> Node:
    """A `tdx-quote` Node: `tdx-quote-header` and `td-quote-body` children with the spec's field names."""
    space = Space(space_name, bytes(data))
    buf = space.data
    root = Node("tdx-quote", "TDX quote", space, 0, len(buf))
    try:
        h = S.TDX_QUOTE_HEADER_V4.parse(buf, 0, "TDX quote header")
    except DecodeError as e:
        root.problem(e.offset, e.message)
        return root
    hdr = Node("tdx-quote-header", "quote header", space, 0, HEADER_SIZE)
    S.TDX_QUOTE_HEADER_V4.add_fields(hdr, h, 0, displays=_HEADER_DISPLAYS)
    root.append(hdr)
    if h.Version != 4:
        hdr.problem(0, f"quote Version {h.Version}; this decoder knows version 4 (TD quote body v1.0)")
    if h.TeeType != TEE_TYPE_TDX:
        hdr.problem(4, f"TeeType 0x{h.TeeType:x} is not TDX (0x81)")
    try:
        b = S.TD_QUOTE_BODY_V4.parse(buf, HEADER_SIZE, "TD quote body")
    except DecodeError as e:
        root.problem(e.offset, e.message)
        return root
    body = Node("td-quote-body", "TD quote body", space, HEADER_SIZE, BODY_SIZE)
    S.TD_QUOTE_BODY_V4.add_fields(body, b, HEADER_SIZE, displays=_BODY_DISPLAYS)
    root.append(body)
    p = HEADER_SIZE + BODY_SIZE
    if p + 4 <= len(buf):
        n = int.from_bytes(buf[p:p + 4], "little")
        sig = Node("tdx-quote-signature", "quote signature data", space, p, min(4 + n, len(buf) - p))
        sig.add("SignatureDataLength", n, p, 4)
        if p + 4 + n > len(buf):
            sig.problem(p, f"SignatureDataLength {n} runs past the end of the quote ({len(buf) - p - 4} bytes left)")
        else:
            sig.add("SignatureData", bytes(buf[p + 4:p + 4 + n]), p + 4, n)
        root.append(sig)
    else:
        root.warn(p, "quote ends before SignatureDataLength")
    root.title = f"TDX quote v{h.Version}: MRTD {b.MRTD.hex()[:16]}…"
    return root


def quote_rtmrs(data: bytes) -> list[bytes]:
    """RTMR0-3 from a TDX quote v4 (raises DecodeError when the body is not there)."""
    b = S.TD_QUOTE_BODY_V4.read(data, HEADER_SIZE, "TD quote body")
    return [b[name] for name in _RTMRS]


def quote_expected(data: bytes) -> dict[str, bytes]:
    """{"RTMR0": ..., "RTMR3": ...} for replay.compare()."""
    return {f"RTMR{i}": v for i, v in enumerate(quote_rtmrs(data))}


def quote_expectation(data: bytes, space_name: str = "quote") -> tuple[Node, dict[str, bytes]]:
    """The quote as a Node and its RTMR0-3 for replay.compare().

    A quote that is cut short, or is not a TDX quote v4 (an SGX quote, another version), gives no
    values: its registers are not RTMRs, or are not there. The node then carries a located problem
    saying what was not compared, beside the decoder's own problems."""
    root = decode_tdx_quote(data, space_name)
    body = next(root.find("td-quote-body"), None)
    header = next(root.find("tdx-quote-header"), None)
    foreign = header is not None and any(p.severity.value == "error" for p in header.problems)
    if body is None or foreign:
        why = "not a TDX quote v4" if foreign else f"it ends at 0x{len(data):x}, before the TD quote body's end " \
              f"(0x{HEADER_SIZE + BODY_SIZE:x})"
        root.problem(len(data) if body is None and not foreign else 0, f"RTMR0-3 not compared: {why}")
        return root, {}
    return root, {name: body.get(name) for name in _RTMRS}
