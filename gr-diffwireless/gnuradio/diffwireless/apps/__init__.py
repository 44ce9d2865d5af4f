"""The ``dw-*`` command-line tools: ``dw-NAME`` runs ``gnuradio.diffwireless.apps.NAME:main``."""
