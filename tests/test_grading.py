"""seqlab.grading (the hidden tests' checks) and the feedback redaction, without nbgrader."""

import math

import nbformat
import numpy
import numpy.testing
import pytest
import torch

from seqlab import grading
from seqlab.kit.plugins import RedactHiddenTests

pytestmark = pytest.mark.grading


def _norms(W, k):
    P, out = W, []
    for _ in range(k):
        out.append(torch.linalg.matrix_norm(P, ord=2))
        P = P @ W
    return torch.stack(out)


@pytest.mark.parametrize(
    "target",
    [
        (torch, "allclose"),
        (torch, "equal"),
        (torch.testing, "assert_close"),
        (numpy, "allclose"),
        (numpy.testing, "assert_allclose"),
        (torch, "tanh"),
        (torch.Tensor, "__sub__"),
        (math, "isclose"),
        (grading._Forbidden, "match"),
        (__import__("inspect"), "unwrap"),
        (__import__("os").path, "abspath"),
    ],
)
def test_rebinding_a_checked_function_is_reported_as_tampering(monkeypatch, target):
    module, name = target
    grading.verify_untampered()
    monkeypatch.setattr(module, name, lambda *a, **k: True)
    with pytest.raises(grading.TamperingError, match=name):
        grading.verify_untampered()


def test_torch_wrapping_its_own_functions_is_not_tampering():
    import torch._dynamo  # noqa: F401 -- wraps torch.manual_seed in a torch-defined wrapper

    grading.verify_untampered()


def test_a_wrapper_defined_outside_torch_is_tampering(monkeypatch):
    import functools

    original = torch.manual_seed
    monkeypatch.setattr(torch, "manual_seed", functools.wraps(original)(lambda *a: None))
    with pytest.raises(grading.TamperingError, match="manual_seed"):
        grading.verify_untampered()


def test_call_returns_the_result_of_an_honest_answer():
    W = torch.randn(4, 4, dtype=torch.float64)
    torch.testing.assert_close(
        grading.call(_norms, W, 3, forbid="matrix_power_norms"), _norms(W, 3)
    )


@pytest.mark.parametrize(
    "answer",
    [
        lambda W, k: torch.stack(
            [torch.linalg.matrix_norm(torch.linalg.matrix_power(W, i), 2) for i in range(1, k + 1)]
        ),
        lambda W, k: torch.stack(
            [torch.linalg.matrix_norm(W.matrix_power(i), 2) for i in range(1, k + 1)]
        ),
        lambda W, k: torch.stack(
            [torch.linalg.matrix_norm(torch.matrix_power(W, i), 2) for i in range(1, k + 1)]
        ),
    ],
    ids=["linalg", "tensor_method", "torch_namespace"],
)
def test_call_fails_an_answer_that_delegates_to_a_forbidden_builtin(answer):
    with pytest.raises(grading.DelegationError, match="matrix_power"):
        grading.call(answer, torch.randn(3, 3), 2, forbid="matrix_power_norms")


def test_call_fails_an_answer_that_uses_seqlab():
    from seqlab.gradients import matrix_power_norms

    with pytest.raises(grading.DelegationError, match="seqlab"):
        grading.call(
            lambda W, k: matrix_power_norms(W, k), torch.randn(3, 3), 2, forbid="matrix_power_norms"
        )


def test_call_allows_the_device_helper_and_other_functions_own_builtins():
    import seqlab

    grading.call(
        lambda W, k: _norms(W.to(seqlab.device()), k),
        torch.randn(3, 3),
        2,
        forbid="matrix_power_norms",
    )
    # torch.linalg.matrix_power is forbidden for matrix_power_norms only
    grading.call(
        lambda W: torch.linalg.matrix_power(W, 2), torch.randn(3, 3), forbid="scale_spectral_radius"
    )


def test_call_fails_an_answer_that_switches_off_the_watch():
    import sys

    def sneaky(W, k):
        sys.setprofile(None)
        return torch.linalg.matrix_power(W, k)

    with pytest.raises(grading.DelegationError, match="switched off"):
        grading.call(sneaky, torch.randn(3, 3), 2, forbid="matrix_power_norms")


