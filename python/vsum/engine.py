"""The network as stage 1's optimisation runs it: batch norm folded into the convolutions, channels-last.

Stage 1 runs the classifier forward and backward (to its input) some 450
times per image, so the arithmetic of each pass matters.  Two rewrites make
it cheaper without changing what the network computes:

- **Batch-norm folding.** In eval mode a ``BatchNorm2d`` after a convolution
  is an affine map per channel, which folds into the convolution's weights
  and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``).  The folded network
  computes the same function up to float rounding (logits within ~1e-5 on
  EfficientNet-Lite0) and skips every normalisation in the forward and the
  backward pass.  The pairs are found on a ``torch.fx`` trace in which
  convolutions and batch norms are leaves; a convolution is folded only when
  the batch norm is its sole user.
- **Padding folding.** Convolutions that pad their input themselves before
  an unpadded convolution (TensorFlow's "same" padding as EfficientNet-Lite's
  ``Conv2dStaticSamePadding`` does it: a ``ZeroPad2d`` in a ``static_padding``
  attribute) become plain convolutions with the padding built in, so no
  padded copy of the activation is made in the forward pass nor cut out of
  the gradient in the backward pass.  Uneven "same" padding (one more zero
  on the right and bottom, as stride-2 layers have) becomes even padding
  with a kernel one tap larger whose first row and column are zero: the same
  sums.  Each replacement is checked numerically against the original layer
  on an input of its shape and kept only when they agree.
- **Channels-last** (NHWC) parameters and inputs, which oneDNN's and cuDNN's
  convolutions prefer.

Both work on a copy: the caller's module is never changed.  A module that
``torch.fx`` cannot trace keeps its batch norms (one line on stderr says so).
"""

from __future__ import annotations

import copy
import dataclasses
import sys

import torch
import torch.nn.functional as F
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "fold_padding", "optimisation_classifier"]


class _ConvLeafTracer(fx.Tracer):
    """A tracer that keeps convolutions and batch norms (subclasses included) as single nodes."""

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) or super().is_leaf_module(
            module, qualified_name)


def fold_batchnorm(module: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A copy of an eval-mode ``module`` with each ``Conv2d -> BatchNorm2d`` pair folded into one convolution.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode (batch norms use their running statistics).

    Returns
    -------
    (torch.fx.GraphModule, int)
        The folded copy (eval mode, parameters frozen) and the number of
        batch norms folded.

    Raises
    ------
    ValueError
        ``module`` is in training mode.
    Exception
        Whatever ``torch.fx`` raises for a module it cannot trace.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode")
    root = copy.deepcopy(module)
    graph = _ConvLeafTracer().trace(root)
    folded = fx.GraphModule(root, graph)
    modules = dict(folded.named_modules())
    count = 0
    for node in list(folded.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), torch.nn.BatchNorm2d):
            continue
        conv_node = node.args[0] if node.args else None
        if (not isinstance(conv_node, fx.Node) or conv_node.op != "call_module"
                or not isinstance(modules.get(conv_node.target), torch.nn.Conv2d) or len(conv_node.users) != 1):
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(modules[conv_node.target], bn)
        parent, _, name = conv_node.target.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, name, fused)
        node.replace_all_uses_with(conv_node)
        folded.graph.erase_node(node)
        count += 1
    folded.graph.lint()
    folded.recompile()
    folded.delete_all_unused_submodules()
    folded.eval()
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded, count


