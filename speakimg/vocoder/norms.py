"""Weight and spectral normalisation, in memory and in the original (legacy) checkpoint key layout.

Weight norm uses ``torch.nn.utils.parametrizations`` (the non-deprecated API; its forward is the legacy
hook's, ``w = g * v / ||v||``). Spectral norm uses the legacy hook ``torch.nn.utils.spectral_norm``, as
jik876/hifi-gan does: the parametrized version starts with 15 power iterations and then iterates in
another order (``u`` before ``v``), so its sigma, hence the discriminator's outputs and losses, differ from
the original's from the first training step. The parametrized state-dict keys differ from the files
written by jik876/hifi-gan and Auffusion:

============================  ==================================================
legacy (on disk)              parametrizations (in memory)
============================  ==================================================
``<layer>.weight_g``          ``<layer>.parametrizations.weight.original0``  (weight norm)
``<layer>.weight_v``          ``<layer>.parametrizations.weight.original1``  (weight norm)
``<layer>.weight_orig``       ``<layer>.parametrizations.weight.original``   (spectral norm, older speakimg files)
``<layer>.weight_u``          ``<layer>.parametrizations.weight.0._u``       (spectral norm, older speakimg files)
``<layer>.weight_v``          ``<layer>.parametrizations.weight.0._v``       (spectral norm, older speakimg files)
============================  ==================================================

:func:`to_legacy_state_dict` and :func:`from_legacy_state_dict` convert between the two, driven by
the module itself (a ``weight_v`` means different things under weight and spectral norm). Both
directions also accept plain ``weight`` tensors, so a weight-norm-free (inference) state dict loads
into a weight-normed model and vice versa.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import remove_spectral_norm as _remove_legacy_spectral_norm
from torch.nn.utils import spectral_norm as _legacy_spectral_norm
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.spectral_norm import SpectralNorm as _LegacySpectralNorm

__all__ = [
    "apply_weight_norm",
    "apply_spectral_norm",
    "remove_norms",
    "has_norms",
    "to_legacy_state_dict",
    "from_legacy_state_dict",
    "norm_kind",
]

_WN = "parametrizations.weight.original0", "parametrizations.weight.original1"
_SN = "parametrizations.weight.original", "parametrizations.weight.0._u", "parametrizations.weight.0._v"


def apply_weight_norm(module: nn.Module) -> nn.Module:
    """Weight norm (``dim=0``, as the originals) on ``module.weight``; returns the module."""
    return weight_norm(module, name="weight", dim=0)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Legacy spectral norm on ``module.weight``, as the original: random ``u``, ``v`` and one power iteration
    (``v`` then ``u``) per training forward; state-dict keys ``weight_orig``, ``weight_u``, ``weight_v``."""
    return _legacy_spectral_norm(module, name="weight")


def _has_legacy_spectral_norm(module: nn.Module) -> bool:
    return any(isinstance(hook, _LegacySpectralNorm) for hook in module._forward_pre_hooks.values())


def norm_kind(module: nn.Module) -> str | None:
    """``"weight"``, ``"spectral"`` (parametrized), ``"legacy_spectral"`` (hook) or ``None`` on ``module.weight``."""
    if _has_legacy_spectral_norm(module):
        return "legacy_spectral"
    if not parametrize.is_parametrized(module, "weight"):
        return None
    name = type(module.parametrizations.weight[0]).__name__
    if name == "_WeightNorm":
        return "weight"
    if name == "_SpectralNorm":
        return "spectral"
    return None


def has_norms(module: nn.Module) -> bool:
    """True if any submodule still carries a weight- or spectral-norm parametrization."""
    return any(norm_kind(m) is not None for m in module.modules())


def remove_norms(module: nn.Module) -> nn.Module:
    """Fold every weight/spectral-norm parametrization into a plain ``weight`` (for inference)."""
    for m in module.modules():
        kind = norm_kind(m)
        if kind == "legacy_spectral":
            _remove_legacy_spectral_norm(m, "weight")
        elif kind is not None:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


