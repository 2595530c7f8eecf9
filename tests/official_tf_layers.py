"""The TF/Keras layers the official MEDUSA (lindawangg/COVID-Net, commit b56ba63) and SSMA (DeepSceneSeg/SSMA,
commit 70669056) code builds on, written in PyTorch on their own channels-last layout and weight layout, for
tests/test_medusa.py and tests/test_ssma.py (no TensorFlow here):

- ``tf.nn.conv2d(x, kernel, strides=1, padding="SAME")`` with ``x`` ``(B, H, W, Cin)`` and ``kernel``
  ``(k, k, Cin, Cout)``: for stride 1 and odd ``k``, TF's SAME padding puts ``(k - 1) / 2`` zeros on each side;
- ``tf.nn.bias_add``; Keras ``Conv2D(padding="same", activation=...)`` (kernel ``(k, k, Cin, Cout)``, bias);
- ``MaxPooling2D((2, 2))`` (floor), ``UpSampling2D((2, 2))`` (nearest), ``concatenate(axis=-1)``;
- TF2 ``tf.image.resize(images, size)`` (bilinear, ``half_pixel_centers=True``, no antialiasing).
"""

import torch
import torch.nn.functional as F


def tf_conv2d_same(x, kernel):
    """``tf.nn.conv2d(x, kernel, [1, 1, 1, 1], "SAME")`` for an odd square kernel, channels last."""
    k = kernel.shape[0]
    pad = (k - 1) // 2
    padded = F.pad(x, (0, 0, pad, pad, pad, pad))
    b, h, w, _ = x.shape
    out = x.new_zeros(b, h, w, kernel.shape[3])
    for u in range(k):
        for v in range(k):
            out = out + padded[:, u:u + h, v:v + w, :] @ kernel[u, v]
    return out


def keras_conv2d(x, kernel, bias, activation=None):
    out = tf_conv2d_same(x, kernel) + bias
    if activation == "relu":
        return torch.relu(out)
    if activation == "sigmoid":
        return torch.sigmoid(out)
    return out


def max_pooling_2x2(x):
    b, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).amax(dim=(2, 4))


def up_sampling_2x2(x):
    return x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


def tf_image_resize(images, size):
    """Bilinear with half-pixel centres: each output pixel samples the input at ``(i + ½) · in / out − ½``,
    clamped to the border, interpolating linearly along each axis."""
    def axis_weights(n_in, n_out):
        src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5).clamp(min=0)
        low = src.floor().long().clamp(max=n_in - 1)
        high = (low + 1).clamp(max=n_in - 1)
        frac = (src - low).to(images.dtype)
        return low, high, frac

    (hl, hh, hf), (wl, wh, wf) = axis_weights(images.shape[1], size[0]), axis_weights(images.shape[2], size[1])
    rows = images[:, hl] * (1 - hf)[None, :, None, None] + images[:, hh] * hf[None, :, None, None]
    return rows[:, :, wl] * (1 - wf)[None, None, :, None] + rows[:, :, wh] * wf[None, None, :, None]
