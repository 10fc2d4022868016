"""seqlab.gpt: parameter counts against allocated models and Hugging Face's GPT-2, the
fused attention against the explicit one, GPT-2's weights, the key/value cache,
sampling (temperature, top-k, top-p) and chapter 6's graded functions that live here
(top_p_filter against transformers' TopPLogitsWarper, gpt_param_count against
GPT2LMHeadModel, cached_attention_step against full causal attention).

Exact parameter counts (tied embeddings, learned positions counted):
gpt2 124,439,808; gpt2-medium 354,823,168; gpt2-large 774,030,080;
gpt2-xl 1,557,611,200; gpt3 174,604,259,328."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.gpt import (
    GPT,
    PRESETS,
    GPTConfig,
    cached_attention_step,
    generate,
    gpt_param_count,
    n_params,
    next_token_distribution,
    sample_next_token,
    time_per_token,
    top_k_filter,
    top_p_filter,
    training_flops,
)

pytestmark = pytest.mark.gpt_prompting

F64 = torch.float64
TINY = GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_embd=32)

EXACT = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "gpt3": 174_604_259_328,
}


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(**{**TINY.__dict__, **overrides})
    return GPT(cfg).eval()


def gpt2_config(**sizes):
    """A Hugging Face GPT2Config; GPT-2's bos/eos id 50256 would lie outside small vocabularies."""
    from transformers import GPT2Config

    return GPT2Config(bos_token_id=0, eos_token_id=0, **sizes)


def random_ids(B: int, T: int, V: int = TINY.vocab_size, seed: int = 1) -> torch.Tensor:
    return torch.randint(V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------
# Counting


def test_gpt2_small_has_124_439_808_parameters():
    assert n_params(PRESETS["gpt2"]) == 124_439_808
    assert n_params(GPTConfig.preset("gpt2")) == 124_439_808


@pytest.mark.parametrize("name", sorted(EXACT))
def test_n_params_of_every_preset_equals_the_allocated_model(name):
    # on the meta device the model is built without memory, so GPT-3 fits too
    with torch.device("meta"):
        model = GPT(PRESETS[name])
    assert n_params(PRESETS[name]) == model.num_params() == EXACT[name]
    assert n_params(PRESETS[name], non_embedding=True) == model.num_params(non_embedding=True)


def test_gpt2_xl_is_about_1_56e9_and_gpt3_about_1_75e11_parameters():
    assert n_params(PRESETS["gpt2-xl"]) == pytest.approx(1.56e9, rel=0.01)
    assert n_params(PRESETS["gpt3"]) == pytest.approx(1.75e11, rel=0.01)


@pytest.mark.parametrize("bias", [True, False])
def test_n_params_counts_a_small_allocated_model_exactly(bias):
    cfg = GPTConfig(vocab_size=37, block_size=19, n_layer=3, n_head=2, n_embd=12, bias=bias)
    model = GPT(cfg)
    assert n_params(cfg) == sum(p.numel() for p in model.parameters())
    assert model.lm_head.weight is model.wte.weight, "the output layer should be tied to wte"


def test_non_embedding_count_is_12_layer_c_squared_plus_the_small_terms():
    cfg = PRESETS["gpt2"]
    L, C = cfg.n_layer, cfg.n_embd
    assert n_params(cfg, non_embedding=True) == 12 * L * C * C + 13 * L * C + 2 * C


def test_n_params_equals_hugging_face_num_parameters_for_a_random_gpt2_config():
    from transformers import GPT2LMHeadModel

    sizes = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=100, n_positions=64)
    hf = GPT2LMHeadModel(gpt2_config(**sizes))
    cfg = GPTConfig(vocab_size=100, block_size=64, n_layer=2, n_head=4, n_embd=32)
    assert n_params(cfg) == hf.num_parameters() == 30_720


def test_training_flops_of_gpt3_is_3_14e23_as_brown_et_al_report():
    # Brown et al. (2020), table D.1: GPT-3 175B, 300B tokens, 3.14e23 FLOPs
    assert training_flops(175e9, 300e9) == 6 * 175e9 * 300e9
    assert training_flops(n_params(PRESETS["gpt3"]), 300e9) == pytest.approx(3.14e23, rel=0.01)


