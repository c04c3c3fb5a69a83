"""Ψ, R and F on a grid from a GridModel: two matrix–vector products (docs/math.md §1, §2, §5)."""
from __future__ import annotations

import numpy as np
from numba import prange

from mfdyn.builds import serial_and_parallel
from mfdyn.grid import Grid
from mfdyn.problems import GridModel

_BLOCK = 4096                 # columns per task in expand_kernel
PARALLEL_MIN_ENTRIES = 1 << 20  # entries of Φ (8 MB) from which the two cores pay (1.3× at 2^21, 2× at 2^23)


def _moments_kernel(phi: np.ndarray, rho: np.ndarray, vol: float, out: np.ndarray) -> None:
    """out_k = vol Σ_c Φ_kc ρ_c. One row per task, so each sum has one fixed order whatever the thread
    count (reassociation only lets the compiler vectorise within the row)."""
    for k in prange(phi.shape[0]):
        acc = 0.0
        for c in range(phi.shape[1]):
            acc += phi[k, c] * rho[c]
        out[k] = acc * vol


def _expand_kernel(phi: np.ndarray, g: np.ndarray, base: np.ndarray, out: np.ndarray) -> None:
    """out_c = base_c + Σ_k g_k Φ_kc, by blocks of columns, eight rows of Φ per pass.

    Each block of out stays in cache while the rows stream by; taking eight rows per pass loads and
    stores out once per eight rows (as a BLAS gemv does). The order of each sum is fixed. The loops run over
    1-D slices from index 0 (the block of out, one slice per row of Φ): so the compiler vectorises them across
    columns (3× at 24 × 1600), which leaves each column's sum, hence its bits, as it is.
    """
    n, rows = phi.shape[1], phi.shape[0]
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        c0 = block * _BLOCK
        c1 = min(c0 + _BLOCK, n)
        o, b = out[c0:c1], base[c0:c1]
        for i in range(o.shape[0]):
            o[i] = b[i]
        k = 0
        while k + 8 <= rows:
            g0, g1, g2, g3 = g[k], g[k + 1], g[k + 2], g[k + 3]
            g4, g5, g6, g7 = g[k + 4], g[k + 5], g[k + 6], g[k + 7]
            p0, p1, p2, p3 = phi[k, c0:c1], phi[k + 1, c0:c1], phi[k + 2, c0:c1], phi[k + 3, c0:c1]
            p4, p5, p6, p7 = phi[k + 4, c0:c1], phi[k + 5, c0:c1], phi[k + 6, c0:c1], phi[k + 7, c0:c1]
            for i in range(o.shape[0]):
                o[i] += ((g0 * p0[i] + g1 * p1[i] + g2 * p2[i] + g3 * p3[i])
                         + (g4 * p4[i] + g5 * p5[i] + g6 * p6[i] + g7 * p7[i]))
            k += 8
        while k < rows:
            gk, pk = g[k], phi[k, c0:c1]
            for i in range(o.shape[0]):
                o[i] += gk * pk[i]
            k += 1


moments_serial, moments_parallel = serial_and_parallel(_moments_kernel, fastmath={"reassoc", "contract"})
expand_serial, expand_parallel = serial_and_parallel(_expand_kernel)


def moments_kernel(phi: np.ndarray, rho: np.ndarray, vol: float, out: np.ndarray) -> None:
    """out_k = vol Σ_c Φ_kc ρ_c (K,), for Φ (K, M) and ρ (M,); threads from PARALLEL_MIN_ENTRIES on."""
    (moments_parallel if phi.size >= PARALLEL_MIN_ENTRIES else moments_serial)(phi, rho, vol, out)


def expand_kernel(phi: np.ndarray, g: np.ndarray, base: np.ndarray, out: np.ndarray) -> None:
    """out_c = base_c + Σ_k g_k Φ_kc (M,), for Φ (K, M); threads from PARALLEL_MIN_ENTRIES on."""
    (expand_parallel if phi.size >= PARALLEL_MIN_ENTRIES else expand_serial)(phi, g, base, out)


def moments_numpy(phi: np.ndarray, rho: np.ndarray, vol: float, out: np.ndarray) -> None:
    """NumPy twin of moments_kernel."""
    out[:] = phi @ rho * vol


def expand_numpy(phi: np.ndarray, g: np.ndarray, base: np.ndarray, out: np.ndarray) -> None:
    """NumPy twin of expand_kernel."""
    out[:] = base + g @ phi


