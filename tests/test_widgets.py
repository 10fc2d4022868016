"""seqlab.widgets: the spectral-radius explorer, live in Jupyter and a player in the book."""

import base64
import re

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from seqlab.widgets import SpectralRadiusExplorer, offline_jshtml, spectral_radius_explorer

pytestmark = pytest.mark.rnn_gradients

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorer() -> SpectralRadiusExplorer:
    return spectral_radius_explorer(rhos=(0.5, 1.0, 2.0), steps=12, hidden_size=8)


@pytest.fixture(scope="module")
def bundle(explorer) -> dict:
    return explorer._repr_mimebundle_()


def _frames(html: str) -> list[bytes]:
    """The PNG frames that matplotlib's player embeds, decoded, in order."""
    found = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]*)"', html)
    ordered = sorted(found, key=lambda match: int(match[0]))
    return [base64.b64decode(data.replace("\\\n", "")) for _, data in ordered]


def test_mime_bundle_offers_the_live_widget_and_a_static_html_fallback(explorer, bundle):
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    assert bundle[WIDGET_VIEW]["model_id"] == explorer.widget().model_id
    assert bundle[WIDGET_VIEW]["version_major"] == 2
    assert "SpectralRadiusExplorer" in bundle["text/plain"]


def test_html_fallback_is_a_player_with_one_png_frame_per_rho(explorer, bundle):
    html = bundle["text/html"]
    assert 'class="anim-slider"' in html and "anim-buttons" in html
    frames = _frames(html)
    assert len(frames) == len(explorer.rhos)
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)


def test_html_fallback_frames_differ_between_rho_values(bundle):
    frames = _frames(bundle["text/html"])
    assert len(set(frames)) == len(frames)


def test_html_fallback_loads_nothing_from_the_network(bundle):
    html = bundle["text/html"]
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html
    assert 'class="fa ' not in html  # Font Awesome icons need its stylesheet
    assert re.findall(r"<script[^>]*\bsrc=", html) == []


def test_html_fallback_frame_image_has_alt_text(bundle):
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', bundle["text/html"]).group(0)
    assert re.search(r'alt="[^"]*spectral radius[^"]*"', img)


def test_html_fallback_is_computed_once(explorer, bundle):
    assert explorer.to_html() is bundle["text/html"]


def test_live_widget_is_a_slider_over_rho_and_an_image(explorer):
    box = explorer.widget()
    slider, image = box.children
    assert isinstance(slider, ipywidgets.FloatSlider) and isinstance(image, ipywidgets.Image)
    assert (slider.min, slider.max) == (0.5, 2.0)
    assert slider.value == 1.0
    assert bytes(image.value).startswith(PNG_SIGNATURE)


def test_moving_the_slider_redraws_the_image(explorer):
    slider, image = explorer.widget().children
    before = bytes(image.value)
    slider.value = 2.0
    assert bytes(image.value) != before
    assert bytes(image.value) == explorer.png(2.0)
    slider.value = 1.0


def test_explorer_curves_vanish_below_the_edge_and_explode_above_it(explorer):
    low, high = explorer.curves(0.5), explorer.curves(2.0)
    far = explorer.steps - 1
    for name in low:  # the linear RNN and the tanh RNN with small inputs
        assert low[name][0] == pytest.approx(1.0)
        assert low[name][far] < 0.01, name
        assert high[name][far] > 1, name


def test_explorer_leaves_no_pyplot_figures_behind():
    before = plt.get_fignums()
    small = spectral_radius_explorer(rhos=(0.9, 1.1), steps=5, hidden_size=4)
    small._repr_mimebundle_()
    small.png(1.1)
    assert plt.get_fignums() == before


def test_explorer_rejects_fewer_than_two_rho_values():
    with pytest.raises(ValueError, match=r"at least 2 values, got \[1.0\]"):
        SpectralRadiusExplorer(rhos=(1.0,))