def test_config_rejects_a_width_not_divisible_by_the_heads():
    with pytest.raises(ValueError, match=r"n_embd \(30\).*n_head \(4\)"):
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=4, n_embd=30)
    with pytest.raises(ValueError, match="unknown preset 'gpt4'"):
        GPTConfig.preset("gpt4")


# ---------------------------------------------------------------------------
# The model


def test_logits_have_shape_batch_time_vocab_and_follow_the_dtype():
    model = tiny_gpt()
    ids = random_ids(3, 7)
    assert model(ids).shape == (3, 7, TINY.vocab_size)
    assert model.double()(ids).dtype == F64


def test_logits_at_t_do_not_depend_on_later_tokens():
    model = tiny_gpt().double()
    ids = random_ids(2, 12)
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % TINY.vocab_size
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=1e-12)
    assert (a[:, 6] - b[:, 6]).abs().max() > 1e-3, "position 6 should see its own token"


def test_fast_attention_agrees_with_the_explicit_one_in_float64():
    explicit = tiny_gpt(seed=3).double()
    fast = tiny_gpt(seed=3, fast=True).double()
    fast.load_state_dict(explicit.state_dict())
    ids = random_ids(2, TINY.block_size)
    torch.testing.assert_close(fast(ids), explicit(ids), rtol=0, atol=1e-6)
    c1, c2 = explicit.new_cache(), fast.new_cache()
    explicit(ids[:, :20], c1), fast(ids[:, :20], c2)
    step = ids[:, 20:23]
    torch.testing.assert_close(fast(step, c2), explicit(step, c1), rtol=0, atol=1e-6)


def test_gradients_reach_every_parameter_and_dropout_acts_only_in_training():
    model = tiny_gpt(dropout=0.2)
    ids = random_ids(2, 10)
    model.train()
    loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    torch.manual_seed(0)
    a = model(ids)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(ids)), "dropout should change the training forward"
    model.eval()
    torch.testing.assert_close(model(ids), model(ids))


def test_a_tiny_gpt_learns_to_continue_a_repeating_sequence():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=24, n_layer=1, n_head=2, n_embd=32))
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 3)  # (24,)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(model(pattern[None, :-1])[0], pattern[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = generate(model, pattern[None, :8], 8, temperature=0)
    assert out[0, 8:].tolist() == pattern[8:16].tolist()


def test_weights_start_as_in_gpt2_with_residual_projections_scaled_down():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=500, block_size=64, n_layer=8, n_head=4, n_embd=64))
    residual = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert p.abs().max() == 0, f"{name} should start at 0"
        elif name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(residual, rel=0.1), name
        elif p.dim() == 2:
            assert p.std().item() == pytest.approx(0.02, rel=0.1), name


def test_ids_longer_than_block_size_are_refused_with_the_length():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="length 33.*block_size 32"):
        model(random_ids(1, 33))
    cache = model.new_cache()
    model(random_ids(1, 30), cache)
    with pytest.raises(ValueError, match="length 33 .*cached 30"):
        model(random_ids(1, 3), cache)