def test_call_fails_answers_that_modify_their_inputs():
    grads = [torch.ones(3), torch.ones(2)]
    with pytest.raises(AssertionError, match="modified its inputs"):
        grading.call(lambda g, m: g[0].mul_(2), grads, 1.0, forbid="clip_grad_norm")
    with pytest.raises(AssertionError, match="modified its inputs"):
        grading.call(lambda g, m: g.append(g[0]), [torch.ones(3)], 1.0, forbid="clip_grad_norm")


def test_assert_close_refuses_tensor_subclasses_that_could_lie():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    fake = torch.zeros(3).as_subclass(Liar)
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got Liar"):
        grading.assert_close(fake, torch.ones(3), "a liar")


def test_assert_close_checks_shape_dtype_and_values_with_a_teaching_message():
    want = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(AssertionError, match=r"expected shape \(2, 3\), got \(3, 2\)"):
        grading.assert_close(torch.ones(3, 2, dtype=torch.float64), want, "x")
    with pytest.raises(AssertionError, match="expected dtype torch.float64, got torch.float32"):
        grading.assert_close(torch.ones(2, 3), want, "x")
    with pytest.raises(AssertionError, match="largest gap 0.5"):
        grading.assert_close(want + torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64), want, "x")
    with pytest.raises(AssertionError, match="largest gap inf"):
        grading.assert_close(want * math.nan, want, "x")
    grading.assert_close(want + 1e-9, want, "x")


def test_a_failed_comparison_says_where_the_first_value_differs_expected_against_got():
    want = torch.full((2, 4), 0.25, dtype=torch.float64)
    got = want.clone()
    got[1, 3], got[1, 1] = 0.3125, 0.2501
    expected = r"x: values differ from the expected ones at \[1, 1\]: expected 0.25, got 0.2501 "
    with pytest.raises(AssertionError, match=expected + r"\(largest gap 0.0625\)$"):
        grading.assert_close(got, want, "x")
    # a scalar has no index; values that print alike are shown in full
    with pytest.raises(AssertionError, match=r"^loss: values differ from the expected ones: "
                       r"expected 1.2, got 1.5 \(largest gap 0.3\)$"):  # fmt: skip
        grading.assert_close(torch.tensor(1.5), torch.tensor(1.2), "loss")
    tiny = torch.tensor([1.0, 1.0 + 2**-40], dtype=torch.float64)
    with pytest.raises(AssertionError, match=r"at \[1\]: expected 1.0000000000009095, got 1.0 "):
        grading.assert_equal(torch.ones(2, dtype=torch.float64), tiny, "y")
    with pytest.raises(AssertionError, match=r"at \[2\]: expected 4, got 3 \(largest gap 1\)"):
        grading.assert_equal(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), "ids")
    with pytest.raises(AssertionError, match=r"at \[1\]: expected 2, got inf \(largest gap inf\)"):
        grading.assert_close(torch.tensor([1.0, math.inf]), torch.tensor([1.0, 2.0]), "overflow")
    with pytest.raises(AssertionError, match=r"expected a tensor on meta, got one on cpu"):
        grading.assert_tensor(torch.ones(2), "z", device="meta")


def test_every_forbidden_path_resolves_in_this_torch():
    missing = [
        p
        for paths in grading.FORBIDDEN.values()
        for p in paths
        if grading._resolve(p) is None and p != "torch.nn.utils.clip_grad_norm"
    ]
    assert not missing


def test_feedback_redaction_removes_hidden_tests_and_tracebacks():
    cell = nbformat.v4.new_code_cell(
        'assert f(1) == 2, "visible"\n'
        "### BEGIN HIDDEN TESTS\nassert f(12345) == 67\n### END HIDDEN TESTS",
        metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 1}},
    )
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="f is wrong for large inputs",
            traceback=[
                "----> 3 assert f(12345) == 67",
                "AssertionError: f is wrong for large inputs",
            ],
        )
    ]
    answer = nbformat.v4.new_code_cell(
        "def f(x): return 2 * x", metadata={"nbgrader": {"solution": True}}
    )
    nb = nbformat.v4.new_notebook(cells=[answer, cell])
    out, _ = RedactHiddenTests().preprocess(nb, {})
    test = out.cells[1]
    assert (
        "12345" not in test.source
        and "# (hidden tests)" in test.source
        and "visible" in test.source
    )
    assert test.outputs[0]["traceback"] == ["AssertionError: f is wrong for large inputs"]
    assert out.cells[0].source == "def f(x): return 2 * x"


