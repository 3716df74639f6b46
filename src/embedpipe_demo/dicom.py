"""Demo echo studies as DICOM cine loops, the way MIMIC-IV-Echo ships them (US Multi-frame Image
Storage), with a made-up patient in the header: the demo's outputs must never show it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedpipe.store.atomic import atomic_path

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_SINGLE = "1.2.840.10008.5.1.4.1.1.6.1"
DEMO_PATIENT = {"PatientName": "Demopatient^Echo^Q", "PatientID": "DEMO-MRN-4711", "PatientBirthDate": "21500101"}


def write_dicom_cine(path: Path, frames: np.ndarray, fps: float, compressed: bool, key: str) -> None:
    """uint8 RGB `[T, H, W, 3]` as one DICOM file: RLE Lossless (`compressed`) or Explicit VR Little
    Endian; UIDs derived from `key`, so the same demo is the same bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    single = frames.shape[0] == 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_SINGLE if single else US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[key, "instance"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key.rsplit("/", 1)[0]])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, "series"])
    ds.Modality, ds.StudyDescription = "US", "Echocardiogram"
    for keyword, value in DEMO_PATIENT.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if not single:
        ds.NumberOfFrames = frames.shape[0]
        ds.FrameTime = f"{1000.0 / fps:.3f}"
        ds.FrameIncrementPointer = 0x00181063  # (0018,1063) FrameTime
    pixels = np.ascontiguousarray(frames[0] if single else frames)
    if compressed:
        ds.compress(RLELossless, pixels)
    else:
        ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
