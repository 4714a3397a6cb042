"""Checks `mnist export`'s files with the tools other people use.

For each model: onnxruntime runs the .onnx file on the raw test images and
its outputs must match `mnist eval --outputs` within 1e-5 with the same
predicted classes; numpy, on the weights the Python `safetensors` package
reads from the .safetensors file and the preprocessing its metadata names,
must predict the same classes.

usage: check_export.py T10K-IMAGES NAME OUTPUTS.json MODEL.onnx MODEL.safetensors [NAME ...]
"""

import json
import sys

import numpy as np
import onnxruntime
from safetensors import safe_open

TOLERANCE = 1e-5


def test_images(path):
    data = np.fromfile(path, dtype=np.uint8)
    magic, n, rows, cols = (int.from_bytes(data[i : i + 4].tobytes(), "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise SystemExit(f"{path}: not an IDX images file (magic {magic})")
    return data[16:].reshape(n, 1, rows, cols).astype(np.float32)


def numpy_forward(path, pixels):
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    if meta["normalization"] != "x/255-0.5" or meta["bias_feature"] != "last":
        raise SystemExit(f"{path}: unexpected preprocessing {meta}")
    x = pixels / np.float32(255) - np.float32(0.5)
    if meta["kind"] == "cnn":
        # Each convolution: stride 1, no padding, ReLU, 2 x 2 max-pooling
        # (an odd side floored); then the values in (row, column, channel)
        # order.
        h = x
        convs = sum(1 for name in tensors if name.startswith("convs.") and name.endswith(".weight"))
        for i in range(convs):
            w, b = tensors[f"convs.{i}.weight"], tensors[f"convs.{i}.bias"]
            k = w.shape[2]
            windows = np.lib.stride_tricks.sliding_window_view(h, (k, k), axis=(2, 3))
            h = np.einsum("ncyxij,ocij->noyx", windows, w, optimize=True) + b[None, :, None, None]
            h = np.maximum(h, 0)
            n, c, side, _ = h.shape
            half = side // 2
            h = h[:, :, : 2 * half, : 2 * half].reshape(n, c, half, 2, half, 2).max(axis=(3, 5))
        h = h.transpose(0, 2, 3, 1).reshape(len(x), -1)
    else:
        x = x.reshape(len(x), -1)
        h = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
    layers = sum(1 for name in tensors if name.startswith("layers.") and name.endswith(".weight"))
    for i in range(layers):
        h = h @ tensors[f"layers.{i}.weight"]
        if f"layers.{i}.bias" in tensors:
            h = h + tensors[f"layers.{i}.bias"]
        if i < layers - 1:
            h = np.maximum(h, 0)
    if meta["output"] == "softmax":
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1 / (1 + np.exp(-h))


def main(argv):
    if len(argv) < 6 or (len(argv) - 2) % 4:
        raise SystemExit(__doc__)
    pixels = test_images(argv[1])
    failed = False
    for k in range(2, len(argv), 4):
        name, outputs_path, onnx_path, st_path = argv[k : k + 4]
        with open(outputs_path) as f:
            ours = json.load(f)
        expected = np.array(ours["outputs"], dtype=np.float32)
        predicted = np.array(ours["predicted"])

        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        (got,) = session.run(["outputs"], {"pixels": pixels})
        diff = float(np.abs(got - expected).max())
        same = int((got.argmax(axis=1) == predicted).sum())
        ok = got.shape == expected.shape and diff <= TOLERANCE and same == len(predicted)
        print(
            f"{name}: onnxruntime {onnxruntime.__version__}: outputs {got.shape}, "
            f"max |difference| {diff:.3g} (limit {TOLERANCE:g}), "
            f"same class on {same} of {len(predicted)}: {'ok' if ok else 'FAILED'}"
        )
        failed |= not ok

        mine = numpy_forward(st_path, pixels)
        diff = float(np.abs(mine - expected).max())
        same = int((mine.argmax(axis=1) == predicted).sum())
        ok = same == len(predicted)
        print(
            f"{name}: safetensors + numpy: max |difference| {diff:.3g}, "
            f"same class on {same} of {len(predicted)}: {'ok' if ok else 'FAILED'}"
        )
        failed |= not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
