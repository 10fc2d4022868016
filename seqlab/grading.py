"""The checks that the exercises' hidden tests use.

A hidden test runs after the student's answer cells, in the same kernel, so an
answer can try to change what the test relies on. This module is imported by
each exercise's locked setup cell, *before* any answer cell runs, and keeps:

* a snapshot of the callables of ``torch``, ``torch.Tensor``, ``numpy``,
  ``math``, ``builtins`` and of this module; :func:`verify_untampered` fails
  when an answer rebinds one of them (``torch.allclose = lambda *a: True``);
* :func:`call`, which runs a student's function while a profiler watches
  every call it makes, failing when it hands the graded computation to a
  forbidden built-in (listed per graded function in :data:`FORBIDDEN`) or to
  seqlab, and when it modifies its inputs;
* :func:`assert_close`, which compares with the pristine functions and
  refuses tensor subclasses (whose ``__torch_function__`` could lie).

Adding a chapter: add one entry per graded function to :data:`FORBIDDEN`,
naming the dotted paths of the built-ins that would do the whole job. Calls
into seqlab are always forbidden. A hidden test then reads::

    got = grading.call(student_fn, *inputs, forbid="student_fn")
    grading.assert_close(got, expected, "what was checked")

:class:`seqlab.course.RedactHiddenTests` keeps the hidden tests' source out
of the feedback that students receive.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable

import numpy
import numpy.testing
import torch
import torch.testing

# Built-ins that do the whole job of a graded function. Dotted paths are
# resolved lazily; a path that does not exist in this torch version is skipped.
# The built-ins that run a whole recurrent cell or layer, shared by the
# graded functions that write one.
_TORCH_RNN = (
    "torch.rnn_tanh_cell", "torch.rnn_tanh", "torch.rnn_relu_cell", "torch.rnn_relu",
    "torch.nn.RNNCell.forward", "torch.nn.RNN.forward",
)  # fmt: skip
_TORCH_LSTM = (
    "torch.lstm_cell", "torch.lstm", "torch._VF.lstm_cell", "torch._VF.lstm",
    "torch.nn.LSTMCell.forward", "torch.nn.LSTM.forward",
)  # fmt: skip
_TORCH_GRU = (
    "torch.gru_cell", "torch.gru", "torch._VF.gru_cell", "torch._VF.gru",
    "torch.nn.GRUCell.forward", "torch.nn.GRU.forward",
)  # fmt: skip
# The built-ins that compute a whole attention (scores, softmax and weighted sum).
_TORCH_ATTENTION = (
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.MultiheadAttention.forward",
    "torch._native_multi_head_attention",
    "torch._scaled_dot_product_attention_math",
    "torch._scaled_dot_product_flash_attention",
    "torch._scaled_dot_product_flash_attention_for_cpu",
    "torch._scaled_dot_product_efficient_attention",
    "torch._scaled_dot_product_cudnn_attention",
    "torch._triton_scaled_dot_attention",
    "torch._triton_multi_head_attention",
)

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # chapter 1: rnn_gradients
    "rnn_step": _TORCH_RNN,
    "rnn_forward": _TORCH_RNN,
    "scale_spectral_radius": (),
    "matrix_power_norms": (
        "torch.linalg.matrix_power",
        "torch.matrix_power",
        "torch.Tensor.matrix_power",
    ),
    "clip_grad_norm": (
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.get_total_norm",
        "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
    ),
    # chapter 2: lstm_gru
    "lstm_cell": _TORCH_LSTM,
    "gru_cell": _TORCH_GRU,
    "lstm_forward": _TORCH_LSTM,
    "first_step_gradient": (),
    # chapter 3: seq2seq (the decoders' step functions are trusted, see call)
    "sequence_nll": (
        "torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss",
        "torch._C._nn.cross_entropy_loss", "torch._C._nn.nll_loss", "torch._C._nn.nll_loss_nd",
        "torch._C._nn.nll_loss2d", "torch.nn.CrossEntropyLoss.forward", "torch.nn.NLLLoss.forward",
    ),  # fmt: skip
    "greedy_decode": (),
    "beam_search": (),
    # chapter 4: attention
    "dot_product_attention": _TORCH_ATTENTION,
    "additive_attention": _TORCH_ATTENTION,
    # chapter 5: transformers
    "scaled_dot_product_attention": _TORCH_ATTENTION,
    "causal_mask": (
        "torch.nn.Transformer.generate_square_subsequent_mask",
        "torch.nn.modules.transformer._generate_square_subsequent_mask",
    ),
    "sinusoidal_positions": (),
    "MultiHeadAttention": _TORCH_ATTENTION + (
        "torch.nn.modules.activation.MultiheadAttention.forward",
        "torch.nn.Transformer.forward", "torch.nn.TransformerEncoder.forward",
        "torch.nn.TransformerDecoder.forward", "torch.nn.TransformerEncoderLayer.forward",
        "torch.nn.TransformerDecoderLayer.forward", "torch._transformer_encoder_layer_fwd",
    ),  # fmt: skip
}

# chapter 6: gpt_prompting. Hugging Face's logits warpers do sample_next_token's top-k and
# temperature on plain tensors; they are listed only where transformers is installed
# (resolving a path imports its top module). Its scorers work on its own models only, so
# completion_logprob and rank_choices forbid seqlab's reference versions alone.
_HF_WARPERS = (
    tuple(
        f"transformers.generation.logits_process.{name}.__call__"
        for name in ("TopKLogitsWarper", "TemperatureLogitsWarper", "TopPLogitsWarper",
                     "MinPLogitsWarper", "LogitsProcessorList")
    )  # fmt: skip
    if importlib.util.find_spec("transformers") is not None
    else ()
)
FORBIDDEN.update(
    {
        "sample_next_token": _HF_WARPERS,
        "completion_logprob": (),
        "rank_choices": (),
    }
)


class DelegationError(AssertionError):
    """The answer handed the graded computation to a forbidden callable."""


class TamperingError(AssertionError):
    """The notebook changed a function that the tests rely on."""


_SEQLAB_DIR = os.path.dirname(os.path.abspath(__file__))
# seqlab files an answer may run through while graded: this module (the
# checks themselves) and the device/seed helpers.
# seqlab.device() and seqlab.seed() are open to students (env.py, reached through
# the package's lazy __getattr__ in __init__.py)
_SEQLAB_ALLOWED = {
    os.path.join(_SEQLAB_DIR, name) for name in ("grading.py", "env.py", "__init__.py")
}

# What the snapshot covers: (label, object, names or None for all callables).
# IPython rebinds a few builtins and sys hooks around every cell, so those two
# are watched by name.
_WATCHED = (
    (
        "builtins",
        builtins,
        (
            "abs",
            "all",
            "any",
            "bool",
            "callable",
            "dict",
            "float",
            "getattr",
            "hasattr",
            "id",
            "int",
            "isinstance",
            "issubclass",
            "len",
            "list",
            "map",
            "max",
            "min",
            "next",
            "range",
            "repr",
            "round",
            "set",
            "setattr",
            "sorted",
            "str",
            "sum",
            "tuple",
            "type",
            "zip",
            "__import__",
        ),
    ),
    ("sys", sys, ("getprofile", "setprofile", "gettrace", "settrace")),
    ("math", math, None),
    ("torch", torch, None),
    ("torch.Tensor", torch.Tensor, None),
    ("torch.linalg", torch.linalg, None),
    ("torch.nn.functional", torch.nn.functional, None),
    ("torch.testing", torch.testing, None),
    ("numpy", numpy, None),
    ("numpy.linalg", numpy.linalg, None),
    ("numpy.testing", numpy.testing, None),
)


def _attributes(obj, names) -> dict[str, object]:
    """The callables an object offers. For a class, the raw entries of every class
    in its method resolution order, so that shadowing an inherited method shows."""
    if names is not None:
        return {name: getattr(obj, name, None) for name in names}
    if isinstance(obj, type):
        return {
            f"{cls.__name__}.{name}": value
            for cls in obj.__mro__[:-1]
            for name, value in list(vars(cls).items())
            if callable(value) or hasattr(value, "__get__")
        }
    return {name: value for name, value in list(vars(obj).items()) if callable(value)}


_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _torch_rewrap(current, original) -> bool:
    """True when torch itself wrapped ``original``: importing torch._dynamo, which
    torch does lazily, replaces torch.manual_seed by a wrapper defined in torch."""
    code = getattr(current, "__code__", None)
    return (
        code is not None
        and os.path.abspath(code.co_filename).startswith(_TORCH_DIR)
        and inspect.unwrap(current) is original
    )


def _make_verifier(snapshot, own_names):
    """Build verify_untampered with the snapshot held in its closure, out of the module's way."""

    def verify_untampered() -> None:
        """Fail if a watched function or one of this module's own names was rebound."""
        changed = []
        for label, obj, names in _WATCHED_CONST:
            current = _attributes(obj, names)
            for name, original in snapshot[label].items():
                if current.get(name) is not original and not _torch_rewrap(
                    current.get(name), original
                ):
                    changed.append(f"{label}.{name}")
            if isinstance(obj, type):  # a new entry on a class shadows an inherited one
                changed.extend(
                    f"{label}.{name}" for name in current.keys() - snapshot[label].keys()
                )
        module_dict = sys.modules[__name__].__dict__
        for name, original in own_names.items():
            if module_dict.get(name) is not original:
                changed.append(f"seqlab.grading.{name}")
        if changed:
            raise TamperingError(
                "the notebook replaced functions that the tests rely on: "
                + ", ".join(sorted(changed)[:8])
                + ". Answers that change the course's checks earn no points."
            )

    return verify_untampered


