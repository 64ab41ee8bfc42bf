r"""Named fields: what a residual, a condition or an exact solution reads, ``d["u_xx"]``.

Every function a problem supplies takes one argument ``d``, a read-only mapping from names to
``(N, 1)`` tensors at the same ``N`` points:

* a variable name, ``d["x"]``: that coordinate of the points;
* an output name, ``d["u"]``: the network's output of that name;
* an output and variables joined by ``_``, ``d["u_xx"]`` or ``d["v_xt"]``: the partial
  derivative of the output along those variables in order (:math:`\partial^2 v/\partial x\,\partial t`);
* the name of an unknown parameter of an inverse problem, ``d["nu"]``: a trainable scalar
  (a 0-dimensional tensor, which broadcasts).

:class:`AutogradFields` computes derivatives on first use by nested autograd and caches them for
the call; :class:`TensorFields` serves values computed elsewhere (the forward-mode fast path);
:class:`RecordingFields` also records which names were read, which is how the loss learns the
derivatives each term needs without the problem listing them.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from pinn_lam.errors import ProblemError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def check_names(variables: Sequence[str], outputs: Sequence[str], unknowns: Sequence[str] = ()) -> None:
    """Variables are distinct single letters; outputs and unknowns are distinct names without ``_``
    that clash with nothing else (one-line :class:`ProblemError` otherwise)."""
    variables, outputs, unknowns = tuple(variables), tuple(outputs), tuple(unknowns)
    if not variables or any(not (isinstance(v, str) and len(v) == 1 and v.isalpha()) for v in variables):
        raise ProblemError(f"variables must be single letters such as ('x', 't'), got {variables}")
    if not outputs or any(not (isinstance(o, str) and _NAME.match(o)) for o in outputs):
        raise ProblemError(f"outputs must be names of letters and digits such as ('u', 'v'), got {outputs}")
    if any(not (isinstance(k, str) and _NAME.match(k)) for k in unknowns):
        raise ProblemError(f"unknown parameters must be names of letters and digits, got {unknowns}")
    names = variables + outputs + unknowns
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ProblemError(f"the names {', '.join(repeated)} are used twice among variables {variables}, "
                           f"outputs {outputs} and unknowns {unknowns}")


def parse_key(key: str, variables: Sequence[str], outputs: Sequence[str],
              unknowns: Sequence[str] = ()) -> tuple[str, str | int, str]:
    """What ``key`` names: ``("variable", column, "")``, ``("output", index, "")``,
    ``("derivative", index, directions)`` or ``("unknown", name, "")``."""
    return _parse_key(key, tuple(variables), tuple(outputs), tuple(unknowns))


@functools.lru_cache(maxsize=4096)
def _parse_key(key: str, variables: tuple[str, ...], outputs: tuple[str, ...],
               unknowns: tuple[str, ...]) -> tuple[str, str | int, str]:
    # cached: the loss reads the same few names every step
    if key in variables:
        return "variable", variables.index(key), ""
    if key in outputs:
        return "output", outputs.index(key), ""
    if key in unknowns:
        return "unknown", key, ""
    head, sep, directions = str(key).partition("_")
    if sep and head in outputs and directions and all(c in variables for c in directions):
        return "derivative", outputs.index(head), directions
    hint = (f"derivatives are written output_variables such as '{outputs[0]}_{variables[0] * 2}'" if sep or
            key not in variables else "")
    raise KeyError(f"unknown name {key!r}: variables are {', '.join(variables)}; outputs are "
                   f"{', '.join(outputs)}" + (f"; unknowns are {', '.join(unknowns)}" if unknowns else "")
                   + (f"; {hint}" if hint else ""))


class Fields(Mapping):
    """Base of the ``d`` mappings; subclasses implement :meth:`_compute`. Values are cached."""

    def __init__(self, points: Tensor, variables: Sequence[str], outputs: Sequence[str],
                 unknowns: Mapping[str, Tensor] | None = None, *, normal: Tensor | None = None,
                 time: str | None = None) -> None:
        self.points = points
        self.variables, self.outputs = tuple(variables), tuple(outputs)
        self.unknowns = dict(unknowns or {})
        #: outward unit normals ``(N, d)`` at boundary points (``None`` elsewhere); the time variable
        self.normal, self.time = normal, time
        self._cache: dict[str, Tensor] = {}

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._cache:
            kind, index, directions = _parse_key(key, self.variables, self.outputs, tuple(self.unknowns))
            if kind == "variable":
                value = self.points[:, index:index + 1]
            elif kind == "unknown":
                value = self.unknowns[index].reshape(())
            else:
                value = self._compute(index, directions)
            self._cache[key] = value
        return self._cache[key]

    def _compute(self, output: int, directions: str) -> Tensor:
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables + self.outputs + tuple(self.unknowns))

    def __len__(self) -> int:
        return len(self.variables) + len(self.outputs) + len(self.unknowns)

    def __contains__(self, key: object) -> bool:
        try:
            parse_key(str(key), self.variables, self.outputs, tuple(self.unknowns))
        except KeyError:
            return False
        return True


class AutogradFields(Fields):
    """Fields of ``values = model(points)`` (``(N, m)``, one column per output) by nested autograd;
    ``points`` must require grad when a derivative is asked for. Each full gradient is taken
    once per prefix and shared (``"u_x"``, ``"u_t"`` and ``"u_xx"`` cost two backward passes)."""

    def __init__(self, points: Tensor, values: Tensor, variables: Sequence[str], outputs: Sequence[str],
                 unknowns: Mapping[str, Tensor] | None = None, **context) -> None:
        super().__init__(points, variables, outputs, unknowns, **context)
        if values.dim() == 1:
            values = values.unsqueeze(1)
        if values.dim() != 2 or values.shape[1] != len(self.outputs) or values.shape[0] != points.shape[0]:
            raise ValueError(f"the network gives shape {tuple(values.shape)}; expected ({points.shape[0]}, "
                             f"{len(self.outputs)}) for the outputs {', '.join(self.outputs)}")
        self.values = values
        self._gradients: dict[tuple[int, str], Tensor] = {}

    def _column(self, output: int, directions: str) -> Tensor:
        if not directions:
            return self.values[:, output:output + 1]
        prefix = (output, directions[:-1])
        if prefix not in self._gradients:
            self._gradients[prefix] = _gradient(self._column(*prefix), self.points)
        i = self.variables.index(directions[-1])
        return self._gradients[prefix][:, i:i + 1]

    def _compute(self, output: int, directions: str) -> Tensor:
        return self._column(output, directions)


def _gradient(u: Tensor, points: Tensor) -> Tensor:
    """The ``(N, d)`` gradient of an ``(N, 1)`` column with respect to the points (zero where
    it does not depend on them), differentiable again."""
    if not points.requires_grad:
        raise ValueError("a derivative was asked for at points that do not require grad")
    if not u.requires_grad:
        return torch.zeros_like(points)
    (grad,) = torch.autograd.grad(u, points, grad_outputs=torch.ones_like(u), create_graph=True, allow_unused=True)
    return torch.zeros_like(points) if grad is None else grad


class TensorFields(Fields):
    """Fields from tensors computed elsewhere: ``values`` ``(N, m)`` and ``derivatives``
    ``{"x": (N, m), "xx": (N, m), ...}`` (direction keys, every output per column)."""

    def __init__(self, points: Tensor, values: Tensor, derivatives: Mapping[str, Tensor], variables: Sequence[str],
                 outputs: Sequence[str], unknowns: Mapping[str, Tensor] | None = None, **context) -> None:
        super().__init__(points, variables, outputs, unknowns, **context)
        self.values, self.derivatives = values, dict(derivatives)

    def _compute(self, output: int, directions: str) -> Tensor:
        if not directions:
            return _column(self.values, output)
        if directions not in self.derivatives:
            raise KeyError(f"{self.outputs[output]}_{directions} was not computed; computed: "
                           f"{', '.join(sorted(self.derivatives)) or 'none'}")
        return _column(self.derivatives[directions], output)


def _column(values: Tensor, index: int) -> Tensor:
    """Column ``index`` of ``values`` as ``(N, 1)``: the tensor itself when it has one column (a
    view costs a dispatch, and the loss reads these every step)."""
    return values if values.shape[1] == 1 else values[:, index:index + 1]


class RecordingFields(AutogradFields):
    """:class:`AutogradFields` that records every name read (in :attr:`read`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Tensor:
        value = super().__getitem__(key)
        if key not in self.read:
            self.read.append(key)
        return value


def derivative_keys(names: Sequence[str], variables: Sequence[str], outputs: Sequence[str]) -> tuple[str, ...]:
    """The direction keys (``"x"``, ``"xx"``, ``"xt"``) of the derivatives among ``names``."""
    keys: list[str] = []
    for name in names:
        head, sep, directions = name.partition("_")
        if sep and head in outputs and directions and all(c in variables for c in directions) \
                and directions not in keys:
            keys.append(directions)
    return tuple(keys)
