"""Other ways to compute the core's convolutions, with the same results: FFT and shifted matmuls.

A model's convolutions are written once (``nn.Conv`` and the core's convolution + pooling layer
of :class:`jaxsel.models.Encoder`). :func:`conv_implementation` swaps how they are computed while a
function runs (a Flax method interceptor), leaving parameters, names and results unchanged:

- ``"xla"``: XLA's convolution (no interception).
- ``"fft"``: zero-padded real FFTs, a product summed over input channels, an inverse FFT
  (:func:`fft_conv`). Under ``jax.vmap`` over per-model kernels this stays batched FFTs and
  elementwise products, where XLA's convolution becomes a grouped convolution that XLA on
  CPU runs slowly. With few channels it is also faster for one model on CPU (measured in
  ``benchmarks/``: a 4-channel 7x7 layer, batch 64 of 36x64, forward + backward 30 ms direct,
  13 ms by FFT).
- ``"shifted"``: a sum over kernel offsets of matmuls (:func:`shifted_conv`); stride 1 only.
- ``"auto"``: on CPU, each convolution by FFT where :func:`fft_is_faster_on_cpu` says so,
  else XLA's; on other backends XLA's.

Convolutions an implementation does not cover (grouped, strided ``nn.Conv``) stay XLA's.

Example::

    with conv_implementation("fft"):
        rates, state = model.apply(params, state, images, train=True, rng=key)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxsel.models._core import ConvPool, conv_padding, pooled_kernel

CONV_IMPLS = ("xla", "fft", "fft_kernel_grad", "shifted", "auto")


def fft_size(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3, 5 or 7 (fast FFT lengths)."""
    m = n
    while True:
        r = m
        for f in (2, 3, 5, 7):
            while r % f == 0:
                r //= f
        if r == 1:
            return m
        m += 1


def _pads(padding, kh: int, kw: int):
    if padding in ("SAME", "VALID"):
        return conv_padding(kh, padding), conv_padding(kw, padding)
    return tuple(tuple(int(v) for v in p) for p in padding)


def fft_conv(x, kernel, stride: int = 1, padding: str | Sequence[tuple[int, int]] = "SAME"):
    """A convolution (cross-correlation, as ``lax.conv_general_dilated``) by FFT.

    The maps are zero-padded to a fast FFT length n >= H + max(pad_lo, pad_hi), so that the
    circular wrap-around of the product stays out of the window that is kept; ``stride``
    keeps every stride-th output of the stride-1 result.

    Args:
      x: (B, H, W, Cin) NHWC.
      kernel: (kh, kw, Cin, Cout) HWIO.
      stride: output stride (both axes).
      padding: ``"SAME"``, ``"VALID"`` or ((lo, hi), (lo, hi)).

    Returns:
      (B, H', W', Cout), equal to the direct convolution up to float32 FFT rounding
      (~1e-6 of the output's scale).
    """
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1], x.shape[2]
    (ly, hy), (lx, hx) = _pads(padding, kh, kw)
    oh, ow = (h + ly + hy - kh) // stride + 1, (w + lx + hx - kw) // stride + 1
    nh, nw = fft_size(h + max(ly, hy)), fft_size(w + max(lx, hx))
    # full correlation index of output i: i * stride + k - 1 - lo
    geom = (nh, nw, kh - 1 - ly, kw - 1 - lx, stride, oh, ow)
    kf = jnp.transpose(kernel[::-1, ::-1], (2, 3, 0, 1)).astype(x.dtype)  # (Cin, Cout, ..)
    return _fft_conv_nhwc(x, kf, geom).astype(x.dtype)


def _to_nchw(x):
    # the barriers keep producers (BatchNorm, ELU) out of the transpose and the transpose
    # out of the FFT's zero padding: fused together, XLA on CPU ran them several times
    # slower than as separate passes
    return lax.optimization_barrier(jnp.moveaxis(lax.optimization_barrier(x), -1, 1))


MATMUL_MIX_PAIRS = 16


def _complex_matmul_ok() -> bool:
    """Whether this jax runs batched complex matmuls on CPU safely: with jax 0.11.2 on CPU,
    a Lurz-sized step with them never returned (all threads waiting; seen in
    ``benchmarks/``), so there the broadcast-sum mixing and XLA's kernel gradient are used."""
    return jax.__version_info__ >= (0, 12) or jax.default_backend() != "cpu"