def _padding_free_conv(conv: torch.nn.Conv2d, uneven: bool = True) -> torch.nn.Conv2d | None:
    """A plain ``Conv2d`` with ``conv.static_padding`` built in, or None when ``conv`` is not of that kind.

    ``uneven=False`` leaves layers with uneven padding (which need the larger kernel) alone.
    """
    padder = getattr(conv, "static_padding", None)
    if (type(conv) is torch.nn.Conv2d or padder is None or tuple(conv.padding) != (0, 0)
            or conv.padding_mode != "zeros" or tuple(conv.dilation) != (1, 1)):
        return None
    if isinstance(padder, torch.nn.ZeroPad2d):
        left, right, top, bottom = padder.padding
    elif type(padder).__name__ == "Identity" and not any(True for _ in padder.parameters()):
        left = right = top = bottom = 0
    else:
        return None
    if right < left or bottom < top or (not uneven and (right != left or bottom != top)):
        return None
    extra_h, extra_w = bottom - top, right - left
    weight = F.pad(conv.weight.detach(), (extra_w, 0, extra_h, 0))  # zero first rows / columns: the same sums
    plain = torch.nn.Conv2d(conv.in_channels, conv.out_channels, tuple(weight.shape[-2:]), stride=conv.stride,
                            padding=(bottom, right), groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(weight)
        if conv.bias is not None:
            plain.bias.copy_(conv.bias.detach())
    return plain.to(device=conv.weight.device, dtype=conv.weight.dtype)


def fold_padding(graph_module: fx.GraphModule, input_size: int, uneven: bool = True) -> int:
    """Replace, in place, every self-padding convolution leaf of ``graph_module`` by a plain padded one.

    Parameters
    ----------
    graph_module : torch.fx.GraphModule
        A trace with convolutions as leaves (:func:`fold_batchnorm`'s result).
    input_size : int
        Side of the square network input, to know each layer's input shape.
    uneven : bool
        Also fold uneven padding (one more zero right and bottom) through a
        kernel one tap larger.  Worth it in float32 (oneDNN, 2-core CPU:
        53 against 52 image-iterations/s with even padding folded alone),
        not under bfloat16 autocast, where oneDNN's kernels for the enlarged
        depthwise kernels are slow (37 against 48).

    Returns
    -------
    int
        Convolutions replaced.  A candidate whose output differs from the
        original's (max difference above 1e-4 of the output's scale) on a
        random input of its shape is left as it is.
    """
    parameter = next(graph_module.parameters(), None)
    device = parameter.device if parameter is not None else "cpu"
    ShapeProp(graph_module).propagate(torch.zeros(1, 3, input_size, input_size, device=device))
    modules = dict(graph_module.named_modules())
    generator = torch.Generator(device="cpu").manual_seed(0)
    count = 0
    for node in graph_module.graph.nodes:
        conv = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(conv, torch.nn.Conv2d) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        plain = _padding_free_conv(conv, uneven)
        meta = node.args[0].meta.get("tensor_meta")
        if plain is None or meta is None:
            continue
        probe = torch.rand(tuple(meta.shape), generator=generator).to(device=device, dtype=conv.weight.dtype)
        with torch.no_grad():
            expected, got = conv(probe), plain(probe)
        if expected.shape != got.shape or (expected - got).abs().max() > 1e-4 * max(1.0, float(expected.abs().max())):
            continue
        parent, _, name = node.target.rpartition(".")
        setattr(graph_module.get_submodule(parent) if parent else graph_module, name, plain)
        count += 1
    for parameter in graph_module.parameters():
        parameter.requires_grad_(False)
    return count


def optimisation_classifier(classifier, fold: bool = True, channels_last: bool = True, precision: str = "fp32"):
    """The classifier stage 1 optimises through: a rewritten copy of its module, or itself.

    Parameters
    ----------
    classifier : vsum.models.Classifier
        Objects without a ``torch.nn.Module`` in ``module`` (test stand-ins)
        are returned as they are.
    fold : bool
        Fold batch norms and self-padding into convolutions
        (:func:`fold_batchnorm`, :func:`fold_padding`).
    channels_last : bool
        Store the copy's 4-D parameters channels-last.
    precision : {"fp32", "bf16", "fp16"}
        The arithmetic the copy will run in: uneven padding is folded only
        in float32 (:func:`fold_padding`).

    Returns
    -------
    Classifier
        A copy of ``classifier`` sharing everything but the module; the
        caller's module is never changed.
    """
    module = getattr(classifier, "module", None)
    if not isinstance(module, torch.nn.Module) or not (fold or channels_last):
        return classifier
    engine = None
    if fold:
        try:
            engine, _ = fold_batchnorm(module)
            fold_padding(engine, int(getattr(classifier, "input_size", 224)), uneven=precision == "fp32")
        except Exception as exc:  # noqa: BLE001 - any tracing failure: run unfolded, say so once
            print(f"vsum: {getattr(classifier, 'name', 'the model')}: batch norms not folded "
                  f"({type(exc).__name__}: {exc}); stage 1 runs the network as it is", file=sys.stderr)
    if engine is None:
        engine = copy.deepcopy(module)
    if channels_last:
        engine = engine.to(memory_format=torch.channels_last)
    if dataclasses.is_dataclass(classifier):
        return dataclasses.replace(classifier, module=engine)
    clone = copy.copy(classifier)
    clone.module = engine
    return clone