def test_float_or_one_dimensional_ids_are_refused_saying_what_they_were():
    model = tiny_gpt()
    with pytest.raises(TypeError, match="LongTensor.*got torch.float32"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\(B, T\), got shape \(4,\)"):
        model(torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------
# GPT-2's weights


@pytest.mark.parametrize(
    "sizes",
    [
        dict(n_layer=2, n_head=4, n_embd=32, vocab_size=100, n_positions=64),
        dict(n_layer=3, n_head=3, n_embd=48, vocab_size=257, n_positions=20),
    ],
)
def test_from_gpt2_gives_hugging_face_gpt2_logits(sizes):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(gpt2_config(**sizes)).eval()
    with torch.no_grad():
        # GPT-2's init (std 0.02) keeps activations near 0, where GELU's tanh approximation
        # and the exact GELU agree to 1e-6: weights of order 1 tell them apart
        for name, p in hf.named_parameters():
            p.normal_(1.0 if ".ln_" in name and name.endswith("weight") else 0.0, 0.2)
    ours = GPT.from_gpt2(hf).eval()
    ids = random_ids(2, sizes["n_positions"], V=sizes["vocab_size"])
    with torch.no_grad():
        theirs = hf(ids).logits
        torch.testing.assert_close(ours(ids), theirs, rtol=0, atol=1e-5)
        fast = GPT.from_gpt2(hf, fast=True).eval()
        torch.testing.assert_close(fast(ids), theirs, rtol=0, atol=1e-5)
    assert ours.num_params() == hf.num_parameters()


def test_from_gpt2_refuses_an_architecture_it_does_not_have():
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(gpt2_config(n_layer=1, n_head=2, n_embd=8, vocab_size=10, n_positions=8,
                                    activation_function="relu"))  # fmt: skip
    with pytest.raises(ValueError, match="activation_function='relu'"):
        GPT.from_gpt2(hf)
    with pytest.raises(TypeError, match="GPT2LMHeadModel, got GPT"):
        GPT.from_gpt2(tiny_gpt())


# ---------------------------------------------------------------------------
# The key/value cache and generation


def test_cached_logits_equal_full_forward_logits_at_every_position():
    model = tiny_gpt(seed=5)
    ids = random_ids(2, TINY.block_size)
    with torch.no_grad():
        full = model(ids)  # (B, T, V)
        cache = model.new_cache()
        parts = [model(ids[:, :5], cache)]  # a prompt, then one token at a time
        parts += [model(ids[:, t : t + 1], cache) for t in range(5, TINY.block_size)]
    assert len(cache) == TINY.block_size
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sampling", [dict(), dict(temperature=0.7, top_k=10, top_p=0.9)])
def test_cached_and_uncached_generation_give_the_same_tokens_for_a_seed(sampling):
    model = tiny_gpt(seed=2)
    prompt = random_ids(3, 5)
    # 40 new tokens run past block_size = 32: the window slides in both
    runs = [
        generate(model, prompt, 40, generator=torch.Generator().manual_seed(7), use_cache=c,
                 **sampling)  # fmt: skip
        for c in (True, False)
    ]
    assert runs[0].shape == (3, 45)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :5], prompt)


def test_generate_draws_each_token_as_sample_next_token_does():
    model = tiny_gpt(seed=8)
    prompt = random_ids(2, 4)
    got = generate(model, prompt, 6, temperature=0.6, top_k=5,
                   generator=torch.Generator().manual_seed(3))  # fmt: skip
    ids, generator = prompt, torch.Generator().manual_seed(3)
    for _ in range(6):
        next_id = sample_next_token(model(ids)[:, -1], 0.6, top_k=5, generator=generator)
        ids = torch.cat([ids, next_id[:, None]], dim=1)
    assert torch.equal(got, ids)


def test_top_k_1_sampling_equals_greedy_decoding():
    model = tiny_gpt(seed=4)
    prompt = random_ids(2, 3)
    greedy = generate(model, prompt, 20, temperature=0)
    top1 = generate(model, prompt, 20, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, top1)


def test_generate_runs_any_callable_language_model_without_the_cache():
    table = torch.full((5, 5), -10.0)
    table[torch.arange(5), (torch.arange(5) + 1) % 5] = 10.0  # a bigram model: t -> t + 1

    def bigram(ids):
        return table[ids]  # (B, T) -> (B, T, V)

    out = generate(bigram, torch.tensor([[0], [3]]), 6, temperature=0, use_cache=False)
    assert out.tolist() == [[0, 1, 2, 3, 4, 0, 1], [3, 4, 0, 1, 2, 3, 4]]
    with pytest.raises(TypeError, match="use_cache=True needs a seqlab GPT, got function"):
        generate(bigram, torch.tensor([[0]]), 1)


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    probs = torch.tensor([[0.1, 0.5, 0.05, 0.3, 0.05]])
    logits = probs.log()
    kept = {
        0.3: [1],  # 0.5 alone reaches 0.3
        0.5: [1],  # ... and 0.5
        0.7: [1, 3],  # 0.5 + 0.3 = 0.8
        0.85: [0, 1, 3],  # 0.9
        0.97: [0, 1, 2, 3, 4],  # 0.95 is short of p: both tied 0.05 tokens stay
    }
    for p, expected in kept.items():
        got = torch.isfinite(top_p_filter(logits, p))[0].nonzero().flatten().tolist()
        assert got == expected, f"top_p={p} should keep {expected}, kept {got}"
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_top_p_sampling_never_draws_outside_the_nucleus():
    probs = torch.tensor([0.1, 0.5, 0.05, 0.3, 0.05])
    logits = probs.log().expand(2000, 5)
    draws = sample_next_token(top_p_filter(logits, 0.7), generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {1, 3}
    assert (draws == 1).float().mean() == pytest.approx(0.5 / 0.8, abs=0.04)


def test_top_k_filter_keeps_ties_at_the_kth_value():
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))[0].tolist()
    assert kept == [False, True, True, True, False]


