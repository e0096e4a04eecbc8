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
from torch import fx
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "optimisation_classifier"]


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


def optimisation_classifier(classifier, fold: bool = True, channels_last: bool = True):
    """The classifier stage 1 optimises through: a rewritten copy of its module, or itself.

    Parameters
    ----------
    classifier : vsum.models.Classifier
        Objects without a ``torch.nn.Module`` in ``module`` (test stand-ins)
        are returned as they are.
    fold : bool
        Fold batch norms into convolutions (:func:`fold_batchnorm`).
    channels_last : bool
        Store the copy's 4-D parameters channels-last.

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
