"""``erfcx`` by pieces, for :mod:`mmsim.fastnorm` (written by ``python -m mmsim.fastnorm``:
edit that, not this).
"""

from numba import njit

A = 3.0
PIECES = 4
DEGREE = 13
ZMAX = 26.5


@njit(cache=True)
def erfcx_poly(z):  # fmt: skip
    """``erfc(z) exp(z^2)`` for ``0 <= z <= ZMAX``: the interval of ``t = A / (A + z)``
    by comparisons, its polynomial in ``s`` (its coefficients as literals)."""
    t = 3.0 / (3.0 + z)
    i1 = t >= 0.326271186440678
    i2 = t >= 0.5508474576271187
    i3 = t >= 0.7754237288135593
    mid = 0.21398305084745764
    mid = 0.43855932203389836 if i1 else mid
    mid = 0.6631355932203391 if i2 else mid
    mid = 0.8877118644067796 if i3 else mid
    s = (t - mid) * 8.90566037735849
    c = 3.331097667256819e-14
    c = 1.5860813365703098e-14 if i1 else c
    c = 8.460016357895825e-14 if i2 else c
    c = 2.1860580259812497e-13 if i3 else c
    p = c
    c = 9.109676510817514e-14
    c = -3.1507234204302696e-14 if i1 else c
    c = -1.0381014701463521e-14 if i2 else c
    c = 1.6501014523624202e-13 if i3 else c
    p = p * s + c
    c = -9.136860187270926e-14
    c = 1.4835514040055204e-12 if i1 else c
    c = -1.6461838154488017e-12 if i2 else c
    c = -1.3425130376582456e-12 if i3 else c
    p = p * s + c
    c = -1.0459592360777565e-11
    c = 1.3022277197308266e-11 if i1 else c
    c = 1.5577018761124884e-11 if i2 else c
    c = -1.4836743868064558e-11 if i3 else c
    p = p * s + c
    c = -1.1956724887212167e-10
    c = -1.6038265220525024e-10 if i1 else c
    c = 2.485895539521051e-10 if i2 else c
    c = 2.2776485180471642e-10 if i3 else c
    p = p * s + c
    c = -2.243460269915466e-11
    c = -3.2882666096485374e-09 if i1 else c
    c = -2.5835986307857533e-09 if i2 else c
    c = 2.6517186671313783e-09 if i3 else c
    p = p * s + c
    c = 2.059588386046961e-08
    c = -4.567535692172811e-09 if i1 else c
    c = -6.195565384305725e-08 if i2 else c
    c = -6.073206583897837e-08 if i3 else c
    p = p * s + c
    c = 4.186590637329612e-07
    c = 5.946640516213828e-07 if i1 else c
    c = 1.1618088608408448e-07 if i2 else c
    c = -8.440070001498445e-07 if i3 else c
    p = p * s + c
    c = 5.614120817849946e-06
    c = 1.2042217148736307e-05 if i1 else c
    c = 1.7140605953174724e-05 if i2 else c
    c = 1.2754394380057271e-05 if i3 else c
    p = p * s + c
    c = 6.0331907620863465e-05
    c = 0.0001467234686444838 if i1 else c
    c = 0.00029744777362565795 if i2 else c
    c = 0.00045673057816446615 if i3 else c
    p = p * s + c
    c = 0.0005562571298312524
    c = 0.0013411629481696892 if i1 else c
    c = 0.003082730252721209 if i2 else c
    c = 0.006128712026045617 if i3 else c
    p = p * s + c
    c = 0.004553033224000124
    c = 0.009901284388812425 if i1 else c
    c = 0.02256620998031852 if i2 else c
    c = 0.04955548814458153 if i3 else c
    p = p * s + c
    c = 0.033766392478763924
    c = 0.061122621246381105 if i1 else c
    c = 0.12258871754585125 if i2 else c
    c = 0.26072843815546204 if i3 else c
    p = p * s + c
    c = 0.050989547133161076
    c = 0.14235883753576206 if i1 else c
    c = 0.31770801379637686 if i2 else c
    c = 0.6831187785767444 if i3 else c
    p = p * s + c
    return p
