"""What every ECG format shares: the 12 lead names, the 500 Hz target, amplitude units and the error a
reader raises. Its own module so that the format readers (`ecg_xml`, `ecg_dicom`) and the dispatcher
(`ecg.read_ecg`) all import it and none of them imports another."""

from __future__ import annotations

import re

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
TARGET_RATE = 500
TARGET_SAMPLES = 5000  # 10 s
# Source seconds read past a 10-s cut, so that the resampler's edge sees real signal after the cut
# (polyphase's filter spans a few dozen source samples). FFT resampling depends on the whole record:
# with it, a record is resampled whole and cut after.
CUT_MARGIN_S = 0.5
MAX_SECONDS = 3600.0  # a whole record longer than this (a 24-h Holter: 4 GB as float64) is refused
WHOLE_HINT = " read whole; use encoder.length 10s"
_TO_MV = {"uv": 1e-3, "microvolts": 1e-3, "mv": 1.0, "millivolts": 1.0, "v": 1e3, "volts": 1e3}
_CANONICAL = {name.upper(): name for name in LEADS}
# Modified limb leads of Holter/monitoring records (MIT-BIH's MLII) stand in for the limb lead.
_ALIASES = {"MLI": "I", "MLII": "II", "MLIII": "III", "D1": "I", "D2": "II", "D3": "III"}


class EcgReadError(RuntimeError):
    """A file that parsed but holds no usable ECG."""


def mv_per_unit(unit: str | None) -> float | None:
    """Millivolts per unit of an amplitude unit as ECG files spell it (UCUM `uV`, MUSE `MICROVOLTS`);
    None for a unit that is not a voltage."""
    return _TO_MV.get((unit or "").strip().lower().replace("µ", "u"))


def to_mv(unit: str | None, where: str) -> float:
    """`mv_per_unit`, or an error naming the unit."""
    factor = mv_per_unit(unit)
    if factor is None:
        raise EcgReadError(f"{where}: amplitude unit {unit!r} is not a voltage (uV, mV, V)")
    return factor


def canonical_lead(name: str) -> str | None:
    key = re.sub(r"[\s_-]", "", name).upper()
    return _CANONICAL.get(_ALIASES.get(key, key))