def _prefix(name: str) -> str:
    return f"{name}." if name else ""


def _weight_from_g_v(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``g * v / ||v||`` with the norm over every dimension but 0 (legacy ``weight_norm(dim=0)``)."""
    return torch._weight_norm(v, g, 0)


def _g_v_from_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.linalg.vector_norm(w.flatten(1), dim=1).reshape(-1, *([1] * (w.ndim - 1)))
    return g, w.clone()


def to_legacy_state_dict(module: nn.Module, weight_norm_convs: bool = False) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with the legacy key names of the original checkpoints (same key order).

    ``weight_norm_convs``: every convolution without a norm is written as if weight-normed, as the original
    code builds it (``weight_g = ||w||`` over all dims but 0, ``weight_v = w``, so ``g * v / ||v||`` is ``w``;
    keys in the legacy hook's order ``bias, weight_g, weight_v``), so that the original loads it strictly.
    """
    rename: dict[str, str] = {}
    plain: set[str] = set()
    for name, m in module.named_modules():
        kind, p = norm_kind(m), _prefix(name)
        if kind == "weight":
            rename.update({p + _WN[0]: p + "weight_g", p + _WN[1]: p + "weight_v"})
        elif kind == "spectral":
            rename.update({p + _SN[0]: p + "weight_orig", p + _SN[1]: p + "weight_u", p + _SN[2]: p + "weight_v"})
        elif weight_norm_convs and isinstance(m, nn.modules.conv._ConvNd):
            plain.add(p)
    state = module.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        p, leaf = key[: key.rfind(".") + 1], key[key.rfind(".") + 1 :]
        if p in plain and leaf in ("weight", "bias"):
            if p + "weight_g" not in out:  # the layer's first key: write it whole, in the legacy order
                if p + "bias" in state:
                    out[p + "bias"] = state[p + "bias"].detach().clone()
                out[p + "weight_g"], out[p + "weight_v"] = _g_v_from_weight(state[p + "weight"].detach())
            continue
        out[rename.get(key, key)] = value.detach().clone()
    return out


def from_legacy_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict (legacy, parametrized or plain) to ``module``'s own key names.

    Weight-norm pairs are folded into a plain ``weight`` where ``module`` has none, and a plain
    ``weight`` becomes a ``(g, v)`` pair where ``module`` is weight-normed. Unknown keys are kept as
    they are, so ``module.load_state_dict(..., strict=True)`` reports them.
    """
    out = dict(state)
    for name, m in module.named_modules():
        kind, p = norm_kind(m), _prefix(name)
        if not isinstance(getattr(m, "weight", None), torch.Tensor):
            continue
        if kind == "weight":
            if p + "weight_g" in out and p + "weight_v" in out:
                out[p + _WN[0]] = out.pop(p + "weight_g")
                out[p + _WN[1]] = out.pop(p + "weight_v")
            elif p + "weight" in out:
                out[p + _WN[0]], out[p + _WN[1]] = _g_v_from_weight(out.pop(p + "weight"))
        elif kind == "spectral":
            if p + "weight_orig" in out:
                out[p + _SN[0]] = out.pop(p + "weight_orig")
                for legacy, new in (("weight_u", _SN[1]), ("weight_v", _SN[2])):
                    if p + legacy in out:
                        out[p + new] = out.pop(p + legacy)
        elif kind == "legacy_spectral":  # files of older speakimg versions (parametrized spectral norm)
            for new, legacy in zip(_SN, ("weight_orig", "weight_u", "weight_v"), strict=True):
                if p + new in out:
                    out[p + legacy] = out.pop(p + new)
        else:
            if p + "weight_g" in out and p + "weight_v" in out:
                out[p + "weight"] = _weight_from_g_v(out.pop(p + "weight_g"), out.pop(p + "weight_v"))
            elif p + _WN[0] in out and p + _WN[1] in out:
                out[p + "weight"] = _weight_from_g_v(out.pop(p + _WN[0]), out.pop(p + _WN[1]))
    return out
