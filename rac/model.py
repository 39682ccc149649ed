"""The RAC model ("Read, Attend, and Code", Kim & Ganapathi, MLHC 2021, section 4) in one file.

Reading order, top to bottom:

1. ``RACConfig``: every size the model has (tests use a tiny one, ``bench train --preset paper`` the paper's).
2. Building blocks: masked ``attention`` (shared by both attentions), a length-keeping masked ``Conv1d``
   and a post-LN self-attention layer.
3. ``NoteReader``: reader (convolved embedding -> self-attention layers) and the code-title guided attention
   that turns U and the code queries E_t into one logit per code.
4. ``TitleEncoder``: the coder, E_t from the code titles (``CodeQueries`` replaces it without code titles).
5. ``RAC``: the two together.
6. ``flops_per_note`` / ``title_flops``: the FLOP count of the recipe, shared by ``perf/rac.py`` and the
   trainer's MFU line so both count the same work.

Padding (token id ``PAD_ID``) is irrelevant by construction: pad embeddings are zero, every convolution output
is zeroed at pad positions (so nothing leaks into real positions through the next convolution), both
attentions mask padded keys, and the title max pool runs over real title positions only. There is no
positional encoding, so the part after the convolutions (``read`` + ``attend``) is permutation invariant.

The title encoder has its own embedding (same word2vec initialisation as the note embedding, but a separate
parameter) and is a module of its own. That separation is what lets the trainer compute E_t once per optimizer
step outside DDP: DDP wraps ``RAC.reader`` only; the trainer encodes the titles with ``RAC.coder``, hands a
detached copy (``requires_grad_()``) to every micro-batch, all-reduces the accumulated dL/dE_t across ranks,
and back-propagates it once through the coder. The coder's gradient never goes through DDP's buckets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAD_ID = 0  # token id 0 is padding everywhere
UNK_ID = 1  # token id 1 is the unknown word


@dataclass
class RACConfig:
    """Sizes and regularisation of RAC; defaults are the paper's (section 4 and its appendix)."""

    vocab_size: int
    n_codes: int
    d: int = 300  # embedding and model width (word2vec dimension)
    n_x: int = 4096  # note tokens read (longer notes are truncated by the data pipeline)
    n_t: int = 36  # title tokens (long + short title, padded/truncated)
    n_layers: int = 4  # single-head self-attention layers
    d_ff: int = 1024  # feed-forward width inside each self-attention layer
    kernel: int = 10  # convolution width (note and title convolutions)
    dropout: float = 0.1
    per_code_w3: bool = False  # paper: one shared W3 in R^{d x 1}; True gives each code its own vector
    identity_convs: bool = False  # start every convolution as the identity (see ``RAC.identity_init``)
    code_titles: bool = True  # False: per-code queries learned from random (``CodeQueries``) instead of E_t


EXPLICIT_MIN_D = 128  # model width from which CPU training takes the explicit-matmul paths (cpu_training)