def test_next_token_distribution_is_what_generate_and_sample_next_token_draw_from():
    logits = torch.randn(3, 12, generator=torch.Generator().manual_seed(2), dtype=F64)
    greedy = next_token_distribution(logits, 0.0)
    assert torch.equal(greedy.argmax(-1), logits.argmax(-1))
    assert torch.equal(greedy.sum(-1), torch.ones(3, dtype=F64))
    assert set(greedy.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(next_token_distribution(logits), torch.softmax(logits, -1))
    p = next_token_distribution(logits, 0.7, top_k=4)
    assert ((p > 0).sum(-1) == 4).all()
    kth = logits.topk(4, dim=-1).values[:, -1:]
    torch.testing.assert_close(p, torch.softmax(logits.masked_fill(logits < kth, -math.inf) / 0.7,
                                                -1))  # fmt: skip
    nucleus = next_token_distribution(logits, 1.0, top_p=0.5)
    torch.testing.assert_close(nucleus, torch.softmax(top_p_filter(logits, 0.5), -1))
    # the same draw as sample_next_token's, from the same generator
    drawn = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(5))[:, 0]
    assert torch.equal(drawn, sample_next_token(logits, 0.7, 4, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="temperature should be >= 0"):
        next_token_distribution(logits, -0.5)


# ---------------------------------------------------------------------------
# The graded functions' references


def test_sample_next_token_at_temperature_0_is_the_argmax():
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(-1))
    assert sample_next_token(logits, temperature=0).dtype == torch.long


def test_sample_next_token_draws_with_multinomial_from_the_tempered_top_k_softmax():
    logits = torch.randn(6, 11, generator=torch.Generator().manual_seed(1))
    got = sample_next_token(logits, 0.5, top_k=3, generator=torch.Generator().manual_seed(9))
    kth = logits.topk(3, dim=-1).values[:, -1:]
    probs = torch.softmax(logits.masked_fill(logits < kth, -math.inf) / 0.5, dim=-1)
    expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(9))[:, 0]
    assert torch.equal(got, expected)
    assert got.shape == (6,)


def test_sample_next_token_frequencies_follow_the_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0]).expand(20000, 3)
    draws = sample_next_token(logits, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / 20000
    torch.testing.assert_close(freq, torch.softmax(logits[0].double(), 0), rtol=0, atol=0.015)


def test_sample_next_token_refuses_a_negative_temperature_and_1d_logits():
    with pytest.raises(ValueError, match="temperature should be >= 0, got -1"):
        sample_next_token(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match=r"\(B, V\), got \(3,\)"):
        sample_next_token(torch.zeros(3))


# ---------------------------------------------------------------------------
# Chapter 6's new graded functions against their twins


def _nucleus_margin(logits: torch.Tensor, p: float) -> float:
    """How far p is from every cumulative mass of the row's sorted probabilities."""
    cum = torch.softmax(logits.sort(descending=True).values, dim=-1).cumsum(-1)
    return (cum - p).abs().min().item()


def test_top_p_filter_keeps_exactly_what_hugging_face_top_p_warper_keeps():
    from transformers.generation.logits_process import TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    checked = 0
    for i in range(300):
        V, scale = int(torch.randint(2, 60, (1,), generator=g)), [0.3, 1.0, 3.0, 10.0][i % 4]
        logits = scale * torch.randn(4, V, generator=g, dtype=F64)
        p = float(torch.rand((), generator=g, dtype=F64)) * 0.999 + 0.001
        if any(_nucleus_margin(row, p) < 1e-9 for row in logits):
            continue  # p on a cumulative mass: rounding, not the rule, would decide
        ours, theirs = top_p_filter(logits, p), TopPLogitsWarper(top_p=p)(None, logits)
        assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs)), f"p={p}, V={V}"
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)  # the kept logits, unchanged
        checked += 1
    assert checked > 250


