"""Keyed, deterministic replacements: UIDs, patient pseudonyms, per-patient date shifts.

Everything is an HMAC-SHA256 under a key derived from one per-project secret that the
key provider holds (``KeyProvider.secret("dicom-pseudonym-key")``), so the same input
gets the same output across uploads, processes and restarts, and nobody without the
secret can recompute or reverse it. Each use has its own derived key (a UID and a
patient id that happen to be equal strings still map to unrelated values).

* UIDs become ``2.25.<decimal>`` (PS3.5 B.2: a UUID-derived UID): the first 128 bits of
  the MAC as an unsigned integer, at most 44 characters.
* Patient ids become ``ANON-`` + 16 base-32 characters (80 bits: collisions are not a
  practical concern for any one project).
* The date shift is a whole number of days in the policy's range plus a number of
  seconds, both keyed on the patient, so every date and time of one patient moves by the
  same amount and intervals survive (Retain Longitudinal Temporal Information with
  Modified Dates).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

SECRET_NAME = "dicom-pseudonym-key"  # noqa: S105 - a name, not a secret
UID_ROOT = "2.25."
PSEUDONYM_PREFIX = "ANON-"


class Pseudonymizer:
    def __init__(self, secret: bytes, shift_days: tuple[int, int] = (-3650, -365)) -> None:
        if len(secret) < 16:
            raise ValueError("the pseudonym secret must be at least 16 bytes")
        self._uid_key = self._derive(secret, b"uid")
        self._patient_key = self._derive(secret, b"patient-id")
        self._shift_key = self._derive(secret, b"date-shift")
        self._shift_days = shift_days
        self._uids: dict[str, str] = {}

    @staticmethod
    def _derive(secret: bytes, label: bytes) -> bytes:
        return hmac.new(secret, b"gateway/dicom/" + label, hashlib.sha256).digest()

    def uid(self, old: str) -> str:
        old = old.strip().rstrip("\x00")
        new = self._uids.get(old)
        if new is None:
            mac = hmac.new(self._uid_key, old.encode("ascii", "replace"), hashlib.sha256).digest()
            new = UID_ROOT + str(int.from_bytes(mac[:16], "big"))
            self._uids[old] = new
        return new

    def patient_id(self, old: str) -> str:
        mac = hmac.new(self._patient_key, old.strip().encode("utf-8"), hashlib.sha256).digest()
        return PSEUDONYM_PREFIX + base64.b32encode(mac[:10]).decode("ascii")

    def date_shift(self, patient_key: str) -> timedelta:
        mac = hmac.new(self._shift_key, patient_key.strip().encode("utf-8"),
                       hashlib.sha256).digest()
        low, high = self._shift_days
        days = low + int.from_bytes(mac[:4], "big") % (high - low + 1)
        seconds = 1 + int.from_bytes(mac[4:8], "big") % 86399  # never 0: times must change
        return timedelta(days=days, seconds=seconds)