def _trusted_step_and_state():
    """A seqlab decoder's step function: it runs seqlab code, which the student may call."""
    from seqlab.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(6, 5, emb=4, hidden=3))
    src = torch.tensor([[4, 5]])
    return model.decoder_start(src, torch.ones_like(src, dtype=torch.bool))


def _greedy(step, state, bos_id, eos_id, max_len):
    token, out = torch.tensor([bos_id]), []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out


def test_a_trusted_step_may_run_seqlab_code_but_the_answer_may_not():
    from seqlab.base.decoding import greedy_decode

    step, state = _trusted_step_and_state()
    want = greedy_decode(step, state, 1, 2, 6)
    with pytest.raises(grading.DelegationError, match="seqlab"):  # step runs seqlab code
        grading.call(_greedy, step, state, 1, 2, 6, forbid="greedy_decode")
    got = grading.call(_greedy, step, state, 1, 2, 6, forbid="greedy_decode", trusted=[step])
    assert got == want
    with pytest.raises(grading.DelegationError, match=r"seqlab \(decoding.py"):
        grading.call(greedy_decode, step, state, 1, 2, 6, forbid="greedy_decode", trusted=[step])

    def calls_seqlab_between_steps(step, state, bos_id, eos_id, max_len):
        out = _greedy(step, state, bos_id, eos_id, max_len)
        return greedy_decode(step, state, bos_id, eos_id, max_len) and out

    with pytest.raises(grading.DelegationError, match="seqlab"):
        grading.call(
            calls_seqlab_between_steps, step, state, 1, 2, 6, forbid="greedy_decode",
            trusted=[step],
        )  # fmt: skip


def test_an_answer_cannot_make_itself_or_a_swapped_step_trusted():
    step, state = _trusted_step_and_state()
    with pytest.raises(grading.DelegationError, match="cannot be one of the trusted"):
        grading.call(_greedy, step, state, 1, 2, 6, forbid="greedy_decode", trusted=[_greedy])

    def swaps_the_step_code(step, state, bos_id, eos_id, max_len):
        def cheat(tokens, state):
            from seqlab.base.decoding import greedy_decode

            greedy_decode(step, state, 1, 2, 2)  # seqlab, run from a trusted-looking step
            return step(tokens, state)

        step.__code__ = cheat.__code__  # same free variable, "step", as fresh_step's
        return _greedy(step, state, bos_id, eos_id, max_len)

    _, state2 = _trusted_step_and_state()

    def fresh_step(tokens, state):  # a plain function, so that __code__ can be swapped
        return step(tokens, state)

    # trusting the wrapper works while it is honest...
    grading.call(_greedy, fresh_step, state2, 1, 2, 3, forbid="greedy_decode", trusted=[fresh_step])
    # ...but not once the answer swaps its code
    with pytest.raises(grading.DelegationError, match="seqlab"):
        grading.call(
            swaps_the_step_code, fresh_step, state2, 1, 2, 3, forbid="greedy_decode",
            trusted=[fresh_step],
        )  # fmt: skip


def test_an_answer_cannot_smuggle_code_into_a_trusted_step_in_a_tensor_subclass():
    from seqlab.base.decoding import greedy_decode

    step, state = _trusted_step_and_state()

    class Smuggler(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            greedy_decode(step, state.as_subclass(torch.Tensor), 1, 2, 2)  # seqlab, unwatched?
            return super().__torch_function__(func, types, args, kwargs or {})

    def smuggles(step, state, bos_id, eos_id, max_len):
        return _greedy(step, state.as_subclass(Smuggler), bos_id, eos_id, max_len)

    with pytest.raises(grading.DelegationError, match="tensor subclass"):
        grading.call(smuggles, step, state, 1, 2, 3, forbid="greedy_decode", trusted=[step])


def test_forbidden_losses_for_sequence_nll():
    logits, targets = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))

    def with_cross_entropy(logits, targets, pad_id):
        flat = logits.flatten(0, 1)
        return torch.nn.functional.cross_entropy(flat, targets.flatten(), ignore_index=pad_id)

    def with_nll_loss(logits, targets, pad_id):
        lp = torch.log_softmax(logits, -1).flatten(0, 1)
        return torch.nn.functional.nll_loss(lp, targets.flatten(), ignore_index=pad_id)

    for answer in (with_cross_entropy, with_nll_loss):
        with pytest.raises(grading.DelegationError, match="nll_loss|cross_entropy"):
            grading.call(answer, logits, targets, 0, forbid="sequence_nll")


