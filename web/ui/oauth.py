"""Authlib's Starlette OAuth client, imported without the warning it prints at every start.

Authlib >= 1.6 warns at import that its httpx integration would rather have the httpx2
fork (``authlib/integrations/httpx_client/_compat.py``), and the Starlette client imports
that integration: three lines of ``AuthlibDeprecationWarning`` on stderr each time the API
or ``notifyctl up`` starts, about nothing we can act on. Only that warning is silenced,
here, where authlib is imported. ``authlib.deprecate`` turns its warnings to "always" at
import (``warnings.simplefilter``, which goes first in the list), so our filter is added
after importing it, and so comes before it.
"""

import warnings

import authlib.deprecate

warnings.filterwarnings(
    "ignore",
    message="The httpx module is deprecated",
    category=authlib.deprecate.AuthlibDeprecationWarning,
)

# After the filter, or the warning comes first (hence E402).
from authlib.integrations.starlette_client import OAuth, OAuthError  # noqa: E402

__all__ = ["OAuth", "OAuthError"]
