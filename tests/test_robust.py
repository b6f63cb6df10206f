"""Robust training methods: perturbation geometry, gradients, noise, synonyms, training."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from xltlib.config import RunConfig
from xltlib.data.batches import SynonymAugmentedPairs, TokenizedPairs
from xltlib.data.synonyms import Substituter, SynonymTable
from xltlib.errors import XltError
from xltlib.methods import make_method, perturbation, rs_rp
from xltlib.methods.base import ModelCall
from xltlib.methods.perturbation import PerturbationSite
from xltlib.methods.pgd import PGD
from xltlib.models import load_classifier
from xltlib.training import Checkpointing, fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tiny_xlmr):
    return tiny_xlmr(words=40, lengths=(3, 12), documents=400, vocab_size=100)


@pytest.fixture(scope="module")
def pairs(tiny):
    """Pairs whose label is whether text_b contains tok1 (learnable in a few steps)."""
    _, corpus = tiny
    return pd.DataFrame(
        {"text_a": corpus[:200], "text_b": corpus[200:400], "label": [int("tok1 " in f"{t} ") for t in corpus[200:400]]}
    )


def padded_batch(model_path, frame, rows=range(8)):
    _, tokenizer = load_classifier(model_path, num_labels=2)
    data = TokenizedPairs(tokenizer, frame.iloc[list(rows)], max_length=64, device=CPU)
    batch = data.batch(np.arange(len(data)), 0)
    assert (batch["attention_mask"] == 0).any(), "the test needs padding in the batch"
    return batch


def eval_model(path, dtype=torch.float32):
    model, _ = load_classifier(path, num_labels=2)
    return model.to(dtype).eval()


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("layer", [None, 1])
def test_pgd_delta_stays_in_its_ball_and_off_padding_after_every_step(tiny, pairs, norm, layer, monkeypatch):
    model = eval_model(tiny[0])
    batch = padded_batch(tiny[0], pairs)
    method = make_method("pgd", {"steps": 4, "eps": 0.2, "alpha": 0.15, "norm": norm, "perturb_layer": layer})
    site = PerturbationSite(ModelCall(model), batch, layer)
    seen = []
    real_loss = site.loss
    monkeypatch.setattr(site, "loss", lambda delta: seen.append(delta.detach().clone()) or real_loss(delta))
    final = method.adversarial_delta(site)
    assert len(seen) == 4
    padding = batch["attention_mask"] == 0
    for delta in [*seen, final]:
        assert delta[padding].abs().max() == 0
        if norm == "l2":
            assert delta.norm(dim=-1).max() <= 0.2 * (1 + 1e-5)
        else:
            assert delta.abs().max() <= 0.2 / math.sqrt(delta.shape[-1]) * (1 + 1e-5)
    assert final.norm(dim=-1)[~padding].mean() > 0.1  # it moved towards the boundary


def test_adversarial_loss_exceeds_clean_loss_on_average(tiny, pairs):
    model = eval_model(tiny[0])
    method = make_method("pgd", {"eps": 0.3, "alpha": 0.2})
    torch.manual_seed(0)
    gaps = []
    for start in range(0, 64, 8):
        batch = padded_batch(tiny[0], pairs, range(start, start + 8))
        site = PerturbationSite(ModelCall(model), batch, None)
        delta = method.adversarial_delta(site)
        with torch.no_grad():
            gaps.append((site.loss(delta) - site.loss(site.zeros())).item())
    assert np.mean(gaps) > 0 and np.mean(np.array(gaps) > 0) >= 0.75


@pytest.mark.parametrize("layer", [None, 0, -1])
def test_a_zero_perturbation_is_the_plain_model(tiny, pairs, layer):
    model = eval_model(tiny[0])
    batch = padded_batch(tiny[0], pairs)
    site = PerturbationSite(ModelCall(model), batch, layer)
    with torch.no_grad():
        plain = model(**batch).logits
        assert torch.allclose(site.output(site.zeros()).logits, plain, atol=1e-5)
        moved = site.output(torch.randn(site.shape, generator=torch.Generator().manual_seed(3))).logits
        assert (moved - plain).abs().max() > 100 * (site.output(site.zeros()).logits - plain).abs().max() + 1e-6


def test_perturbations_are_in_units_of_the_mean_token_norm(tiny, pairs):
    model = eval_model(tiny[0])
    batch = padded_batch(tiny[0], pairs)
    site = PerturbationSite(ModelCall(model), batch, None)
    delta = perturbation.sample_noise(site.shape, 0.5, "gaussian", CPU)
    embeds = model.get_input_embeddings()(batch["input_ids"])
    mask = batch["attention_mask"].unsqueeze(-1).float()
    unit = (embeds.norm(dim=-1, keepdim=True) * mask).sum() / mask.sum()
    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    with torch.no_grad():
        by_hand = model(**inputs, inputs_embeds=embeds + delta * mask * unit).logits
        assert torch.allclose(site.output(delta).logits, by_hand, atol=1e-5)
    with pytest.raises(XltError, match="perturb_layer=7 but the model has 2 layers"):
        PerturbationSite(ModelCall(model), batch, 7)


def test_freelb_gradients_are_the_average_of_its_k_gradients(tiny, pairs):
    """One FreeLB backward equals K separate backward passes at its δ_0…δ_{K-1}, averaged (float64)."""
    model = eval_model(tiny[0], torch.float64)
    batch = padded_batch(tiny[0], pairs)
    method = make_method("freelb", {"steps": 3, "eps": 0.3, "alpha": 0.1, "init_mag": 0.1})
    call = ModelCall(model)
    params = [p for p in model.parameters() if p.requires_grad]

    torch.manual_seed(5)
    model.zero_grad()
    loss = method.backward(call, batch, scale=1.0)
    together = torch.cat([p.grad.flatten() for p in params])

    torch.manual_seed(5)
    site = PerturbationSite(call, batch, None)
    delta = method.initial_delta(site)
    assert delta.dtype == torch.float64
    separate, losses = torch.zeros_like(together), []
    for _ in range(3):
        delta.requires_grad_(True)
        step_loss = site.loss(delta)
        *grads, delta_grad = torch.autograd.grad(step_loss, [*params, delta])
        separate += torch.cat([g.flatten() for g in grads]) / 3
        losses.append(step_loss.item())
        delta = method.ascend(delta.detach(), delta_grad, site.mask)
    assert torch.allclose(together, separate, rtol=1e-9, atol=1e-12)
    assert loss.item() == pytest.approx(np.mean(losses), rel=1e-12)
    assert len(set(losses)) == 3  # δ really moved between the passes


def test_freelb_keeps_each_example_within_eps():
    method = make_method("freelb", {"eps": 0.2})
    mask = torch.ones(4, 6, 1)
    mask[0, 3:] = 0
    delta = method.ascend(
        torch.zeros(4, 6, 8), torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(4)) * 100, mask
    )
    tokens = mask.sum(dim=(1, 2))
    rms = delta.flatten(1).norm(dim=1) / tokens.sqrt()
    assert torch.all(rms <= 0.2 + 1e-6) and delta[0, 3:].abs().max() == 0


@pytest.mark.parametrize("distribution", ["gaussian", "ball"])
def test_rs_rp_noise_has_the_requested_mean_and_scale(distribution):
    torch.manual_seed(0)
    noise = perturbation.sample_noise((64, 32, 128), 0.4, distribution, CPU)
    norms = noise.norm(dim=-1)
    assert abs(noise.mean().item()) < 0.002
    if distribution == "gaussian":
        assert norms.pow(2).mean().sqrt().item() == pytest.approx(0.4, rel=0.01)
        assert noise.std().item() == pytest.approx(0.4 / math.sqrt(128), rel=0.01)
    else:
        assert norms.max() <= 0.4 + 1e-6
        assert norms.mean().item() == pytest.approx(0.4 * 128 / 129, rel=0.01)  # E r = R·d/(d+1) in a d-ball


def test_smoothed_prediction_with_tiny_noise_is_the_plain_prediction(tiny, pairs):
    model = eval_model(tiny[0])
    batch = padded_batch(tiny[0], pairs, range(32))
    with torch.no_grad():
        plain = model(**batch).logits.argmax(-1)
    assert torch.equal(rs_rp.predict_smoothed(ModelCall(model), batch, copies=5, sigma=1e-6), plain)
    method = make_method("rs_rp", {"sigma": 0.5, "eval_copies": 9})
    torch.manual_seed(0)
    smoothed = method.predictor()(ModelCall(model), batch)
    assert smoothed.shape == plain.shape and make_method("rs_rp", {}).predictor() is None


TABLE = SynonymTable({"movie": ["film", "picture"], "big": ["large"], "the": []})


def test_rs_da_substitutes_only_words_with_synonyms_at_rate_p():
    texts = ["The movie was big, really BIG!", "a movie; the movie."] * 500
    substituter = Substituter(texts, TABLE)
    drawn = substituter.draw(np.arange(len(texts)), 0.3, np.random.default_rng(0))
    replaced = total = 0
    for before, after in zip(texts, drawn):
        words_before, words_after = before.split(" "), after.split(" ")
        assert len(words_before) == len(words_after)
        for old, new in zip(words_before, words_after):
            core = old.strip(",;.!").lower()
            if core in ("movie", "big"):
                total += 1
                replaced += old != new
                options = {"movie": ("film", "picture"), "big": ("large",)}[core]
                assert old == new or new.strip(",;.!").lower() in options
                assert old[-1] == new[-1] or old[-1].isalpha()  # punctuation kept
                assert old.isupper() == new.isupper() and old[0].isupper() == new[0].isupper()  # case kept
            else:
                assert old == new
    assert replaced / total == pytest.approx(0.3, abs=0.02)
    again = substituter.draw(np.arange(len(texts)), 0.3, np.random.default_rng(0))
    assert again == drawn and substituter.draw(np.arange(len(texts)), 0.3, np.random.default_rng(1)) != drawn
    assert substituter.draw([0], 0.0, np.random.default_rng(0)) == [texts[0]]


def test_rs_da_reads_the_counterfitted_table(shared_data):
    table = SynonymTable.from_json(shared_data / "synonyms" / "counterfitted_neighbors.json")
    assert "film" in table.synonyms["movie"] and "br" not in table.synonyms
    drawn = Substituter(["I liked the movie."], table).draw([0], 1.0, np.random.default_rng(0))[0]
    assert drawn != "I liked the movie." and drawn.endswith(".")


def test_rs_da_batches_are_seeded_by_step(tiny, pairs, tmp_path):
    path = tmp_path / "syn.json"
    path.write_text('{"tok1": ["tok2"], "tok3": ["tok4", "tok5"]}')
    _, tokenizer = load_classifier(tiny[0], num_labels=2)
    data = SynonymAugmentedPairs(tokenizer, pairs, 64, CPU, SynonymTable.from_json(path), rate=0.5, seed=1)
    rows = np.arange(16)
    assert data.texts(rows, 3) == data.texts(rows, 3) and data.texts(rows, 3) != data.texts(rows, 4)
    first, second = data.texts(rows, 3)
    assert [len(t.split()) for t in first] == [len(t.split()) for t in pairs.text_a[:16]]
    assert data.batch(rows, 3)["labels"].tolist() == pairs.label[:16].tolist()


METHOD_PARAMS = {
    "standard": {},
    "pgd": {"eps": 0.1, "alpha": 0.05},
    "freelb": {"eps": 0.1, "alpha": 0.05},
    "rs_rp": {"sigma": 0.1},
    "rs_da": {"rate": 0.3},
}


@pytest.mark.parametrize("name", sorted(METHOD_PARAMS))
def test_each_method_trains_a_tiny_model(tiny, pairs, name, tmp_path):
    synonyms = tmp_path / "syn.json"
    synonyms.write_text('{"tok2": ["tok3"], "tok4": ["tok5"]}')
    params = dict(METHOD_PARAMS[name], **({"synonyms_file": str(synonyms)} if name == "rs_da" else {}))
    config = RunConfig(
        task="pawsx",
        model=str(tiny[0]),
        method=name,
        method_params=params,
        learning_rate=3e-3,
        epochs=6.0,
        batch_size=16,
        warmup_ratio=0.0,
        seed=0,
    )
    torch.manual_seed(0)
    model, tokenizer = load_classifier(tiny[0], num_labels=2)
    losses = fit(model, tokenizer, pairs.iloc[:64], config, Checkpointing(tmp_path / "ck.pt"), CPU)
    assert len(losses) == 24 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])


def test_method_names_and_parameters_are_validated():
    with pytest.raises(XltError, match="did you mean 'pgd'"):
        make_method("pdg", {})
    with pytest.raises(XltError, match="did you mean 'eps'"):
        make_method("pgd", {"epss": 0.1})
    with pytest.raises(XltError, match="eps must be > 0"):
        make_method("pgd", {"eps": -1})
    with pytest.raises(XltError, match="did you mean 'linf'"):
        make_method("pgd", {"norm": "lnf"})
    with pytest.raises(XltError, match="rate must be > 0 and <= 1"):
        make_method("rs_da", {"rate": 1.5})
    assert make_method("pgd", {"perturb_layer": "none", "steps": "2"}).params.steps == 2
    assert make_method("rs_rp", {"perturb_layer": "3"}).params.perturb_layer == 3
    assert make_method("pgd", {"adversarial_only": "yes"}).params.adversarial_only is True
    with pytest.raises(XltError, match=r"pgd.steps: .*integer.*\(got 2.5\)"):
        make_method("pgd", {"steps": 2.5})


def test_method_parameters_are_in_the_run_hash_and_checked_before_compute(tiny, tmp_path, monkeypatch):
    model = str(tiny[0])
    pgd = RunConfig(task="pawsx", model=model, method="pgd")
    assert pgd.method_params["eps"] == PGD.Params().eps and pgd.method_params["steps"] == 3
    assert (
        RunConfig(task="pawsx", model=model, method="pgd", method_params={"eps": PGD.Params().eps}).run_id()
        == pgd.run_id()
    )
    assert RunConfig(task="pawsx", model=model, method="pgd", method_params={"eps": 0.2}).run_id() != pgd.run_id()
    with pytest.raises(XltError, match="rs_da needs synonyms_file"):
        RunConfig(task="pawsx", model=model, method="rs_da")
    with pytest.raises(XltError, match="perturb_layer=2 but .* has 2 layers"):
        RunConfig(task="pawsx", model=model, method="rs_rp", method_params={"perturb_layer": 2})
    assert (
        RunConfig(task="pawsx", model=model, method="pgd", method_params={"perturb_layer": -1}).method_params[
            "perturb_layer"
        ]
        == -1
    )
    with pytest.raises(XltError, match="not found"):
        RunConfig(task="pawsx", model=model, method="rs_da", method_params={"synonyms_file": str(tmp_path / "no.json")})
    (tmp_path / "syn.json").write_text('{"a": ["b"]}')
    monkeypatch.chdir(tmp_path)
    relative = RunConfig(task="pawsx", model=model, method="rs_da", method_params={"synonyms_file": "syn.json"})
    assert relative.method_params["synonyms_file"] == str(tmp_path / "syn.json")


@pytest.mark.parametrize("name", ["pgd", "freelb", "rs_rp"])
def test_perturbation_methods_run_under_bf16_autocast(tiny, pairs, name):
    """The CUDA path autocasts to bf16; CPU autocast exercises the same dtype handling."""
    model, _ = load_classifier(tiny[0], num_labels=2)
    batch = padded_batch(tiny[0], pairs)
    call = ModelCall(model, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    site = PerturbationSite(call, batch, None)
    assert site.dtype == torch.float32  # δ is kept in the weights' precision
    loss = make_method(name, {}).backward(call, batch, scale=1.0)
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