# --- an answer cell that goes after the checks themselves ---------------------------------


def _delegates_to_matrix_power(W, k):
    return torch.stack(
        [torch.linalg.matrix_norm(torch.linalg.matrix_power(W, i), 2) for i in range(1, k + 1)]
    )


@pytest.fixture
def restored_grading():
    """The module as imported, put back after an attack (through the back doors it used)."""
    import gc
    import sys
    import types

    namespace, forbidden = dict(vars(grading)), dict(grading.FORBIDDEN)
    module_class = type(grading)
    functions = [grading._resolve, grading.call.__wrapped__]
    internals = [(f.__code__, f.__defaults__, dict(f.__kwdefaults__ or {})) for f in functions]
    yield
    for f, (code, defaults, kwdefaults) in zip(functions, internals, strict=True):
        f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults or None
    underlying = gc.get_referents(namespace["FORBIDDEN"])[0]
    underlying.clear()
    underlying.update(forbidden)
    vars(grading).clear()
    vars(grading).update(namespace)
    types.ModuleType.__setattr__(grading, "__class__", module_class)
    sys.modules["seqlab.grading"] = grading
    grading.verify_untampered()


@pytest.mark.parametrize(
    "attack",
    [
        lambda: setattr(grading, "FORBIDDEN", {}),
        lambda: setattr(grading, "verify_untampered", lambda: None),
        lambda: delattr(grading, "_SEQLAB_ALLOWED"),
        lambda: setattr(grading, "__class__", type("Open", (type(grading),), {})),
    ],
    ids=["rebind_table", "rebind_verifier", "delete_table", "swap_class"],
)
def test_assigning_or_deleting_a_name_of_the_grading_module_is_refused(restored_grading, attack):
    with pytest.raises(grading.TamperingError, match="read-only"):
        attack()
    grading.verify_untampered()


def _emptied_forbidden_table():
    import gc

    gc.get_referents(grading.FORBIDDEN)[0]["matrix_power_norms"] = ()


def _class_reset_then_rebind():
    import types

    object.__setattr__(grading, "__class__", types.ModuleType)
    grading.FORBIDDEN = {}


@pytest.mark.parametrize(
    "attack, reported",
    [
        (lambda: object.__setattr__(grading, "FORBIDDEN", {}), "FORBIDDEN"),
        (lambda: vars(grading).__setitem__("FORBIDDEN", {}), "FORBIDDEN"),
        (lambda: vars(grading).pop("_SEQLAB_ALLOWED"), "_SEQLAB_ALLOWED"),
        (lambda: vars(grading).__setitem__("_WATCHED", ()), "_WATCHED"),
        (lambda: vars(grading).__setitem__("_TORCH_DIR", "/"), "_TORCH_DIR"),
        (lambda: vars(grading).__setitem__("os", None), "grading.os"),
        (_emptied_forbidden_table, "content of seqlab.grading.FORBIDDEN"),
        (lambda: vars(grading).__setitem__("isinstance", lambda *a: True), "isinstance"),
        (lambda: vars(grading).__setitem__("_resolve", lambda path: None), "_resolve"),
        (lambda: vars(grading).__setitem__("_Forbidden", None), "_Forbidden"),
        (lambda: setattr(grading._resolve, "__code__", (lambda path: None).__code__), "_resolve"),
        (lambda: grading.call.__wrapped__.__kwdefaults__.update(trusted=(_norms,)), "call"),
        (_class_reset_then_rebind, "sys.modules"),
    ],
    ids=[
        "object_setattr", "module_dict", "module_dict_delete", "watched_list", "torch_dir",
        "imported_module", "gc_referents", "shadowed_builtin", "resolve", "forbidden_class",
        "function_code", "function_defaults", "class_reset",
    ],
)  # fmt: skip
def test_changing_a_table_or_a_function_through_a_back_door_is_reported(
    restored_grading, attack, reported
):
    attack()
    with pytest.raises(grading.TamperingError, match=reported):
        grading.verify_untampered()
    # and the checks a hidden test calls refuse to run
    with pytest.raises(grading.TamperingError):
        grading.call(_delegates_to_matrix_power, torch.randn(3, 3), 2, forbid="matrix_power_norms")


