"""Radiograph realism for DRRs: material decomposition, spectrum, noise, scatter, blur, heel effect, clinical look.

A clean DRR is a line integral shown through a percentile window. A detector behind a patient sees something
else, and a model trained on clean DRRs learns the renderer (SyntheX, Gao et al., Nat. Mach. Intell. 2023;
DeepDRR, Unberath et al., MICCAI 2018). This module turns the per-material line integrals of one view into an
8-bit radiograph by the chain of a digital radiography system:

1. **Materials** (:func:`material_densities`): every voxel is air, soft tissue or bone by HU thresholds (as
   DeepDRR segments), with a mass density from HU (bilinear, after Schneider et al., Phys. Med. Biol. 45:459,
   2000). The renderer projects the three density volumes in ONE pass (a 3-channel warp per slab), giving each
   pixel's mass thickness per material (g/cm²); a new kVp only recombines them.
2. **Spectrum** (:func:`spectrum`): a tungsten bremsstrahlung spectrum by Kramers' law, ``N(E) ∝ (kVp − E)/E``,
   hardened by the tube's aluminium filtration; mass attenuation coefficients μ/ρ from the NIST tables (Hubbell
   & Seltzer, NIST Standard Reference Database 126, NISTIR 5632, data of July 2004: table 4 for dry air, ICRU-44
   soft tissue and ICRU-44 cortical bone, table 3 for aluminium), interpolated log-log. Checked at every
   tabulated energy (10-150 keV) against xraylib 4.3 and xraydb 4.5 (Elam et al.), mixed by NIST's table-2
   mass fractions: agreement within 0.1 %.
   The detector integrates energy (weights ``N(E)·E``), so beam hardening follows.
3. **Exposure and quantum noise**: an automatic exposure control sets the air kerma behind the body (median
   over the pixels the body covers) to ``detector_kerma_ugy``; quanta per µGy per mm² from IEC 62220-1 (RQA5:
   29 653; SpekPy 2.5 gives 29 600-29 900 for 70 kV behind 21 mm Al at HVL 6.7-6.8 mm Al); a quantum
   detection efficiency ``dqe``; Poisson counts per pixel.
4. **Heel effect**: the incident field falls linearly from cathode to anode side by ``heel`` (a fraction).
5. **Scatter** (:func:`scatter_field`): a low-frequency field, the primary weighted by its attenuation and
   smoothed by a Gaussian of ``scatter_sigma_mm`` (scatter-kernel superposition; DeepDRR's maintainers and
   Boone & Seibert, Med. Phys. 15:713, 1988, show scatter as a broad kernel), scaled so that the median
   scatter-to-primary ratio over the body is ``scatter_to_primary``; Poisson-counted with the primary.
6. **Detector blur**: MTF ``(1 − g)·exp(−2π²σ²f²) + g·exp(−2πγf)`` — a Gaussian core (phosphor light spread,
   ``detector_sigma_mm``, with the focal spot's geometric unsharpness ``focal_spot_mm·(m − 1)`` added in
   quadrature) and a Lorentzian glare tail (weight ``glare_fraction``, width ``glare_gamma_mm``), applied after
   the quanta are counted (the light spread correlates the noise, as in indirect detectors); then additive
   electronic noise (Gaussian, ``electronic_noise_quanta`` in quanta per pixel).
7. **Clinical look**: log transform, dynamic range compression (the large-scale trend of body thickness
   partly subtracted), a window on the body's percentiles, optional unsharp-mask edge enhancement (as CR/DR
   processing does), a look-up curve (linear, gamma or sigmoid), collimation (no primary outside the
   collimator window: only scatter reaches it, and the processing, which works inside the exposed field only,
   shows it white) and an optional burned-in lead side
   marker (``R`` on AP, ``L`` on lateral views).

Parameters come from a preset (``configs/ct/realism/*.yaml``): a number is used as given, ``[low, high]`` is
drawn uniformly per image, a list of words is a choice. Draws are seeded by ``(seed, image stem)`` and recorded in
the image's sidecar (``realism``). Geometry never changes; :class:`RealismResult` ``.visible`` says which pixels
still show anatomy (collimation and the marker hide the rest), for clipping the label masks.

Arrays are ``(rows, cols)`` = ``(v, u)`` detector images; lengths in mm at the detector plane.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolo_spine.ct import shearwarp
from yolo_spine.errors import UserError

log = logging.getLogger("yolo_spine")

#: Materials, in the channel order of :func:`material_densities` and the renderer's material images.
MATERIALS = ("air", "soft_tissue", "bone")

#: NIST mass attenuation coefficients μ/ρ (cm²/g, with coherent scattering), Hubbell & Seltzer, NISTIR 5632
#: (tables 4 and 3): air (dry, near sea level), tissue soft (ICRU-44), bone cortical (ICRU-44), Al. The
#: soft-tissue row once held skeletal muscle's 15-50 keV values (up to 0.5 % off); tests pin the table.
_E_KEV = np.array([10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0])
_MU_RHO = {
    "air": np.array([5.120, 1.614, 0.7779, 0.3538, 0.2485, 0.2080, 0.1875, 0.1662, 0.1541, 0.1356]),
    "soft_tissue": np.array([5.379, 1.699, 0.8230, 0.3790, 0.2688, 0.2264, 0.2048, 0.1823, 0.1693, 0.1492]),
    "bone": np.array([28.51, 9.032, 4.001, 1.331, 0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480]),
    "aluminium": np.array([26.23, 7.955, 3.441, 1.128, 0.5685, 0.3681, 0.2778, 0.2018, 0.1704, 0.1378]),
}
_RHO_AL = 2.699  # g/cm³
#: X-ray quanta per mm² per µGy air kerma for an RQA5 beam (IEC 62220-1 table 3: 29 653).
QUANTA_PER_MM2_PER_UGY = 29653.0
#: Transmission of a lead side marker (≈1 mm Pb at diagnostic energies lets almost nothing through).
_MARKER_TRANSMISSION = 0.02

#: Preset keys: numeric ones with their allowed interval, choice ones with their words.
NUMERIC: dict[str, tuple[float, float]] = {
    "kvp": (40.0, 150.0),
    "filtration_mm_al": (0.0, 10.0),
    "air_max_hu": (-1000.0, 0.0),
    "bone_min_hu": (0.0, 3000.0),
    "detector_kerma_ugy": (0.01, 1000.0),
    "dqe": (0.01, 1.0),
    "electronic_noise_quanta": (0.0, 1000.0),
    "scatter_to_primary": (0.0, 20.0),
    "scatter_sigma_mm": (1.0, 500.0),
    "focal_spot_mm": (0.0, 3.0),
    "detector_sigma_mm": (0.0, 5.0),
    "glare_fraction": (0.0, 0.9),
    "glare_gamma_mm": (0.01, 100.0),
    "heel": (0.0, 0.9),
    "window_low_pct": (0.0, 50.0),
    "window_high_pct": (50.0, 100.0),
    "lut_gamma": (0.1, 10.0),
    "lut_sigmoid_gain": (0.1, 50.0),
    "drc_amount": (0.0, 1.0),
    "drc_sigma_mm": (1.0, 200.0),
    "unsharp_amount": (0.0, 5.0),
    "unsharp_sigma_mm": (0.1, 100.0),
    "collimation": (0.0, 0.3),
    "marker": (0.0, 1.0),
    "collimator_mm": (20.0, 1000.0),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "lut": ("linear", "gamma", "sigmoid"),
    "cathode_side": ("top", "bottom", "left", "right"),
}
#: Names of the shipped presets (``configs/ct/realism/<name>.yaml``).
SHIPPED = ("off", "physics", "randomized")


@dataclass(frozen=True)
class RealismPreset:
    """A validated realism preset: each key's fixed value, ``(low, high)`` range or tuple of choices.

    Attributes:
        name: Preset name or file name, for records.
        enabled: ``False`` for ``off`` (DRRs stay the plain percentile window).
        values: Key → number, ``(low, high)`` or tuple of words (every key of :data:`NUMERIC` and :data:`CHOICES`).
    """

    name: str
    enabled: bool
    values: Mapping[str, Any]


def _preset_file(name_or_path: str | Path) -> Path:
    from yolo_spine.resources import configs_dir

    text = str(name_or_path)
    if text in SHIPPED:
        return configs_dir() / "ct" / "realism" / f"{text}.yaml"
    path = Path(text)
    if not path.is_file():
        raise UserError(
            f"realism preset {text!r} (--realism, realism.preset) is neither a shipped preset "
            f"({', '.join(SHIPPED)}) nor an existing YAML file"
        )
    return path


def load_preset(name_or_path: str | Path | bool | None) -> RealismPreset:
    """Read and check a realism preset (``off``, ``physics``, ``randomized`` or a YAML file).

    A user's file may set ``base: physics|randomized`` (default ``physics``) and override only some keys.

    Raises:
        UserError: An unknown preset or key, a value outside its interval, a reversed range, an unknown word.
    """
    from yolo_spine.options import read_yaml

    if name_or_path in (None, False):  # YAML 1.1 reads an unquoted `off` as false
        name_or_path = "off"
    path = _preset_file(str(name_or_path))
    raw = read_yaml(path)
    where = f"realism preset {path.name}"
    if not isinstance(raw.get("enabled", True), bool):
        raise UserError(f"{where}: enabled must be true or false, not {raw['enabled']!r}")
    enabled = bool(raw.get("enabled", True))
    base = raw.get("base")
    values: dict[str, Any] = {}
    if base is not None:
        if base not in ("physics", "randomized") or str(name_or_path) in SHIPPED:
            raise UserError(f"{where}: base must be physics or randomized, not {base!r}")
        values = dict(load_preset(base).values)
    elif enabled and str(name_or_path) not in SHIPPED:
        values = dict(load_preset("physics").values)
    for key, value in raw.items():
        if key in ("enabled", "base"):
            continue
        values[key] = _check_value(key, value, where)
    missing = [k for k in (*NUMERIC, *CHOICES) if k not in values]
    if enabled and missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    fixed = [k for k in ("air_max_hu", "bone_min_hu") if isinstance(values.get(k), tuple)]
    if fixed:
        raise UserError(f"{where}: {fixed[0]} must be one number (the material volumes are built once per study)")
    if enabled:
        lo, hi = _hi(values["window_low_pct"]), _lo(values["window_high_pct"])
        if lo >= hi:
            raise UserError(f"{where}: window_low_pct must stay below window_high_pct")
    return RealismPreset(
        name=str(name_or_path) if str(name_or_path) in SHIPPED else path.name, enabled=enabled, values=values
    )


def _lo(v: Any) -> float:
    return float(v[0]) if isinstance(v, tuple) else float(v)


def _hi(v: Any) -> float:
    return float(v[1]) if isinstance(v, tuple) else float(v)


def _check_value(key: str, value: Any, where: str) -> Any:
    """A numeric key's number or ordered ``(low, high)``, or a choice key's tuple of words, checked."""
    from yolo_spine.options import suggest

    if key in CHOICES:
        words = (value,) if isinstance(value, str) else value
        if not isinstance(words, (list, tuple)) or not words or any(w not in CHOICES[key] for w in words):
            raise UserError(f"{where}: {key} must be one or a list of {', '.join(CHOICES[key])}, not {value!r}")
        return tuple(words)
    if key not in NUMERIC:
        raise UserError(f"{where}: unknown key {key!r}{suggest(key, [*NUMERIC, *CHOICES, 'enabled', 'base'])}")
    lo, hi = NUMERIC[key]

    def number(x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not lo <= x <= hi:
            raise UserError(f"{where}: {key} must be a number in [{lo:g}, {hi:g}] or a [low, high] pair, not {value!r}")
        return float(x)

    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise UserError(f"{where}: {key} must be a number or a [low, high] pair, not {value!r}")
        a, b = number(value[0]), number(value[1])
        if a > b:
            raise UserError(f"{where}: {key} range [{a:g}, {b:g}] has low above high")
        return (a, b)
    return number(value)


def image_rng(seed: int, stem: str) -> np.random.Generator:
    """The generator of one image's draws: the same ``(seed, stem)`` gives the same draws on every machine."""
    digest = hashlib.sha256(f"realism/{int(seed)}/{stem}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def draw_parameters(preset: RealismPreset, rng: np.random.Generator) -> dict[str, Any]:
    """One image's parameters: fixed values as given, ranges drawn uniformly, choices drawn evenly.

    Every key consumes the generator in the same order whatever its value, so changing one range leaves the
    other keys' draws unchanged. ``collimation`` is drawn per side (``collimation_left/right/top/bottom``) and
    ``marker`` (a probability) becomes a yes/no.
    """
    out: dict[str, Any] = {}
    for key in NUMERIC:
        v = preset.values[key]
        n = 4 if key == "collimation" else 1
        u = rng.random(n)
        x = v[0] + u * (v[1] - v[0]) if isinstance(v, tuple) else np.full(n, float(v))
        if key == "collimation":
            for side, val in zip(("left", "right", "top", "bottom"), x, strict=True):
                out[f"collimation_{side}"] = float(val)
        elif key == "marker":
            out["marker"] = bool(rng.random() < x[0])
        else:
            out[key] = float(x[0])
    for key in CHOICES:
        words = preset.values[key]
        out[key] = str(words[int(rng.integers(len(words)))])
    return out


def material_densities(image_hu: np.ndarray, air_max_hu: float = -800.0, bone_min_hu: float = 350.0) -> np.ndarray:
    """Mass density (g/cm³) of each material per voxel: ``(3, ...)`` float32 in :data:`MATERIALS` order.

    Density from HU, bilinear after Schneider et al. (2000): ``ρ = 1 + HU/1000`` up to water (air-water
    mixtures; at least 0.0012, air) and ``ρ = 1 + 0.0006·HU`` above (tissue-bone mixtures; cortical bone at
    1500 HU → 1.9 g/cm³, ICRU-44 1.92). The material (HU thresholds as DeepDRR's default segmentation) only
    selects which μ/ρ the density is attenuated with. Channel-first, so each material is one contiguous volume.
    """
    hu = np.asarray(image_hu)
    out = np.zeros((len(MATERIALS), *hu.shape), np.float32)
    flat_hu, flat_out = hu.reshape(-1), out.reshape(len(MATERIALS), -1)
    chunk = 1 << 21  # a few MB of temporaries at a time
    for a in range(0, flat_hu.size, chunk):
        x = flat_hu[a : a + chunk].astype(np.float32, copy=False)
        rho = _density(x)
        air, bone = x < air_max_hu, x >= bone_min_hu
        np.multiply(rho, air, out=flat_out[0, a : a + chunk])
        np.multiply(rho, bone, out=flat_out[2, a : a + chunk])
        rho[air | bone] = 0.0
        flat_out[1, a : a + chunk] = rho
    return out


def _density(x: np.ndarray) -> np.ndarray:
    """Mass density (g/cm³, float32) of HU values, the bilinear model of :func:`material_densities`."""
    x = x.astype(np.float32, copy=False)
    rho = np.multiply(x, np.float32(0.0006))
    np.multiply(x, np.float32(0.001), out=rho, where=x <= 0.0)  # the same products as choosing after both
    rho += np.float32(1.0)
    return np.maximum(rho, np.float32(0.0012), out=rho)


def material_slab_sums(
    image_hu: np.ndarray, axis: int, max_planes: int, air_max_hu: float = -800.0, bone_min_hu: float = 350.0
) -> tuple[np.ndarray, np.ndarray]:
    """``shearwarp.slab_sums`` of each :func:`material_densities` volume, channels last, straight from HU.

    The same sums without building the material volumes: the CT is read in blocks of whole ``k`` slices
    (contiguous memory), each block turned into densities once and summed along ``axis`` into the slabs, so a
    realistic DRR costs about one pass over the CT per view axis, as a clean one does, instead of three
    material volumes and three slab passes.

    Args:
        image_hu: CT in HU, ``(k, j, i)``.
        axis: Voxel axis (ijk) the slabs stack along (``shearwarp.stacking_axis``).
        max_planes: Most slabs (``shearwarp.slab_sums``).
        air_max_hu: Below: air.
        bone_min_hu: At and above: bone.

    Returns:
        ``(slabs, centres)`` as :func:`yolo_spine.ct.shearwarp.slab_sums` gives them, slabs ``(n, rows, cols, 3)``
        float32 in :data:`MATERIALS` order.
    """
    return material_slab_sums_axes(image_hu, [axis], max_planes, air_max_hu, bone_min_hu)[int(axis)]


def material_slab_sums_axes(
    image_hu: np.ndarray,
    axes: Sequence[int],
    max_planes: int,
    air_max_hu: float = -800.0,
    bone_min_hu: float = 350.0,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """:func:`material_slab_sums` for several view axes in ONE pass over the CT: ``{axis: (slabs, centres)}``.

    Turning HU into densities and materials is most of the work (the sums are cheap), so an AP and a lateral
    view (two axes) cost one density pass instead of two. Each axis's sums are the same numbers, bit for bit,
    as :func:`material_slab_sums` of that axis alone (same blocks of whole slabs, same order of additions).
    """
    hu = np.asarray(image_hu)
    plans = {}
    for axis in dict.fromkeys(int(a) for a in axes):
        along = 2 - axis  # voxel axis i, j, k → axis of the (k, j, i) array
        n = hu.shape[along]
        group = max(1, -(-n // max(1, int(max_planes))))
        starts = np.arange(0, n, group)
        centres = (starts + np.minimum(starts + group, n) - 1) / 2.0
        plane = [d for a, d in enumerate(hu.shape) if a != along]
        plans[axis] = (along, group, starts, centres, np.empty((len(starts), *plane, len(MATERIALS)), np.float32))
    along_k = [plan[1] for plan in plans.values() if plan[0] == 0]
    # along k: whole slabs per block; otherwise a few slices, so the block's temporaries stay in cache
    block = along_k[0] * max(1, 4 // along_k[0]) if along_k else 2
    zero = np.float32(0.0)
    for a in range(0, hu.shape[0], block):
        x = hu[a : a + block].astype(np.float32, copy=False)
        rho = _density(x)
        air, bone = np.where(x < air_max_hu, rho, zero), np.where(x >= bone_min_hu, rho, zero)
        for along, group, _, _, out in plans.values():
            # blocks along k start at a multiple of the group, so their runs are the slabs' own
            total, air_s, bone_s = (
                np.moveaxis(shearwarp.group_sums(v, group, along), along, 0) for v in (rho, air, bone)
            )
            # along k: this block's slabs; otherwise its rows of every slab, (slabs, block rows, cols)
            dest = out[a // group : a // group + total.shape[0]] if along == 0 else out[:, a : a + x.shape[0]]
            dest[..., 0] = air_s
            dest[..., 2] = bone_s
            np.subtract(total, air_s, out=total)
            np.subtract(total, bone_s, out=dest[..., 1])
    return {axis: (plan[4], plan[3]) for axis, plan in plans.items()}


def mu_rho(material: str, energies_kev: np.ndarray) -> np.ndarray:
    """Mass attenuation coefficient (cm²/g) of a material at the given energies (log-log interpolation)."""
    e = np.clip(np.asarray(energies_kev, float), _E_KEV[0], _E_KEV[-1])
    return np.exp(np.interp(np.log(e), np.log(_E_KEV), np.log(_MU_RHO[material])))


def spectrum(kvp: float, filtration_mm_al: float, step_kev: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Energy bins (keV) and detector weights of a filtered tungsten spectrum (Kramers' law).

    Photon fluence ``N(E) ∝ (kVp − E)/E``, times the aluminium filter's transmission; the weights are the
    energy an energy-integrating detector absorbs per bin, ``N(E)·E``, normalised to sum to 1. Characteristic
    tungsten lines (≈ 59–69 keV) are left out: after filtration they carry a few per cent of the energy.
    """
    e = np.arange(10.0 + step_kev / 2.0, kvp, step_kev)
    fluence = (kvp - e) / e * np.exp(-mu_rho("aluminium", e) * _RHO_AL * filtration_mm_al / 10.0)
    w = fluence * e
    return e, w / w.sum()


def transmission(mass_g_cm2: np.ndarray, kvp: float, filtration_mm_al: float) -> np.ndarray:
    """Detector-weighted transmission ``Σ_E w(E) exp(−Σ_m (μ/ρ)_m(E) t_m)`` of ``(h, w, 3)`` mass thicknesses."""
    e, w = spectrum(kvp, filtration_mm_al)
    mus = np.stack([mu_rho(m, e) for m in MATERIALS], axis=1).astype(np.float32)  # (bins, 3)
    t = mass_g_cm2.reshape(-1, len(MATERIALS)).astype(np.float32)
    out = np.zeros(t.shape[0], np.float64)
    for wi, mu in zip(w, mus, strict=True):
        out += wi * np.exp(-(t @ mu))
    return out.reshape(mass_g_cm2.shape[:2]).astype(np.float32)


@dataclass
class RealismResult:
    """One realistic radiograph.

    Attributes:
        pixels: ``(h, w)`` uint8, bone bright.
        visible: ``(h, w)`` bool, pixels where anatomy still shows (inside the collimator window, off the marker).
        record: Drawn parameters and derived quantities, for the sidecar.
    """

    pixels: np.ndarray
    visible: np.ndarray
    record: dict[str, Any]


def _smooth(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing for wide kernels: on a reduced copy (scatter is low-frequency), reflected borders."""
    import cv2

    h, w = img.shape
    f = max(1, int(sigma_px // 8))
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else img
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(sigma_px / f, 0.3), borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else small


def scatter_field(primary: np.ndarray, t: np.ndarray, body: np.ndarray, spr: float, sigma_px: float) -> np.ndarray:
    """Scatter reaching the detector: the primary times its attenuation ``−ln t``, spread by a broad Gaussian.

    A scatter-kernel-superposition model (Ohnesorge et al., Eur. Radiol. 9:563, 1999; Sun & Star-Lack, Phys.
    Med. Biol. 55:6695, 2010): each ray scatters in proportion to the primary it carries and the attenuation it
    met, so rays that miss the body (``t = 1``) scatter nothing, and thick parts scatter more. The amplitude is
    set so that the median scatter-to-primary ratio over the body is ``spr`` (the preset's parameter).
    Smoothing the bare primary instead would let the unattenuated beam beside the body "scatter" onto its edges
    at tens of times the body's own signal, washing them out.

    Args:
        primary: ``(h, w)`` primary quanta per pixel.
        t: ``(h, w)`` transmission of each ray.
        body: ``(h, w)`` bool, pixels the body covers.
        spr: Median scatter-to-primary ratio over the body.
        sigma_px: Width of the scatter kernel in pixels.
    """
    if spr <= 0:
        return np.zeros_like(primary, dtype=np.float32)
    source = primary * (-np.log(np.clip(t, 1e-12, 1.0))).astype(np.float32)
    spread = _smooth(source.astype(np.float32), sigma_px)
    inside = body & (primary > 0)
    if not inside.any():
        return np.zeros_like(primary, dtype=np.float32)
    ratio = float(np.median(spread[inside] / primary[inside]))
    return (spread * (spr / ratio)).astype(np.float32) if ratio > 0 else np.zeros_like(primary, dtype=np.float32)


def mtf_blur(img: np.ndarray, pixel_mm: float, sigma_mm: float, glare_fraction: float, glare_gamma_mm: float):
    """Apply the MTF ``(1 − g)·exp(−2π²σ²f²) + g·exp(−2πγf)`` (f in cycles/mm) by FFT on a reflected pad."""
    if sigma_mm <= 0 and glare_fraction <= 0:
        return img.astype(np.float32)
    pad = min(64, *img.shape)
    padded = np.pad(img.astype(np.float64), pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0], d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(padded.shape[1], d=pixel_mm)[None, :]
    f2 = fx**2 + fy**2
    mtf = (1.0 - glare_fraction) * np.exp(-2.0 * np.pi**2 * sigma_mm**2 * f2)
    mtf += glare_fraction * np.exp(-2.0 * np.pi * glare_gamma_mm * np.sqrt(f2))
    out = np.fft.irfft2(np.fft.rfft2(padded) * mtf, s=padded.shape)
    return out[pad:-pad, pad:-pad].astype(np.float32)


def _heel_field(shape: tuple[int, int], heel: float, cathode_side: str) -> np.ndarray:
    """Relative incident intensity: ``1 + heel/2`` at the cathode edge falling linearly to ``1 − heel/2``."""
    h, w = shape
    if cathode_side in ("top", "bottom"):
        s = (np.arange(h, dtype=np.float32) + 0.5) / h
        s = s if cathode_side == "bottom" else 1.0 - s
        ramp = s[:, None] * np.ones((1, w), np.float32)
    else:
        s = (np.arange(w, dtype=np.float32) + 0.5) / w
        s = s if cathode_side == "right" else 1.0 - s
        ramp = np.ones((h, 1), np.float32) * s[None, :]
    return 1.0 - heel / 2.0 + heel * ramp


def _marker_mask(
    shape: tuple[int, int], window: tuple[int, int, int, int], text: str, pixel_mm: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """A lead letter (≈ 12 mm high) in a corner of the collimator window; its mask and box ``[x0, y0, x1, y1]``."""
    import cv2

    x0, y0, x1, y1 = window
    height_px = max(6, round(12.0 / pixel_mm))
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, height_px, 2)
    thick = max(1, height_px // 6)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    gap = max(2, height_px // 3)
    corner = int(rng.integers(4))
    left = x0 + gap if corner in (0, 2) else x1 - gap - tw
    top = y0 + gap if corner in (0, 1) else y1 - gap - th
    mask = np.zeros(shape, np.uint8)
    cv2.putText(mask, text, (int(left), int(top + th)), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, thick, cv2.LINE_AA)
    box = [
        max(int(left) - thick, 0),
        max(int(top) - thick, 0),
        min(int(left + tw) + thick, shape[1]),
        min(int(top + th) + 2 * thick, shape[0]),
    ]
    return mask.astype(bool), box


@dataclass
class DetectorImage:
    """The detector's raw signal of one view, before the clinical look.

    Attributes:
        signal: ``(h, w)`` float32 detected quanta per pixel (blurred, with electronic noise).
        expected: ``(h, w)`` float32 mean quanta per pixel (primary + scatter), before noise and blur.
        open_quanta: Quanta per pixel of the unattenuated beam (the log transform's reference).
        visible: ``(h, w)`` bool, pixels where anatomy still shows.
        body: ``(h, w)`` bool, pixels the body covers (transmission below 0.98).
        record: Drawn parameters and derived quantities.
        field: ``(h, w)`` bool, the collimator window (the exposed field); all True without collimation.
        profile: ``(h, w)`` float32, the share of the primary the collimator lets through (its edges' penumbra).
    """

    signal: np.ndarray
    expected: np.ndarray
    open_quanta: float
    visible: np.ndarray
    body: np.ndarray
    record: dict[str, Any]
    field: np.ndarray | None = None
    profile: np.ndarray | None = None


def detector_image(
    mass_mm: np.ndarray,
    params: Mapping[str, Any],
    pixel_mm: float,
    magnification: float,
    marker_text: str,
    rng: np.random.Generator,
    source_sigma_mm: float = 0.0,
    sdd_mm: float | None = None,
) -> DetectorImage:
    """Simulate the detector signal of one view from its material line integrals.

    Args:
        mass_mm: ``(h, w, 3)`` line integrals of each material's density (g/cm³·mm), :data:`MATERIALS` order
            (``Renderer.render_materials``).
        params: One image's parameters (:func:`draw_parameters`).
        pixel_mm: Detector pixel pitch (mm at the detector plane).
        magnification: Source-detector over source-isocentre distance (1 for parallel beams): scales the
            focal spot's geometric unsharpness.
        marker_text: Letter of the side marker (``R`` or ``L``).
        rng: The image's generator (after :func:`draw_parameters`): noise and marker corner.
        source_sigma_mm: Unsharpness the line integrals already carry, as a Gaussian σ at the detector plane
            (the CT voxel's footprint, :func:`ct_footprint_sigma_mm`). A real radiograph images sharp anatomy
            through the detector's blur alone; a DRR images the CT, already blurred by its voxels. So only what
            the detector adds beyond that is applied, in quadrature: ``sqrt(max(σ_det² − σ_source², 0))``.
        sdd_mm: Source-detector distance, for the collimator edge's penumbra (``None``: a parallel beam, whose
            collimator edge is sharp).
    """
    p = params
    h, w = mass_mm.shape[:2]
    t = transmission(mass_mm / 10.0, p["kvp"], p["filtration_mm_al"])  # g/cm³·mm → g/cm²
    body = t < 0.98
    t_ref = float(np.median(t[body])) if body.sum() > 0.01 * t.size else 1.0
    # AEC: the kerma behind the body's median pixel is detector_kerma_ugy
    quanta_ref = p["detector_kerma_ugy"] * QUANTA_PER_MM2_PER_UGY * pixel_mm**2 * p["dqe"]
    open_quanta = quanta_ref / max(t_ref, 1e-6)
    cl = [round(p[f"collimation_{s}"] * n) for s, n in (("left", w), ("top", h), ("right", w), ("bottom", h))]
    window = (cl[0], cl[1], max(w - cl[2], cl[0] + 1), max(h - cl[3], cl[1] + 1))
    field = _heel_field((h, w), p["heel"], p["cathode_side"])
    collimated = np.zeros((h, w), np.float32)
    collimated[window[1] : window[3], window[0] : window[2]] = 1.0
    penumbra_mm = _collimator_penumbra_mm(p["focal_spot_mm"], p["collimator_mm"], sdd_mm)
    profile = _field_profile((h, w), window, cl, penumbra_mm / pixel_mm)
    primary = open_quanta * t * field * profile
    # the ratio is set over the body inside the window (the penumbra's tails carry almost no primary)
    in_window = body & (collimated > 0)
    scatter = scatter_field(primary, t, in_window, p["scatter_to_primary"], p["scatter_sigma_mm"] / pixel_mm)
    expected = primary + scatter
    visible = collimated.astype(bool)
    record: dict[str, Any] = {**p}
    if p["marker"]:
        mask, box = _marker_mask((h, w), window, marker_text, pixel_mm, rng)
        expected = np.where(mask, expected * _MARKER_TRANSMISSION, expected)
        visible[box[1] : box[3], box[0] : box[2]] = False
        record.update(marker_text=marker_text, marker_box_xyxy=box)
    counts = rng.poisson(np.maximum(expected, 0.0)).astype(np.float32)
    sigma_fs = p["focal_spot_mm"] * max(magnification - 1.0, 0.0) / 2.355  # FWHM → σ
    sigma = float(np.hypot(p["detector_sigma_mm"], sigma_fs))
    added = float(np.sqrt(max(sigma**2 - float(source_sigma_mm) ** 2, 0.0)))
    signal = mtf_blur(counts, pixel_mm, added, p["glare_fraction"], p["glare_gamma_mm"])
    signal += rng.normal(0.0, p["electronic_noise_quanta"], signal.shape).astype(np.float32)
    e, wts = spectrum(p["kvp"], p["filtration_mm_al"])
    record.update(
        collimator_window_xyxy=list(window),
        mean_energy_kev=round(float((e * wts).sum()), 2),
        open_field_quanta_per_px=round(float(open_quanta), 1),
        body_median_transmission=round(t_ref, 5),
        blur_sigma_mm=round(sigma, 4),
        source_sigma_mm=round(float(source_sigma_mm), 4),
        added_blur_sigma_mm=round(added, 4),
        collimator_penumbra_mm=round(penumbra_mm, 3),
        pixel_mm=round(float(pixel_mm), 5),
    )
    field_mask = collimated.astype(bool)
    return DetectorImage(
        signal, expected.astype(np.float32), float(open_quanta), visible, body, record, field_mask, profile
    )


def ct_footprint_sigma_mm(spacing_xyz: Sequence[float], magnification: float) -> float:
    """Gaussian σ (mm at the detector) of the finest CT voxel edge projected there: ``min(spacing)·m/√12``.

    A voxel is a box; its width ``d`` blurs like a Gaussian of σ = d/√12. The finest spacing is used, so the
    estimate errs toward adding detector blur (the CT's reconstruction kernel and coarser axes blur more).
    """
    return float(min(float(s) for s in spacing_xyz)) * float(magnification) / float(np.sqrt(12.0))


def _collimator_penumbra_mm(focal_spot_mm: float, collimator_mm: float, sdd_mm: float | None) -> float:
    """Geometric unsharpness of the collimator's edge at the detector: ``focal spot · (SDD − d_c)/d_c``.

    The blades sit close to the focal spot (``collimator_mm`` from it), so their edge is magnified about
    ``SDD/d_c`` times as much as anatomy's: borders soft over several millimetres, not a pixel-sharp step.
    """
    if sdd_mm is None or collimator_mm >= sdd_mm:
        return 0.0
    return float(focal_spot_mm) * (float(sdd_mm) - float(collimator_mm)) / float(collimator_mm)


def _field_profile(
    shape: tuple[int, int], window: tuple[int, int, int, int], sides: Sequence[int], penumbra_px: float
) -> np.ndarray:
    """Share of the primary that passes the collimator: 1 inside, an error-function ramp across each closed side.

    ``penumbra_px`` is the ramp's FWHM; the nominal edge (the window's pixel edge) passes half. Sides the
    collimator does not close (``sides`` 0, in left, top, right, bottom order) stay open.
    """
    from scipy.special import ndtr

    h, w = shape
    sigma = penumbra_px / 2.355
    prof = []
    for n, lo, hi, lo_closed, hi_closed in (
        (w, window[0], window[2], sides[0], sides[2]),
        (h, window[1], window[3], sides[1], sides[3]),
    ):
        x = np.arange(n, dtype=np.float64)
        if sigma > 0:
            a = ndtr((x - (lo - 0.5)) / sigma) if lo_closed else np.ones(n)
            b = ndtr(((hi - 0.5) - x) / sigma) if hi_closed else np.ones(n)
            prof.append(a * b)
        else:
            prof.append(((x >= lo) & (x < hi)).astype(np.float64))
    return (prof[1][:, None] * prof[0][None, :]).astype(np.float32)


def clinical_look(det: DetectorImage, params: Mapping[str, Any], pixel_mm: float) -> np.ndarray:
    """Log transform, dynamic range compression, window on the body, unsharp mask and look-up curve: 8-bit, bone bright.

    Dynamic range compression subtracts ``drc_amount`` of the log image's large-scale trend (a Gaussian of
    ``drc_sigma_mm``), as CR/DR processing flattens body thickness so bone and lung show in one window.
    Like that processing's exposure-field recognition, everything works on the collimator window only: outside
    it (no primary, only scatter and electronic noise) the image is shown white, as an unexposed plate is;
    letting the trend reach there would pull that noise back into the display range.
    """
    p = params
    field = det.field if det.field is not None else np.ones(det.signal.shape, bool)
    log_img = -np.log(np.maximum(det.signal, 0.5) / det.open_quanta)  # attenuation: bone bright
    roi = det.visible & det.body
    roi = roi if roi.sum() > 0.01 * roi.size else det.visible
    centre = float(np.median(log_img[roi]))
    outside = ~field
    if outside.any():
        log_img = np.where(field, log_img, centre)  # neutral, so the trend and the unsharp mask ignore it
    if p["drc_amount"] > 0:
        trend = _smooth(log_img.astype(np.float32), p["drc_sigma_mm"] / pixel_mm)
        log_img = log_img - p["drc_amount"] * (trend - centre)
    lo, hi = np.percentile(log_img[roi], [p["window_low_pct"], p["window_high_pct"]])
    x = np.clip((log_img - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
    if p["unsharp_amount"] > 0:
        x = np.clip(x + p["unsharp_amount"] * (x - _smooth(x, p["unsharp_sigma_mm"] / pixel_mm)), 0.0, 1.0)
    x = look_up(x, p["lut"], p["lut_gamma"], p["lut_sigmoid_gain"])
    if outside.any():  # white outside, reached across the edge's penumbra (a hard step without one)
        share = det.profile if det.profile is not None else field.astype(np.float32)
        x = share * x + (1.0 - share)
    return (x * 255.0 + 0.5).astype(np.uint8)


def apply_realism(
    mass_mm: np.ndarray,
    params: Mapping[str, Any],
    pixel_mm: float,
    magnification: float,
    marker_text: str,
    rng: np.random.Generator,
    source_sigma_mm: float = 0.0,
    sdd_mm: float | None = None,
) -> RealismResult:
    """The realistic radiograph of one view: :func:`detector_image` then :func:`clinical_look` (same arguments)."""
    det = detector_image(mass_mm, params, pixel_mm, magnification, marker_text, rng, source_sigma_mm, sdd_mm)
    return RealismResult(pixels=clinical_look(det, params, pixel_mm), visible=det.visible, record=det.record)


def look_up(x: np.ndarray, lut: str, gamma: float, gain: float) -> np.ndarray:
    """Display curve on ``[0, 1]``: ``linear``, ``gamma`` (``x^γ``) or ``sigmoid`` (film-like S curve, ends fixed)."""
    if lut == "gamma":
        return np.power(x, gamma)
    if lut == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-gain * (x - 0.5)))
        a, b = 1.0 / (1.0 + np.exp(gain / 2.0)), 1.0 / (1.0 + np.exp(-gain / 2.0))
        return (s - a) / (b - a)
    return x