_WATCHED_CONST = _WATCHED
_OWN: dict[str, object] = {}  # this module's callables, filled in at the end of the module
verify_untampered = _make_verifier(
    {label: _attributes(obj, names) for label, obj, names in _WATCHED}, _OWN
)

# Pristine references used by the checks below, taken before any answer runs.
_allclose = torch.allclose
_equal = torch.equal
_isinstance = builtins.isinstance
_type = builtins.type
_getprofile, _setprofile = sys.getprofile, sys.setprofile
_threading_setprofile = threading.setprofile


def _resolve(path: str):
    module_name, _, attr_path = path.partition(".")
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except (ImportError, AttributeError):
                return None
        else:
            obj = getattr(obj, part)
    return obj


class _Forbidden:
    """The callables one graded function may not reach, in three forms the profiler sees."""

    def __init__(self, paths: Iterable[str]):
        self.c_functions: dict[int, str] = {}  # id of a C function -> its dotted path
        self.tensor_methods: dict[str, str] = {}  # name of a torch.Tensor method -> dotted path
        self.codes: dict[object, str] = {}  # code object of a Python function -> dotted path
        for path in paths:
            obj = _resolve(path)
            if obj is None:
                continue
            if path.startswith("torch.Tensor."):
                self.tensor_methods[path.rsplit(".", 1)[1]] = path
            elif inspect.isfunction(obj) or inspect.ismethod(obj):
                self.codes[inspect.unwrap(obj).__code__] = path
            else:
                self.c_functions[id(obj)] = path
                name = getattr(obj, "__name__", None)
                # torch.matrix_power and Tensor.matrix_power are the same kernel
                if name and hasattr(torch.Tensor, name):
                    self.tensor_methods[name] = path

    def match(self, frame, event: str, arg) -> str | None:
        if event == "c_call":
            path = self.c_functions.get(id(arg))
            if path is None and _isinstance(getattr(arg, "__self__", None), torch.Tensor):
                path = self.tensor_methods.get(getattr(arg, "__name__", ""))
            return path
        if event == "call":
            code = frame.f_code
            if code in self.codes:
                return self.codes[code]
            filename = os.path.abspath(code.co_filename)
            if filename.startswith(_SEQLAB_DIR + os.sep) and filename not in _SEQLAB_ALLOWED:
                return f"seqlab ({os.path.basename(filename)}: {code.co_name})"
        return None


