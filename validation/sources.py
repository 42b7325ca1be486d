"""Where a study's models and data come from: the built-in zoo and loaders, or your own code.

A model spec is either a built-in name (``vgg11``, ``wrn-10-1``, ``mlp-64x2``, … for
``networks.models.build_model``) or a *reference to your code*:

- ``"package.module:factory"`` — an importable callable;
- ``"path/to/file.py:factory"`` — a callable defined in a Python file (loaded by path, relative to the working
  directory);
- ``"object:NAME"`` — a live Python object handed to :func:`validation.study.run_study` (an ``nn.Module``
  instance, copied for each use, or a callable).

A model factory is called with the config's ``kwargs`` (``factory(**kwargs)``) and must return an
``nn.Module`` whose output is the logits for the loss. The data source is a built-in data set name
(``fashion-mnist``, ``cifar100``, …) or a reference of the same forms whose factory is called with the
config's ``data_kwargs`` and returns an ``ArrayDataset``, an ``(x, y)`` pair of tensors/arrays, or anything
iterable of ``(x, y)`` batches (a ``DataLoader``) or indexable of ``(x, y)`` samples (a ``Dataset``); see
:func:`as_array_dataset`.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from networks.data import ArrayDataset

OBJECT_PREFIX = "object:"
MAX_SOURCE_SAMPLES = 10_000_000
"""A data source larger than this is refused (the pool is a subset held in memory)."""


def is_reference(spec: str) -> bool:
    """Whether ``spec`` names user code (``module:attr``, ``file.py:attr`` or ``object:NAME``)."""
    return spec.startswith(OBJECT_PREFIX) or (":" in spec and not spec.startswith(":"))


def check_reference(spec: str, name: str) -> None:
    """Syntax of a code reference (``ValueError`` naming the field ``name``); not imported here."""
    if spec.startswith(OBJECT_PREFIX):
        if not spec[len(OBJECT_PREFIX) :].isidentifier():
            raise ValueError(f"{name} {spec!r}: 'object:' must be followed by an identifier")
        return
    target, _, attr = spec.rpartition(":")
    if not target or not all(part.isidentifier() for part in attr.split(".")):
        raise ValueError(
            f"{name} {spec!r} must look like 'package.module:factory', 'path/file.py:factory' "
            "or 'object:NAME'"
        )
    if not target.endswith(".py") and not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(f"{name} {spec!r}: {target!r} is neither a module path nor a .py file")


def _import_target(target: str, spec: str) -> Any:
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{spec!r}: the file {path} does not exist")
        module_name = f"batchrmt_user_{abs(hash(str(path)))}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ValueError(f"{spec!r}: {path} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ValueError(f"{spec!r}: cannot import {target!r} ({exc})") from None


def resolve(spec: str, objects: Mapping[str, Any] | None = None) -> Any:
    """The Python object a reference names (see the module docstring)."""
    if spec.startswith(OBJECT_PREFIX):
        key = spec[len(OBJECT_PREFIX) :]
        if objects is None or key not in objects:
            raise ValueError(f"{spec!r}: no object {key!r} was handed to the study (run it with run_study)")
        return objects[key]
    target, _, attr = spec.rpartition(":")
    obj = _import_target(target, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{spec!r}: {target!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


def build_user_model(
    spec: str, kwargs: Mapping[str, Any], objects: Mapping[str, Any] | None = None
) -> nn.Module:
    """The network a model reference names: a copy of a live module, or ``factory(**kwargs)``."""
    from torch import nn

    obj = resolve(spec, objects)
    if isinstance(obj, nn.Module):
        if kwargs:
            raise ValueError(f"model {spec!r} is a module instance: it takes no kwargs, got {sorted(kwargs)}")
        return copy.deepcopy(obj)
    if not callable(obj):
        raise TypeError(f"model {spec!r} must be an nn.Module or a callable returning one, got {type(obj)}")
    model = obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory {spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def load_user_data(
    spec: str, kwargs: Mapping[str, Any], objects: Mapping[str, Any] | None = None
) -> ArrayDataset:
    """The data set a data reference names, as an ``ArrayDataset`` (see :func:`as_array_dataset`)."""
    obj = resolve(spec, objects)
    if callable(obj) and not _looks_like_data(obj):
        obj = obj(**kwargs)
    elif kwargs:
        raise ValueError(f"data {spec!r} is a data object: it takes no data_kwargs, got {sorted(kwargs)}")
    return as_array_dataset(obj, name=spec)


def _looks_like_data(obj: Any) -> bool:
    from networks.data import ArrayDataset

    return isinstance(obj, (ArrayDataset, tuple)) or hasattr(obj, "__getitem__") or hasattr(obj, "__iter__")


def as_array_dataset(data: Any, *, name: str = "user data", num_classes: int | None = None) -> ArrayDataset:
    """Materialise a labelled data set as float32 inputs and int64 labels on the CPU.

    Accepts an ``ArrayDataset``; an ``(x, y)`` pair of tensors or arrays; a ``torch.utils.data.DataLoader``
    (or any iterable of ``(x, y)`` batches); a map-style ``Dataset`` (``len`` and ``[i] → (x, y)``).
    ``num_classes`` defaults to ``max(y) + 1``. Labels must be integers (classification with cross-entropy).
    """
    import numpy as np
    import torch

    from networks.data import ArrayDataset

    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__") and not hasattr(data, "batch_size"):
        n = len(data)
        if n > MAX_SOURCE_SAMPLES:
            raise ValueError(f"data {name!r} has {n} samples, over the limit of {MAX_SOURCE_SAMPLES}")
        pairs = [data[i] for i in range(n)]
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.as_tensor([int(p[1]) for p in pairs])
    elif hasattr(data, "__iter__"):
        xs, ys = [], []
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise TypeError(f"data {name!r}: each batch must be an (x, y) pair")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]).reshape(-1))
        if not xs:
            raise ValueError(f"data {name!r} yielded no batches")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise TypeError(
            f"data {name!r} must be an ArrayDataset, an (x, y) pair, a DataLoader or a Dataset, "
            f"got {type(data).__name__}"
        )
    x_t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().float()
    y_t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().cpu()
    if y_t.is_floating_point() or y_t.is_complex():
        raise TypeError(f"data {name!r}: labels must be integers (class indices), got {y_t.dtype}")
    y_t = y_t.long().reshape(-1)
    if x_t.ndim == 3:
        x_t = x_t.unsqueeze(1)
    if x_t.ndim not in (2, 4):
        x_t = x_t.reshape(x_t.shape[0], -1)
    classes = int(y_t.max()) + 1 if num_classes is None and len(y_t) else int(num_classes or 1)
    return ArrayDataset(x=x_t, y=y_t, num_classes=classes, name=name)