def test_offline_jshtml_removes_the_cdn_stylesheet_and_replaces_icons():
    html = (
        '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/'
        'css/font-awesome.min.css">\n<img id="_anim_img1">'
        '<button title="Play"><i class="fa fa-play"></i></button>'
        '<button title="Play backwards"><i class="fa fa-play fa-flip-horizontal"></i></button>'
    )
    out = offline_jshtml(html, alt='frames "for" a & b')
    assert "font-awesome" not in out and "<i " not in out
    assert "\u25b6" in out and "\u25c0" in out
    assert '<img alt="frames &quot;for&quot; a &amp; b" id="_anim_img1">' in out


@pytest.fixture(scope="module")
def gates():
    from seqlab.lstm import LSTM
    from seqlab.widgets import gate_explorer

    torch.manual_seed(0)
    return gate_explorer(LSTM(2, 6, forget_bias=1.0), positions=(0, 4, 8), second=15, seq_len=20)


@pytest.mark.lstm_gru
def test_gate_explorer_offers_a_widget_and_an_offline_player_with_a_frame_per_position(gates):
    bundle = gates._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    html = bundle["text/html"]
    frames = _frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)
    assert "https://" not in html and "<link" not in html
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', html).group(0)
    assert re.search(r'alt="[^"]*forget gate[^"]*"', img)


@pytest.mark.lstm_gru
def test_gate_explorer_slider_moves_the_first_marker(gates):
    slider, image = gates.widget().children
    assert isinstance(slider, ipywidgets.IntSlider) and slider.value == 0
    slider.value = 8
    assert bytes(image.value) == gates.png(8)
    xs = gates.sequence(8)
    assert xs.shape == (1, 20, 2) and xs[0, :, 1].nonzero().flatten().tolist() == [8, 15]
    trace = gates.trace(8)
    assert set(trace) == set("ifgoch") and trace["f"].shape == (20, 6)
    slider.value = 0


@pytest.mark.lstm_gru
def test_gate_explorer_rejects_positions_outside_the_sequence():
    from seqlab.lstm import LSTM
    from seqlab.widgets import GateExplorer

    with pytest.raises(ValueError, match="positions should lie in"):
        GateExplorer(LSTM(2, 3), positions=(0, 30), seq_len=20, second=15)


@pytest.fixture(scope="module")
def attention_setup():
    from seqlab.attention import AttentionConfig, AttentionSeq2Seq
    from seqlab.data import translation_task

    task = translation_task(n_train=40, n_valid=5, n_test=6, seed=1, max_len=8)
    torch.manual_seed(0)
    cfg = AttentionConfig(len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=8, attention=8)
    return AttentionSeq2Seq(cfg).eval(), task


@pytest.fixture(scope="module")
def attention_view(attention_setup):
    from seqlab.widgets import attention_explorer

    model, task = attention_setup
    return attention_explorer(model, task, task.test[:3], beam_size=2)


@pytest.mark.attention
def test_attention_explorer_offers_a_widget_and_an_offline_player_with_a_frame_per_sentence(
    attention_view,
):
    bundle = attention_view._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    html = bundle["text/html"]
    frames = _frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)
    assert "https://" not in html and "<link" not in html
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', html).group(0)
    assert re.search(r'alt="[^"]*true alignment[^"]*"', img)


@pytest.mark.attention
def test_attention_explorer_menu_and_text_box_redraw_the_chart(attention_view):
    menu, typed, message, image = attention_view.widget().children
    assert isinstance(menu, ipywidgets.Dropdown) and isinstance(typed, ipywidgets.Text)
    first = bytes(image.value)
    menu.value = 2
    assert bytes(image.value) == attention_view.png(attention_view.examples[2].source)
    assert bytes(image.value) != first
    typed.value = "the red cat sees a dog"
    assert bytes(image.value) == attention_view.png("the red cat sees a dog".split())
    typed.value = "the zebra sees a dog"  # an unknown word is read as <unk>, not an error
    assert message.value == ""
    typed.value = "   "
    assert "at least one word" in message.value
    menu.value = 0