def _tensors_in(value) -> list[torch.Tensor]:
    if _isinstance(value, torch.Tensor):
        return [value]
    if _isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors_in(item)]
    if _isinstance(value, dict):
        return [t for item in value.values() for t in _tensors_in(item)]
    return []


def _structure(value):
    """Identity of the containers and tensors in an argument, to see in-place edits."""
    if _isinstance(value, (list, dict)):
        items = value.values() if _isinstance(value, dict) else value
        return (id(value), len(value), tuple(_structure(v) for v in items))
    if _isinstance(value, tuple):
        return tuple(_structure(v) for v in value)
    return id(value)


def _code_of(fn):
    """The code object a call of ``fn`` runs (function, bound method or callable object)."""
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    code = getattr(fn, "__code__", None)
    if code is None:
        call_method = inspect.getattr_static(_type(fn), "__call__", None)
        code = getattr(getattr(call_method, "__func__", call_method), "__code__", None)
    return code


def call(fn: Callable, *args, forbid: str, trusted: Iterable[Callable] = (), **kwargs):
    """Run a student's function under the grader's watch and return its result.

    Fails with :class:`DelegationError` if, while running, it calls one of
    ``FORBIDDEN[forbid]`` or any seqlab function, or switches the watch off;
    with an AssertionError if it modifies a tensor or list it was given.
    trusted: callables the test hands to the answer (a seqlab decoder's step
    function): while one of them runs, together with everything it calls,
    nothing is watched. Their code objects are taken before the answer runs,
    so an answer cannot swap in its own; the answer itself is never trusted, and
    may hand them plain tensors only (a subclass's ``__torch_function__`` would
    run the answer's code inside them, unwatched).
    """
    verify_untampered()
    if not callable(fn):
        raise AssertionError(f"{forbid} should be a function, got {_type(fn).__name__}")
    trusted_codes = {code for code in map(_code_of, trusted) if code is not None}
    if _code_of(fn) in trusted_codes:
        raise DelegationError(f"{forbid} cannot be one of the trusted functions")
    forbidden = _Forbidden(FORBIDDEN.get(forbid, ()))
    inputs = list(args) + list(kwargs.values())
    before = [t.detach().clone() for t in _tensors_in(inputs)]
    shape_before = _structure(inputs)
    hits: list[str] = []
    inside: list = []  # the frame of the trusted call now running, if any

    def watch(frame, event, arg):
        if inside:
            if frame is inside[0] and event == "return":
                inside.clear()
            return
        if event == "call" and frame.f_code in trusted_codes:
            # a tensor subclass handed to trusted code would run its own code unwatched
            if any(_isinstance(v, torch.Tensor) and _type(v) is not torch.Tensor
                   for v in frame.f_locals.values()):  # fmt: skip
                hits.append("a tensor subclass passed to a function the test gave it")
            inside.append(frame)
            return
        path = forbidden.match(frame, event, arg)
        if path is not None and path not in hits:
            hits.append(path)

    previous = _getprofile()
    _setprofile(watch)
    _threading_setprofile(watch)
    try:
        result = fn(*args, **kwargs)
        still_watching = _getprofile() is watch
    finally:
        _setprofile(previous)
        _threading_setprofile(None)
    if not still_watching:
        raise DelegationError(f"{forbid} switched off the grader's call tracking")
    if hits:
        raise DelegationError(
            f"{forbid} hands its work to {', '.join(hits)}, which this exercise asks you "
            "to write yourself; this item earns no points"
        )
    after = _tensors_in(inputs)
    if _structure(inputs) != shape_before or any(
        not _equal(a.detach(), b) for a, b in zip(after, before, strict=True)
    ):
        raise AssertionError(
            f"{forbid} modified its inputs in place; it should leave them as given"
        )
    return result


