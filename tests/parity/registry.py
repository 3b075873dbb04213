"""Registry of PyTorch golden cases: @case("name") on a function torch -> (inputs, output)."""
import zlib

CASES = {}


def case(name):
    def register(fn):
        if name in CASES:
            raise ValueError(f"parity case {name!r} defined twice")
        CASES[name] = fn
        return fn
    return register


def seed_of(name):
    return zlib.crc32(name.encode())