def cpu_training(x: torch.Tensor) -> bool:
    """True where the explicit-matmul code paths beat oneDNN/fused kernels: CPU training of a wide model.

    ``x`` is [..., d]. Measured on the 2-core CPU: at d = 300 (paper) the backward of an unfold + GEMM
    convolution and of explicit attention matmuls runs ~20-40% faster than oneDNN's convolution backward and
    the fused SDPA backward (which recomputes the attention matrix). At d = 32 (``small``) it is the other way
    round: the fused SDPA training step took 0.19 s instead of 0.26 s, and oneDNN's title convolution 0.13 s
    instead of 0.18 s (16 notes, 4,173 codes). Inference always keeps the fused kernels, which are faster
    forward and never materialise the attention weights. Both paths compute the same function (tested).
    """
    return x.device.type == "cpu" and torch.is_grad_enabled() and x.shape[-1] >= EXPLICIT_MIN_D


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with padded keys excluded: q [B, M, d], k and v [B, L, d], mask [B, L].

    Used by both attentions (self-attention: M = L; code attention: M = n_codes, q = E_t). A row of the
    mask must hold at least one True.
    """
    if cpu_training(q):
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        scores = torch.baddbmm(bias[:, None, :], q * (1 / math.sqrt(q.shape[-1])), k.transpose(1, 2))
        return torch.bmm(torch.softmax(scores, dim=-1), v)
    out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=mask[:, None, None, :])
    return out.squeeze(1)


class MaskedConv1d(nn.Module):
    """``Conv1d(d, d, kernel)`` + tanh on a [B, L, d] sequence; output length = input length.

    An even kernel cannot be centred, so the sequence is padded (k-1)//2 on the left and k//2 on the right
    (PyTorch's ``padding='same'`` rule). The output at pad positions is set to zero, so the next layer sees
    exactly what it would see for the unpadded note.

    Layout: input and output stay [B, L, d] (tokens, then channels), which is what the embedding produces and
    the attention layers consume, so no transposes. Viewed as [B, d, 1, L] that memory is conv2d's
    channels-last format, which oneDNN convolves directly (~10% faster than transpose + Conv1d). In CPU
    training a window matrix [B*L, k*d] times the weight is used instead when it is small (the notes, not the
    8,930 titles), because its backward is two large GEMMs. The parameter is the ``nn.Conv1d`` weight.
    """

    UNFOLD_MAX_BYTES = 1 << 30  # the window matrix is saved for backward; the titles' would be ~3.9 GB

    def __init__(self, d: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(d, d, kernel)

    @torch.no_grad()
    def identity_(self, noise: float) -> None:
        """Weights that copy each position's input (tap (k-1)//2 reads position l itself), plus N(0, noise^2).

        The output is then tanh(x) at every real position, up to the noise; the bias starts at zero.
        """
        w = self.conv.weight  # [d_out, d_in, k]
        w.zero_()
        w[:, :, (self.kernel - 1) // 2] = torch.eye(w.shape[0], w.shape[1])
        w.add_(torch.randn_like(w), alpha=noise)
        self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        k, (b, n, d), w = self.kernel, x.shape, self.conv.weight
        x = F.pad(x, (0, 0, (k - 1) // 2, k // 2))  # [B, L+k-1, d]
        if cpu_training(x) and x.numel() * k * x.element_size() <= self.UNFOLD_MAX_BYTES:
            windows = x.unfold(1, k, 1).reshape(b * n, d * k)  # row l: x[l + j, i] at column i*k + j
            y = torch.addmm(self.conv.bias, windows, w.reshape(w.shape[0], d * k).t()).view(b, n, d)
        else:
            y = F.conv2d(x.unsqueeze(1).permute(0, 3, 1, 2), w.unsqueeze(2), self.conv.bias)  # [B, d, 1, L]
            y = y.permute(0, 2, 3, 1).reshape(b, n, d)  # channels-last output, so this is a view
        # Zero pad positions before tanh (tanh(0) = 0): in place, and nothing leaks into the next conv.
        return torch.tanh_(y.mul_(mask.unsqueeze(-1).to(y.dtype)))


class SelfAttentionLayer(nn.Module):
    """One post-LN Transformer encoder layer with a single head and no positional information.

    x = LN(x + Dropout(Attn(x)));  x = LN(x + Dropout(W2 Dropout(ReLU(W1 x)))).
    With one head an output projection W_O would compose with W_V into a single d x d map, so it is left
    out (``flops_per_note`` counts Q, K, V only). Dropout is on the residual branches
    and the FFN hidden layer (Vaswani et al. 5.4), not on the attention probabilities, which keeps the fused
    SDPA kernels usable in training.
    """

    def __init__(self, d: int, d_ff: int, dropout: float):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.ln1 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, d_ff)
        self.ff2 = nn.Linear(d_ff, d)
        self.ln2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # mask: [B, L] bool, True = real token; padded keys get no attention weight.
        x = self.ln1(x + self.drop(attention(*self.qkv(x).chunk(3, dim=-1), mask)))
        return self.ln2(x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x))))))


class NoteReader(nn.Module):
    """Reader (convolved embedding -> self-attention layers) and the code-title guided attention with its output
    layer: the logits of a batch of notes, given the code queries E_t. The trainer wraps this module in DDP."""

    def __init__(self, config: RACConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d, padding_idx=PAD_ID)
        self.convs = nn.ModuleList([MaskedConv1d(c.d, c.kernel) for _ in range(2)])
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList([SelfAttentionLayer(c.d, c.d_ff, c.dropout) for _ in range(c.n_layers)])
        # Output: y_c = sigmoid(V_c . w3 + b), w3 shared by all codes (paper) or one per code.
        if c.per_code_w3:
            self.w3 = nn.Parameter(torch.empty(c.n_codes, c.d).uniform_(-1 / math.sqrt(c.d), 1 / math.sqrt(c.d)))
            self.b3 = nn.Parameter(torch.zeros(c.n_codes))
        else:
            self.out = nn.Linear(c.d, 1)

    @torch.no_grad()
    def init_output_bias(self, code_frequency: torch.Tensor) -> None:
        """Set the output bias to the log-odds of each code's training frequency (``code_frequency`` in (0, 1)).

        The network then starts at the code-frequency prior instead of at sigmoid(0) = 0.5 for thousands of
        codes, and its first steps go to the evidence rather than to pushing every logit down (with the
        shared W3, whose bias is one number, to the log-odds of the mean frequency).
        """
        if self.config.per_code_w3:
            self.b3.copy_(torch.logit(code_frequency.double()))
        else:
            self.out.bias.fill_(torch.logit(code_frequency.double().mean()).item())

    def convolve(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convolved embedding [B, L, d]: embedding -> 2 x (Conv1d + tanh) -> dropout; zero at pad positions."""
        x = self.embed(tokens) * mask.unsqueeze(-1).to(self.embed.weight.dtype)
        for conv in self.convs:
            x = conv(x, mask)
        return self.drop(x)

    def read(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """U [B, L, d]: the self-attention layers over the convolved embedding (order-free: no positions)."""
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def attend(
        self, u: torch.Tensor, mask: torch.Tensor, titles: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, n_codes]: V = softmax(E_t U^T / sqrt(d)) U, logit = V . w3 + b.

        Runs in fp32 even under bf16 autocast: with thousands of codes over 4,096 tokens, low-precision label
        attention overflows (the LAAT / PLM-ICD divergence). Without ``return_attention`` it is ``attention``
        with the titles as queries and U as keys and values (in inference one fused SDPA call that never
        materialises the [B, n_codes, L] weights); with it, the weights are computed explicitly (same math)
        and returned for the evidence.
        """
        with torch.autocast(u.device.type, enabled=False):
            u, titles = u.float(), titles.float()
            if return_attention:
                scores = torch.matmul(titles * (1 / math.sqrt(self.config.d)), u.transpose(1, 2))  # [B, C, L]
                attn = torch.softmax(scores.masked_fill_(~mask[:, None, :], float("-inf")), dim=-1)
                v = torch.matmul(attn, u)  # [B, n_codes, d]
            else:
                v = attention(titles.expand(u.shape[0], *titles.shape), u, u, mask)  # [B, n_codes, d]
            if self.config.per_code_w3:
                logits = (v * self.w3).sum(-1) + self.b3
            else:
                logits = self.out(v).squeeze(-1)
        return (logits, attn) if return_attention else logits

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, titles: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """See ``RAC.forward``."""
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(dim=1)
        u = self.read(self.convolve(tokens, mask), mask)
        return self.attend(u, mask, titles, return_attention)


class TitleEncoder(nn.Module):
    """The coder: E_t [n_codes, d] = title embedding -> Conv1d + tanh -> max over the title's real tokens.

    Its embedding is a parameter of its own (same word2vec initialisation as the reader's); see the module
    docstring for why it stays outside the DDP module.
    """

    def __init__(self, config: RACConfig):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d, padding_idx=PAD_ID)
        self.conv = MaskedConv1d(config.d, config.kernel)

    def forward(self, title_tokens: torch.Tensor) -> torch.Tensor:
        """A code without any title token (catalogue title missing) gets the zero vector, not -inf."""
        mask = title_tokens != PAD_ID
        h = self.conv(self.embed(title_tokens), mask)
        pooled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class CodeQueries(nn.Module):
    """The coder without code titles (the paper's "- CodeTitles" ablation): one learned query per code,
    randomly initialised the way CAML's label attention is (``ConvAttnPool.U``, Xavier uniform, in
    caml-mimic's learn/models.py); the title tokens are ignored."""

    def __init__(self, config: RACConfig):
        super().__init__()
        self.queries = nn.Parameter(nn.init.xavier_uniform_(torch.empty(config.n_codes, config.d)))

    def forward(self, title_tokens: torch.Tensor) -> torch.Tensor:
        return self.queries


class RAC(nn.Module):
    """Reader + coder + code-title guided attention; ``forward`` returns one logit per code.

    ``reader`` (a ``NoteReader``) holds everything a note's logits need besides E_t; ``coder`` (a
    ``TitleEncoder``, or ``CodeQueries`` without code titles) computes E_t. They are separate modules so
    that DDP can wrap the reader alone. Use ``BCEWithLogitsLoss`` on the logits (y = sigmoid(logits) is the
    paper's output).
    """

    def __init__(self, config: RACConfig, embeddings: torch.Tensor | None = None):
        super().__init__()
        self.config = c = config
        self.reader = NoteReader(c)
        self.coder = TitleEncoder(c) if c.code_titles else CodeQueries(c)
        if c.identity_convs:
            self.identity_init()
        if embeddings is not None:
            if tuple(embeddings.shape) != (c.vocab_size, c.d):
                raise ValueError(f"embeddings are {tuple(embeddings.shape)}; expected ({c.vocab_size}, {c.d})")
            tables = [self.reader.embed] + ([self.coder.embed] if isinstance(self.coder, TitleEncoder) else [])
            with torch.no_grad():
                for table in tables:
                    table.weight.copy_(embeddings)
                    table.weight[PAD_ID].zero_()  # pad vectors stay zero (padding_idx also freezes them)

    @torch.no_grad()
    def identity_init(self, noise: float = 0.01) -> None:
        """Start each convolution as (almost) the identity: ``MaskedConv1d.identity_`` on all of them.

        With PyTorch's default (random) initialisation the note reader and the title encoder start as two
        unrelated random maps of the same word2vec space, so a title cannot attend to its own words until both
        have been learned, and a small model trained for a few epochs only learns the code-frequency prior
        (measured on the demo corpus; perf/RESULTS.md). Identity convolutions keep word2vec's geometry on both
        sides at the start: a code's title vector is then already close to the note positions that use its
        words. The paper does not state its initialisation; the ``paper`` preset keeps PyTorch's default.
        """
        for conv in self.modules():
            if isinstance(conv, MaskedConv1d):
                conv.identity_(noise)

    def init_output_bias(self, code_frequency: torch.Tensor) -> None:
        self.reader.init_output_bias(code_frequency)

    def encode_titles(self, title_tokens: torch.Tensor) -> torch.Tensor:
        """E_t [n_codes, d], the code queries of the attention (``coder``)."""
        return self.coder(title_tokens)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, titles: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, L] (PAD_ID-padded), mask [B, L] (True = real token), titles = ``encode_titles(...)``.

        Returns logits [B, n_codes], and the code-attention weights [B, n_codes, L] when ``return_attention``
        (the evidence for ``bench predict``). Each note should hold at least one real token; an empty note
        attends to its first (pad) position so its logits stay finite.
        """
        return self.reader(tokens, mask, titles, return_attention)


# ---- cost model --------------------------------------------------------------------------------------------
def flops_per_note(config: RACConfig, n_tokens: int) -> dict[str, float]:
    """Forward FLOPs (2 per multiply-add) for one note of ``n_tokens`` positions, by part.

    Counts the matmul-shaped work the recipe needs with the titles already encoded (E_t cached); the
    title encoder is ``title_flops``. Elementwise work (tanh, softmax, LayerNorm) is left out, as in MFU.
    At paper size (L = 4,096, d = 300, 8,930 codes) this is about 168 GFLOP: self-attention ~110 (Q K^T and
    A V ~80 of it), code attention ~44, the two convolutions ~15.

    >>> f = flops_per_note(RACConfig(vocab_size=50_000, n_codes=8_930), 4096)
    >>> {part: round(f[part] / 1e9, 1) for part in ("total", "self_attention", "code_attention", "convs")}
    {'total': 168.2, 'self_attention': 109.5, 'code_attention': 43.9, 'convs': 14.7}
    """
    c, n = config, n_tokens
    convs = 2 * (2 * n * c.d * c.d * c.kernel)
    qkv = 2 * n * c.d * 3 * c.d
    scores_and_mix = 2 * (2 * n * n * c.d)  # Q K^T and A V
    ffn = 2 * (2 * n * c.d * c.d_ff)
    sam = c.n_layers * (qkv + scores_and_mix + ffn)
    code_attention = 2 * (2 * c.n_codes * n * c.d)  # E_t U^T and A U
    output = 2 * c.n_codes * c.d  # V w3
    parts = {
        "convs": float(convs),
        "self_attention": float(sam),
        "self_attention_scores": float(c.n_layers * scores_and_mix),
        "code_attention": float(code_attention),
        "output": float(output),
    }
    parts["total"] = parts["convs"] + parts["self_attention"] + parts["code_attention"] + parts["output"]
    return parts


def title_flops(config: RACConfig) -> float:
    """Forward FLOPs of one pass of the title encoder over all codes (~580 GFLOP at paper size).

    n_codes x n_t positions x a d x d x kernel convolution; the trainer pays it once per optimizer step
    (x3 with backward), prediction once in total.

    Without code titles (``CodeQueries``) there is no title encoder and the cost is 0.

    >>> round(title_flops(RACConfig(vocab_size=50_000, n_codes=8_930)) / 1e9)
    579
    >>> title_flops(RACConfig(vocab_size=50_000, n_codes=8_930, code_titles=False))
    0.0
    """
    c = config
    return float(2 * c.n_codes * c.n_t * c.d * c.d * c.kernel) if c.code_titles else 0.0