# Feature sets with nonnegative weights are replaced by their best low-rank form when it has fewer rows,
# keeping eigenvalues of the Gram above this fraction of the largest: the kernel changes by under 1e−13
# relative, a thousandth of the isotropic MMN kernel's own truncation (1e−10) and a millionth of the
# anisotropic one's (1e−7)
COMPRESS_RTOL = 1e-13


def compress_features(features: np.ndarray, weights: np.ndarray,
                      rtol: float = COMPRESS_RTOL) -> tuple[np.ndarray, float]:
    """The best rank-r feature matrix for the kernel ΦᵀWΦ (W ≥ 0): rows v_iᵀW^½Φ for the eigenvectors of the
    K × K Gram (W^½Φ)(W^½Φ)ᵀ whose eigenvalues are ≥ rtol × the largest; returns (rows (r, M), the first
    dropped eigenvalue, 0 if none). The kernel changes by at most that eigenvalue in operator norm."""
    scaled = features * np.sqrt(weights)[:, None]
    values, vectors = np.linalg.eigh(scaled @ scaled.T)
    values, vectors = values[::-1], vectors[:, ::-1]
    keep = int(np.sum(values >= rtol * values[0]))
    return np.ascontiguousarray(vectors[:, :keep].T @ scaled), float(values[keep]) if keep < len(values) else 0.0


# Grid-sized float64 arrays alive during a solve besides Φ: ρ, the RK stages and their right-hand sides,
# ζ, Ψ, V, |θ|², U(θ,θ), log J and temporaries
GRID_STATE_ARRAYS = 16


def memory_estimate(n_features: int, n_cells: int) -> int:
    """Bytes a solve needs: Φ (K × M doubles) plus the grid-sized state arrays."""
    return 8 * (n_features * n_cells + GRID_STATE_ARRAYS * n_cells)


def check_memory(n_features: int | None, n_cells: int, budget_gb: float) -> None:
    """Refuse, before anything is allocated, a grid whose solve would not fit budget_gb. n_features = None: the
    state arrays alone, checked first because counting the features takes a pass over the cells."""
    need = memory_estimate(n_features or 0, n_cells) / 2**30
    if n_features is None and need > budget_gb:
        raise ValueError(f"pde.cells: {n_cells} cells need ≈ {need:.3g} GiB for the grid's arrays alone "
                         f"({GRID_STATE_ARRAYS} numbers of 8 bytes per cell), over pde.memory_gb = {budget_gb:g}; "
                         "use fewer pde.cells or raise pde.memory_gb")
    if need > budget_gb:
        raise ValueError(f"pde: {n_cells} cells × {n_features} features need ≈ {need:.1f} GiB, over "
                         f"pde.memory_gb = {budget_gb:g}; use fewer pde.cells or raise pde.memory_gb")


