"""Helpers shared by the lesson modules: the registry decorator, hypothesis settings and
assertions whose messages name the problem (a NaN, a wrong type, a known bug).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import HealthCheck, Phase, settings

from . import Property


def registrar(properties: list[Property]):
    """``prop = registrar(PROPERTIES)``: ``@prop(description, hint, uses=(...))``
    appends the decorated ``fn(impl)`` to ``properties`` under the function's name.
    """

    def prop(description: str, hint: str, uses: tuple[str, ...]):
        def register(fn):
            properties.append(Property(fn.__name__, description, hint, tuple(uses), fn))
            return fn

        return register

    return prop


def _type_name(x) -> str:
    """'numpy.ndarray', 'float', 'tuple of 2': what a value is, in one phrase."""
    cls = type(x)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    if isinstance(x, (tuple, list)):
        name += f" of {len(x)}"
    return name


# the grader sets this to 1 while it looks for wrappers of the course's functions
EXAMPLES_CAP: int | None = None


def _settings(max_examples: int):
    """Few examples, no deadline, the same examples on every run, no .hypothesis folder
    in the learner's directory.
    """
    cap = EXAMPLES_CAP
    return settings(
        max_examples=max_examples if cap is None else min(cap, max_examples),
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate)
        + ((Phase.shrink,) if cap is None else ()),
        print_blob=False,
    )


def _show(x) -> str:
    """A short picture of a tensor or number: its first values and its shape."""
    if not torch.is_tensor(x):
        if isinstance(x, (int, float, bool)) or x is None:
            return repr(x)
        return f"a {_type_name(x)}"
    flat = x.detach().flatten().double().cpu()
    values = ", ".join(f"{v:.4g}" for v in flat[:4].tolist()) + (
        ", ..." if flat.numel() > 4 else ""
    )
    return f"[{values}]" + (f" (shape {tuple(x.shape)})" if x.ndim > 1 else "")


def _as_tensor(x, what: str) -> torch.Tensor:
    """``x`` as a tensor; a wrong type is named, not printed ("returned numpy.ndarray;
    return a torch.Tensor").
    """
    if torch.is_tensor(x):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x))
    raise AssertionError(
        f"{what} returned {_type_name(x)}; return a torch.Tensor"
        + (" (torch.from_numpy)" if type(x).__module__ == "numpy" else "")
    )


def _nan_problem(a: torch.Tensor, what: str) -> str | None:
    """'what is NaN ...' when ``a`` holds NaN or infinity, else None."""
    if not a.is_floating_point() or torch.isfinite(a).all():
        return None
    nan, inf = int(a.isnan().sum()), int(a.isinf().sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else ""]
    kind = " and ".join(p for p in parts if p)
    return (
        f"{what} is NaN or infinite ({kind} of {a.numel()} values): look for a "
        "division by zero, the square root or log of a negative number, or 0 * inf"
    )


def _expect_close(
    actual,
    expected,
    what: str,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    diagnoses: dict[str, torch.Tensor] | None = None,
) -> None:
    """Assert ``actual`` is close to ``expected``; on failure say by how much and which
    known bug it matches.
    """
    actual = _as_tensor(actual, what)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
        )
    a, e = actual.detach().double().cpu(), expected.double().cpu()
    if torch.allclose(a, e, atol=atol, rtol=rtol):
        return
    nan = _nan_problem(a, what)
    if nan and torch.isfinite(e).all():
        raise AssertionError(nan)
    gap = (a - e).abs().nan_to_num(float("inf")).max().item()
    msg = f"{what}: expected {_show(e)}, got {_show(a)} (largest difference {gap:.3g})"
    for label, candidate in (diagnoses or {}).items():
        candidate = torch.as_tensor(candidate, dtype=torch.float64)
        if candidate.shape == a.shape and torch.allclose(
            a, candidate.double(), atol=atol, rtol=rtol
        ):
            msg += f". Your result equals {label}"
            break
    raise AssertionError(msg)


def _expect_raises(call: Callable[[], object], what: str, errors=(ValueError,)) -> None:
    """Assert ``call()`` raises one of ``errors`` (bad input must be refused with a
    clear message).
    """
    names = " or ".join(e.__name__ for e in errors)
    try:
        call()
    except errors:
        return
    except NotImplementedError:
        raise
    except Exception as err:
        raise AssertionError(
            f"{what} raised {type(err).__name__}: {err}; expected a {names} whose "
            "message "
            "names the problem and the fix"
        ) from None
    raise AssertionError(
        f"{what} was accepted without an error; expected a {names} whose message names "
        "the problem and the fix"
    )


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturb(
    model: torch.nn.Module, seed: int = 0, scale: float = 0.05
) -> torch.nn.Module:
    """Add seeded noise to every weight, standing in for training (a fresh U-Net's FiLM
    layers are zero on purpose).
    """
    g = _generator(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _schedule(betas) -> object:
    """The course's Schedule from explicit betas (properties of later functions never
    depend on the learner's schedule code).
    """
    from ..lesson01_forward_noise import schedule_from_betas

    return schedule_from_betas(torch.as_tensor(betas, dtype=torch.float64))


def _steep(T: int):
    """A short schedule with large betas (0.05 .. 0.5), so that an off-by-one in t
    changes the numbers a lot.
    """
    return _schedule(torch.linspace(0.05, 0.5, T, dtype=torch.float64))


def _expect_finite(x, what: str) -> None:
    """Assert that ``x`` is a tensor of finite numbers; name NaN as NaN."""
    x = _as_tensor(x, what)
    problem = _nan_problem(x.detach(), what)
    if problem:
        raise AssertionError(problem)