@pytest.mark.attention
def test_attention_explorer_shows_the_beam_and_weights_that_match_the_best_hypothesis(
    attention_view, attention_setup
):
    model, task = attention_setup
    seen = attention_view.inside(task.test[1].source)
    best = seen["beam"][0][0]
    assert 1 <= len(seen["beam"]) <= 2 and seen["beam"][0][1] >= seen["beam"][-1][1]
    assert seen["weights"].shape == (len(best) + 1, len(task.test[1].source))
    torch.testing.assert_close(seen["weights"].sum(1), torch.ones(len(best) + 1))


@pytest.mark.attention
def test_attention_explorer_needs_two_sentences(attention_setup):
    from seqlab.widgets import AttentionExplorer

    model, task = attention_setup
    with pytest.raises(ValueError, match="at least 2 sentences"):
        AttentionExplorer(model, task, task.test[:1])


@pytest.fixture(scope="module")
def head_view():
    from seqlab.data import translation_task
    from seqlab.transformer import Transformer, TransformerConfig
    from seqlab.widgets import head_explorer

    task = translation_task(n_train=40, n_valid=5, n_test=6, seed=1, max_len=8)
    torch.manual_seed(0)
    cfg = TransformerConfig(len(task.src_vocab), len(task.tgt_vocab), d_model=8, n_heads=2,
                            d_ff=8, enc_layers=1, dec_layers=2, dropout=0.0)  # fmt: skip
    model = Transformer(cfg).eval()
    return head_explorer(model, task, [ex.source for ex in task.test[:3]])


@pytest.mark.transformers
def test_head_explorer_offers_a_widget_and_a_player_with_a_frame_per_attention_and_layer(
    head_view,
):
    bundle = head_view._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    frames = _frames(bundle["text/html"])
    assert len(frames) == 1 + 2 + 2  # encoder layer, two decoder self-attentions, two cross
    assert len(set(frames)) == len(frames)
    assert "https://" not in bundle["text/html"]


@pytest.mark.transformers
def test_head_explorer_controls_redraw_and_explain_bad_input(head_view):
    menu, typed, kind, layer, message, image = head_view.widget().children
    first = bytes(image.value)
    kind.value = "encoder"
    assert bytes(image.value) == head_view.png((head_view.sentences[0], "encoder", 0))
    layer.value = 2  # the encoder has one layer only
    assert "no layer 2" in message.value
    kind.value = "decoder"
    assert message.value == "" and bytes(image.value) != first
    typed.value = "the red cat sees a dog"
    assert bytes(image.value) == head_view.png(("the red cat sees a dog".split(), "decoder", 1))
    typed.value = "  "
    assert "at least one word" in message.value


@pytest.mark.transformers
def test_head_explorer_maps_have_one_row_per_query_and_sum_to_one(head_view):
    seen = head_view.maps(head_view.sentences[1])
    S, T = len(seen["source"]), len(seen["output"]) + 1
    assert seen["maps"]["encoder", 0].shape == (2, S, S)
    assert seen["maps"]["decoder", 1].shape == (2, T, T)
    assert seen["maps"]["cross", 0].shape == (2, T, S)
    for weights in seen["maps"].values():
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert (seen["maps"]["decoder", 0].triu(1) == 0).all()  # causal


@pytest.fixture(scope="module")
def playground():
    from seqlab.gpt import GPT, GPTConfig
    from seqlab.prompting import CharTokenizer
    from seqlab.widgets import PromptSetting, prompt_playground

    tok = CharTokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(tok), block_size=160, n_layer=1, n_head=2, n_embd=16))
    settings = [PromptSetting("sort", "dbca", 0, 0.0), PromptSetting("sort", "dbca", 2, 1.0),
                PromptSetting("sort", "dbca", 2, 1.0, top_k=3)]  # fmt: skip
    return prompt_playground(model.eval(), tok, [("sort", "dbca"), ("reverse", "xyz")],
                             settings=settings, samples=3)  # fmt: skip