def test_top_p_filter_always_keeps_the_top_token_and_keeps_all_at_p_1():
    logits = torch.tensor([[5.0, 1.0, 0.0, -1.0], [0.0, 0.1, 0.2, 0.3]], dtype=F64)
    kept = torch.isfinite(top_p_filter(logits, 1e-6))
    assert kept.sum(dim=-1).tolist() == [1, 1] and kept[0, 0] and kept[1, 3]
    huge = 1000.0 * torch.randn(3, 20, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(top_p_filter(huge, 1.0), huge)  # probabilities 0 in float64 stay too


def test_gpt_param_count_is_124_439_808_for_gpt2_small_and_every_preset():
    assert gpt_param_count(12, 768, 50257, 1024) == 124_439_808
    for name, cfg in PRESETS.items():
        got = gpt_param_count(cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.block_size)
        assert got == EXACT[name] and type(got) is int


@pytest.mark.parametrize(
    "n_layer,n_embd,vocab_size,block_size",
    [(1, 8, 11, 5), (2, 32, 100, 64), (3, 24, 257, 16), (5, 16, 50, 128)],
)
def test_gpt_param_count_equals_hugging_face_gpt2_and_seqlab_gpt(
    n_layer, n_embd, vocab_size, block_size
):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(
        gpt2_config(n_layer=n_layer, n_head=2, n_embd=n_embd, vocab_size=vocab_size,
                    n_positions=block_size)
    )  # fmt: skip
    assert hf.lm_head.weight is hf.transformer.wte.weight  # tied: counted once below
    expected = sum(p.numel() for p in hf.parameters())
    ours = GPT(GPTConfig(vocab_size, block_size, n_layer=n_layer, n_head=2, n_embd=n_embd))
    assert gpt_param_count(n_layer, n_embd, vocab_size, block_size) == expected
    assert ours.num_params() == expected


def _full_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_cached_attention_step_equals_the_last_row_of_full_causal_attention():
    g = torch.Generator().manual_seed(3)
    B, nh, T, hs = 2, 3, 12, 8
    q, k, v = (torch.randn(B, nh, T, hs, generator=g, dtype=F64) for _ in range(3))
    full = _full_causal(q, k, v)  # (B, nh, T, hs)
    cache = None
    for t in range(T):
        before = None if cache is None else (cache[0].clone(), cache[1].clone())
        out, new = cached_attention_step(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1],
                                         cache)  # fmt: skip
        torch.testing.assert_close(out, full[:, :, t : t + 1], rtol=1e-6, atol=1e-6)
        assert new[0].shape == new[1].shape == (B, nh, t + 1, hs)
        torch.testing.assert_close(new[0], k[:, :, : t + 1], rtol=0, atol=0)
        torch.testing.assert_close(new[1], v[:, :, : t + 1], rtol=0, atol=0)
        if before is not None:  # the cache given is left as it was
            assert torch.equal(cache[0], before[0]) and torch.equal(cache[1], before[1])
        cache = new


def test_cached_attention_step_is_what_the_gpt_cache_does_in_one_layer():
    model = tiny_gpt(seed=4).double()
    attn = model.h[0].attn
    x = torch.randn(2, 9, TINY.n_embd, generator=torch.Generator().manual_seed(2), dtype=F64)
    with torch.no_grad():
        full, _ = attn(x)  # (B, T, C), all positions at once
        _, past = attn(x[:, :8])  # the cache after 8 tokens
        B, C, nh = 2, TINY.n_embd, TINY.n_head
        qkv = attn.c_attn(x[:, 8:]).split(C, dim=2)  # the 9th token's q, k, v
        q, k, v = (t.view(B, 1, nh, C // nh).transpose(1, 2) for t in qkv)
        out, _ = cached_attention_step(q, k, v, past)  # (B, nh, 1, hs)
        y = attn.c_proj(out.transpose(1, 2).reshape(B, 1, C))
    torch.testing.assert_close(y, full[:, 8:], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# Timing


def test_a_cached_step_is_much_cheaper_than_an_uncached_one_at_long_contexts():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=256, n_layer=2, n_head=4, n_embd=64))
    # the machine may be busy: the best of three rounds of medians (about 6x when idle)
    ratios = []
    for _ in range(3):
        cached = time_per_token(model, [250], use_cache=True, repeats=5)[0]
        uncached = time_per_token(model, [250], use_cache=False, repeats=5)[0]
        ratios.append(uncached / cached)
    assert max(ratios) > 2, f"uncached / cached time per token: {ratios}"