def _mix_forward(xf, wf):
    """Per-frequency channel mixing ``y[b,o] = sum_i x[b,i] w[i,o]`` of an FFT convolution.

    Few channel pairs (``cin * cout <= MATMUL_MIX_PAIRS``): a sum of broadcast products
    (elementwise passes, measured faster than a dot there); more: a batched complex matmul
    over the frequency bins (the direct convolution costs ``k^2 cin cout`` per pixel, this
    ``cin cout`` per frequency bin).
    """
    cin, cout = wf.shape[0], wf.shape[1]
    if cin * cout > MATMUL_MIX_PAIRS and _complex_matmul_ok():
        return jnp.einsum("bihw,iohw->bohw", xf, wf)
    return sum(xf[:, c : c + 1] * wf[c][None] for c in range(cin))


def _mix_input_grad(gf, wf):
    """``dx[b,i] = sum_o g[b,o] conj(w[i,o])``."""
    cin, cout = wf.shape[0], wf.shape[1]
    if cin * cout > MATMUL_MIX_PAIRS and _complex_matmul_ok():
        return jnp.einsum("bohw,iohw->bihw", gf, jnp.conj(wf))
    return sum(gf[:, o : o + 1] * jnp.conj(wf[:, o])[None] for o in range(cout))


def _mix_kernel_grad(xf, gf):
    """``dw[i,o] = sum_b conj(x[b,i]) g[b,o]``."""
    if xf.shape[1] * gf.shape[1] > MATMUL_MIX_PAIRS and _complex_matmul_ok():
        return jnp.einsum("bihw,bohw->iohw", jnp.conj(xf), gf)
    return jnp.sum(jnp.conj(xf)[:, :, None] * gf[:, None], axis=0)


def _fft_forward(x, kf, geom):
    nh, nw, sy, sx, stride, oh, ow = geom
    xf = jnp.fft.rfft2(_to_nchw(x), s=(nh, nw))  # (B, Cin, nh, .)
    wf = jnp.fft.rfft2(kf, s=(nh, nw))  # (Cin, Cout, ...)
    yf = _mix_forward(xf, wf)  # (B, Cout, ...)
    y = jnp.fft.irfft2(yf, s=(nh, nw))
    y = y[:, :, sy : sy + (oh - 1) * stride + 1 : stride, sx : sx + (ow - 1) * stride + 1 : stride]
    return jnp.moveaxis(y, 1, -1), (xf, wf)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fft_conv_nhwc(x, kf, geom):
    """(B, H, W, Cin) maps, (Cin, Cout, kh, kw) flipped kernel -> (B, oh, ow, Cout): the
    circular convolution of the zero-padded maps, cropped (and strided).

    Its VJP is written out: the adjoint of a circular convolution is a circular
    correlation, ``irfft2(rfft2(g) * conj(K))`` (and ``conj(X)`` for the kernel), which
    saves the masked complex FFT that autodiff of ``rfft2`` produces."""
    return _fft_forward(x, kf, geom)[0]


def _fft_conv_fwd(x, kf, geom):
    y, res = _fft_forward(x, kf, geom)
    return y, (res, x.shape, kf.shape)


def _fft_conv_bwd(geom, res, gy):
    nh, nw, sy, sx, stride, oh, ow = geom
    (xf, wf), xshape, kshape = res
    span_y, span_x = (oh - 1) * stride + 1, (ow - 1) * stride + 1
    g = lax.pad(
        _to_nchw(gy),
        jnp.zeros((), gy.dtype),
        (
            (0, 0, 0),
            (0, 0, 0),
            (sy, nh - sy - span_y, stride - 1),
            (sx, nw - sx - span_x, stride - 1),
        ),
    )  # the adjoint of the crop
    gf = jnp.fft.rfft2(g)  # (B, Cout, ...)
    dxf = _mix_input_grad(gf, wf)
    dx = jnp.moveaxis(jnp.fft.irfft2(dxf, s=(nh, nw))[:, :, : xshape[1], : xshape[2]], 1, -1)
    dwf = _mix_kernel_grad(xf, gf)  # (Cin, Cout, ...)
    dk = jnp.fft.irfft2(dwf, s=(nh, nw))[:, :, : kshape[2], : kshape[3]]
    return dx.astype(gy.dtype), dk.astype(gy.dtype)


_fft_conv_nhwc.defvjp(_fft_conv_fwd, _fft_conv_bwd)


