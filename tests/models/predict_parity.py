#!/usr/bin/python3
"""PyTorch's logits for pneuma-predict's test: loads a safetensors checkpoint through
tools/safetensors2torch.py into a torchvision model and runs one image with the
preprocessing pneuma-predict documents (PIL decode as gray, torchvision's eval transforms:
Resize(size) on the shorter side and CenterCrop(size), gray -> 3 channels, [0, 1], ImageNet
mean/std). Prints {"logits": [...]}.

usage: /usr/bin/python3 tests/models/predict_parity.py MODEL NUM_CLASSES WEIGHTS IMAGE SIZE
"""
import json
import pathlib
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
from safetensors2torch import load_file  # noqa: E402


def main():
    name, num_classes, weights, image_path, size = sys.argv[1:6]
    size = int(size)
    model = getattr(torchvision.models, name)(num_classes=int(num_classes))
    state, _ = load_file(weights)
    model.load_state_dict(state)
    model.eval()
    image = Image.open(image_path).convert("L")
    if min(image.size) != size:
        image = torchvision.transforms.Resize(size)(image)
    image = torchvision.transforms.CenterCrop(size)(image)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).unsqueeze(0).repeat(3, 1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with torch.no_grad():
        logits = model(((x - mean) / std).unsqueeze(0))[0]
    print(json.dumps({"logits": logits.tolist()}))


if __name__ == "__main__":
    main()
