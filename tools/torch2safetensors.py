#!/usr/bin/python3
"""Converts a PyTorch checkpoint (a state dict, a whole nn.Module, or a dict holding one
under "state_dict" / "model") into a safetensors file that Pneuma loads by name.
Needs only Debian's python3-torch (the safetensors package is not in Debian).

usage: /usr/bin/python3 tools/torch2safetensors.py IN.pth OUT.safetensors
           [--strip-prefix module.] [--metadata key=value ...]
       /usr/bin/python3 tools/torch2safetensors.py --torchvision resnet50 --num-classes 1
           [--seed 0] OUT.safetensors     (a torchvision model with its own random init)

As a module: save_file(tensors: dict[str, Tensor], path, metadata=None).
"""
import argparse
import collections
import json
import os
import struct
import sys
import tempfile

import torch

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.detach().cpu().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    # byte view first: numpy has no bfloat16
    return t.view(torch.uint8).numpy().tobytes()


def serialize(tensors, metadata=None):
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' cannot name a tensor")
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name")
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_file(tensors, path, metadata=None):
    """Writes atomically: temporary file in the same folder, fsync, rename."""
    blob = serialize(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def extract_state_dict(obj):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                return extract_state_dict(obj[key])
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise ValueError("no state dict found (expected a dict of tensors, an nn.Module, or a dict with "
                     "'state_dict' or 'model')")


def torchvision_model(name, num_classes, seed):
    import torchvision
    torch.manual_seed(seed)
    if not hasattr(torchvision.models, name):
        raise ValueError(f"torchvision has no model {name!r}")
    return getattr(torchvision.models, name)(num_classes=num_classes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="IN.pth OUT.safetensors, or OUT.safetensors with --torchvision")
    p.add_argument("--torchvision", help="write a fresh torchvision model of this name instead of reading IN")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strip-prefix", default="", help="remove this prefix from every key (e.g. 'module.')")
    p.add_argument("--metadata", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        if args.torchvision:
            if len(args.paths) != 1:
                raise ValueError("with --torchvision give only OUT.safetensors")
            state = torchvision_model(args.torchvision, args.num_classes, args.seed).state_dict()
            out = args.paths[0]
        else:
            if len(args.paths) != 2:
                raise ValueError("give IN.pth and OUT.safetensors")
            state = extract_state_dict(torch.load(args.paths[0], map_location="cpu"))
            out = args.paths[1]
        if args.strip_prefix:
            state = collections.OrderedDict(
                (k[len(args.strip_prefix):] if k.startswith(args.strip_prefix) else k, v) for k, v in state.items())
        metadata = {}
        for item in args.metadata:
            if "=" not in item:
                raise ValueError(f"--metadata {item!r}: expected KEY=VALUE")
            k, v = item.split("=", 1)
            metadata[k] = v
        save_file(collections.OrderedDict(state), out, metadata)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"torch2safetensors: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"tensors": len(state), "out": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