def _direct(x, kernel, pads):
    return lax.conv_general_dilated(
        x, kernel, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def fft_kernel_grad_conv(x, kernel, padding: str | Sequence[tuple[int, int]] = "SAME"):
    """A stride-1 convolution by XLA, whose kernel gradient is computed by FFT.

    Forward and input gradient are XLA's direct convolutions; the kernel gradient (a
    correlation of the maps with the output gradient, summed over the batch) is
    ``irfft2(sum_b conj(rfft2(x)) rfft2(g))``: per frequency bin a (Cin x B) @ (B x Cout)
    complex matmul. On CPU XLA runs that gradient convolution several times slower than
    the forward one at 64 channels (``benchmarks/conv_forms.py``).

    Args:
      x: (B, H, W, Cin) NHWC.
      kernel: (kh, kw, Cin, Cout) HWIO.
      padding: ``"SAME"``, ``"VALID"`` or ((lo, hi), (lo, hi)).

    Returns:
      (B, H', W', Cout), exactly XLA's convolution; gradients equal to float32 FFT rounding.
    """
    return _conv_fft_kgrad(x, kernel, _pads(padding, kernel.shape[0], kernel.shape[1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_fft_kgrad(x, kernel, pads):
    return _direct(x, kernel, pads)


def _conv_fft_kgrad_fwd(x, kernel, pads):
    return _direct(x, kernel, pads), (x, kernel)


def _conv_fft_kgrad_bwd(pads, res, g):
    x, kernel = res
    dx = jax.vjp(lambda v: _direct(v, kernel, pads), x)[1](g)[0]
    # only the kernel half of the FFT convolution's VJP is used: XLA drops the rest
    dk = jax.vjp(lambda k: fft_conv(x, k, 1, pads), kernel)[1](g)[0]
    return dx, dk


_conv_fft_kgrad.defvjp(_conv_fft_kgrad_fwd, _conv_fft_kgrad_bwd)


def shifted_conv(x, kernel, dilation: int = 1):
    """'SAME' stride-1 convolution as a sum over kernel offsets of matmuls
    (``sum_{dy,dx} shift(x) @ W[dy, dx]``: plain dots, no im2col buffer).

    Args:
      x: (B, H, W, Cin) NHWC.
      kernel: (kh, kw, Cin, Cout) HWIO.
      dilation: kernel dilation.

    Returns:
      (B, H, W, Cout), equal to ``lax.conv_general_dilated(..., padding="SAME")``.
    """
    kh, kw = kernel.shape[:2]
    eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    ph, pw = eh - 1, ew - 1
    xp = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    h, w = x.shape[1], x.shape[2]
    out = None
    for dy in range(kh):
        for dx in range(kw):
            sl = xp[:, dy * dilation : dy * dilation + h, dx * dilation : dx * dilation + w]
            term = jnp.einsum("bhwc,co->bhwo", sl, kernel[dy, dx])
            out = term if out is None else out + term
    return out


def _ones(v) -> bool:
    if v is None:
        return True
    return all(int(a) == 1 for a in (v if isinstance(v, (tuple, list)) else (v,)))


_NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _accepts(option: str) -> bool:
    try:
        jax.jit(lambda v: v + 1, compiler_options={option: ""})(jnp.float32(0))
        return True
    except Exception:  # an XLA without this option
        return False


def compiler_options(impl: str) -> dict | None:
    """``jax.jit(..., compiler_options=...)`` for a step using conv implementation ``impl``.

    On CPU with ``"fft"`` / ``"auto"``: XLA's YNNPACK library fusions off (the reductions
    and elementwise passes around the FFTs ran ~20 % slower with them: per-neuron CNN step
    of ``benchmarks/``, 37 vs 45 model-steps/s; neutral for the ``small`` config), if this
    XLA has the option. Else None (XLA's defaults).
    """
    if impl in ("fft", "auto") and jax.default_backend() == "cpu" and _accepts(next(iter(_NO_YNN))):
        return dict(_NO_YNN)
    return None


def fft_is_faster_on_cpu(kernel_size: int, cin: int, cout: int, stride: int) -> bool:
    """Whether :func:`fft_conv` beats XLA's convolution on CPU for one layer (forward +
    backward, batch 64): stride 1, ``cout <= 8``, ``cin * cout <= 16`` and
    ``k^2 * cin >= 64``.

    A rule read off measurements on a 2-core AVX-512 Xeon (``benchmarks/conv_forms.py``,
    results in ``benchmarks/results/conv_forms.json``): FFT 1.4-2.2x faster for 1->4 9x9,
    4->4 7x7 and 4->4 5x5 layers; 0.2-0.95x for strided, 3x3, 1->4 5x5, 8->8 and wider
    layers (the FFT's product over channel pairs grows as cin x cout, while XLA's direct
    convolution gets efficient as channels grow).
    """
    return stride == 1 and cout <= 8 and cin * cout <= 16 and kernel_size * kernel_size * cin >= 64


def cpu_conv_form(kernel_size: int, cin: int, cout: int, stride: int) -> str:
    """How ``conv="auto"`` computes one layer on CPU: ``"fft"``, ``"fft_kernel_grad"`` or
    ``"xla"``.

    ``"fft"`` where :func:`fft_is_faster_on_cpu`; ``"fft_kernel_grad"`` (XLA forward and
    input gradient, kernel gradient by FFT, :func:`fft_kernel_grad_conv`) for wide layers
    with large kernels: stride 1, ``k >= 7`` and ``cin * cout >= 1024``. Measured
    (``benchmarks/conv_forms.py``, forward + backward, batch 64 of 36x64, 2-core Xeon,
    interleaved medians): 2.2x faster than XLA for 64->64 7x7, 1.7x for 32->32 7x7;
    slower (0.5-0.8x) for 64->64 3x3, 16->16 5x5 and 1->64 9x9 layers. Not with jax < 0.12
    on CPU (see ``_complex_matmul_ok``).
    """
    if fft_is_faster_on_cpu(kernel_size, cin, cout, stride):
        return "fft"
    if stride == 1 and kernel_size >= 7 and cin * cout >= 1024 and _complex_matmul_ok():
        return "fft_kernel_grad"
    return "xla"


def _replacement(mod, x, impl: str):
    """The output of conv module ``mod`` on ``x`` by ``impl``, or None to keep XLA's."""
    kernel = mod.get_variable("params", "kernel")
    if impl == "auto":
        stride = mod.pool if isinstance(mod, ConvPool) else (1 if _ones(mod.strides) else 2)
        impl = cpu_conv_form(kernel.shape[0], kernel.shape[2], kernel.shape[3], stride)
        if impl == "xla":
            return None
    if isinstance(mod, ConvPool):
        if impl == "shifted" and (mod.pool != 1 or mod.padding != "SAME"):
            return None
        if impl == "fft_kernel_grad" and mod.pool != 1:
            return None
        if impl == "shifted":
            return shifted_conv(x, kernel)
        pads = conv_padding(mod.kernel_size, mod.padding)
        if impl == "fft_kernel_grad":
            return fft_kernel_grad_conv(x, kernel, (pads, pads))
        return fft_conv(x, pooled_kernel(kernel, mod.pool), mod.pool, (pads, pads))
    dil = mod.kernel_dilation
    dil = int(dil[0] if isinstance(dil, (tuple, list)) else (dil or 1))
    if mod.feature_group_count != 1 or not _ones(mod.strides) or mod.padding != "SAME":
        return None
    if impl == "shifted":
        return shifted_conv(x, kernel, dil)
    if dil != 1:
        return None
    return fft_kernel_grad_conv(x, kernel) if impl == "fft_kernel_grad" else fft_conv(x, kernel)


def _interceptor(impl: str, replace: dict | None = None):
    def intercept(next_fun, args, kwargs, context):
        mod = context.module
        if context.method_name != "__call__" or not isinstance(mod, (nn.Conv, ConvPool)):
            return next_fun(*args, **kwargs)
        if replace and mod.name in replace:
            return replace[mod.name]
        y = None if impl == "xla" else _replacement(mod, args[0], impl)
        if y is None:
            return next_fun(*args, **kwargs)
        if mod.use_bias:
            y = y + mod.get_variable("params", "bias")
        return y

    return intercept


@contextlib.contextmanager
def conv_implementation(impl: str = "xla", *, replace: dict | None = None):
    """Compute the convolutions of models applied inside this context by ``impl``.

    Args:
      impl: one of :data:`CONV_IMPLS`.
      replace: optional ``{module name: output}``: conv modules with these names return the
        given output instead (e.g. a first layer already computed for many models at once).
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv implementation {impl!r}: use one of {CONV_IMPLS}")
    if impl == "auto" and jax.default_backend() != "cpu":
        impl = "xla"
    if impl == "xla" and not replace:
        yield
        return
    with nn.intercept_methods(_interceptor(impl, replace)):
        yield


__all__ = [
    "CONV_IMPLS",
    "compiler_options",
    "conv_implementation",
    "cpu_conv_form",
    "fft_conv",
    "fft_is_faster_on_cpu",
    "fft_kernel_grad_conv",
    "fft_size",
    "shifted_conv",
]
