"""``vsum.engine``: batch norms folded into convolutions, channels-last, on a copy of the caller's module."""

from __future__ import annotations

import torch
import torchvision

from vsum.engine import fold_batchnorm, fold_padding, optimisation_classifier
from vsum.models import Classifier


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _randomise_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_folding_lite0_keeps_its_function_and_removes_every_batch_norm(lite0):
    folded, count = fold_batchnorm(lite0.module)
    total = sum(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.module.modules())
    assert count == total == 49
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = lite0.module(lite0.normalize(x)), folded(lite0.normalize(x))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.module.modules()), "the caller's module changed"


def test_folding_a_torchvision_resnet_keeps_its_gradient_to_the_input():
    model = _frozen(torchvision.models.resnet18(weights=None))
    _randomise_batchnorm(model)
    folded, count = fold_batchnorm(model)
    assert count == 20
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for net in (model, folded):
        xi = x.clone().requires_grad_(True)
        torch.softmax(net(xi), 1)[:, 3].sum().backward()
        grads.append(xi.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-6)


def test_a_batch_norm_whose_input_is_shared_is_not_folded():
    class TwoUsers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _frozen(TwoUsers())
    _randomise_batchnorm(model)
    folded, count = fold_batchnorm(model)
    assert count == 0
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(folded(x), model(x))


def test_an_untraceable_module_runs_unfolded_with_one_line(capsys):
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)
            self.bn = torch.nn.BatchNorm2d(2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = x * 2
            return self.bn(self.conv(x)).mean((2, 3))

    classifier = Classifier(_frozen(Branchy()), "branchy", 8, class_names=["a", "b"])
    engine = optimisation_classifier(classifier)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch norms not folded" in err[0]
    assert engine.module is not classifier.module
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(engine.logits(x), classifier.logits(x))
    assert next(engine.module.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert next(classifier.module.parameters()).is_contiguous()


def test_stand_ins_without_a_module_are_used_as_they_are():
    class Stub:
        name = "stub"

    stub = Stub()
    assert optimisation_classifier(stub) is stub


class _SamePadConv(torch.nn.Conv2d):
    """A convolution padding its input itself, as EfficientNet-Lite's ``Conv2dStaticSamePadding`` does."""

    def __init__(self, cin, cout, kernel, stride, pads, groups=1, mode="constant"):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups)
        self.static_padding = torch.nn.ZeroPad2d(pads)
        self.mode = mode

    def forward(self, x):
        if self.mode == "constant":
            x = self.static_padding(x)
        else:  # not what the attribute says: folding must notice and leave this layer alone
            x = torch.nn.functional.pad(x, self.static_padding.padding, mode=self.mode)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def test_padding_folding_keeps_even_and_uneven_same_padding_exact():
    torch.manual_seed(0)
    net = _frozen(torch.nn.Sequential(
        _SamePadConv(3, 8, 3, 2, (0, 1, 0, 1)),             # stride 2, one more zero right and bottom
        torch.nn.ReLU6(),
        _SamePadConv(8, 8, 5, 2, (1, 2, 1, 2), groups=8),  # depthwise 5x5, stride 2
        _SamePadConv(8, 8, 3, 1, (1, 1, 1, 1), groups=8),  # even padding
        _SamePadConv(8, 4, 3, 1, (1, 1, 1, 1), mode="reflect"),
    ))
    traced, _ = fold_batchnorm(net)
    assert fold_padding(traced, 32) == 3
    kinds = [type(m) for m in traced.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kinds.count(torch.nn.Conv2d) == 3 and kinds.count(_SamePadConv) == 1
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    assert torch.allclose(traced(x), net(x), atol=1e-6)
    gx = torch.autograd.grad(net(x).square().sum(), x)[0]
    gy = torch.autograd.grad(traced(x).square().sum(), x)[0]
    assert torch.allclose(gx, gy, rtol=1e-5, atol=1e-7)


def test_lite0_engine_has_no_padding_layers_and_the_gradient_of_the_folded_network(lite0):
    engine = optimisation_classifier(lite0, channels_last=False)
    assert not any(isinstance(m, torch.nn.ZeroPad2d) for m in engine.module.modules())
    batchnorm_only, _ = fold_batchnorm(lite0.module)  # padding folding on top of it must change nothing
    assert any(isinstance(m, torch.nn.ZeroPad2d) for m in batchnorm_only.modules())
    x = lite0.normalize(torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)))
    grads = []
    for module in (batchnorm_only, engine.module):
        xi = x.clone().requires_grad_(True)
        torch.softmax(module(xi), 1)[:, 146].sum().backward()
        grads.append(xi.grad)
    assert ((grads[0] - grads[1]).norm() / grads[0].norm()) < 1e-5


def test_reduced_precision_engines_fold_only_even_padding():
    net = _frozen(torch.nn.Sequential(_SamePadConv(3, 8, 3, 2, (0, 1, 0, 1)), _SamePadConv(8, 8, 3, 1, (1, 1, 1, 1))))
    traced, _ = fold_batchnorm(net)
    assert fold_padding(traced, 32, uneven=False) == 1
    assert [type(m) for m in traced.modules() if isinstance(m, torch.nn.Conv2d)] == [_SamePadConv, torch.nn.Conv2d]
