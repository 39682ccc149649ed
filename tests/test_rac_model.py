"""RAC model properties on a tiny config (CPU): shapes, padding, order-freedom, fp32 label softmax, FLOPs."""
from __future__ import annotations

import pytest
import torch

import rac.model
from rac.model import PAD_ID, RAC, RACConfig, attention, flops_per_note, title_flops

TINY = RACConfig(vocab_size=60, n_codes=9, d=16, n_x=40, n_t=7, n_layers=2, d_ff=24, kernel=4, dropout=0.1)


def make_model(config: RACConfig = TINY, seed: int = 0) -> RAC:
    torch.manual_seed(seed)
    return RAC(config, embeddings=torch.randn(config.vocab_size, config.d)).eval()


def make_batch(lengths: list[int], width: int, vocab: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (real ids drawn from 1..vocab-1) and the matching mask."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (len(lengths), width), generator=g)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, PAD_ID), mask


def make_titles(config: RACConfig, seed: int = 2) -> torch.Tensor:
    """Title ids with varied lengths (1..n_t real tokens), one code with no title at all."""
    lengths = [1 + i % config.n_t for i in range(config.n_codes)]
    lengths[-1] = 0
    return make_batch(lengths, config.n_t, config.vocab_size, seed)[0]


def test_shapes_and_attention_rows():
    model = make_model()
    tokens, mask = make_batch([40, 25, 3], 40, TINY.vocab_size)
    titles = model.encode_titles(make_titles(TINY))
    assert titles.shape == (TINY.n_codes, TINY.d)
    logits, attn = model(tokens, mask, titles, return_attention=True)
    assert logits.shape == (3, TINY.n_codes)
    assert attn.shape == (3, TINY.n_codes, 40)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, TINY.n_codes))
    assert (attn[~mask[:, None, :].expand_as(attn)] == 0).all()  # no weight on padding


def test_appended_padding_changes_nothing():
    model = make_model()
    titles = model.encode_titles(make_titles(TINY))
    tokens, mask = make_batch([30, 12], 30, TINY.vocab_size)
    with torch.no_grad():
        base, base_attn = model(tokens, mask, titles, return_attention=True)
        padded_tokens = torch.cat([tokens, torch.full((2, 17), PAD_ID)], dim=1)
        padded_mask = torch.cat([mask, torch.zeros(2, 17, dtype=torch.bool)], dim=1)
        longer, longer_attn = model(padded_tokens, padded_mask, titles, return_attention=True)
        # Each note alone, unpadded, gives the same logits as inside the padded batch.
        alone = model(tokens[1:, :12], mask[1:, :12], titles)
    torch.testing.assert_close(longer, base, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(longer_attn[:, :, :30], base_attn, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone, base[1:], rtol=1e-5, atol=1e-5)
    # Sanity: the test can fail; changing a real token does change the logits.
    changed = tokens.clone()
    changed[0, 5] = changed[0, 5] % (TINY.vocab_size - 1) + 1
    with torch.no_grad():
        assert not torch.allclose(model(changed, mask, titles)[0], base[0], atol=1e-4)


def test_after_convolution_order_does_not_matter():
    model = make_model()
    titles = model.encode_titles(make_titles(TINY))
    tokens, mask = make_batch([40, 22], 40, TINY.vocab_size)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        x = model.reader.convolve(tokens, mask)
        probs = torch.sigmoid(model.reader.attend(model.reader.read(x, mask), mask, titles))
        perm = torch.stack([torch.randperm(40, generator=g) for _ in range(2)])  # pads land mid-sequence
        xp = torch.gather(x, 1, perm[:, :, None].expand_as(x))
        mp = torch.gather(mask, 1, perm)
        assert not torch.equal(mp, mask)
        permuted = torch.sigmoid(model.reader.attend(model.reader.read(xp, mp), mp, titles))
    torch.testing.assert_close(permuted, probs, rtol=1e-5, atol=1e-6)


def test_label_softmax_is_fp32_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch):
    seen = []

    def recording_attention(q, k, v, mask):
        seen.append((q.shape[1], q.dtype, k.dtype, v.dtype))
        return attention(q, k, v, mask)

    monkeypatch.setattr(rac.model, "attention", recording_attention)
    model = make_model()
    titles = model.encode_titles(make_titles(TINY))
    tokens, mask = make_batch([40, 9], 40, TINY.vocab_size)
    with torch.no_grad():
        reference = torch.sigmoid(model(tokens, mask, titles))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            u = model.reader.read(model.reader.convolve(tokens, mask), mask)
            assert u.dtype == torch.bfloat16  # autocast is really on upstream of the label attention
            logits, attn = model(tokens, mask, titles, return_attention=True)
            # Titles scaled far beyond bf16's 8-bit mantissa still give a finite, normalised softmax.
            _, sharp = model(tokens, mask, titles * 1e4, return_attention=True)
    assert attn.dtype == torch.float32 and sharp.dtype == torch.float32
    label_calls = [dtypes for rows, *dtypes in seen if rows == TINY.n_codes]
    assert label_calls and all(dtypes == [torch.float32] * 3 for dtypes in label_calls)
    assert any(dtypes == [torch.bfloat16] * 3 for rows, *dtypes in seen if rows == 40)  # reader stays bf16
    assert torch.isfinite(sharp).all()
    torch.testing.assert_close(sharp.sum(-1), torch.ones(2, TINY.n_codes))
    torch.testing.assert_close(torch.sigmoid(logits.float()), reference, atol=0.05, rtol=0)