class PotentialOperator:
    """Ψ^α_λ[ρ] = V/α + (λ/2)|θ|² + Φᵀ(w ∘ Φν|cell|) for cell averages ρ, in O(K·M); ν = ρ, or ρ − ρ_0
    (`reference`) for the centred model (docs/math.md §1, §7; α = 1 and no reference: §1 exactly).

    Risk R_α = R# + 2α∫V dν + α² Σ_k w_k f_k², f = Φν|cell|; R_λ = R_α + λ∫|θ|²ρ; free energy
    F = ½R_α/α² + ½λ∫|θ|²ρ + β⁻¹∫ρ log(ρ/J) (the entropy term only when β < ∞; docs/math.md §2, §3, §7).
    The discrete interaction matrix ΦᵀWΦ is symmetric, which is all the semi-discrete decay of F needs (CCH Thm 2.5).
    With compress (default), features with W ≥ 0 are replaced by their best low-rank form (compress_features)
    where it has fewer rows, which changes the kernel by under COMPRESS_RTOL = 1e−13 relative.
    """

    def __init__(self, model: GridModel, grid: Grid, lam: float = 0.0, beta: float = np.inf,
                 compress: bool = True, alpha: float = 1.0, reference: np.ndarray | None = None):
        self.model, self.grid, self.lam, self.beta, self.alpha = model, grid, lam, beta, alpha
        self.vol = grid.cell_volume
        # Output scale α (docs/math.md §7): Ψ^α = V/α + ∫U dρ (V/1.0 is V, bit for bit)
        self.v_lam = np.ascontiguousarray(model.potential / alpha + 0.5 * lam * model.sq_norm)
        self.phi = np.ascontiguousarray(model.features)
        self.weights = np.asarray(model.weights, dtype=float)
        self.features_built = len(self.phi)
        self.dropped_eigenvalue = 0.0
        if compress and len(self.phi) and np.all(self.weights >= 0) and np.any(self.weights > 0):
            rows, dropped = compress_features(self.phi, self.weights)
            if len(rows) < len(self.phi):       # else Φ stays as built, bit for bit
                self.phi, self.dropped_eigenvalue, self.weights = rows, dropped, np.ones(len(rows))
        # The centred model α(f_ρ − f_ρ0) measures everything from the reference ρ_0: its moments
        self.reference = None if reference is None else np.asarray(reference, dtype=float)
        self.reference_moments = None if reference is None else self.moments(reference)

    def _output(self, rho: np.ndarray) -> np.ndarray:
        """Φν|cell| with ν = ρ (or ρ − ρ_0 for the centred model): the network output at the feature nodes."""
        f = self.moments(rho)
        return f if self.reference_moments is None else f - self.reference_moments

    def _linear(self, rho: np.ndarray) -> float:
        """∫V dν."""
        nu = rho.ravel() if self.reference is None else rho.ravel() - self.reference.ravel()
        return float(self.model.potential @ nu) * self.vol

    @property
    def depends_on_rho(self) -> bool:
        """Whether Ψ_λ[ρ] changes with ρ: only through the interaction Φᵀ(w ∘ Φρ|cell|), so not when there are
        no features (OU, heat) or all their weights are 0. The solver then computes ζ or the SG weights once."""
        return bool(np.any(self.weights != 0.0))

    def moments(self, rho: np.ndarray) -> np.ndarray:
        """f = Φρ|cell|, shape (K,): the network output at the feature nodes."""
        out = np.empty(len(self.phi))
        moments_kernel(self.phi, np.ascontiguousarray(rho).ravel(), self.vol, out)
        return out

    def psi(self, rho: np.ndarray) -> np.ndarray:
        """Ψ_λ on cells, grid-shaped."""
        out = np.empty(self.v_lam.shape)
        expand_kernel(self.phi, self.weights * self._output(rho), self.v_lam, out)
        return out.reshape(self.grid.shape)

    def psi_noisy(self, rho: np.ndarray) -> np.ndarray:
        """ψ = Ψ_λ − β⁻¹ log J, the potential the Scharfetter–Gummel flux sees (docs/math.md §3, §5)."""
        return self.psi(rho) - self.model.log_volume.reshape(self.grid.shape) / self.beta

    def gibbs(self, rho: np.ndarray) -> np.ndarray:
        """Z⁻¹ J e^{−βΨ_λ[ρ]} on the grid, normalised to the mass of ρ (docs/math.md §2)."""
        exponent = -self.beta * self.psi_noisy(rho)
        weights = np.exp(exponent - exponent.max())
        return weights * (self.grid.integrate(rho) / self.grid.integrate(weights))

    def interaction_energy(self, rho: np.ndarray) -> float:
        """∬U dν dν = Σ_k w_k f_k², f = Φν|cell| (ν = ρ, or ρ − ρ_0 for the centred model)."""
        f = self._output(rho)
        return float(self.weights @ (f * f))

    def risk(self, rho: np.ndarray) -> float:
        """R_α(ρ) = R# + 2α∫V dν + α²∬U dν dν (without the λ term; docs/math.md §1, §7)."""
        return self.model.r_sharp + 2.0 * self.alpha * self._linear(rho) + self.alpha**2 * self.interaction_energy(rho)

    def free_energy(self, rho: np.ndarray) -> float:
        """F = ½ R_α/α² + ½λ∫|θ|²ρ + β⁻¹ ∫ρ log(ρ/J), with 0 log 0 = 0: the functional whose W2 gradient
        flow (at speed 2ξ) the PDE is, for any α (docs/math.md §2, §7)."""
        flat = rho.ravel()
        value = 0.5 * (self.risk(rho) / self.alpha**2 + self.lam * float(self.model.sq_norm @ flat) * self.vol)
        if np.isfinite(self.beta):
            positive = flat > 0
            entropy = np.sum(flat[positive] * (np.log(flat[positive]) - self.model.log_volume[positive]))
            value += float(entropy) * self.vol / self.beta
        return value

    def finite_n_term(self, rho: np.ndarray) -> float:
        """α²(∫U(θ,θ)dρ − ∬U dρ dρ), of ρ itself: E R_N = R_α(ρ) + this / N for θ_i iid ~ ρ (docs/math.md §1, §7;
        the centred model and paired particles have R_N(0) = R_α(ρ_0) exactly, and compare uses 0 for them)."""
        f = self.moments(rho)
        return self.alpha**2 * (float(self.model.self_interaction @ rho.ravel()) * self.vol - float(self.weights @ (f * f)))
