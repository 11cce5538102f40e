"""DICOM de-identification: PS3.15 Table E.1-1 on headers, OCR and face masking on pixels."""

from gateway.anonymize.dicom.engine import (
    HEAD,
    DicomResult,
    anonymize_dicom,
    looks_like_dicom,
    read_dataset,
)
from gateway.anonymize.dicom.pseudonyms import SECRET_NAME, Pseudonymizer

__all__ = ["HEAD", "SECRET_NAME", "DicomResult", "Pseudonymizer", "anonymize_dicom",
           "looks_like_dicom", "read_dataset"]
