"""The mail backend of a production server that has no mail server configured."""

from __future__ import annotations

import logging

from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("groups_app.mail")


class DisabledEmailBackend(BaseEmailBackend):
    """Sends nothing and says so in the log: the subject only, never a body (it may hold links)."""

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            logger.warning("Mail is not configured (EMAIL_HOST); not sent: %r", message.subject)
        return 0
