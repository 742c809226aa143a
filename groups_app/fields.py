"""Model fields of Group Admin's own."""

from __future__ import annotations

import base64
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)


def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"group-admin sealed field", info=purpose.encode())
    return Fernet(base64.urlsafe_b64encode(key.derive(secret.encode())))


class SealedTextField(models.TextField):
    """Text kept encrypted in the database (Fernet, with a key derived from SECRET_KEY for this
    field's purpose), for secrets Group Admin must use again, such as a provider's refresh token.

    A dump or a backup of the database gives nothing usable without SECRET_KEY. Rotating
    SECRET_KEY keeps stored values readable while the old key is in SECRET_KEY_FALLBACKS; a value
    no key opens (the key is gone, or the value was stored before it was sealed) reads as "", as
    if nothing had been stored.
    """

    def __init__(self, *args, purpose: str = "", **kwargs):
        self.purpose = purpose
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    def _keys(self) -> MultiFernet:
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        return MultiFernet([_fernet(secret, self.purpose or self.attname) for secret in secrets])

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return self._keys().encrypt(value.encode()).decode("ascii")

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return self._keys().decrypt(value.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            logger.warning(
                "A sealed %s could not be opened (SECRET_KEY changed?); read as empty.", self.attname
            )
            return ""
