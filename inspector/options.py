"""Option values of the `fwinspect` command line, checked when the options are parsed.

Each is an argparse `type`: a value out of range or malformed raises ArgumentTypeError, which the
parser reports as one usage line naming the option (exit 2), so no command ever sees it.
"""
from __future__ import annotations

import argparse


def number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (use 0x... for hex)") from None


def ranged(lo: int, hi: int, what: str):
    """An argparse type: an integer (decimal or 0x...) from lo to hi inclusive."""
    def parse(text: str) -> int:
        value = number(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is not {what} ({lo:#x}-{hi:#x})" if hi > 0xFFFF
                                             else f"{text} is not {what} ({lo}-{hi})")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


# x86-64 addresses and CR3 are 64-bit (Intel SDM vol. 3A, 4.5).
address = ranged(0, (1 << 64) - 1, "an address below 2^64")
# A PTE bit position (the TDX shared bit, the SEV C-bit): SDM vol. 3A, table 4-19; AMD APM vol. 2, 15.34.1.
bit = ranged(0, 63, "a bit position")
# CPUID 0x80000008 EAX[7:0]; 36 is the oldest x86-64 parts' width, 52 the architectural maximum
# (SDM vol. 3A, 4.1.4).
maxphyaddr = ranged(36, 52, "a MAXPHYADDR")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text} seconds: want more than 0 and at most a day")
    return value


# TCG PC Client PFP 1.05, 3.3.4: PCRs 0-23; Intel TDX module ABI: RTMR0-3 (SHA-384).
_DIGEST_SIZES = {20: "SHA-1", 32: "SHA-256", 48: "SHA-384", 64: "SHA-512"}


def expectation(text: str) -> tuple[str, bytes]:
    """--expect NAME=HEX: PCR0-23 with a SHA-1/256/384/512 digest, or RTMR0-3 with a SHA-384 one."""
    name, eq, value = text.partition("=")
    name, value = name.strip().upper(), value.strip()
    want = "want PCRn=HEX (n 0-23) or RTMRn=HEX (n 0-3), e.g. PCR7=ab12..."
    if not eq or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: {want}")
    for prefix, count in (("RTMR", 4), ("PCR", 24)):
        if name.startswith(prefix):
            index = name[len(prefix):]
            if not (index.isdigit() and int(index) < count):
                raise argparse.ArgumentTypeError(f"{text!r}: {name} is not a register; {want}")
            break
    else:
        raise argparse.ArgumentTypeError(f"{text!r}: {name} is not a register; {want}")
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value[:20]!r} is not hex") from None
    if name.startswith("RTMR") and len(digest) != 48 or len(digest) not in _DIGEST_SIZES:
        sizes = "48 bytes (SHA-384)" if name.startswith("RTMR") else "20, 32, 48 or 64 bytes"
        raise argparse.ArgumentTypeError(f"{text!r}: a {len(digest)}-byte value; {name} holds {sizes}")
    return name, digest