def assert_tensor(got, what: str, shape=None, dtype=None, device=None) -> None:
    """Fail unless ``got`` is a plain torch.Tensor with the given shape, dtype and device."""
    if _type(got) is not torch.Tensor:
        raise AssertionError(f"{what}: expected a torch.Tensor, got {_type(got).__name__}")
    if shape is not None and tuple(got.shape) != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {tuple(got.shape)}")
    if dtype is not None and got.dtype != dtype:
        raise AssertionError(f"{what}: expected dtype {dtype}, got {got.dtype}")
    if device is not None and got.device != torch.device(device):
        raise AssertionError(f"{what}: expected a tensor on {device}, got one on {got.device}")


def assert_close(got, expected: torch.Tensor, what: str, rtol: float = 1e-6, atol: float = 1e-6):
    """Fail unless ``got`` has expected's shape, dtype and device and values within tolerance."""
    verify_untampered()
    assert_tensor(got, what, expected.shape, expected.dtype, expected.device)
    got, expected = got.detach(), expected.detach()
    if not _allclose(got, expected, rtol=rtol, atol=atol):
        diff = (got.double() - expected.double()).abs()
        worst = diff.nan_to_num(math.inf).max().item() if diff.numel() else 0.0
        raise AssertionError(
            f"{what}: values differ from the expected ones (largest gap {worst:.3g})"
        )


def assert_equal(got, expected: torch.Tensor, what: str) -> None:
    """Fail unless ``got`` equals ``expected`` exactly (shape, dtype, device and every bit)."""
    verify_untampered()
    assert_tensor(got, what, expected.shape, expected.dtype, expected.device)
    if not _equal(got.detach(), expected.detach()):
        raise AssertionError(f"{what}: expected exactly the given values, unchanged")


def devices() -> list[str]:
    """The devices a hidden test runs on: the CPU, and CUDA when this machine has it."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_generator(seed: int) -> torch.Generator:
    """A private generator for hidden tests, so answers cannot predict their inputs."""
    return torch.Generator().manual_seed(seed)


_OWN.update(
    (name, value)
    for name, value in list(globals().items())
    if callable(value) and not name.startswith("__")
)