@pytest.mark.gpt_prompting
def test_prompt_playground_offers_a_widget_and_a_player_with_a_frame_per_setting(playground):
    bundle = playground._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    assert bundle[WIDGET_VIEW]["model_id"] == playground.widget().model_id
    frames = _frames(bundle["text/html"])
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)
    assert "https://" not in bundle["text/html"]
    assert re.search(r'<img alt="[^"]{20,}" id="_anim_img', bundle["text/html"])


@pytest.mark.gpt_prompting
def test_prompt_playground_prompt_holds_the_instruction_k_examples_and_the_query(playground):
    from seqlab.widgets import PromptSetting

    text = playground.prompt(PromptSetting("sort", "dbca", 2, 1.0))
    lines = text.split("\n")
    assert lines[0] == "sort:" and len(lines) == 4 and lines[-1] == "dbca > "
    for line in lines[1:3]:
        x, y = line.split(" > ")
        assert y == "".join(sorted(x)), f"a demonstration should be solved: {line!r}"
    bare = playground.prompt(PromptSetting("sort", "dbca", 0, 1.0, instruction=False))
    assert bare == "dbca > "


@pytest.mark.gpt_prompting
def test_prompt_playground_distribution_follows_temperature_and_top_k(playground):
    from seqlab.widgets import PromptSetting

    greedy = playground.look(PromptSetting("sort", "dbca", 2, 0.0))
    assert greedy["p_sample"].max() == 1
    assert greedy["p_sample"].argmax() == greedy["p_model"].argmax()
    assert len(greedy["samples"]) == 1  # greedy: one continuation, the same for every seed
    top3 = playground.look(PromptSetting("sort", "dbca", 2, 1.0, top_k=3))
    assert (top3["p_sample"] > 0).sum() == 3
    kept = top3["p_sample"] > 0
    assert set(kept.nonzero().flatten().tolist()) == set(top3["p_model"].topk(3).indices.tolist())
    torch.testing.assert_close(top3["p_sample"].sum(), torch.tensor(1.0))
    hot = playground.look(PromptSetting("sort", "dbca", 2, 2.0))
    assert hot["p_sample"].max() < hot["p_model"].max()  # a higher temperature flattens it
    assert len(hot["samples"]) == 3
    assert hot["right"] == [s == "abcd" for s in hot["samples"]]


@pytest.mark.gpt_prompting
def test_prompt_playground_samples_are_reproducible(playground):
    from seqlab.widgets import PromptSetting

    setting = PromptSetting("reverse", "xyz", 1, 1.5)
    first = playground.look(setting)["samples"]
    playground._seen.clear()
    assert playground.look(setting)["samples"] == first


@pytest.mark.gpt_prompting
def test_prompt_playground_controls_redraw_and_explain_bad_input(playground):
    task, query, k, instruction, temperature, top_k, message, image = playground.widget().children
    first = bytes(image.value)
    k.value = 4
    assert message.value == "" and bytes(image.value) != first
    assert bytes(image.value) == playground.png(("sort", "dbca", 4, 0.0, None, True))
    temperature.value = 1.0
    top_k.value = 5
    assert bytes(image.value) == playground.png(("sort", "dbca", 4, 1.0, 5, True))
    query.value = "ABC"
    assert "not in the tokenizer" in message.value
    query.value = ""
    assert "at least one letter" in message.value
    query.value = "xyz"
    task.value = "reverse"
    assert message.value == ""


@pytest.mark.gpt_prompting
def test_prompt_playground_rejects_unknown_tasks_and_empty_queries():
    from seqlab.gpt import GPT, GPTConfig
    from seqlab.prompting import CharTokenizer
    from seqlab.widgets import PromptPlayground

    tok = CharTokenizer()
    model = GPT(GPTConfig(vocab_size=len(tok), block_size=32, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="unknown task 'translate'"):
        PromptPlayground(model, tok, [("translate", "abc")])
    with pytest.raises(ValueError, match="at least one"):
        PromptPlayground(model, tok, [])
