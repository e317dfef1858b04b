"""A Django e-mail backend that checks the SMTP server's certificate.

Django 3.2 (Debian 12's python3-django) hands smtplib no SSL context, so
its SMTP backend accepts any certificate, and a man in the middle would
get the relay password. This backend is Django's own, with one change: TLS
(EMAIL_USE_SSL on 465, EMAIL_USE_TLS on 587) verifies the certificate and
the host name, against the system's CAs or EMAIL_SSL_CAFILE. Django 4
and later verify against the system's CAs by themselves.

    EMAIL_BACKEND = "verifying_smtp.EmailBackend"
"""
import functools
import smtplib
import ssl

from django.conf import settings
from django.core.mail.backends import smtp


class EmailBackend(smtp.EmailBackend):
    @property
    def connection_class(self):
        context = ssl.create_default_context(
            cafile=getattr(settings, "EMAIL_SSL_CAFILE", None))
        if self.use_ssl:
            return functools.partial(smtplib.SMTP_SSL, context=context)

        class SMTP(smtplib.SMTP):
            def starttls(self, keyfile=None, certfile=None, context=context):
                return super().starttls(context=context)

        return SMTP
