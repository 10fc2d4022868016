"""The checks that the exercises' hidden tests use.

A hidden test runs after the student's answer cells, in the same kernel, so an
answer can try to change what the test relies on. Each exercise's locked setup
cell imports this module *before* any answer cell runs. It keeps:

* a snapshot of the callables of ``torch``, ``torch.Tensor``, ``numpy``,
  ``math``, ``builtins`` and of this module; :func:`verify_untampered` fails
  when an answer rebinds one of them (``torch.allclose = lambda *a: True``);
* :func:`call`, which runs a student's function while a profiler watches every call it makes,
  failing when it hands the graded computation to a forbidden built-in (listed per graded
  function in :data:`FORBIDDEN`) or to seqlab, and when it modifies its inputs;
* :func:`assert_close`, which compares with the pristine functions, refuses tensor
  subclasses (whose ``__torch_function__`` could lie) and, on a failure, says where the
  first value differs: its index, expected against got (never the test's inputs).

Adding a chapter: add one entry per graded function to :data:`FORBIDDEN`, the
built-ins that would do the whole job (seqlab is always forbidden). A test reads::

    got = grading.call(student_fn, *inputs, forbid="student_fn")
    grading.assert_close(got, expected, "what was checked")

:class:`seqlab.kit.plugins.RedactHiddenTests` keeps the hidden tests out of feedback.

The tables the checks rely on (:data:`FORBIDDEN`, the seqlab files an answer may run through,
the watched list) are immutable, and :func:`verify_untampered` holds in its closure the module,
a copy of its namespace and of every table's content, and the code, defaults and class entries
of its functions, taken at import. It fails when an answer rebinds, deletes or adds a name here
(``setattr``, ``del``, ``object.__setattr__``, ``vars(grading)``), mutates a table (the dict
under ``FORBIDDEN`` is reachable with ``gc.get_referents``), swaps a function's ``__code__`` or
defaults, replaces ``sys.modules["seqlab.grading"]``, or rebinds a stdlib helper the checks use
(``inspect.unwrap``, ``os.path.abspath``, ``importlib.import_module``). :func:`call` reads the
forbidden callables from that private copy. As a first line, the module refuses attribute
assignment and deletion, and so ``importlib.reload`` (which sets ``__spec__`` first).

What checks inside the kernel cannot guarantee: full Python can still replace the entry points
(rebind ``grading``, rewrite :func:`verify_untampered`'s code or closure, run the module again),
reach the profiler's state from inside :func:`call` or write memory with ``ctypes``; the OS
sandbox and the redacted feedback hold against those (book/instructors.md, "The security model").
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.util
import inspect
import itertools
import math
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import numpy
import numpy.testing
import torch
import torch.testing

if "verify_untampered" in globals():  # run again in its own namespace (exec_module, exec)
    raise ImportError("seqlab.grading runs once per kernel; answers may not run it again")

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
    "torch.nn.functional.multi_head_attention_forward", "torch.nn.MultiheadAttention.forward",
    "torch._native_multi_head_attention", "torch._scaled_dot_product_attention_math",
    "torch._scaled_dot_product_flash_attention",
    "torch._scaled_dot_product_flash_attention_for_cpu",
    "torch._scaled_dot_product_efficient_attention",
    "torch._scaled_dot_product_cudnn_attention",
    "torch._triton_scaled_dot_attention", "torch._triton_multi_head_attention",
)  # fmt: skip

# chapter 6: Hugging Face's logits warpers do sample_next_token's and top_p_filter's work on
# plain tensors: listed where transformers is installed (resolving a path imports it). Its
# scorers work on its own models only: completion_logprob and rank_choices forbid seqlab alone.
_HF_WARPERS = tuple(
    f"transformers.generation.logits_process.{name}.__call__"
    for name in ("TopKLogitsWarper", "TemperatureLogitsWarper", "TopPLogitsWarper",
                 "MinPLogitsWarper", "LogitsProcessorList")
    if importlib.util.find_spec("transformers") is not None
)  # fmt: skip
_HF_ROPE = tuple(  # chapter 5: transformers' RoPE, where installed (_HF_WARPERS not empty)
    f"transformers.models.{m}.modeling_{m}.{f}" for m in ("llama", "gpt_neox", "mistral", "qwen2",
    "gemma", "phi3") for f in ("apply_rotary_pos_emb", "rotate_half") if _HF_WARPERS)  # fmt: skip
# Read-only: answers run in the same kernel (see verify_untampered).
FORBIDDEN: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    # chapter 1: rnn_gradients
    "rnn_step": _TORCH_RNN, "rnn_forward": _TORCH_RNN, "scale_spectral_radius": (),
    "matrix_power_norms": (
        "torch.linalg.matrix_power", "torch.matrix_power", "torch.Tensor.matrix_power",
    ),
    "clip_grad_norm": (
        "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
    ),
    # chapter 2: lstm_gru
    "lstm_cell": _TORCH_LSTM, "gru_cell": _TORCH_GRU, "lstm_forward": _TORCH_LSTM,
    "first_step_gradient": (),
    # chapter 3: seq2seq (the decoders' step functions are trusted, see call)
    "sequence_nll": (
        "torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss",
        "torch._C._nn.cross_entropy_loss", "torch._C._nn.nll_loss", "torch._C._nn.nll_loss_nd",
        "torch._C._nn.nll_loss2d", "torch.nn.CrossEntropyLoss.forward", "torch.nn.NLLLoss.forward",
    ),  # fmt: skip
    "greedy_decode": (), "beam_search": (),
    # chapter 4: attention
    "dot_product_attention": _TORCH_ATTENTION, "additive_attention": _TORCH_ATTENTION,
    # chapter 5: transformers
    "scaled_dot_product_attention": _TORCH_ATTENTION, "apply_rope": _HF_ROPE,
    "causal_mask": ("torch.nn.Transformer.generate_square_subsequent_mask",
                    "torch.nn.modules.transformer._generate_square_subsequent_mask"),
    "sinusoidal_positions": (), "MultiHeadAttention": _TORCH_ATTENTION + (
        "torch.nn.modules.activation.MultiheadAttention.forward",
        "torch.nn.Transformer.forward", "torch.nn.TransformerEncoder.forward",
        "torch.nn.TransformerDecoder.forward", "torch.nn.TransformerEncoderLayer.forward",
        "torch.nn.TransformerDecoderLayer.forward", "torch._transformer_encoder_layer_fwd",
    ),  # fmt: skip
    # chapter 6: gpt_prompting
    "sample_next_token": _HF_WARPERS, "completion_logprob": (), "rank_choices": (),
    "top_p_filter": _HF_WARPERS, "cached_attention_step": _TORCH_ATTENTION,
    "gpt_param_count": ("torch.nn.Module.__init__", "torch.nn.Module.parameters"),  # by building
})  # fmt: skip


class DelegationError(AssertionError):
    """The answer handed the graded computation to a forbidden callable."""


class TamperingError(AssertionError):
    """The notebook changed a function or a table that the tests rely on."""


_SEQLAB_DIR = os.path.dirname(os.path.abspath(__file__))
# seqlab files an answer may run through while graded: this module (the checks themselves)
# and seqlab.device() and seqlab.seed() (base/env.py, through the package's __getattr__).
_SEQLAB_ALLOWED = frozenset(
    os.path.join(_SEQLAB_DIR, *name)
    for name in (("grading.py",), ("base", "env.py"), ("base", "__init__.py"), ("__init__.py",))
)

# What the snapshot covers: (label, object, names or None for all callables).
# IPython rebinds a few builtins and sys hooks around every cell, so those two
# are watched by name, as are the stdlib helpers that the checks below call.
_WATCHED = (
    ("builtins", builtins, (
        "abs", "all", "any", "bool", "callable", "dict", "float", "frozenset", "getattr",
        "hasattr", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map",
        "max", "min", "next", "range", "repr", "round", "set", "setattr", "sorted", "str",
        "sum", "tuple", "type", "vars", "zip", "__import__",
    )),
    ("sys", sys, ("getprofile", "setprofile", "gettrace", "settrace", "modules")),
    ("inspect", inspect, ("unwrap", "isfunction", "ismethod", "getattr_static")),
    ("os.path", os.path, ("abspath", "basename", "dirname", "join")),
    ("importlib", importlib, ("import_module", "reload")),
    ("threading", threading, ("setprofile",)),
    ("math", math, None), ("torch", torch, None), ("torch.Tensor", torch.Tensor, None),
    ("torch.linalg", torch.linalg, None), ("torch.nn.functional", torch.nn.functional, None),
    ("torch.testing", torch.testing, None), ("numpy", numpy, None),
    ("numpy.linalg", numpy.linalg, None), ("numpy.testing", numpy.testing, None),
)  # fmt: skip

# Pristine references used by the checks below, taken before any answer runs.
_allclose, _equal, _isclose, _eq = torch.allclose, torch.equal, torch.isclose, torch.eq
_isinstance, _type, _getattr = builtins.isinstance, builtins.type, builtins.getattr
_vars, _callable = builtins.vars, builtins.callable
_getprofile, _setprofile = sys.getprofile, sys.setprofile
_threading_setprofile, _import_module = threading.setprofile, importlib.import_module
_abspath, _basename = os.path.abspath, os.path.basename
_unwrap, _isfunction, _ismethod = inspect.unwrap, inspect.isfunction, inspect.ismethod
_getattr_static = inspect.getattr_static


def _attributes(obj, names) -> dict[str, object]:
    """The callables an object offers. For a class, the raw entries of every class
    in its method resolution order, so that shadowing an inherited method shows."""
    if names is not None:
        return {name: _vars(obj).get(name) for name in names}
    if _isinstance(obj, type):
        return {
            f"{cls.__name__}.{name}": value
            for cls in obj.__mro__[:-1]
            for name, value in list(_vars(cls).items())
            if _callable(value) or hasattr(value, "__get__")
        }
    return {name: value for name, value in list(_vars(obj).items()) if _callable(value)}


_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _torch_rewrap(current, original) -> bool:
    """True when torch itself wrapped ``original``: importing torch._dynamo, which
    torch does lazily, replaces torch.manual_seed by a wrapper defined in torch."""
    code = _getattr(current, "__code__", None)
    return (
        code is not None
        and _abspath(code.co_filename).startswith(_TORCH_DIR)
        and _unwrap(current) is original
    )


def _resolve(path: str):
    module_name, _, attr_path = path.partition(".")
    obj = _import_module(module_name)
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            try:
                obj = _import_module(f"{obj.__name__}.{part}")
            except (ImportError, AttributeError):
                return None
        else:
            obj = _getattr(obj, part)
    return obj


class _Forbidden(NamedTuple):
    """The callables one graded function may not reach, in three forms the profiler sees; a
    tuple, so that an answer that reaches it from inside :func:`call` cannot edit it."""

    c_functions: tuple[tuple[int, str], ...]  # (id of a C function, its dotted path)
    tensor_methods: tuple[tuple[str, str], ...]  # (name of a torch.Tensor method, path)
    codes: tuple[tuple[object, str], ...]  # (code object of a Python function, path)

    @classmethod
    def of(cls, paths: Iterable[str]) -> _Forbidden:
        c_functions, tensor_methods, codes = [], [], []
        for path in paths:
            obj = _resolve(path)
            if obj is None:
                continue
            if path.startswith("torch.Tensor."):
                tensor_methods.append((path.rsplit(".", 1)[1], path))
            elif _isfunction(obj) or _ismethod(obj):
                codes.append((_unwrap(obj).__code__, path))
            else:
                c_functions.append((id(obj), path))
                name = _getattr(obj, "__name__", None)
                # torch.matrix_power and Tensor.matrix_power are the same kernel
                if name and hasattr(torch.Tensor, name):
                    tensor_methods.append((name, path))
        return cls(tuple(c_functions), tuple(tensor_methods), tuple(codes))

    def match(self, frame, event: str, arg) -> str | None:
        if event == "c_call":
            path = _lookup(self.c_functions, id(arg))
            if path is None and _isinstance(_getattr(arg, "__self__", None), torch.Tensor):
                path = _lookup(self.tensor_methods, _getattr(arg, "__name__", ""))
            return path
        if event == "call":
            code = frame.f_code
            path = _lookup(self.codes, code)
            if path is not None:
                return path
            filename = _abspath(code.co_filename)
            if filename.startswith(_SEQLAB_DIR + os.sep) and filename not in _SEQLAB_ALLOWED:
                return f"seqlab ({_basename(filename)}: {code.co_name})"
        return None


def _lookup(pairs: tuple, key) -> str | None:
    for k, path in pairs:
        if k == key:
            return path
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
    fn = _unwrap(_getattr(fn, "__func__", fn))
    code = _getattr(fn, "__code__", None)
    if code is None:
        call_method = _getattr_static(_type(fn), "__call__", None)
        code = _getattr(_getattr(call_method, "__func__", call_method), "__code__", None)
    return code


def call(fn: Callable, *args, forbid: str, trusted: Iterable[Callable] = (), **kwargs):
    """Run a student's function under the grader's watch and return its result.

    Fails with :class:`DelegationError` if, while running, it calls one of ``FORBIDDEN[forbid]``
    (as copied at import) or any seqlab function, or switches the watch off or edits its record;
    with an AssertionError if it modifies a tensor or list it was given.
    trusted: callables the test hands to the answer (a seqlab decoder's step function): while
    one of them runs, together with everything it calls, nothing is watched. Their code objects
    are taken before the answer runs, so an answer cannot swap in its own; the answer itself is
    never trusted, and may hand them plain tensors only (a subclass's ``__torch_function__``
    would run the answer's code inside them, unwatched).
    """
    if not _callable(fn):
        raise AssertionError(f"{forbid} should be a function, got {_type(fn).__name__}")
    trusted_codes = frozenset(code for code in map(_code_of, trusted) if code is not None)
    if _code_of(fn) in trusted_codes:
        raise DelegationError(f"{forbid} cannot be one of the trusted functions")
    forbidden = _Forbidden.of(_forbidden_paths(forbid))
    inputs = list(args) + list(kwargs.values())
    before = [t.detach().clone() for t in _tensors_in(inputs)]
    shape_before = _structure(inputs)
    hits: list[str] = []
    tally = itertools.count()  # the hits again: an answer can empty a list, not rewind a count
    inside: list = []  # the frame of the trusted call now running, if any
    # The answer can reach watch's closure (sys.getprofile()); this tuple is not in it.
    watched_state = (forbidden, trusted_codes, hits, tally, inside)

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
        if path is not None:
            next(tally)
            if path not in hits:
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
    state_now = (forbidden, trusted_codes, hits, tally, inside)
    if any(a is not b for a, b in zip(state_now, watched_state, strict=True)) or inside:
        raise DelegationError(f"{forbid} changed the grader's call tracking")
    if next(tally) and not hits:
        raise DelegationError(f"{forbid} erased the grader's record of its forbidden calls")
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


def _first_difference(got: torch.Tensor, expected: torch.Tensor, same: torch.Tensor) -> str:
    """Where ``same`` (elementwise) first fails: index, expected against got, largest gap."""
    where = (~same).nonzero()[0].tolist()
    values = expected[tuple(where)].item(), got[tuple(where)].item()
    shown = [f"{v:.6g}" if _isinstance(v, float) else str(v) for v in values]
    want, have = map(repr, values) if shown[0] == shown[1] else shown
    gap = (got.double() - expected.double()).abs().nan_to_num(math.inf, math.inf).max().item()
    return f"{f' at {where}' if where else ''}: expected {want}, got {have} (largest gap {gap:.3g})"


def assert_close(got, expected: torch.Tensor, what: str, rtol: float = 1e-6, atol: float = 1e-6):
    """Fail unless ``got`` has expected's shape, dtype and device and values within tolerance."""
    assert_tensor(got, what, expected.shape, expected.dtype, expected.device)
    got, expected = got.detach(), expected.detach()
    if not _allclose(got, expected, rtol=rtol, atol=atol):
        where = _first_difference(got, expected, _isclose(got, expected, rtol=rtol, atol=atol))
        raise AssertionError(f"{what}: values differ from the expected ones{where}")


def assert_equal(got, expected: torch.Tensor, what: str) -> None:
    """Fail unless ``got`` equals ``expected`` exactly (shape, dtype, device and every bit)."""
    assert_tensor(got, what, expected.shape, expected.dtype, expected.device)
    got, expected = got.detach(), expected.detach()
    if not _equal(got, expected):
        where = _first_difference(got, expected, _eq(got, expected))
        raise AssertionError(f"{what}: values differ from the exact expected ones{where}")


DEVICES_VARIABLE = "SEQLAB_GRADING_DEVICES"  # the kit sets "cpu": one score on every grader


def devices() -> list[str]:
    """The devices a hidden test runs on: the CPU, and CUDA when this machine has it, of
    those that SEQLAB_GRADING_DEVICES lists (a comma list; unset: all of them)."""
    here = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    chosen = {d.strip() for d in os.environ.get(DEVICES_VARIABLE, ",".join(here)).split(",")}
    return [d for d in here if d in chosen] or ["cpu"]


def random_generator(seed: int) -> torch.Generator:
    """A private generator for hidden tests, so answers cannot predict their inputs."""
    return torch.Generator().manual_seed(seed)


class _SealedModule(types.ModuleType):
    """This module's class once imported: it refuses attribute assignment and deletion, a first
    line only (``object.__setattr__`` and ``vars(grading)`` go around it; see verify_untampered).
    """

    __slots__ = ()

    def __setattr__(self, name, value):
        raise TamperingError(f"seqlab.grading is read-only (the notebook set {name})")

    def __delattr__(self, name):
        raise TamperingError(f"seqlab.grading is read-only (the notebook deleted {name})")


def _guarded(check: Callable, verify: Callable) -> Callable:
    """``check`` run between two calls of ``verify``, which it holds in its closure:
    rebinding ``verify_untampered`` in this module's namespace cannot switch it off."""

    @functools.wraps(check)
    def guarded(*args, **kwargs):
        verify()
        result = check(*args, **kwargs)
        verify()  # what the graded call itself may have changed
        return result

    return guarded


def _make_guard(module: types.ModuleType, bound_names: tuple[str, str], checks: tuple[str, ...]):
    """verify_untampered and the private copy of FORBIDDEN, with everything they compare held
    in their closure (the module, its namespace, its tables' content, its functions' code and
    defaults, the watched callables). ``bound_names``: the names the module binds the two to
    (part of the namespace the verifier expects); ``checks``: the functions hidden tests call,
    rebound here to run the verifier before and after."""
    namespace = vars(module)
    modules, parent = sys.modules, sys.modules.get(module.__package__ or "")
    child = module.__name__.rpartition(".")[2]
    forbidden_copy = tuple((name, tuple(paths)) for name, paths in FORBIDDEN.items())
    forbidden_table = namespace["FORBIDDEN"]
    # (label, object, names, ((name, value), ...)): immutable, and taken before any answer
    watched = _WATCHED + tuple(
        (f"seqlab.grading.{name}", value, None)
        for name, value in namespace.items()
        if _isinstance(value, type) and value.__module__ == module.__name__
    )
    snapshot = tuple(
        (label, obj, names, tuple(_attributes(obj, names).items())) for label, obj, names in watched
    )
    # content copies of the tables, compared with the live ones on every check
    tables = (
        ("FORBIDDEN", forbidden_table, forbidden_copy),
        ("_SEQLAB_ALLOWED", _SEQLAB_ALLOWED, tuple(sorted(_SEQLAB_ALLOWED))),
        ("_WATCHED", _WATCHED, tuple((label, obj, names) for label, obj, names in _WATCHED)),
    )
    # the verifier reads nothing from the module's namespace, which an answer can edit
    attributes, torch_rewrap = _attributes, _torch_rewrap
    error, sealed = TamperingError, _SealedModule
    isinstance_, type_, vars_, sorted_ = _isinstance, type, vars, sorted
    tuple_, frozenset_, proxy = tuple, frozenset, types.MappingProxyType
    module_name = module.__name__

    def forbidden_paths(forbid: str) -> tuple[str, ...]:
        """The dotted paths forbidden to ``forbid``, from the copy taken at import."""
        for name, paths in forbidden_copy:
            if name == forbid:
                return paths
        return ()

    def verify_untampered() -> None:
        """Fail if a watched function, one of this module's names or one of its
        tables was rebound, deleted, added or edited since import."""
        changed = []
        if modules.get(module_name) is not module or type_(module) is not sealed:
            changed.append("sys.modules['seqlab.grading']")
        if parent is not None and vars_(parent).get(child, module) is not module:
            changed.append("seqlab.grading")
        for name, original in expected:
            if namespace.get(name, changed) is not original:
                changed.append(f"seqlab.grading.{name}")
        changed.extend(
            f"seqlab.grading.{name}"
            for name in namespace
            if name not in expected_names and name != "__warningregistry__"
        )
        for function, code, defaults, kwdefaults in functions:
            if (
                function.__code__ is not code
                or function.__defaults__ is not defaults
                or tuple_((function.__kwdefaults__ or {}).items()) != kwdefaults
            ):
                changed.append(f"seqlab.grading.{function.__qualname__}")
        for name, table, content in tables:
            now = table.items() if isinstance_(table, proxy) else table
            if tuple_(sorted_(now) if name == "_SEQLAB_ALLOWED" else now) != content:
                changed.append(f"the content of seqlab.grading.{name}")
        for label, obj, names, originals in snapshot:
            current = attributes(obj, names)
            for name, original in originals:
                value = current.get(name)
                if value is not original and not torch_rewrap(value, original):
                    changed.append(f"{label}.{name}")
            if isinstance_(obj, type):  # a new entry on a class shadows an inherited one
                known = frozenset_(name for name, _ in originals)
                changed.extend(f"{label}.{name}" for name in current if name not in known)
        if changed:
            raise error(
                "the notebook replaced functions or tables that the tests rely on: "
                + ", ".join(sorted_(frozenset_(changed))[:8])
                + ". Answers that change the course's checks earn no points."
            )

    for name in checks:
        namespace[name] = _guarded(namespace[name], verify_untampered)
    expected_namespace = dict(namespace)
    expected_namespace.update(zip(bound_names, (verify_untampered, forbidden_paths), strict=True))
    expected = tuple(expected_namespace.items())
    expected_names = frozenset(expected_namespace)
    functions = tuple(
        (f, f.__code__, f.__defaults__, tuple((f.__kwdefaults__ or {}).items()))
        for f in _own_functions(expected_namespace.values(), module.__name__)
    )
    if type(module) is not types.ModuleType:
        raise TamperingError("seqlab.grading runs once per kernel; answers may not run it again")
    module.__class__ = _SealedModule
    return verify_untampered, forbidden_paths


def _own_functions(values: Iterable[object], module_name: str) -> list:
    """The Python functions defined in this module, its classes' methods included."""
    found = []
    for value in values:
        if _getattr(value, "__module__", None) != module_name:
            continue
        members = list(_vars(value).values()) if _isinstance(value, type) else [value]
        for member in members:
            member = _getattr(member, "__func__", member)  # classmethod, staticmethod
            while _isfunction(member):  # a guarded check, then the check it wraps
                found.append(member)
                member = _getattr(member, "__wrapped__", None)
    return found


verify_untampered, _forbidden_paths = _make_guard(
    sys.modules[__name__],
    ("verify_untampered", "_forbidden_paths"),
    ("call", "assert_tensor", "assert_close", "assert_equal"),
)
