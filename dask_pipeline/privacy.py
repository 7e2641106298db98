"""Pseudonymization (SPEC §9): usernames replaced by HMAC-SHA256 keyed by a secret.

Applied to the segments (hence every table derived from them) and to the text of rejected
lines, before either is written anywhere. Pure: standard library and pandas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pandas as pd

from . import schema

#: What a rejected line becomes when its usernames cannot all be found reliably.
WITHHELD = "<line withheld: it may name a user>"

_USERNAME_FIELD = re.compile(r'"username"\s*:\s*"((?:[^"\\]|\\.)*)"')


def pseudonym(key: bytes, username: str) -> str:
    """SPEC §9: HMAC-SHA256 of the username keyed by ``key``, as hex."""
    return hmac.new(key, username.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonymize_names(names: pd.Series, key: bytes) -> pd.Series:
    """Each username of ``names`` replaced by its pseudonym (same index and name)."""
    table = {u: pseudonym(key, u) for u in names.unique()}
    return pd.Series(
        pd.array(names.map(table).to_numpy(), dtype=schema.STR), index=names.index, name=names.name
    )


def pseudonymize_text(text: str, key: bytes) -> str:
    """Replace the line's usernames (the values of its ``username`` fields, JSON-decoded) by
    their pseudonyms wherever they occur in it: the fields themselves, but also URLs and event
    types that embed them, raw or JSON-escaped. A line in which some ``username`` is not a
    whole field (cut inside its value, escaped in a payload string, part of another key) is
    reduced to a placeholder."""
    fields = list(_USERNAME_FIELD.finditer(text))
    if text.count("username") != len(fields):
        return WITHHELD
    forms: dict[str, str] = {}
    for m in fields:
        try:
            name = json.loads(f'"{m.group(1)}"').strip()
        except ValueError:
            name = m.group(1).strip()
        if name:
            for form in (name, json.dumps(name)[1:-1]):
                forms[form] = pseudonym(key, name)
    if not forms:
        return text
    pat = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    return pat.sub(lambda m: forms[m.group(0)], text)


def pseudonymize_rejects(rejects: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Rejects (schema.REJECTS) whose ``text`` names no user."""
    texts = [pseudonymize_text(t, key) for t in rejects["text"]]
    return rejects.assign(text=pd.array(texts, dtype=schema.STR))