def test_emptying_forbidden_then_delegating_earns_nothing(restored_grading):
    """The hostile answer cell that was reported: FORBIDDEN emptied, then torch's built-in."""
    vars(grading)["FORBIDDEN"] = {}
    W = torch.randn(3, 3)
    with pytest.raises(grading.TamperingError, match="FORBIDDEN"):
        grading.call(_delegates_to_matrix_power, W, 2, forbid="matrix_power_norms")
    # with the verifier also rebound in the namespace, the hidden test's call still holds
    # the real one, and the forbidden callables come from the copy taken at import
    vars(grading)["verify_untampered"] = lambda: None
    with pytest.raises(grading.TamperingError, match="verify_untampered"):
        grading.call(_delegates_to_matrix_power, W, 2, forbid="matrix_power_norms")
    assert "torch.linalg.matrix_power" in grading._forbidden_paths("matrix_power_norms")


def test_the_module_cannot_be_reloaded_or_run_again(restored_grading):
    import importlib

    with pytest.raises(grading.TamperingError, match="read-only"):
        importlib.reload(grading)
    grading.verify_untampered()  # refused before anything was run again
    with pytest.raises(ImportError, match="runs once per kernel"):
        grading.__spec__.loader.exec_module(grading)


def test_replacing_the_module_in_sys_modules_or_the_package_is_reported(
    restored_grading, monkeypatch
):
    import sys
    import types

    import seqlab

    monkeypatch.setitem(sys.modules, "seqlab.grading", types.ModuleType("seqlab.grading"))
    with pytest.raises(grading.TamperingError, match="sys.modules"):
        grading.verify_untampered()
    monkeypatch.undo()
    monkeypatch.setitem(vars(seqlab), "grading", types.ModuleType("seqlab.grading"))
    with pytest.raises(grading.TamperingError, match="seqlab.grading"):
        grading.verify_untampered()


def test_an_answer_that_erases_the_record_of_its_forbidden_calls_fails():
    import sys

    def erases_the_record(W, k):
        out = _delegates_to_matrix_power(W, k)
        for cell in sys.getprofile().__closure__:  # the grader's watch, and its state
            if isinstance(cell.cell_contents, list):
                cell.cell_contents.clear()
        return out

    def swaps_the_record(W, k):
        out = _delegates_to_matrix_power(W, k)
        for cell in sys.getprofile().__closure__:
            if isinstance(cell.cell_contents, list):
                cell.cell_contents = []
        return out

    W = torch.randn(3, 3)
    with pytest.raises(grading.DelegationError, match="erased"):
        grading.call(erases_the_record, W, 2, forbid="matrix_power_norms")
    with pytest.raises(grading.DelegationError, match="changed the grader's call tracking"):
        grading.call(swaps_the_record, W, 2, forbid="matrix_power_norms")


def test_the_tables_are_immutable_and_an_honest_answer_still_passes():
    with pytest.raises(TypeError):
        grading.FORBIDDEN["matrix_power_norms"] = ()  # type: ignore[index]
    assert isinstance(grading._SEQLAB_ALLOWED, frozenset)
    assert all(isinstance(paths, tuple) for paths in grading.FORBIDDEN.values())
    grading.verify_untampered()
    W = torch.randn(4, 4, dtype=torch.float64)
    grading.assert_close(grading.call(_norms, W, 3, forbid="matrix_power_norms"), _norms(W, 3), "x")


def test_devices_follow_the_graders_setting(monkeypatch):
    """Unset: the CPU and CUDA where there is one; the kit's "cpu": the CPU alone, so a
    notebook scores the same with and without a GPU; a device this machine lacks is dropped."""
    here = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    monkeypatch.delenv(grading.DEVICES_VARIABLE, raising=False)
    assert grading.devices() == here
    monkeypatch.setenv(grading.DEVICES_VARIABLE, "cpu")
    assert grading.devices() == ["cpu"]
    monkeypatch.setenv(grading.DEVICES_VARIABLE, "cpu, cuda")
    assert grading.devices() == here
    monkeypatch.setenv(grading.DEVICES_VARIABLE, "tpu")
    assert grading.devices() == ["cpu"]
