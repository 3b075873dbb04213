#!/usr/bin/python3
"""Converts a safetensors file (a Pneuma checkpoint) into a PyTorch state dict file that
torchvision's model.load_state_dict(torch.load(path)) accepts. Needs only Debian's
python3-torch. The safetensors metadata is printed as JSON (torch state dicts have no
place for it unless --with-metadata wraps the file as {"state_dict", "metadata"}).

usage: /usr/bin/python3 tools/safetensors2torch.py IN.safetensors OUT.pth [--with-metadata]

As a module: load_file(path) -> (OrderedDict[str, Tensor], dict[str, str]).
"""
import argparse
import collections
import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def parse(blob, name="<bytes>"):
    if len(blob) < 8:
        raise ValueError(f"{name}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{name}: header length {n} exceeds the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{name}: header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors, last_end = collections.OrderedDict(), 0
    for key, info in entries:
        dtype = DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{name}: tensor {key!r}: unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        if not 0 <= begin <= end <= len(data) or begin < last_end:
            raise ValueError(f"{name}: tensor {key!r}: bad data_offsets {[begin, end]}")
        last_end = end
        numel = 1
        for d in shape:
            numel *= d
        item = torch.empty((), dtype=dtype).element_size()
        if numel * item != end - begin:
            raise ValueError(f"{name}: tensor {key!r}: {end - begin} bytes for shape {shape} of {info['dtype']}")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            raw = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8)
            t = raw.view(dtype).reshape(shape).clone()
        tensors[key] = t
    return tensors, metadata


def load_file(path):
    with open(path, "rb") as f:
        return parse(f.read(), path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--with-metadata", action="store_true", help='save {"state_dict": ..., "metadata": ...}')
    args = p.parse_args(argv)
    try:
        tensors, metadata = load_file(args.input)
        torch.save({"state_dict": tensors, "metadata": metadata} if args.with_metadata else tensors, args.output)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        print(f"safetensors2torch: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"tensors": len(tensors), "metadata": metadata, "out": args.output}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