def test_training_and_inference_kernels_agree(monkeypatch: pytest.MonkeyPatch):
    """CPU training uses unfold + GEMM convolutions and explicit attention; inference oneDNN and fused SDPA."""
    monkeypatch.setattr(rac.model, "EXPLICIT_MIN_D", 1)  # the explicit paths at TINY's width too
    model = make_model()  # eval: no dropout, so both paths compute the same function
    title_tokens = make_titles(TINY)
    tokens, mask = make_batch([40, 13], 40, TINY.vocab_size)
    with torch.no_grad():
        fused = model(tokens, mask, model.encode_titles(title_tokens))
    explicit = model(tokens, mask, model.encode_titles(title_tokens))
    assert explicit.requires_grad
    torch.testing.assert_close(explicit.detach(), fused, rtol=1e-5, atol=1e-5)


def test_title_max_pool_ignores_padding():
    model = make_model()
    title_tokens = make_titles(TINY)
    with torch.no_grad():
        pooled = model.encode_titles(title_tokens)
        wider = model.encode_titles(torch.cat([title_tokens, torch.full((TINY.n_codes, 5), PAD_ID)], dim=1))
        any_negative = False
        for code, row in enumerate(title_tokens):
            real = row[row != PAD_ID]
            if len(real) == 0:
                assert torch.equal(pooled[code], torch.zeros(TINY.d))  # no title: zero vector, not -inf
                continue
            h = model.coder.conv(model.coder.embed(real[None]), torch.ones(1, len(real), dtype=torch.bool))
            expected = h[0].amax(dim=0)
            any_negative |= bool((expected < 0).any())
            torch.testing.assert_close(pooled[code], expected, rtol=1e-5, atol=1e-6)
    assert any_negative  # a zero leaking from a pad position would have won the max somewhere
    torch.testing.assert_close(wider, pooled, rtol=1e-5, atol=1e-6)


def test_flops_match_the_paper_size_figures():
    paper = RACConfig(vocab_size=50_000, n_codes=8_930)
    f = flops_per_note(paper, paper.n_x)
    assert f["total"] == pytest.approx(168e9, rel=0.01)
    assert f["self_attention"] == pytest.approx(110e9, rel=0.01)
    assert f["self_attention_scores"] == pytest.approx(80e9, rel=0.01)
    assert f["code_attention"] == pytest.approx(44e9, rel=0.01)
    assert f["convs"] == pytest.approx(15e9, rel=0.02)
    assert f["total"] == pytest.approx(sum(v for k, v in f.items() if k not in {"total", "self_attention_scores"}))
    assert title_flops(paper) == pytest.approx(580e9, rel=0.01)


@pytest.mark.parametrize("per_code_w3", [False, True])
def test_gradients_reach_both_embeddings(per_code_w3: bool):
    config = RACConfig(**{**TINY.__dict__, "per_code_w3": per_code_w3})
    model = make_model(config).train()
    title_tokens = make_titles(config)
    tokens, mask = make_batch([40, 17], 40, config.vocab_size)
    logits = model(tokens, mask, model.encode_titles(title_tokens))
    target = torch.zeros_like(logits)
    target[:, :3] = 1
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    note_rows = tokens[mask].unique()
    title_rows = title_tokens[title_tokens != PAD_ID].unique()
    assert (model.reader.embed.weight.grad[note_rows].abs().sum(1) > 0).all()
    assert (model.coder.embed.weight.grad[title_rows].abs().sum(1) > 0).all()
    assert model.reader.embed.weight.grad[PAD_ID].abs().sum() == 0  # the pad vector stays zero
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_empty_note_and_bad_embeddings():
    model = make_model()
    titles = model.encode_titles(make_titles(TINY))
    tokens, mask = make_batch([0, 5], 10, TINY.vocab_size)
    with torch.no_grad():
        assert torch.isfinite(model(tokens, mask, titles)).all()
    with pytest.raises(ValueError, match="expected"):
        RAC(TINY, embeddings=torch.zeros(TINY.vocab_size + 1, TINY.d))


@pytest.mark.parametrize("grad", [False, True])  # both convolution code paths (oneDNN and unfold + GEMM)
def test_identity_convolutions_copy_their_input(grad: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(rac.model, "EXPLICIT_MIN_D", 1)
    config = RACConfig(**{**TINY.__dict__, "identity_convs": True})
    model = make_model(config)
    for conv in (*model.reader.convs, model.coder.conv):
        conv.identity_(noise=0.0)
    tokens, mask = make_batch([40, 11], 40, config.vocab_size)
    x = model.reader.embed(tokens) * mask.unsqueeze(-1)
    with torch.set_grad_enabled(grad):
        out = model.coder.conv(x, mask)
    torch.testing.assert_close(out, torch.tanh(x), rtol=1e-5, atol=1e-6)
    # with the default noise the model starts close to, not at, the identity (symmetry stays broken)
    noisy = make_model(config).coder.conv.conv.weight
    assert 0 < (noisy[:, :, (config.kernel - 1) // 2] - torch.eye(config.d)).abs().max() < 0.1


@pytest.mark.parametrize("per_code_w3", [False, True])
def test_output_bias_starts_at_the_code_frequency(per_code_w3: bool):
    config = RACConfig(**{**TINY.__dict__, "per_code_w3": per_code_w3})
    model = make_model(config)
    frequency = torch.linspace(0.01, 0.5, config.n_codes)
    model.init_output_bias(frequency)
    with torch.no_grad():  # a zero W3 leaves only the bias: the prior itself
        (model.reader.w3 if per_code_w3 else model.reader.out.weight).zero_()
        tokens, mask = make_batch([40, 7], 40, config.vocab_size)
        probs = torch.sigmoid(model(tokens, mask, model.encode_titles(make_titles(config))))
    expected = frequency if per_code_w3 else frequency.mean().expand(config.n_codes)
    torch.testing.assert_close(probs, expected.expand_as(probs), rtol=1e-5, atol=1e-6)
